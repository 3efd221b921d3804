"""How deeply outside text nests, measured without recursion (SECURITY.md rule 15).

Python's ``json`` and ``tomllib`` parse nested arrays and tables by recursion, so a document
100,000 levels deep ends in ``RecursionError`` (or deeper still, in a crash). Every parser
that sees outside input calls ``check_depth`` first; it scans the text without recursion
and raises ``TooDeep`` (a ``ValueError`` with a one-line message) when ``[`` / ``{`` nest
deeper than the cap outside strings (and, for TOML, comments). Each seam translates it into
its own typed error: EPARSE for the json capability, ``CatalogError`` for catalog front
matter, ``ConfigError`` for ``config.toml``::

    try:
        check_depth(text, syntax="toml")
    except TooDeep as exc:
        raise ConfigError(f"{path}: {exc}") from None

The scan does not validate. On valid text the depth it measures is the parser's; on
malformed text it may measure more than the parser would reach, never less (the parser
stops at the first stray closer or unterminated string, and nothing after it counts less).
"""

from __future__ import annotations

import itertools
import re
from typing import Literal

Syntax = Literal["json", "toml"]

MAX_DEPTH = 100
"""The default cap: far past real documents and configs, far below Python's recursion limit."""

_TOKENS = {
    "json": re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.S),
    "toml": re.compile(
        r'"""[^\\]*?(?:\\.[^\\]*?)*?(?:"""|\Z)'  # multi-line basic string (escapes)
        r"|'''[\s\S]*?(?:'''|\Z)"  # multi-line literal string
        r'|"[^"\\\n]*(?:\\.[^"\\\n]*)*"?'  # basic string (one line)
        r"|'[^'\n]*'?"  # literal string (one line)
        r"|#[^\n]*"  # comment
        r"|[\[\]{}]",
        re.S,
    ),
}
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_BYTE_STEP = {ord(k): v for k, v in _STEP.items()}
_NOT_JSON_STRUCTURE = bytes(b for b in range(256) if chr(b) not in '"[]{}')


class TooDeep(ValueError):
    """Text nested deeper than ``max_depth``; ``line`` is where the cap was passed (1-based)."""

    def __init__(self, max_depth: int, line: int) -> None:
        super().__init__(f"nested deeper than {max_depth} levels (line {line})")
        self.max_depth = max_depth
        self.line = line


def check_depth(text: str | bytes, max_depth: int = MAX_DEPTH, *, syntax: Syntax = "json") -> None:
    """Raise ``TooDeep`` if ``text`` (str, or UTF-8 bytes) nests deeper than ``max_depth``.

    Text with too few brackets to nest that deep costs two counts. JSON is otherwise measured
    by C-speed byte operations (about as long as ``json.loads`` takes) and TOML by one regex
    pass that stops at the refused level; a refused JSON text is scanned that way too, up
    to the refused level, to name its line."""
    opens = (
        text.count("[") + text.count("{")
        if isinstance(text, str)
        else text.count(b"[") + text.count(b"{")
    )
    if opens <= max_depth:
        return
    if syntax == "json":
        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
        if _json_depth(data) <= max_depth:
            return
    line = _scan(
        text if isinstance(text, str) else text.decode("utf-8", "replace"), max_depth, syntax
    )
    if line is not None or syntax == "json":  # the JSON measure has already said too deep
        raise TooDeep(max_depth, line or 1)


def _json_depth(data: bytes) -> int:
    """The bracket depth of JSON bytes outside strings, by replace/split/translate (no loop)."""
    # escaped backslashes, then escaped quotes: what is left of a '"' delimits a string
    data = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_JSON_STRUCTURE)
    brackets = b"".join(data.split(b'"')[::2])  # even pieces lie outside strings
    # A running sum of +1/-1 is the exact depth up to the first stray closer, where the
    # parser stops; after it the sum is only lower, so its maximum never underestimates.
    return max(itertools.accumulate(map(_BYTE_STEP.__getitem__, brackets)), default=0)


def _scan(text: str, max_depth: int, syntax: Syntax) -> int | None:
    """One tokenizing pass that stops at the first level past the cap: that level's line."""
    depth = 0
    for m in _TOKENS[syntax].finditer(text):
        depth = max(depth + _STEP.get(m.group(), 0), 0)
        if depth > max_depth:
            return text.count("\n", 0, m.start()) + 1
    return None
