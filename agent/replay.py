"""Replay and resume: a recorded turn run again from the journal.

``replay_turn`` re-runs a turn offline: the model's replies and the outside host results come
from the journal (``agent.store.hostcalls.Replayer``); programs are preprocessed, compiled and
run again with the turn's recorded grant and limits. No network, no model, no side effect.
It reports "identical" or the first step whose program, result, status or observation
differs. ``export_turn`` writes the turn as a ``script:`` model file whose host lines carry the
recorded results, so ``watt ask --model script:FILE`` reproduces it anywhere.

``resume_messages`` gives what a resumed turn starts from: the messages of its completed
steps, as the model saw them, and a note on any side effect whose outcome is unknown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.config import Settings
from agent.events import Event
from agent.loop import LoopSettings, run_task
from agent.models.messages import Message
from agent.models.scripted import ScriptedModel
from agent.programs.catalog import Catalog, catalog_dirs
from agent.store.hostcalls import Replayer
from agent.store.journal import Reader, TurnRecord
from agent.store.sessions import SessionStore
from capabilities import standard_registry
from rt.engine import Runtime
from rt.errors import SessionError, UnknownSession
from rt.limits import Limits

COMPARED = {
    "tool_start": ("action", "name", "program", "args"),
    "tool_result": ("ok", "status", "status_name", "results", "error", "failure", "answer",
                    "observation"),
    "response": ("text", "source", "unverified"),
    "error": ("message", "error_type"),
}  # fmt: skip


@dataclass(frozen=True)
class Recorded:
    """One turn as the journal holds it."""

    turn: TurnRecord
    start: Mapping[str, Any]  # the turn_start row's fields
    replies: list[str]
    events: list[dict[str, Any]]  # the loop's events, as recorded
    host_calls: list[dict[str, Any]]  # the ``done`` rows of outside host calls
    unknown: list[dict[str, Any]]  # side effects started and never finished


def _pick_turn(reader: Reader, turn: int | None) -> TurnRecord:
    turns = reader.turns(turn)
    if not turns:
        which = f"no turn {turn}" if turn is not None else "no turns yet"
        raise SessionError(f"session {reader.name!r} has {which}")
    return turns[-1]


def load_recorded(reader: Reader, turn: int | None = None) -> Recorded:
    record = _pick_turn(reader, turn)
    entries = reader.entries(turn=record.id)
    start: Mapping[str, Any] = {}
    replies: list[str] = []
    events: list[dict[str, Any]] = []
    done: list[dict[str, Any]] = []
    started: dict[tuple[int, int], dict[str, Any]] = {}
    for entry in entries:
        data = dict(entry.data)
        if entry.kind == "turn_start" and not start:
            start = data
        elif entry.kind == "thinking":
            replies.append(str(data.get("reply", "")))
        elif entry.kind == "host_call":
            key = (entry.step, int(data.get("call", 0)))
            if data.get("phase") == "start":
                started[key] = {**data, "step": entry.step}
            else:
                started.pop(key, None)
                done.append(_inline(reader, data))
        elif entry.kind in COMPARED:
            events.append({**data, "step": entry.step, "kind": entry.kind})
    return Recorded(record, start, replies, events, done, list(started.values()))


def _inline(reader: Reader, data: dict[str, Any]) -> dict[str, Any]:
    """A host row with its blob references replaced by their bytes (hex), self-contained."""

    def body(value: Mapping[str, Any]) -> dict[str, Any]:
        if "blob" not in value:
            return dict(value)
        blob = reader.blob(str(value["blob"])) or b""
        return {"hex": blob.hex()}

    out = body(data)
    if "items" in data:
        out["items"] = [body(item) for item in data["items"]]
    return out


@dataclass(frozen=True)
class ReplayReport:
    turn: int
    steps: int
    identical: bool
    step: int | None = None  # the first step that differs
    field: str = ""
    recorded: Any = None
    replayed: Any = None
    note: str = ""


def replay_turn(settings: Settings, session: str, turn: int | None = None) -> ReplayReport:
    """Re-run a recorded turn offline and compare it with the recording, step by step."""
    store = SessionStore(settings.home)
    if not store.exists(session):
        raise UnknownSession(f"no session named {session!r}")
    with Reader(store.path(session), session) as reader:
        recorded = load_recorded(reader, turn)
    events = _rerun(settings, recorded)
    return compare(recorded, events)


def _rerun(settings: Settings, recorded: Recorded) -> list[Event]:
    start = recorded.start
    replayer = Replayer(recorded.host_calls, lambda digest: None)
    model = ScriptedModel(recorded.replies, name="replay")
    runtime, catalog, granted = replay_parts(settings, start, replayer)
    loop = LoopSettings(
        max_steps=int(start.get("max_steps", settings.max_steps)),
        max_retries=int(start.get("max_retries", settings.max_retries)),
        observation_chars=int(start.get("observation_chars", settings.observation_chars)),
        granted=granted,
    )
    events: list[Event] = []
    try:
        for event in run_task(
            recorded.turn.task, model=model, runtime=runtime, catalog=catalog,
            system_prompt="(replay)", settings=loop,
        ):  # fmt: skip
            events.append(event)
    except Exception:  # the recording ran out (a model error, replayed): the events so far
        pass
    return events


def replay_parts(
    settings: Settings, start: Mapping[str, Any], replayer: Replayer
) -> tuple[Runtime, Catalog, set[str]]:
    """A runtime whose outside calls come from ``replayer``, with the recorded grant and limits."""
    registry = standard_registry()
    granted = set(start.get("granted") or registry.names())
    raw = start.get("limits") or {}
    limits = Limits(
        fuel=int(raw.get("fuel", settings.fuel)),
        memory_bytes=int(raw.get("memory", settings.memory)),
        timeout_s=float(raw.get("timeout", settings.timeout)),
        max_source_bytes=int(raw.get("max_source_bytes", settings.max_source_bytes)),
        max_result_bytes=int(raw.get("max_result_bytes", settings.max_result_bytes)),
    ).validated()
    runtime = Runtime(replayer.functions(registry.functions()), limits=limits,
                      cache_dir=settings.cache_dir)  # fmt: skip
    catalog, _ = Catalog.load(catalog_dirs(settings.home, settings.catalog))
    return runtime, catalog, granted


def compare(recorded: Recorded, events: Sequence[Event]) -> ReplayReport:
    replayed = [e.to_dict() for e in events if e.kind.value in COMPARED]
    steps = len({e["step"] for e in recorded.events if e["kind"] == "tool_start"})
    for index, want in enumerate(recorded.events):
        got = replayed[index] if index < len(replayed) else None
        if got is None:
            return ReplayReport(recorded.turn.id, steps, False, want["step"], "kind",
                                want["kind"], "(nothing: the replay ended here)")  # fmt: skip
        for name in ("kind", *COMPARED[want["kind"]]):
            a, b = _norm(want.get(name)), _norm(got.get(name))
            if a != b:
                return ReplayReport(recorded.turn.id, steps, False, want["step"], name, a, b)
    if len(replayed) > len(recorded.events):
        extra = replayed[len(recorded.events)]
        return ReplayReport(recorded.turn.id, steps, False, extra.get("step"), "kind",
                            "(nothing: the recording ended here)", extra.get("kind"))  # fmt: skip
    note = (
        f"; {len(recorded.unknown)} side effect(s) with unknown outcome" if recorded.unknown else ""
    )
    return ReplayReport(recorded.turn.id, steps, True, note=note)


def _norm(value: Any) -> Any:
    """Tuples and lists compare alike (JSON has only lists); enums by value."""
    return json.loads(json.dumps(value, default=lambda v: getattr(v, "value", str(v))))


def export_turn(settings: Settings, session: str, turn: int | None, path: Path) -> int:
    """Write the turn as a ``script:`` model file with its host results; returns the lines."""
    store = SessionStore(settings.home)
    if not store.exists(session):
        raise UnknownSession(f"no session named {session!r}")
    with Reader(store.path(session), session) as reader:
        recorded = load_recorded(reader, turn)
    lines = [json.dumps({"reply": reply}) for reply in recorded.replies]
    lines += [json.dumps({"host": call}) for call in recorded.host_calls]
    try:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:
        raise SessionError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return len(lines)


# --- resume ---------------------------------------------------------------------------------

UNKNOWN_OUTCOME = (
    "[Resumed] The task was interrupted during step {step}. Its {fn} call (idempotency key "
    "{key}) started and its outcome is unknown: check whether it took effect before you "
    "repeat it."
)


def resume_messages(
    messages: Sequence[tuple[str, str]], unknown: Sequence[Mapping[str, Any]]
) -> list[Message]:
    """The turn's messages after its task up to its last completed step (a reply whose
    observation never came is dropped: that step runs again), then a note for each side
    effect whose outcome is unknown."""
    kept = list(messages[1:])  # messages[0] is the task
    while kept and kept[-1][0] == "assistant":
        kept.pop()
    out = [Message.user(c) if r == "user" else Message.assistant(c) for r, c in kept]
    out += [Message.user(UNKNOWN_OUTCOME.format(step=u.get("step"), fn=u.get("fn"),
                                                key=u.get("key"))) for u in unknown]  # fmt: skip
    return out
