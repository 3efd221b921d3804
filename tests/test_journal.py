"""The journal (issue 13) from the outside: `watt log --verify` against edited and removed rows,
a reader and a writer at once, a session database from before the journal, disk full and a
read-only WATT_HOME, cost, the idempotency key of a side effect, and kill -9 mid-turn.

Turns run through ``agent.app`` (``open_parts``/``ask``) or ``watt`` itself with a scripted
model; rows are changed by hand with ``sqlite3``, as a user editing the file would.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from agent.app import ask, compact_history, open_parts
from agent.config import Settings, load_settings
from agent.events import Event, ResponseEvent
from agent.models.messages import Message
from agent.models.scripted import ScriptedModel
from agent.store.journal import Reader, TurnState
from agent.store.schema import MIGRATIONS
from agent.store.sessions import SessionStore
from cli.main import app
from rt.errors import SessionInUse

REPO = Path(__file__).resolve().parent.parent
ENV = {"COLUMNS": "200", "TERM": "dumb", "NO_COLOR": "1"}
runner = CliRunner()

KV_SET = "(argv 0 $k) (argv 1 $v)\n(check (kv.set $k $v))\n(i32.const 0)"
READ_BIG = '(resv (fs.read "big.txt"))\n(i32.const 0)'
READ_BIG_QUIETLY = """(local $body i32) (local $e i32)
(call $fs.read "big.txt") (local.set $e) (local.set $body)
(check $e)
(i32.const 0)"""
POST_TWICE = """(local $body i32) (local $e i32)
(call $http.post "https://api.example.com/a" "one" "text/plain") (local.set $e) (local.set $body)
(check $e)
(call $http.post "https://api.example.com/b" "two" "text/plain") (local.set $e) (local.set $body)
(check $e)
(i32.const 0)"""
POST_ONCE = '(resv (http.post "https://api.example.com/c" "three" "text/plain"))\n(i32.const 0)'


def wat(body: str, *args: str) -> str:
    return f"ToolCall::Wat(```wat\n{body}\n```" + "".join(f", {json.dumps(a)}" for a in args) + ")"


def respond(text: str) -> str:
    return f'ToolCall::Response("""{text}""")'


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), env=ENV)


def script(path: Path, *replies: str) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in replies), encoding="utf-8")
    return f"script:{path}"


def settings_for(home: Path, **extra: Any) -> Settings:
    return load_settings(extra, environ={"WATT_HOME": str(home)})


def db_of(home: Path, name: str = "default") -> Path:
    return home / "sessions" / f"{name}.sqlite"


@contextlib.contextmanager
def database(path: Path) -> Iterator[sqlite3.Connection]:
    """The file as a user's ``sqlite3`` sees it (autocommit: each statement is saved)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def integrity(path: Path) -> str:
    with database(path) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def env_for(home: Path) -> dict[str, str]:
    return {**os.environ, **ENV, "PYTHONPATH": str(REPO), "WATT_HOME": str(home)}


def python(script_text: str, *args: str, home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script_text), *args],
        cwd=REPO, env=env_for(home), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def wait_for(predicate: Any, what: str, proc: subprocess.Popen[str] | None = None) -> None:
    """Poll until ``predicate()``; the deadline bounds a hung child, it is not a timing test."""
    deadline = time.monotonic() + 120
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the child ended before {what}: {proc.communicate()}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def one_turn(home: Path, replies: list[str], task: str = "task", **extra: Any) -> list[Event]:
    with open_parts(settings_for(home, **extra), model=ScriptedModel(replies)) as parts:
        return list(ask(parts, task))


def answered(events: list[Event], text: str) -> bool:
    return isinstance(events[-1], ResponseEvent) and events[-1].text == text


# ---- 1. the hash chain: `watt log --verify` ----------------------------------------------

VERIFIED = re.compile(r"^ok: (\d+) rows; head ([0-9a-f]{64})$")


