"""Text shown to a person is inert (SECURITY.md rule 17).

A model answer, a program result, a debug line or a fetched page can carry terminal escape
sequences (clear the screen, recolour it, set the window title, write the clipboard with
OSC 52) or bidi controls that reorder the line a user reads (U+202E). ``inert`` shows each
such character as a visible escape instead: ``\\x1b``, ``\\x7f``, ``\\u202e``.

The escape form is for display only: a literal backslash stays a backslash, so the text
``\\x1b`` and an ESC character look the same once shown. Exact text comes from ``--json``
(whose parsed strings are the originals) or ``watt run --raw``.

``dumps`` is ``json.dumps(..., ensure_ascii=False)`` for those outputs: JSON escapes the C0
controls itself but passes DEL, C1 controls and bidi characters through as they are, so
``dumps`` writes those as JSON ``\\u`` escapes (four hex digits) too. A consumer parsing the line gets
the exact text; a person who prints it to a terminal gets inert bytes.
"""

from __future__ import annotations

import json
from typing import Any

ESCAPED: tuple[int, ...] = (
    *range(0x00, 0x09),  # C0 controls before tab
    *range(0x0B, 0x20),  # C0 controls after newline (CR and ESC among them)
    0x7F,  # DEL
    *range(0x80, 0xA0),  # C1 controls (0x9B is a one-byte CSI)
    0x061C,  # ARABIC LETTER MARK
    0x200E,  # LEFT-TO-RIGHT MARK
    0x200F,  # RIGHT-TO-LEFT MARK
    *range(0x202A, 0x202F),  # LRE RLE PDF LRO RLO: bidi embeddings and overrides
    *range(0x2066, 0x206A),  # LRI RLI FSI PDI: bidi isolates
)
"""Code points shown as escapes: every control except newline and tab, and the bidi controls."""


def _visible(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_DISPLAY = {code: _visible(code) for code in ESCAPED}
_JSON = {code: f"\\u{code:04x}" for code in ESCAPED if code >= 0x7F}  # json escapes C0 itself


def inert(text: str) -> str:
    """``text`` with each control and bidi character in ``ESCAPED`` shown as ``\\xNN``/``\\uNNNN``."""
    return text.translate(_DISPLAY)


def dumps(value: Any, **kwargs: Any) -> str:
    """One JSON document: exact text once parsed, no raw DEL, C1 or bidi character in it."""
    # json.dumps emits those characters only inside strings, where a \u escape is valid
    return json.dumps(value, ensure_ascii=False, **kwargs).translate(_JSON)
