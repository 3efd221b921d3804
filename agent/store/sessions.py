"""Sessions: a conversation's history, steps and key-value store, persisted in SQLite.

Layout under ``<home>/sessions/``: one database per session, ``<name>.sqlite`` (WAL mode,
busy timeout, foreign keys on), and ``<name>.lock``, an exclusive advisory ``flock`` held for
as long as the ``Session`` is open, with the holder's pid written in it. A second open of
the same session, from another process or from this one, raises ``SessionInUse``. The OS
drops the lock when the holder dies, even by ``kill -9``, so a lock is never stale.

One transaction per turn: ``with session.turn(task) as turn:`` opens a SQLite transaction;
history, steps and kv writes made until the block ends go into it and are committed together
at the end, or rolled back together if any exception escapes (``KeyboardInterrupt``
included). Reads on the session inside the turn (history, steps, kv) see the turn's own
pending writes. Outside a turn a kv write commits at once. A process killed mid-turn loses
that turn whole, never half of it.

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
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, get_args

from agent.models.messages import Role
from agent.steps import ActionKind, Step
from agent.store.lock import SessionLock
from agent.store.schema import MIGRATIONS, Migration, migrate
from rt.errors import ConfigError, SessionError, SessionInUse

BUSY_TIMEOUT_MS = 5000
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
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
class TurnInfo:
    id: int
    task: str
    started: float
    finished: float | None


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


def check_name(name: str) -> str:
    """A session name is a file name: never ``.``/``..``, a path separator or a control."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or not name.strip("."):
        raise ConfigError(
            f"invalid session name {name!r}: use 1-64 letters, digits, '_', '.' or '-' "
            "(not only dots)"
        )
    return name


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
            conn.execute("PRAGMA synchronous = FULL")
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
            raise SessionError(f"no session named {name!r}")
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
        return Session(name, db, conn, lock, self._clock)

    def _open_db(self, name: str, db: Path, create: bool) -> sqlite3.Connection:
        existed = db.is_file()
        if not create and not existed:
            raise SessionError(f"no session named {name!r}")
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
            if _NAME.fullmatch(name) and db.is_file():
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
            raise SessionError(f"no session named {name!r}")
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
    def _db(self, what: str, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        with self._mutex:
            conn = self._conn
            if conn is None:
                raise SessionError(f"session {self.name!r} is closed")
            if write and self._turn is not None and not conn.in_transaction:
                raise SessionError(
                    f"session {self.name!r}: the turn's transaction was lost; it will not be saved"
                )
            try:
                yield conn
            except (sqlite3.Error, UnicodeError, OverflowError) as exc:
                raise SessionError(f"session {self.name!r}: {what}: {_one_line(exc)}") from exc

    @contextlib.contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """Inside a turn: join its transaction. Outside: a transaction of its own."""
        with self._db(what, write=True) as conn:
            if self._turn is not None:
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                self._touch(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise

    def _touch(self, conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'updated'", (self._clock(),))

    # turns

    def turn(self, task: str) -> Turn:
        """``with session.turn(task) as turn:`` — everything in the block commits together."""
        return Turn(self, task)

    def _begin(self, turn: Turn) -> int:
        with self._db("begin turn") as conn:
            if self._turn is not None:
                raise SessionError(f"session {self.name!r}: a turn is already open")
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute(
                    "INSERT INTO turns (task, started) VALUES (?, ?)", (turn.task, self._clock())
                )
            except BaseException:
                conn.rollback()
                raise
            self._turn = turn
            return int(cur.lastrowid or 0)

    def _end(self, turn: Turn, commit: bool) -> None:
        """Commit the turn, or roll it back (quietly, so the escaping exception wins)."""
        with self._mutex:
            conn = self._conn
            if self._turn is not turn or conn is None:
                return  # the session was closed meanwhile, which rolled the turn back
            self._turn = None
            try:
                if commit:
                    if not conn.in_transaction:
                        raise sqlite3.OperationalError("the transaction was lost")
                    now = self._clock()
                    conn.execute("UPDATE turns SET finished = ? WHERE id = ?", (now, turn.id))
                    self._touch(conn)
                    conn.execute("COMMIT")
            except (sqlite3.Error, UnicodeError, OverflowError) as exc:
                raise SessionError(
                    f"session {self.name!r}: cannot save turn {turn.id}: {_one_line(exc)}"
                ) from exc
            finally:
                with contextlib.suppress(sqlite3.Error):
                    if conn.in_transaction:
                        conn.rollback()

    # readers

    def history(self) -> list[HistoryMessage]:
        with self._db("read history") as conn:
            rows = conn.execute("SELECT role, content, turn, seq FROM messages ORDER BY seq")
            return [HistoryMessage(*row) for row in rows.fetchall()]

    def steps(self, turn: int | None = None) -> list[Step]:
        sql = f"SELECT {_STEP_COLUMNS} FROM steps"
        params: tuple[Any, ...] = ()
        if turn is not None:
            sql, params = sql + " WHERE turn = ?", (turn,)
        with self._db("read steps") as conn:
            rows = conn.execute(sql + " ORDER BY turn, step", params).fetchall()
            return [self._step(row) for row in rows]

    def turns(self) -> list[TurnInfo]:
        with self._db("read turns") as conn:
            rows = conn.execute("SELECT id, task, started, finished FROM turns ORDER BY id")
            return [TurnInfo(*row) for row in rows.fetchall()]

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
            return LastProgram(row[0], _load_args(row[1]), row[2], row[3])

    def reset(self) -> None:
        """Forget history and steps (all turns); the kv store is kept."""
        with self._mutex:
            if self._turn is not None:
                raise SessionError(f"session {self.name!r}: cannot reset during a turn")
            with self._write("reset") as conn:
                for table in ("messages", "steps", "turns"):
                    conn.execute(f"DELETE FROM {table}")

    def _step(self, row: Sequence[Any]) -> Step:
        try:
            action = ActionKind(row[2])
            timings = json.loads(row[10])
        except (ValueError, TypeError) as exc:
            raise SessionError(f"session {self.name!r}: malformed step row: {exc}") from exc
        return Step(
            turn=row[0], step=row[1], action=action, reply=row[3], program=row[4],
            program_hash=row[5], args=_load_args(row[6]), observation=row[7], status=row[8],
            fuel=row[9], timings=timings, prompt_tokens=row[11], completion_tokens=row[12],
            created=row[13],
        )  # fmt: skip


_STEP_COLUMNS = (
    "turn, step, action, reply, program, program_hash, args, observation, status, fuel,"
    " timings, prompt_tokens, completion_tokens, created"
)


def _load_args(text: str) -> tuple[str, ...]:
    try:
        value = json.loads(text)
    except ValueError:
        return ()
    return tuple(str(a) for a in value) if isinstance(value, list) else ()


class Turn:
    """One turn's transaction; get it from ``Session.turn`` and use it as a context manager."""

    def __init__(self, session: Session, task: str) -> None:
        self.session = session
        self.task = task
        self.id = 0

    def __enter__(self) -> Turn:
        self.id = self.session._begin(self)
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.session._end(self, commit=et is None)

    def _check(self) -> None:
        if self.session._turn is not self:
            raise SessionError(f"session {self.session.name!r}: turn {self.id} is not open")

    def add_message(self, role: Role, content: str) -> HistoryMessage:
        if role not in _ROLES:
            raise SessionError(f"unknown message role {role!r}")
        with self.session._write("add message") as conn:
            self._check()
            cur = conn.execute(
                "INSERT INTO messages (turn, role, content) VALUES (?, ?, ?)",
                (self.id, role, content),
            )
            return HistoryMessage(role, content, self.id, int(cur.lastrowid or 0))

    def add_step(self, record: Step) -> Step:
        """Record one step and return it as stored: this turn's id, the time, the program's
        hash, and ``record.step`` or, when that is 0, the turn's next number (from 1)."""
        with self.session._write("add step") as conn:
            self._check()
            number = record.step
            if number == 0:
                row = conn.execute(
                    "SELECT coalesce(max(step), 0) + 1 FROM steps WHERE turn = ?", (self.id,)
                ).fetchone()
                number = int(row[0])
            program = record.program
            stored = replace(
                record,
                action=ActionKind(record.action),
                args=tuple(record.args),
                timings=dict(record.timings),
                program_hash=record.program_hash
                or (hash_program(program) if program is not None else None),
                step=number,
                turn=self.id,
                created=self.session._clock(),
            )
            conn.execute(
                f"INSERT INTO steps ({_STEP_COLUMNS}) VALUES ({', '.join('?' * 14)})",
                (
                    stored.turn, stored.step, stored.action.value, stored.reply, stored.program,
                    stored.program_hash, json.dumps(list(stored.args)), stored.observation,
                    stored.status, stored.fuel, json.dumps(dict(stored.timings)),
                    stored.prompt_tokens, stored.completion_tokens, stored.created,
                ),
            )  # fmt: skip
            return stored


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
