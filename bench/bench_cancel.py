"""Seconds from Ctrl-C (a real SIGINT) to the exit of a ``watt`` process that waits on a silent
server on 127.0.0.1, in ``http.get``, in ``ai.assist`` and in a model call (target < 0.5 s,
exit 130). The tests assert only a generous bound; this prints the figures.

    python bench/bench_cancel.py [--trials N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_cancel import SilentServer, interrupt_child  # noqa: E402


def _case(name: str, trials: int) -> list[float]:
    figures = []
    for _ in range(trials):
        server = SilentServer()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp)
                endpoint = {"WATT_BASE_URL": f"http://127.0.0.1:{server.port}/v1"}
                endpoint |= {"WATT_MODEL": "slow", "WATT_GRAMMAR": "off"}
                if name == "http.get":
                    program = root / "slow.wat"
                    url = f"http://127.0.0.1:{server.port}/slow"
                    program.write_text(f'(resv (http.get "{url}"))\n(i32.const 0)\n')
                    grant = f"127.0.0.1:{server.port}"
                    args = ["run", str(program), "--allow-domain", grant, "--timeout", "60"]
                    env: dict[str, str] = {}
                elif name == "ai.assist":
                    program = root / "assist.wat"
                    program.write_text('(resv (ai.assist "text" "summarise" 0))\n(i32.const 0)\n')
                    args, env = ["run", str(program), "--timeout", "60"], endpoint
                else:
                    args, env = ["ask", "hello"], endpoint
                code, seconds, err = interrupt_child(args, server, root / "home", env)
                if code != 130:
                    raise SystemExit(f"{name}: exit {code}: {err.strip()[-300:]}")
                figures.append(seconds)
        finally:
            server.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    trials = parser.parse_args().trials
    for name in ("http.get", "ai.assist", "model call"):
        figures = _case(name, trials)
        print(
            f"{name:<11} exit 130 after SIGINT: median {statistics.median(figures):.3f} s,"
            f" max {max(figures):.3f} s ({trials} trials; target < 0.5 s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
