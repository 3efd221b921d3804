from __future__ import annotations

import _thread
import threading

import pytest

from capabilities.sys import SysCapability
from rt.cache import MAGIC
from rt.codes import Err
from rt.engine import Runtime
from rt.errors import (
    CompileError,
    FuelExhausted,
    Interrupted,
    LinkError,
    MemoryExhausted,
    SourceTooLarge,
    Timeout,
    Trap,
)
from rt.host import GuestError, HostFunction, RunContext
from rt.limits import Limits


def _echo(ctx: RunContext, ptr: int) -> tuple[int, int]:
    return ctx.alloc_bytes(ctx.read_bytes(ptr)), 0


def _boom(ctx: RunContext) -> int:
    raise RuntimeError("host bug")


def _deny(ctx: RunContext) -> int:
    raise GuestError(Err.EACCESS, "not for you")


TEST_FUNCS = [
    HostFunction("t", "echo", ("i32",), ("i32", "i32"), _echo, "copy a string"),
    HostFunction("t", "boom", (), ("i32",), _boom, "a broken host function"),
    HostFunction("t", "deny", (), ("i32",), _deny, "always EACCESS"),
]


@pytest.fixture
def runtime(tmp_path) -> Runtime:
    return Runtime([*SysCapability().functions(), *TEST_FUNCS], cache_dir=tmp_path / "cache")


def test_args_results_and_strings(runtime: Runtime) -> None:
    res = runtime.run(
        '(argv 0 $a)\n(argv 1 $b)\n(resv $b)\n(resv $a)\n(resv "é\\n")\n(i32.const 0)',
        ["x", "日本"],
    )
    assert res.ok and res.status_name == "SUCCESS"
    assert res.results == ["日本", "x", "é\n"]
    assert res.fuel_used > 0
    assert res.cache == "compiled"
    again = runtime.run(
        '(argv 0 $a)\n(argv 1 $b)\n(resv $b)\n(resv $a)\n(resv "é\\n")\n(i32.const 0)', ["y", "z"]
    )
    assert again.cache == "memory" and again.results == ["z", "y", "é\n"]


def test_status_names(runtime: Runtime) -> None:
    assert runtime.run("(i32.const 4)").status_name == "ENOENT"
    assert runtime.run("(i32.const 99)").status_name == ""  # outside the table: no name
    res = runtime.run("(argv 3 $a)\n(i32.const 0)")
    assert res.status == Err.EBOUND
    assert any("argument 3" in line for line in res.debug)


def test_host_error_codes_and_bugs_never_crash(runtime: Runtime) -> None:
    assert runtime.run("(call $t.deny)").status == Err.EACCESS
    res = runtime.run("(call $t.boom)")
    assert res.status == Err.ETRFM
    assert any("internal error" in line for line in res.debug)


@pytest.mark.parametrize("ptr", ["-16", "-1", "0x7fffffff", "65533", "1048576"])
def test_bad_pointers_are_error_codes(runtime: Runtime, ptr: str) -> None:
    res = runtime.run(f"(call $sys.resv (i32.const {ptr}))")
    assert res.status == Err.ETRFM
    res = runtime.run(
        f"(local $e i32) (call $t.echo (i32.const {ptr})) (local.set $e) (drop) (local.get $e)"
    )
    assert res.status == Err.ETRFM


def test_overlong_length_prefix(runtime: Runtime) -> None:
    body = "(i32.store (i32.const 100) (i32.const 0x7fffffff)) (call $sys.resv (i32.const 100))"
    assert runtime.run(body).status == Err.ETRFM


def test_result_size_cap(runtime: Runtime) -> None:
    big = "x" * 1000
    res = runtime.run(
        f'(loop $l (call $sys.resv "{big}") (i32.eqz) (br_if $l)) (i32.const 0)',
        limits=Limits(max_result_bytes=5000),
    )
    assert res.status == 0 and len(res.results) == 5
    assert any("exceed" in line for line in res.debug)


