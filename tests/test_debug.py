"""The debug capability: lines reach the run's debug output; a bad pointer ends the run (ETRFM)."""

from __future__ import annotations

import pytest

from capabilities.sys import DebugCapability, SysCapability
from rt.codes import Err
from rt.engine import Runtime
from rt.limits import Limits


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    return Runtime(
        functions=[*SysCapability().functions(), *DebugCapability().functions()],
        limits=Limits(max_debug_lines=5),
    )


def test_functions_are_infallible() -> None:
    cap = DebugCapability()
    assert len(cap.summary.split()) <= 15
    for f in cap.functions():
        assert (f.fallible, f.params, f.results) == (False, ("i32",), ())
        assert len(f.doc.split()) <= 15


def test_log_and_i32(runtime: Runtime) -> None:
    body = """
(argv 0 $a)
(call $debug.log (local.get $a))
(call $debug.log "literal ✓")
(call $debug.log "")
(call $debug.i32 (i32.const 42))
(call $debug.i32 (i32.const -7))
(i32.const 0)
"""
    result = runtime.run(body, ["héllo 日本 😀"])
    assert (result.status, result.debug) == (0, ["héllo 日本 😀", "literal ✓", "", "42", "-7"])


@pytest.mark.parametrize(
    ("ptr", "shown"), [("-1", "4294967295"), ("65534", "65534"), ("1000000", "1000000")]
)
def test_bad_pointer_ends_the_run_with_etrfm(runtime: Runtime, ptr: str, shown: str) -> None:
    result = runtime.run(f"(call $debug.log (i32.const {ptr}))\n(i32.const 0)")
    assert result.status == Err.ETRFM
    assert len(result.debug) == 1 and f"pointer {shown} is outside memory" in result.debug[0]
    assert result.failure.startswith("debug.log failed: ETRFM")


def test_debug_line_cap_drops_extra_lines(runtime: Runtime) -> None:
    body = """
(local $i i32)
(loop $again
  (call $debug.i32 (local.get $i))
  (local.set $i (i32.add (local.get $i) (i32.const 1)))
  (br_if $again (i32.lt_u (local.get $i) (i32.const 8))))
(i32.const 0)
"""
    result = runtime.run(body)
    assert result.debug == ["0", "1", "2", "3", "4", "(3 more debug lines dropped)"]