def test_verify_prints_the_head_and_names_an_edited_or_removed_row(
    tmp_path: Path, _watt_home: Path
) -> None:
    model = script(tmp_path / "s.jsonl", wat(KV_SET, "a", "1"), respond("set"), respond("two"))
    assert invoke("ask", "--model", model, "-q", "set a").exit_code == 0
    assert invoke("ask", "--model", model, "-q", "again").exit_code == 0
    db = db_of(_watt_home)
    with database(db) as conn:
        count, last = conn.execute("SELECT count(*), max(seq) FROM events").fetchone()
        head = conn.execute("SELECT hash FROM events WHERE seq = ?", (last,)).fetchone()[0]
        seq, data = conn.execute(
            "SELECT seq, data FROM events WHERE kind = 'tool_result' ORDER BY seq LIMIT 1"
        ).fetchone()
    result = invoke("log", "--verify")
    assert result.exit_code == 0, result.output
    assert VERIFIED.match(result.stdout.strip()).groups() == (str(count), head)  # type: ignore[union-attr]

    # one value in one row's data, changed by hand: caught, and that row is named
    edited = json.dumps({**json.loads(data), "status": 7})
    with database(db) as conn:
        conn.execute("UPDATE events SET data = ? WHERE seq = ?", (edited, seq))
    result = invoke("log", "--verify")
    assert result.exit_code == 1
    assert f"journal row {seq} does not match" in result.stderr
    assert f"the {seq - 1} rows before it are intact" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    # the same data re-serialized (other key order, spaces) is the same row: not a change
    with database(db) as conn:
        conn.execute("UPDATE events SET data = ? WHERE seq = ?", (json.dumps(json.loads(data),
                     indent=1, sort_keys=False), seq))  # fmt: skip
    assert invoke("log", "--verify").stdout.strip() == f"ok: {count} rows; head {head}"

    # a row removed: the one after it no longer chains
    with database(db) as conn:
        conn.execute("DELETE FROM events WHERE seq = ?", (seq,))
    result = invoke("log", "--verify")
    assert result.exit_code == 1 and f"journal row {seq + 1} does not match" in result.stderr

    # the last row removed verifies, but to another head: the one a user kept catches it
    with database(db) as conn:
        conn.execute("DELETE FROM events WHERE seq >= ?", (seq,))
        conn.execute("DELETE FROM events WHERE seq = (SELECT max(seq) FROM events)")
    result = invoke("log", "--verify")
    assert result.exit_code == 0
    match = VERIFIED.match(result.stdout.strip())
    assert match is not None and match.group(1) == str(seq - 2) and match.group(2) != head


