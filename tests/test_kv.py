"""The kv capability: the memory backend, then every function and error code through WAT."""

from __future__ import annotations

import pytest

from capabilities.arrays import ArrCapability
from capabilities.kv import KvBackend, KvCapability, MemoryKv
from capabilities.sys import SysCapability
from rt.codes import Err
from rt.engine import RunResult, Runtime
from rt.errors import SessionError
from rt.limits import Limits

GET = """
(argv 0 $k)
(local $v i32) (local $e i32)
(call $kv.get (local.get $k)) (local.set $e) (local.set $v)
(check $e)
(resv $v)
(i32.const 0)
"""
SET = "(argv 0 $k) (argv 1 $v) (call $kv.set (local.get $k) (local.get $v))"
DELETE = "(argv 0 $k) (call $kv.del (local.get $k))"
KEYS = """
(local $h i32) (local $e i32) (local $n i32) (local $i i32) (local $s i32)
(call $kv.keys) (local.set $e) (local.set $h)
(check $e)
(call $arr.len (local.get $h)) (local.set $e) (local.set $n)
(check $e)
(block $done
  (loop $next
    (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
    (call $arr.get (local.get $h) (local.get $i)) (local.set $e) (local.set $s)
    (check $e)
    (resv $s)
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $next)))
(i32.const 0)
"""
# A buffer of one invalid UTF-8 byte (0xff) written by hand at address 65000.
BAD_UTF8 = (
    "(i32.store (i32.const 65000) (i32.const 1)) (i32.store8 (i32.const 65004) (i32.const 255))"
)


def runtime(cap: KvCapability) -> Runtime:
    fns = [*SysCapability().functions(), *ArrCapability().functions(), *cap.functions()]
    return Runtime(functions=fns, limits=Limits())


def run(rt: Runtime, body: str, *args: str) -> RunResult:
    return rt.run(body, args=list(args))


LOCALS = "(local $v i32) (local $e i32) (local $i i32)\n"
# Every byte 0-255 written by hand at 65004, behind its length prefix at 65000.
FILL_ALL_BYTES = """
(i32.store (i32.const 65000) (i32.const 256))
(block $done
  (loop $fill
    (br_if $done (i32.ge_u (local.get $i) (i32.const 256)))
    (i32.store8 (i32.add (i32.const 65004) (local.get $i)) (local.get $i))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $fill)))
"""
SET_ALL_BYTES = LOCALS + FILL_ALL_BYTES + '(call $kv.set "bin" (i32.const 65000))'
# Reads "bin" back: 0 if it is exactly bytes 0-255, 99 for a wrong length, else 100 + the
# first wrong index.
CHECK_BYTES = """
(call $kv.get "bin") (local.set $e) (local.set $v)
(check $e)
(if (i32.ne (i32.load (local.get $v)) (i32.const 256)) (then (return (i32.const 99))))
(local.set $i (i32.const 0))
(block $done
  (loop $cmp
    (br_if $done (i32.ge_u (local.get $i) (i32.const 256)))
    (if (i32.ne (i32.load8_u (i32.add (i32.add (local.get $v) (i32.const 4)) (local.get $i)))
                (local.get $i))
      (then (return (i32.add (i32.const 100) (local.get $i)))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $cmp)))
(i32.const 0)
"""
CHECK_ALL_BYTES = LOCALS + CHECK_BYTES


class FailingKv(MemoryKv):
    def get_bytes(self, key: str) -> bytes | None:
        raise SessionError("database is locked at /home/someone/.watt/sessions.db")


# ---- backend ---------------------------------------------------------------------------------


def test_memory_backend() -> None:
    kv = MemoryKv({"a": "1", "raw": b"\xff\x00"})
    assert isinstance(kv, KvBackend)
    assert kv.get_bytes("a") == b"1" and kv.get_bytes("b") is None
    assert kv.get_bytes("raw") == b"\xff\x00"
    kv.set_bytes("b", b"")
    assert kv.get_bytes("b") == b""
    assert sorted(kv.keys()) == ["a", "b", "raw"]
    assert kv.delete("b") is True
    assert kv.delete("b") is False
    assert kv.delete("raw") is True
    assert kv.keys() == ["a"]


