"""Per-call overhead of a host call, as a ratio measured in one run.

    python bench/bench_capabilities.py

Watt's `str.len` on a 10-byte string (pointer checks, memory read, UTF-8 decode, the error
code) against a call into an empty host function through raw wasmtime-py, each measured as
(time of a 1000-call loop - time of the same loop with no calls) / 1000. Target <= 3x.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import wasmtime  # noqa: E402

from capabilities.strings import StrCapability  # noqa: E402
from capabilities.sys import SysCapability  # noqa: E402
from rt.engine import Runtime, get_engine  # noqa: E402

N = 1000


def loop_body(call: str) -> str:
    return f"""(local $i i32) (local $s i32)
(local.set $s "0123456789")
(loop $l
  {call}
  (local.set $i (i32.add (local.get $i) (i32.const 1)))
  (br_if $l (i32.lt_u (local.get $i) (i32.const {N}))))
(i32.const 0)"""


WATT_CALL = "(call $str.len (local.get $s)) (drop) (drop)"
RAW_MODULE = """(module
  (import "h" "empty" (func $empty (param i32) (result i32 i32)))
  (memory (export "mem.tape") 1)
  (func (export "run") (result i32) (local $i i32)
    (loop $l
      {call}
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const {n}))))
    (i32.const 0)))"""


def timed(fn, rounds: int = 7) -> float:
    fn()
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def raw_loop(with_call: bool):
    engine = get_engine()
    linker = wasmtime.Linker(engine)
    ty = wasmtime.FuncType(
        [wasmtime.ValType.i32()], [wasmtime.ValType.i32(), wasmtime.ValType.i32()]
    )
    linker.define_func("h", "empty", ty, lambda p: (0, 0))
    call = "(call $empty (i32.const 8)) (drop) (drop)" if with_call else ""
    pre = linker.instantiate_pre(wasmtime.Module(engine, RAW_MODULE.format(call=call, n=N)))

    def run() -> None:
        store = wasmtime.Store(engine)
        store.set_fuel(10**9)
        store.set_epoch_deadline(1)
        pre.instantiate(store).exports(store)["run"](store)

    return run


def main() -> None:
    runtime = Runtime([*SysCapability().functions(), *StrCapability().functions()])
    watt_calls = loop_body(WATT_CALL)
    watt_empty = loop_body("")
    t_watt = (timed(lambda: runtime.run(watt_calls)) - timed(lambda: runtime.run(watt_empty))) / N
    t_raw = (timed(raw_loop(True)) - timed(raw_loop(False))) / N
    print("per host call (loop of 1000, empty loop subtracted)")
    print(f"   raw wasmtime-py, empty host function  {t_raw * 1e6:6.2f} us")
    print(f"   watt str.len on a 10-byte string      {t_watt * 1e6:6.2f} us")
    print(f"   ratio {t_watt / t_raw:.2f}x (target <= 3x)")


if __name__ == "__main__":
    main()
