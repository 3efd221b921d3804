"""The arr capability: index checks, then every host function and error code via WAT."""

from __future__ import annotations

import pytest

from capabilities.arrays import ArrCapability, check_index
from capabilities.strings import StrCapability
from capabilities.sys import SysCapability
from rt.codes import Err
from rt.engine import Runtime
from rt.host import GuestError
from rt.limits import Limits


@pytest.mark.parametrize(("length", "idx"), [(1, 0), (3, 2), (3, 0)])
def test_check_index_accepts(length: int, idx: int) -> None:
    assert check_index([b"x"] * length, idx) == idx


@pytest.mark.parametrize(
    ("length", "idx"), [(0, 0), (3, 3), (3, -1), (3, -(2**31)), (3, 2**31 - 1)]
)
def test_check_index_rejects(length: int, idx: int) -> None:
    with pytest.raises(GuestError) as info:
        check_index([b"x"] * length, idx)
    assert info.value.code is Err.EBOUND


def test_docs_are_short() -> None:
    cap = ArrCapability()
    assert len(cap.summary.split()) <= 15
    assert [f.name for f in cap.functions()] == ["new", "push", "get", "set", "len"]
    assert all(len(f.doc.split()) <= 15 for f in cap.functions())


# ---- host functions, driven by WAT programs ------------------------------------------------


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    functions = [
        *SysCapability().functions(),
        *ArrCapability().functions(),
        *StrCapability().functions(),
    ]
    return Runtime(functions=functions, limits=Limits())


PRELUDE = """
(local $h i32) (local $e i32) (local $p i32) (local $n i32)
(call $arr.new) (local.set $e) (local.set $h) (check $e)
"""


def test_push_get_set_len(runtime: Runtime) -> None:
    body = (
        PRELUDE
        + """
(argv 0 $a)
(call $arr.push (local.get $h) (local.get $a)) (local.set $e) (check $e)
(call $arr.push (local.get $h) "日本") (local.set $e) (check $e)
(call $arr.push (local.get $h) "😀") (local.set $e) (check $e)
(call $arr.set (local.get $h) (i32.const 1) "ñ") (local.set $e) (check $e)
(call $arr.get (local.get $h) (i32.const 0)) (local.set $e) (local.set $p) (check $e)
(resv $p)
(call $arr.get (local.get $h) (i32.const 1)) (local.set $e) (local.set $p) (check $e)
(resv $p)
(call $arr.len (local.get $h)) (local.set $e) (local.set $n) (check $e)
(call $str.from_i32 (local.get $n)) (local.set $e) (local.set $p) (check $e)
(resv $p)
(call $str.join (local.get $h) "+") (local.set $e) (local.set $p) (check $e)
(resv $p)
(i32.const 0)
"""
    )
    result = runtime.run(body, ["é"])
    assert (result.status, result.results) == (0, ["é", "ñ", "3", "é+ñ+😀"]), result.debug


def test_push_copies_the_bytes(runtime: Runtime) -> None:
    """An item is a copy: changing guest memory afterwards does not change it."""
    body = (
        PRELUDE
        + """
(argv 0 $a)
(call $arr.push (local.get $h) (local.get $a)) (local.set $e) (check $e)
(i32.store8 (i32.add (local.get $a) (i32.const 4)) (i32.const 90))
(resv $a)
(call $arr.get (local.get $h) (i32.const 0)) (local.set $e) (local.set $p) (check $e)
(resv $p)
(i32.const 0)
"""
    )
    assert runtime.run(body, ["abc"]).results == ["Zbc", "abc"]


def test_handles_are_shared_with_str(runtime: Runtime) -> None:
    body = (
        PRELUDE
        + """
(call $str.split "x y z" "") (local.set $e) (local.set $h) (check $e)
(call $arr.push (local.get $h) "w") (local.set $e) (check $e)
(call $arr.len (local.get $h)) (local.set $e) (local.set $n) (check $e)
(local.get $n)
"""
    )
    assert runtime.run(body).status == 4


