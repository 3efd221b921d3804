"""The journal: every event of every run, appended to the session database as it happens.

Rows of the ``events`` table carry a per-session monotonic ``seq``, the run id, the turn, the
step, a UTC timestamp, the kind and the event's JSON. Each row also holds
``hash = sha256(previous row's hash + the row's canonical JSON)`` (the first row chains to
``GENESIS``), so an edited, removed or reordered row is found by ``verify``.

An entry's JSON (``Entry.to_dict``) is what ``watt ask --json``, ``watt log --json`` and the
server stream: ``schema``, ``seq``, ``run``, ``parent_run``, ``turn``, ``step``, ``ts``,
``kind`` and the kind's fields. Bodies larger than ``BLOB_INLINE`` bytes (recorded host
results) are stored once in ``blobs`` by their sha256 and referenced as ``{"blob": HASH}``.

Readers never take the writer's lock: they open the database read-only (SQLite WAL readers
do not wait for the writer). A turn the reader finds ``running`` whose writer process is gone
(its pid and start time recorded in the turn) is reported ``crashed``; the next writer marks
it so in the database.

This module reads; the writer is ``agent.store.sessions.Session``.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agent.steps import ActionKind, Step
from rt.errors import SessionError, UnknownSession

SCHEMA = 1  # the event JSON's version: bumped on an incompatible change
GENESIS = "0" * 64
BLOB_INLINE = 1024


class TurnState(str, enum.Enum):
    RUNNING = "running"
    ANSWERED = "answered"
    FAILED = "failed"
    STOPPED = "stopped"  # the loop guard, a budget or the step limit
    INTERRUPTED = "interrupted"  # Ctrl-C, a client gone, a kill request
    CRASHED = "crashed"  # the process died while the turn ran


class JournalKind(str, enum.Enum):
    """Journal rows that are not the loop's own events."""

    TURN_START = "turn_start"
    TURN_END = "turn_end"
    HOST_CALL = "host_call"  # a host call's result from outside the sandbox, or a side effect


# --- rows ---------------------------------------------------------------------------------


def canonical(value: Any) -> str:
    """The canonical JSON the hash chain is computed over: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain(previous: str, row_json: str) -> str:
    return hashlib.sha256((previous + row_json).encode("utf-8", "surrogatepass")).hexdigest()


def utc_now(clock_value: float) -> str:
    return datetime.fromtimestamp(clock_value, timezone.utc).isoformat(timespec="milliseconds")


def new_run_id(now: float | None = None) -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits; sorts by time."""
    ms = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64
    value |= (0b10 << 62) | (rand & ((1 << 62) - 1))
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True)
class Entry:
    """One journal row."""

    seq: int
    run: str
    parent_run: str | None
    turn: int
    step: int
    ts: str
    kind: str
    data: Mapping[str, Any]
    hash: str = ""

    def to_dict(self) -> dict[str, Any]:
        head = {
            "schema": SCHEMA, "seq": self.seq, "run": self.run, "parent_run": self.parent_run,
            "turn": self.turn, "step": self.step, "ts": self.ts, "kind": self.kind,
        }  # fmt: skip
        return {**self.data, **head}


def _entry(row: tuple[Any, ...]) -> Entry:
    seq, run, parent, turn, step, ts, kind, data, digest = row
    try:
        fields = json.loads(data)
    except ValueError:
        fields = {"unreadable": data}
    return Entry(seq, run, parent, turn, step, ts, kind, fields, digest)


ENTRY_COLUMNS = "seq, run, parent_run, turn, step, ts, kind, data, hash"


STEP_COLUMNS = (
    "turn, step, action, reply, program, program_hash, args, observation, status, fuel,"
    " timings, prompt_tokens, completion_tokens, created, cost"
)


def load_args(text: str) -> tuple[str, ...]:
    try:
        value = json.loads(text)
    except ValueError:
        return ()
    return tuple(str(a) for a in value) if isinstance(value, list) else ()


def step_of(row: Sequence[Any], session: str) -> Step:
    """A ``steps`` row as the step record."""
    try:
        action = ActionKind(row[2])
        timings = json.loads(row[10])
    except (ValueError, TypeError) as exc:
        raise SessionError(f"session {session!r}: malformed step row: {exc}") from exc
    return Step(
        turn=row[0], step=row[1], action=action, reply=row[3], program=row[4],
        program_hash=row[5], args=load_args(row[6]), observation=row[7], status=row[8],
        fuel=row[9], timings=timings, prompt_tokens=row[11], completion_tokens=row[12],
        created=row[13], cost=row[14],
    )  # fmt: skip


# --- process identity (is a turn's writer still alive?) -----------------------------------