def test_a_changed_kind_or_time_is_caught_too(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert answered(one_turn(home, [respond("hi")]), "hi")
    db = db_of(home)
    for column, value in (("kind", "tool_start"), ("ts", "2000-01-01T00:00:00.000+00:00"),
                          ("turn", 9), ("hash", "0" * 64)):  # fmt: skip
        with database(db) as conn:
            saved = conn.execute(f"SELECT {column} FROM events WHERE seq = 2").fetchone()[0]
            conn.execute(f"UPDATE events SET {column} = ? WHERE seq = 2", (value,))
        with Reader(db, "default") as reader:
            verdict = reader.verify()
        assert (verdict.ok, verdict.bad_seq) == (False, 2), column
        with database(db) as conn:
            conn.execute(f"UPDATE events SET {column} = ? WHERE seq = 2", (saved,))
    with Reader(db, "default") as reader:
        assert reader.verify().ok


# ---- 2. a reader and a writer at once -----------------------------------------------------

GATED_TURN = """
    import json, sys, time
    from pathlib import Path
    from agent.app import ask, open_parts
    from agent.config import load_settings
    from agent.models.scripted import ScriptedModel
    home, gates, replies = sys.argv[1], Path(sys.argv[2]), iter(json.loads(sys.argv[3]))
    calls = 0

    def responder(messages):
        global calls
        calls += 1
        if calls in (2, 3):  # before steps 2 and 3 the model "thinks" until told to go on
            (gates / f"at{calls}").write_text("")
            while not (gates / f"go{calls}").exists():
                time.sleep(0.01)
        return next(replies)

    settings = load_settings(environ={"WATT_HOME": home})
    with open_parts(settings, model=ScriptedModel(responder)) as parts:
        for event in ask(parts, "watched task"):
            print(event.kind.value, event.step, flush=True)
"""


def _lines_of(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _take_until(lines: queue.Queue[str], got: list[dict[str, Any]], kind: str, step: int) -> None:
    deadline = time.monotonic() + 120
    while not any(e["kind"] == kind and e["step"] == step for e in got):
        got.append(json.loads(lines.get(timeout=max(0.1, deadline - time.monotonic()))))


def test_a_reader_and_a_writer_at_once(tmp_path: Path, _watt_home: Path) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    replies = [wat(KV_SET, "a", "1"), wat(KV_SET, "b", "2"), respond("done")]
    writer = python(GATED_TURN, str(_watt_home), str(gates), json.dumps(replies), home=_watt_home)
    follower: subprocess.Popen[str] | None = None
    stop = threading.Event()
    try:
        wait_for((gates / "at2").exists, "step 2", writer)
        # `watt log` while the turn runs: no lock needed, the turn shows as running
        result = invoke("log")
        assert result.exit_code == 0, result.output
        assert "in use" not in result.output
        assert re.search(r"^turn 1  running ", result.stdout, re.M), result.stdout
        assert "step 1 wat  status 0" in result.stdout
        shown = json.loads(invoke("log", "--json").stdout)
        assert (shown["state"], [s["step"] for s in shown["steps"]]) == ("running", [1])
        # a second writer is refused, by pid, and told how to watch
        with pytest.raises(SessionInUse, match=rf"pid {writer.pid}\).*watt log --follow"):
            SessionStore(_watt_home).open("default")
        refused = invoke("ask", "--model", script(tmp_path / "s.jsonl", respond("x")), "x")
        assert refused.exit_code == 2
        assert f"pid {writer.pid}" in refused.stderr and "watt log --follow" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1

        # follow from here: a Reader in this process, `watt log --follow --json` in another
        reader = Reader(db_of(_watt_home), "default")
        start = reader.last_seq()
        followed: list[int] = []
        kinds: list[tuple[str, int]] = []

        def follow() -> None:
            for entry in reader.follow(after=start, stop=stop, poll=0.02):
                followed.append(entry.seq)
                kinds.append((entry.kind, entry.step))

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        follower = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "log", "--follow", "--json", "--after", str(start)],
            cwd=REPO, env=env_for(_watt_home), text=True, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        lines = _lines_of(follower)
        printed: list[dict[str, Any]] = []

        (gates / "go2").write_text("")
        wait_for((gates / "at3").exists, "step 3", writer)
        # step 2 reached both readers while the writer still holds the session, mid-turn
        wait_for(lambda: ("tool_result", 2) in kinds, "the followed tool_result of step 2")
        _take_until(lines, printed, "tool_result", 2)
        assert writer.poll() is None

        (gates / "go3").write_text("")
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
        wait_for(lambda: ("turn_end", 0) in kinds, "the followed turn_end")
        _take_until(lines, printed, "turn_end", 0)
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=60) == 0
    finally:
        stop.set()
        for proc in (writer, follower):
            if proc is not None:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=60)
                for stream in (proc.stderr, proc.stdout if proc is writer else None):
                    if stream is not None:
                        stream.close()
    thread.join(timeout=60)
    rows = reader.entries(after=start)
    reader.close()
    assert followed == [e.seq for e in rows] == list(range(start + 1, rows[-1].seq + 1))
    assert [(e["seq"], e["kind"]) for e in printed] == [(e.seq, e.kind) for e in rows]
    assert all(e["schema"] == 1 and e["run"] == rows[0].run for e in printed)
    assert kinds == [("thinking", 2), ("tool_start", 2), ("host_call", 2), ("host_call", 2),
                     ("tool_result", 2), ("thinking", 3), ("response", 3), ("turn_end", 0)]  # fmt: skip
    assert out.split()[-2:] == ["response", "3"]
    assert re.search(r"^turn 1  answered ", invoke("log").stdout, re.M)


