"""How a task ended, read once from its event stream (``task_outcome``).

- ANSWERED: a verified answer: the model's Response, or a program's ``(answer ...)``.
- STOPPED: the loop guard, the token budget or the step limit stopped the task. A best answer
  asked for after the stop (``ResponseEvent.unverified``) is kept as ``answer``, but the task
  is not answered (the CLI exits 1).
- FAILED: the model endpoint failed, or the stream ended with no answer at all.
- INTERRUPTED: Ctrl-C (an ``ErrorEvent`` of kind INTERRUPTED, or the caller says so).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from agent.events import ErrorEvent, ErrorKind, Event, ResponseEvent


class OutcomeKind(str, enum.Enum):
    ANSWERED = "answered"
    STOPPED = "stopped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class StopReason(str, enum.Enum):
    """What stopped a task that was STOPPED."""

    LOOP_GUARD = "loop_guard"
    BUDGET = "budget"
    STEP_LIMIT = "step_limit"


_STOPS = {
    ErrorKind.LOOP_GUARD: StopReason.LOOP_GUARD,
    ErrorKind.BUDGET: StopReason.BUDGET,
    ErrorKind.STEP_LIMIT: StopReason.STEP_LIMIT,
}


@dataclass(frozen=True)
class TaskOutcome:
    kind: OutcomeKind
    answer: str | None = None  # the final answer, or the unverified best answer of a stop
    unverified: bool = False
    stop: StopReason | None = None
    error: str | None = None  # the message of the ErrorEvent that ended the task

    @property
    def answered(self) -> bool:
        return self.kind is OutcomeKind.ANSWERED


def task_outcome(events: Iterable[Event], *, interrupted: bool = False) -> TaskOutcome:
    """The outcome of the task whose events these are (``interrupted``: the caller caught
    Ctrl-C, or the task's Interrupted, while reading them)."""
    response: ResponseEvent | None = None
    error: ErrorEvent | None = None
    for event in events:
        if isinstance(event, ResponseEvent):
            response = event
        elif isinstance(event, ErrorEvent):
            error = error or event  # the first stop decides (an Interrupted may follow it)
            interrupted = interrupted or event.error_type is ErrorKind.INTERRUPTED
    answer = response.text if response is not None else None
    unverified = response is not None and response.unverified
    message = error.message if error is not None else None
    if interrupted:
        return TaskOutcome(OutcomeKind.INTERRUPTED, answer, unverified, None, message)
    if error is not None and error.error_type in _STOPS:
        stop = _STOPS[error.error_type]
        return TaskOutcome(OutcomeKind.STOPPED, answer, unverified, stop, message)
    if error is not None or response is None:
        return TaskOutcome(OutcomeKind.FAILED, answer, unverified, None, message)
    if unverified:
        return TaskOutcome(OutcomeKind.STOPPED, answer, True, StopReason.STEP_LIMIT)
    return TaskOutcome(OutcomeKind.ANSWERED, answer)
