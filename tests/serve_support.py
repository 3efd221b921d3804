"""Helpers of the ``watt serve`` tests: a server over a scripted model, in-process (httpx's
ASGI transport) or on a real uvicorn on 127.0.0.1 with port 0, and an SSE parser."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import uvicorn

from agent.config import load_settings
from agent.models.scripted import ScriptedModel
from agent.store.journal import Reader
from agent.store.sessions import SessionStore
from server.app import create_app
from server.config import ServeConfig
from server.run import bind
from server.state import ServerState

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
UPPER = 'ToolCall::Catalog("upper", "hi")'
DONE = 'ToolCall::Response("""HI""")'


def make_state(model: ScriptedModel, **config: Any) -> ServerState:
    settings_overrides = config.pop("settings", {})
    settings = load_settings(settings_overrides)
    if "guard" in config:
        settings = replace(settings, guard=config.pop("guard"))
    return ServerState(ServeConfig(settings, TOKEN, **config), model=model)


def client(state: ServerState) -> httpx.AsyncClient:
    app = create_app(state)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://watt.test")


def parse_sse(text: str) -> list[dict[str, Any]]:
    """``[{"id", "event", "data"}]``; comment lines skipped, data parsed as JSON."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        message: dict[str, Any] = {"id": None, "event": "message", "data": []}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "data":
                message["data"].append(value)
            elif field in ("id", "event"):
                message[field] = value
        if message["data"]:
            raw = "\n".join(message["data"])
            message["data"] = raw if raw == "[DONE]" else json.loads(raw)
            out.append(message)
    return out


def journal(state: ServerState, name: str, after: int = 0) -> list[dict[str, Any]]:
    path = SessionStore(state.config.settings.home).path(name)
    with Reader(path, name) as reader:
        return [e.to_dict() for e in reader.entries(after=after)]


def turns(state: ServerState, name: str) -> list[dict[str, Any]]:
    path = SessionStore(state.config.settings.home).path(name)
    with Reader(path, name) as reader:
        return [t.to_dict() for t in reader.turns()]


class Gate:
    """A scripted responder that blocks until ``open()``: a turn that stays running."""

    def __init__(self, reply: str = DONE) -> None:
        self.entered = threading.Event()
        self._open = threading.Event()
        self.reply = reply

    def __call__(self, _messages: Any) -> str:
        self.entered.set()
        self._open.wait(20)
        return self.reply

    def open(self) -> None:
        self._open.set()


@contextlib.contextmanager
def live(state: ServerState) -> Iterator[str]:
    """A real uvicorn on 127.0.0.1, port 0, in a thread; yields its base URL."""
    sock = bind("127.0.0.1", 0)
    config = uvicorn.Config(
        create_app(state), log_level="warning", access_log=False, lifespan="on",
        timeout_graceful_shutdown=2,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        state.begin_shutdown()
        server.should_exit = True
        thread.join(15)
        sock.close()
        state.close()


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)
