"""`watt serve` on loopback with a scripted model: figures, no timed assertions anywhere.

    python bench/bench_serve.py [--sessions 50] [--turns 5] [--requests 2000]

1. SESSIONS concurrent sessions, TURNS turns each (a catalog step, then the answer: two model
   calls per turn): throughput, p50 and p99 time per turn above the model's own time (the
   client's POST-to-last-event time less the turn's model_ms; target p99 <= 20 ms), the
   first turn of a session (which creates it) apart from the rest, the server's RSS, and
   every stream checked against the journal: 0 lost, 0 duplicated, seqs in order.
2. POST /v1/programs/upper with 8 concurrent keep-alive clients (target >= 500 requests/s on
   2 cores), beside `watt run upper` as a process per run and beside a direct in-process run
   (``agent.app.run_program`` per call, and ``Runtime.run`` on parts built once).

The server runs in a child process (this file with ``--child``), so its RSS is its own.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TOKEN = "bench-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STEP = 'ToolCall::Catalog("upper", "bench")'
ANSWER = 'ToolCall::Response("""BENCH""")'


def responder(messages: list[Any]) -> str:
    """A catalog step, then the answer once the observation is in."""
    return ANSWER if "[Observation" in messages[-1].content else STEP


def child(port_file: str, max_running: int) -> None:
    from agent.config import load_settings
    from agent.models.scripted import ScriptedModel
    from server.config import ServeConfig
    from server.run import serve

    config = ServeConfig(load_settings({}), TOKEN, port=0, max_running=max_running)

    def announce(_host: str, port: int, _state: Any) -> None:
        Path(port_file).write_text(str(port))

    serve(config, model=ScriptedModel(responder), announce=announce)


def rss_kib(pid: int) -> tuple[int, int]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def parse(block: str) -> dict[str, Any] | None:
    data = [line[6:] for line in block.split("\n") if line.startswith("data: ")]
    return json.loads("\n".join(data)) if data else None


async def one_turn(client: Any, session: str, task: str) -> tuple[float, list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    async with client.stream(
        "POST", f"/v1/sessions/{session}/turns", json={"task": task}, headers=AUTH
    ) as response:
        buffer = ""
        async for text in response.aiter_text():
            buffer += text
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                row = parse(block)
                if row is not None:
                    rows.append(row)
    return time.perf_counter() - t0, rows


async def sessions_part(url: str, sessions: int, turns: int) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=sessions + 10, max_keepalive_connections=sessions + 10)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def session(i: int) -> list[tuple[float, list[dict[str, Any]]]]:
            return [await one_turn(client, f"bench{i}", f"turn {t}") for t in range(turns)]

        t0 = time.perf_counter()
        results = await asyncio.gather(*(session(i) for i in range(sessions)))
        wall = time.perf_counter() - t0
    return {"wall": wall, "results": results}


def sequential(port: int, turns: int) -> list[float]:
    """One session, one turn at a time, from a light client (http.client, keep-alive): the
    server's latency with nothing queued."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {**AUTH, "Content-Type": "application/json"}
    out = []
    try:
        for t in range(turns + 1):
            t0 = time.perf_counter()
            conn.request("POST", "/v1/sessions/solo/turns", json.dumps({"task": f"t{t}"}), headers)
            text = conn.getresponse().read().decode()
            seconds = time.perf_counter() - t0
            rows = [r for r in map(parse, text.split("\n\n")) if r is not None]
            model_ms = sum(r.get("model_ms", 0.0) for r in rows if r["kind"] == "thinking")
            if t:  # the first one opens the session
                out.append(seconds * 1000 - model_ms)
    finally:
        conn.close()
    return out


def direct_ask(turns: int) -> list[float]:
    """The same turns through ``agent.app.ask`` in this process, parts opened once."""
    from agent.app import ask, open_parts
    from agent.config import load_settings
    from agent.models.scripted import ScriptedModel

    out = []
    with open_parts(load_settings({}), model=ScriptedModel(responder), session="direct") as parts:
        for t in range(turns + 1):
            t0 = time.perf_counter()
            model_ms = 0.0
            for event in ask(parts, f"turn {t}"):
                model_ms += getattr(event, "model_ms", 0.0)
            if t:
                out.append((time.perf_counter() - t0) * 1000 - model_ms)
    return out


def check_streams(home: Path, results: list[Any]) -> dict[str, int]:
    """Each session's streams against its journal: lost, duplicated, out-of-order rows."""
    from agent.store.journal import Reader
    from agent.store.sessions import SessionStore

    store = SessionStore(home)
    lost = duplicated = disorder = rows_total = 0
    for i, turns in enumerate(results):
        name = f"bench{i}"
        streamed = [row for _t, rows in turns for row in rows]
        with Reader(store.path(name), name) as reader:
            journal = [e.to_dict() for e in reader.entries()]
        rows_total += len(journal)
        seqs = [r["seq"] for r in streamed]
        duplicated += len(seqs) - len(set(seqs))
        disorder += sum(1 for a, b in zip(seqs, seqs[1:], strict=False) if b <= a)
        by_seq = {r["seq"]: r for r in streamed}
        lost += sum(1 for r in journal if by_seq.get(r["seq"]) != r)
    return {"rows": rows_total, "lost": lost, "duplicated": duplicated, "out_of_order": disorder}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def overheads(results: list[Any]) -> tuple[list[float], list[float], float]:
    first, later, model = [], [], 0.0
    for turns in results:
        for index, (seconds, rows) in enumerate(turns):
            model_ms = sum(r.get("model_ms", 0.0) for r in rows if r["kind"] == "thinking")
            model += model_ms
            (first if index == 0 else later).append(seconds * 1000 - model_ms)
    return first, later, model


