"""Whole-process wall time of the CLI against a bare interpreter, measured in one run.

    python bench/bench_cli.py

`watt --help` (target <= 150 ms above `python -c pass`) and `watt run upper x` with the
program already in the disk cache (target <= 250 ms above it). Medians of 10 runs each.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

RUNS = 10


def wall(cmd: list[str], env: dict[str, str]) -> float:
    samples = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        subprocess.run(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
        )
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def main() -> None:
    watt = shutil.which("watt")
    base = [watt] if watt else [sys.executable, "-m", "cli.main"]
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "WATT_HOME": home}
        subprocess.run([*base, "run", "upper", "x"], env=env, check=True, stdout=subprocess.DEVNULL)
        bare = wall([sys.executable, "-c", "pass"], env)
        helps = wall([*base, "--help"], env)
        runs = wall([*base, "run", "upper", "x"], env)
    print(f"python -c pass         {bare:7.1f} ms")
    print(f"watt --help            {helps:7.1f} ms  (+{helps - bare:.1f} ms, target <= +150 ms)")
    print(f"watt run upper (disk)  {runs:7.1f} ms  (+{runs - bare:.1f} ms, target <= +250 ms)")


if __name__ == "__main__":
    main()
