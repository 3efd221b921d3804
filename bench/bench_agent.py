"""The agent loop's own overhead per step, the journal's cost, the history read and `watt log`
(prints, never asserts).

    python bench/bench_agent.py [N] [--rounds R] [--baseline REV]

1. Overhead. One turn = ToolCall::Catalog("upper", "x"), then ToolCall::Response(...), through
   ``agent.app.ask`` with a ``ScriptedModel`` under a temporary WATT_HOME. The catalog program
   is compiled before timing (``prewarm``), so the tool step is a cached run. Overhead per turn
   = wall time of the turn - time inside ``model.complete``; a turn is two steps. Measured with
   the journal (a session: every event, message and step committed as it is made) and with no
   session, in R alternating rounds of N turns (after 20 warm-up turns each), so both see the
   same machine; medians are reported with their ratio. The per-turn commit that came before
   the journal is gone from the code: ``--baseline REV`` (e.g. the commit before the journal)
   measures it too: one probe script, run in a new process per round on REV's code (from
   ``git archive REV``), on this code with a session and on this code with none, in rotating
   order; it reports wall time less the model's, and the process's CPU time, which waiting
   for a busy CPU does not inflate. The in-process breakdown wraps the loop's parts with
   timers (each wrapper adds about a microsecond):

   - prompt:  building the system prompt (``ask`` rebuilds it every turn)
   - history: compacting earlier turns into messages
   - parse:   ``parse_reply`` on both replies
   - run:     ``Runtime.run`` (preprocess/compile cache hit, instantiate, run)
   - record:  the journal's writes (turn start and end, events, messages, steps)
   - rest:    everything else (events, observations, bookkeeping)

   Journal bytes per step for this turn: the stored size of its ``events`` rows (data, hash,
   run id, time, kind), and the database's growth over the measured turns (every table and
   index, in pages), each divided by the steps.
2. The history read (``compact_history``, what the model sees of earlier turns) at turn 30,
   210, 1,000 and 10,000 of one session, median of 200 reads; the session is grown with
   direct inserts of a recorded turn's rows (hash chain included). Next to it, the read as it
   was before the journal (every turn, then each one's steps).
3. ``watt log`` over a session of 10,000 steps, in a new process: wall time, median of 3,
   next to ``watt log`` of an empty session (the process start and imports), and ``--verify``
   over the whole chain.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import agent.app as app  # noqa: E402
import agent.loop as loop  # noqa: E402
from agent.config import load_settings  # noqa: E402
from agent.events import ResponseEvent, ToolResult  # noqa: E402
from agent.models.scripted import ScriptedModel  # noqa: E402
from agent.store.journal import Entry, canonical, chain  # noqa: E402
from agent.store.sessions import Session, SessionStore  # noqa: E402
from agent.store.writer import Turn  # noqa: E402

CALL = 'ToolCall::Catalog("upper", "x")'
ANSWER = 'ToolCall::Response("""\nX\n""")'
WARM_UP = 20


class Clock:
    """Accumulates time per label; ``wrap`` returns a timed version of a function."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[label] += time.perf_counter() - t0

        return timed

    def take(self) -> dict[str, float]:
        spent, self.spent = dict(self.spent), defaultdict(float)
        return spent


@contextmanager
def patched(clock: Clock, parts: app.Parts) -> Iterator[None]:
    """Time the loop's parts by wrapping them (restored on exit)."""
    saved: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)
        saved.append((owner, name, original))
        setattr(owner, name, clock.wrap(label, original))

    patch(app, "build_system_prompt", "prompt")
    patch(app, "compact_history", "history")
    patch(loop, "parse_reply", "parse")
    patch(parts.runtime, "run", "run")
    for name in ("__enter__", "record", "add_message", "add_step", "finish"):
        patch(Turn, name, "record")  # no one of them calls another, so nothing counts twice
    try:
        yield
    finally:
        for owner, name, original in reversed(saved):
            if isinstance(owner, type) or owner in (app, loop):
                setattr(owner, name, original)
            else:
                delattr(owner, name)  # the instance attribute shadowed the method


def _responder(messages: list[Any]) -> str:
    last = messages[-1]
    return ANSWER if last.role == "user" and last.content.startswith("[Observation") else CALL


