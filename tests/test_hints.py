"""Repair hints, fed the real errors the runtime gives for mistakes the real model made."""

from __future__ import annotations

import pytest

from agent.hints import _wrap_bare_operands, catalog_hint, named_program, repair_hint
from capabilities import standard_registry
from rt.engine import Runtime
from rt.errors import CompileError, LinkError

TAIL = "\n(check $err)\n(resv $out)\n(i32.const 0)"


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    return Runtime(standard_registry().functions())


def error_of(runtime: Runtime, body: str) -> CompileError | LinkError:
    with pytest.raises((CompileError, LinkError)) as info:
        runtime.run(body, granted={"sys", "str", "json", "http"})
    assert isinstance(info.value, (CompileError, LinkError))
    return info.value


@pytest.mark.parametrize(
    ("body", "hint"),
    [
        # each body is what qwen2.5-coder-1.5b sent in bench/eval_real_model.py, trimmed
        ('(argv 0 "the quick brown fox")\n(i32.const 0)', "put the value itself after the fence"),
        (
            "(argv 0 $json)\n(local $out i32) (local $err i32)\n"
            '(call $json.get ($argv 0 "items")) (local.set $err) (local.set $out)' + TAIL,
            "macros have no $: write (argv ...)",
        ),
        (
            "(argv 0 $a)\n(local $out i32) (local $err i32)\n"
            "(call $calc.mul (local.get $a)) (local.set $err) (local.set $out)" + TAIL,
            "there is no calc namespace",
        ),
        (
            "(call $str.upper (i32.const 0))\n(i32.const 0)",
            "use a call as an operand, where it gives one value",
        ),
    ],
)
def test_hint_for_a_real_mistake(runtime: Runtime, body: str, hint: str) -> None:
    assert hint in repair_hint(error_of(runtime, body))


def test_arithmetic_namespaces_get_the_i32_recipe(runtime: Runtime) -> None:
    text = repair_hint(error_of(runtime, "(call $calc.add (i32.const 1))\n(i32.const 0)"))
    assert (
        "math.eval" in text
        and "str.to_i32" in text
        and "i32.add" in text
        and "str.from_i32" in text
    )


@pytest.mark.parametrize(
    "body",
    [
        "(i32.const 0",  # never closed: the error says it all
        "(call $str.nope (i32.const 0))\n(i32.const 0)",  # the error lists what str offers
        "(call $kv.get (i32.const 0))\n(i32.const 0)",  # not granted: the error names the grant
    ],
)
def test_no_hint_where_the_error_says_enough(runtime: Runtime, body: str) -> None:
    assert repair_hint(error_of(runtime, body)) == ""


def test_hints_are_one_line() -> None:
    for error in [
        CompileError("argv expects (argv <int> $name)"),
        CompileError("type mismatch", line=1),
        CompileError("unknown local: failed to find name `$x`"),
    ]:
        hint = repair_hint(error)
        assert hint.startswith("Hint: ") and "\n" not in hint


@pytest.mark.parametrize(
    "body",
    [
        # mistakes the real model made that WAT-plus now reads as it meant them (DESIGN.md
        # "Expressions"): each compiles, where it used to need a repair hint
        "(argv 0 $url)\n(local $out i32) (local $err i32)\n"
        "(call $http.get ($url)) (local.set $err) (local.set $out)" + TAIL,
        '(local $out i32) (local $err i32)\n(json.get "{}" "a") (local.set $err) (local.set $out)'
        + TAIL,
        "(local.set $err (i32.const 1))\n(i32.const 0)",
        "(local $a i32) (local $b i32) (local $out i32)\n(i32.mul $a $b) (local.set $out)\n(i32.const 0)",
    ],
)
def test_former_mistakes_now_compile(runtime: Runtime, body: str) -> None:
    runtime.prepare(body, {"sys", "str", "json", "http"})


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ('(argv 0 "the quick brown fox")\n(i32.const 0)', "Write line 1 as: (argv 0 $text)"),
    ],
)
def test_the_hint_shows_the_line_corrected(runtime: Runtime, body: str, line: str) -> None:
    assert repair_hint(error_of(runtime, body)).endswith(line)


