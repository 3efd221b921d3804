from __future__ import annotations

import pytest

from rt.errors import CompileError
from rt.preprocess import (
    DATA_BASE,
    ERR_LOCAL,
    called_functions,
    decode_string,
    list_heads,
    preprocess,
    tokenize,
)

RET_ERR = f"(if (local.get {ERR_LOCAL}) (then (return (local.get {ERR_LOCAL}))))"


@pytest.mark.parametrize(
    ("source", "body", "locals_"),
    [
        ("(i32.const 0)", "(i32.const 0)", ()),
        (
            "(argv 0 $x)",
            f"(call $sys.argv (i32.const 0)) (local.set {ERR_LOCAL}) (local.set $x) {RET_ERR}",
            ("(local $x i32)", f"(local {ERR_LOCAL} i32)"),
        ),
        ("(check $e)", "(if (local.get $e) (then (return (local.get $e))))", ("(local $e i32)",)),
        (
            "(resv $p)",
            f"(call $sys.resv (local.get $p)) (local.set {ERR_LOCAL}) {RET_ERR}",
            (f"(local {ERR_LOCAL} i32)", "(local $p i32)"),
        ),
        (
            '(resv "hi")',
            f"(call $sys.resv (i32.const {DATA_BASE})) (local.set {ERR_LOCAL}) {RET_ERR}",
            (f"(local {ERR_LOCAL} i32)",),
        ),
        (
            "(resv (local.get $q))",
            f"(call $sys.resv (local.get $q)) (local.set {ERR_LOCAL}) {RET_ERR}",
            (f"(local {ERR_LOCAL} i32)", "(local $q i32)"),
        ),
        ('(local.set $p "a")', f"(local.set $p (i32.const {DATA_BASE}))", ("(local $p i32)",)),
        ("(nop)\n(local $a i32)\n(nop)", "(nop)\n\n(nop)", ("(local $a i32)",)),
        ("(local $a i32) (local $a i32)", " ", ("(local $a i32)",)),
        ("(local i32 i64)", "", ("(local i32 i64)",)),
        (';; a comment "not a string"\n(nop)', ';; a comment "not a string"\n(nop)', ()),
        ('(; block "x" ;)(nop)', '(; block "x" ;)(nop)', ()),
        (
            '(local.set $p """a\nb""")',
            f"(local.set $p (i32.const {DATA_BASE})\n)",
            ("(local $p i32)",),
        ),
        ("(argv 1 $y)\n(argv 2 $y)", None, ("(local $y i32)", f"(local {ERR_LOCAL} i32)")),
    ],
)
def test_expansion(source: str, body: str | None, locals_: tuple[str, ...]) -> None:
    out = preprocess(source)
    if body is not None:
        # a body whose last statement leaves nothing gets the success status appended
        assert out.body == (body if source == "(i32.const 0)" else body + " (i32.const 0)")
    assert out.locals == locals_
    assert out.body.count("\n") == source.count("\n"), "expansion must keep line numbers"


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ('"plain"', b"plain"),
        ('"a\\nb"', b"a\nb"),
        ('"tab\\there"', b"tab\there"),
        ('"say \\"hi\\""', b'say "hi"'),
        ('"back\\\\slash"', b"back\\slash"),
        ('"hex\\41"', b"hexA"),
        ('"\\u{e9}"', "é".encode()),
        ('"日本"', "日本".encode()),
        ('"""raw \\n stays"""', b"raw \\n stays"),
        ('"""\nfirst newline dropped"""', b"first newline dropped"),
        ('""', b""),
    ],
)
def test_string_literals(literal: str, value: bytes) -> None:
    tok = [t for t in tokenize(literal) if t.kind in ("str", "raw")][0]
    assert decode_string(tok, literal) == value