@pytest.mark.parametrize(
    ("source", "exc", "fragment"),
    [
        ("", CompileError, "empty program"),
        ("(i32.const 0", CompileError, "never closed"),
        ('(resv "abc)\n(i32.const 0)', CompileError, "unterminated string"),
        ("(i32.const 0)\x00", CompileError, "NUL"),
        ("(i32.const 0)\n  (i32.bogus)", CompileError, "line 2"),
        ("(i32.add)", CompileError, "type mismatch"),
        (
            "(br $nowhere)\n(i32.const 0)",
            CompileError,
            "unknown label: failed to find name `$nowhere`",
        ),
        ("(call $nope)", CompileError, "unknown func"),
        ("(call $nope.thing)", LinkError, "unknown import $nope.thing"),
        ("(call $sys.nothing)", LinkError, "sys offers: argc, argv, resv"),
    ],
)
def test_compile_and_link_errors(runtime: Runtime, source: str, exc: type, fragment: str) -> None:
    with pytest.raises(exc) as info:
        runtime.run(source)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_compile_error_maps_to_user_line_with_offset(runtime: Runtime) -> None:
    with pytest.raises(CompileError) as info:
        runtime.run("(argv 0 $x)\n(br $nope)", line_offset=10)
    assert info.value.line == 12
    assert "br $nope" in (info.value.source_line or "")
    assert info.value.message.startswith("unknown label"), "the message, not wasmtime's source echo"


def test_validation_error_hides_the_assembled_binary_offset(runtime: Runtime) -> None:
    with pytest.raises(CompileError) as info:
        runtime.run("(i32.add)")
    assert "offset" not in str(info.value)


def test_ungranted_capability_is_a_link_error(runtime: Runtime) -> None:
    with pytest.raises(LinkError) as info:
        runtime.run("(call $t.deny)", granted={"sys"})
    assert (
        "'t'" in str(info.value)
        and "not granted" in str(info.value)
        and "granted: sys" in str(info.value)
    )


def test_oversized_source_refused_before_compiling(runtime: Runtime) -> None:
    with pytest.raises(SourceTooLarge):
        runtime.run(";;" + "x" * 300_000 + "\n(i32.const 0)")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        # more characters than the limit: refused from len() alone, nothing encoded
        (";;" + "x" * 1000, "program is at least 1002 bytes; the limit is 1000 bytes"),
        # few enough characters, too many UTF-8 bytes: measured by encoding (at most 4 KB here)
        (";;" + "é" * 500 + "\n(i32.const 0)", "program is 1016 bytes; the limit is 1000 bytes"),
    ],
)
def test_source_size_is_counted_in_utf8_bytes(source: str, message: str) -> None:
    runtime = Runtime(SysCapability().functions(), limits=Limits(max_source_bytes=1000))
    with pytest.raises(SourceTooLarge) as info:
        runtime.prepare(source)
    assert str(info.value) == message
    assert runtime.run(";;" + "é" * 490 + "\n(i32.const 0)").status == 0  # 996 bytes fit
    assert runtime.run(";;" + "x" * 984 + "\n(i32.const 0)").status == 0  # 1000 bytes fit


def test_infinite_loop_runs_out_of_fuel(runtime: Runtime) -> None:
    with pytest.raises(FuelExhausted) as info:
        runtime.run("(loop $l (br $l)) (i32.const 0)", limits=Limits(fuel=100_000))
    assert info.value.partial is not None and info.value.partial.fuel_used == 100_000


def test_wall_clock_stops_a_loop(runtime: Runtime) -> None:
    with pytest.raises(Timeout):
        runtime.run("(loop $l (br $l)) (i32.const 0)", limits=Limits(fuel=10**15, timeout_s=0.3))
    assert runtime.run("(i32.const 0)").ok  # the runtime carries on


def test_interrupt_from_another_thread(runtime: Runtime) -> None:
    timer = threading.Timer(0.2, runtime.interrupt)
    timer.start()
    with pytest.raises(Interrupted):
        runtime.run("(loop $l (br $l)) (i32.const 0)", limits=Limits(fuel=10**15, timeout_s=30))
    assert runtime.run("(i32.const 0)").ok


def test_ctrl_c_in_the_waiting_thread(runtime: Runtime) -> None:
    timer = threading.Timer(0.2, _thread.interrupt_main)
    timer.start()
    with pytest.raises(Interrupted):
        runtime.run("(loop $l (br $l)) (i32.const 0)", limits=Limits(fuel=10**15, timeout_s=30))
    assert runtime.run("(i32.const 0)").ok


START_LOOP = """(module
  (memory (export "mem.tape") 1)
  (func $spin (loop $l (br $l)))
  (start $spin)
  (func (export "run") (result i32) (i32.const 0)))"""


def test_start_function_that_loops_is_bounded(runtime: Runtime) -> None:
    with pytest.raises(FuelExhausted):
        runtime.run(START_LOOP, limits=Limits(fuel=100_000))


