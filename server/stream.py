"""Journal tails as Server-Sent Events.

Each journal row is one event: ``id: <seq>``, ``event: <kind>``, ``data: <the row's JSON,
as watt ask --json prints it>``. A tail reads the rows after a seq from the journal (a
read-only ``Reader``; it never waits for the writer), then waits to be woken by a turn this
server runs (``Notifier``) or, for rows another process writes, polls every ``POLL_S``.
A comment line (``: keep-alive``) goes out after ``KEEPALIVE_S`` of silence.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from agent.store.journal import Entry, JournalKind, Reader

POLL_S = 0.5
KEEPALIVE_S = 15.0
BATCH = 500


def sse(data: dict[str, Any] | str, *, event: str | None = None, id: int | None = None) -> bytes:
    """One SSE message; ``data`` as compact JSON (non-ASCII escaped, so one line)."""
    lines = []
    if id is not None:
        lines.append(f"id: {id}")
    if event is not None:
        lines.append(f"event: {event}")
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    lines.extend(f"data: {line}" for line in text.split("\n"))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def entry_event(entry: Entry) -> bytes:
    return sse(entry.to_dict(), event=entry.kind, id=entry.seq)


class Notifier:
    """Wakes the tails of a session when a turn of this server journals a row.

    ``waiter`` runs on the event loop; ``notify`` may be called from any thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[str, asyncio.Event] = {}

    def waiter(self, name: str) -> asyncio.Event:
        self._loop = asyncio.get_running_loop()
        event = self._events.get(name)
        if event is None:
            event = self._events[name] = asyncio.Event()
        return event

    def _fire(self, name: str | None) -> None:
        names = list(self._events) if name is None else [name]
        for n in names:
            event = self._events.pop(n, None)
            if event is not None:
                event.set()

    def notify(self, name: str | None) -> None:
        """Wake ``name``'s tails (every tail when None)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._fire, name)
            except RuntimeError:  # the loop closed meanwhile
                pass


async def wait_or_timeout(event: asyncio.Event, timeout: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except asyncio.TimeoutError:
        pass


Cached = Callable[[int], "dict[str, Any] | None"]


def _no_cache(_seq: int) -> dict[str, Any] | None:
    return None


def cached_entry(row: dict[str, Any]) -> Entry:
    """A row as ``on_entry`` gave it (committed already), as the Entry the journal holds."""
    return Entry(
        row["seq"], row["run"], row["parent_run"], row["turn"], row["step"], row["ts"],
        row["kind"], row,
    )  # fmt: skip


async def tail(
    path: Path, name: str, after: int, notifier: Notifier, *,
    until: Callable[[Entry], bool] = lambda _e: False,
    finished: Callable[[], bool] = lambda: False,
    stopping: Callable[[], bool] = lambda: False,
    cached: Cached = _no_cache,
) -> AsyncIterator[Entry | None]:  # fmt: skip
    """Rows after ``after``, then new ones, until ``until(row)`` holds, ``finished()`` holds
    and nothing is left, or ``stopping()``; yields None as a keep-alive tick. ``cached(seq)``
    may hold the next row already (a running turn's rows as it journals them): then it is
    not read back from the database."""
    with Reader(path, name) as reader:
        quiet_since = time.monotonic()
        while True:
            waiter = notifier.waiter(name)  # taken before reading: no wake-up is lost
            done = finished()
            row = cached(after + 1)
            batch = [cached_entry(row)] if row is not None else []
            batch = batch or reader.entries(after=after, limit=BATCH)
            for entry in batch:
                after = entry.seq
                yield entry
                if until(entry):
                    return
            if batch:
                quiet_since = time.monotonic()
                continue
            if done or stopping():
                return
            if time.monotonic() - quiet_since >= KEEPALIVE_S:
                quiet_since = time.monotonic()
                yield None
            await wait_or_timeout(waiter, POLL_S)


def ends_turn(start_seq: int) -> Callable[[Entry], bool]:
    """The first turn_end after ``start_seq`` ends the turn that started after it (a
    session's turns never overlap: one writer)."""
    return lambda e: e.kind == JournalKind.TURN_END.value and e.seq > start_seq
