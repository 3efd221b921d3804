"""Sessions: a conversation's history, steps and key-value store, persisted in SQLite.

Layout under ``<home>/sessions/``: one database per session, ``<name>.sqlite`` (WAL mode,
busy timeout, foreign keys on), and ``<name>.lock``, an exclusive advisory ``flock`` held for
as long as the ``Session`` is open, with the holder's pid written in it. A second open of
the same session, from another process or from this one, raises ``SessionInUse``. The OS
drops the lock when the holder dies, even by ``kill -9``, so a lock is never stale.

One transaction per step, never one per turn (SECURITY.md rule 13): ``with session.turn(task)
as turn:`` records the turn as running at once; every message, step, journal event and kv
write is committed as it is made, so a turn that fails, is interrupted or is killed keeps
everything it had done up to the step in flight. The turn ends with a state (answered,
failed, stopped, interrupted; ``agent.store.journal.TurnState``); a turn left running by a
process that died is marked crashed when the session is next opened for writing. The
journal's rows are chained by hash (``agent.store.journal``); readers use
``agent.store.journal.Reader`` and need no lock.

The kv store (``session.kv``) implements the kv capability's backend protocol:
``get_bytes(key) -> bytes | None``, ``set_bytes(key, value)``, ``delete(key) -> bool``,
``keys()`` sorted; values are BLOBs, so every byte round-trips. ``get``/``set`` are its text
view (UTF-8; other bytes read back as ``\\xNN`` escapes), as the CLI shows it.
A ``Session`` may be used from the wasm worker thread as well as the main thread (every
call holds a re-entrant mutex), so kv writes made by a program join the running turn.
``session.reset()`` clears history and steps (all turns) but keeps kv. Times are Unix
seconds. A step's ``status`` is the program's return value, None when nothing ran.

Every sqlite3 failure becomes a ``SessionError`` with a one-line message.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, get_args

from agent.config import SESSION_NAME
from agent.config import check_session_name as check_name
from agent.models.messages import Role
from agent.steps import ActionKind, Step
from agent.store.journal import (
    STEP_COLUMNS,
    TURN_COLUMNS,
    JournalKind,
    TurnRecord,
    TurnState,
    load_args,
    step_of,
    turn_record,
)
from agent.store.lock import SessionLock
from agent.store.schema import MIGRATIONS, Migration, migrate
from agent.store.writer import JournalWriter, Price, Turn
from rt.errors import SessionError, SessionInUse, UnknownSession

BUSY_TIMEOUT_MS = 5000
_SUFFIX = ".sqlite"
_SIDE_FILES = ("-wal", "-shm", "-journal")

_ROLES: tuple[Role, ...] = get_args(Role)
Clock = Callable[[], float]


@dataclass(frozen=True)
class HistoryMessage:
    role: Role
    content: str
    turn: int
    seq: int

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class LastProgram:
    text: str
    args: tuple[str, ...]
    turn: int
    step: int


@dataclass(frozen=True)
class SessionInfo:
    """One row of ``SessionStore.list()``; ``error`` is set when the file cannot be read."""

    name: str
    created: float | None
    updated: float | None
    turns: int
    steps: int
    error: str | None = None


def hash_program(text: str) -> str:
    """The hex SHA-256 of a program's text (the ``program_hash`` of a step)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# --- sessions -----------------------------------------------------------------------------