# ---- 3. a session from before the journal migrates in place -------------------------------


def _v1_turn(conn: sqlite3.Connection, task: str, steps: list[tuple[str, str, str]]) -> None:
    """A turn as the schema-1 writer saved it: turn, messages and steps, then ``finished``."""
    turn = conn.execute("INSERT INTO turns (task, started) VALUES (?, 100.0)", (task,)).lastrowid
    conn.execute("INSERT INTO messages (turn, role, content) VALUES (?, 'user', ?)", (turn, task))
    for number, (action, reply, observation) in enumerate(steps, 1):
        conn.execute(
            "INSERT INTO messages (turn, role, content) VALUES (?, 'assistant', ?)", (turn, reply)
        )
        program = "(i32.const 0)" if action == "wat" else None
        conn.execute(
            "INSERT INTO steps (turn, step, action, reply, program, program_hash, args,"
            " observation, status, fuel, timings, prompt_tokens, completion_tokens, created)"
            " VALUES (?, ?, ?, ?, ?, NULL, '[]', ?, ?, ?, '{\"run\": 0.5}', 100, 10, 101.0)",
            (turn, number, action, reply, program, observation,
             0 if program else None, 3 if program else None),
        )  # fmt: skip
        if observation:
            conn.execute(
                "INSERT INTO messages (turn, role, content) VALUES (?, 'user', ?)",
                (turn, observation),
            )
    conn.execute("UPDATE turns SET finished = 102.0 WHERE id = ?", (turn,))


@pytest.mark.parametrize("version", [1, 2])
def test_a_session_from_before_the_journal_migrates_with_nothing_lost(
    version: int, tmp_path: Path, _watt_home: Path
) -> None:
    SessionStore(_watt_home, migrations=MIGRATIONS[:version]).open("old").close()
    db = db_of(_watt_home, "old")
    wat_step = ("wat", "ToolCall::Wat(```wat\n(i32.const 0)\n```)", "[Observation] status 0")
    with database(db) as conn:
        conn.execute("BEGIN")
        _v1_turn(conn, "first task", [wat_step, ("response", respond("first answer"), "")])
        _v1_turn(conn, "spun", [wat_step, wat_step])  # stopped by the loop guard: no answer
        _v1_turn(conn, "second task", [("response", respond("second answer"), "")])
        value: Any = "Lisbon" if version == 1 else b"Lisbon"  # schema 2 stores bytes
        conn.execute("INSERT INTO kv (key, value) VALUES ('city', ?)", (value,))
        conn.execute("COMMIT")
        before = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
                  for t in ("messages", "steps")}  # fmt: skip

    with SessionStore(_watt_home).open("old") as session:  # migrates in place
        turns = session.turns()
        assert [(t.task, t.state) for t in turns] == [
            ("first task", TurnState.ANSWERED), ("spun", TurnState.STOPPED),
            ("second task", TurnState.ANSWERED),
        ]  # fmt: skip
        assert [t.answer for t in turns] == ["first answer", None, "second answer"]
        assert all((t.started, t.finished) == (100.0, 102.0) for t in turns)
        assert len({t.run for t in turns}) == 3
        assert [(s.turn, s.step, s.action.value) for s in session.steps()] == [
            (1, 1, "wat"), (1, 2, "response"), (2, 1, "wat"), (2, 2, "wat"), (3, 1, "response"),
        ]  # fmt: skip
        assert session.messages_of(1) == [
            ("user", "first task"), ("assistant", wat_step[1]), ("user", wat_step[2]),
            ("assistant", respond("first answer")),
        ]  # fmt: skip
        assert session.kv.get("city") == "Lisbon"
        assert compact_history(session) == [
            Message.user("first task"), Message.assistant(respond("first answer")),
            Message.user("second task"), Message.assistant(respond("second answer")),
        ]  # fmt: skip
    with database(db) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (len(MIGRATIONS),)
        for table, rows in before.items():  # every old row kept, every old column unchanged
            width = len(rows[0])
            kept = conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            assert [r[:width] for r in kept] == rows, table

    result = invoke("log", "--session", "old")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("turn 1  answered", "task: first task", "answer: first answer", "turn 2  stopped",
                 "task: spun", "turn 3  answered", "answer: second answer",
                 "step 2 response", "(i32.const 0)", "-> [Observation] status 0"):  # fmt: skip
        assert text in out, text
    assert invoke("log", "--session", "old", "--verify").stdout.startswith("ok: 0 rows")

    # the next turn sees the old answered turns as its history, and the chain starts
    model = ScriptedModel([respond("third answer")])
    with open_parts(settings_for(_watt_home), model=model, session="old") as parts:
        assert answered(list(ask(parts, "third task")), "third answer")
    assert model.requests[0][1:] == [
        Message.user("first task"), Message.assistant(respond("first answer")),
        Message.user("second task"), Message.assistant(respond("second answer")),
        Message.user("third task"),
    ]  # fmt: skip
    assert VERIFIED.match(invoke("log", "--session", "old", "--verify").stdout.strip())


