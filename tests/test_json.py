"""The json capability: table tests of path parsing and lookup, then the host functions via WAT."""

from __future__ import annotations

from typing import Any

import pytest

from capabilities.jsonpath import (
    MAX_DEPTH,
    JsonCapability,
    json_path_get,
    parse_doc,
    parse_path,
    render,
)
from capabilities.sys import SysCapability
from rt.codes import Err
from rt.engine import Runtime
from rt.host import GuestError
from rt.limits import Limits

DOC: Any = {
    "a": {"b": [10, 20, {"c": "deep"}]},
    "items": [{"name": "first", "id": 1}, {"name": "second", "id": 2}],
    "café": {"日本": "語", "emoji😀": [True, None]},
    "key.with dots": {"x": 1.5},
    "0": "zero-key",
    "empty": {},
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", []),
        ("a", ["a"]),
        ("a.b[2].c", ["a", "b", 2, "c"]),
        ("[0].name", [0, "name"]),
        ("[0][1]", [0, 1]),
        ("[-1]", [-1]),
        ("items.0.id", ["items", "0", "id"]),
        ("café.日本", ["café", "日本"]),
        ('["key.with dots"].x', ["key.with dots", "x"]),
        ('a["b"]', ["a", "b"]),
        ('["say \\"hi\\""]', ['say "hi"']),
        ("$", []),
        ("$.a.b", ["a", "b"]),
        ("$[0]", [0]),
        (".a", ["a"]),
        (".[0]", [0]),
        ("with space.x", ["with space", "x"]),
    ],
)
def test_parse_path(path: str, expected: list[Any]) -> None:
    assert parse_path(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "a..b",
        "a.",
        ".",
        "..a",
        "a[",
        "a[x]",
        "a[1",
        "a]",
        "a[0]b",
        "[0]name",
        "a.[0]",
        "[]",
        "[1.5]",
        '["open]',
    ],
)
def test_parse_path_rejects(path: str) -> None:
    with pytest.raises(GuestError) as info:
        parse_path(path)
    assert info.value.code is Err.EPARSE


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", DOC),
        ("a.b[2].c", "deep"),
        ("a.b[0]", 10),
        ("a.b[-1]", {"c": "deep"}),
        ("items[1].name", "second"),
        ("items.1.id", 2),
        ("café.日本", "語"),
        ("café.emoji😀", [True, None]),
        ("café.emoji😀[1]", None),
        ('["key.with dots"].x', 1.5),
        ("0", "zero-key"),
        ("empty", {}),
    ],
)
def test_json_path_get(path: str, expected: Any) -> None:
    assert json_path_get(DOC, path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "missing",
        "a.missing",
        "a.b[3]",
        "a.b[-4]",
        "a.b.c",
        "a[0]",
        "a.b[2].c.d",
        "items.x",
        "empty.k",
    ],
)
def test_json_path_get_missing(path: str) -> None:
    with pytest.raises(GuestError) as info:
        json_path_get(DOC, path)
    assert info.value.code is Err.ENOENT


def test_json_path_get_on_top_level_array() -> None:
    assert json_path_get([{"name": "x"}], "[0].name") == "x"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("raw text", "raw text"),
        ("日本語", "日本語"),
        ("", ""),
        (1, "1"),
        (1.5, "1.5"),
        (True, "true"),
        (None, "null"),
        ([1, "é", None], '[1,"é",null]'),
        ({"k": "日本", "n": {"x": []}}, '{"k":"日本","n":{"x":[]}}'),
    ],
)
def test_render(value: Any, expected: str) -> None:
    assert render(value) == expected


@pytest.mark.parametrize(
    "text", ["", "{", "{'a': 1}", "[1,]", "nope", '{"a":1} x', "[" * 5000, "1" * 5000]
)
def test_parse_doc_rejects(text: str) -> None:
    with pytest.raises(GuestError) as info:
        parse_doc(text)
    assert info.value.code is Err.EPARSE


def test_parse_doc_ignores_bom() -> None:
    assert parse_doc('\ufeff{"a": 1}') == {"a": 1}