def test_memory_backend_text_view() -> None:
    kv = MemoryKv()
    kv.set("t", "日本")
    assert kv.get_bytes("t") == "日本".encode() and kv.get("t") == "日本"
    kv.set_bytes("b", b"ok\xff")
    assert kv.get("b") == "ok\\xff"  # shown, not lost
    assert kv.get("missing") is None


def test_signatures_and_docs() -> None:
    fns = KvCapability(MemoryKv()).functions()
    assert [f.signature() for f in fns] == [
        "kv.get (key) -> (ptr err)",
        "kv.set (key value) -> (err)",
        "kv.del (key) -> (err)",
        "kv.keys () -> (arr err)",
    ]
    assert all(len(f.doc.split()) <= 15 for f in fns)


# ---- through WAT -----------------------------------------------------------------------------


def test_set_get_del_keys() -> None:
    backend = MemoryKv()
    rt = runtime(KvCapability(backend))
    assert run(rt, SET, "name", "Ada").status == 0
    assert run(rt, SET, "ünï", "日本語").status == 0
    assert run(rt, SET, "empty", "").status == 0
    assert run(rt, SET, "name", "Grace").status == 0  # overwrite
    assert run(rt, GET, "name").results == ["Grace"]
    assert run(rt, GET, "ünï").results == ["日本語"]
    assert run(rt, GET, "empty").results == [""]
    assert run(rt, KEYS).results == ["empty", "name", "ünï"]
    assert run(rt, DELETE, "name").status == 0
    assert run(rt, KEYS).results == ["empty", "ünï"]
    assert backend.get("ünï") == "日本語"


def test_state_lives_in_the_backend() -> None:
    backend = MemoryKv()
    assert run(runtime(KvCapability(backend)), SET, "k", "v").status == 0
    assert run(runtime(KvCapability(backend)), GET, "k").results == [
        "v"
    ]  # a later run/session object


def test_missing_key_is_enoent() -> None:
    rt = runtime(KvCapability(MemoryKv()))
    for body in (GET, DELETE):
        result = run(rt, body, "nope")
        assert (result.status, result.results) == (Err.ENOENT, [])
        assert "no key 'nope'" in result.debug[0]
    assert run(rt, KEYS).results == []


def test_empty_key_is_ebound() -> None:
    rt = runtime(KvCapability(MemoryKv()))
    for body, args in [(GET, [""]), (SET, ["", "v"]), (DELETE, [""])]:
        assert run(rt, body, *args).status == Err.EBOUND


def test_key_and_value_size_quotas() -> None:
    rt = runtime(KvCapability(MemoryKv(), max_key_bytes=4, max_value_bytes=6))
    assert run(rt, SET, "abcd", "123456").status == 0
    assert run(rt, SET, "abcde", "1").status == Err.ENOMEM
    assert run(rt, GET, "abcde").status == Err.ENOMEM
    assert run(rt, SET, "ab", "é" * 4).status == Err.ENOMEM  # 8 bytes, 4 code points
    result = run(rt, SET, "ab", "1234567")
    assert result.status == Err.ENOMEM
    assert "value of 7 bytes exceeds the 6-byte limit" in result.debug[0]
    assert "key of 5 bytes exceeds the 4-byte limit" in run(rt, SET, "abcde", "1").debug[0]
    assert run(rt, KEYS).results == ["abcd"]


def test_oversized_value_is_refused_from_its_length_prefix() -> None:
    # the prefix claims 1 GB inside a 16 MiB memory: refused without reading guest memory
    claim = (
        '(i32.store (i32.const 65000) (i32.const 1000000000)) (call $kv.set "k" (i32.const 65000))'
    )
    backend = MemoryKv()
    result = run(runtime(KvCapability(backend)), claim)
    assert result.status == Err.ETRFM and "past the end of memory" in result.debug[0]
    # a claim that fits in memory but not in the quota is ENOMEM, and nothing is stored
    claim = '(i32.store (i32.const 100) (i32.const 65000)) (call $kv.set "k" (i32.const 100))'
    result = run(runtime(KvCapability(backend, max_value_bytes=1000)), claim)
    assert result.status == Err.ENOMEM and "value of 65000 bytes" in result.debug[0]
    assert backend.keys() == []


