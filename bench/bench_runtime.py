"""Runtime overhead, as ratios measured in one run (no timed assertions anywhere).

    python bench/bench_runtime.py

1. A cached run through Watt's API against raw wasmtime-py (instantiate_pre(...).instantiate
   plus the call, on a fresh Store with the same limits) on the same module: trivial body
   (target <= 1.5x) and a body making 100 host calls (target <= 1.2x).
2. Cold preprocess + compile of a 60-line body (target <= 10 ms).
3. Disk cache: a new process's first run of a program already on disk against one with an
   empty cache, compile step only (target >= 5x less).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import wasmtime  # noqa: E402

from capabilities.strings import StrCapability  # noqa: E402
from capabilities.sys import SysCapability  # noqa: E402
from rt.engine import Runtime, _functype  # noqa: E402
from rt.host import HostFunction  # noqa: E402
from rt.limits import Limits  # noqa: E402

TRIVIAL = "(i32.const 0)"
HOST_CALLS = """(local $i i32)
(loop $l
  (drop (call $b.nop (local.get $i)))
  (local.set $i (i32.add (local.get $i) (i32.const 1)))
  (br_if $l (i32.lt_u (local.get $i) (i32.const 100))))
(i32.const 0)"""


def _nop(ctx: object, x: int) -> int:
    return 0


NOP = HostFunction("b", "nop", ("i32",), ("i32",), _nop, "returns 0")


def best_of(fn, n: int, rounds: int = 5) -> float:
    """Median over rounds of the mean time of n calls (seconds per call)."""
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n)
    return statistics.median(samples)


def raw_runner(runtime: Runtime, body: str):
    prepared = runtime.prepare(body)
    engine = runtime.engine
    linker = wasmtime.Linker(engine)
    for f in [*SysCapability().functions(), NOP]:
        linker.define_func(
            f.namespace,
            f.name,
            _functype(f),
            lambda *a, _f=f: 0 if len(_f.results) == 1 else (0, 0) if _f.results else None,
        )
    module = wasmtime.Module(engine, prepared.assembled.wat)
    pre = linker.instantiate_pre(module)
    lim = runtime.limits

    def run() -> None:
        store = wasmtime.Store(engine)
        store.set_limits(
            memory_size=lim.memory_bytes,
            table_elements=lim.table_elements,
            instances=1,
            tables=1,
            memories=1,
        )
        store.set_fuel(lim.fuel)
        store.set_epoch_deadline(1)
        inst = pre.instantiate(store)
        inst.exports(store)["run"](store)

    return run


def cached_runs(runtime: Runtime) -> None:
    for label, body, n, target in (
        ("trivial body", TRIVIAL, 2000, 1.5),
        ("100 host calls", HOST_CALLS, 200, 1.2),
    ):
        runtime.run(body)
        raw = raw_runner(runtime, body)
        for _ in range(50):
            raw()
            runtime.run(body)
        t_raw = best_of(raw, n)
        t_watt = best_of(lambda b=body: runtime.run(b), n)
        print(
            f"   {label:<15} raw {t_raw * 1e6:8.1f} us  watt {t_watt * 1e6:8.1f} us  ratio {t_watt / t_raw:.2f}x (target <= {target}x)"
        )


def sixty_line_body(seed: int) -> str:
    lines = ["(argv 0 $text)", "(local $n i32) (local $e i32) (local $acc i32) (local $out i32)"]
    for i in range(28):
        lines.append(f'(call $str.len "line {seed}-{i}") (local.set $e) (local.set $n)')
        lines.append("(local.set $acc (i32.add (local.get $acc) (local.get $n)))")
    lines += [
        "(call $str.from_i32 (local.get $acc)) (local.set $e) (local.set $out)",
        "(check $e)",
        "(resv $out)",
        "(i32.const 0)",
    ]
    return "\n".join(lines)


def child(cache_dir: str, body: str) -> None:
    runtime = Runtime(
        [*SysCapability().functions(), *StrCapability().functions()], cache_dir=Path(cache_dir)
    )
    result = runtime.run(body, ["x"])
    print(json.dumps({"compile_ms": result.timings.compile_ms, "cache": result.cache}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], Path(sys.argv[3]).read_text())
        return
    runtime = Runtime([*SysCapability().functions(), NOP], limits=Limits())
    print("1. cached run overhead: Watt API vs raw wasmtime-py (same module, same limits)")
    cached_runs(runtime)
    # Watt runs wasm on a worker thread (SECURITY.md rule 3). On a multi-core VM the worker
    # often wakes on another, idle core; that migration is most of the trivial body's cost.
    # Pinned to one core, the same code shows the hand-off alone.
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        every = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(every)})
        print(f"   the same, pinned to CPU {min(every)} (no cross-core wake-ups):")
        cached_runs(
            Runtime([*SysCapability().functions(), NOP], limits=Limits())
        )  # its worker inherits the pin
        os.sched_setaffinity(0, every)

    print("2. cold preprocess + compile of a 60-line body")
    rt2 = Runtime([*SysCapability().functions(), *StrCapability().functions()])
    rt2.prepare(sixty_line_body(-1))  # warm the compiler itself
    times = []
    for seed in range(15):
        body = sixty_line_body(seed)
        t0 = time.perf_counter()
        rt2.prepare(body)
        times.append((time.perf_counter() - t0) * 1000)
    print(
        f"   median {statistics.median(times):.2f} ms over {len(times)} distinct bodies (target <= 10 ms)"
    )

    print("3. disk cache: compile step of a new process's first run")
    with tempfile.TemporaryDirectory() as tmp:
        body_file = Path(tmp) / "body.wat"
        body_file.write_text(sixty_line_body(99))
        cache = Path(tmp) / "cache"

        def fresh(empty: bool) -> float:
            if empty:
                for f in cache.glob("*.cwasm"):
                    f.unlink()
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(cache), str(body_file)],
                capture_output=True,
                text=True,
                check=True,
            )
            return json.loads(out.stdout)["compile_ms"]

        cold = statistics.median(fresh(True) for _ in range(5))
        fresh(True)
        warm = statistics.median(fresh(False) for _ in range(5))
        print(
            f"   empty cache {cold:.2f} ms  on disk {warm:.2f} ms  ratio {cold / warm:.1f}x less (target >= 5x)"
        )


if __name__ == "__main__":
    main()