def test_docs_are_short() -> None:
    cap = JsonCapability()
    assert len(cap.summary.split()) <= 15
    for f in cap.functions():
        assert len(f.doc.split()) <= 15, f.name


# ---- host functions, driven by WAT programs ------------------------------------------------


def _runtime(**cap: int) -> Runtime:
    return Runtime(
        functions=[*SysCapability().functions(), *JsonCapability(**cap).functions()],
        limits=Limits(),
    )


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    return _runtime()


GET = """
(argv 0 $doc) (argv 1 $path)
(local $v i32) (local $e i32)
(call $json.get (local.get $doc) (local.get $path)) (local.set $e) (local.set $v)
(check $e)
(resv $v)
(i32.const 0)
"""

SAMPLE = '{"user": {"名前": "José", "tags": ["a", "日本"], "age": 41, "ok": true, "x": null}, "list": [{"name": "😀"}]}'


@pytest.mark.parametrize(
    ("doc", "path", "expected"),
    [
        (SAMPLE, "user.名前", "José"),
        (SAMPLE, "user.tags[1]", "日本"),
        (SAMPLE, "user.tags", '["a","日本"]'),
        (SAMPLE, "user.age", "41"),
        (SAMPLE, "user.ok", "true"),
        (SAMPLE, "user.x", "null"),
        (SAMPLE, "list[0].name", "😀"),
        (SAMPLE, "list[-1]", '{"name":"😀"}'),
        ('[{"name": "first"}]', "[0].name", "first"),
        ('{"a": "line\\nbreak \\"q\\""}', "a", 'line\nbreak "q"'),
        (' {"b": [1, 2.5, {}]} ', "", '{"b":[1,2.5,{}]}'),
        ('"just a string"', "", "just a string"),
    ],
)
def test_get(runtime: Runtime, doc: str, path: str, expected: str) -> None:
    result = runtime.run(GET, [doc, path])
    assert (result.status, result.results) == (0, [expected]), result.debug


@pytest.mark.parametrize(
    ("doc", "path", "code"),
    [
        ("{bad json", "a", Err.EPARSE),
        ('{"a": 1,}', "a", Err.EPARSE),
        ("", "", Err.EPARSE),
        (SAMPLE, "user..age", Err.EPARSE),
        (SAMPLE, "user.tags[one]", Err.EPARSE),
        ("{bad json", "a[", Err.EPARSE),
        (SAMPLE, "user.missing", Err.ENOENT),
        (SAMPLE, "user.tags[2]", Err.ENOENT),
        (SAMPLE, "user.age.x", Err.ENOENT),
        (SAMPLE, "名前", Err.ENOENT),
    ],
)
def test_get_errors(runtime: Runtime, doc: str, path: str, code: Err) -> None:
    result = runtime.run(GET, [doc, path])
    assert result.status == code
    assert result.debug and result.debug[0].startswith("json.get: ")
    assert "internal error" not in result.debug[0]


STATUS = "(local $e i32)\n{call} (local.set $e) (drop)\n(local.get $e)"


@pytest.mark.parametrize(
    "call",
    [
        '(call $json.get (i32.const -1) "a")',
        '(call $json.get "{}" (i32.const -1))',
        "(call $json.quote (i32.const -1))",
    ],
)
def test_bad_pointers_are_etrfm(runtime: Runtime, call: str) -> None:
    assert runtime.run(STATUS.format(call=call)).status == Err.ETRFM


def test_document_size_cap_is_enomem() -> None:
    runtime = _runtime(max_doc_bytes=20)
    assert runtime.run(GET, ['{"a": "small"}', "a"]).results == ["small"]
    result = runtime.run(GET, ['{"a": "' + "x" * 20 + '"}', "a"])
    assert result.status == Err.ENOMEM
    assert "JSON document of 29 bytes exceeds the 20-byte limit" in result.debug[0]


