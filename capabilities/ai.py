"""The ``ai`` capability: a nested, budgeted model call (``ai.assist``).

The caller injects an ``Assistant`` (the agent passes one that calls the model with the
session's client); the guest never sees the key or the endpoint. The guest's text is data:
it goes to the assistant as ``text``, separate from the ``instruction`` (SECURITY.md rule 12).

Codes: EACCESS when no assistant was granted; ENOMEM for the quotas (calls per run, calls per
session, seconds per session spent waiting for the model, input bytes); EBOUND for unknown
flag bits; EREMOTE when the assistant fails (a ``WattError``, or any other exception it did
not translate) or the run has no time left. The assistant gets the run's cancel event, so the
run's wall clock and Ctrl-C end a call in flight. The debug detail of a failure is the
error's class and first line with anything that looks like a credential scrubbed. The
answer is cut to ``max_output_bytes`` (at a character boundary, with a debug line saying so).

The ``agent`` capability is here too: the other capability backed by the model.

``agent.run (task grants) -> (ptr err)``: the child answers ``task`` with at most the grant
named by ``grants``, in the CLI's words, separated by spaces or commas: capability names
(``str``, ``math``, ``kv``, ``fs``, ``http``, ``ai``, ``agent``, ...), ``http:HOST[:PORT]`` for
one host of the parent's allow-list, ``fs:SUBDIR`` for a directory inside the parent's jail.
The result is the child's final answer, as data: the parent's observation delimits it like any
program output, and nothing in it can change a grant.

The caller injects a ``ChildRunner`` (the agent passes one that runs a whole child task in
the same session); the capability never imports the agent. Not granted unless the user asks
(``--agents N``); without a runner every call is EACCESS.

Codes: EACCESS when the grant asks for more than the parent holds (nothing runs), ENOMEM for
the number of child runs allowed, a task or grant list too long; EREMOTE when the child
fails, is stopped (its budget or the parent's time ran out) or is interrupted; the one-line
reason is a debug line. The answer is cut to ``max_output_bytes``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from capabilities.base import host
from rt.codes import Err
from rt.errors import WattError
from rt.host import U32, GuestError, HostFunction, RunContext

FLAG_SINGLE_LINE = 1
KNOWN_FLAGS = FLAG_SINGLE_LINE
MAX_DETAIL = 200

_SECRET_PATTERNS = [
    re.compile(r"(?i)\bbearer\s+[^\s,;\"']+"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{4,}"),
    re.compile(r"(?i)\b(api[_-]?key|token|secret|password|authorization)(\s*[=:]\s*)[^\s,;&\"']+"),
]


class Assistant(Protocol):
    """Applies ``instruction`` to ``text``; raises a ``WattError`` subclass on failure.

    ``cancel`` is the run's stop event: it is set at the run's wall-clock deadline and on
    Ctrl-C, and the assistant gives up (raising ``Interrupted``) when it is.
    """

    def __call__(
        self,
        instruction: str,
        text: str,
        *,
        single_line: bool,
        cancel: threading.Event | None = None,
    ) -> str: ...


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with known secrets and credential-looking tokens replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _SECRET_PATTERNS[0].sub("Bearer ***", text)
    text = _SECRET_PATTERNS[1].sub("sk-***", text)
    return _SECRET_PATTERNS[2].sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)


def failure_detail(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """A short, secret-free debug line for a failed assistant call."""
    lines = str(exc).strip().splitlines()
    first = scrub(lines[0], secrets) if lines else ""
    detail = f"ai.assist failed: {type(exc).__name__}" + (f": {first}" if first else "")
    return detail if len(detail) <= MAX_DETAIL else detail[: MAX_DETAIL - 3] + "..."


def first_line(text: str) -> str:
    """The first non-blank line of ``text``, stripped ("" if there is none)."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def cap_utf8(text: str, max_bytes: int) -> tuple[str, bool]:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes without splitting a character."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text, False
    return data[:max_bytes].decode("utf-8", errors="ignore"), True


@dataclass
class _RunCalls:
    n: int = 0


