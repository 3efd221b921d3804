"""Typed events the loop yields; renderers (rich, JSON lines) consume the same stream.

``Event.to_dict`` is an event's JSON: its fields, ``kind`` as a string, enums as their values
(``ToolStart.action`` "wat" or "catalog", ``ErrorEvent.error_type``, ``ToolResult.cache``).
The journal (``agent.store.journal``) wraps it with ``schema``, ``seq``, ``run`` and the rest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from agent.models.messages import Usage
from agent.steps import ActionKind
from rt.cache import CacheSource
from rt.errors import Interrupted, ModelAPIError


class EventKind(str, Enum):
    THINKING = "thinking"
    TOOL_START = "tool_start"
    TOOL_RESULT = "tool_result"
    RETRY = "retry"
    RESPONSE = "response"
    ERROR = "error"


class AnswerSource(str, Enum):
    MODEL = "model"  # the model wrote the answer in a Response
    PROGRAM = "program"  # a program's (answer ...) ended the task, byte-exact, with no model call


class ErrorKind(str, Enum):
    """Why the loop stopped with an ``ErrorEvent``."""

    LOOP_GUARD = "LoopGuard"  # one failing action was repeated GUARD_REPEATS times
    BUDGET = "BudgetExceeded"  # the task's token budget is spent
    STEP_LIMIT = "StepLimit"  # the step limit was reached and the model gave no answer
    MODEL_API = "ModelAPIError"  # the model endpoint failed (the error propagates after it)
    INTERRUPTED = "Interrupted"  # Ctrl-C (the interruption propagates after it)

    @classmethod
    def of(cls, error: ModelAPIError | Interrupted) -> ErrorKind:
        return cls.INTERRUPTED if isinstance(error, Interrupted) else cls.MODEL_API


@dataclass(frozen=True)
class Event:
    step: int

    kind: EventKind = field(init=False, default=EventKind.ERROR)

    def to_dict(self) -> dict[str, Any]:
        """The event's JSON; usage is ``{"input", "output", "estimated"}`` (OpenTelemetry
        GenAI's ``gen_ai.usage.input_tokens``/``output_tokens``)."""
        data = asdict(self)
        data["kind"] = self.kind.value
        usage = getattr(self, "usage", None)
        if isinstance(usage, Usage):
            data["usage"] = {
                "input": usage.prompt, "output": usage.completion, "estimated": usage.estimated
            }  # fmt: skip
        return data


@dataclass(frozen=True)
class Thinking(Event):
    text: str = ""
    usage: Usage = Usage()
    model_ms: float = 0.0
    notes: tuple[str, ...] = ()
    reply: str = ""  # the model's reply as received (what replay feeds back)
    cost: float | None = None  # dollars, when the model has a price ([prices])
    kind: EventKind = field(init=False, default=EventKind.THINKING)


@dataclass(frozen=True)
class ToolStart(Event):
    action: ActionKind = ActionKind.WAT  # WAT or CATALOG
    name: str | None = None  # the catalog program's name
    program: str = ""
    args: tuple[str, ...] = ()
    kind: EventKind = field(init=False, default=EventKind.TOOL_START)


@dataclass(frozen=True)
class ToolResult(Event):
    ok: bool = False
    status: int | None = None
    status_name: str = ""
    results: tuple[str, ...] = ()
    debug: tuple[str, ...] = ()
    error: str | None = None
    error_type: str | None = None
    fuel_used: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    cache: CacheSource | None = None  # None when nothing ran
    module_hash: str = ""
    observation: str = ""
    answer: str | None = None  # what (answer ...) gave, when the program ended the task
    failure: str = ""  # which checked call failed: "line 3: http.get failed: EREMOTE (...)"
    notes: tuple[str, ...] = ()  # what the preprocessor rewrote
    kind: EventKind = field(init=False, default=EventKind.TOOL_RESULT)


@dataclass(frozen=True)
class Retry(Event):
    attempt: int = 1
    reason: str = ""
    kind: EventKind = field(init=False, default=EventKind.RETRY)


@dataclass(frozen=True)
class ResponseEvent(Event):
    text: str = ""
    forced: bool = False
    usage: Usage = Usage()
    elapsed_ms: float = 0.0
    source: AnswerSource = AnswerSource.MODEL
    # a best answer asked for after a guard or the step limit stopped the task: not checked
    # against a successful run (the task still counts as failed: exit code 1)
    unverified: bool = False
    kind: EventKind = field(init=False, default=EventKind.RESPONSE)


@dataclass(frozen=True)
class ErrorEvent(Event):
    message: str = ""
    error_type: ErrorKind = ErrorKind.LOOP_GUARD
    kind: EventKind = field(init=False, default=EventKind.ERROR)
