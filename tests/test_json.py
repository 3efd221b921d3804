"""The json capability: table tests of path parsing and lookup, then the host functions via WAT."""

from __future__ import annotations

from typing import Any

import pytest

from capabilities.jsonpath import JsonCapability, json_path_get, parse_doc, parse_path, render
from rt.codes import Err
from rt.host import GuestError

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
    ["a..b", "a.", ".", "..a", "a[", "a[x]", "a[1", "a]", "a[0]b", "[0]name", "a.[0]", "[]", "[1.5]", '["open]'],
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
    ["missing", "a.missing", "a.b[3]", "a.b[-4]", "a.b.c", "a[0]", "a.b[2].c.d", "items.x", "empty.k"],
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


@pytest.mark.parametrize("text", ["", "{", "{'a': 1}", "[1,]", "nope", "{\"a\":1} x", "[" * 5000, "1" * 5000])
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
