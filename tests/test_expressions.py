"""WAT-plus expressions (DESIGN.md "Expressions"): host calls that compose, certain sugar with
a note for each rewrite, failures that name their call site, and (answer ...) ending a task."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.events import AnswerSource, ResponseEvent, ToolResult
from agent.loop import LoopSettings, run_task
from agent.models.scripted import ScriptedModel
from agent.parser import WatCall, format_action
from agent.programs.catalog import Catalog
from capabilities import standard_registry
from rt.engine import Runtime
from rt.errors import CompileError, LinkError
from rt.preprocess import preprocess

PURE = {"sys", "str", "arr", "json", "math", "debug", "kv"}


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    return Runtime(standard_registry().functions())


@pytest.fixture(scope="module")
def functions(runtime: Runtime) -> dict:
    return runtime.functions


DOC = '{"user": {"email": "ada@example.org", "age": 36}}'


@pytest.mark.parametrize(
    ("body", "args", "results"),
    [
        # composed calls: each operand call yields its pointer
        ("(resv (str.upper (arg 0)))", ["hi"], ["HI"]),
        ("(answer (str.len (arg 0)))", ["héllo"], ["5"]),  # a number answered as its text
        ('(resv (str.find (arg 0) "l"))', ["hello"], ["2"]),
        ("(resv ($str.upper (arg 0)))", ["hi"], ["HI"]),
        ("(resv (call $str.upper (arg 0)))", ["hi"], ["HI"]),
        ('(resv (json.get (arg 0) "user.email"))', [DOC], ["ada@example.org"]),
        ('(resv (str.concat (str.upper (arg 0)) (str.lower (arg 1))))', ["ab", "CD"], ["ABcd"]),
        ("(resv (str.from_i32 (i32.add (str.to_i32 (arg 0)) (str.to_i32 (arg 1)))))", ["40", "2"], ["42"]),
        ('(resv (math.eval "2**64"))', [], ["18446744073709551616"]),
        ("(resv (math.factorial 25))", [], ["15511210043330985984000000"]),
        # a local set from an expression, read bare or as ($x)
        ("(local $u i32)\n(local.set $u (str.upper (arg 0)))\n(resv $u)", ["x"], ["X"]),
        # a statement call without `call`, followed by one local.set: its pointer
        ("(local $u i32)\n(str.upper (arg 0))\n(local.set $u)\n(resv $u)", ["y"], ["Y"]),
        # the long form keeps its meaning, with or without `call`
        ("(argv 0 $t) (local $o i32) (local $e i32)\n(call $str.upper (local.get $t)) (local.set $e) (local.set $o)\n"
         "(check $e)\n(resv $o)\n(i32.const 0)", ["z"], ["Z"]),
        ("(argv 0 $t) (local $o i32) (local $e i32)\n(str.upper (local.get $t)) (local.set $e) (local.set $o)\n"
         "(check $e)\n(resv $o)", ["w"], ["W"]),
        # an error-only call as a statement is checked; the body gets its (i32.const 0)
        ('(kv.set "k" (arg 0))\n(resv (kv.get "k"))', ["v"], ["v"]),
        # a condition from a (bool err) call
        ('(if (str.eq (arg 0) "yes") (then (resv "Y")) (else (resv "N")))', ["yes"], ["Y"]),
        # flat stack code is untouched
        ("(argv 0 $t)\nlocal.get $t\ncall $str.len\ndrop\ncall $str.from_i32\ndrop\ncall $sys.resv\ndrop\n"
         "i32.const 0", ["abc"], ["3"]),
    ],
)  # fmt: skip
def test_short_forms_run(runtime: Runtime, body: str, args: list[str], results: list[str]) -> None:
    result = runtime.run(body, args, granted=PURE)
    assert result.ok, (result.status_name, result.failure, result.debug)
    assert result.results == results


@pytest.mark.parametrize(
    ("body", "note"),
    [
        (
            "(argv 0 $x)\n(resv (str.upper $x))",
            "line 2: read the operand $x of str.upper as (local.get $x)",
        ),
        ("(argv 0 $x)\n(resv (str.upper ($x)))", "line 2: read ($x) as (local.get $x)"),
        (
            "(resv (str.from_i32 17))",
            "line 1: read the operand 17 of str.from_i32 as (i32.const 17)",
        ),
        (
            "(resv (str.from_i32 (i32.add 40 2)))",
            "line 1: read the operand 40 of i32.add as (i32.const 40)",
        ),
        (
            "(local.set $n (i32.const 1))\n(i32.const 0)",
            "line 1: $n was not declared: declared it as (local $n i32)",
        ),
        ('(resv ($str.upper "a"))', "line 1: read ($str.upper ...) as (call $str.upper ...)"),
        (
            "(answer (str.len (arg 0)))",
            "line 1: (answer X) needs text: wrote the number X as (str.from_i32 X)",
        ),
        (
            "(resv (i32.add 1 2))",
            "line 1: (resv X) needs text: wrote the number X as (str.from_i32 X)",
        ),
        (
            "(local $n i32)\n(set_local $n (i32.const 2))\n(resv (str.from_i32 (get_local $n)))",
            "line 2: read the old name set_local as local.set",
        ),
        (
            '(answer (str.split (arg 0) " "))',
            "line 1: (answer X) needs text: wrote the array X as its items, one per line",
        ),
        (
            "(answer (math.factorial 25))",
            'line 1: read the operand 25 of math.factorial as the text "25"',
        ),
        (
            "(answer (local.set $u (str.upper (arg 0))))",
            "line 1: (local.set $u X) used as a value: read it as local.tee",
        ),
    ],
)
def test_each_certain_rewrite_is_noted(
    runtime: Runtime, functions: dict, body: str, note: str
) -> None:
    assert note in preprocess(body, functions).notes
    result = runtime.run(body, ["a"], granted=PURE)
    assert result.ok and note in result.notes


@pytest.mark.parametrize(
    "body",
    [
        "(argv 0 $t)\n(local $o i32) (local $e i32)\n(call $str.upper (local.get $t)) (local.set $e) (local.set $o)\n"
        "(check $e)\n(resv $o)\n(i32.const 0)",
        "(i32.const 0)",
        "(local $i i32)\n(block $done (loop $next (br_if $done (i32.ge_s (local.get $i) (i32.const 3)))\n"
        "(local.set $i (i32.add (local.get $i) (i32.const 1))) (br $next)))\n(i32.const 0)",
    ],
)
def test_a_valid_long_form_body_is_untouched(functions: dict, body: str) -> None:
    out = preprocess(body, functions)
    assert out.notes == () and out.sites == ()
    # only the macros expand: no call is rewritten, no status appended
    assert "$__watt_tmp" not in out.body and not out.body.endswith("(i32.const 0) (i32.const 0)")


@pytest.mark.parametrize(
    "body",
    [
        "(set $x 0)\n(i32.const 0)",  # invented syntax stays an error
        "(+ 1 2)\n(i32.const 0)",
        '(argv 0 "a literal")',
        "(resv 5)",
    ],
)
def test_ambiguous_forms_stay_errors(runtime: Runtime, body: str) -> None:
    with pytest.raises(CompileError):
        runtime.run(body, granted=PURE)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '(answer (http.get "http://x/" "" ""))',
            'http.get takes 1 operand(s) (url); 3 given: write (http.get "http://x/")',
        ),
        (
            "(resv (str.concat (arg 0)))",
            "str.concat takes 2 operand(s) (a b); 1 given: write (str.concat a b)",
        ),
        (
            '(answer (str.split (str.trim (arg 0)) " " (str.len (arg 0)) 0))',  # seen from the 1.5B
            'str.split takes 2 operand(s) (s sep); 4 given: write (str.split (str.trim (arg 0)) " ")',
        ),
        ('(answer (kv.set "k" "v"))', "answer: kv.set gives no value to answer"),
    ],
)
def test_clear_errors_for_calls_that_cannot_mean_anything(
    runtime: Runtime, body: str, message: str
) -> None:
    with pytest.raises(CompileError, match=re.escape(message)):
        runtime.run(body, ["a"], granted=PURE)


def test_an_empty_program_answer_is_only_a_result(runtime: Runtime) -> None:
    reply = format_action(WatCall('(answer "")', ()))
    events, model = _run([reply, 'ToolCall::Response("""none""")'], runtime)
    assert len(model.requests) == 2 and events[-1].source is AnswerSource.MODEL


def test_an_invented_function_is_a_link_error_naming_what_exists(runtime: Runtime) -> None:
    with pytest.raises(LinkError, match=r"unknown import \$str.count_vowels; str offers: len"):
        runtime.run("(resv (str.count_vowels (arg 0)))", ["a"], granted=PURE)


def test_an_ungranted_function_is_a_link_error(runtime: Runtime) -> None:
    with pytest.raises(LinkError, match="needs capability 'http'"):
        runtime.run('(resv (http.get "https://example.org/"))', granted=PURE)


@pytest.mark.parametrize(
    ("body", "failure"),
    [
        ('(resv (json.get (arg 0) "user.name"))', "line 1: json.get failed: ENOENT"),
        (
            '(local $d i32)\n(local.set $d (arg 0))\n\n(resv (json.get $d "user.name"))',
            "line 4: json.get failed: ENOENT",
        ),
        (
            "(resv (arg 3))",
            "line 1: sys.argv failed: EBOUND (argument 3 requested, 1 given: put the value",
        ),
        ('(kv.del "nope")', "line 1: kv.del failed: ENOENT"),
    ],
)
def test_a_failed_call_names_its_line_and_function(
    runtime: Runtime, body: str, failure: str
) -> None:
    result = runtime.run(body, [DOC], granted=PURE)
    assert not result.ok
    assert result.failure.startswith(failure), result.failure


def test_the_failure_line_counts_from_the_catalog_file(runtime: Runtime) -> None:
    result = runtime.run('(resv (json.get (arg 0) "x"))', ["{}"], granted=PURE, line_offset=20)
    assert result.failure.startswith("line 21: json.get failed: ENOENT")


@pytest.mark.parametrize(
    "body",
    [
        "(; (call $ai.assist (arg 0) (arg 0) (i32.const 0)) ;)\n(resv (arg 0))",
        ";; (call $ai.assist (arg 0) (arg 0) (i32.const 0))\n(resv (arg 0))",
        '(resv "(call $ai.assist x)")',
    ],
)
def test_calls_in_comments_and_strings_need_no_grant(runtime: Runtime, body: str) -> None:
    assert runtime.run(body, ["a"], granted={"sys"}).ok


def test_deep_nesting_is_a_compile_error_not_a_recursion_error(runtime: Runtime) -> None:
    body = "(block " * 5000 + ")" * 5000 + "\n(i32.const 0)"
    with pytest.raises(CompileError, match="nesting deeper than"):
        runtime.run(body)


def test_answer_is_byte_exact_and_a_result(runtime: Runtime) -> None:
    text = 'a "quoted" ) ``` fence\nand (parens) \\ backslash'
    result = runtime.run('(answer (arg 0))\n(resv "never")', [text], granted=PURE)
    assert result.ok and result.answer == text and result.results == [text]


# ---- the loop -------------------------------------------------------------------------------


def _run(replies: list[str], runtime: Runtime) -> tuple[list, ScriptedModel]:
    model = ScriptedModel(replies)
    catalog, _ = Catalog.load([Catalog.shipped_dir()])
    events = list(
        run_task("t", model=model, runtime=runtime, catalog=catalog, system_prompt="S",
                 settings=LoopSettings(granted=PURE))
    )  # fmt: skip
    return events, model


def test_a_program_answer_ends_the_task_without_another_model_call(runtime: Runtime) -> None:
    text = 'this "is" (the) phrase in reverse'
    phrase = text[::-1]
    reply = format_action(WatCall("(answer (str.reverse (arg 0)))", (text,)))
    events, model = _run([reply], runtime)
    response = events[-1]
    assert isinstance(response, ResponseEvent)
    assert (
        response.text == phrase
        and response.source is AnswerSource.PROGRAM
        and not response.unverified
    )
    assert len(model.requests) == 1
    assert [e.answer for e in events if isinstance(e, ToolResult)] == [phrase]


def test_a_failed_answer_program_is_a_failed_observation(runtime: Runtime) -> None:
    reply = format_action(WatCall('(answer (json.get (arg 0) "a.b"))', ("{}",)))
    events, model = _run([reply, 'ToolCall::Response("""none""")'], runtime)
    told = model.requests[1][-1].content
    assert told.startswith(
        "[Observation (step 1)] Execution FAILED: line 1: json.get failed: ENOENT"
    )
    assert "Nothing below is an answer" in told
    assert isinstance(events[-1], ResponseEvent) and events[-1].source is AnswerSource.MODEL


def test_rewrites_reach_the_observation(runtime: Runtime) -> None:
    reply = format_action(WatCall("(argv 0 $x)\n(resv (str.upper $x))", ("a",)))
    _, model = _run([reply, 'ToolCall::Response("""A""")'], runtime)
    told = model.requests[1][-1].content
    assert "Rewritten: line 2: read the operand $x of str.upper as (local.get $x)" in told


def test_shipped_catalog_bodies_keep_their_meaning(runtime: Runtime, tmp_path: Path) -> None:
    catalog, errors = Catalog.load([Catalog.shipped_dir()])
    assert not errors
    for program in catalog:
        out = preprocess(program.body, runtime.functions)
        assert not any("read (" in n or "read the operand" in n for n in out.notes), (
            program.name,
            out.notes,
        )