def test_watt_log_on_a_session_not_yet_migrated_says_how(_watt_home: Path) -> None:
    SessionStore(_watt_home, migrations=MIGRATIONS[:2]).open("old").close()
    result = invoke("log", "--session", "old")
    assert result.exit_code == 1
    assert "open it once with this watt" in result.stderr and "Traceback" not in result.output


# ---- 4. disk full, read-only home -----------------------------------------------------------

FULL_DISK_ASK = """
    import sys
    from agent.store import sessions
    extra = int(sys.argv[1])
    opened = sessions.SessionStore.open

    def open_nearly_full(self, name, **kw):  # the session's file may grow by `extra` pages
        session = opened(self, name, **kw)
        pages = session._conn.execute("PRAGMA page_count").fetchone()[0]
        session._conn.execute(f"PRAGMA max_page_count = {pages + extra}")
        return session

    sessions.SessionStore.open = open_nearly_full
    sys.argv = ["watt", *sys.argv[2:]]
    from cli.main import main
    main()
"""


def _after_a_failed_turn(home: Path, task: str) -> None:
    """What the next reader and writer find after a turn that could not be written whole."""
    db = db_of(home)
    assert integrity(db) == "ok"
    with Reader(db, "default") as reader:
        states = {t.task: t.state for t in reader.turns()}
        assert reader.verify().ok
    assert states.get(task, TurnState.FAILED) in (TurnState.FAILED, TurnState.CRASHED), states
    assert answered(one_turn(home, [respond("fine")], "next"), "fine")
    with Reader(db, "default") as reader:
        turns = reader.turns()
        assert turns[-1].state is TurnState.ANSWERED
        assert all(t.state is not TurnState.RUNNING for t in turns)
        assert reader.verify().ok
    assert integrity(db) == "ok"


