"""kill -9 at random points of a multi-step turn (prints a count, never asserts).

    python bench/bench_kill.py [TRIALS] [SEED]

Each trial runs a child process that opens a fresh session (under a temporary WATT_HOME) and
asks one task through ``agent.app.ask`` with a scripted model: STEPS programs that each set a
kv key (a side effect), then an answer. The model "thinks" PAUSE seconds per call. The child
prints every event as ``ask`` yields it, which is after the journal committed it. The parent
waits for a random number of those lines (seeded), sleeps a random fraction of a model call,
and sends SIGKILL. Then it checks:

- every event the child printed is in the journal, and every step whose tool_result it
  printed is in ``steps`` with its kv key set (nothing committed before the kill is lost);
- the turn reads as crashed before any writer opens the session (its process is gone), and
  is marked crashed by the next writer (a turn whose answer was committed just before the
  kill reads as answered: that trial counts as "finished", not "mid-turn");
- ``PRAGMA integrity_check`` is ok and the hash chain verifies;
- the next turn works, and the chain still verifies after it.

It prints one line per failed trial, then "N/N ok" (trials where every check held).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agent.app import ask, open_parts  # noqa: E402
from agent.config import load_settings  # noqa: E402
from agent.events import ResponseEvent  # noqa: E402
from agent.models.scripted import ScriptedModel  # noqa: E402
from agent.store.journal import Reader, TurnState  # noqa: E402
from agent.store.sessions import SessionStore  # noqa: E402

STEPS = 6
PAUSE = 0.004  # seconds the scripted model "thinks" per call
KV_SET = "(argv 0 $k) (argv 1 $v)\n(check (kv.set $k $v))\n(i32.const 0)"
SESSION = "default"

CHILD = """
    import json, sys, time
    from agent.app import ask, open_parts
    from agent.config import load_settings
    from agent.models.scripted import ScriptedModel
    home, pause, replies = sys.argv[1], float(sys.argv[2]), iter(json.loads(sys.argv[3]))

    def responder(messages):
        time.sleep(pause)
        return next(replies)

    settings = load_settings(environ={"WATT_HOME": home})
    with open_parts(settings, model=ScriptedModel(responder)) as parts:
        print("ready", flush=True)
        for event in ask(parts, "many steps"):
            print(event.kind.value, event.step, flush=True)
"""


def wat(body: str, *args: str) -> str:
    return f"ToolCall::Wat(```wat\n{body}\n```" + "".join(f", {json.dumps(a)}" for a in args) + ")"


def replies(steps: int = STEPS) -> list[str]:
    return [wat(KV_SET, f"k{i}", str(i)) for i in range(1, steps + 1)] + [
        'ToolCall::Response("""done""")'
    ]


@dataclass(frozen=True)
class Trial:
    ok: bool
    mid_turn: bool  # the kill landed before the turn's end was committed
    printed: int  # events the child had printed (committed) before the kill
    steps_kept: int
    problem: str = ""


def _lines(proc: subprocess.Popen[str], out: list[str], seen: threading.Condition) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        with seen:  # a last line the kill cut short has no newline: it was not printed whole
            out.append(line.strip() if line.endswith("\n") else f"cut {line!r}")
            seen.notify_all()


def kill_child(home: Path, rng: random.Random, steps: int = STEPS) -> tuple[list[str], str]:
    """Run the child, kill -9 it at a random point of its turn; its printed lines, stderr."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CHILD), str(home), str(PAUSE),
         json.dumps(replies(steps))],
        cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out: list[str] = []
    seen = threading.Condition()
    reader = threading.Thread(target=_lines, args=(proc, out, seen), daemon=True)
    reader.start()
    wait_for = 1 + rng.randrange(3 * steps + 1)  # "ready", then up to the last thinking line
    deadline = time.monotonic() + 120  # a bound on a hung child, not a measurement
    try:
        with seen:
            while len(out) < wait_for and proc.poll() is None:
                if time.monotonic() > deadline:
                    break
                seen.wait(0.05)
        time.sleep(rng.uniform(0, PAUSE * 1.5))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.wait(timeout=60)
        reader.join(timeout=60)
        proc.stdout and proc.stdout.close()  # type: ignore[func-returns-value]
        proc.stderr.close()
    if "ready" not in out:
        raise RuntimeError(f"the child never opened its session: {err[-500:]}")
    return out[out.index("ready") + 1 :], err


