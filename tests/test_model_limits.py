"""OpenAIChatModel's limits: the reply-length cap, the whole-call deadline, cancel before the
first byte, the quota 429, a cut stream retried once, lone surrogates, and the exit codes the
CLI gives model failures. httpx.MockTransport only; time bounds are generous on purpose."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.config import load_settings
from agent.models.backends import make_model
from agent.models.client import OpenAIChatModel
from agent.models.messages import Message, scrub_surrogates
from cli.common import EXIT_FAILED, EXIT_USAGE, exit_code_for
from rt.errors import ConfigError, Interrupted, ModelAPIError, ModelSetupError
from tests.test_model import (
    MESSAGES,
    ScriptedStream,
    completion_json,
    delta,
    make,
    payload,
    sse_bytes,
    sse_response,
)

GENEROUS_S = 3.0


# ---- the reply-length cap ----------------------------------------------------------------------
def test_every_call_carries_a_reply_length_cap_by_default() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(payload(request))
        return httpx.Response(200, json=completion_json("ok"))

    model, _ = make(handler, stream=False)
    model.complete(MESSAGES)
    model.complete(MESSAGES, max_tokens=7)
    capped, _ = make(handler, stream=False, max_reply_tokens=300)
    capped.complete(MESSAGES)
    assert [body["max_tokens"] for body in seen] == [1024, 7, 300]


def test_no_cap_when_it_is_switched_off() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(payload(request))
        return httpx.Response(200, json=completion_json("ok"))

    model, _ = make(handler, stream=False, max_reply_tokens=None)
    model.complete(MESSAGES)
    assert "max_tokens" not in seen[0]


# ---- the whole-call deadline -------------------------------------------------------------------
class Trickle(httpx.SyncByteStream):
    """One SSE token every ``every`` seconds, for ever (until closed or ``stop`` is set)."""

    def __init__(self, every: float, stop: threading.Event) -> None:
        self.every = every
        self.stop = stop
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        while not self.stop.wait(self.every):
            self.sent += 1
            yield sse_bytes(delta("tok "), done=False)


def test_a_trickling_provider_is_cut_at_the_call_deadline_with_one_line() -> None:
    stop = threading.Event()
    stream = Trickle(0.2, stop)
    model, _ = make(lambda r: sse_response(stream), deadline_s=1.0)
    texts: list[str] = []
    started = time.monotonic()
    try:
        with pytest.raises(ModelAPIError) as info:
            model.complete(MESSAGES, on_text=texts.append)
    finally:
        stop.set()
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < GENEROUS_S
    message = str(info.value)
    assert "1 s deadline" in message and "model_deadline" in message and "\n" not in message
    assert not isinstance(info.value, ModelSetupError)
    assert texts and stream.sent < 50


def _blocking_handler(release: threading.Event) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        release.wait(30)  # a server that has sent nothing yet
        return httpx.Response(200, json=completion_json("late"))

    return handler


def test_the_deadline_acts_before_the_first_byte() -> None:
    release = threading.Event()
    model, _ = make(_blocking_handler(release), stream=False, deadline_s=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(ModelAPIError, match="deadline"):
            model.complete(MESSAGES)
    finally:
        release.set()
    assert time.monotonic() - started < GENEROUS_S


def test_cancel_acts_before_the_first_byte() -> None:
    release = threading.Event()
    cancel = threading.Event()
    model, _ = make(_blocking_handler(release), stream=False)
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    try:
        with pytest.raises(Interrupted):
            model.complete(MESSAGES, cancel=cancel)
    finally:
        release.set()
    assert time.monotonic() - started < GENEROUS_S


def test_no_retry_is_started_that_the_deadline_cannot_hold() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503, headers={"retry-after": "20"}, json={"error": "busy"})

    model, sleeps = make(handler, stream=False, deadline_s=5.0)
    with pytest.raises(ModelAPIError, match="no time left to retry within the 5 s"):
        model.complete(MESSAGES)
    assert calls == [1] and sleeps == []


# ---- quota and cut streams ---------------------------------------------------------------------
QUOTA = {
    "error": {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "insufficient_quota",
        "code": "insufficient_quota",
    }
}


def test_a_429_for_an_exhausted_quota_fails_at_once_naming_the_account() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(429, json=QUOTA)

    model, sleeps = make(handler, stream=False)
    with pytest.raises(ModelAPIError) as info:
        model.complete(MESSAGES)
    assert calls == [1] and sleeps == []
    message = str(info.value)
    assert "quota is used up" in message and "not retried" in message and "\n" not in message
    assert exit_code_for(info.value) == EXIT_FAILED


def test_a_rate_limit_429_is_still_retried() -> None:
    replies = [
        httpx.Response(
            429, json={"error": {"message": "slow down", "code": "rate_limit_exceeded"}}
        ),
        httpx.Response(200, json=completion_json("ok")),
    ]
    model, sleeps = make(lambda r: replies.pop(0), stream=False)
    assert model.complete(MESSAGES).text == "ok"
    assert len(sleeps) == 1


def test_a_cut_stream_is_retried_once_then_fails_with_exit_1() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)  # chat chunks and [DONE], but no finish_reason: cut short
        return sse_response(sse_bytes({"choices": [{"index": 0, "delta": {}}]}))

    model, sleeps = make(handler)
    with pytest.raises(ModelAPIError) as info:
        model.complete(MESSAGES)
    assert len(calls) == 2 and len(sleeps) == 1
    assert "ended before the reply did" in str(info.value) and "2 attempts" in str(info.value)
    assert exit_code_for(info.value) == EXIT_FAILED


def test_a_dropped_stream_is_retried_once() -> None:
    replies = [
        sse_response(ScriptedStream([httpx.RemoteProtocolError("peer closed")])),
        sse_response(sse_bytes(delta("whole"), delta(None, "stop"))),
    ]
    model, sleeps = make(lambda r: replies.pop(0))
    assert model.complete(MESSAGES).text == "whole"
    assert len(sleeps) == 1


def test_setup_failures_are_exit_2_and_others_exit_1() -> None:
    model, _ = make(lambda r: httpx.Response(401, json={"error": "bad key"}), stream=False)
    with pytest.raises(ModelSetupError) as info:
        model.complete(MESSAGES)
    assert exit_code_for(info.value) == EXIT_USAGE
    model, _ = make(lambda r: httpx.Response(400, json={"error": "bad request"}), stream=False)
    with pytest.raises(ModelAPIError) as other:
        model.complete(MESSAGES)
    assert exit_code_for(other.value) == EXIT_FAILED


def test_an_unreachable_endpoint_is_a_setup_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    model, _ = make(handler, stream=False, max_retries=1)
    with pytest.raises(ModelSetupError, match="cannot reach"):
        model.complete(MESSAGES)


# ---- lone surrogates ---------------------------------------------------------------------------
LONE = '"before \\ud800 after \\udfff end \\ud83d\\ude00"'  # two lone, one valid pair


def test_a_lone_surrogate_in_a_json_reply_becomes_a_replacement_character() -> None:
    body = json.dumps(completion_json("x")).replace('"x"', LONE).encode()
    model, _ = make(
        lambda r: httpx.Response(200, content=body, headers={"content-type": "application/json"}),
        stream=False,
    )
    texts: list[str] = []
    text = model.complete(MESSAGES, on_text=texts.append).text
    assert text == "before \ufffd after \ufffd end \U0001f600"
    assert texts == [text]
    text.encode("utf-8")  # would raise on a surrogate


def test_a_lone_surrogate_in_a_stream_becomes_a_replacement_character() -> None:
    chunk = json.dumps(delta("x")).replace('"x"', LONE)
    model, _ = make(lambda r: sse_response(sse_bytes(chunk, delta(None, "stop"))))
    texts: list[str] = []
    text = model.complete(MESSAGES, on_text=texts.append).text
    assert text == "before \ufffd after \ufffd end \U0001f600"
    "".join(texts).encode("utf-8")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("", ""),
        ("plain", "plain"),
        ("caf\u00e9", "caf\u00e9"),
        ("a\ud800b", "a\ufffdb"),
        ("\udc00", "\ufffd"),
        ("\ud83d\ude00", "\ufffd\ufffd"),  # a pair left split in a str is two lone halves
        ("\U0001f600", "\U0001f600"),
    ],
)
def test_scrub_surrogates(raw: str, clean: str) -> None:
    assert scrub_surrogates(raw) == clean
    assert Message.user(raw).content == clean


# ---- configuration -----------------------------------------------------------------------------
def test_the_config_keys_reach_the_endpoint_client(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("model_deadline = 42.5\nmax_reply_tokens = 256\n")
    env = {"WATT_HOME": str(tmp_path), "WATT_BASE_URL": "http://127.0.0.1:9/v1", "WATT_MODEL": "m"}
    settings = load_settings({}, environ=env)
    model = make_model(settings)
    assert isinstance(model, OpenAIChatModel)
    assert (model.deadline_s, model.max_reply_tokens) == (42.5, 256)
    defaults = make_model(load_settings({}, environ={**env, "WATT_HOME": str(tmp_path / "d")}))
    assert isinstance(defaults, OpenAIChatModel)
    assert (defaults.deadline_s, defaults.max_reply_tokens) == (300.0, 1024)


@pytest.mark.parametrize("line", ["model_deadline = 0", "max_reply_tokens = 0"])
def test_out_of_range_values_are_configuration_errors(tmp_path: Path, line: str) -> None:
    (tmp_path / "config.toml").write_text(line + "\n")
    with pytest.raises(ConfigError, match=line.split()[0]):
        load_settings({}, environ={"WATT_HOME": str(tmp_path)})


def test_cancel_closes_the_connection_to_a_silent_server() -> None:
    """Against a real socket the request is closed, not only abandoned: the server sees the
    client hang up at once instead of after the 60 s read timeout."""
    from tests.test_cancel import SilentServer

    server = SilentServer()
    try:
        model = OpenAIChatModel(f"http://127.0.0.1:{server.port}/v1", None, "m", stream=False)
        cancel = threading.Event()
        threading.Timer(0.3, cancel.set).start()
        started = time.monotonic()
        with pytest.raises(Interrupted):
            model.complete(MESSAGES, cancel=cancel)
        assert time.monotonic() - started < GENEROUS_S
        assert server.requests.acquire(timeout=GENEROUS_S)
        assert server.hangups.acquire(timeout=GENEROUS_S), "the connection was left open"
        model.close()
    finally:
        server.close()


def test_watt_ask_against_a_server_that_cuts_every_reply_exits_1(tmp_path: Path) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from typer.testing import CliRunner

    from cli.main import app

    posts: list[str] = []

    class Cutting(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            posts.append(self.path)
            body = sse_bytes(delta("half a rep"))  # [DONE] with no finish_reason: cut short
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Cutting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {
            "WATT_HOME": str(tmp_path),
            "WATT_BASE_URL": f"http://127.0.0.1:{server.server_address[1]}/v1",
            "WATT_MODEL": "m",
            "WATT_GRAMMAR": "off",
            "COLUMNS": "100",
        }
        result = CliRunner().invoke(app, ["ask", "--quiet", "hello"], env=env)
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 1, result.output
    assert len(posts) == 2  # retried once (--quiet streams nothing to the screen), then failed
    assert "ended before the reply did" in result.stderr and "2 attempts" in result.stderr
    assert "Traceback" not in result.output
