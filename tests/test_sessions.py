from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.steps import ActionKind, Step
from agent.store.journal import TurnState
from agent.store.sessions import (
    MIGRATIONS,
    Session,
    SessionStore,
    hash_program,
)
from rt.errors import ConfigError, SessionError, SessionInUse

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    ticks = itertools.count(1000)
    return SessionStore(tmp_path, clock=lambda: float(next(ticks)))


@pytest.fixture
def session(store: SessionStore) -> Iterator[Session]:
    with store.open("s") as s:
        yield s


def run_python(code: str, home: Path) -> subprocess.Popen[str]:
    script = f"import sys; sys.path.insert(0, {str(REPO)!r})\n" + textwrap.dedent(code)
    return subprocess.Popen(
        [sys.executable, "-c", script, str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )


def one_turn(s: Session, task: str = "task", n_steps: int = 1) -> int:
    with s.turn(task) as t:
        t.add_message("user", task)
        for i in range(n_steps):
            t.add_step(Step(ActionKind.WAT, program=f"(i32.const {i})", status=0))
        t.add_message("assistant", "done")
        t.finish(TurnState.ANSWERED, answer="done", reply="done")
    return t.id


# --- store -------------------------------------------------------------------------------


def test_create_reopen_list_remove(store: SessionStore) -> None:
    assert store.list() == []
    assert not store.exists("a")
    with store.open("a") as s:
        one_turn(s, n_steps=2)
    with store.open("b"):
        pass
    assert store.exists("a") and store.exists("b")
    infos = {i.name: i for i in store.list()}
    assert set(infos) == {"a", "b"}
    a = infos["a"]
    assert (a.turns, a.steps, a.error) == (1, 2, None)
    assert a.created is not None and a.updated is not None and a.updated > a.created
    assert (infos["b"].turns, infos["b"].steps) == (0, 0)

    with store.open("a", create=False) as s:
        assert [m.content for m in s.history()] == ["task", "done"]
    store.remove("a")
    assert not store.exists("a")
    assert [i.name for i in store.list()] == ["b"]
    assert sorted(p.name for p in store.root.iterdir()) == ["b.lock", "b.sqlite"]
    with pytest.raises(SessionError, match="no session named 'a'"):
        store.remove("a")
    with pytest.raises(SessionError, match="no session named 'a'"):
        store.open("a", create=False)
    assert not store.exists("a")


@pytest.mark.parametrize("name", ["", "a/b", "../x", "a b", "x" * 65, "é", "a\nb", "a:b"])
def test_bad_names(store: SessionStore, name: str) -> None:
    with pytest.raises(ConfigError, match="invalid session name"):
        store.open(name)
    with pytest.raises(ConfigError):
        store.exists(name)
    with pytest.raises(ConfigError):
        store.remove(name)


@pytest.mark.parametrize("name", ["a", "A-b_c.1", "x" * 64, "..."])
def test_good_names(store: SessionStore, name: str) -> None:
    with store.open(name):
        pass
    assert store.exists(name)


def test_file_modes(store: SessionStore, session: Session) -> None:
    assert store.root.stat().st_mode & 0o777 == 0o700
    assert session.path.stat().st_mode & 0o777 == 0o600


# --- contents ------------------------------------------------------------------------------


def test_history_steps_kv_round_trip(store: SessionStore) -> None:
    with store.open("r") as s:
        with s.turn("count words") as t:
            t.add_message("user", "count words")
            t.add_message("assistant", "ToolCall::Wat(...)")
            step = t.add_step(
                Step(
                    ActionKind.WAT,
                    reply="<reasoning>go</reasoning>",
                    program="(i32.const 0)",
                    args=["a b", "ünï"],
                    observation="[Observation (step 1)] ok",
                    status=0,
                    fuel=1234,
                    timings={"model": 0.5, "run": 0.01},
                    prompt_tokens=100,
                    completion_tokens=20,
                )
            )
            t.add_step(Step(ActionKind.RESPONSE, reply="two words"))
            s.kv.set("k", "v1")
        assert step.step == 1 and step.program_hash == hash_program("(i32.const 0)")
        with s.turn("second") as t2:
            t2.add_message("user", "second")
            t2.add_step(Step(ActionKind.CATALOG, program="body", args=["x"], status=3))
        s.kv.set("a", "first")
        s.kv.set("k", "v2")

    with store.open("r") as s:
        assert [(m.role, m.content, m.turn) for m in s.history()] == [
            ("user", "count words", 1),
            ("assistant", "ToolCall::Wat(...)", 1),
            ("user", "second", 2),
        ]
        assert s.history()[0].as_dict() == {"role": "user", "content": "count words"}
        assert [m.seq for m in s.history()] == sorted(m.seq for m in s.history())
        assert [(ti.id, ti.task) for ti in s.turns()] == [(1, "count words"), (2, "second")]
        assert all(ti.finished is not None for ti in s.turns())
        steps = s.steps()
        assert [(x.turn, x.step, x.action) for x in steps] == [
            (1, 1, ActionKind.WAT),
            (1, 2, ActionKind.RESPONSE),
            (2, 1, ActionKind.CATALOG),
        ]
        assert steps[0] == step
        assert steps[0].args == ("a b", "ünï") and steps[0].timings == {"model": 0.5, "run": 0.01}
        assert steps[1].program is None and steps[1].program_hash is None
        assert [x.step for x in s.steps(turn=2)] == [1]
        assert s.steps(turn=9) == []
        assert s.kv.keys() == ["a", "k"]
        assert s.kv.get("k") == "v2" and s.kv.get("nope") is None
        assert s.kv.delete("a") is True and s.kv.delete("a") is False
        assert s.kv.keys() == ["k"]


def test_kv_keys_sorted_by_code_point(session: Session) -> None:
    for key in ["b", "é", "B", "a", "", "ab"]:
        session.kv.set(key, key.upper())
    assert session.kv.keys() == sorted(["b", "é", "B", "a", "", "ab"])


def test_last_program(session: Session) -> None:
    assert session.last_program() is None
    with session.turn("t") as t:
        t.add_step(Step(ActionKind.WAT, program="good", args=["1"], status=0))
        t.add_step(Step(ActionKind.WAT, program="bad", status=1))
        t.add_step(Step(ActionKind.CATALOG, program="cat", status=0))
        t.add_step(Step(ActionKind.RESPONSE, reply="answer"))
    last = session.last_program()
    assert last is not None
    assert (last.text, last.args, last.turn, last.step) == ("good", ("1",), 1, 1)


def test_reset_keeps_kv(session: Session) -> None:
    one_turn(session)
    session.kv.set("keep", "me")
    session.reset()
    assert session.history() == [] and session.steps() == [] and session.turns() == []
    assert session.kv.get("keep") == "me"
    assert one_turn(session) >= 1
    with session.turn("x"), pytest.raises(SessionError, match="during a turn"):
        session.reset()


# --- transactions ------------------------------------------------------------------------


def test_writes_inside_a_turn_commit_as_they_are_made(store: SessionStore) -> None:
    with store.open("p") as s:
        s.kv.set("old", "1")
        s.kv.set("gone", "x")
        with s.turn("t") as t:
            s.kv.set("new", "2")
            s.kv.set("old", "changed")
            assert s.kv.delete("gone") is True
            assert s.kv.keys() == ["new", "old"]
            t.add_message("user", "hi")
            t.add_step(Step(ActionKind.WAT, program="p", status=0))
            # another connection sees each write at once, and the turn as running
            assert store.list()[0].turns == 1 and store.list()[0].steps == 1
            other = sqlite3.connect(s.path)
            try:
                keys = other.execute("SELECT key FROM kv ORDER BY key").fetchall()
                state = other.execute("SELECT state FROM turns").fetchall()
            finally:
                other.close()
            assert keys == [("new",), ("old",)] and state == [("running",)]
            t.finish(TurnState.ANSWERED, answer="a", reply="r")
        assert [(ti.task, ti.state) for ti in s.turns()] == [("t", TurnState.ANSWERED)]


def test_an_exception_inside_a_turn_keeps_its_work_and_sets_its_state(session: Session) -> None:
    one_turn(session, "kept")
    session.kv.set("k", "before")
    for exc, state in ((RuntimeError("boom"), "failed"), (KeyboardInterrupt(), "interrupted")):
        with pytest.raises(type(exc)), session.turn("lost") as t:
            t.add_message("user", "lost")
            t.add_step(Step(ActionKind.WAT, program="p", status=0))
            session.kv.set("k", "after")
            raise exc
        assert session.turns()[-1].state.value == state
        assert session.kv.get("k") == "after"
    assert [ti.task for ti in session.turns()] == ["kept", "lost", "lost"]
    assert len(session.steps()) == 3
    # only the answered turn reaches the model's history
    assert session.answered(8) == [("kept", "done")]
    assert one_turn(session, "next") == 4


def test_turn_misuse(session: Session) -> None:
    with session.turn("a") as t:
        with pytest.raises(SessionError, match="already open"), session.turn("b"):
            pass
        t.add_message("user", "x")
    with pytest.raises(SessionError, match="not open"):
        t.add_message("user", "late")
    with session.turn("c") as t3, pytest.raises(SessionError, match="role"):
        t3.add_message("robot", "x")  # type: ignore[arg-type]
    assert [ti.task for ti in session.turns()] == ["a", "c"]


def test_duplicate_step_number_is_a_session_error_and_turn_survives(session: Session) -> None:
    with session.turn("t") as t:
        t.add_step(Step(ActionKind.WAT, step=1))
        with pytest.raises(SessionError, match="UNIQUE"):
            t.add_step(Step(ActionKind.WAT, step=1))
        t.add_step(Step(ActionKind.RESPONSE))
    assert [x.step for x in session.steps()] == [1, 2]


def test_kv_from_a_worker_thread_is_committed_at_once(session: Session) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            session.kv.set("w", "1")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with pytest.raises(RuntimeError), session.turn("t"):
        th = threading.Thread(target=worker)
        th.start()
        th.join()
        raise RuntimeError
    assert errors == [] and session.kv.get("w") == "1"


def test_kv_capability_over_the_session(session: Session) -> None:
    from capabilities.kv import KvBackend, KvCapability
    from capabilities.sys import SysCapability
    from rt.engine import Runtime

    assert isinstance(session.kv, KvBackend)
    runtime = Runtime([*SysCapability().functions(), *KvCapability(session.kv).functions()])
    body = """
    (argv 0 $v)
    (local $e i32)
    (call $kv.set "key" (local.get $v)) (local.set $e)
    (check $e)
    (i32.const 0)
    """
    # the wasm runs on a worker thread; its kv writes are kept even if the turn is interrupted
    with pytest.raises(KeyboardInterrupt), session.turn("t"):
        assert runtime.run(body, ["done"]).status == 0
        raise KeyboardInterrupt
    assert session.kv.get("key") == "done"
    assert session.turns()[-1].state is TurnState.INTERRUPTED
    with session.turn("t"):
        assert runtime.run(body, ["kept"]).status == 0
    assert session.kv.get("key") == "kept"


ALL_BYTES = bytes(range(256))
FILL_AND_SET = """
(local $i i32)
(i32.store (i32.const 65000) (i32.const 256))
(block $done
  (loop $fill
    (br_if $done (i32.ge_u (local.get $i) (i32.const 256)))
    (i32.store8 (i32.add (i32.const 65004) (local.get $i)) (local.get $i))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $fill)))
(call $kv.set "bin" (i32.const 65000))
"""
# 0 if "bin" holds exactly bytes 0-255; 99 for a wrong length, 100 + the first bad index
GET_AND_CHECK = """
(local $v i32) (local $e i32) (local $i i32)
(call $kv.get "bin") (local.set $e) (local.set $v)
(check $e)
(if (i32.ne (i32.load (local.get $v)) (i32.const 256)) (then (return (i32.const 99))))
(block $done
  (loop $cmp
    (br_if $done (i32.ge_u (local.get $i) (i32.const 256)))
    (if (i32.ne (i32.load8_u (i32.add (i32.add (local.get $v) (i32.const 4)) (local.get $i)))
                (local.get $i))
      (then (return (i32.add (i32.const 100) (local.get $i)))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $cmp)))
(i32.const 0)
"""
KV_BYTES_SCRIPT = """
from pathlib import Path
from agent.store.sessions import SessionStore
from capabilities.kv import KvCapability
from capabilities.sys import SysCapability
from rt.engine import Runtime
with SessionStore(Path(sys.argv[1])).open("b") as s, s.turn("write bytes"):
    runtime = Runtime([*SysCapability().functions(), *KvCapability(s.kv).functions()])
    print(runtime.run(sys.stdin.read()).status)
"""


def test_every_byte_round_trips_across_processes(store: SessionStore) -> None:
    from capabilities.kv import KvCapability
    from capabilities.sys import SysCapability
    from rt.engine import Runtime

    proc = run_python(KV_BYTES_SCRIPT, store.root.parent)
    out, err = proc.communicate(FILL_AND_SET, timeout=60)
    assert (proc.returncode, out.strip()) == (0, "0"), err
    with store.open("b") as s:
        assert s.kv.get_bytes("bin") == ALL_BYTES
        runtime = Runtime([*SysCapability().functions(), *KvCapability(s.kv).functions()])
        assert runtime.run(GET_AND_CHECK).status == 0
        # the text view (the CLI's) shows the bytes that are not UTF-8 as visible escapes
        assert s.kv.get("bin") == ALL_BYTES[:128].decode() + "".join(
            f"\\x{b:02x}" for b in range(128, 256)
        )
        assert s.kv.keys() == ["bin"]


def test_kv_bytes_and_text_share_one_blob_column(session: Session) -> None:
    session.kv.set_bytes("b", b"\x00\xff")
    session.kv.set("t", "café")
    assert session.kv.get_bytes("b") == b"\x00\xff" and session.kv.get("b") == "\x00\\xff"
    assert session.kv.get_bytes("t") == "café".encode() and session.kv.get("t") == "café"
    conn = sqlite3.connect(session.path)
    try:
        types = conn.execute("SELECT key, typeof(value) FROM kv ORDER BY key").fetchall()
    finally:
        conn.close()
    assert types == [("b", "blob"), ("t", "blob")]


def test_migration_keeps_text_kv_values_readable(tmp_path: Path) -> None:
    db = tmp_path / "sessions" / "old.sqlite"
    SessionStore(tmp_path, migrations=MIGRATIONS[:1]).open("old").close()  # schema 1
    conn = sqlite3.connect(db)
    try:  # as the schema-1 watt wrote them: TEXT values
        rows = [("city", "Lisbon"), ("ünï", "日本語 \n\t"), ("empty", "")]
        with conn:
            conn.executemany("INSERT INTO kv (key, value) VALUES (?, ?)", rows)
        assert conn.execute("SELECT DISTINCT typeof(value) FROM kv").fetchall() == [("text",)]
    finally:
        conn.close()
    with SessionStore(tmp_path).open("old") as s:
        assert s.kv.keys() == ["city", "empty", "ünï"]
        assert s.kv.get("city") == "Lisbon" and s.kv.get("ünï") == "日本語 \n\t"
        assert s.kv.get_bytes("ünï") == "日本語 \n\t".encode() and s.kv.get_bytes("empty") == b""
        s.kv.set_bytes("raw", b"\xfe")
        assert s.kv.get_bytes("raw") == b"\xfe"
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT DISTINCT typeof(value) FROM kv").fetchall() == [("blob",)]
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(len(MIGRATIONS),)]
    finally:
        conn.close()


