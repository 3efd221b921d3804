"""rt.nesting.check_depth: a table of JSON and TOML texts, then 100,000-deep inputs."""

from __future__ import annotations

import json
import sys

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from rt.nesting import MAX_DEPTH, TooDeep, check_depth

DEEP = 100_000


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("", 0),
        ("1", 0),
        ("[]", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('["[[[", "{{{"]', 1),  # brackets inside strings do not count
        ('["\\"[[[", "\\\\", "]]]"]', 1),  # escaped quotes and backslashes keep the strings right
        ('"\\\\"[[[', 3),  # an escaped backslash ends the string before the brackets
        ("]]][[", 0),  # the parser stops at a stray closer: what follows cannot nest it
        ('"[[[[', 0),  # an unterminated string hides nothing the parser would see
    ],
)
def test_json_depths(text: str, depth: int) -> None:
    check_depth(text, depth)
    if depth:
        with pytest.raises(TooDeep):
            check_depth(text, depth - 1)


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("a = 1", 0),
        ("[t]\na = [1, [2]]", 2),
        ("[[t]]\na = { b = { c = [] } }", 3),
        ("a = \"[[[[\" # [[[[\nb = '[[[['", 0),  # strings and comments do not count
        ('a = """\n[[[[\n\\"""[[[["""\nb = [1]', 1),  # multi-line basic string with an escape
        ("a = '''\n[[[[\n'''\nb = [[1]]", 2),  # multi-line literal string
        ('a = "x\\"[[" # ]]\nb = [[[1]]]', 3),
    ],
)
def test_toml_depths(text: str, depth: int) -> None:
    tomllib.loads(text)  # each is valid TOML
    check_depth(text, depth, syntax="toml")
    if depth:
        with pytest.raises(TooDeep):
            check_depth(text, depth - 1, syntax="toml")


@pytest.mark.parametrize(
    ("text", "syntax"),
    [
        ("[" * DEEP + "]" * DEEP, "json"),
        ('{"a":' * DEEP + "1" + "}" * DEEP, "json"),
        ("[" * DEEP, "json"),
        ("x = 1\ny = " + "[" * DEEP + "]" * DEEP, "toml"),
        ("x = 1\ny = " + "{ a = " * DEEP + "1" + " }" * DEEP, "toml"),
    ],
)
def test_deep_inputs_raise_too_deep(text: str, syntax: str) -> None:
    with pytest.raises(TooDeep) as info:
        check_depth(text, syntax=syntax)  # type: ignore[arg-type]
    line = 2 if syntax == "toml" else 1
    assert str(info.value) == f"nested deeper than {MAX_DEPTH} levels (line {line})"
    assert (info.value.max_depth, info.value.line) == (MAX_DEPTH, line)


def test_the_parsers_do_recurse() -> None:
    # why the check exists: both parsers fail on these inputs with RecursionError
    with pytest.raises(RecursionError):
        json.loads("[" * DEEP + "]" * DEEP)
    with pytest.raises(RecursionError):
        tomllib.loads("a = " + "[" * DEEP + "]" * DEEP)


def test_bytes_and_lines() -> None:
    check_depth(b'{"a": "\xc3\xa9[[["}', 1)
    with pytest.raises(TooDeep) as info:
        check_depth(b'{\n"a":\n[[[1]]]}', 3)
    assert info.value.line == 3
    with pytest.raises(TooDeep) as info:
        check_depth("a = 1\n\n# [[[[\nb = [[1]]", 1, syntax="toml")
    assert info.value.line == 4


def test_a_large_shallow_document_passes() -> None:
    doc = json.dumps(
        [{"name": f"item {i}", "tags": ["a", "b["], "s": 'x"y'} for i in range(20_000)]
    )
    check_depth(doc, 3)
    with pytest.raises(TooDeep):
        check_depth(doc, 2)