def test_memory_grow_bomb_returns_minus_one(runtime: Runtime) -> None:
    body = "(local $n i32)\n(loop $l (local.set $n (memory.grow (i32.const 16))) (br_if $l (i32.ne (local.get $n) (i32.const -1))))\n(i32.const 0)"
    res = runtime.run(body, limits=Limits(memory_bytes=1 << 20))
    assert res.ok


def test_huge_declared_memory(runtime: Runtime) -> None:
    module = '(module (memory (export "mem.tape") 1000) (func (export "run") (result i32) (i32.const 0)))'
    with pytest.raises(MemoryExhausted):
        runtime.run(module, limits=Limits(memory_bytes=1 << 20))


def test_host_allocation_past_memory_limit_is_enomem(runtime: Runtime) -> None:
    big = "y" * 200_000
    res = runtime.run("(argv 0 $a)\n(i32.const 0)", [big], limits=Limits(memory_bytes=128 * 1024))
    assert res.status == Err.ENOMEM


def test_deep_recursion_is_a_trap() -> None:
    module = '(module (memory (export "mem.tape") 1) (func $f (call $f)) (func (export "run") (result i32) (call $f) (i32.const 0)))'
    rt = Runtime(SysCapability().functions())
    with pytest.raises(Trap) as info:
        rt.run(module)
    assert "stack overflow" in str(info.value)


@pytest.mark.parametrize(
    "module",
    [
        '(module (memory (export "mem.tape") 1 1 shared) (func (export "run") (result i32) (i32.const 0)))',
        '(module (memory (export "mem.tape") i64 1) (func (export "run") (result i32) (i32.const 0)))',
        '(module (memory (export "mem.tape") 1) (memory 1) (func (export "run") (result i32) (i32.const 0)))',
        '(module (memory (export "mem.tape") 1) (func (export "run") (result i32) (drop (v128.const i32x4 0 0 0 0)) (i32.const 0)))',
    ],
)
def test_disabled_proposals(runtime: Runtime, module: str) -> None:
    with pytest.raises(CompileError):
        runtime.run(module)


def test_whole_module_checks_imports_and_export(runtime: Runtime) -> None:
    ok = '(module (import "sys" "resv" (func $r (param i32) (result i32))) (memory (export "memory") 1)\n (data (i32.const 0) "\\02\\00\\00\\00hi")\n (func (export "run") (result i32) (call $r (i32.const 0))))'
    res = runtime.run(ok)
    assert res.ok and res.results == ["hi"]
    with pytest.raises(LinkError):
        runtime.run(
            '(module (import "t" "deny" (func (result i32))) (func (export "run") (result i32) (i32.const 0)))',
            granted={"sys"},
        )
    with pytest.raises(LinkError):
        runtime.run('(module (func (export "main") (result i32) (i32.const 0)))')


def test_whole_module_import_in_a_comment_needs_no_grant(runtime: Runtime) -> None:
    module = (
        '(module ;; (import "ai" "assist" (func (param i32 i32 i32) (result i32 i32)))\n'
        ' (; (import "http" "get" (func)) ;)\n'
        ' (func (export "run") (result i32) (i32.const 0)))'
    )
    assert runtime.run(module, granted={"sys"}).ok


def test_disk_cache_survives_a_new_runtime_and_rejects_corruption(tmp_path) -> None:
    cache = tmp_path / "c"
    body = '(resv "cached")\n(i32.const 0)'
    first = Runtime(SysCapability().functions(), cache_dir=cache)
    assert first.run(body).cache == "compiled"
    second = Runtime(SysCapability().functions(), cache_dir=cache)
    res = second.run(body)
    assert res.cache == "disk" and res.results == ["cached"]
    files = list(cache.glob("*.cwasm"))
    assert len(files) == 1
    for damage in (b"", MAGIC + b"0" * 10, files[0].read_bytes()[:-7], b"not a module at all" * 10):
        files[0].write_bytes(damage)
        fresh = Runtime(SysCapability().functions(), cache_dir=cache)
        res = fresh.run(body)
        assert res.cache == "compiled" and res.results == ["cached"]
        assert fresh.modules.rejected == 1
    # a valid entry written under another key is not trusted either
    other = cache / ("0" * 64 + ".cwasm")
    other.write_bytes(files[0].read_bytes())
    assert fresh.modules._load("0" * 64) is None