@pytest.mark.parametrize(
    ("line", "fixed"),
    [
        (
            "(i32.add $out 17) (local.set $err)",
            "(i32.add (local.get $out) (i32.const 17)) (local.set $err)",
        ),
        ("(call $json.get (local.get $d) 1)", "(call $json.get (local.get $d) (i32.const 1))"),
        ("(call $str.len $s)", "(call $str.len (local.get $s))"),
        (
            "(i32.const 17) (local.get 0) (br 1) (argv 1 $b)",
            "(i32.const 17) (local.get 0) (br 1) (argv 1 $b)",
        ),
    ],
)
def test_bare_operands_are_wrapped(line: str, fixed: str) -> None:
    assert _wrap_bare_operands(line) == fixed


def test_names_after_name_taking_instructions_are_left_alone() -> None:
    line = "(call $str.upper (local.get $t)) (local.set $o) (check $err) (argv 0 $x) (br_if $l (i32.eqz $n))"
    assert _wrap_bare_operands(line) == line.replace("(i32.eqz $n)", "(i32.eqz (local.get $n))")


def test_no_corrected_line_when_nothing_on_it_changes(runtime: Runtime) -> None:
    assert "Write line" not in repair_hint(
        error_of(runtime, "(call $calc.add (i32.const 1))\n(i32.const 0)")
    )


def test_catalog_hint_names_the_program_to_call_instead() -> None:
    body = "(argv 0 $t)\n(call $str.word_count (local.get $t)) (local.set $err) (local.set $out)"
    hint = catalog_hint(body, ["the quick brown fox"], {"str.upper"}, ["word_count", "upper"])
    assert hint == (
        "Hint: there is no $str.word_count, but the catalog program word_count does this: "
        'reply ToolCall::Catalog("word_count", "the quick brown fox")'
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("(call $kv.get (local.get $k))", "kv_get"),  # namespace and name joined
        ("(call $str.upper (local.get $t))", ""),  # a real host function: no hint
        ("(call $calc.mul (local.get $a))", ""),  # no such program either
        ("(str.word_count (local.get $t))", "word_count"),  # written without call
    ],
)
def test_catalog_hint_matching(body: str, expected: str) -> None:
    hint = catalog_hint(body, [], {"str.upper"}, ["kv_get", "upper", "word_count"])
    assert (f'ToolCall::Catalog("{expected}")' in hint) if expected else hint == ""


@pytest.mark.parametrize(
    "line",
    [
        "(i32.const 0) ;; see (json.get x)",  # a call in a comment is no call
        '(resv "($x)")',  # nor one in a string
    ],
)
def test_hints_read_the_line_with_the_tokenizer(line: str) -> None:
    assert repair_hint(CompileError("unknown operator", 1, 1, line)) == ""


def test_catalog_hint_ignores_calls_in_comments_and_strings() -> None:
    body = ';; (str.word_count x)\n(resv "(str.word_count y)")\n(i32.const 0)'
    assert catalog_hint(body, [], {"str.upper"}, ["word_count"]) == ""


@pytest.mark.parametrize(
    ("reasoning", "expected"),
    [
        ("word_count counts the words in a text; the result is the answer.", "word_count"),
        ("The catalog program replace does this.", "replace"),
        ("Use the program upper on it.", "upper"),
        ("str.replace swaps the words.", ""),  # a plain word alone is a host function's job
        ("replace every cat with dog", ""),
        ("count_words is not a program", ""),
        ("", ""),
    ],
)
def test_named_program_reads_the_reasoning(reasoning: str, expected: str) -> None:
    assert named_program(reasoning, ["word_count", "replace", "upper"]) == expected


def test_catalog_hint_from_the_reasoning_gives_the_call_with_the_args() -> None:
    body = '(answer (str.split (str.trim (arg 0)) " " (str.len (arg 0)) 0))'
    hint = catalog_hint(
        body, ["the quick brown fox"], {"str.split"}, ["word_count"],
        "word_count counts the words in a text; the result is the answer.",
    )  # fmt: skip
    assert hint == (
        "Hint: the catalog program word_count does this: "
        'reply ToolCall::Catalog("word_count", "the quick brown fox")'
    )