def test_key_count_quota() -> None:
    rt = runtime(KvCapability(MemoryKv(), max_keys=2))
    assert run(rt, SET, "a", "1").status == 0
    assert run(rt, SET, "b", "2").status == 0
    assert run(rt, SET, "c", "3").status == Err.ENOMEM
    assert run(rt, SET, "a", "one").status == 0  # overwriting at the cap is fine
    assert run(rt, DELETE, "b").status == 0
    assert run(rt, SET, "c", "3").status == 0
    assert run(rt, KEYS).results == ["a", "c"]


def test_calls_per_run_quota() -> None:
    body = """
    (local $e i32)
    (call $kv.set "a" "1") (local.set $e) (check $e)
    (call $kv.set "b" "2") (local.set $e) (check $e)
    (call $kv.set "c" "3") (local.set $e) (check $e)
    (i32.const 0)
    """
    backend = MemoryKv()
    rt = runtime(KvCapability(backend, max_calls_per_run=2))
    result = run(rt, body)
    assert result.status == Err.ENOMEM
    assert "more than 2 kv calls" in result.debug[0]
    assert sorted(backend.keys()) == ["a", "b"]
    assert run(rt, GET, "a").results == ["1"]  # counted per run


def test_bad_pointer_and_bad_utf8_key_are_etrfm() -> None:
    rt = runtime(KvCapability(MemoryKv()))
    bad_ptr = "(local $e i32) (call $kv.get (i32.const -16)) (local.set $e) (drop) (local.get $e)"
    assert run(rt, bad_ptr).status == Err.ETRFM
    bad_key = BAD_UTF8 + ' (call $kv.set (i32.const 65000) "v")'
    result = run(rt, bad_key)
    assert result.status == Err.ETRFM
    assert "key is not valid UTF-8" in result.debug[0]
    assert run(rt, KEYS).results == []


def test_a_value_need_not_be_utf8() -> None:
    backend = MemoryKv()
    rt = runtime(KvCapability(backend))
    assert run(rt, BAD_UTF8 + ' (call $kv.set "k" (i32.const 65000))').status == 0
    assert backend.get_bytes("k") == b"\xff"


def test_every_byte_round_trips_in_one_run() -> None:
    backend = MemoryKv()
    body = SET_ALL_BYTES + " (local.set $e) (check $e)\n" + CHECK_BYTES
    result = run(runtime(KvCapability(backend)), body)
    assert result.status == 0, result.debug
    assert backend.get_bytes("bin") == bytes(range(256))


def test_every_byte_round_trips_across_runs() -> None:
    backend = MemoryKv()
    assert run(runtime(KvCapability(backend)), SET_ALL_BYTES).status == 0
    assert run(runtime(KvCapability(backend)), CHECK_ALL_BYTES).status == 0
    backend.set_bytes("bin", bytes(range(255, -1, -1)))  # the check does look at the bytes
    assert run(runtime(KvCapability(backend)), CHECK_ALL_BYTES).status == 100


def test_backend_failure_is_eremote() -> None:
    result = run(runtime(KvCapability(FailingKv())), GET, "k")
    assert result.status == Err.EREMOTE
    assert result.debug == ["kv.get: EREMOTE: kv storage failed (SessionError)"]


@pytest.mark.parametrize("body", [SET, DELETE])
def test_backend_failure_in_set_and_del(body: str) -> None:
    class Broken(MemoryKv):
        def get_bytes(self, key: str) -> bytes | None:
            raise SessionError("disk I/O error")

        def delete(self, key: str) -> bool:
            raise SessionError("disk I/O error")

    assert run(runtime(KvCapability(Broken())), body, "k", "v").status == Err.EREMOTE
