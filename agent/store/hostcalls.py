"""Host calls that reach outside the sandbox, journaled so a turn can be replayed and resumed.

``journaled`` wraps the host functions whose results come from outside (http responses, ai
answers, fs and kv reads) or that have side effects (http.post, fs.write, fs.append, fs.del,
kv.set, kv.del). Each call appends a ``host_call`` row with its result: the function, the call
index within the step, the error code, the data it gave the guest (a body, array items or a
number; large bodies as blobs) and the debug lines it wrote. A call with a side effect first
appends a ``start`` row, committed before the effect happens, with its idempotency key
``RUN:STEP:INDEX`` (http.post sends it as ``Idempotency-Key``); a ``start`` with no ``done``
after it is a call whose outcome is unknown, shown so and never silently retried.

``Replayer`` is the other side: it answers the same calls from recorded rows, in order, with
no outside effect, and notes the first call that differs from the recording.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from rt.codes import Err
from rt.errors import SessionError
from rt.host import IDEMPOTENCY_KEY, GuestError, HostFunction, RunContext

EFFECTS = frozenset({"http.post", "fs.write", "fs.append", "fs.del", "kv.set", "kv.del"})
READS = frozenset(
    {"http.get", "ai.assist", "fs.read", "fs.list", "fs.exists", "kv.get", "kv.keys",
     "agent.run"}  # a child agent's answer: replay gives it back with no child model call
)  # fmt: skip


class Sink(Protocol):
    """Where recorded calls go (``HostRecorder`` over a session's open turn)."""

    def active(self) -> tuple[str, int] | None:
        """(run id, step) of the turn being recorded, or None when nothing records."""

    def next_index(self) -> int: ...

    def append(self, step: int, data: Mapping[str, Any]) -> None: ...

    def body(self, data: bytes) -> dict[str, Any]: ...


def _kind(f: HostFunction) -> str:
    names = f.result_names or f.results
    return str(names[0]) if len(names) > 1 else "err"


def _captured(f: HostFunction, ctx: RunContext, out: Any, sink: Sink) -> dict[str, Any]:
    kind = _kind(f)
    if kind == "err" or not isinstance(out, tuple):
        return {}
    value, code = out[0], out[-1]
    if code != 0:
        return {}
    if kind == "ptr":
        return sink.body(ctx.read_bytes(value))
    if kind == "arr":
        return {"items": [sink.body(item) for item in ctx.array(value)]}
    return {"value": int(value)}


def journaled(functions: Iterable[HostFunction], sink: Sink) -> list[HostFunction]:
    """The functions, those reaching outside wrapped so every call is journaled."""
    return [
        replace(f, impl=_recording(f, sink)) if f.qualname in EFFECTS | READS else f
        for f in functions
    ]


def _recording(f: HostFunction, sink: Sink) -> Any:
    impl, name, effect = f.impl, f.qualname, f.qualname in EFFECTS

    def call(ctx: RunContext, *args: int) -> Any:
        where = sink.active()
        if where is None:
            return impl(ctx, *args)
        run, step = where
        index = sink.next_index()
        key = f"{run}:{step}:{index}"
        head = {"fn": name, "call": index}
        if effect:
            sink.append(step, {**head, "phase": "start", "key": key})
            ctx.states[IDEMPOTENCY_KEY] = key
        logged = len(ctx.debug)
        try:
            out = impl(ctx, *args)
        except GuestError as exc:
            sink.append(step, {**head, "phase": "done", "code": int(exc.code), "detail": exc.detail,
                               "debug": ctx.debug[logged:]})  # fmt: skip
            raise
        finally:
            ctx.states.pop(IDEMPOTENCY_KEY, None)
        code = out[-1] if isinstance(out, tuple) else out
        data = _captured(f, ctx, out, sink)
        sink.append(step, {**head, "phase": "done", "code": int(code or 0),
                           "debug": ctx.debug[logged:], **data})  # fmt: skip
        return out

    return call


# --- recording into the session's open turn -------------------------------------------------


class HostRecorder:
    """A ``Sink`` over a session: records into its open turn, at the step ``begin_step`` set.

    A record that cannot be written (disk full) fails the host call, and the runtime turns
    that into an error code for the program; ``check`` raises it again after the run, so
    the turn ends rather than go on with a step the journal does not hold."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._step = 0
        self._index = 0
        self._lock = threading.Lock()
        self._failure: SessionError | None = None

    def begin_step(self, step: int) -> None:
        with self._lock:
            self._step, self._index, self._failure = step, 0, None

    def check(self) -> None:
        """Raise the first journal write that failed in this step's host calls, if any."""
        with self._lock:
            failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def _failed(self, exc: SessionError) -> None:
        with self._lock:
            self._failure = self._failure or exc

    def active(self) -> tuple[str, int] | None:
        turn = self._session._turn
        return None if turn is None else (turn.run, self._step)

    def next_index(self) -> int:
        with self._lock:
            self._index += 1
            return self._index

    def append(self, step: int, data: Mapping[str, Any]) -> None:
        turn = self._session._turn
        if turn is not None:
            try:
                turn.record("host_call", step, data)
            except SessionError as exc:
                self._failed(exc)
                raise

    def body(self, data: bytes) -> dict[str, Any]:
        try:
            return dict(self._session.journal.body(data))
        except SessionError as exc:
            self._failed(exc)
            raise


# --- replaying ------------------------------------------------------------------------------


@dataclass
class Replayer:
    """Answers journaled calls from the recording; ``divergence`` names the first mismatch.

    ``calls`` are the turn's ``done`` rows in order; ``blob`` reads a stored body."""

    calls: Sequence[Mapping[str, Any]]
    blob: Any
    divergence: str | None = None
    _queue: deque[Mapping[str, Any]] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self._queue = deque(self.calls)

    def functions(self, functions: Iterable[HostFunction]) -> list[HostFunction]:
        return [
            replace(f, impl=self._answering(f)) if f.qualname in EFFECTS | READS else f
            for f in functions
        ]

    def remaining(self) -> int:
        return len(self._queue)

    def _bytes(self, body: Mapping[str, Any]) -> bytes:
        if "text" in body:
            return str(body["text"]).encode("utf-8")
        if "hex" in body:
            return bytes.fromhex(str(body["hex"]))
        data = self.blob(str(body.get("blob", "")))
        return b"" if data is None else bytes(data)

    def _answering(self, f: HostFunction) -> Any:
        name, kind = f.qualname, _kind(f)

        def call(ctx: RunContext, *args: int) -> Any:
            if not self._queue or self._queue[0].get("fn") != name:
                recorded = self._queue[0].get("fn") if self._queue else "no further call"
                if self.divergence is None:
                    self.divergence = f"the program called {name}; the recording has {recorded}"
                raise GuestError(Err.EREMOTE, "replay: this call was not recorded")
            row = self._queue.popleft()
            for line in row.get("debug", ()):
                ctx.log(str(line))
            code = int(row.get("code", 0))
            if "detail" in row:  # the call raised: the runtime logs and fails it the same way
                raise GuestError(Err(code), str(row["detail"]))
            if kind == "err":
                return code
            if code:
                return f.failure_value(Err(code))
            if kind == "ptr":
                return ctx.alloc_bytes(self._bytes(row)), 0
            if kind == "arr":
                return ctx.new_array([self._bytes(item) for item in row.get("items", ())]), 0
            return int(row.get("value", 0)), 0

        return call