def test_closed_session(store: SessionStore) -> None:
    s = store.open("c")
    s.close()
    s.close()
    assert s.closed
    with pytest.raises(SessionError, match="closed"):
        s.kv.get("x")


def test_close_mid_turn_keeps_its_rows_and_the_next_writer_marks_it_crashed(
    store: SessionStore,
) -> None:
    s = store.open("m")
    with s.turn("t") as t:
        t.add_message("user", "x")
        s.close()
    with store.open("m") as s2:
        assert [ti.state for ti in s2.turns()] == [TurnState.CRASHED]
        assert [m.content for m in s2.history()] == ["x"]


def test_bad_text_becomes_session_error(session: Session) -> None:
    with pytest.raises(SessionError, match="kv set"):
        session.kv.set("k", "\ud800")
    with pytest.raises(SessionError, match="add step"), session.turn("t") as t:
        t.add_step(Step(ActionKind.WAT, fuel=2**70))


# --- locking -------------------------------------------------------------------------------


IN_USE = (
    "session {name!r} is in use by another watt process (pid {pid}); "
    "`watt log --follow --session {name}` can watch it"
)


def test_second_open_in_process_is_in_use(store: SessionStore, session: Session) -> None:
    with pytest.raises(SessionInUse) as info:
        store.open("s")
    assert str(info.value) == IN_USE.format(name="s", pid=os.getpid())
    with pytest.raises(SessionInUse, match="cannot remove"):
        store.remove("s")
    session.close()
    with store.open("s"):
        pass


