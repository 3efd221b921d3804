"""`watt serve` on a real uvicorn on 127.0.0.1 (port 0): auth, the live event stream, resume by
Last-Event-ID, a disconnect that cancels the turn, the OpenAI stream, and `watt serve` itself
stopping cleanly on SIGTERM and Ctrl-C with the running turn recorded as interrupted."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.models.scripted import ScriptedModel
from agent.store.journal import Reader
from agent.store.sessions import SessionStore
from rt.errors import SessionError
from tests.serve_support import (
    AUTH,
    DONE,
    TOKEN,
    UPPER,
    Gate,
    journal,
    live,
    make_state,
    parse_sse,
    turns,
    wait_for,
)


class Events:
    """SSE messages read from a streaming response as they arrive."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.iter_text()
        self._buffer = ""

    def take(self, count: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while len(out) < count:
            if "\n\n" in self._buffer:
                block, self._buffer = self._buffer.split("\n\n", 1)
                out += parse_sse(block + "\n\n")
                continue
            self._buffer += next(self._chunks)
        return out


def read_events(response: httpx.Response, count: int) -> list[dict[str, Any]]:
    return Events(response).take(count)


def test_the_listening_socket_is_tcp_so_responses_are_not_delayed() -> None:
    from server.run import bind

    sock = bind("127.0.0.1", 0)  # proto 0 made asyncio skip TCP_NODELAY: 40 ms per response
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_auth_and_a_turn_over_real_http() -> None:
    state = make_state(ScriptedModel([UPPER, DONE]))
    with live(state) as url, httpx.Client(base_url=url, timeout=10) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/v1/sessions").status_code == 401
        r = c.get("/v1/sessions", headers={"Authorization": "Bearer " + TOKEN[:-1]})
        assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"
        r = c.post("/v1/sessions/live/turns", json={"task": "upper hi"}, headers=AUTH)
        events = parse_sse(r.text)
        assert [e["data"] for e in events] == journal(state, "live")
        assert events[-1]["event"] == "turn_end"


def test_back_to_back_turns_on_one_session_never_meet_a_409() -> None:
    state = make_state(ScriptedModel([DONE] * 12))
    with live(state) as url:
        conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=10)
        try:
            for i in range(12):  # the stream ends only once the session is free again
                body = json.dumps({"task": f"turn {i}"})
                conn.request("POST", "/v1/sessions/b2b/turns", body=body, headers=AUTH)
                response = conn.getresponse()
                text = response.read().decode()
                assert response.status == 200, text
                assert parse_sse(text)[-1]["data"]["state"] == "answered"
        finally:
            conn.close()
    assert [t["state"] for t in turns(state, "b2b")] == ["answered"] * 12


def test_follow_then_resume_from_last_event_id() -> None:
    state = make_state(ScriptedModel([DONE, UPPER, DONE, DONE]))
    with live(state) as url, httpx.Client(base_url=url, timeout=10) as c:
        c.post("/v1/sessions/f/turns", json={"task": "first"}, headers=AUTH)
        first = journal(state, "f")
        with c.stream("GET", "/v1/sessions/f/events", headers=AUTH) as stream:
            events = Events(stream)
            seen = events.take(len(first))
            assert [e["data"] for e in seen] == first
            poster = threading.Thread(
                target=lambda: c.post("/v1/sessions/f/turns", json={"task": "second"}, headers=AUTH)
            )
            poster.start()
            seen += events.take(7)  # turn_start, thinking, tool_*, thinking, response, end
            poster.join(10)
        last = int(seen[2]["id"])
        with c.stream(
            "GET", "/v1/sessions/f/events", headers={**AUTH, "Last-Event-ID": str(last)}
        ) as stream:
            rows = journal(state, "f")
            resumed = Events(stream).take(len(rows) - last)
        assert [int(e["id"]) for e in resumed] == [r["seq"] for r in rows if r["seq"] > last]
        assert [e["data"] for e in seen] == rows
        with c.stream("GET", f"/v1/sessions/f/events?after={rows[-1]['seq']}", headers=AUTH) as s:
            c.post("/v1/sessions/f/turns", json={"task": "third"}, headers=AUTH)
            third = Events(s).take(4)
        assert [e["event"] for e in third] == ["turn_start", "thinking", "response", "turn_end"]


