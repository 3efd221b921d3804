"""OpenAIChatModel over httpx.MockTransport: no real network (except one loopback server), no sleeping."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from agent.models.client import OpenAIChatModel, iter_sse_data, parse_retry_after, server_message
from agent.models.messages import (
    ChatModel,
    Completion,
    Message,
    Usage,
    estimate_tokens,
    estimate_usage,
)
from rt.errors import ConfigError, Interrupted, ModelAPIError

KEY = "sk-test-SECRET-abcdef0123456789"
BASE = "http://model.test/v1"
MESSAGES = [Message.system("You are terse."), Message.user("Say hi")]

Handler = Callable[[httpx.Request], httpx.Response]


class HalfRng(random.Random):
    """random() is always 0.5, so the jitter factor is exactly 1."""

    def random(self) -> float:
        return 0.5


def make(handler: Handler, **kwargs: Any) -> tuple[OpenAIChatModel, list[float]]:
    sleeps: list[float] = []
    kwargs.setdefault("sleep", sleeps.append)
    kwargs.setdefault("rng", HalfRng())
    model = OpenAIChatModel(BASE, KEY, "m1", transport=httpx.MockTransport(handler), **kwargs)
    return model, sleeps


def completion_json(text: str, usage: dict[str, int] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "x",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def delta(text: str | None = None, finish: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {} if text is None else {"content": text}
    return {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


def sse_bytes(*chunks: dict[str, Any] | str, done: bool = True) -> bytes:
    out = []
    for chunk in chunks:
        out.append(f"data: {chunk if isinstance(chunk, str) else json.dumps(chunk)}\n\n")
    if done:
        out.append("data: [DONE]\n\n")
    return "".join(out).encode()


def sse_response(body: bytes | httpx.SyncByteStream) -> httpx.Response:
    headers = {"content-type": "text/event-stream"}
    if isinstance(body, bytes):
        return httpx.Response(200, headers=headers, content=body)
    return httpx.Response(200, headers=headers, stream=body)


def payload(request: httpx.Request) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(request.content)
    return result


# -- success paths ---------------------------------------------------------------------------


def test_non_streaming_success_sends_a_proper_request() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json=completion_json("hi!", {"prompt_tokens": 12, "completion_tokens": 2})
        )

    model, sleeps = make(handler, stream=False)
    texts: list[str] = []
    result = model.complete(MESSAGES, on_text=texts.append, max_tokens=50, stop=["\n\n"])

    assert result == Completion("hi!", Usage(12, 2, estimated=False), "stop")
    assert texts == ["hi!"]
    assert model.total_usage == Usage(12, 2, estimated=False)
    assert sleeps == []
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = payload(request)
    assert body == {
        "model": "m1",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hi"},
        ],
        "temperature": 0.2,
        "max_tokens": 50,
        "stop": ["\n\n"],
    }


def test_streaming_sse_with_usage() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(payload(request))
        return sse_response(
            sse_bytes(
                delta(""),
                delta("Hel"),
                delta("lo"),
                delta(None, "stop"),
                {"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 3}},
            )
        )

    model, _ = make(handler)
    texts: list[str] = []
    result = model.complete(MESSAGES, on_text=texts.append)

    assert texts == ["Hel", "lo"]
    assert result == Completion("Hello", Usage(20, 3, estimated=False), "stop")
    assert seen[0]["stream"] is True
    assert seen[0]["stream_options"] == {"include_usage": True}
    assert model.streaming


def test_usage_is_estimated_when_the_server_reports_none() -> None:
    model, _ = make(lambda r: sse_response(sse_bytes(delta("abcdefgh"), delta(None, "stop"))))
    first = model.complete(MESSAGES)
    assert first.usage == estimate_usage(MESSAGES, "abcdefgh")
    assert first.usage.estimated and first.usage.completion == 2
    model.complete(MESSAGES)
    assert model.total_usage == first.usage + first.usage


def test_streaming_rejected_falls_back_for_this_and_later_calls() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = payload(request)
        seen.append(body)
        if body.get("stream"):
            return httpx.Response(400, json={"error": {"message": "streaming is not supported"}})
        return httpx.Response(200, json=completion_json("plain"))

    model, sleeps = make(handler)
    texts: list[str] = []
    assert model.complete(MESSAGES, on_text=texts.append).text == "plain"
    assert model.complete(MESSAGES).text == "plain"
    assert [b.get("stream", False) for b in seen] == [True, False, False]
    assert texts == ["plain"]
    assert not model.streaming
    assert sleeps == []


def test_rejected_stream_options_only_drops_stream_options() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = payload(request)
        seen.append(body)
        if "stream_options" in body:
            return httpx.Response(400, json={"error": "Unrecognized argument: stream_options"})
        return sse_response(sse_bytes(delta("ok", "stop")))

    model, _ = make(handler)
    assert model.complete(MESSAGES).text == "ok"
    assert [("stream_options" in b, b.get("stream")) for b in seen] == [(True, True), (False, True)]
    assert model.streaming


def test_plain_json_answer_to_a_stream_request_switches_streaming_off() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(payload(request))
        return httpx.Response(200, json=completion_json("json anyway"))

    model, _ = make(handler)
    assert model.complete(MESSAGES).text == "json anyway"
    assert model.complete(MESSAGES).text == "json anyway"
    assert [b.get("stream", False) for b in seen] == [True, False]


def test_list_models() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "GET" and str(request.url) == f"{BASE}/models"
        return httpx.Response(200, json={"object": "list", "data": [{"id": "a"}, {"id": "b"}]})

    model, _ = make(handler)
    assert model.list_models() == ["a", "b"]


# -- retries ---------------------------------------------------------------------------------


def test_429_honours_retry_after_then_succeeds() -> None:
    answers = iter(
        [
            httpx.Response(
                429, headers={"Retry-After": "2"}, json={"error": {"message": "slow down"}}
            ),
            httpx.Response(429, headers={"Retry-After": "120"}, text="slow down"),
            httpx.Response(503, headers={"retry-after-ms": "250"}),
            httpx.Response(500),
            httpx.Response(200, json=completion_json("done")),
        ]
    )
    model, sleeps = make(lambda r: next(answers), stream=False)
    assert model.complete(MESSAGES).text == "done"
    # Retry-After seconds, Retry-After capped at 30 s, retry-after-ms, then plain backoff 0.5*2**3
    assert sleeps == [2.0, 30.0, 0.25, 4.0]


def test_5xx_exhausted_gives_one_line_error_with_attempts() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, json={"error": {"message": "overloaded\nplease wait"}})

    model, sleeps = make(handler, stream=False)
    with pytest.raises(ModelAPIError) as info:
        model.complete(MESSAGES)
    message = str(info.value)
    assert message == (
        f"HTTP 503 Service Unavailable from {BASE}/chat/completions: overloaded please wait; "
        "gave up after 5 attempts"
    )
    assert len(calls) == 5
    assert sleeps == [0.5, 1.0, 2.0, 4.0]
    assert model.total_usage == Usage()


def test_backoff_jitter_stays_within_bounds() -> None:
    model, sleeps = make(lambda r: httpx.Response(502), stream=False, rng=random.Random(7))
    with pytest.raises(ModelAPIError):
        model.complete(MESSAGES)
    for n, delay in enumerate(sleeps):
        assert 0.5 * 0.5 * 2**n <= delay < 1.5 * 0.5 * 2**n


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_is_not_retried_and_names_the_fix(status: int) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(
            status, json={"error": {"message": f"Incorrect API key provided: {KEY}"}}
        )

    model, sleeps = make(handler)
    with pytest.raises(ModelAPIError, match="check WATT_API_KEY") as info:
        model.complete(MESSAGES)
    assert len(calls) == 1 and sleeps == []
    assert KEY not in str(info.value)
    assert f"HTTP {status}" in str(info.value)


def test_404_names_base_url_and_model() -> None:
    model, sleeps = make(lambda r: httpx.Response(404, json={"error": "model 'm1' not found"}))
    with pytest.raises(ModelAPIError) as info:
        model.complete(MESSAGES)
    assert "WATT_BASE_URL=http://model.test/v1" in str(info.value)
    assert "WATT_MODEL=m1" in str(info.value)
    assert "model 'm1' not found" in str(info.value)
    assert sleeps == []


def test_other_4xx_is_not_retried() -> None:
    model, sleeps = make(
        lambda r: httpx.Response(400, json={"error": {"message": "context length exceeded"}}),
        stream=False,
    )
    with pytest.raises(ModelAPIError, match="HTTP 400 Bad Request .*context length exceeded$"):
        model.complete(MESSAGES)
    assert sleeps == []


def test_connection_error_names_the_fix() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    model, sleeps = make(handler, max_retries=2)
    with pytest.raises(ModelAPIError) as info:
        model.complete(MESSAGES)
    assert str(info.value) == (
        f"cannot reach {BASE}: [Errno 111] Connection refused "
        "(is the server running? set WATT_BASE_URL); gave up after 3 attempts"
    )
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert sleeps == [0.5, 1.0]


def test_timeout_is_retried() -> None:
    answers: Iterator[httpx.Response | Exception] = iter(
        [httpx.ReadTimeout("timed out"), httpx.Response(200, json=completion_json("late"))]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    model, sleeps = make(handler, stream=False)
    assert model.complete(MESSAGES).text == "late"
    assert sleeps == [0.5]


def test_timeout_exhausted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    model, _ = make(handler, max_retries=0, timeout_s=7)
    with pytest.raises(ModelAPIError, match=r"timed out after 7 s .*gave up after 1 attempt$"):
        model.complete(MESSAGES)


class ScriptedStream(httpx.SyncByteStream):
    """A response body that yields chunks one at a time and records how far it got."""

    def __init__(self, chunks: list[bytes | Exception]) -> None:
        self.chunks = chunks
        self.sent = 0
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            if isinstance(chunk, Exception):
                raise chunk
            self.sent += 1
            yield chunk

    def close(self) -> None:
        self.closed = True


def test_stream_broken_after_partial_output_is_not_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return sse_response(
            ScriptedStream([sse_bytes(delta("par"), done=False), httpx.ReadError("reset")])
        )

    model, sleeps = make(handler)
    texts: list[str] = []
    with pytest.raises(
        ModelAPIError, match=r"reply stream from .* was cut: reset \(after partial output\)"
    ):
        model.complete(MESSAGES, on_text=texts.append)
    assert texts == ["par"] and len(calls) == 1 and sleeps == []


# -- malformed responses ----------------------------------------------------------------------


def test_malformed_json_body() -> None:
    model, sleeps = make(
        lambda r: httpx.Response(
            200, headers={"content-type": "application/json"}, content=b"{oops"
        ),
        stream=False,
    )
    with pytest.raises(
        ModelAPIError, match=r"^malformed response from http://model\.test/v1/chat/completions"
    ):
        model.complete(MESSAGES)
    assert sleeps == []


@pytest.mark.parametrize(
    "body",
    [{"choices": []}, {"choices": [{"message": {"content": 3}}]}, {"nothing": 1}],
    ids=["no-choices", "content-not-text", "no-keys"],
)
def test_wrong_json_shape(body: dict[str, Any]) -> None:
    model, _ = make(lambda r: httpx.Response(200, json=body), stream=False)
    with pytest.raises(ModelAPIError, match="malformed response from"):
        model.complete(MESSAGES)


def test_malformed_sse_chunk() -> None:
    model, _ = make(lambda r: sse_response(sse_bytes(delta("a"), "{not json")))
    with pytest.raises(ModelAPIError, match="malformed response from .*bad stream chunk"):
        model.complete(MESSAGES)


def test_empty_stream_is_malformed() -> None:
    model, _ = make(lambda r: sse_response(b": keep-alive\n\n"))
    with pytest.raises(ModelAPIError, match="empty stream"):
        model.complete(MESSAGES)


def test_error_object_inside_stream() -> None:
    model, _ = make(lambda r: sse_response(sse_bytes({"error": {"message": "backend crashed"}})))
    with pytest.raises(ModelAPIError, match="reported an error: backend crashed"):
        model.complete(MESSAGES)


# -- cancellation ------------------------------------------------------------------------------


def test_cancel_mid_stream_closes_the_response_and_raises_interrupted() -> None:
    stream = ScriptedStream([sse_bytes(delta(f"part{i} "), done=False) for i in range(200)])
    model, _ = make(lambda r: sse_response(stream))
    cancel = threading.Event()
    texts: list[str] = []

    def on_text(text: str) -> None:
        texts.append(text)
        cancel.set()

    with pytest.raises(Interrupted):
        model.complete(MESSAGES, on_text=on_text, cancel=cancel)
    assert texts == ["part0 "]
    # the reader thread reads ahead by at most a small bounded queue, then stops and closes
    deadline = time.monotonic() + 5
    while not stream.closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream.closed and stream.sent < 50
    assert model.total_usage == Usage()


def test_cancel_before_the_call_sends_nothing() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    model, _ = make(handler)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Interrupted):
        model.complete(MESSAGES, cancel=cancel)
    assert calls == []


def test_cancel_during_backoff() -> None:
    cancel = threading.Event()
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503)

    model, _ = make(handler, sleep=lambda delay: cancel.set())
    with pytest.raises(Interrupted):
        model.complete(MESSAGES, cancel=cancel)
    assert len(calls) == 1


def test_default_wait_uses_the_cancel_event() -> None:
    cancel = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        cancel.set()  # the backoff wait returns at once and the loop stops
        return httpx.Response(503, headers={"Retry-After": "30"})

    model = OpenAIChatModel(BASE, KEY, "m1", transport=httpx.MockTransport(handler))
    with pytest.raises(Interrupted):
        model.complete(MESSAGES, cancel=cancel)


# -- secrets -----------------------------------------------------------------------------------


def _echo_key(status: int) -> Handler:
    return lambda r: httpx.Response(status, json={"error": {"message": f"bad key {KEY}"}})


@pytest.mark.parametrize(
    "handler",
    [
        _echo_key(400),
        _echo_key(401),
        _echo_key(404),
        _echo_key(429),
        _echo_key(500),
        lambda r: httpx.Response(
            200, headers={"content-type": "application/json"}, content=f"<{KEY}>".encode()
        ),
        lambda r: sse_response(sse_bytes(f"oops {KEY}")),
        lambda r: sse_response(sse_bytes({"error": {"message": KEY}})),
        lambda r: httpx.Response(200, json={"error": {"message": KEY}}),
    ],
)
def test_key_never_appears_in_errors(handler: Handler) -> None:
    model, _ = make(handler, max_retries=1)
    with pytest.raises(ModelAPIError) as info:
        model.complete(MESSAGES)
    assert KEY not in str(info.value)
    assert KEY not in repr(info.value)


def test_key_not_in_repr_and_connect_error_text() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(
            f"refused (sent {request.headers['authorization']})", request=request
        )

    model, _ = make(handler, max_retries=0)
    assert KEY not in repr(model) and "m1" in repr(model)
    with pytest.raises(ModelAPIError) as info:
        model.complete(MESSAGES)
    assert KEY not in str(info.value)


# -- configuration and pure helpers ------------------------------------------------------------


def test_bad_base_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="WATT_BASE_URL"):
        OpenAIChatModel("localhost:8080/v1", KEY, "m1")


def test_no_key_sends_no_authorization_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=completion_json("x"))

    model = OpenAIChatModel(BASE + "/", None, "m1", transport=httpx.MockTransport(handler))
    model.complete(MESSAGES)
    assert "authorization" not in seen[0].headers
    assert str(seen[0].url) == f"{BASE}/chat/completions"


def test_is_a_chat_model() -> None:
    model: ChatModel = OpenAIChatModel(BASE, KEY, "m1")
    assert model.name == "m1"


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["data: a", "", "data: b", ""], ["a", "b"]),
        (["data:a", "", "data:  b", ""], ["a", " b"]),
        ([": comment", "event: x", "id: 1", "data: a", ""], ["a"]),
        (["data: one", "data: two", ""], ["one\ntwo"]),
        (['data: {"a": 1}', 'data: {"a": 2}', "data: [DONE]"], ['{"a": 1}', '{"a": 2}', "[DONE]"]),
        (["data: tail"], ["tail"]),
        (["", "", "retry: 5"], []),
    ],
)
def test_iter_sse_data(lines: list[str], expected: list[str]) -> None:
    assert list(iter_sse_data(lines)) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "3"}, 3.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"Retry-After": "-4"}, 0.0),
        ({"Retry-After": "3600"}, 30.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, 10.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:27:00 GMT"}, 0.0),
        ({"retry-after-ms": "1500", "Retry-After": "9"}, 1.5),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after(httpx.Headers(headers), now=lambda: now) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error": {"message": "bad\\n thing"}}', "bad thing"),
        (b'{"error": "plain"}', "plain"),
        (b'{"detail": [{"loc": 1}]}', '[{"loc": 1}]'),
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (b"x" * 500, "x" * 197 + "..."),
    ],
)
def test_server_message(body: bytes, expected: str) -> None:
    assert server_message(body) == expected


def test_usage_and_estimates() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    total = Usage(1, 2) + Usage(10, 20, estimated=True)
    assert total == Usage(11, 22, estimated=True)
    assert total.total == 33
    assert estimate_usage([Message.user("abcd")], "") == Usage(5, 0, estimated=True)


# -- one real loopback server: the default transport, SSE over a socket ------------------------


class _SSEHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers["content-length"])
        body = json.loads(self.rfile.read(length))
        assert body["stream"] is True
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        for chunk in (delta("lo"), delta("op"), delta(None, "stop")):
            self.wfile.write(sse_bytes(chunk, done=False))
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_real_loopback_server_streams() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SSEHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        with OpenAIChatModel(f"http://127.0.0.1:{port}/v1", KEY, "m1", max_retries=0) as model:
            texts: list[str] = []
            result = model.complete(MESSAGES, on_text=texts.append)
        assert result.text == "loop" and texts == ["lo", "op"] and result.finish_reason == "stop"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_real_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model = OpenAIChatModel(f"http://127.0.0.1:{port}/v1", KEY, "m1", max_retries=0)
    with pytest.raises(
        ModelAPIError, match=r"cannot reach http://127\.0\.0\.1:\d+/v1: .*is the server running"
    ):
        model.complete(MESSAGES)
    model.close()


# -- the reply grammar (llama.cpp's top-level "grammar" field) ---------------------------------

AGENT = [
    Message.system("Reply with exactly ONE ToolCall::Wat or ToolCall::Response."),
    Message.user("hi"),
]
GBNF = 'root ::= "ToolCall::Response(\\"\\"\\"x\\"\\"\\")"\n'
OPENAPI = {  # the part of llama-cpp-python's /openapi.json the probe reads
    "info": {"title": "🦙 llama.cpp Python API", "version": "0.3.36"},
    "components": {
        "schemas": {
            "CreateChatCompletionRequest": {
                "properties": {
                    "messages": {},
                    "grammar": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                }
            }
        }
    },
}


class Server:
    """A fake endpoint: ``pages`` answers GETs by path; chat requests are recorded."""

    def __init__(self, pages: dict[str, Any] | None = None, reject_grammar: bool = False) -> None:
        self.pages = pages or {}
        self.reject_grammar = reject_grammar
        self.gets: list[str] = []
        self.chats: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            self.gets.append(request.url.path)
            page = self.pages.get(request.url.path)
            if isinstance(page, Exception):
                raise page
            return (
                httpx.Response(404, text="Not Found")
                if page is None
                else httpx.Response(200, json=page)
            )
        body = payload(request)
        self.chats.append(body)
        if self.reject_grammar and "grammar" in body:
            return httpx.Response(400, json={"error": {"message": "failed to parse grammar"}})
        return httpx.Response(200, json=completion_json('ToolCall::Response("""x""")'))


def grammar_model(server: Server, mode: str = "auto") -> OpenAIChatModel:
    model, _ = make(server, stream=False, grammar=mode, max_retries=0)
    model.use_grammar(GBNF)
    return model


def test_grammar_is_sent_with_agent_turns_under_on_and_never_under_off() -> None:
    server = Server()
    model = grammar_model(server, "on")
    model.complete(AGENT)
    model.complete(MESSAGES)  # not an agent turn (the ai capability's calls): sampled freely
    assert server.chats[0]["grammar"] == GBNF and "grammar" not in server.chats[1]
    off = Server({"/openapi.json": OPENAPI})
    grammar_model(off, "off").complete(AGENT)
    assert "grammar" not in off.chats[0] and off.gets == []  # off never probes
    assert server.gets == []  # nor does on


def test_auto_detects_llama_cpp_python_once_by_its_openapi_schema() -> None:
    server = Server({"/openapi.json": OPENAPI})
    model = grammar_model(server)
    model.complete(AGENT)
    model.complete(AGENT)
    assert [c.get("grammar") for c in server.chats] == [GBNF, GBNF]
    assert server.gets == ["/openapi.json"]  # once per endpoint; not /v1/models, which waits
    assert model.grammar_supported()


def test_auto_detects_llama_server_by_its_props() -> None:
    server = Server({"/props": {"default_generation_settings": {"n_ctx": 8192}, "total_slots": 1}})
    grammar_model(server).complete(AGENT)
    assert server.chats[0]["grammar"] == GBNF and server.gets == ["/openapi.json", "/props"]


@pytest.mark.parametrize(
    "pages",
    [
        {},  # api.openai.com and most servers: neither page
        {
            "/openapi.json": {
                "components": {
                    "schemas": {"ChatCompletionRequest": {"properties": {"guided_grammar": {}}}}
                }
            }
        },  # a FastAPI server without llama.cpp's field (vLLM-like)
        {"/props": {"model": "x"}},
        {"/openapi.json": [1, 2], "/props": "not an object"},
    ],
)
def test_auto_sends_no_grammar_to_other_servers(pages: dict[str, Any]) -> None:
    server = Server(pages)
    model = grammar_model(server)
    model.complete(AGENT)
    model.complete(AGENT)
    assert all("grammar" not in c for c in server.chats)
    assert server.gets == ["/openapi.json", "/props"]  # probed once
    assert not model.grammar_supported()


def test_auto_never_probes_without_a_grammar_or_an_agent_turn() -> None:
    server = Server({"/openapi.json": OPENAPI})
    model, _ = make(server, stream=False)
    model.complete(AGENT)  # no use_grammar: nothing to send
    grammar_model(server).complete(MESSAGES)
    assert server.gets == [] and all("grammar" not in c for c in server.chats)


def test_an_unreachable_probe_is_made_again_later() -> None:
    server = Server({"/openapi.json": httpx.ConnectError("refused")})
    model = grammar_model(server)
    model.complete(AGENT)
    server.pages["/openapi.json"] = OPENAPI
    model.complete(AGENT)
    assert [c.get("grammar") for c in server.chats] == [None, GBNF]


def test_auto_turns_the_grammar_off_when_the_server_rejects_it() -> None:
    server = Server({"/openapi.json": OPENAPI}, reject_grammar=True)
    model = grammar_model(server)
    assert model.complete(AGENT).text.startswith("ToolCall::")
    model.complete(AGENT)
    assert [c.get("grammar") for c in server.chats] == [GBNF, None, None]
    strict = Server(reject_grammar=True)
    with pytest.raises(ModelAPIError, match="HTTP 400.*failed to parse grammar"):
        grammar_model(strict, "on").complete(AGENT)


def test_grammar_mode_is_validated() -> None:
    with pytest.raises(ConfigError, match="grammar must be one of auto, on, off"):
        OpenAIChatModel(BASE, KEY, "m1", grammar="maybe")


def test_a_stream_cut_short_is_never_taken_for_the_whole_reply() -> None:
    # llama-cpp-python's server (interrupt_requests, the default) ends a reply with [DONE] and
    # no finish_reason when another request arrives: with the grammar on, the cut reply was
    # parsed as an answer with the note "unclosed string" and the right answer was lost.
    cut = sse_bytes(delta('ToolCall::Response("""ol'))
    whole = sse_bytes(delta('ToolCall::Response("""olleh""")'), delta(None, "stop"))
    answers = [cut, whole]
    model, sleeps = make(lambda r: sse_response(answers.pop(0)))
    assert (
        model.complete(MESSAGES).text == 'ToolCall::Response("""olleh""")'
    )  # nobody saw it: retried
    assert len(sleeps) == 1
    model, _ = make(lambda r: sse_response(cut))
    seen: list[str] = []
    with pytest.raises(
        ModelAPIError, match=r"ended before the reply did .*\(after partial output\)"
    ):
        model.complete(MESSAGES, on_text=seen.append)
    assert seen == ['ToolCall::Response("""ol']
