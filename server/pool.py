"""Open sessions and running turns: one writer per session, caps on what runs at once.

The server holds at most one open ``Parts`` per session (the session's writer lock) and
keeps it open between turns, closing it after ``idle_close_s`` unused so another watt process
can use the session. ``reserve`` claims a session for one turn (or one kv program): a second
claim while it runs is ``Busy`` (409), one past ``max_running`` claims is ``TooMany`` (429).
An ``Idempotency-Key`` seen before on the same session returns the first claim's ``Running``
instead of starting another turn. A claim may carry its own settings and model (a named
agent's, narrowed to the server's): open parts built otherwise are closed and built again.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.app import Parts, open_parts
from agent.config import Settings
from agent.models.messages import ChatModel
from agent.store.sessions import SessionStore
from server.config import MAX_IDEMPOTENCY_KEYS, ServeConfig

TASK_KEPT = 200
"""Characters of a finished claim's task kept (for messages) while its key is remembered."""


def _digest(task: str) -> str:
    return hashlib.sha256(task.encode("utf-8", "surrogatepass")).hexdigest()


class Busy(Exception):
    """The session already runs a turn (409)."""


class TooMany(Exception):
    """The server already runs ``max_running`` turns (429)."""


class KeyReused(Exception):
    """An Idempotency-Key came back with a different task (422)."""


@dataclass
class Running:
    """One claim on a session: a turn (or a kv program) from reservation to its end."""

    session: str
    task: str
    key: str | None = None
    started: float = field(default_factory=time.time)
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)  # open() has ended
    opened: bool = False  # the session opened: start_seq is known and the turn starts
    start_seq: int = 0  # the journal's last seq before the turn: its rows come after it
    turn: int | None = None  # the turn's id once its turn_start row is read
    run: str | None = None
    error: str | None = None  # why the turn could not start or ended without a turn_end
    digest: str = ""  # the task's sha256: what a repeated Idempotency-Key is compared with
    # the turn's rows as ``on_entry`` gives them, by seq, while it runs: tails read them here
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)
    settings: Settings | None = None  # the parts' settings when not the server's (an agent's)
    model: ChatModel | None = None  # the model when not the server's
    instructions: str = ""  # a named agent's --system text

    def to_dict(self) -> dict[str, Any]:
        return {
            "session": self.session, "turn": self.turn, "run": self.run, "task": self.task,
            "started": self.started, "state": "finished" if self.done.is_set() else "running",
        }  # fmt: skip


@dataclass
class Slot:
    parts: Parts | None = None
    built: tuple[Settings, ChatModel | None] | None = None  # what ``parts`` were opened with
    running: Running | None = None
    last_used: float = field(default_factory=time.monotonic)


