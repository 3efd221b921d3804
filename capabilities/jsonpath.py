"""The ``json`` capability: read one value out of a JSON document by path, quote strings.

Path grammar (``parse_path``): keys joined by ``.``, array indexes in brackets::

    a.b[2].c     [0].name     items.0.id     ["key.with dots"].x     [-1]

A bare key is any run of characters other than ``.``, ``[`` and ``]`` (non-ASCII is fine);
a bracket holds a decimal index (negative counts from the end) or a JSON string literal
key. A bare all-digit key also indexes an array. The empty path is the whole document; a
leading ``$`` or ``.`` (JSONPath and jq habits) is accepted. Strings come back raw
(unquoted); any other value comes back as compact JSON text.

Limits: a document (and a string to quote) over ``max_doc_bytes`` is ENOMEM, refused from
its length prefix before it is copied; one nested deeper than ``max_depth`` (256) is EPARSE,
measured before parsing (``rt.nesting.check_depth``), so no input reaches the recursion limit.
"""

from __future__ import annotations

import json
import re
from functools import partial
from typing import Any

from capabilities.base import host
from rt.codes import Err
from rt.host import GuestError, HostFunction, RunContext
from rt.nesting import TooDeep, check_depth

Step = str | int
MAX_DEPTH = 256
"""Documents nested deeper than this are EPARSE (json and its encoder recurse per level)."""

_INDEX = re.compile(r"\[(-?[0-9]+)\]")
_QUOTED = re.compile(r'\[("(?:[^"\\]|\\.)*")\]')
_KEY = re.compile(r"(\.?)([^.\[\]]+)")
_DIGITS = re.compile(r"[0-9]+")


def _bad_path(path: str, pos: int, why: str) -> GuestError:
    return GuestError(Err.EPARSE, f"bad json path {path[:80]!r} at {pos}: {why}")


def parse_path(path: str) -> list[Step]:
    """The steps of ``path``: ``str`` keys and ``int`` indexes; ``GuestError(EPARSE)`` if malformed."""
    pos = 0
    if path == "$" or path.startswith(("$.", "$[")):
        pos = 1
    if path.startswith(".", pos) and pos + 1 < len(path) and path[pos + 1] != ".":
        pos += 1
    root = pos
    steps: list[Step] = []
    while pos < len(path):
        if m := _INDEX.match(path, pos):
            steps.append(int(m.group(1)))
        elif m := _QUOTED.match(path, pos):
            try:
                steps.append(json.loads(m.group(1)))
            except ValueError:
                raise _bad_path(path, pos, "malformed quoted key") from None
        elif m := _KEY.match(path, pos):
            if bool(m.group(1)) != (pos > root):
                raise _bad_path(path, pos, "keys are separated by '.'")
            steps.append(m.group(2))
        else:
            raise _bad_path(path, pos, f"unexpected {path[pos]!r}")
        pos = m.end()
    return steps


def _index(value: list[Any], idx: int, path: str) -> Any:
    if not -len(value) <= idx < len(value):
        raise GuestError(Err.ENOENT, f"{path}: index {idx} outside array of length {len(value)}")
    return value[idx]


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "a string" if isinstance(value, str) else f"the value {render(value)}"


def json_path_get(doc: Any, path: str) -> Any:
    """The value at ``path`` in the parsed ``doc``; EPARSE bad path, ENOENT missing (GuestError)."""
    value = doc
    for step in parse_path(path):
        if isinstance(step, int):
            if not isinstance(value, list):
                raise GuestError(Err.ENOENT, f"{path}: [{step}] applied to {_kind(value)}")
            value = _index(value, step, path)
        elif isinstance(value, dict):
            if step not in value:
                keys = ", ".join(list(value)[:10]) + (", ..." if len(value) > 10 else "")
                raise GuestError(Err.ENOENT, f"{path}: no key {step!r}; keys: {keys or '(none)'}")
            value = value[step]
        elif isinstance(value, list) and _DIGITS.fullmatch(step):
            value = _index(value, int(step), path)
        else:
            raise GuestError(Err.ENOENT, f"{path}: key {step!r} applied to {_kind(value)}")
    return value


def render(value: Any) -> str:
    """Strings raw; anything else as compact JSON (non-ASCII kept as is)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def parse_doc(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a JSON document (a leading BOM is ignored); ``GuestError(EPARSE)`` if invalid or
    nested deeper than ``max_depth`` (measured first, without recursion: rule 15)."""
    text = text.removeprefix("\ufeff")
    try:
        check_depth(text, max_depth)
    except TooDeep as exc:
        raise GuestError(Err.EPARSE, f"JSON {exc}") from None
    try:
        return json.loads(text)
    except RecursionError:  # only with a cap near Python's recursion limit
        raise GuestError(Err.EPARSE, "JSON nested too deeply") from None
    except ValueError as exc:
        raise GuestError(Err.EPARSE, f"bad JSON: {str(exc)[:120]}") from None


class JsonCapability:
    """Host functions of the ``json`` namespace."""

    namespace = "json"
    pure = True  # no side effects: a run may be repeated
    summary = "read JSON documents by path; bad pointer ETRFM, too large ENOMEM"

    def __init__(self, max_doc_bytes: int = 2_000_000, max_depth: int = MAX_DEPTH) -> None:
        self.max_doc_bytes = max_doc_bytes
        self.max_depth = max_depth

    def _out(self, ctx: RunContext, text: str) -> tuple[int, int]:
        data = text.encode("utf-8")
        if len(data) > self.max_doc_bytes:
            raise GuestError(
                Err.ENOMEM, f"JSON result of {len(data)} bytes exceeds {self.max_doc_bytes}"
            )
        return ctx.alloc_bytes(data), 0

    def get(self, ctx: RunContext, doc: int, path: int) -> tuple[int, int]:
        raw = ctx.read_bytes(doc, self.max_doc_bytes, "JSON document")
        path_text = ctx.read_str(path, self.max_doc_bytes, "JSON path")
        parse_path(path_text)  # a malformed path is EPARSE even before the document is parsed
        value = json_path_get(
            parse_doc(raw.decode("utf-8", errors="replace"), self.max_depth), path_text
        )
        try:
            text = render(value)
        except RecursionError:
            raise GuestError(Err.ENOMEM, "JSON value nested too deeply to render") from None
        return self._out(ctx, text)

    def quote(self, ctx: RunContext, s: int) -> tuple[int, int]:
        # the literal is longer than the string, so a string past the cap is refused unread
        text = ctx.read_str(s, self.max_doc_bytes, "string")
        return self._out(ctx, json.dumps(text, ensure_ascii=False))

    def functions(self) -> list[HostFunction]:
        fn = partial(host, self.namespace)
        return [
            fn("get", "doc path -> ptr err", self.get,
               'value at path like "a.b[2].c"; strings raw; EPARSE bad JSON/path, ENOENT missing'),
            fn("quote", "s -> ptr err", self.quote, "s as a JSON string literal, with quotes"),
        ]  # fmt: skip
