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
  frame-only ``agent.models.grammar.REPLY_GBNF``. Other calls (the ai capability's plain-text
  requests) are sampled freely;
- ``max_tokens`` defaults to ``DEFAULT_MAX_TOKENS`` so that a looping small model stops.

With no endpoint configured, ``watt`` uses the best model installed under ``home/models``
(``agent.models.weights.best_installed``), when ``llama_available()``: ``agent.models.backends`` decides.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from agent.models.grammar import GRAMMAR_TRIGGER, REPLY_GBNF, wants_grammar
from agent.models.messages import (
    Completion,
    Message,
    Usage,
    check_cancel,
    estimate_usage,
)
from rt.errors import ConfigError, ModelAPIError

__all__ = ["GRAMMAR_TRIGGER", "LocalModel", "llama_available", "wants_grammar"]

N_CTX = 8192
DEFAULT_MAX_TOKENS = 1024
INSTALL_HINT = "pip install 'watt-agent[local]'"

LlamaFactory = Callable[..., Any]
"""``factory(model_path=..., n_ctx=..., n_threads=..., verbose=False)`` -> a ``llama_cpp.Llama``."""
GrammarFactory = Callable[[str], Any]
"""``grammar_factory(gbnf_text)`` -> a ``llama_cpp.LlamaGrammar``."""


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
    ) -> None:
        self.path = Path(path)
        self.grammar = grammar
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
            llama = self._ensure_loaded()
            self._cancel = cancel
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
            try:
                text, finish, chunks = self._stream(llama, kwargs, on_text, cancel)
            finally:
                self._cancel = None
            usage = self._usage(llama, messages, text, chunks)
            self.total_usage = self.total_usage + usage
        return Completion(text, usage, finish)

    # -- internals ------------------------------------------------------------------------

    def _ensure_loaded(self) -> Any:
        if self._llama is None:
            try:
                self._llama = self._llama_factory(
                    model_path=str(self.path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    verbose=False,
                )
            except (ValueError, OSError, RuntimeError) as exc:
                raise ConfigError(f"cannot load local model {self.path}: {exc}") from exc
            self._install_abort(self._llama)
            # llama.cpp logs an aborted decode at error level; failures reach us as exceptions
            logging.getLogger("llama-cpp-python").setLevel(logging.CRITICAL)
        return self._llama

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


def _delta(chunk: Any) -> tuple[str, str | None]:
    """The text and finish reason of one ``chat.completion.chunk``."""
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "", None
    delta = choices[0].get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    reason = choices[0].get("finish_reason")
    return (content if isinstance(content, str) else ""), (str(reason) if reason else None)
