"""``ScriptedModel``: a ``ChatModel`` that replays scripted replies (tests, ``--model script:FILE``).

It behaves like a real endpoint where that matters to callers: it records every request,
streams the reply to ``on_text`` in a few chunks (checking ``cancel`` between them), cuts the
reply at the first ``stop`` sequence, truncates it to ``max_tokens`` (estimated) with
``finish_reason="length"``, replaces lone surrogates with U+FFFD (as every backend does), and
reports estimated usage. An exhausted queue is a
``ModelAPIError``, as a dead endpoint would be.

Script files (JSON lines, blank lines ignored), one turn per line::

    "a reply as a JSON string"
    {"reply": "the same, as an object"}
    {"error": "HTTP 503 from the scripted endpoint"}     <- this turn fails with ModelAPIError
    {"host": {"fn": "http.get", "code": 0, "text": "..."}}  <- a recorded host result

Host lines (written by ``watt replay --export``) are kept in ``host_calls``: a run with such a
model answers the outside host calls from them, in order, instead of making them.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from agent.models.messages import (
    CHARS_PER_TOKEN,
    Completion,
    Message,
    Usage,
    check_cancel,
    estimate_usage,
    scrub_surrogates,
)
from rt.errors import ConfigError, ModelAPIError

Responder = Callable[[list[Message]], str]
ScriptItem = str | BaseException

_LINE_FORMS = 'a JSON string, {"reply": "..."} or {"error": "..."}'


class ScriptedModel:
    """Replays a queue of replies (or asks a function) and records every request in ``requests``.

    A queued exception instance is raised at its turn (a simulated API failure).
    Cancelled calls still consume their reply, as a real call would.
    """

    def __init__(
        self,
        replies: Iterable[ScriptItem] | Responder | str = (),
        *,
        name: str = "scripted",
        chunks: int = 3,
    ) -> None:
        self._responder: Responder | None = None
        self._queue: deque[ScriptItem] = deque()
        if isinstance(replies, str):
            self._queue.append(replies)
        elif callable(replies):
            self._responder = replies
        else:
            self.add(*replies)
        self._name = name
        self._chunks = max(1, chunks)
        self._lock = threading.Lock()
        self.requests: list[list[Message]] = []
        self.total_usage = Usage()
        self.host_calls: list[dict[str, Any]] = []  # recorded host results, from a script file

    @property
    def name(self) -> str:
        return self._name

    @property
    def remaining(self) -> int:
        """Replies left in the queue (0 in function mode)."""
        return len(self._queue)

    def __repr__(self) -> str:
        return f"ScriptedModel(name={self._name!r}, remaining={self.remaining})"

    def add(self, *replies: ScriptItem) -> None:
        """Queue more replies (strings, or exceptions to raise at that turn)."""
        for reply in replies:
            if not isinstance(reply, (str, BaseException)):
                raise TypeError(f"a scripted reply must be a str or an exception, not {reply!r}")
            self._queue.append(reply)

    def complete(
        self,
        messages: Sequence[Message],
        *,
        on_text: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        max_tokens: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> Completion:
        request = list(messages)
        with self._lock:
            self.requests.append(request)
            item: ScriptItem | None = None
            if self._responder is None:
                if not self._queue:
                    raise ModelAPIError("scripted model has no more replies")
                item = self._queue.popleft()
        check_cancel(cancel)
        if isinstance(item, BaseException):
            raise item
        text = scrub_surrogates(item if isinstance(item, str) else self._ask(request))
        text, finish = apply_limits(text, max_tokens=max_tokens, stop=stop)
        for piece in split_chunks(text, self._chunks):
            check_cancel(cancel)
            if on_text is not None:
                on_text(piece)
        usage = estimate_usage(request, text)
        with self._lock:
            self.total_usage = self.total_usage + usage
        return Completion(text, usage, finish)

    def _ask(self, request: list[Message]) -> str:
        if self._responder is None:
            raise ModelAPIError("scripted model has no more replies")
        text = self._responder(request)
        if not isinstance(text, str):
            raise ModelAPIError(f"scripted responder returned {type(text).__name__}, not str")
        return text

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike[str]) -> ScriptedModel:
        """Load a script file; a bad line is a ``ConfigError`` naming ``file:line``."""
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read model script {file}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"model script {file} is not UTF-8 text") from exc
        replies: list[ScriptItem] = []
        host_calls: list[dict[str, Any]] = []
        for number, line in enumerate(text.split("\n"), start=1):
            line = line.rstrip("\r")
            if line.startswith('{"host":'):  # a recorded host result (``watt replay --export``)
                host_calls.append(_host_line(line, f"{file}:{number}"))
            elif line.strip():
                replies.append(parse_script_line(line, f"{file}:{number}"))
        if not replies:
            raise ConfigError(
                f"{file}: model script has no replies (expected {_LINE_FORMS} per line)"
            )
        model = cls(replies, name=f"script:{file.name}")
        model.host_calls = host_calls
        return model


def _host_line(line: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise ConfigError(f"{where}: not valid JSON") from exc
    host = value.get("host") if isinstance(value, dict) else None
    if not isinstance(host, dict) or not isinstance(host.get("fn"), str):
        raise ConfigError(f'{where}: expected {{"host": {{"fn": ..., "code": ...}}}}')
    return host


def parse_script_line(line: str, where: str) -> ScriptItem:
    """One script line: a reply string, or a ``ModelAPIError`` to raise at that turn."""
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise ConfigError(f"{where}: not valid JSON; expected {_LINE_FORMS}") from exc
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        if isinstance(value.get("reply"), str):
            return str(value["reply"])
        if isinstance(value.get("error"), str):
            return ModelAPIError(str(value["error"]))
    raise ConfigError(f"{where}: expected {_LINE_FORMS}")


def apply_limits(
    text: str, *, max_tokens: int | None, stop: Sequence[str] | None
) -> tuple[str, str]:
    """Cut ``text`` as a server would: at the first stop sequence, then to ``max_tokens``."""
    cuts = [text.find(s) for s in stop or () if s and s in text]
    if cuts:
        text = text[: min(cuts)]
    if max_tokens is not None and len(text) > max(0, max_tokens) * CHARS_PER_TOKEN:
        return text[: max(0, max_tokens) * CHARS_PER_TOKEN], "length"
    return text, "stop"


def split_chunks(text: str, count: int) -> list[str]:
    """``text`` in at most ``count`` non-empty pieces of near-equal length."""
    if not text:
        return []
    size = math.ceil(len(text) / max(1, count))
    return [text[i : i + size] for i in range(0, len(text), size)]