def measure(n: int, use_session: bool) -> tuple[list[float], dict[str, list[float]], float]:
    """Per-turn overhead (ms), per-part times (ms) over n turns after a warm-up, and the
    database's growth per measured step (bytes; 0 with no session)."""
    with tempfile.TemporaryDirectory() as home:
        settings = load_settings(environ={"WATT_HOME": home})
        model = ScriptedModel(_responder)
        clock = Clock()
        model.complete = clock.wrap("model", model.complete)  # type: ignore[method-assign]
        with app.open_parts(settings, model=model, use_session=use_session) as parts:
            errors = app.prewarm(parts)
            if errors:
                raise SystemExit(f"prewarm failed: {errors[0]}")
            overheads: list[float] = []
            parts_ms: dict[str, list[float]] = defaultdict(list)
            size0 = 0
            with patched(clock, parts):
                for i in range(n + WARM_UP):
                    if i == WARM_UP:
                        size0 = _db_bytes(parts.session)
                    clock.take()
                    t0 = time.perf_counter()
                    events = list(app.ask(parts, f"upper-case x ({i})"))
                    wall = time.perf_counter() - t0
                    spent = clock.take()
                    result = next(e for e in events if isinstance(e, ToolResult))
                    if not (isinstance(events[-1], ResponseEvent) and result.cache == "memory"):
                        raise SystemExit(f"unexpected turn: {events[-1]} (cache {result.cache})")
                    if i < WARM_UP:
                        continue
                    overheads.append((wall - spent.get("model", 0.0)) * 1000)
                    timed = 0.0
                    for label in ("prompt", "history", "parse", "run", "record"):
                        parts_ms[label].append(spent.get(label, 0.0) * 1000)
                        timed += spent.get(label, 0.0)
                    parts_ms["rest"].append((wall - spent.get("model", 0.0) - timed) * 1000)
                    parts_ms["model"].append(spent.get("model", 0.0) * 1000)
            growth = (_db_bytes(parts.session) - size0) / (2 * n) if use_session else 0.0
    return overheads, parts_ms, growth


def _db_bytes(session: Session | None) -> int:
    """The database's size in use (pages in the file and the WAL, less free pages)."""
    if session is None or session._conn is None:
        return 0
    conn = session._conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


def journal_bytes_per_step() -> tuple[float, int, int]:
    """The stored bytes of one bench turn's ``events`` rows per step; rows, steps."""
    with tempfile.TemporaryDirectory() as home:
        settings = load_settings(environ={"WATT_HOME": home})
        with app.open_parts(settings, model=ScriptedModel(_responder)) as parts:
            app.prewarm(parts)
            list(app.ask(parts, "warm"))
            list(app.ask(parts, "upper-case x"))
            assert parts.session is not None and parts.session._conn is not None
            row = parts.session._conn.execute(
                "SELECT sum(length(CAST(data AS BLOB)) + length(hash) + length(run) + length(ts)"
                " + length(kind) + 16), count(*) FROM events WHERE turn = 2"
            ).fetchone()
            steps = parts.session._conn.execute(
                "SELECT count(*) FROM steps WHERE turn = 2"
            ).fetchone()[0]
    return row[0] / steps, int(row[1]), int(steps)


PROBE = """
import json, statistics, sys, tempfile, time
from agent.app import ask, open_parts, prewarm
from agent.config import load_settings
from agent.models.scripted import ScriptedModel

n, use_session = int(sys.argv[1]), sys.argv[2] == "1"
spent = [0.0]

def responder(messages):
    last = messages[-1]
    observed = last.role == "user" and last.content.startswith("[Observation")
    return 'ToolCall::Response(\"\"\"\\nX\\n\"\"\")' if observed else 'ToolCall::Catalog("upper", "x")'

model = ScriptedModel(responder)
complete = model.complete

def timed(*args, **kwargs):
    t0 = time.perf_counter()
    try:
        return complete(*args, **kwargs)
    finally:
        spent[0] += time.perf_counter() - t0

model.complete = timed
wall, cpu = [], []
with tempfile.TemporaryDirectory() as home:
    settings = load_settings(environ={"WATT_HOME": home})
    with open_parts(settings, model=model, use_session=use_session) as parts:
        prewarm(parts)
        for i in range(n + 20):
            spent[0] = 0.0
            t0, c0 = time.perf_counter(), time.process_time()
            events = list(ask(parts, f"upper-case x ({i})"))
            t1, c1 = time.perf_counter(), time.process_time()
            assert events[-1].kind.value == "response", events[-1]
            if i >= 20:
                wall.append((t1 - t0 - spent[0]) * 1000)
                cpu.append((c1 - c0) * 1000)
print(json.dumps({"wall": statistics.median(wall) / 2, "cpu": statistics.median(cpu) / 2}))
"""


