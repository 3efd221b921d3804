"""``OpenAIChatModel``: a ``ChatModel`` for any OpenAI-compatible ``/v1/chat/completions``
endpoint, over httpx (the one seam to that service: it takes an httpx transport).

Everything that talks to a language model goes through ``ChatModel.complete``; the protocol
and the message types are in ``agent.models.messages``. The other backends are
``agent.models.local.LocalModel`` (a GGUF in-process) and ``agent.models.scripted.ScriptedModel``
(a replay queue for tests and ``--model script:FILE``); ``agent.models.backends`` decides which
one a setting means.

``OpenAIChatModel`` behaviour, in short:

- Retries 408, 429, 5xx, connect errors, timeouts and dropped connections with backoff and
  jitter, honouring ``Retry-After`` (``agent.models.retry``). A 429 whose body says the quota
  is used up (``insufficient_quota``) fails at once. A stream cut mid-reply (the connection
  dropped, or it ended without a ``finish_reason``: llama-cpp-python's server sends ``[DONE]``
  mid-reply when another request arrives) is retried once, never returned as a whole reply;
  one that already delivered text to ``on_text`` is not retried (the caller would see it twice).
- 401/403 and 404 fail at once, and an unreachable endpoint after its retries, with a
  ``ModelSetupError`` naming the setting to fix (CLI exit 2); other failures are a
  ``ModelAPIError`` (exit 1). Every message is one line.
- Every call sends a reply-length cap: ``max_tokens`` if given, else ``max_reply_tokens``
  (default 1024; config ``max_reply_tokens``; None sends none).
- Two time limits: ``timeout_s`` per read (httpx) and ``deadline_s`` for the whole call,
  retries and backoff included (default 300 s; config ``model_deadline``): a provider that
  trickles a token every few seconds is cut at the deadline with a one-line error.
- Streams (SSE) by default and asks for usage in the last chunk. When the server rejects
  ``stream_options`` or streaming (a 400/404/422/501 mentioning "stream"), or answers a streaming
  request with plain JSON, it falls back for this and every later call.
- The request runs on a helper thread (``agent.models.streaming.Exchange``), so a set
  ``cancel``, the deadline and Ctrl-C act within about 0.05 s even while the server has sent
  nothing yet; ``cancel`` raises ``Interrupted``.
- Lone surrogates in the reply (a valid ``\\ud800`` JSON escape) become U+FFFD.
- Usage comes from the server when it reports it, else it is estimated at ~4 characters per
  token (``Usage.estimated``). ``total_usage`` accumulates over successful calls.
- The API key is sent only as ``Authorization: Bearer``; it is redacted from every message
  and never shown by ``repr``.
- Constrained decoding: after ``use_grammar(gbnf)`` (``agent.app`` builds the run's reply
  grammar), agent turns (a system message mentions ``ToolCall::``) carry llama.cpp's
  top-level ``"grammar"`` field when ``grammar`` is "on", or when it is "auto" (the default)
  and the endpoint is a llama.cpp server. "auto" finds out once per model object, on the
  first agent turn, with cheap GETs that never wait for the model: ``{root}/openapi.json``
  declaring ``grammar`` in ``CreateChatCompletionRequest`` (llama-cpp-python's server; its
  ``/v1/models`` waits while another request generates), else ``{root}/props`` with
  ``default_generation_settings`` (llama.cpp's llama-server); ``root`` is the base URL
  without ``/v1``. Anything else (api.openai.com, other servers) gets no grammar. Under
  "auto" a 400/422/500 that names the grammar turns it off for this and later calls.
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import httpx

from agent.config import GRAMMAR_MODES
from agent.models.grammar import wants_grammar
from agent.models.messages import (
    Completion,
    Message,
    Usage,
    check_cancel,
    estimate_usage,
    scrub_surrogates,
)
from agent.models.retry import (
    CUT_RETRIES,
    Retryable,
    backoff,
    is_quota_exhausted,
    parse_retry_after,
)
from agent.models.streaming import Exchange, iter_sse_data
from agent.models.wire import (
    declares_grammar,
    is_llama_server,
    message_of,
    one_line,
    parse_usage,
    server_message,
)
from rt.errors import ConfigError, ModelAPIError, ModelSetupError

__all__ = ["OpenAIChatModel", "iter_sse_data", "parse_retry_after", "server_message"]

DEFAULT_DEADLINE_S = 300.0  # a whole model call, retries included (config: model_deadline)
DEFAULT_MAX_REPLY_TOKENS = 1024  # sent as max_tokens (config: max_reply_tokens)
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_ERROR_BODY_BYTES = 64 * 1024
_STREAM_REJECT_STATUSES = frozenset({400, 404, 422, 501})
_GRAMMAR_REJECT_STATUSES = frozenset({400, 422, 500})
PROBE_TIMEOUT_S = 5.0
PROBE_MAX_BYTES = 1024 * 1024

T = TypeVar("T")


class _StreamRejected(Exception):
    def __init__(self, body: str) -> None:
        super().__init__(body)
        self.body = body


class _GrammarRejected(Exception):
    pass


class _Attempt:
    """Per-call state shared across attempts: whether text reached ``on_text``, and the
    call's overall deadline (``time.monotonic()``) with the seconds it was made from."""

    def __init__(self, deadline_s: float) -> None:
        self.emitted = False
        self.deadline_s = deadline_s
        self.deadline = time.monotonic() + deadline_s