def process_start(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (Linux ``/proc``), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def process_alive(pid: int | None, start: str | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    now = process_start(pid)
    return start is None or now is None or now == start


# --- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TurnRecord:
    id: int
    run: str
    task: str
    state: TurnState
    started: float
    finished: float | None
    answer: str | None
    reason: str | None
    input_tokens: int
    output_tokens: int
    cost: float | None
    parent_run: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "turn": self.id, "run": self.run, "task": self.task, "state": self.state.value,
            "started": utc_now(self.started),
            "finished": None if self.finished is None else utc_now(self.finished),
            "answer": self.answer, "reason": self.reason,
            "usage": {"input": self.input_tokens, "output": self.output_tokens},
            "cost": self.cost, "parent_run": self.parent_run,
        }  # fmt: skip


TURN_COLUMNS = (
    "id, run, task, state, started, finished, answer, reason, input_tokens, output_tokens,"
    " cost, parent_run, pid, pid_start"
)


def turn_record(row: tuple[Any, ...]) -> TurnRecord:
    """A ``turns`` row; a running turn whose process is gone reads as crashed."""
    state = TurnState(row[3]) if row[3] in TurnState._value2member_map_ else TurnState.FAILED
    reason = row[7]
    if state is TurnState.RUNNING and not process_alive(row[12], row[13]):
        state, reason = TurnState.CRASHED, f"the watt process (pid {row[12]}) is gone"
    return TurnRecord(
        id=row[0], run=row[1] or "", task=row[2], state=state, started=row[4], finished=row[5],
        answer=row[6], reason=reason, input_tokens=row[8], output_tokens=row[9], cost=row[10],
        parent_run=row[11],
    )  # fmt: skip


def _connect_ro(path: Path, *, immutable: bool = False) -> sqlite3.Connection:
    flags = "mode=ro&immutable=1" if immutable else "mode=ro"
    conn = sqlite3.connect(
        f"{path.absolute().as_uri()}?{flags}", uri=True, isolation_level=None,
        check_same_thread=False, timeout=5,
    )  # fmt: skip
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def _open_ro(path: Path) -> tuple[sqlite3.Connection, Any]:
    """A read-only connection and the schema version. A WAL reader must create the ``-shm``
    file beside the database, which a read-only or full filesystem refuses; when no writer
    is there (no ``-wal`` with frames in it), the file alone is the whole database, so it is
    read as immutable instead."""
    conn = _connect_ro(path)
    try:
        return conn, conn.execute("SELECT version FROM schema_version").fetchone()
    except sqlite3.OperationalError:
        conn.close()
        wal = path.with_name(path.name + "-wal")
        if wal.is_file() and wal.stat().st_size > 0:
            raise
    conn = _connect_ro(path, immutable=True)
    try:
        return conn, conn.execute("SELECT version FROM schema_version").fetchone()
    except BaseException:
        conn.close()
        raise


class Reader:
    """A read-only view of one session's database; needs no lock, never blocks the writer."""

    def __init__(self, path: Path, name: str) -> None:
        self.path, self.name = path, name
        if not path.is_file():
            raise UnknownSession(f"no session named {name!r}")
        try:
            self._conn, version = _open_ro(path)
        except sqlite3.Error as exc:
            raise SessionError(f"cannot read session {name!r}: {exc}") from exc
        if version is None or int(version[0]) < 3:
            self._conn.close()
            raise SessionError(
                f"session {name!r} has no journal yet (an older watt wrote it); "
                "open it once with this watt (watt ask --session NAME ...) to migrate it"
            )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _query(self, what: str) -> Iterator[sqlite3.Connection]:
        try:
            yield self._conn
        except sqlite3.Error as exc:
            raise SessionError(f"session {self.name!r}: {what}: {exc}") from exc

    def turns(self, turn: int | None = None, *, last: int | None = None) -> list[TurnRecord]:
        """Every turn in order, or turn ``turn``, or the ``last`` ones (read from the end)."""
        sql, params = f"SELECT {TURN_COLUMNS} FROM turns", ()
        if turn is not None:
            sql, params = sql + " WHERE id = ?", (turn,)  # type: ignore[assignment]
        if last is not None:
            sql = f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT {int(last)})"
        with self._query("read turns") as conn:
            return [turn_record(r) for r in conn.execute(sql + " ORDER BY id", params)]

    def entries(
        self, *, after: int = 0, turn: int | None = None, limit: int | None = None
    ) -> list[Entry]:
        sql = f"SELECT {ENTRY_COLUMNS} FROM events WHERE seq > ?"
        params: list[Any] = [after]
        if turn is not None:
            sql += " AND turn = ?"
            params.append(turn)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._query("read events") as conn:
            return [_entry(r) for r in conn.execute(sql, params)]

    def steps(self, turn: int | None = None, *, since: int = 0) -> list[Step]:
        """The steps of turn ``turn``, else of every turn from ``since`` on."""
        sql, params = f"SELECT {STEP_COLUMNS} FROM steps WHERE turn >= ?", (since,)
        if turn is not None:
            sql, params = f"SELECT {STEP_COLUMNS} FROM steps WHERE turn = ?", (turn,)
        with self._query("read steps") as conn:
            return [
                step_of(r, self.name) for r in conn.execute(sql + " ORDER BY turn, step", params)
            ]

    def last_seq(self) -> int:
        with self._query("read events") as conn:
            row = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
            return int(row[0])

    def blob(self, digest: str) -> bytes | None:
        with self._query("read blob") as conn:
            row = conn.execute("SELECT data FROM blobs WHERE hash = ?", (digest,)).fetchone()
            return None if row is None else bytes(row[0])

    def follow(
        self, *, after: int = 0, stop: threading.Event | None = None, poll: float = 0.1
    ) -> Iterator[Entry]:
        """Entries after ``after``, then new ones as they are appended, until ``stop`` is set."""
        stop = stop or threading.Event()
        while True:
            batch = self.entries(after=after, limit=500)
            for entry in batch:
                after = entry.seq
                yield entry
            if not batch and stop.wait(poll):
                return

    def verify(self) -> Verdict:
        """Walk the hash chain from the first row."""
        previous, count = GENESIS, 0
        with self._query("verify") as conn:
            for row in conn.execute(f"SELECT {ENTRY_COLUMNS} FROM events ORDER BY seq"):
                entry = _entry(row)
                expected = chain(previous, canonical(entry.to_dict()))
                if entry.hash != expected:
                    return Verdict(False, count, previous, entry.seq)
                previous, count = entry.hash, count + 1
        return Verdict(True, count, previous, None)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    rows: int
    head: str  # the last good row's hash
    bad_seq: int | None
