"""A ``ChatModel`` that runs a GGUF model in-process with llama-cpp-python (``watt-agent[local]``).

``LocalModel(path)`` loads the weights on its first call (the caller holds the object; there
is no module-level cache) with ``n_ctx=8192``, one thread per CPU and llama.cpp's own output
silenced, then answers through ``Llama.create_chat_completion(stream=True)``:

- every text chunk goes to ``on_text`` as it arrives; ``cancel`` is checked before the call and
  between chunks (a set event stops generation and raises ``Interrupted``);
- usage comes from llama's counts: one streamed chunk per generated token, and the context's
  token count after the call for the prompt; without them it is estimated;
- when ``grammar`` is on (the default) and the conversation asks for ToolCalls (a system
  message mentions ``ToolCall::``), sampling is constrained by the reply grammar, so every
  reply parses without a fallback: the run's own grammar once ``use_grammar(gbnf)`` gave it
  (``agent.app`` builds it from the granted functions and the loaded catalog), else the
  frame-only ``agent.models.grammar.REPLY_GBNF``. Each token is sampled first and the grammar
  asked about that one token (``agent.models.sampling``; about 1.25x the tokens/s of masking
  the whole vocabulary first). Other calls (the ai capability's plain-text requests) are
  sampled freely;
- ``max_tokens`` defaults to ``DEFAULT_MAX_TOKENS`` so that a looping small model stops;
- before streaming, the prompt is evaluated here, a batch at a time, so that ``progress`` sees
  ("prompt", tokens evaluated, total) and a cancel stops it between batches (and within one,
  through llama.cpp's abort callback). llama-cpp-python then finds every token but the last in
  its context and evaluates only that one;
- with ``home``, the evaluated system prompt is saved (``agent.models.prompt_state``) and a
  new process restores it instead of evaluating it again; with ``check_backend``, the first
  load runs ``agent.models.probe.ensure_checked`` (a long prompt in a child process, once per
  backend), so a llama.cpp that faults on this CPU is a one-line error, not a killed watt.

With no endpoint configured, ``watt`` uses the best model installed under ``home/models``
(``agent.models.weights.best_installed``), when ``llama_available()``: ``agent.models.backends`` decides.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.models import probe, prompt_state, sampling
from agent.models.grammar import GRAMMAR_TRIGGER, REPLY_GBNF, wants_grammar
from agent.models.messages import (
    Completion,
    Message,
    Usage,
    check_cancel,
    estimate_usage,
)
from agent.models.weights import file_digest
from rt.errors import ConfigError, ModelAPIError

__all__ = ["GRAMMAR_TRIGGER", "LocalModel", "llama_available", "wants_grammar"]

N_CTX = 8192
DEFAULT_MAX_TOKENS = 1024
INSTALL_HINT = "pip install 'watt-agent[local]'"

LlamaFactory = Callable[..., Any]
"""``factory(model_path=..., n_ctx=..., n_threads=..., verbose=False)`` -> a ``llama_cpp.Llama``."""
GrammarFactory = Callable[[str], Any]
"""``grammar_factory(gbnf_text)`` -> a ``llama_cpp.LlamaGrammar``."""
Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: "check" (the backend check: 0 of 1, then the child's prompt
tokens evaluated of total when it evaluates the system prompt), "load" (0 then 1 of 1),
"prompt" (prompt tokens evaluated or restored, of those evaluated before generation)."""


def llama_available() -> bool:
    """Whether llama-cpp-python can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):
        return False


def _import_llama() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise ConfigError(f"local models need llama-cpp-python: {INSTALL_HINT}") from exc
    except (OSError, RuntimeError) as exc:  # installed, but its native library does not load
        raise ConfigError(f"llama-cpp-python is installed but does not load: {exc}") from exc
    return llama_cpp


@dataclass(frozen=True)
class Prefill:
    """How the last call's prompt was prepared (all counts are tokens; zeros: not by us)."""

    tokens: int = 0  # the whole prompt
    system: int = 0  # the system prompt's prefix (what a saved state holds)
    reused: int = 0  # already in the context from an earlier call in this process
    restored: int = 0  # loaded from a saved state on disk
    evaluated: int = 0  # evaluated here, before generation
    saved: bool = False  # the system prompt's state was written to disk
    seconds: float = 0.0