def test_a_client_that_disconnects_cancels_its_turn() -> None:
    gate = Gate()
    state = make_state(ScriptedModel(gate))
    with live(state) as url, httpx.Client(base_url=url, timeout=10) as c:
        with c.stream("POST", "/v1/sessions/d/turns", json={"task": "slow"}, headers=AUTH) as r:
            assert read_events(r, 1)[0]["event"] == "turn_start"
            assert gate.entered.wait(10)
        running = state.pool.running_in("d")
        assert running is not None
        wait_for(running.cancel.is_set)
        gate.open()
        wait_for(running.done.is_set)
        assert turns(state, "d")[0]["state"] == "interrupted"
        kinds = [e["kind"] for e in journal(state, "d")]
        assert (
            kinds[-2:] == ["error", "turn_end"]
            and journal(state, "d")[-1]["state"] == "interrupted"
        )
        assert state.pool.running_in("d") is None


def test_openai_stream_over_real_http() -> None:
    state = make_state(ScriptedModel([UPPER, DONE]))
    body = {"model": "watt", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with live(state) as url, httpx.Client(base_url=url, timeout=10) as c:
        with c.stream("POST", "/v1/chat/completions", json=body, headers=AUTH) as r:
            lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    content = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content", "") for line in lines[:-1]
    )
    assert content == "HI"


def kinds_in(db: Path) -> list[str]:
    try:
        with Reader(db, db.stem) as reader:
            return [e.kind for e in reader.entries()]
    except SessionError:  # not there yet, or still being created
        return []


LOOP_FOREVER = "ToolCall::Wat(```wat\n(loop $spin (br $spin))\n```)"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_watt_serve_stops_cleanly_and_records_the_turn_interrupted(
    sig: int, tmp_path: Path, _watt_home: Path
) -> None:
    script = tmp_path / "script.jsonl"
    script.write_text(json.dumps(LOOP_FOREVER) + "\n")
    env = {**os.environ, "WATT_SERVE_TOKEN": TOKEN, "WATT_HOME": str(_watt_home)}
    cmd = [sys.executable, "-m", "cli.main", "serve", "--port", "0", "--model", f"script:{script}",
           "--fuel", "1000000000000", "--timeout", "60"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        port = int(re.search(r"port (\d+)", line).group(1))  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}"
        assert "token from WATT_SERVE_TOKEN" in proc.stderr.readline()
        holder: dict[str, str] = {}

        def post() -> None:
            with httpx.Client(timeout=30) as c:
                holder["text"] = c.post(f"{url}/v1/sessions/sig/turns", json={"task": "spin"},
                                        headers=AUTH).text  # fmt: skip

        def watch() -> None:  # a follower must not hold the shutdown up
            with (
                httpx.Client(timeout=30) as c,
                c.stream("GET", f"{url}/v1/sessions/sig/events", headers=AUTH) as r,
            ):
                texts = []
                for text in r.iter_text():
                    texts.append(text)
                    connected.set()
                holder["follow"] = "".join(texts)

        connected = threading.Event()

        poster = threading.Thread(target=post)
        poster.start()
        follower = threading.Thread(target=watch)
        db = SessionStore(_watt_home).path("sig")
        wait_for(lambda: "tool_start" in kinds_in(db))
        follower.start()
        assert connected.wait(10)
        started = time.monotonic()
        proc.send_signal(sig)
        assert proc.wait(20) == 0
        assert time.monotonic() - started < 10
        rest = proc.stderr.read()
        assert "stopped" in rest and "Traceback" not in rest and TOKEN not in rest
        poster.join(10)
        follower.join(10)
        assert not follower.is_alive()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()
    with Reader(db, "sig") as reader:
        assert [t.state.value for t in reader.turns()] == ["interrupted"]
    assert parse_sse(holder["text"])[-1]["data"]["state"] == "interrupted"
    assert parse_sse(holder["follow"])[-1]["data"]["state"] == "interrupted"
