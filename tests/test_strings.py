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
from capabilities.sys import SysCapability
from rt.codes import Err
from rt.engine import Runtime
from rt.host import GuestError
from rt.limits import Limits

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
    [
        "",
        " ",
        "abc",
        "12abc",
        "1.5",
        "1_000",
        "0x10",
        "--1",
        "2147483648",
        "-2147483649",
        "١٢",
        "1 2",
    ],
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


# ---- host functions, driven by WAT programs ------------------------------------------------


def _runtime(**cap: int) -> Runtime:
    return Runtime(
        functions=[*SysCapability().functions(), *StrCapability(**cap).functions()],
        limits=Limits(),
    )


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    return _runtime()


_SHOW = {
    # how to turn each kind of result into an appended result string
    "ptr": "(resv $x)",
    "num": "(call $str.from_i32 (local.get $x)) (local.set $e) (local.set $x) (check $e) (resv $x)",
    "arr": '(call $str.join (local.get $x) "|") (local.set $e) (local.set $x) (check $e) (resv $x)',
}


def show(call: str, kind: str) -> str:
    """A body that makes ``call`` (returning ``(x err)``) and appends ``x`` to the results."""
    return f"(local $x i32) (local $e i32)\n{call} (local.set $e) (local.set $x)\n(check $e)\n{_SHOW[kind]}\n(i32.const 0)"


def status_of(call: str) -> str:
    """A body whose status is the error code of ``call`` (which returns ``(x err)``)."""
    return f"(local $e i32)\n{call} (local.set $e) (drop)\n(local.get $e)"


@pytest.mark.parametrize(
    ("call", "kind", "args", "expected"),
    [
        ("(call $str.len (local.get $a))", "num", ["héllo 日本😀"], "9"),
        ("(call $str.len (local.get $a))", "num", [""], "0"),
        ("(call $str.concat (local.get $a) (local.get $b))", "ptr", ["é", "日本"], "é日本"),
        (
            "(call $str.slice (local.get $a) (i32.const 1) (i32.const 3))",
            "ptr",
            ["a日本語"],
            "日本",
        ),
        ("(call $str.slice (local.get $a) (i32.const 2) (i32.const 99))", "ptr", ["a日😀b"], "😀b"),
        ("(call $str.find (local.get $a) (local.get $b))", "num", ["日本語テキスト", "テ"], "3"),
        ('(call $str.replace (local.get $a) (local.get $b) "ü")', "ptr", ["a-b-c", "-"], "aübüc"),
        ('(call $str.replace (local.get $a) (local.get $b) "")', "ptr", ["日x本x", "x"], "日本"),
        ("(call $str.split (local.get $a) (local.get $b))", "arr", ["é,日,😀", ","], "é|日|😀"),
        ('(call $str.split (local.get $a) "")', "arr", ["  a \t b\nc "], "a|b|c"),
        (
            "(call $str.chunk (local.get $a) (i32.const 12))",
            "arr",
            ["Hi there. How are you?"],
            "Hi there.|How are you?",
        ),
        ("(call $str.chunk (local.get $a) (i32.const 4))", "arr", ["日本😀"], "日|本|😀"),
        ("(call $str.chunk (local.get $a) (i32.const 4))", "arr", [" \n "], ""),
        ("(call $str.trim (local.get $a))", "ptr", ["  é日 \n"], "é日"),
        ("(call $str.upper (local.get $a))", "ptr", ["straße é"], "STRASSE É"),
        ("(call $str.lower (local.get $a))", "ptr", ["ÉCOLE ABC"], "école abc"),
        ("(call $str.reverse (local.get $a))", "ptr", ["ab日😀"], "😀日ba"),
        ("(call $str.eq (local.get $a) (local.get $b))", "num", ["日本", "日本"], "1"),
        ("(call $str.eq (local.get $a) (local.get $b))", "num", ["日本", "日"], "0"),
        ("(call $str.from_i32 (i32.const -2147483648))", "ptr", [], "-2147483648"),
        ("(call $str.from_i32 (i32.const 4294967295))", "ptr", [], "-1"),
        ("(call $str.to_i32 (local.get $a))", "num", [" -123 "], "-123"),
        ("(call $str.to_i32 (local.get $a))", "num", ["2147483647"], "2147483647"),
    ],
)
def test_host_functions(
    runtime: Runtime, call: str, kind: str, args: list[str], expected: str
) -> None:
    body = "".join(f"(argv {i} ${n}) " for i, n in enumerate("ab"[: len(args)])) + show(call, kind)
    result = runtime.run(body, args)
    assert (result.status, result.results) == (0, [expected]), result.debug


def test_join_with_unicode_separator(runtime: Runtime) -> None:
    body = (
        "(argv 0 $a) (local $h i32)\n"
        '(call $str.split (local.get $a) ",") (local.set $e) (local.set $h) (check $e)\n'
        + show('(call $str.join (local.get $h) " → ")', "ptr")
    )
    assert runtime.run(body, ["x,日,😀"]).results == ["x → 日 → 😀"]


BAD = "(i32.const -1)"  # 0xFFFFFFFF: outside any memory