def probe(tree: Path, use_session: bool, n: int) -> dict[str, float]:
    """Per-step overhead (wall, and CPU of the whole process) of ``tree``'s code, measured by
    the same script in a new process: the same yardstick for the code before the journal."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", PROBE, str(n), "1" if use_session else "0"],
                          cwd=tree, env=env, capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"probe of {tree} failed: {done.stderr.strip()[-600:]}")
    return {k: float(v) for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def against(rev: str, n: int, rounds: int) -> None:
    """The journal against REV's per-turn commit, alternating, by the same probe script."""
    with tempfile.TemporaryDirectory() as tree:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True)
        if archive.returncode != 0:
            print(f"  {rev}: git archive failed: {archive.stderr.decode().strip()}")
            return
        subprocess.run(["tar", "-x", "-C", tree], input=archive.stdout, check=True)
        kinds = {"journal": (REPO, True), f"{rev} (per-turn commit)": (Path(tree), True),
                 "no session": (REPO, False)}  # fmt: skip
        got: dict[str, list[dict[str, float]]] = defaultdict(list)
        names = list(kinds)
        for r in range(rounds):
            for name in names[r % 3 :] + names[: r % 3]:
                got[name].append(probe(*kinds[name], n))
    print(f"  the same probe in a new process per run, {rounds} rounds of {n} turns each, "
          "per step (wall less the model's time; CPU of the process, every thread):")  # fmt: skip
    medians = {}
    for name in names:
        wall = statistics.median(g["wall"] for g in got[name])
        cpu = statistics.median(g["cpu"] for g in got[name])
        medians[name] = (wall, cpu)
        rounds_text = ", ".join(f"{g['wall']:.3f}" for g in got[name])
        print(f"    {name:28}: wall {wall:.3f} ms (rounds {rounds_text}), CPU {cpu:.3f} ms")
    (jw, jc), (ow, oc) = medians["journal"], medians[names[1]]
    print(f"  journal / per-turn commit: {jw / ow:.2f}x wall, {jc / oc:.2f}x CPU (target <= 1.2x)")


def overhead(n: int, rounds: int, rev: str | None) -> None:
    print(f'1. agent loop overhead, {rounds} alternating rounds of {n} turns of '
          f'Catalog("upper", "x") + Response (medians)')  # fmt: skip
    runs: dict[str, list[float]] = defaultdict(list)
    breakdown: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    rounds_ratio: list[float] = []
    growth: list[float] = []
    for r in range(rounds):
        order = (True, False) if r % 2 == 0 else (False, True)
        medians = {}
        for use_session in order:
            label = "journal" if use_session else "no session"
            overheads, parts_ms, grown = measure(n, use_session)
            runs[label] += overheads
            for k, v in parts_ms.items():
                breakdown[label][k] += v
            medians[label] = statistics.median(overheads)
            if use_session:
                growth.append(grown)
        rounds_ratio.append(medians["journal"] / medians["no session"])
    for label in ("journal", "no session"):
        values = runs[label]
        med, p90 = statistics.median(values), statistics.quantiles(values, n=10)[-1]
        print(f"  {label:10}: {med:.3f} ms per turn (p90 {p90:.3f}), {med / 2:.3f} ms per step")
        shown = ", ".join(
            f"{k} {statistics.median(v):.3f}" for k, v in breakdown[label].items() if k != "model"
        )
        print(f"      per turn, ms: {shown}; model (excluded) {statistics.median(breakdown[label]['model']):.3f}")  # fmt: skip
    journal = statistics.median(runs["journal"]) / 2
    bare = statistics.median(runs["no session"]) / 2
    record = statistics.median(breakdown["journal"]["record"]) / 2
    print(f"  journal / no session: {journal / bare:.2f}x per step (per round: "
          f"{', '.join(f'{x:.2f}' for x in rounds_ratio)}); the journal's own writes: "
          f"{record:.3f} ms per step")  # fmt: skip
    if rev:
        against(rev, n, rounds)
    per_step, rows, steps = journal_bytes_per_step()
    print(f"  journal bytes per step for this turn: {per_step:.0f} bytes ({rows} events rows, "
          f"{steps} steps); database growth: {statistics.median(growth):.0f} bytes per step "
          "(every table and index)")  # fmt: skip


# ---- 2 and 3: a long session, grown with direct inserts --------------------------------------


def record_template(home: Path) -> dict[str, list[tuple[Any, ...]]]:
    """One bench turn's rows (turn 1) from a real session, to copy."""
    settings = load_settings(environ={"WATT_HOME": str(home)})
    with app.open_parts(settings, model=ScriptedModel(_responder), session="template") as parts:
        app.prewarm(parts)
        list(app.ask(parts, "upper-case x"))
        assert parts.session is not None and parts.session._conn is not None
        conn = parts.session._conn
        return {
            table: conn.execute(f"SELECT * FROM {table} WHERE turn = 1 ORDER BY rowid").fetchall()
            for table in ("messages", "steps", "events")
        } | {"turns": conn.execute("SELECT * FROM turns WHERE id = 1").fetchall()}


