"""cli.safe_text: control and bidi characters shown as visible escapes; JSON stays exact."""

from __future__ import annotations

import json

import pytest

from cli.safe_text import ESCAPED, dumps, inert


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("", ""),
        ("plain text, ünïcödé, 日本語, emoji 🙂", "plain text, ünïcödé, 日本語, emoji 🙂"),
        ("two\nlines\tand a tab", "two\nlines\tand a tab"),
        ("\x1b[2J", "\\x1b[2J"),
        ("\x1b]52;c;SGVsbG8=\x07", "\\x1b]52;c;SGVsbG8=\\x07"),
        ("\x1b]0;title\x1b\\", "\\x1b]0;title\\x1b\\"),
        ("\x00\x01\x08\x0b\x0c\x0e\x1f", "\\x00\\x01\\x08\\x0b\\x0c\\x0e\\x1f"),
        ("line\r\n", "line\\x0d\n"),
        ("del\x7f", "del\\x7f"),
        ("c1 \x80 \x85 \x9b31m \x9f", "c1 \\x80 \\x85 \\x9b31m \\x9f"),
        ("\xa0nbsp stays", "\xa0nbsp stays"),
        ("abc\u202edef", "abc\\u202edef"),
        ("\u202a\u202b\u202c\u202d", "\\u202a\\u202b\\u202c\\u202d"),
        ("\u2066\u2067\u2068\u2069", "\\u2066\\u2067\\u2068\\u2069"),
        ("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"),
        ("\u200b\u2065\u206a\u2029", "\u200b\u2065\u206a\u2029"),  # neighbours are left alone
        ("a literal \\x1b stays", "a literal \\x1b stays"),
        ("C:\\path\\to", "C:\\path\\to"),
        ("[bold red]x[/]", "[bold red]x[/]"),  # markup is the renderers' business, not text's
    ],
)
def test_inert(text: str, shown: str) -> None:
    assert inert(text) == shown


def test_inert_leaves_no_escaped_character_and_is_idempotent() -> None:
    everything = "".join(map(chr, ESCAPED))
    once = inert(everything)
    assert not set(once) & set(everything)
    assert once.isascii() and once.isprintable()
    assert inert(once) == once


@pytest.mark.parametrize(
    "value",
    [
        {"text": "\x1b]52;c;SGVsbG8=\x07 \x1b[2J \u202e [bold red]x[/] \x7f \x9b \u2066 é"},
        ["\\u202e is not \u202e", "\\\u202e"],
        {"\u202ekey\x1b": ["\x00", "\u200f"]},
    ],
)
def test_dumps_is_exact_once_parsed_and_inert_as_bytes(value: object) -> None:
    line = dumps(value)
    assert json.loads(line) == value
    assert not set(line) & set(map(chr, ESCAPED))


def test_dumps_keeps_other_non_ascii_and_passes_json_options_through() -> None:
    assert dumps({"t": "é\u202e\x1b"}) == '{"t": "é\\u202e\\u001b"}'
    assert dumps({"a": "\u202e"}, indent=1) == '{\n "a": "\\u202e"\n}'
    assert dumps(("x",), default=str) == '["x"]'