@pytest.mark.parametrize(
    ("call", "args", "code"),
    [
        # ETRFM: every pointer parameter is checked
        (f"(call $str.len {BAD})", [], Err.ETRFM),
        (f"(call $str.concat {BAD} (local.get $a))", ["x"], Err.ETRFM),
        (f"(call $str.concat (local.get $a) {BAD})", ["x"], Err.ETRFM),
        (f"(call $str.slice {BAD} (i32.const 0) (i32.const 1))", [], Err.ETRFM),
        (f"(call $str.find {BAD} (local.get $a))", ["x"], Err.ETRFM),
        (f"(call $str.find (local.get $a) {BAD})", ["x"], Err.ETRFM),
        (f"(call $str.replace (local.get $a) {BAD} (local.get $a))", ["x"], Err.ETRFM),
        (f"(call $str.replace (local.get $a) (local.get $a) {BAD})", ["x"], Err.ETRFM),
        (f"(call $str.split {BAD} (local.get $a))", ["x"], Err.ETRFM),
        (f"(call $str.chunk {BAD} (i32.const 10))", [], Err.ETRFM),
        (f"(call $str.trim {BAD})", [], Err.ETRFM),
        (f"(call $str.upper {BAD})", [], Err.ETRFM),
        (f"(call $str.lower {BAD})", [], Err.ETRFM),
        (f"(call $str.reverse {BAD})", [], Err.ETRFM),
        (f"(call $str.eq (local.get $a) {BAD})", ["x"], Err.ETRFM),
        (f"(call $str.to_i32 {BAD})", [], Err.ETRFM),
        ("(call $str.len (i32.const 65534))", [], Err.ETRFM),  # length prefix crosses the end
        # EBOUND
        ("(call $str.slice (local.get $a) (i32.const 2) (i32.const 1))", ["abc"], Err.EBOUND),
        ("(call $str.slice (local.get $a) (i32.const 4) (i32.const 9))", ["日本語"], Err.EBOUND),
        ("(call $str.slice (local.get $a) (i32.const -1) (i32.const 2))", ["abc"], Err.EBOUND),
        ("(call $str.slice (local.get $a) (i32.const 0) (i32.const -1))", ["abc"], Err.EBOUND),
        ('(call $str.replace (local.get $a) "" "x")', ["abc"], Err.EBOUND),
        ("(call $str.chunk (local.get $a) (i32.const 3))", ["abc"], Err.EBOUND),
        ("(call $str.chunk (local.get $a) (i32.const -8))", ["abc"], Err.EBOUND),
        ("(call $str.join (i32.const 7) (local.get $a))", [","], Err.EBOUND),
        ("(call $str.join (i32.const -1) (local.get $a))", [","], Err.EBOUND),
        # ENOENT
        ('(call $str.find (local.get $a) "é")', ["abc"], Err.ENOENT),
        # EPARSE
        ("(call $str.to_i32 (local.get $a))", ["twelve"], Err.EPARSE),
        ("(call $str.to_i32 (local.get $a))", ["2147483648"], Err.EPARSE),
        ("(call $str.to_i32 (local.get $a))", ["-2147483649"], Err.EPARSE),
        ("(call $str.to_i32 (local.get $a))", ["４２"], Err.EPARSE),  # fullwidth digits
    ],
)
def test_host_function_errors(runtime: Runtime, call: str, args: list[str], code: Err) -> None:
    body = ("(argv 0 $a) " if args else "") + status_of(call)
    result = runtime.run(body, args)
    assert result.status == code, result.debug
    assert result.debug and result.debug[0].startswith("str."), "the detail reaches the debug lines"
    assert "internal error" not in " ".join(result.debug)


def test_join_bad_separator_pointer(runtime: Runtime) -> None:
    body = (
        "(local $h i32)\n"
        '(call $str.split "a,b" ",") (local.set $e) (local.set $h) (check $e)\n'
        + status_of(f"(call $str.join (local.get $h) {BAD})")
    )
    assert runtime.run(body).status == Err.ETRFM


@pytest.mark.parametrize(
    "call",
    [
        "(call $str.concat (local.get $a) (local.get $a))",
        "(call $str.slice (local.get $a) (i32.const 0) (i32.const 99))",
        '(call $str.replace (local.get $a) "a" "aaaaa")',
        "(call $str.trim (local.get $a))",
        "(call $str.upper (local.get $a))",
        "(call $str.lower (local.get $a))",
        "(call $str.reverse (local.get $a))",
        "(call $str.from_i32 (i32.const -2147483648))",
    ],
)
def test_output_cap_is_enomem(call: str) -> None:
    runtime = _runtime(max_output_bytes=10)
    eleven_bytes = "abcdéfghij"
    assert runtime.run("(argv 0 $a) " + status_of(call), [eleven_bytes]).status == Err.ENOMEM


def test_output_cap_join_and_expanding_upper() -> None:
    runtime = _runtime(max_output_bytes=10)
    joined = (
        "(local $h i32)\n"
        '(call $str.split "aaaa bbbb ccc" "") (local.set $e) (local.set $h) (check $e)\n'
        + status_of('(call $str.join (local.get $h) "")')
    )
    assert runtime.run(joined).status == Err.ENOMEM
    assert runtime.run(status_of('(call $str.upper "ßßßßßß")')).status == Err.ENOMEM  # 12 bytes out
    assert runtime.run(show('(call $str.upper "ßßßßß")', "ptr")).results == ["SSSSSSSSSS"]


def test_split_charges_the_item_quota(runtime: Runtime) -> None:
    text = "x " * 100_001  # one item past RunContext.max_array_items
    result = runtime.run("(argv 0 $a) " + status_of('(call $str.split (local.get $a) "")'), [text])
    assert result.status == Err.ENOMEM
