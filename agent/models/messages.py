"""Chat message types and the ``ChatModel`` protocol: what the loop needs from any model.

Kept free of httpx so that commands which never call a model start quickly.

Text crossing the model seam is always valid Unicode: a provider's JSON may hold a lone
surrogate as a valid ``\\ud800`` escape, which Python decodes to a str that cannot be
encoded as UTF-8 (the session store then refused the whole turn). ``Message`` and
``Completion`` replace each lone surrogate with U+FFFD (``scrub_surrogates``), and so do the
model backends for the text they stream to ``on_text``.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from rt.errors import Interrupted

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4

_SURROGATE = re.compile("[\ud800-\udfff]")

Role = Literal["system", "user", "assistant"]
"""Who wrote a chat message; the session store keeps the same three."""


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: Role
    content: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "content", scrub_surrogates(self.content))

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}

    @classmethod
    def system(cls, content: str) -> Message:
        return cls("system", content)

    @classmethod
    def user(cls, content: str) -> Message:
        return cls("user", content)

    @classmethod
    def assistant(cls, content: str) -> Message:
        return cls("assistant", content)


@dataclass(frozen=True)
class Usage:
    """Token counts of one call or a sum of calls (the one usage type: models, the loop's
    budget and the events share it); ``estimated`` is true when any part was guessed rather
    than reported. In JSON: ``{"prompt": N, "completion": N, "estimated": bool}``."""

    prompt: int = 0
    completion: int = 0
    estimated: bool = False

    @property
    def total(self) -> int:
        return self.prompt + self.completion

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            self.prompt + other.prompt,
            self.completion + other.completion,
            self.estimated or other.estimated,
        )


@dataclass(frozen=True)
class Completion:
    """A model's reply: its text, token usage and why it stopped ("stop", "length", or None)."""

    text: str
    usage: Usage
    finish_reason: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", scrub_surrogates(self.text))


class ChatModel(Protocol):
    """What the agent loop and the ai capability need from a model."""

    @property
    def name(self) -> str: ...

    def complete(
        self,
        messages: Sequence[Message],
        *,
        on_text: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        max_tokens: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> Completion: ...


def estimate_tokens(text: str) -> int:
    """A rough token count: ~4 characters per token, rounded up."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_usage(messages: Sequence[Message], text: str) -> Usage:
    """Estimated usage of one call: each message's content plus a small per-message overhead."""
    prompt = sum(estimate_tokens(m.content) + MESSAGE_OVERHEAD_TOKENS for m in messages)
    return Usage(prompt, estimate_tokens(text), estimated=True)


def check_cancel(cancel: threading.Event | None) -> None:
    """Raise ``Interrupted`` if ``cancel`` is set."""
    if cancel is not None and cancel.is_set():
        raise Interrupted("model call interrupted")


def scrub_surrogates(text: str) -> str:
    """``text`` with every lone surrogate (U+D800..U+DFFF) replaced by U+FFFD."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text