def _connect(path: Path, mode: str, timeout_ms: int, *, setup: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN/COMMIT ourselves), usable by any thread."""
    conn = sqlite3.connect(
        f"{path.absolute().as_uri()}?mode={mode}",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
        timeout=timeout_ms / 1000,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")
        conn.execute("PRAGMA foreign_keys = ON")
        if setup:
            row = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if row is None or str(row[0]).lower() != "wal":
                raise sqlite3.OperationalError("cannot switch the database to WAL mode")
            # WAL with NORMAL: a commit survives the process being killed (kill -9); only a power
            # loss can take the last commits back, never tear the database
            conn.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn


def _translate(name: str, db: Path, exc: sqlite3.Error | OSError) -> SessionError:
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return SessionError(
            f"session {name!r} is not a readable session database ({_one_line(exc)}): {db}"
        )
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else _one_line(exc)
    return SessionError(f"cannot open session {name!r}: {detail}")


class SessionStore:
    """All sessions under ``home / "sessions"``."""

    def __init__(
        self,
        home: Path,
        *,
        clock: Clock = time.time,
        migrations: Sequence[Migration] = MIGRATIONS,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> None:
        self.root = Path(home).absolute() / "sessions"
        self._clock = clock
        self._migrations = tuple(migrations)
        self._busy_ms = busy_timeout_ms

    def path(self, name: str) -> Path:
        return self.root / f"{check_name(name)}{_SUFFIX}"

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def open(self, name: str, *, create: bool = True) -> Session:
        db = self.path(name)
        if not create and not db.is_file():
            raise UnknownSession(f"no session named {name!r}")
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise SessionError(f"cannot create {self.root}: {exc.strerror}") from exc
        lock = SessionLock.acquire(self.root / f"{name}.lock", name)
        try:
            conn = self._open_db(name, db, create)
        except BaseException:
            lock.release()
            raise
        session = Session(name, db, conn, lock, self._clock)
        try:
            if len(self._migrations) >= len(MIGRATIONS):  # the journal's schema is there
                session.mark_crashed()
        except BaseException:
            session.close()
            raise
        return session

    def _open_db(self, name: str, db: Path, create: bool) -> sqlite3.Connection:
        existed = db.is_file()
        if not create and not existed:
            raise UnknownSession(f"no session named {name!r}")
        try:
            conn = _connect(db, "rwc" if create else "rw", self._busy_ms, setup=True)
        except sqlite3.Error as exc:
            raise _translate(name, db, exc) from exc
        try:
            if not existed:
                os.chmod(db, 0o600)
            migrate(conn, self._migrations, self._clock())
        except SessionError as exc:
            conn.close()
            raise SessionError(f"session {name!r}: {exc}") from exc
        except (sqlite3.Error, OSError) as exc:
            conn.close()
            raise _translate(name, db, exc) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def list(self) -> list[SessionInfo]:
        if not self.root.is_dir():
            return []
        infos = []
        for db in sorted(self.root.glob(f"*{_SUFFIX}")):
            name = db.name[: -len(_SUFFIX)]
            if SESSION_NAME.fullmatch(name) and db.is_file():
                infos.append(self._info(name, db))
        return infos

    def _info(self, name: str, db: Path) -> SessionInfo:
        try:
            conn = _connect(db, "rw", self._busy_ms, setup=False)
        except sqlite3.Error as exc:
            return SessionInfo(name, None, None, 0, 0, error=_one_line(exc))
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            turns = conn.execute("SELECT count(*) FROM turns").fetchone()[0]
            steps = conn.execute("SELECT count(*) FROM steps").fetchone()[0]
        except sqlite3.Error as exc:
            return SessionInfo(name, None, None, 0, 0, error=_one_line(exc))
        finally:
            conn.close()
        return SessionInfo(name, meta.get("created"), meta.get("updated"), turns, steps)

    def remove(self, name: str) -> None:
        db = self.path(name)
        if not db.is_file():
            raise UnknownSession(f"no session named {name!r}")
        try:
            lock = SessionLock.acquire(self.root / f"{name}.lock", name)
        except SessionInUse as exc:
            raise SessionInUse(f"cannot remove: {exc}") from None
        try:
            for path in [db, *(db.with_name(db.name + s) for s in _SIDE_FILES)]:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        except OSError as exc:
            raise SessionError(f"cannot remove session {name!r}: {exc.strerror}") from exc
        finally:
            lock.release(unlink=True)


class Session:
    """An open session; a context manager that closes it (and releases the lock)."""

    def __init__(
        self, name: str, path: Path, conn: sqlite3.Connection, lock: SessionLock, clock: Clock
    ) -> None:
        self.name = name
        self.path = path
        self._conn: sqlite3.Connection | None = conn
        self._lock = lock
        self._clock = clock
        self._mutex = threading.RLock()
        self._turn: Turn | None = None
        self._journal: JournalWriter | None = None
        self.kv = SessionKv(self)

    # lifecycle

    @property
    def closed(self) -> bool:
        return self._conn is None

    def close(self) -> None:
        """Close the database and release the lock; an open turn is rolled back."""
        with self._mutex:
            conn, self._conn = self._conn, None
            self._turn = None
            if conn is None:
                return
            try:
                conn.close()  # an uncommitted turn is rolled back by SQLite
            except sqlite3.Error as exc:
                raise SessionError(f"session {self.name!r}: close: {_one_line(exc)}") from exc
            finally:
                self._lock.release()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # the seam: every database access goes through here

    @contextlib.contextmanager
    def _db(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._mutex:
            conn = self._conn
            if conn is None:
                raise SessionError(f"session {self.name!r} is closed")
            try:
                yield conn
            except (sqlite3.Error, UnicodeError, OverflowError) as exc:
                raise SessionError(f"session {self.name!r}: {what}: {_one_line(exc)}") from exc

    @contextlib.contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """A transaction of its own, committed before it returns (one per step or less)."""
        with self._db(what) as conn:
            if conn.in_transaction:  # nested: joins the outer write
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                if self._turn is None:  # a turn touches the session once, when it ends
                    self._touch(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise

    def _touch(self, conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'updated'", (self._clock(),))

    # turns and the journal

    def turn(
        self, task: str, *, parent_run: str | None = None, price: Price | None = None,
        meta: Mapping[str, Any] | None = None, resume: int = 0,
    ) -> Turn:  # fmt: skip
        """``with session.turn(task) as turn:`` records the turn as it runs (``Turn``);
        ``price`` (dollars per million input and output tokens) gives it a cost; ``meta``
        goes into its turn_start row (what replay needs: the grant, the limits); ``resume``
        continues that recorded turn instead of starting one."""
        return Turn(self, task, parent_run=parent_run, price=price, meta=meta, resume=resume)

    def messages_of(self, turn: int) -> list[tuple[str, str]]:
        """A turn's messages (role, content) in order, its task first."""
        with self._db("read messages") as conn:
            rows = conn.execute(
                "SELECT role, content FROM messages WHERE turn = ? ORDER BY seq", (turn,)
            ).fetchall()
            return [(str(r), str(c)) for r, c in rows]

    def last_step(self, turn: int) -> int:
        with self._db("read steps") as conn:
            row = conn.execute(
                "SELECT coalesce(max(step), 0) FROM steps WHERE turn = ?", (turn,)
            ).fetchone()
            return int(row[0])

    def mark_crashed(self) -> list[int]:
        """Turns left running by a process that is gone become crashed, with a turn_end row.
        Called on open: the writer's lock proves no other writer is alive."""
        with self._db("mark crashed turns") as conn:
            rows = conn.execute(
                "SELECT id, run, parent_run, pid FROM turns WHERE state = 'running'"
            ).fetchall()
        for turn_id, run, parent, pid in rows:
            reason = f"the watt process (pid {pid}) stopped while the turn ran"
            with self._write("mark crashed turns") as conn:
                conn.execute(
                    "UPDATE turns SET state = 'crashed', reason = ? WHERE id = ?", (reason, turn_id)
                )
            self.journal.append(
                run=run or "", parent_run=parent, turn=turn_id, step=0,
                kind=JournalKind.TURN_END.value,
                data={"state": TurnState.CRASHED.value, "answer": None, "reason": reason},
            )  # fmt: skip
        return [r[0] for r in rows]

    def _add_message(self, turn: int, role: Role, content: str) -> HistoryMessage:
        if role not in _ROLES:
            raise SessionError(f"unknown message role {role!r}")
        with self._write("add message") as conn:
            cur = conn.execute(
                "INSERT INTO messages (turn, role, content) VALUES (?, ?, ?)",
                (turn, role, content),
            )
            return HistoryMessage(role, content, turn, int(cur.lastrowid or 0))

    def _add_step(self, turn: int, record: Step, cost: float | None) -> Step:
        with self._write("add step") as conn:
            number = record.step
            if number == 0:
                row = conn.execute(
                    "SELECT coalesce(max(step), 0) + 1 FROM steps WHERE turn = ?", (turn,)
                ).fetchone()
                number = int(row[0])
            program = record.program
            stored = replace(
                record, action=ActionKind(record.action), args=tuple(record.args),
                timings=dict(record.timings),
                program_hash=record.program_hash
                or (hash_program(program) if program is not None else None),
                step=number, turn=turn, created=self._clock(), cost=cost,
            )  # fmt: skip
            conn.execute(
                f"INSERT INTO steps ({STEP_COLUMNS}) VALUES ({', '.join('?' * 15)})",
                (
                    stored.turn, stored.step, stored.action.value, stored.reply, stored.program,
                    stored.program_hash, json.dumps(list(stored.args)), stored.observation,
                    stored.status, stored.fuel, json.dumps(dict(stored.timings)),
                    stored.prompt_tokens, stored.completion_tokens, stored.created, stored.cost,
                ),
            )  # fmt: skip
            return stored

    @property
    def journal(self) -> JournalWriter:
        if self._journal is None:
            with self._db("read journal") as conn:
                self._journal = JournalWriter(self, conn)
        return self._journal

    # readers

    def history(self) -> list[HistoryMessage]:
        with self._db("read history") as conn:
            rows = conn.execute("SELECT role, content, turn, seq FROM messages ORDER BY seq")
            return [HistoryMessage(*row) for row in rows.fetchall()]

    def steps(self, turn: int | None = None) -> list[Step]:
        sql = f"SELECT {STEP_COLUMNS} FROM steps"
        params: tuple[Any, ...] = ()
        if turn is not None:
            sql, params = sql + " WHERE turn = ?", (turn,)
        with self._db("read steps") as conn:
            rows = conn.execute(sql + " ORDER BY turn, step", params).fetchall()
            return [step_of(row, self.name) for row in rows]

    def turns(self) -> list[TurnRecord]:
        with self._db("read turns") as conn:
            rows = conn.execute(f"SELECT {TURN_COLUMNS} FROM turns ORDER BY id")
            return [turn_record(row) for row in rows.fetchall()]

    def answered(self, limit: int) -> list[tuple[str, str]]:
        """The last ``limit`` answered turns as (task, reply), oldest first: one indexed
        query, whatever the session's length (the history the model sees)."""
        with self._db("read history") as conn:
            rows = conn.execute(
                "SELECT task, reply FROM turns WHERE state = 'answered' AND parent_run IS NULL"
                " AND reply IS NOT NULL ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
            return [(str(t), str(r)) for t, r in reversed(rows)]

    def last_program(self) -> LastProgram | None:
        """The last successful (status 0) WAT step: its program text and args."""
        with self._db("read steps") as conn:
            row = conn.execute(
                "SELECT program, args, turn, step FROM steps WHERE action = ? AND status = 0"
                " AND program IS NOT NULL ORDER BY turn DESC, step DESC LIMIT 1",
                (ActionKind.WAT.value,),
            ).fetchone()
            if row is None:
                return None
            return LastProgram(row[0], load_args(row[1]), row[2], row[3])

    def reset(self) -> None:
        """Forget history and steps (all turns); the kv store is kept."""
        with self._mutex:
            if self._turn is not None:
                raise SessionError(f"session {self.name!r}: cannot reset during a turn")
            with self._write("reset") as conn:
                for table in ("messages", "steps", "events", "blobs", "turns"):
                    conn.execute(f"DELETE FROM {table}")
            self._journal = None  # the chain starts again from its genesis


class SessionKv:
    """The session's key-value store (the kv capability's backend): byte values in a BLOB
    column; ``get``/``set`` are the text view that people and the CLI use."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get_bytes(self, key: str) -> bytes | None:
        with self._session._db("kv get") as conn:
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
            return None if row is None else _blob(row[0])

    def set_bytes(self, key: str, value: bytes) -> None:
        with self._session._write("kv set") as conn:
            self._put(conn, key, bytes(value))

    def get(self, key: str) -> str | None:
        """The value as text; bytes that are not UTF-8 are shown as ``\\xNN`` escapes."""
        value = self.get_bytes(key)
        return None if value is None else value.decode("utf-8", errors="backslashreplace")

    def set(self, key: str, value: str) -> None:
        """Store the UTF-8 of ``value``."""
        with self._session._write("kv set") as conn:
            self._put(conn, key, value.encode("utf-8"))

    @staticmethod
    def _put(conn: sqlite3.Connection, key: str, value: bytes) -> None:
        conn.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def delete(self, key: str) -> bool:
        with self._session._write("kv delete") as conn:
            return conn.execute("DELETE FROM kv WHERE key = ?", (key,)).rowcount > 0

    def keys(self) -> list[str]:
        with self._session._db("kv keys") as conn:
            return [str(r[0]) for r in conn.execute("SELECT key FROM kv ORDER BY key")]


def _blob(value: object) -> bytes:
    """A kv value as stored: a BLOB since schema 2 (text from an older writer is its UTF-8)."""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")