def test_new_arrays_are_empty_and_distinct(runtime: Runtime) -> None:
    body = (
        PRELUDE
        + """
(local $h2 i32)
(call $arr.push (local.get $h) "a") (local.set $e) (check $e)
(call $arr.new) (local.set $e) (local.set $h2) (check $e)
(if (i32.eq (local.get $h) (local.get $h2)) (then (return (i32.const 99))))
(call $arr.len (local.get $h2)) (local.set $e) (local.set $n) (check $e)
(local.get $n)
"""
    )
    assert runtime.run(body).status == 0


TWO = (
    PRELUDE
    + """
(call $arr.push (local.get $h) "a") (local.set $e) (check $e)
(call $arr.push (local.get $h) "b") (local.set $e) (check $e)
"""
)


@pytest.mark.parametrize(
    ("tail", "code"),
    [
        ("(call $arr.get (local.get $h) (i32.const 2)) (local.set $e) (drop)", Err.EBOUND),
        ("(call $arr.get (local.get $h) (i32.const -1)) (local.set $e) (drop)", Err.EBOUND),
        (
            "(call $arr.get (local.get $h) (i32.const -2147483648)) (local.set $e) (drop)",
            Err.EBOUND,
        ),
        ('(call $arr.set (local.get $h) (i32.const 2) "x") (local.set $e)', Err.EBOUND),
        ('(call $arr.set (local.get $h) (i32.const -1) "x") (local.set $e)', Err.EBOUND),
        ("(call $arr.get (i32.const 9) (i32.const 0)) (local.set $e) (drop)", Err.EBOUND),
        ("(call $arr.get (i32.const -1) (i32.const 0)) (local.set $e) (drop)", Err.EBOUND),
        ('(call $arr.push (i32.const 9) "x") (local.set $e)', Err.EBOUND),
        ('(call $arr.set (i32.const 9) (i32.const 0) "x") (local.set $e)', Err.EBOUND),
        ("(call $arr.len (i32.const 9)) (local.set $e) (drop)", Err.EBOUND),
        ("(call $arr.push (local.get $h) (i32.const -1)) (local.set $e)", Err.ETRFM),
        ("(call $arr.push (local.get $h) (i32.const 65534)) (local.set $e)", Err.ETRFM),
        ("(call $arr.set (local.get $h) (i32.const 0) (i32.const -1)) (local.set $e)", Err.ETRFM),
    ],
)
def test_errors(runtime: Runtime, tail: str, code: Err) -> None:
    result = runtime.run(TWO + tail + "\n(local.get $e)")
    assert result.status == code
    assert result.debug and result.debug[0].startswith("arr.")
    assert "internal error" not in result.debug[0]


def test_failed_push_and_set_leave_the_array_unchanged(runtime: Runtime) -> None:
    body = (
        TWO
        + """
(call $arr.push (local.get $h) (i32.const -1)) (drop)
(call $arr.set (local.get $h) (i32.const 0) (i32.const -1)) (drop)
(call $str.join (local.get $h) ",") (local.set $e) (local.set $p) (check $e)
(resv $p)
(i32.const 0)
"""
    )
    assert runtime.run(body).results == ["a,b"]


def test_push_past_the_item_quota_is_enomem(runtime: Runtime) -> None:
    # str.split charges 100,000 items (RunContext.max_array_items); one more push is refused
    body = (
        PRELUDE
        + """
(argv 0 $a)
(call $str.split (local.get $a) "") (local.set $e) (local.set $h) (check $e)
(call $arr.push (local.get $h) "one too many") (local.set $e)
(local.get $e)
"""
    )
    result = runtime.run(body, ["x " * 100_000])
    assert result.status == Err.ENOMEM
    assert "array items" in result.debug[0]


def test_new_past_the_array_quota_is_enomem(runtime: Runtime) -> None:
    body = """
(local $e i32) (local $i i32)
(block $done
  (loop $again
    (call $arr.new) (local.set $e) (drop)
    (br_if $done (local.get $e))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $again)))
(if (i32.ne (local.get $i) (i32.const 1024)) (then (return (i32.const 99))))
(local.get $e)
"""
    assert runtime.run(body).status == Err.ENOMEM