def program_clients(port: int, clients: int, requests: int) -> float:
    body = json.dumps({"args": ["bench"]})
    headers = {**AUTH, "Content-Type": "application/json"}
    per = requests // clients
    errors: list[str] = []

    def work() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(per):
            conn.request("POST", "/v1/programs/upper", body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200 or b'"BENCH"' not in data:
                errors.append(f"{response.status} {data[:100]!r}")
        conn.close()

    threads = [threading.Thread(target=work) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"program requests failed: {errors[:3]}")
    return per * clients / wall


def cli_runs(runs: int, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    for _ in range(runs):
        subprocess.run(
            [sys.executable, "-m", "cli.main", "run", "upper", "bench"], env=env, check=True,
            stdout=subprocess.DEVNULL, cwd=Path(__file__).resolve().parent.parent,
        )  # fmt: skip
    return runs / (time.perf_counter() - t0)


def in_process(runs: int) -> tuple[float, float]:
    from agent.app import load_program, open_parts, run_program
    from agent.config import load_settings

    settings = load_settings({})
    source = load_program(settings, "upper")
    t0 = time.perf_counter()
    for _ in range(max(1, runs // 20)):
        run_program(settings, source, ["bench"])
    per_call = max(1, runs // 20) / (time.perf_counter() - t0)
    with open_parts(settings, use_session=False) as parts:
        parts.runtime.run(source.body, ["bench"], granted=parts.granted)
        t0 = time.perf_counter()
        for _ in range(runs):
            parts.runtime.run(source.body, ["bench"], granted=parts.granted)
        reused = runs / (time.perf_counter() - t0)
    return per_call, reused


def start_server(home: Path, max_running: int) -> tuple[subprocess.Popen[bytes], int]:
    port_file = home / "port"
    env = {**os.environ, "WATT_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", str(port_file), "--max-running", str(max_running)],
        env=env,
    )
    deadline = time.monotonic() + 60
    while not port_file.exists() or not port_file.read_text():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("the server did not start")
        time.sleep(0.05)
    return proc, int(port_file.read_text())


def report(args: argparse.Namespace, home: Path) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load} (other work shares them)")
    proc, port = start_server(home, max(64, args.sessions))
    url = f"http://127.0.0.1:{port}"
    try:
        idle_rss, _ = rss_kib(proc.pid)
        solo = sequential(port, 30)
        direct = direct_ask(30)
        print("== one session, one turn at a time (30 turns)")
        print(f"through the server: p50 {percentile(solo, 0.5):.1f} ms, p99 "
              f"{percentile(solo, 0.99):.1f} ms above the model; agent.app.ask in-process: p50 "
              f"{percentile(direct, 0.5):.1f} ms (the server adds "
              f"{percentile(solo, 0.5) - percentile(direct, 0.5):.1f} ms)")  # fmt: skip
        part = asyncio.run(sessions_part(url, args.sessions, args.turns))
        rss, peak = rss_kib(proc.pid)
        checked = check_streams(home, part["results"])
        first, later, model_ms = overheads(part["results"])
        every = first + later
        n = len(every)
        print(f"== {args.sessions} concurrent sessions x {args.turns} turns (2 model calls each)")
        print(f"turns: {n} in {part['wall']:.2f} s = {n / part['wall']:.1f} turns/s")
        print(f"time per turn above the model's own ({model_ms / n:.2f} ms/turn): "
              f"p50 {percentile(every, 0.5):.1f} ms, p99 {percentile(every, 0.99):.1f} ms "
              f"(target p99 <= 20 ms)")  # fmt: skip
        print(f"  first turn of a session (creates it): p50 {percentile(first, 0.5):.1f} ms, "
              f"p99 {percentile(first, 0.99):.1f} ms")  # fmt: skip
        print(f"  later turns: p50 {percentile(later, 0.5):.1f} ms, "
              f"p99 {percentile(later, 0.99):.1f} ms")  # fmt: skip
        print(f"server RSS: {idle_rss / 1024:.0f} MiB idle, {rss / 1024:.0f} MiB after, "
              f"peak {peak / 1024:.0f} MiB")  # fmt: skip
        print(f"streams vs journal: {checked['rows']} rows, {checked['lost']} lost, "
              f"{checked['duplicated']} duplicated, {checked['out_of_order']} out of order")  # fmt: skip
        program_clients(port, 8, 200)  # warm
        rps = program_clients(port, 8, args.requests)
    finally:
        proc.terminate()
        proc.wait(30)
    env = {**os.environ, "WATT_HOME": str(home)}
    cli = cli_runs(5, env)
    per_call, reused = in_process(args.requests)
    print("== POST /v1/programs/upper")
    print(f"server, 8 concurrent clients: {rps:.0f} requests/s (target >= 500)")
    print(f"watt run upper, a process per run: {cli:.1f} runs/s ({rps / cli:.0f}x fewer)")
    print(f"in-process agent.app.run_program per call: {per_call:.1f} runs/s")
    print(f"in-process Runtime.run, parts built once: {reused:.0f} runs/s "
          f"(the server reaches {rps / reused:.0%} of it)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--child", metavar="PORT_FILE")
    parser.add_argument("--max-running", type=int, default=64)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.max_running)
        return
    with tempfile.TemporaryDirectory(prefix="watt-bench-serve-") as tmp:
        os.environ["WATT_HOME"] = tmp
        report(args, Path(tmp))


if __name__ == "__main__":
    main()