class Pool:
    def __init__(self, config: ServeConfig, model: Callable[[], ChatModel | None]) -> None:
        self.config = config
        self.store = SessionStore(config.settings.home)
        self._model = model
        self._lock = threading.Lock()
        self._slots: dict[str, Slot] = {}
        self._keys: OrderedDict[tuple[str, str], Running] = OrderedDict()
        self.closing = threading.Event()

    # ---- claims ---------------------------------------------------------------------------
    def reserve(self, name: str, task: str, key: str | None = None) -> tuple[Running, bool]:
        """Claim ``name`` for a turn: ``(running, True)`` for a new claim, ``(earlier, False)``
        when ``key`` was seen with the same task. Raises Busy, TooMany or KeyReused."""
        with self._lock:
            if key is not None and (name, key) in self._keys:
                earlier = self._keys[(name, key)]
                if earlier.digest != _digest(task):
                    raise KeyReused("this Idempotency-Key was used with a different task")
                return earlier, False
            slot = self._slots.setdefault(name, Slot())
            if slot.running is not None:
                raise Busy(self._busy_text(name, slot.running))
            if self.running_count() >= self.config.max_running:
                raise TooMany(f"{self.config.max_running} turns are running; retry shortly")
            running = Running(name, task, key, digest=_digest(task))
            slot.running = running
            if key is not None:
                self._keys[(name, key)] = running
                while len(self._keys) > MAX_IDEMPOTENCY_KEYS:
                    self._keys.popitem(last=False)
            return running, True

    @staticmethod
    def _busy_text(name: str, running: Running) -> str:
        which = f"turn {running.turn}" if running.turn is not None else "a turn"
        return f"session {name!r} is running {which} ({running.task[:60]!r}); wait for it"

    def cached(self, running: Running) -> Parts | None:
        """The claimed session's parts when they are open already (no thread needed)."""
        with self._lock:
            slot = self._slots[running.session]
            parts = slot.parts
        if parts is None or parts.session is None or slot.built != self._build(running):
            return None
        running.start_seq, running.opened = parts.session.journal.seq, True
        running.ready.set()
        return parts

    def open(self, running: Running) -> Parts:
        """The claimed session's parts, opened if need be (SessionInUse when another process
        holds it: the claim is then released). Blocking: call it off the event loop."""
        settings, model = built = self._build(running)
        with self._lock:
            slot = self._slots[running.session]
            parts = slot.parts
            if parts is not None and slot.built != built:  # opened for other settings
                slot.parts = None
                parts.close()
                parts = None
        if parts is None:
            try:
                parts = open_parts(settings, model=model, session=running.session)
            except BaseException as exc:
                running.error = str(exc) or type(exc).__name__
                self.forget_key(running)
                self.release(running)
                running.ready.set()
                raise
            with self._lock:
                slot.parts, slot.built = parts, built
        running.start_seq = parts.session.journal.seq if parts.session is not None else 0
        running.opened = True
        running.ready.set()
        return parts

    def _build(self, running: Running) -> tuple[Settings, ChatModel | None]:
        model = running.model if running.model is not None else self._model()
        return running.settings or self.config.settings, model

    def release(self, running: Running) -> None:
        with self._lock:
            slot = self._slots.get(running.session)
            if slot is not None and slot.running is running:
                slot.running = None
                slot.last_used = time.monotonic()
        running.rows.clear()  # from here tails read the journal
        running.task = running.task[:TASK_KEPT]  # a kept Idempotency-Key holds no long task
        running.done.set()

    def forget_key(self, running: Running) -> None:
        """A claim that never started a turn must not answer later retries."""
        with self._lock:
            if (
                running.key is not None
                and self._keys.get((running.session, running.key)) is running
            ):
                del self._keys[(running.session, running.key)]

    def running_count(self) -> int:
        return sum(1 for s in self._slots.values() if s.running is not None)

    def running(self) -> list[Running]:
        with self._lock:
            return [s.running for s in self._slots.values() if s.running is not None]

    def running_in(self, name: str) -> Running | None:
        with self._lock:
            slot = self._slots.get(name)
            return slot.running if slot is not None else None

    # ---- closing --------------------------------------------------------------------------
    def close_session(self, name: str) -> None:
        """Close ``name``'s parts (before removing it); Busy while it runs."""
        with self._lock:
            slot = self._slots.get(name)
            if slot is None:
                return
            if slot.running is not None:
                raise Busy(self._busy_text(name, slot.running))
            del self._slots[name]
            if slot.parts is not None:  # under the lock: a new claim must not open it first
                slot.parts.close()

    def close_idle(self, now: float | None = None) -> int:
        """Close the sessions unused for ``idle_close_s`` (under the lock, so a claim that
        comes meanwhile opens the session after it is released, not before)."""
        now = time.monotonic() if now is None else now
        closed = 0
        with self._lock:
            for name, slot in list(self._slots.items()):
                if slot.running is None and now - slot.last_used >= self.config.idle_close_s:
                    if slot.parts is not None:
                        slot.parts.close()
                        closed += 1
                    del self._slots[name]
        return closed

    def cancel_all(self) -> None:
        self.closing.set()
        for running in self.running():
            running.cancel.set()

    def close(self, wait_s: float = 10.0) -> None:
        """Cancel what runs, wait for the turns to be recorded (interrupted), close all."""
        self.cancel_all()
        deadline = time.monotonic() + wait_s
        for running in self.running():
            running.done.wait(max(0.0, deadline - time.monotonic()))
        with self._lock:
            slots, self._slots = list(self._slots.values()), {}
        for slot in slots:
            if slot.parts is not None and (slot.running is None or slot.running.done.is_set()):
                slot.parts.close()