# the record that fails: of the host call (its 40 kB body, stored as a blob, while the
# program's result is small), or of the loop's tool_result event (which holds that result)
@pytest.mark.parametrize(
    ("program", "extra"),
    [(READ_BIG_QUIETLY, 1), (READ_BIG, 1), (READ_BIG, 12)],
    ids=["host-call-record", "tool-result-1-page", "tool-result-12-pages"],
)
def test_disk_full_mid_turn_is_one_line_and_the_turn_is_not_answered(
    program: str, extra: int, tmp_path: Path, _watt_home: Path
) -> None:
    jail = tmp_path / "jail"
    jail.mkdir()
    (jail / "big.txt").write_text("x" * 40_000)
    assert answered(one_turn(_watt_home, [respond("warm")], "first"), "warm")
    model = script(tmp_path / "s.jsonl", wat(program), respond("done"))
    proc = python(FULL_DISK_ASK, str(extra), "ask", "-q", "--model", model, "--fs-root",
                  str(jail), "read it", home=_watt_home)  # fmt: skip
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert re.fullmatch(r"watt: session 'default': .*database or disk is full\n", err), err
    assert "done" not in out
    _after_a_failed_turn(_watt_home, "read it")


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A real small filesystem at ``where`` (needs CAP_SYS_ADMIN; skipped without it)."""
    where.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(where)], capture_output=True, check=False)
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def _fill(where: Path, leave_kib: int) -> Path:
    """Fill the filesystem but ``leave_kib`` KiB."""
    free = os.statvfs(where).f_bavail * os.statvfs(where).f_frsize
    filler = where / "filler"
    filler.write_bytes(b"\0" * max(0, free - leave_kib * 1024))
    return filler


@pytest.mark.parametrize("leave_kib", [0, 100, 150])
def test_a_really_full_disk(leave_kib: int, tmp_path: Path, monkeypatch: Any) -> None:
    jail = tmp_path / "jail"
    jail.mkdir()
    (jail / "big.txt").write_text("y" * 40_000)
    with tmpfs(tmp_path / "home", "2m") as home:
        monkeypatch.setenv("WATT_HOME", str(home))
        assert answered(one_turn(home, [respond("warm")], "first"), "warm")
        filler = _fill(home, leave_kib)
        model = script(tmp_path / "s.jsonl", wat(READ_BIG), respond("done"))
        result = invoke("ask", "-q", "--model", model, "--fs-root", str(jail), "read it")
        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "No space left on device" in result.stderr or "disk is full" in result.stderr
        # readers still read the full disk
        shown = invoke("log")
        assert shown.exit_code == 0, shown.output
        assert "turn 1  answered" in shown.stdout
        filler.unlink()
        _after_a_failed_turn(home, "read it")


def test_a_read_only_home(tmp_path: Path, monkeypatch: Any) -> None:
    with tmpfs(tmp_path / "home", "4m") as home:
        monkeypatch.setenv("WATT_HOME", str(home))
        assert answered(one_turn(home, [respond("before")], "first"), "before")
        with database(db_of(home)) as conn:
            rows, head = conn.execute(
                "SELECT count(*), (SELECT hash FROM events ORDER BY seq DESC LIMIT 1) FROM events"
            ).fetchone()
        assert subprocess.run(["mount", "-o", "remount,ro", str(home)], check=False).returncode == 0
        result = invoke("ask", "-q", "--model", script(tmp_path / "s.jsonl", respond("x")), "x")
        assert result.exit_code == 1
        assert result.stderr.strip() == "watt: cannot lock session 'default': Read-only file system"
        shown = invoke("log")  # a reader needs no write access
        assert shown.exit_code == 0, shown.output
        assert "turn 1  answered" in shown.stdout and "turn 2" not in shown.stdout
        assert invoke("log", "--verify").stdout.strip() == f"ok: {rows} rows; head {head}"
        assert subprocess.run(["mount", "-o", "remount,rw", str(home)], check=False).returncode == 0
        assert integrity(db_of(home)) == "ok"
        assert answered(one_turn(home, [respond("after")], "second"), "after")


# ---- 5. cost ------------------------------------------------------------------------------


def test_cost_per_turn_and_step_and_the_max_cost_budget(tmp_path: Path, _watt_home: Path) -> None:
    path = tmp_path / "priced.jsonl"
    model = script(path, wat(KV_SET, "a", "1"), respond("set"))
    _watt_home.mkdir(parents=True, exist_ok=True)
    (_watt_home / "config.toml").write_text(
        f'[prices."script:{path.name}"]\ninput = 2.5\noutput = 10.0\n', encoding="utf-8"
    )
    assert invoke("ask", "-q", "--model", model, "set a").exit_code == 0
    with Reader(db_of(_watt_home), "default") as reader:
        turn = reader.turns()[0]
        steps = reader.steps()
    expected = (turn.input_tokens * 2.5 + turn.output_tokens * 10.0) / 1e6
    assert turn.cost == pytest.approx(expected) and turn.cost > 0
    assert [s.cost for s in steps] == [
        pytest.approx(((s.prompt_tokens or 0) * 2.5 + (s.completion_tokens or 0) * 10.0) / 1e6)
        for s in steps
    ]
    assert sum(s.cost or 0 for s in steps) == pytest.approx(turn.cost)
    out = invoke("log").stdout
    assert re.search(rf"^turn 1  answered .*tokens \d+  \${turn.cost:.4f}$", out, re.M), out
    for step in steps:
        assert re.search(rf"^  step {step.step} .*  \${step.cost:.4f}", out, re.M), out
    data = json.loads(invoke("log", "--json").stdout)
    assert data["cost"] == pytest.approx(turn.cost)

    # --max-cost: a budget smaller than one model call stops the task after it
    model = script(path, wat(KV_SET, "b", "2"), respond("never"))
    result = invoke("ask", "-q", "--model", model, "--max-cost", "0.001", "set b")
    assert result.exit_code == 1, result.output
    assert "cost budget of $0.001 is spent" in result.stderr
    assert "--max-cost" in result.stderr
    with Reader(db_of(_watt_home), "default") as reader:
        stopped = reader.turns()[-1]
    assert stopped.state is TurnState.STOPPED and stopped.answer is None
    assert "--max-cost" in (stopped.reason or "")
    # a model with no price: --max-cost could never act, so it is refused before any work
    unpriced = script(tmp_path / "other", respond("x"))
    refused = invoke("ask", "-q", "--model", unpriced, "--max-cost", "1", "t")
    assert refused.exit_code == 2 and "needs a price for the model" in refused.stderr


def test_a_price_for_the_model_given_to_open_parts(tmp_path: Path) -> None:
    settings = load_settings({"prices": {"scripted": {"input": 1.0, "output": 1.0}}},
                             environ={"WATT_HOME": str(tmp_path / "home")})  # fmt: skip
    with open_parts(settings, model=ScriptedModel([respond("hi")])) as parts:
        assert answered(list(ask(parts, "hi")), "hi")
        assert parts.session is not None
        turn = parts.session.turns()[0]
    assert turn.cost == pytest.approx((turn.input_tokens + turn.output_tokens) / 1e6)


# ---- 6. the idempotency key of a side effect ------------------------------------------------


def test_http_post_sends_the_idempotency_key_after_its_start_row(tmp_path: Path) -> None:
    home = tmp_path / "home"
    seen: list[tuple[str, str | None, list[str]]] = []

    def server(request: httpx.Request) -> httpx.Response:
        with Reader(db_of(home), "default") as reader:  # what the journal held at that moment
            rows = [e for e in reader.entries() if e.kind == "host_call"]
        seen.append(
            (
                request.url.path,
                request.headers.get("Idempotency-Key"),
                [f"{e.data['phase']} {e.data['fn']} {e.data['call']}" for e in rows],
            )
        )
        return httpx.Response(200, text=f"created {request.url.path}")

    replies = [wat(POST_TWICE), wat(POST_ONCE), respond("posted")]
    with open_parts(settings_for(home, allow_domains=["api.example.com"]),
                    model=ScriptedModel(replies), http_transport=httpx.MockTransport(server),
                    ) as parts:  # fmt: skip
        assert answered(list(ask(parts, "post")), "posted")
        assert parts.session is not None
        run = parts.session.turns()[0].run
    assert [(path, key) for path, key, _ in seen] == [
        ("/a", f"{run}:1:1"), ("/b", f"{run}:1:2"), ("/c", f"{run}:2:1"),
    ]  # fmt: skip
    # each request went out after its start row was committed, and before its done row
    assert seen[0][2] == ["start http.post 1"]
    assert seen[1][2] == ["start http.post 1", "done http.post 1", "start http.post 2"]
    assert seen[2][2][-1] == "start http.post 1"
    with Reader(db_of(home), "default") as reader:
        calls = [(e.step, dict(e.data)) for e in reader.entries() if e.kind == "host_call"]
    assert [(step, d["phase"], d["call"], d.get("key")) for step, d in calls] == [
        (1, "start", 1, f"{run}:1:1"), (1, "done", 1, None),
        (1, "start", 2, f"{run}:1:2"), (1, "done", 2, None),
        (2, "start", 1, f"{run}:2:1"), (2, "done", 1, None),
    ]  # fmt: skip
    assert calls[-1][1]["text"] == "created /c" and calls[-1][1]["code"] == 0


def test_a_get_is_recorded_but_sends_no_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    headers: list[httpx.Headers] = []

    def server(request: httpx.Request) -> httpx.Response:
        headers.append(request.headers)
        return httpx.Response(200, text="page")

    get = '(resv (http.get "https://api.example.com/p"))\n(i32.const 0)'
    with open_parts(settings_for(home, allow_domains=["api.example.com"]),
                    model=ScriptedModel([wat(get), respond("ok")]),
                    http_transport=httpx.MockTransport(server)) as parts:  # fmt: skip
        assert answered(list(ask(parts, "get")), "ok")
    assert "Idempotency-Key" not in headers[0]
    with Reader(db_of(home), "default") as reader:
        calls = [dict(e.data) for e in reader.entries() if e.kind == "host_call"]
    assert [(c["fn"], c["phase"], c.get("text")) for c in calls] == [("http.get", "done", "page")]


# ---- 7. kill -9 at random points of a multi-step turn ---------------------------------------


def test_kill_9_at_random_points_keeps_every_committed_step(tmp_path: Path) -> None:
    from bench.bench_kill import trial

    rng = random.Random(20261201)
    results = [trial(rng) for _ in range(8)]
    assert [r.problem for r in results if not r.ok] == []
    assert sum(r.mid_turn for r in results) >= 6  # the kills landed inside the turn
    assert len({r.printed for r in results}) >= 4  # at different points of it


def test_a_turn_that_errors_out_keeps_its_steps_and_log_shows_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    model = ScriptedModel([wat(KV_SET, "a", "1"), RuntimeError("the model's process died")])
    events: list[Event] = []
    with open_parts(settings_for(home), model=model) as parts, pytest.raises(RuntimeError):
        for event in ask(parts, "doomed"):
            events.append(event)
    assert [e.kind.value for e in events] == ["thinking", "tool_start", "tool_result"]
    with Reader(db_of(home), "default") as reader:
        turn = reader.turns()[0]
        assert turn.state is TurnState.FAILED and "the model's process died" in (turn.reason or "")
        assert [s.step for s in reader.steps()] == [1]


def test_log_limit_shows_the_last_turns_with_their_steps_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for i in range(1, 4):
        assert answered(one_turn(home, [wat(KV_SET, f"k{i}", "v"), respond(f"a{i}")], f"t{i}"),
                        f"a{i}")  # fmt: skip
    with Reader(db_of(home), "default") as reader:
        assert [t.id for t in reader.turns(last=2)] == [2, 3]
        assert {s.turn for s in reader.steps(since=2)} == {2, 3}
    result = runner.invoke(app, ["log", "-n", "2"], env={**ENV, "WATT_HOME": str(home)})
    assert result.exit_code == 0, result.output
    shown = re.findall(r"^turn (\d+) ", result.stdout, re.M)
    assert shown == ["2", "3"] and "k1" not in result.stdout and '"k3"' not in result.stdout
    assert result.stdout.count("step 1 wat") == 2 and "answer: a1" not in result.stdout
    records = [json.loads(line) for line in runner.invoke(
        app, ["log", "-n", "2", "--json"], env={**ENV, "WATT_HOME": str(home)}).stdout.splitlines()]  # fmt: skip
    assert [(r["turn"], [s["step"] for s in r["steps"]]) for r in records] == [
        (2, [1, 2]),
        (3, [1, 2]),
    ]