class LocalModel:
    """A ``ChatModel`` over a ``llama_cpp.Llama`` loaded from a GGUF file."""

    def __init__(
        self,
        path: Path,
        *,
        grammar: bool = True,
        n_ctx: int = N_CTX,
        n_threads: int | None = None,
        temperature: float = 0.2,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        llama_factory: LlamaFactory | None = None,
        grammar_factory: GrammarFactory | None = None,
        home: Path | None = None,
        check_backend: bool = False,
        progress: Progress | None = None,
        ops: LlamaOps | None = None,
        grammar_first_check: bool = True,
    ) -> None:
        self.path = Path(path)
        self.grammar = grammar
        self.grammar_first_check = grammar_first_check  # agent.models.sampling
        self.n_ctx = n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.total_usage = Usage()
        if llama_factory is None or (grammar and grammar_factory is None):
            module = _import_llama()
            llama_factory = llama_factory or module.Llama
            grammar_factory = grammar_factory or (
                lambda text: module.LlamaGrammar.from_string(text, verbose=False)
            )
        if not self.path.is_file():
            raise ConfigError(
                f"local model file not found: {self.path} (run `watt model pull` or pass "
                "--model local:PATH.gguf)"
            )
        self._llama_factory = llama_factory
        self._grammar_factory = grammar_factory
        self._llama: Any = None
        self._grammar_text = REPLY_GBNF
        self._grammar: Any = None  # the compiled grammar of _grammar_text
        self._lock = threading.Lock()
        self._cancel: threading.Event | None = None  # the call in flight's, for the abort callback
        self._abort_callback: Any = None  # kept referenced while llama.cpp holds it
        self.home = home
        self.check_backend = check_backend and home is not None
        self.progress = progress
        self.ops = ops or LlamaOps()
        self.last_prefill = Prefill()

    @property
    def name(self) -> str:
        return f"local:{self.path.name}"

    def __repr__(self) -> str:
        return f"LocalModel({str(self.path)!r}, grammar={self.grammar})"

    def use_grammar(self, gbnf: str | None) -> None:
        """Constrain later agent turns with ``gbnf`` (None: the frame-only ``REPLY_GBNF``)."""
        with self._lock:
            text = gbnf or REPLY_GBNF
            if text != self._grammar_text:
                self._grammar_text, self._grammar = text, None

    def load(self) -> None:
        """Load the weights now (the first ``complete`` does it otherwise)."""
        with self._lock:
            self._ensure_loaded()

    def prefill(self, messages: Sequence[Message], cancel: threading.Event | None = None) -> None:
        """Evaluate ``messages`` as ``complete`` would before generating (``last_prefill``
        says how), saving the system prompt's state under ``home``; nothing is generated."""
        check_cancel(cancel)
        with self._lock:
            llama = self._ensure_loaded(cancel, messages)
            self._cancel = cancel
            try:
                with _quiet_callback_interrupts():
                    self._prefill(llama, messages, cancel)
            finally:
                self._cancel = None

    def close(self) -> None:
        """Free the weights; a later call loads them again."""
        with self._lock:
            llama, self._llama, self._grammar = self._llama, None, None
            if llama is not None and hasattr(llama, "close"):
                with contextlib.suppress(Exception):
                    llama.close()

    def __enter__(self) -> LocalModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def complete(
        self,
        messages: Sequence[Message],
        *,
        on_text: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        max_tokens: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> Completion:
        check_cancel(cancel)
        with self._lock:
            llama = self._ensure_loaded(cancel, messages)
            kwargs: dict[str, Any] = {
                "messages": [m.to_dict() for m in messages],
                "stream": True,
                "temperature": self.temperature,
                "max_tokens": max_tokens if max_tokens is not None else self.max_tokens,
            }
            if stop:
                kwargs["stop"] = list(stop)
            if self.grammar and wants_grammar(messages):
                kwargs["grammar"] = self._reply_grammar()
            self._cancel = cancel
            try:
                with _quiet_callback_interrupts():
                    self._prefill(llama, messages, cancel)
                    text, finish, chunks = self._stream(llama, kwargs, on_text, cancel)
            finally:
                self._cancel = None
            usage = self._usage(llama, messages, text, chunks)
            self.total_usage = self.total_usage + usage
        return Completion(text, usage, finish)

    # -- internals ------------------------------------------------------------------------

    def _ensure_loaded(
        self, cancel: threading.Event | None = None, messages: Sequence[Message] = ()
    ) -> Any:
        if self._llama is None:
            if self.check_backend and self.home is not None:
                system = messages[0].content if messages and messages[0].role == "system" else ""
                probe.ensure_checked(
                    self.home,
                    self.path,
                    cancel=cancel,
                    on_start=lambda: self._report("check", 0, 1),
                    prompt=probe.SystemPrompt(system, self.n_ctx, self.home) if system else None,
                    on_progress=lambda done, total: self._report("check", done, total),
                )
                self.check_backend = False
            check_cancel(cancel)
            self._report("load", 0, 1)
            self._llama = self._load()
            self._install_abort(self._llama)
            if self.grammar_first_check:
                sampling.install(self._llama)
            # llama.cpp logs an aborted decode at error level; failures reach us as exceptions
            logging.getLogger("llama-cpp-python").setLevel(logging.CRITICAL)
            self._report("load", 1, 1)
            check_cancel(cancel)  # a Ctrl-C during the load (a native call) stops here
        return self._llama

    def _load(self) -> Any:
        """The llama, loaded here and now. The native load cannot be interrupted, and it is not
        moved to a thread: llama-cpp-python points the process's stdout and stderr at
        /dev/null while it loads, so a "watt: interrupted" printed meanwhile would be lost
        (and a REPL's prompt with it). A Ctrl-C during the load (about 1.5 s) acts after it,
        and the model stays loaded for the next call."""
        try:
            llama = self._llama_factory(
                model_path=str(self.path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                verbose=False,
            )
        except (ValueError, OSError, RuntimeError) as exc:
            raise ConfigError(f"cannot load local model {self.path}: {exc}") from exc
        return llama

    def _report(self, phase: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(phase, done, total)

    def _prefill(
        self, llama: Any, messages: Sequence[Message], cancel: threading.Event | None
    ) -> None:
        """Evaluate the prompt up to its last token, restoring or saving the system prompt."""
        start = time.perf_counter()
        try:
            plan = self.ops.prompt_tokens(llama, messages)
        except (ValueError, RuntimeError, TypeError, KeyError) as exc:
            plan = None  # an unusual template: llama-cpp-python evaluates the prompt itself
            logging.getLogger(__name__).debug("no prompt plan: %s", exc)
        if plan is None or len(plan[0]) >= self.n_ctx:  # too long: llama says so itself
            self.last_prefill = Prefill()
            return
        tokens, system = plan
        target = len(tokens) - 1  # llama-cpp-python evaluates the last token itself
        kept = _common_prefix(self.ops.context_tokens(llama), tokens[:target])
        reused, restored, saved = kept, 0, False
        use_state = self.home is not None and kept < system <= target
        if use_state and self._restore(llama, tokens[:system]):
            kept = restored = system
        have = kept
        self._report("prompt", kept, target)
        try:
            if use_state and kept < system:
                self._evaluate(llama, tokens, kept, system, target, cancel)
                saved, kept = self._save(llama, tokens[:system]), system
            self._evaluate(llama, tokens, kept, target, target, cancel)
        except (ValueError, RuntimeError, OSError) as exc:
            llama.n_tokens = 0  # whatever was half evaluated is not trusted again
            check_cancel(cancel)  # an abort through the callback: an interruption
            raise ModelAPIError(f"local model {self.path.name} failed: {exc}") from exc
        self.last_prefill = Prefill(
            len(tokens), system, reused, restored, target - have, saved,
            time.perf_counter() - start,
        )  # fmt: skip

    def _evaluate(
        self,
        llama: Any,
        tokens: Sequence[int],
        begin: int,
        end: int,
        total: int,
        cancel: threading.Event | None,
    ) -> None:
        """Evaluate ``tokens[begin:end]`` after the first ``begin`` (dropping the rest)."""
        if begin >= end:
            return
        llama.n_tokens = begin  # llama's eval drops the context after n_tokens first
        step = max(1, int(getattr(llama, "n_batch", 512) or 512))
        for i in range(begin, end, step):
            check_cancel(cancel)
            llama.eval(list(tokens[i : min(end, i + step)]))
            self._report("prompt", min(end, i + step), total)

    def _state_key(self, tokens: Sequence[int]) -> str | None:
        fingerprint = self.ops.backend(self._llama)
        digest = file_digest(self.path, prompt_state.state_dir(self.home) if self.home else None)
        if fingerprint is None or digest is None:
            return None
        return prompt_state.state_key(digest, tokens, self.n_ctx, fingerprint)

    def _restore(self, llama: Any, tokens: Sequence[int]) -> bool:
        assert self.home is not None
        key = self._state_key(tokens)
        directory = prompt_state.state_dir(self.home)
        data = None if key is None else prompt_state.read_state(directory, key, tokens)
        if data is None:
            return False
        try:
            self.ops.set_state(llama, tokens, data)
        except (ValueError, RuntimeError, OSError):
            llama.n_tokens = 0  # a refused state: evaluate from scratch, then rewrite it
            return False
        return True

    def _save(self, llama: Any, tokens: Sequence[int]) -> bool:
        assert self.home is not None
        key = self._state_key(tokens)
        if key is None:
            return False
        try:
            data = self.ops.get_state(llama)
        except (ValueError, RuntimeError, OSError):
            return False
        directory = prompt_state.state_dir(self.home)
        return prompt_state.write_state(directory, key, tokens, data) is not None

    def _install_abort(self, llama: Any) -> None:
        """Let a set cancel event abort llama.cpp mid-computation.

        A first prompt of ~2,400 tokens takes tens of seconds to evaluate on 2 cores, and no
        text streams until it is done. llama.cpp polls the abort callback during each decode;
        a true answer makes ``llama_decode`` fail, which ``_stream`` reports as ``Interrupted``.
        Skipped for a stand-in llama (tests) or a llama-cpp-python without the hook.
        """
        module = sys.modules.get("llama_cpp")
        ctx = getattr(getattr(llama, "_ctx", None), "ctx", None)
        set_abort = getattr(module, "llama_set_abort_callback", None)
        callback_type = getattr(module, "ggml_abort_callback", None)
        if ctx is None or set_abort is None or callback_type is None:
            return

        def abort(_data: Any) -> bool:
            cancel = self._cancel
            return cancel is not None and cancel.is_set()

        self._abort_callback = callback_type(abort)
        set_abort(ctx, self._abort_callback, None)

    def _reply_grammar(self) -> Any:
        if self._grammar is None:
            assert self._grammar_factory is not None
            self._grammar = self._grammar_factory(self._grammar_text)
        return self._grammar

    def _stream(
        self,
        llama: Any,
        kwargs: dict[str, Any],
        on_text: Callable[[str], None] | None,
        cancel: threading.Event | None,
    ) -> tuple[str, str | None, int]:
        """Run one streamed completion; return (text, finish reason, content chunks)."""
        parts: list[str] = []
        finish: str | None = None
        try:
            stream: Iterator[dict[str, Any]] = iter(llama.create_chat_completion(**kwargs))
            try:
                for chunk in stream:
                    content, reason = _delta(chunk)
                    if content:
                        parts.append(content)
                        if on_text is not None:
                            on_text(content)
                    finish = reason or finish
                    check_cancel(cancel)  # before asking llama for the next token
                    if len(parts) % 8 == 0 and repeating("".join(parts[-REPEAT_WINDOW:])):
                        finish = "length"  # a degenerate loop: cut it, as the token cap would
                        break
            finally:
                close = getattr(stream, "close", None)
                if callable(close):
                    close()  # stops llama's generator at once on cancel or error
        except (ValueError, RuntimeError, OSError) as exc:
            check_cancel(cancel)  # an abort through the callback: an interruption, not a failure
            raise ModelAPIError(f"local model {self.path.name} failed: {exc}") from exc
        return "".join(parts), finish, len(parts)

    def _usage(self, llama: Any, messages: Sequence[Message], text: str, chunks: int) -> Usage:
        n_tokens = getattr(llama, "n_tokens", None)
        if type(n_tokens) is not int or n_tokens < chunks:
            return estimate_usage(messages, text)
        return Usage(n_tokens - chunks, chunks, estimated=False)


REPEAT_WINDOW = 512  # chunks (about tokens) looked at by ``repeating``
REPEATS = 8


def repeating(text: str, *, repeats: int = REPEATS, longest: int = 64) -> bool:
    """True when ``text`` ends with one unit of 2 to ``longest`` characters repeated
    ``repeats`` times in a row, 64 characters or more in all: a small model's degenerate loop
    (``(i32.const 0) (i32.const 0) ...`` or a run of blanks), which would otherwise run to
    the reply-length cap, minutes on a CPU."""
    for period in range(2, longest + 1):
        span = period * repeats
        if span < 64:
            continue
        if len(text) < span:
            break
        tail = text[-span:]
        if tail == tail[:period] * repeats:
            return True
    return False


def _delta(chunk: Any) -> tuple[str, str | None]:
    """The text and finish reason of one ``chat.completion.chunk``."""
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "", None
    delta = choices[0].get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    reason = choices[0].get("finish_reason")
    return (content if isinstance(content, str) else ""), (str(reason) if reason else None)


@contextlib.contextmanager
def _quiet_callback_interrupts() -> Iterator[None]:
    """Drop the traceback ctypes prints for a Ctrl-C that lands inside llama.cpp's abort callback.

    The KeyboardInterrupt cannot leave a ctypes callback: ctypes reports it as unraisable
    ("Exception ignored on calling ctypes callback function" and a traceback) and drops it.
    The cancel event the SIGINT handler set stops the call at the next poll, so the report
    is noise; any other unraisable error still goes to the previous hook.
    """
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            return
        previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


PromptPlan = tuple[list[int], int]
"""(the prompt's tokens, the length of its system-prompt prefix)."""


class LlamaOps:
    """What ``LocalModel`` asks of llama-cpp-python besides ``create_chat_completion``: the
    tokens its chat handler will evaluate, the tokens in the context, llama.cpp's state and
    the backend's fingerprint. The one seam to llama's internals (the tests replace it)."""

    def __init__(self) -> None:
        self._formatters: dict[str, Any] = {}
        self._fingerprint: str | None = None

    def backend(self, llama: Any) -> str | None:
        if self._fingerprint is None:
            self._fingerprint = probe.backend_fingerprint()
        return self._fingerprint

    def prompt_tokens(self, llama: Any, messages: Sequence[Message]) -> PromptPlan | None:
        """The tokens llama-cpp-python's handler for the GGUF's own chat template will build
        (the same formatter and tokenizer call), or None for any other chat format."""
        if getattr(llama, "chat_handler", None) is not None:
            return None
        if getattr(llama, "chat_format", None) != "chat_template.default":
            return None
        formatter = self._formatter(llama)
        if formatter is None:
            return None
        tokens = self._tokens(llama, formatter, [m.to_dict() for m in messages])
        if not messages or messages[0].role != "system":
            return tokens, 0
        alone = self._tokens(llama, formatter, [messages[0].to_dict()])
        return tokens, _common_prefix(alone, tokens)

    def context_tokens(self, llama: Any) -> list[int]:
        return [int(t) for t in llama.input_ids[: llama.n_tokens]]

    def get_state(self, llama: Any) -> bytes:
        module = _import_llama()
        ctx = llama._ctx.ctx
        size = int(module.llama_state_get_size(ctx))
        buffer = (ctypes.c_uint8 * size)()
        written = int(module.llama_state_get_data(ctx, buffer, size))
        if written > size:
            raise RuntimeError("llama_state_get_data overran its buffer")
        return ctypes.string_at(buffer, written)

    def set_state(self, llama: Any, tokens: Sequence[int], data: bytes) -> None:
        module = _import_llama()
        buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if int(module.llama_state_set_data(llama._ctx.ctx, buffer, len(data))) != len(data):
            raise RuntimeError("llama_state_set_data refused the saved state")
        llama.input_ids[: len(tokens)] = list(tokens)
        llama.n_tokens = len(tokens)

    def _formatter(self, llama: Any) -> Any:
        template = (getattr(llama, "metadata", None) or {}).get("tokenizer.chat_template")
        if not template:
            return None
        if template not in self._formatters:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            eos, bos = llama.token_eos(), llama.token_bos()
            self._formatters[template] = Jinja2ChatFormatter(
                template=template,
                eos_token=_token_text(llama, eos),
                bos_token=_token_text(llama, bos),
                stop_token_ids=[eos],
            )
        return self._formatters[template]

    @staticmethod
    def _tokens(llama: Any, formatter: Any, messages: list[dict[str, Any]]) -> list[int]:
        result = formatter(messages=messages)
        return list(
            llama.tokenize(
                result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
            )
        )


def _token_text(llama: Any, token: int) -> str:
    if token < 0:
        return ""
    return bytes(llama.detokenize([token], special=True)).decode("utf-8", errors="replace")