def test_second_process_is_in_use(store: SessionStore, session: Session) -> None:
    proc = run_python(
        """
        from pathlib import Path
        from agent.store.sessions import SessionStore
        from rt.errors import SessionInUse
        try:
            SessionStore(Path(sys.argv[1])).open("s")
        except SessionInUse as exc:
            print(exc)
        """,
        store.root.parent,
    )
    out, err = proc.communicate(timeout=60)
    assert err == ""
    assert out.strip() == IN_USE.format(name="s", pid=os.getpid())


def test_in_use_by_a_subprocess_then_released_on_exit(store: SessionStore) -> None:
    proc = run_python(
        """
        from pathlib import Path
        from agent.store.sessions import SessionStore
        s = SessionStore(Path(sys.argv[1])).open("held")
        print("ready", flush=True)
        sys.stdin.readline()
        """,
        store.root.parent,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        with pytest.raises(SessionInUse, match=rf"\(pid {proc.pid}\); `watt log --follow"):
            store.open("held")
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.communicate()
    with store.open("held"):
        pass


KILL_SCRIPT = """
from pathlib import Path
from agent.store.sessions import SessionStore
from agent.steps import ActionKind, Step
s = SessionStore(Path(sys.argv[1])).open("k")
with s.turn("one") as t:
    t.add_message("user", "one")
    t.add_step(Step(ActionKind.WAT, program="p1", observation="o" * 100, status=0))
    t.add_message("assistant", "answer one")
    s.kv.set("k1", "v1")
s.kv.set("outside", "committed")
with s.turn("two") as t:
    t.add_message("user", "two")
    for i in range(ROWS):
        t.add_step(Step(ActionKind.WAT, program=f"p{i}", observation="x" * 4096, status=0))
        s.kv.set(f"two{i}", "y" * 100)
    print("ready", flush=True)
    sys.stdin.readline()
"""


def test_kill_9_mid_turn_keeps_every_committed_step(store: SessionStore) -> None:
    rows = 300
    proc = run_python(KILL_SCRIPT.replace("ROWS", str(rows)), store.root.parent)
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read() if proc.stderr else ""
        with pytest.raises(SessionInUse):
            store.open("k")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.communicate()

    info = store.list()[0]
    assert (info.turns, info.steps, info.error) == (2, 1 + rows, None)
    from agent.store.journal import Reader

    with Reader(store.path("k"), "k") as reader:  # a reader sees it crashed before any writer
        assert [t.state for t in reader.turns()] == [TurnState.FAILED, TurnState.CRASHED]
    with store.open("k") as s:
        assert [ti.task for ti in s.turns()] == ["one", "two"]
        assert s.turns()[1].state is TurnState.CRASHED
        assert len(s.kv.keys()) == 2 + rows
        assert s._conn is not None
        assert s._conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert one_turn(s, "again") == 3


# --- corruption and schema ---------------------------------------------------------------


def test_not_a_database(store: SessionStore) -> None:
    store.root.mkdir(parents=True)
    store.path("bad").write_bytes(b"this is not sqlite at all\n" * 200)
    with pytest.raises(SessionError) as info:
        store.open("bad")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("session 'bad' is not a readable session database")
    assert "file is not a database" in message
    # the lock was released: the same error again, not SessionInUse
    with pytest.raises(SessionError, match="not a readable") as again:
        store.open("bad")
    assert not isinstance(again.value, SessionInUse)
    [info_row] = store.list()
    assert info_row.name == "bad" and info_row.error == "file is not a database"
    store.remove("bad")
    assert store.list() == []


def test_migration_hook(tmp_path: Path) -> None:
    with SessionStore(tmp_path).open("m") as s:
        s.kv.set("k", "v")

    def add_notes(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE notes (text TEXT)")

    with SessionStore(tmp_path, migrations=(*MIGRATIONS, add_notes)).open("m") as s:
        assert s.kv.get("k") == "v"
    conn = sqlite3.connect(tmp_path / "sessions" / "m.sqlite")
    try:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [
            (len(MIGRATIONS) + 1,)
        ]
        assert conn.execute("SELECT count(*) FROM notes").fetchone() == (0,)
    finally:
        conn.close()
    with pytest.raises(SessionError, match=r"session 'm': .*newer.*upgrade watt"):
        SessionStore(tmp_path).open("m")
    with SessionStore(tmp_path, migrations=(*MIGRATIONS, add_notes)).open("m"):
        pass


def test_wal_mode_and_pragmas(session: Session) -> None:
    conn = sqlite3.connect(session.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()