def check(home: Path, printed: list[str]) -> Trial:
    """What the journal holds after the kill (see the module docstring)."""
    store = SessionStore(home)
    problems: list[str] = []
    with Reader(store.path(SESSION), SESSION) as reader:
        turns = reader.turns()
        rows = {(e.kind, e.step) for e in reader.entries()}
        steps = {s.step for s in reader.steps()}
    events = [(line.split()[0], int(line.split()[1])) for line in printed if line[:4] != "cut "]
    if len(events) + 1 < len(printed) or any(len(line.split()) != 2 for line in printed[:-1]):
        problems.append(f"unexpected output: {printed}")
    missing = [e for e in events if e not in rows]
    if missing:
        problems.append(f"printed but not in the journal: {missing}")
    done = {step for kind, step in events if kind == "tool_result"}
    if not done <= steps:
        problems.append(f"steps {sorted(done - steps)} missing")
    answered = ("response", STEPS + 1) in events
    state = turns[0].state if turns else None
    if turns and state is not TurnState.CRASHED and not (answered and state is TurnState.ANSWERED):
        problems.append(f"the turn reads as {state}")
    mid_turn = state is not TurnState.ANSWERED
    settings = load_settings(environ={"WATT_HOME": str(home)})
    with open_parts(settings, model=ScriptedModel(['ToolCall::Response("""next""")'])) as parts:
        session = parts.session
        assert session is not None and session._conn is not None
        if session._conn.execute("PRAGMA integrity_check").fetchone() != ("ok",):
            problems.append("integrity_check failed")
        kv = set(session.kv.keys())
        if not {f"k{i}" for i in done} <= kv:
            problems.append(f"kv keys of committed steps missing: {sorted(kv)}")
        stored = [t.state for t in session.turns()]
        if turns and stored[0] is not (TurnState.CRASHED if mid_turn else TurnState.ANSWERED):
            problems.append(f"the next writer left the turn {stored[0]}")
        with Reader(session.path, SESSION) as reader:
            if not reader.verify().ok:
                problems.append("the hash chain does not verify after the kill")
        final = list(ask(parts, "the next turn"))
        if not (isinstance(final[-1], ResponseEvent) and final[-1].text == "next"):
            problems.append(f"the next turn did not answer: {final[-1]}")
        with Reader(session.path, SESSION) as reader:
            if not reader.verify().ok:
                problems.append("the hash chain does not verify after the next turn")
    return Trial(not problems, mid_turn, len(printed), len(done), "; ".join(problems))


def trial(rng: random.Random) -> Trial:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        printed, err = kill_child(home, rng)  # a child that cannot start raises: no trial
        try:
            return check(home, printed)
        except Exception as exc:  # a failed check is a failed trial, reported
            where = traceback.extract_tb(exc.__traceback__)[-1]
            problem = f"{type(exc).__name__}: {exc} (line {where.lineno}) {err[-300:]}"
            return Trial(False, True, len(printed), 0, problem)


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 13
    rng = random.Random(seed)
    print(f"kill -9 during a {STEPS}-step turn, {trials} trials (seed {seed})")
    results: list[Trial] = []
    started = time.perf_counter()
    for number in range(1, trials + 1):
        result = trial(rng)
        results.append(result)
        if not result.ok:
            print(f"  trial {number}: FAILED after {result.printed} events: {result.problem}")
    ok = sum(r.ok for r in results)
    mid = sum(r.mid_turn for r in results)
    kept = sorted(r.steps_kept for r in results)
    print(f"  killed mid-turn in {mid} trials, after the answer was committed in {trials - mid}")
    print(f"  completed steps kept per trial: min {kept[0]}, median {kept[len(kept) // 2]}, "
          f"max {kept[-1]} (of {STEPS})")  # fmt: skip
    print(f"  {time.perf_counter() - started:.0f} s")
    print(f"{ok}/{trials} ok")


if __name__ == "__main__":
    main()
