"""The str capability: table tests of the text functions, then every host function via WAT."""

from __future__ import annotations

import pytest

from capabilities.strings import (
    StrCapability,
    chunk_text,
    find_text,
    parse_i32,
    slice_text,
    split_text,
)
from rt.codes import Err
from rt.host import GuestError

# ---- pure functions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "start", "end", "expected"),
    [
        ("hello", 0, 5, "hello"),
        ("hello", 1, 3, "el"),
        ("hello", 2, 100, "llo"),
        ("hello", 5, 5, ""),
        ("hello", 5, 9, ""),
        ("", 0, 0, ""),
        ("héllo", 1, 2, "é"),
        ("日本語テキスト", 2, 4, "語テ"),
        ("a😀b", 1, 2, "😀"),
    ],
)
def test_slice_text(text: str, start: int, end: int, expected: str) -> None:
    assert slice_text(text, start, end) == expected


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [("hello", 3, 2), ("hello", 6, 9), ("hello", -1, 3), ("hello", 0, -1), ("", 1, 1)],
)
def test_slice_text_out_of_bounds(text: str, start: int, end: int) -> None:
    with pytest.raises(GuestError) as info:
        slice_text(text, start, end)
    assert info.value.code is Err.EBOUND


@pytest.mark.parametrize(
    ("text", "needle", "expected"),
    [("hello", "l", 2), ("hello", "", 0), ("日本語テキスト", "テ", 3), ("a😀b😀", "b", 2)],
)
def test_find_text(text: str, needle: str, expected: int) -> None:
    assert find_text(text, needle) == expected


def test_find_text_absent_is_enoent() -> None:
    with pytest.raises(GuestError) as info:
        find_text("hello", "z")
    assert info.value.code is Err.ENOENT


@pytest.mark.parametrize(
    ("text", "sep", "expected"),
    [
        ("a,b,,c", ",", ["a", "b", "", "c"]),
        ("  one\ttwo \n three  ", "", ["one", "two", "three"]),
        ("", "", []),
        ("", ",", [""]),
        ("é::日本::😀", "::", ["é", "日本", "😀"]),
    ],
)
def test_split_text(text: str, sep: str, expected: list[str]) -> None:
    assert split_text(text, sep) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("42", 42),
        ("-17", -17),
        ("+8", 8),
        ("  12 \n", 12),
        ("2147483647", 2147483647),
        ("-2147483648", -2147483648),
        ("007", 7),
    ],
)
def test_parse_i32(text: str, expected: int) -> None:
    assert parse_i32(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", " ", "abc", "12abc", "1.5", "1_000", "0x10", "--1", "2147483648", "-2147483649", "١٢", "1 2"],
)
def test_parse_i32_rejects(text: str) -> None:
    with pytest.raises(GuestError) as info:
        parse_i32(text)
    assert info.value.code is Err.EPARSE


@pytest.mark.parametrize(
    ("text", "max_bytes", "expected"),
    [
        ("", 10, []),
        ("   \n\n  ", 10, []),
        ("short", 10, ["short"]),
        ("  padded  ", 10, ["padded"]),
        # paragraphs first: both fit together, so they stay in one chunk
        ("One.\n\nTwo.", 20, ["One.\n\nTwo."]),
        ("First para.\n\nSecond para.", 15, ["First para.", "Second para."]),
        ("First para.\n \t\nSecond para.", 15, ["First para.", "Second para."]),
        # then sentences
        ("Hi there. How are you? Fine!", 12, ["Hi there.", "How are you?", "Fine!"]),
        ("Hi there. How are you? Fine!", 23, ["Hi there. How are you?", "Fine!"]),
        # then words
        ("alpha beta gamma delta", 11, ["alpha beta", "gamma delta"]),
        # then characters
        ("abcdefghij", 4, ["abcd", "efgh", "ij"]),
        ("ééé", 4, ["éé", "é"]),
        ("日本語", 4, ["日", "本", "語"]),
        ("😀😀", 4, ["😀", "😀"]),
        ("a😀", 4, ["a", "😀"]),
        # a long paragraph is split by sentence, the next paragraph stays whole
        ("Aa aa. Bb bb.\n\nCc.", 8, ["Aa aa.", "Bb bb.", "Cc."]),
    ],
)
def test_chunk_text_table(text: str, max_bytes: int, expected: list[str]) -> None:
    assert chunk_text(text, max_bytes) == expected


_TEXTS = [
    "The quick brown fox. Jumps over the lazy dog! Does it? Yes.\n\nA second paragraph here.",
    "Café crème. Déjà vu à la française!\n\nÉté à Montréal, où l'on parle français.",
    "日本語のテキストです。これは文です。\n\n次の段落です。 長い長い長い長い長い文章。",
    "Emoji 😀 party 🎉🎉🎉 with family 👨‍👩‍👧‍👦 and flags 🇫🇷🇯🇵. End!",
    "supercalifragilisticexpialidocious" * 5 + " tail",
    "Mixed: é日😀 " * 40,
    "Line one\nline two\nline three.\n\n\n\nAfter many blanks.   Trailing   ",
]


def _squash(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize("text", _TEXTS)
@pytest.mark.parametrize("max_bytes", [4, 5, 7, 16, 33, 64, 1000])
def test_chunk_text_properties(text: str, max_bytes: int) -> None:
    chunks = chunk_text(text, max_bytes)
    assert chunks
    for c in chunks:
        assert c, "no empty chunks"
        assert c == c.strip(), "whitespace at the cuts is dropped"
        assert len(c.encode("utf-8")) <= max_bytes
    # joining the chunks gives back the text, up to whitespace at the cuts
    assert _squash("".join(chunks)) == _squash(text)
    # the chunks appear in order in the text
    pos = 0
    for c in chunks:
        pos = text.index(c, pos) + len(c)


def test_chunk_text_prefers_sentence_over_word_boundaries() -> None:
    text = "One two three. Four five six seven eight nine."
    assert chunk_text(text, 20) == ["One two three.", "Four five six seven", "eight nine."]


def test_chunk_text_rejects_tiny_limit() -> None:
    with pytest.raises(ValueError, match="at least 4"):
        chunk_text("abc", 3)


def test_chunk_text_large_input_is_linear() -> None:
    text = ("word " * 50 + "end.\n\n") * 400  # ~100 KB
    chunks = chunk_text(text, 1000)
    assert all(len(c.encode()) <= 1000 for c in chunks)
    assert _squash("".join(chunks)) == _squash(text)


def test_docs_are_short() -> None:
    cap = StrCapability()
    assert len(cap.summary.split()) <= 15
    for f in cap.functions():
        assert f.namespace == "str"
        assert len(f.doc.split()) <= 15, f.name
        assert f.results == ("i32", "i32")