class Grower:
    """Appends copies of the template turn to a session's database, hash chain included."""

    def __init__(self, db: Path, template: dict[str, list[tuple[Any, ...]]]) -> None:
        self.db, self.template = db, template
        self.turns = 0
        self.seq, self.head = 0, "0" * 64
        with closing(sqlite3.connect(db)) as conn:
            self.columns = {
                t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")]
                for t in ("turns", "messages", "steps", "events")
            }

    def grow_to(self, turns: int) -> None:
        with closing(sqlite3.connect(self.db, isolation_level=None)) as conn:
            conn.execute("BEGIN")
            for turn in range(self.turns + 1, turns + 1):
                self._turn(conn, turn)
            conn.execute("COMMIT")
        self.turns = turns

    def _turn(self, conn: sqlite3.Connection, turn: int) -> None:
        (row,) = self.template["turns"]
        cols = self.columns["turns"]
        values = dict(zip(cols, row, strict=True))
        values |= {"id": turn, "run": f"run-{turn:08d}", "task": f"upper-case x ({turn})"}
        self._insert(conn, "turns", values)
        for table in ("messages", "steps"):
            for r in self.template[table]:
                values = dict(zip(self.columns[table], r, strict=True)) | {"turn": turn}
                values.pop("seq", None)  # messages: a new rowid
                self._insert(conn, table, values)
        for r in self.template["events"]:
            e = dict(zip(self.columns["events"], r, strict=True))
            self.seq += 1
            entry = Entry(self.seq, f"run-{turn:08d}", None, turn, e["step"], e["ts"], e["kind"],
                          json.loads(e["data"]))  # fmt: skip
            self.head = chain(self.head, canonical(entry.to_dict()))
            self._insert(conn, "events", e | {"seq": self.seq, "run": entry.run, "turn": turn,
                                             "hash": self.head})  # fmt: skip

    @staticmethod
    def _insert(conn: sqlite3.Connection, table: str, values: dict[str, Any]) -> None:
        names = ", ".join(values)
        conn.execute(
            f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(values))})",
            tuple(values.values()),
        )


def old_history(session: Session, turns: int = 8) -> int:
    """The read as it was before the journal: every turn, then each recent one's steps."""
    kept = 0
    for info in session.turns()[-turns:]:
        kept += len([s for s in session.steps(turn=info.id) if s.action.value == "response"])
    return kept


def _median_ms(fn: Callable[[], Any], times: int) -> float:
    samples = []
    for _ in range(times):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def _watt(home: Path, *args: str) -> tuple[float, str]:
    env = {**os.environ, "WATT_HOME": str(home), "PYTHONPATH": str(REPO), "COLUMNS": "120"}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO, env=env,
                          capture_output=True, text=True)  # fmt: skip
    took = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"watt {' '.join(args)} failed: {done.stderr.strip()}")
    return took, done.stdout


def long_session() -> None:
    print("2. the history read (compact_history) as the session grows, median of 200 reads")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        template = record_template(home)
        store = SessionStore(home)
        store.open("long").close()
        store.open("empty").close()
        grower = Grower(store.path("long"), template)
        later: list[str] = []
        for turns in (30, 210, 1_000, 5_000, 10_000):
            grower.grow_to(turns)
            if turns == 5_000:
                later = watt_log(home, turns)
                continue
            with store.open("long") as session:
                now = _median_ms(lambda: app.compact_history(session), 200)
                before = _median_ms(lambda: old_history(session), 20 if turns > 1000 else 200)
            print(f"  turn {turns:>6}: {now:.3f} ms (the read before the journal: "
                  f"{before:.3f} ms)")  # fmt: skip
    print("\n".join(later))


def watt_log(home: Path, turns: int) -> list[str]:
    """Section 3's lines, over the session ``long`` at ``turns`` turns."""
    with SessionStore(home).open("long") as session:
        steps = len(session.steps())
    lines = [f"3. watt log over a session of {steps:,} steps ({turns:,} turns), a new process "
             "each time, median of 3"]  # fmt: skip
    shown = [_watt(home, "log", "--session", "long")[0] for _ in range(3)]
    empty = [_watt(home, "log", "--session", "empty")[0] for _ in range(3)]
    every = [_watt(home, "log", "--session", "long", "-n", str(turns)) for _ in range(3)]
    verify = [_watt(home, "log", "--session", "long", "--verify") for _ in range(3)]
    lines.append(f"  watt log (the last 20 turns): {statistics.median(shown):.3f} s; of an "
                 f"empty session: {statistics.median(empty):.3f} s (the process start, imports)")  # fmt: skip
    lines.append(f"  watt log -n {turns} (every turn and step, {len(every[0][1]):,} characters): "
                 f"{statistics.median(t for t, _ in every):.3f} s")  # fmt: skip
    lines.append(f"  watt log --verify: {statistics.median(t for t, _ in verify):.3f} s "
                 f"({verify[0][1].split(';')[0].strip()})")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--baseline", metavar="REV", default=None)
    args = parser.parse_args()
    overhead(args.n, args.rounds, args.baseline)
    long_session()


if __name__ == "__main__":
    main()