def test_oversized_document_is_refused_from_its_length_prefix() -> None:
    runtime = _runtime(max_doc_bytes=1000)
    claim = "(local $e i32)\n(i32.store (i32.const 100) (i32.const 60000))\n{call} (local.set $e) (drop)\n(local.get $e)"
    for call, what in [
        ('(call $json.get (i32.const 100) "")', "JSON document"),
        ('(call $json.get "{}" (i32.const 100))', "JSON path"),
        ("(call $json.quote (i32.const 100))", "string"),
    ]:
        result = runtime.run(claim.format(call=call))
        assert result.status == Err.ENOMEM
        assert f"{what} of 60000 bytes exceeds the 1000-byte limit" in result.debug[0]
    big = "(local $e i32)\n(i32.store (i32.const 100) (i32.const 1000000000))\n{call} (local.set $e) (drop)\n(local.get $e)"
    result = runtime.run(big.format(call='(call $json.get (i32.const 100) "")'))
    assert result.status == Err.ETRFM  # a 1 GB claim in a 16 MiB memory: never read


DEEP = 100_000


@pytest.mark.parametrize(
    "doc",
    [
        "[" * DEEP + "]" * DEEP,
        '{"a":' * DEEP + "1" + "}" * DEEP,
        '[{"a":' * (DEEP // 2) + "1" + "}]" * (DEEP // 2),
        "[" * DEEP,  # unterminated as well
        '{"ok": "[[[["}, ' + "[" * DEEP,  # brackets in strings do not hide real ones
    ],
)
def test_deep_documents_are_eparse_without_recursion(runtime: Runtime, doc: str) -> None:
    result = runtime.run(GET, [doc, ""])
    assert result.status == Err.EPARSE
    assert result.debug == [
        f"json.get: EPARSE: JSON nested deeper than {MAX_DEPTH} levels (line 1)"
    ]


def test_depth_cap_is_exact_and_ignores_strings(runtime: Runtime) -> None:
    at_cap = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert runtime.run(GET, [at_cap, ""]).results == [at_cap]
    assert runtime.run(GET, ["[" + at_cap + "]", ""]).status == Err.EPARSE
    strings = '["' + "[" * DEEP + '", "\\"{{{{", "\\\\"]'  # brackets, escapes inside strings
    assert runtime.run(GET, [strings, "[2]"]).results == ["\\"]
    assert _runtime(max_depth=2).run(GET, ['{"a": [[1]]}', "a"]).status == Err.EPARSE
    assert _runtime(max_depth=2).run(GET, ['{"a": [1]}', "a"]).results == ["[1]"]


def test_parse_doc_caps_depth() -> None:
    with pytest.raises(GuestError) as info:
        parse_doc("\ufeff" + "[" * DEEP + "]" * DEEP)
    assert info.value.code == Err.EPARSE and "\n" not in info.value.detail
    assert parse_doc("[[1]]", max_depth=2) == [[1]]


def test_quote_output_cap_is_enomem() -> None:
    runtime = _runtime(max_doc_bytes=8)
    call = '(call $json.quote "\\n\\n\\n")'  # three newlines quote to 8 bytes: fits
    assert runtime.run(STATUS.format(call=call)).status == 0
    call = '(call $json.quote "\\n\\n\\n\\n")'
    assert runtime.run(STATUS.format(call=call)).status == Err.ENOMEM


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", '"plain"'),
        ('say "hi"\n', '"say \\"hi\\"\\n"'),
        ("日本 😀", '"日本 😀"'),
        ("", '""'),
    ],
)
def test_quote(runtime: Runtime, text: str, expected: str) -> None:
    body = """
(argv 0 $s) (local $q i32) (local $e i32)
(call $json.quote (local.get $s)) (local.set $e) (local.set $q)
(check $e)
(resv $q)
(i32.const 0)
"""
    result = runtime.run(body, [text])
    assert (result.status, result.results) == (0, [expected])


def test_quote_then_get_round_trips(runtime: Runtime) -> None:
    body = """
(argv 0 $s) (local $q i32) (local $v i32) (local $e i32)
(call $json.quote (local.get $s)) (local.set $e) (local.set $q)
(check $e)
(call $json.get (local.get $q) "") (local.set $e) (local.set $v)
(check $e)
(resv $v)
(i32.const 0)
"""
    text = 'tab\tquote" back\\ é日😀 \u0001'
    assert runtime.run(body, [text]).results == [text]
