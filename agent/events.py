"""Typed events the loop yields; renderers (rich, JSON lines) consume the same stream."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


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


@dataclass(frozen=True)
class TokenUsage:
    prompt: int = 0
    completion: int = 0
    estimated: bool = False

    @property
    def total(self) -> int:
        return self.prompt + self.completion


@dataclass(frozen=True)
class Event:
    step: int

    kind: EventKind = field(init=False, default=EventKind.ERROR)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        return data


@dataclass(frozen=True)
class Thinking(Event):
    text: str = ""
    usage: TokenUsage = TokenUsage()
    model_ms: float = 0.0
    notes: tuple[str, ...] = ()
    kind: EventKind = field(init=False, default=EventKind.THINKING)


@dataclass(frozen=True)
class ToolStart(Event):
    action: str = "wat"  # "wat" or "catalog"
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
    cache: str = ""
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
    usage: TokenUsage = TokenUsage()
    elapsed_ms: float = 0.0
    source: AnswerSource = AnswerSource.MODEL
    # a best answer asked for after a guard or the step limit stopped the task: not checked
    # against a successful run (the task still counts as failed: exit code 1)
    unverified: bool = False
    kind: EventKind = field(init=False, default=EventKind.RESPONSE)


@dataclass(frozen=True)
class ErrorEvent(Event):
    message: str = ""
    error_type: str = ""
    kind: EventKind = field(init=False, default=EventKind.ERROR)
