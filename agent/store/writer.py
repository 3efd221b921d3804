"""The session's writing side of the journal: ``JournalWriter`` appends chained rows, ``Turn``
records one turn as it runs (see ``agent.store.sessions`` and ``agent.store.journal``).

Every write is its own short transaction, committed before it returns: a turn killed at any
point keeps every row written before the kill (SECURITY.md rule 13).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Protocol

from agent.models.messages import Role
from agent.steps import Step
from agent.store.journal import (
    BLOB_INLINE,
    GENESIS,
    Entry,
    JournalKind,
    TurnState,
    canonical,
    chain,
    new_run_id,
    process_start,
    utc_now,
)
from rt.errors import Interrupted, SessionError


class Session(Protocol):
    """What the writer needs of ``agent.store.sessions.Session`` (which imports this module)."""

    name: str
    _turn: Turn | None

    @property
    def closed(self) -> bool: ...

    @property
    def journal(self) -> JournalWriter: ...

    def _clock(self) -> float: ...

    def _write(self, what: str) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...

    def _touch(self, conn: sqlite3.Connection) -> None: ...

    def _add_message(self, turn: int, role: Role, content: str) -> Any: ...

    def _add_step(self, turn: int, record: Step, cost: float | None) -> Step: ...


Price = tuple[float, float]  # dollars per million input tokens, per million output tokens


def cost_of(price: Price | None, input_tokens: int, output_tokens: int) -> float | None:
    if price is None:
        return None
    return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class JournalWriter:
    """Appends rows to ``events``, each chained to the one before by its hash."""

    def __init__(self, session: Session, conn: sqlite3.Connection) -> None:
        self._session = session
        row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        self.seq, self.head = (0, GENESIS) if row is None else (int(row[0]), str(row[1]))

    def append(
        self, *, run: str, parent_run: str | None, turn: int, step: int, kind: str,
        data: Mapping[str, Any], also: Callable[[sqlite3.Connection], object] | None = None,
    ) -> Entry:  # fmt: skip
        """Append one row and commit it (with ``also``'s writes, in the same transaction);
        the in-memory head moves only once it is stored."""
        with self._session._write(f"journal {kind}") as conn:
            if also is not None:
                also(conn)
            entry = self._insert(conn, run, parent_run, turn, step, kind, data)
        self.seq, self.head = entry.seq, entry.hash
        return entry

    def _insert(
        self, conn: sqlite3.Connection, run: str, parent_run: str | None, turn: int, step: int,
        kind: str, data: Mapping[str, Any],
    ) -> Entry:  # fmt: skip
        seq = self.seq + 1
        ts = utc_now(self._session._clock())
        entry = Entry(seq, run, parent_run, turn, step, ts, kind, dict(data))
        digest = chain(self.head, canonical(entry.to_dict()))
        stored = json.dumps(dict(data), sort_keys=True, separators=(",", ":"))
        conn.execute(
            "INSERT INTO events (seq, run, parent_run, turn, step, ts, kind, data, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, run, parent_run, turn, step, ts, kind, stored, digest),
        )
        return Entry(seq, run, parent_run, turn, step, ts, kind, entry.data, digest)

    def body(self, data: bytes) -> dict[str, Any]:
        """A recorded body: inline text when short and UTF-8, else a blob stored once by hash."""
        if len(data) <= BLOB_INLINE:
            try:
                return {"text": data.decode("utf-8")}
            except UnicodeDecodeError:
                return {"hex": data.hex()}
        digest = hashlib.sha256(data).hexdigest()
        with self._session._write("store blob") as conn:
            conn.execute("INSERT OR IGNORE INTO blobs (hash, data) VALUES (?, ?)", (digest, data))
        return {"blob": digest, "size": len(data)}


class Turn:
    """One turn, recorded as it runs; get it from ``Session.turn``, use it as a context manager.

    ``record`` appends a journal row for an event of the loop; ``add_message`` and
    ``add_step`` (the loop's recorder) keep the model's messages and the steps. ``finish``
    sets the state; leaving the block without it marks the turn interrupted (Ctrl-C) or
    failed (any other exception, or no answer).
    """

    def __init__(
        self, session: Session, task: str, *, parent_run: str | None = None,
        price: Price | None = None, meta: Mapping[str, Any] | None = None,
        resume: int = 0, run: str | None = None,
    ) -> None:  # fmt: skip
        self.session = session
        self.task = task
        self.meta = dict(meta or {})  # what the turn_start row records besides the task
        self.parent_run = parent_run
        self.price = price
        self.id = resume  # a recorded turn to continue (``--resume``), else a new one
        self.run = run or ""  # given for a child agent's turn (derived from its parent's run)
        self._outer: Turn | None = None  # a child's: the parent's turn, open under it
        self.state = TurnState.RUNNING
        self.input_tokens = self.output_tokens = 0
        self.cost: float | None = None

    # lifecycle

    def __enter__(self) -> Turn:
        session = self.session
        if session._turn is not None:
            # a child agent's turn opens under its parent's (one writer: the same Session)
            if self.parent_run is None or session._turn.run != self.parent_run:
                raise SessionError(f"session {session.name!r}: a turn is already open")
            self._outer = session._turn
        if self.id:
            return self._reopen()
        self.run = self.run or new_run_id(session._clock())
        with session._write("begin turn") as conn:
            cur = conn.execute(
                "INSERT INTO turns (task, started, run, state, pid, pid_start, parent_run)"
                " VALUES (?, ?, ?, 'running', ?, ?, ?)",
                (self.task, session._clock(), self.run, os.getpid(),
                 process_start(os.getpid()), self.parent_run),
            )  # fmt: skip
            self.id = int(cur.lastrowid or 0)
        session._turn = self
        self.record(JournalKind.TURN_START.value, 0, {**self.meta, "task": self.task})
        return self

    def _reopen(self) -> Turn:
        session = self.session
        with session._write("resume turn") as conn:
            row = conn.execute(
                "SELECT run, input_tokens, output_tokens, cost FROM turns WHERE id = ?", (self.id,)
            ).fetchone()
            if row is None:
                raise SessionError(f"session {session.name!r} has no turn {self.id}")
            conn.execute(
                "UPDATE turns SET state = 'running', finished = NULL, reason = NULL, pid = ?,"
                " pid_start = ? WHERE id = ?",
                (os.getpid(), process_start(os.getpid()), self.id),
            )
        self.run, self.input_tokens, self.output_tokens, self.cost = row
        session._turn = self
        self.record(JournalKind.TURN_START.value, 0, {**self.meta, "task": self.task,
                                                       "resumed": True})  # fmt: skip
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self.state is TurnState.RUNNING and not self.session.closed:
                if et is None:
                    self.finish(TurnState.FAILED, reason="the turn ended with no answer")
                elif issubclass(et, (KeyboardInterrupt, GeneratorExit, Interrupted)):
                    self.finish(TurnState.INTERRUPTED, reason="interrupted")
                else:
                    self.finish(TurnState.FAILED, reason=_one_line(ev) if ev else et.__name__)
        except SessionError:
            if et is None:
                raise  # else the escaping exception wins; the next writer marks the turn
        finally:
            if self.session._turn is self:
                self.session._turn = self._outer

    def finish(
        self, state: TurnState, *, answer: str | None = None, reply: str | None = None,
        reason: str | None = None,
    ) -> None:  # fmt: skip
        """End the turn: its state, the answer, the reply the history shows, why it stopped."""
        self._check()
        now = self.session._clock()

        def end(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE turns SET state = ?, finished = ?, answer = ?, reply = ?, reason = ?"
                " WHERE id = ?",
                (state.value, now, answer, reply, reason, self.id),
            )
            self.session._touch(conn)

        self.record(
            JournalKind.TURN_END.value, 0,
            {"state": state.value, "answer": answer, "reason": reason, "cost": self.cost,
             "usage": {"input": self.input_tokens, "output": self.output_tokens}},
            also=end,
        )  # fmt: skip
        self.state = state

    def _check(self) -> None:
        if self.session._turn is not self:
            raise SessionError(f"session {self.session.name!r}: turn {self.id} is not open")

    # the journal

    def record(
        self, kind: str, step: int, data: Mapping[str, Any],
        also: Callable[[sqlite3.Connection], object] | None = None,
    ) -> Entry:  # fmt: skip
        """Append one event of this turn; a model call's usage adds to the turn's tokens and
        cost, in the same transaction as its row."""
        self._check()
        usage = data.get("usage") if kind == "thinking" else None
        totals = None
        if isinstance(usage, Mapping):
            tokens = (self.input_tokens + int(usage.get("input", 0)),
                      self.output_tokens + int(usage.get("output", 0)))  # fmt: skip
            totals = (*tokens, cost_of(self.price, *tokens))

            def charge(conn: sqlite3.Connection) -> None:
                conn.execute(
                    "UPDATE turns SET input_tokens = ?, output_tokens = ?, cost = ? WHERE id = ?",
                    (*totals, self.id),
                )

            also = charge
        entry = self.session.journal.append(
            run=self.run, parent_run=self.parent_run, turn=self.id, step=step, kind=kind,
            data=data, also=also,
        )  # fmt: skip
        if totals is not None:
            self.input_tokens, self.output_tokens, self.cost = totals
        return entry

    # the loop's recorder

    def add_message(self, role: Role, content: str) -> Any:
        self._check()
        return self.session._add_message(self.id, role, content)

    def add_step(self, record: Step) -> Step:
        """Record one step and return it as stored: this turn's id, the time, the program's
        hash, its cost, and ``record.step`` or, when that is 0, the turn's next number."""
        self._check()
        tokens = (record.prompt_tokens or 0, record.completion_tokens or 0)
        return self.session._add_step(self.id, record, cost_of(self.price, *tokens))