class AiCapability:
    """Host functions of the ``ai`` namespace (one object per session: it holds the session quota)."""

    namespace = "ai"
    pure = False  # side effects outside the run
    summary = "ask the model to transform text (summarise, classify, extract); budgeted"

    def __init__(
        self,
        assistant: Assistant | None,
        *,
        max_calls_per_run: int = 8,
        max_calls_per_session: int = 50,
        max_input_bytes: int = 32_000,
        max_output_bytes: int = 16_000,
        max_seconds_per_session: float = 600.0,
        secrets: Iterable[str] = (),
    ) -> None:
        self.assistant = assistant
        self.max_calls_per_run = max_calls_per_run
        self.max_calls_per_session = max_calls_per_session
        self.max_input_bytes = max_input_bytes
        self.max_output_bytes = max_output_bytes
        self.max_seconds_per_session = max_seconds_per_session
        self.secrets = tuple(s for s in secrets if s)
        self.session_calls = 0
        self.session_seconds = 0.0

    def assist(
        self, ctx: RunContext, input_ptr: int, instruction_ptr: int, flags: int
    ) -> tuple[int, int]:
        assistant = self.assistant
        if assistant is None:
            raise GuestError(Err.EACCESS, "no ai assistant granted")
        flags &= U32
        if flags & ~KNOWN_FLAGS:
            raise GuestError(Err.EBOUND, f"unknown flags {flags:#x}; use 0 or 1")
        calls = ctx.state(self.namespace, _RunCalls)
        if calls.n >= self.max_calls_per_run:
            raise GuestError(Err.ENOMEM, f"more than {self.max_calls_per_run} ai calls in one run")
        if self.session_calls >= self.max_calls_per_session:
            raise GuestError(
                Err.ENOMEM, f"the session's {self.max_calls_per_session} ai calls are used up"
            )
        if self.session_seconds >= self.max_seconds_per_session:
            raise GuestError(
                Err.ENOMEM,
                f"the session's {self.max_seconds_per_session:g} s of ai time are used up",
            )
        if ctx.cancel.is_set() or ctx.remaining() <= 0:
            raise GuestError(Err.EREMOTE, "no time left in this run for an ai call")
        if ctx.buffer_len(input_ptr) + ctx.buffer_len(instruction_ptr) > self.max_input_bytes:
            raise GuestError(
                Err.ENOMEM,
                f"input and instruction exceed {self.max_input_bytes} bytes; use str.chunk",
            )
        text = ctx.read_bytes(input_ptr)
        instruction = ctx.read_bytes(instruction_ptr)
        calls.n += 1
        self.session_calls += 1
        single = bool(flags & FLAG_SINGLE_LINE)
        started = time.monotonic()
        try:
            answer = assistant(
                instruction.decode("utf-8", errors="replace"),
                text.decode("utf-8", errors="replace"),
                single_line=single,
                cancel=ctx.cancel,
            )
        except WattError as exc:
            # from None: the original may carry the key; keep it out of any traceback
            raise GuestError(Err.EREMOTE, failure_detail(exc, self.secrets)) from None
        except Exception as exc:  # a foreign error the assistant failed to translate
            raise GuestError(Err.EREMOTE, failure_detail(exc, self.secrets)) from None
        finally:
            self.session_seconds += time.monotonic() - started
        if not isinstance(answer, str):
            raise GuestError(Err.EREMOTE, "ai.assist failed: the assistant returned no text")
        if single:
            answer = first_line(answer)
        answer, cut = cap_utf8(answer, self.max_output_bytes)
        if cut:
            ctx.log(f"ai.assist: answer truncated to {self.max_output_bytes} bytes")
        return ctx.alloc_str(answer), 0

    def functions(self) -> list[HostFunction]:
        fn = partial(host, self.namespace)
        return [
            fn("assist", "input instruction flags -> ptr err", self.assist,
               "apply instruction to input text; flags 1 = one-line answer; EREMOTE, ENOMEM"),
        ]  # fmt: skip


# ---- agent: a child agent from inside a program ----------------------------------------------
MAX_TASK_BYTES = 16_000
MAX_GRANT_BYTES = 2_000
AGENT_MAX_DETAIL = 240
_SEPARATORS = re.compile(r"[\s,]+")


class ChildRunner(Protocol):
    """Runs one child task and returns its final answer.

    ``grants`` are the words the program asked for; ``cancel`` is the parent run's stop event
    (set on Ctrl-C and at the parent run's deadline) and ``seconds`` what is left of that run's
    wall clock. A refusal or failure is a ``GuestError`` with its code and a one-line reason.
    """

    def __call__(
        self, task: str, grants: list[str], *, cancel: threading.Event, seconds: float
    ) -> str: ...


def grant_words(text: str) -> list[str]:
    """The words of a grant list: ``"str, http:example.com fs:data"`` -> three words."""
    return [w for w in _SEPARATORS.split(text.strip()) if w]


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= AGENT_MAX_DETAIL else line[: AGENT_MAX_DETAIL - 3] + "..."


class AgentCapability:
    """Host functions of the ``agent`` namespace."""

    namespace = "agent"
    pure = False  # a child may use effects of its own
    summary = "delegate a task to a child agent with a narrower grant"

    def __init__(self, runner: ChildRunner | None, *, max_output_bytes: int = 16_000) -> None:
        self.runner = runner
        self.max_output_bytes = max_output_bytes

    def run(self, ctx: RunContext, task_ptr: int, grants_ptr: int) -> tuple[int, int]:
        runner = self.runner
        if runner is None:
            raise GuestError(Err.EACCESS, "no child agents granted (watt ask --agents N)")
        task = ctx.read_str(task_ptr, MAX_TASK_BYTES, "task")
        grants = grant_words(ctx.read_str(grants_ptr, MAX_GRANT_BYTES, "grant list"))
        if not task.strip():
            raise GuestError(Err.EBOUND, "the child's task is empty")
        if ctx.cancel.is_set() or ctx.remaining() <= 0:
            raise GuestError(Err.EREMOTE, "no time left in this run for a child agent")
        try:
            answer = runner(task, grants, cancel=ctx.cancel, seconds=ctx.remaining())
        except GuestError as exc:
            raise GuestError(exc.code, _short(exc.detail)) from None
        except WattError as exc:
            raise GuestError(Err.EREMOTE, _short(f"child agent failed: {exc.one_line()}")) from None
        finally:
            _rearm(ctx)
        answer, cut = cap_utf8(answer, self.max_output_bytes)
        if cut:
            ctx.log(f"agent.run: answer truncated to {self.max_output_bytes} bytes")
        return ctx.alloc_str(answer), 0

    def functions(self) -> list[HostFunction]:
        fn = partial(host, self.namespace)
        return [
            fn("run", "task grants -> ptr err", self.run,
               "a child agent does task with only grants (str math json kv fs http ai, "
               "http:HOST, fs:DIR); returns its answer; EACCESS, EREMOTE"),
        ]  # fmt: skip


def _rearm(ctx: RunContext) -> None:
    """The engine's epoch is shared by every run of the process: a child's program that hit
    its own deadline bumped it, which would also stop this (suspended) program when it goes
    on. Unless this run was itself stopped, its epoch deadline is set again from now."""
    store = ctx.store
    if store is None or ctx.cancel.is_set():
        return
    store.set_epoch_deadline(1)
    if ctx.cancel.is_set():  # stopped meanwhile: stop at the next check, as the bump meant
        store.set_epoch_deadline(0)