class OpenAIChatModel:
    """A ``ChatModel`` for any OpenAI-compatible ``/v1`` endpoint."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 60.0,
        deadline_s: float = DEFAULT_DEADLINE_S,
        max_reply_tokens: int | None = DEFAULT_MAX_REPLY_TOKENS,
        max_retries: int = 4,
        backoff_base_s: float = 0.5,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
        temperature: float = 0.2,
        stream: bool = True,
        grammar: str = "auto",
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"model base URL must start with http:// or https:// (got {base_url[:80]!r}); "
                "set WATT_BASE_URL"
            )
        if not model:
            raise ConfigError("no model name given; set WATT_MODEL")
        if grammar not in GRAMMAR_MODES:
            raise ConfigError(f"grammar must be one of {', '.join(GRAMMAR_MODES)}, got {grammar!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.temperature = temperature
        self.total_usage = Usage()
        self._api_key = api_key or ""
        self._timeout_s = timeout_s
        self.deadline_s = deadline_s
        self.max_reply_tokens = max_reply_tokens
        self._max_attempts = max(1, max_retries + 1)
        self._backoff_base_s = backoff_base_s
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._stream = stream
        self._stream_usage = True
        self.grammar = grammar
        self._reply_grammar: str | None = None
        self._grammar_support: bool | None = {"on": True, "off": False}.get(grammar)
        self._lock = threading.Lock()
        headers = {"Accept": "application/json, text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        self._client = httpx.Client(
            transport=transport,
            trust_env=False,
            follow_redirects=False,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
        )

    @property
    def name(self) -> str:
        return self.model

    @property
    def streaming(self) -> bool:
        """Whether the next call will ask for a stream (false after a fallback)."""
        return self._stream

    def __repr__(self) -> str:
        return f"OpenAIChatModel(base_url={self.base_url!r}, model={self.model!r})"

    def use_grammar(self, gbnf: str | None) -> None:
        """Send ``gbnf`` with later agent turns, when the endpoint takes it (None: never)."""
        self._reply_grammar = gbnf

    def grammar_supported(self, cancel: threading.Event | None = None) -> bool:
        """Whether the endpoint takes a ``grammar``: "on", "off", or auto's probe (made once;
        a probe that could not connect is made again next time)."""
        if self._grammar_support is None:
            found = self._probe_grammar(cancel)
            if found is not None:
                self._grammar_support = found
            return bool(found)
        return self._grammar_support

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAIChatModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public calls -------------------------------------------------------------------

    def complete(
        self,
        messages: Sequence[Message],
        *,
        on_text: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        max_tokens: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> Completion:
        url = f"{self.base_url}/chat/completions"
        state = _Attempt(self.deadline_s)
        grammar = self._grammar_for(messages, cancel)
        if max_tokens is None:
            max_tokens = self.max_reply_tokens

        def attempt() -> tuple[str, str | None, Usage | None]:
            nonlocal grammar
            while True:
                try:
                    return self._complete_once(
                        url, messages, on_text, cancel, max_tokens, stop, state, grammar
                    )
                except _GrammarRejected:
                    self._grammar_support, grammar = False, None
                except _StreamRejected as rejected:
                    if self._stream_usage and "stream_options" in rejected.body.lower():
                        self._stream_usage = False
                    else:
                        self._stream = False

        text, finish, reported = self._with_retries(
            attempt, cancel, lambda: not state.emitted, state.deadline
        )
        usage = reported if reported is not None else estimate_usage(messages, text)
        with self._lock:
            self.total_usage = self.total_usage + usage
        return Completion(text, usage, finish)

    def list_models(self, cancel: threading.Event | None = None) -> list[str]:
        """The model ids the endpoint offers (``GET {base_url}/models``)."""
        url = f"{self.base_url}/models"

        deadline = time.monotonic() + self.deadline_s

        def attempt() -> list[str]:
            request = self._client.build_request("GET", url)
            with self._transport_errors(url), self._exchange(request, cancel, deadline) as ex:
                resp = ex.response()
                if resp.status_code >= 400:
                    raise self._status_error(resp, self._read(ex, url, MAX_ERROR_BODY_BYTES), url)
                obj = self._json(self._read(ex, url, MAX_BODY_BYTES), url)
            data = obj.get("data") if isinstance(obj, dict) else None
            if not isinstance(data, list):
                raise ModelAPIError(f"malformed response from {url}: no 'data' list")
            return [str(item["id"]) for item in data if isinstance(item, dict) and "id" in item]

        return self._with_retries(attempt, cancel, lambda: True, deadline)

    # -- grammar ----------------------------------------------------------------------------

    def _grammar_for(
        self, messages: Sequence[Message], cancel: threading.Event | None
    ) -> str | None:
        if self._reply_grammar is None or not wants_grammar(messages):
            return None
        return self._reply_grammar if self.grammar_supported(cancel) else None

    def _probe_grammar(self, cancel: threading.Event | None) -> bool | None:
        """True for a llama.cpp server, False for anything else, None if unreachable."""
        root = self.base_url.removesuffix("/v1")
        probes: tuple[tuple[str, Callable[[object], bool]], ...] = (
            (f"{root}/openapi.json", declares_grammar),
            (f"{root}/props", is_llama_server),
        )
        seconds = min(self._timeout_s, PROBE_TIMEOUT_S)
        for url, recognise in probes:
            check_cancel(cancel)
            request = self._client.build_request("GET", url, timeout=httpx.Timeout(seconds))
            # a server this slow to answer counts as unreachable (asked again next time)
            late = functools.partial(httpx.ReadTimeout, f"no answer from {url} in {seconds:g} s")
            deadline = time.monotonic() + seconds
            try:
                with Exchange(
                    self._client, request, cancel=cancel, deadline=deadline, on_deadline=late
                ) as ex:
                    if ex.response().status_code != 200:
                        continue
                    body = self._read(ex, url, PROBE_MAX_BYTES)
            except httpx.TransportError:
                return None
            except ModelAPIError:  # larger than any answer we look for
                continue
            try:
                if recognise(json.loads(body)):
                    return True
            except ValueError:
                continue
        return False

    # -- one attempt ----------------------------------------------------------------------

    def _payload(
        self,
        messages: Sequence[Message],
        max_tokens: int | None,
        stop: Sequence[str] | None,
        grammar: str | None = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [m.to_dict() for m in messages],
            "temperature": self.temperature,
        }
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        if stop:
            payload["stop"] = list(stop)
        if grammar is not None:
            payload["grammar"] = grammar
        if self._stream:
            payload["stream"] = True
            if self._stream_usage:
                payload["stream_options"] = {"include_usage": True}
        return payload

    def _complete_once(
        self,
        url: str,
        messages: Sequence[Message],
        on_text: Callable[[str], None] | None,
        cancel: threading.Event | None,
        max_tokens: int | None,
        stop: Sequence[str] | None,
        state: _Attempt,
        grammar: str | None = None,
    ) -> tuple[str, str | None, Usage | None]:
        streaming = self._stream
        payload = self._payload(messages, max_tokens, stop, grammar)
        request = self._client.build_request("POST", url, json=payload)
        with (
            self._transport_errors(url),
            self._exchange(request, cancel, state.deadline, state.deadline_s) as exchange,
        ):
            resp = exchange.response()
            if resp.status_code >= 400:
                body = self._read(exchange, url, MAX_ERROR_BODY_BYTES)
                lowered = body.decode("utf-8", "replace").lower()
                if (
                    grammar is not None
                    and self.grammar == "auto"
                    and resp.status_code in _GRAMMAR_REJECT_STATUSES
                    and "grammar" in lowered
                ):
                    raise _GrammarRejected()
                if (
                    streaming
                    and resp.status_code in _STREAM_REJECT_STATUSES
                    and "stream" in lowered
                ):
                    raise _StreamRejected(body.decode("utf-8", "replace"))
                raise self._status_error(resp, body, url)
            ctype = resp.headers.get("content-type", "").lower()
            if "text/event-stream" in ctype or (streaming and "json" not in ctype):
                try:
                    return self._read_stream(exchange.lines(), url, on_text, cancel, state)
                except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ReadTimeout) as exc:
                    raise Retryable(
                        f"the reply stream from {url} was cut: "
                        f"{self._clean(str(exc)) or type(exc).__name__}",
                        cut=True,
                    ) from exc
            if streaming:
                self._stream = False  # the server ignored stream=true: stop asking
            obj = self._json(self._read(exchange, url, MAX_BODY_BYTES), url)
        text, finish = message_of(obj, url, self._clean)
        text = scrub_surrogates(text)
        if on_text is not None and text:
            state.emitted = True
            on_text(text)
        return text, finish, parse_usage(obj.get("usage"))

    def _read_stream(
        self,
        lines: Iterator[str],
        url: str,
        on_text: Callable[[str], None] | None,
        cancel: threading.Event | None,
        state: _Attempt,
    ) -> tuple[str, str | None, Usage | None]:
        parts: list[str] = []
        finish: str | None = None
        usage: Usage | None = None
        events = 0
        chat_chunks = 0
        for data in iter_sse_data(lines):
            if data.strip() == "[DONE]":
                break
            events += 1
            try:
                chunk: Any = json.loads(data)
            except ValueError as exc:
                raise ModelAPIError(
                    f"malformed response from {url}: bad stream chunk {self._clean(data, 80)!r}"
                ) from exc
            if not isinstance(chunk, dict):
                raise ModelAPIError(f"malformed response from {url}: stream chunk is not an object")
            if chunk.get("error"):
                message = self._clean(server_message(json.dumps(chunk).encode()))
                raise ModelAPIError(f"model stream from {url} reported an error: {message}")
            usage = parse_usage(chunk.get("usage")) or usage
            choices = chunk.get("choices")
            if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
                continue
            chat_chunks += 1
            delta = choices[0].get("delta")
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str) and content:
                content = scrub_surrogates(content)
                parts.append(content)
                if on_text is not None:
                    state.emitted = True
                    on_text(content)
            if choices[0].get("finish_reason"):
                finish = str(choices[0]["finish_reason"])
        check_cancel(cancel)
        if events == 0:
            raise ModelAPIError(f"malformed response from {url}: empty stream")
        if chat_chunks and finish is None:
            # llama-cpp-python's server ends a reply with [DONE] when another request arrives
            # (interrupt_requests): a cut reply must not pass for a whole one.
            raise Retryable(
                f"the reply stream from {url} ended before the reply did (no finish_reason;"
                " a llama.cpp server cuts a reply short when another request arrives)",
                cut=True,
            )
        return "".join(parts), finish, usage

    # -- helpers --------------------------------------------------------------------------

    def _with_retries(
        self,
        fn: Callable[[], T],
        cancel: threading.Event | None,
        can_retry: Callable[[], bool],
        deadline: float,
    ) -> T:
        attempt = cuts = 0
        while True:
            attempt += 1
            check_cancel(cancel)
            try:
                return fn()
            except Retryable as exc:
                error = ModelSetupError if exc.setup else ModelAPIError
                if not can_retry():
                    raise ModelAPIError(f"{exc.message} (after partial output)") from exc.__cause__
                cuts += exc.cut
                if attempt >= self._max_attempts or cuts > CUT_RETRIES:
                    plural = "s" if attempt > 1 else ""
                    raise error(
                        f"{exc.message}; gave up after {attempt} attempt{plural}"
                    ) from exc.__cause__
                delay = exc.retry_after if exc.retry_after is not None else self._backoff(attempt)
                if time.monotonic() + delay >= deadline:
                    raise error(
                        f"{exc.message}; no time left to retry within the {self.deadline_s:g} s"
                        " model call deadline (model_deadline)"
                    ) from exc.__cause__
                self._wait(delay, cancel)

    def _backoff(self, attempt: int) -> float:
        return backoff(self._backoff_base_s, attempt, self._rng)

    def _wait(self, delay: float, cancel: threading.Event | None) -> None:
        if self._sleep is not None:
            self._sleep(delay)
        elif cancel is not None:
            cancel.wait(delay)
        else:
            time.sleep(delay)
        check_cancel(cancel)

    def _exchange(
        self,
        request: httpx.Request,
        cancel: threading.Event | None,
        deadline: float,
        seconds: float | None = None,
    ) -> Exchange:
        """``request`` run so that cancel, the deadline and Ctrl-C act at once."""
        too_late = functools.partial(
            self._deadline_error, str(request.url), self.deadline_s if seconds is None else seconds
        )
        return Exchange(
            self._client, request, cancel=cancel, deadline=deadline, on_deadline=too_late
        )

    def _deadline_error(self, url: str, seconds: float) -> ModelAPIError:
        return ModelAPIError(
            f"model call to {url} passed its {seconds:g} s deadline (set model_deadline in"
            " config.toml to allow longer replies)"
        )

    @contextlib.contextmanager
    def _transport_errors(self, url: str) -> Iterator[None]:
        """Translate httpx transport failures into retryable failures with a clear message."""
        try:
            yield
        except httpx.TimeoutException as exc:
            raise Retryable(
                f"model request to {url} timed out after {self._timeout_s:g} s"
                f" ({type(exc).__name__})"
            ) from exc
        except httpx.ConnectError as exc:
            raise Retryable(
                f"cannot reach {self.base_url}: {self._clean(str(exc)) or 'connection failed'}"
                " (is the server running? set WATT_BASE_URL)",
                setup=True,
            ) from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise Retryable(
                f"connection to {self.base_url} failed: {self._clean(str(exc)) or type(exc).__name__}"
            ) from exc
        except httpx.HTTPError as exc:
            raise ModelAPIError(
                f"request to {url} failed: {self._clean(str(exc)) or type(exc).__name__}"
            ) from exc

    def _status_error(self, resp: httpx.Response, body: bytes, url: str) -> Exception:
        status = resp.status_code
        head = f"HTTP {status} {resp.reason_phrase or ''}".rstrip() + f" from {url}"
        message = self._clean(server_message(body))
        detail = f": {message}" if message else ""
        if status in (401, 403):
            return ModelSetupError(f"{head}{detail}; check WATT_API_KEY (or OPENAI_API_KEY)")
        if status == 429 and is_quota_exhausted(body):
            return ModelAPIError(
                f"{head}: the account's quota is used up{detail}; add credit or raise the"
                " limit with the provider, or use another key or endpoint (not retried)"
            )
        if status == 404:
            return ModelSetupError(
                f"{head}{detail}; check WATT_BASE_URL={self.base_url} (usually ends in /v1)"
                f" and WATT_MODEL={self.model}"
            )
        if status in (408, 429) or status >= 500:
            return Retryable(f"{head}{detail}", parse_retry_after(resp.headers))
        return ModelAPIError(f"{head}{detail}")

    def _read(self, exchange: Exchange, url: str, limit: int) -> bytes:
        def too_large() -> ModelAPIError:
            return ModelAPIError(f"response from {url} is larger than {limit} bytes")

        return exchange.read(limit, too_large)

    def _json(self, body: bytes, url: str) -> dict[str, Any]:
        try:
            obj = json.loads(body)
        except ValueError as exc:
            snippet = self._clean(body.decode("utf-8", "replace"), 80)
            raise ModelAPIError(f"malformed response from {url}: not JSON ({snippet!r})") from exc
        if not isinstance(obj, dict):
            raise ModelAPIError(f"malformed response from {url}: expected a JSON object")
        return obj

    def _clean(self, text: str, limit: int = 200) -> str:
        """Outside text made safe to show: the key redacted, one line, truncated."""
        if len(self._api_key) >= 4:
            text = text.replace(self._api_key, "***")
        return one_line(text, limit)
