"""Watt as a library: build the parts once, then ask tasks and read the typed events.

    from agent import ScriptedModel, ask, load_settings, open_parts, task_outcome

    with open_parts(load_settings(), model=ScriptedModel([...]), use_session=False) as parts:
        outcome = task_outcome(ask(parts, "Upper-case 'hello'"))

The names in ``__all__`` are the public API; they load on first use, so importing ``agent``
(or ``agent.config``) does not import wasmtime, httpx or llama-cpp-python.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {  # where each public name lives; tests/test_shape.py checks it matches __all__
    # assembling and asking
    "Parts": "agent.app",
    "open_parts": "agent.app",
    "ask": "agent.app",
    "resume_turn": "agent.app",
    "replay_turn": "agent.replay",
    "export_turn": "agent.replay",
    "Reader": "agent.store.journal",
    "TurnState": "agent.store.journal",
    "prewarm": "agent.app",
    "load_program": "agent.app",
    "run_program": "agent.app",
    "Settings": "agent.config",
    "load_settings": "agent.config",
    # the event stream and how a task ended
    "Event": "agent.events",
    "EventKind": "agent.events",
    "Thinking": "agent.events",
    "ToolStart": "agent.events",
    "ToolResult": "agent.events",
    "Retry": "agent.events",
    "ResponseEvent": "agent.events",
    "ErrorEvent": "agent.events",
    "ErrorKind": "agent.events",
    "AnswerSource": "agent.events",
    "TaskOutcome": "agent.outcome",
    "OutcomeKind": "agent.outcome",
    "StopReason": "agent.outcome",
    "task_outcome": "agent.outcome",
    "ActionKind": "agent.steps",
    "Step": "agent.steps",
    # models: the protocol, its message types and the backends
    "ChatModel": "agent.models.messages",
    "Message": "agent.models.messages",
    "Completion": "agent.models.messages",
    "Usage": "agent.models.messages",
    "OpenAIChatModel": "agent.models.client",
    "LocalModel": "agent.models.local",
    "ScriptedModel": "agent.models.scripted",
    "make_model": "agent.models.backends",
    "choose_model": "agent.models.backends",
}

__all__ = [
    "Parts",
    "open_parts",
    "ask",
    "resume_turn",
    "replay_turn",
    "export_turn",
    "Reader",
    "TurnState",
    "prewarm",
    "load_program",
    "run_program",
    "Settings",
    "load_settings",
    "Event",
    "EventKind",
    "Thinking",
    "ToolStart",
    "ToolResult",
    "Retry",
    "ResponseEvent",
    "ErrorEvent",
    "ErrorKind",
    "AnswerSource",
    "TaskOutcome",
    "OutcomeKind",
    "StopReason",
    "task_outcome",
    "ActionKind",
    "Step",
    "ChatModel",
    "Message",
    "Completion",
    "Usage",
    "OpenAIChatModel",
    "LocalModel",
    "ScriptedModel",
    "make_model",
    "choose_model",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agent' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:
    from agent.app import Parts, ask, load_program, open_parts, prewarm, run_program
    from agent.config import Settings, load_settings
    from agent.events import (
        AnswerSource,
        ErrorEvent,
        ErrorKind,
        Event,
        EventKind,
        ResponseEvent,
        Retry,
        Thinking,
        ToolResult,
        ToolStart,
    )
    from agent.models.backends import choose_model, make_model
    from agent.models.client import OpenAIChatModel
    from agent.models.local import LocalModel
    from agent.models.messages import ChatModel, Completion, Message, Usage
    from agent.models.scripted import ScriptedModel
    from agent.outcome import OutcomeKind, StopReason, TaskOutcome, task_outcome
    from agent.steps import ActionKind, Step