def test_static_data_layout_and_dedup() -> None:
    out = preprocess('(drop "ab") (drop "ab") (drop "c")')
    assert out.body == (
        f"(drop (i32.const {DATA_BASE})) (drop (i32.const {DATA_BASE})) (drop (i32.const {DATA_BASE + 8})) (i32.const 0)"
    )
    assert out.data == b"\x02\x00\x00\x00ab\x00\x00\x01\x00\x00\x00c"
    assert out.initial_top % 8 == 0 and out.initial_top >= DATA_BASE + len(out.data)


@pytest.mark.parametrize(
    ("source", "message", "line", "column"),
    [
        ("", "empty program", None, None),
        ("   \n  ", "empty program", None, None),
        ("(nop", "'(' is never closed", 1, 1),
        ("(nop))", "unexpected ')'", 1, 6),
        ('(nop)\n  (drop "abc)', "unterminated string", 2, 9),
        ('(drop """abc)', "unterminated raw string", 1, 7),
        ("(nop)\n(; never closed", "unterminated block comment", 2, 1),
        ("(nop)\x00", "NUL byte", 1, 6),
        ('(resv "a\ud800")', "lone surrogate U+D800", 1, 9),
        (";; \udfff\n(nop)", "lone surrogate U+DFFF", 1, 4),
        ("(argv x $y)", "argv expects (argv <int> $name)", 1, 1),
        ("(argv 0)", "argv expects (argv <int> $name)", 1, 1),
        ("(argv 0 y)", "argv expects (argv <int> $name)", 1, 1),
        ("\n (check 1)", "check expects (check $name) or (check (expr))", 2, 2),
        ("(check $a $b)", "check expects (check $name) or (check (expr))", 1, 1),
        ("(resv)", "resv expects", 1, 1),
        ("(resv 5)", "resv expects", 1, 1),
        ("(local $a i32) (local $a i64)", "declared twice with different types", 1, 16),
        ("(local)", "local expects", 1, 1),
        ('(drop "bad \\q")', "unknown escape \\q", 1, 12),
    ],
)
def test_errors(source: str, message: str, line: int | None, column: int | None) -> None:
    with pytest.raises(CompileError) as info:
        preprocess(source)
    err = info.value
    assert message in str(err)
    assert (err.line, err.column) == (line, column)
    assert "\n" not in str(err)


# ---- the one reader of what a body calls ---------------------------------------------------


@pytest.mark.parametrize(
    ("source", "calls"),
    [
        ("(call $str.len (local.get $s))", ["str.len"]),
        ('(answer (str.upper ($json.get (arg 0) "k")))', ["str.upper", "json.get"]),
        ("local.get 0\ncall $fs.read\n(return_call $kv.get (i32.const 1))", ["fs.read", "kv.get"]),
        (
            ';; (call $http.get x)\n"(ai.assist y)" (; ($kv.set) ;) (i32.add (i32.const 1) (memory.size))',
            [],
        ),
        ('"""raw (call $ai.assist) text""" (debug.log "s")', ["debug.log"]),
        # text that will not compile is still read: what follows unterminated text is not code
        ('(kv.get "no closing quote\n(fs.read "p")', ["kv.get", "fs.read"]),
        ("(http.get (arg 0)) (; never closed (ai.assist x)", ["http.get"]),
        ('(str.len (arg 0)) """ never closed (ai.assist x)', ["str.len"]),
    ],
)
def test_called_functions(source: str, calls: list[str]) -> None:
    assert called_functions(source) == calls


def test_lenient_tokenizing_keeps_every_character() -> None:
    for source in ['(a "open\n(b)', "(; open", '""" open', '(a "open']:
        with pytest.raises(CompileError):
            tokenize(source)
        assert "".join(t.text for t in tokenize(source, lenient=True)) == source


def test_list_heads_skip_comments_and_strings() -> None:
    line = '(call $str.len ($x)) (resv "($y)") ;; (json.get z)'
    assert list_heads(line) == ["call", "$x", "resv"]
