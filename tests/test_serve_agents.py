"""Named agents over HTTP (``/v1/agents``): spawn, send (a stream and detached), observe from 0
and live, ps/get, kill during a turn, rm, and the 401/403/404/409/422 answers. In-process
(httpx's ASGI transport) and on a real uvicorn; scripted models throughout."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.models.scripted import ScriptedModel
from agent.named import AgentConfig, AgentStore
from tests.serve_support import (
    AUTH,
    DONE,
    UPPER,
    Gate,
    client,
    journal,
    live,
    make_state,
    parse_sse,
    turns,
    wait_for,
)
from tests.test_serve_live import Events

HOSTS = {"allow_domains": ["example.com", "example.org"]}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def wat(body: str) -> str:
    return f"<reasoning>run it</reasoning>\nToolCall::Wat(```wat\n{body}\n```)"


def test_every_agents_route_needs_the_token() -> None:
    state = make_state(ScriptedModel([]))

    async def go() -> None:
        async with client(state) as c:
            for method, path in [
                ("POST", "/v1/agents"), ("GET", "/v1/agents/a"), ("DELETE", "/v1/agents/a"),
                ("POST", "/v1/agents/a/messages"), ("GET", "/v1/agents/a/events"),
                ("DELETE", "/v1/agents/a/run"), ("POST", "/v1/agents/a/kill"),
            ]:  # fmt: skip
                r = await c.request(method, path, headers={"Authorization": "Bearer nope"})
                assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"

    run(go())
    state.close()


def test_spawn_get_and_the_409_for_an_existing_name(_watt_home: Path) -> None:
    state = make_state(ScriptedModel([]), settings={**HOSTS, "max_steps": 6})
    body = {"name": "bob", "system": "Be brief.", "grants": {"allow-domain": ["example.com"],
            "max_steps": 3, "no_ai": True}}  # fmt: skip

    async def go() -> tuple[httpx.Response, ...]:
        async with client(state) as c:
            made = await c.post("/v1/agents", json=body, headers=AUTH)
            again = await c.post("/v1/agents", json={"name": "bob"}, headers=AUTH)
            got = await c.get("/v1/agents/bob", headers=AUTH)
            listed = await c.get("/v1/agents", headers=AUTH)
            fresh = await c.post("/v1/agents", json={"name": "bob", "replace": True}, headers=AUTH)
            return made, again, got, listed, fresh

    made, again, got, listed, fresh = run(go())
    assert made.status_code == 201, made.text
    view = made.json()
    assert view["name"] == "bob" and view["state"] == "new" and view["run"] is None
    assert view["config"]["system"] == "Be brief." and view["config"]["ai"] is False
    assert view["grant"]["allow_domains"] == ["example.com"] and view["grant"]["max_steps"] == 3
    assert oct((_watt_home / "agents" / "bob.json").stat().st_mode & 0o777) == "0o600"
    assert again.status_code == 409 and again.json()["error"]["type"] == "agent_exists"
    assert '"replace": true' in again.json()["error"]["message"]
    assert got.status_code == 200 and got.json()["config"] == view["config"]
    assert [a["name"] for a in listed.json()["agents"]] == ["bob"]
    assert fresh.status_code == 201 and fresh.json()["config"]["system"] == ""
    assert fresh.json()["grant"]["allow_domains"] == ["example.com", "example.org"]
    state.close()


@pytest.mark.parametrize(
    "body, status, kind",
    [
        ({}, 422, "invalid_request"),
        ({"name": "../x"}, 422, "invalid_session_name"),
        ({"name": "a", "grants": 5}, 422, "invalid_request"),
        ({"name": "a", "grants": {"sudo": True}}, 422, "invalid_request"),
        ({"name": "a", "grants": {"allow_domain": "*.example.com"}}, 422, "invalid_request"),
        ({"name": "a", "grants": {"max_steps": 0}}, 422, "invalid_request"),
        ({"name": "a", "grants": {"no_ai": "yes"}}, 422, "invalid_request"),
        ({"name": "a", "model": "script:/etc/passwd"}, 422, "invalid_request"),
        ({"name": "a", "replace": "yes"}, 422, "invalid_request"),
        ({"name": "a", "grants": {"allow_domain": ["example.net"]}}, 403, "not_granted"),
        ({"name": "a", "grants": {"fs_root": "/tmp"}}, 403, "not_granted"),
        ({"name": "a", "grants": {"agents": 2}}, 403, "not_granted"),
        ({"name": "a", "grants": {"max_steps": 11}}, 403, "not_granted"),
        ({"name": "a", "grants": {"timeout": 1e6}}, 403, "not_granted"),
        ({"name": "a", "grants": {"catalog": ["/tmp"]}}, 403, "not_granted"),
    ],
)
def test_bad_and_widening_grants(body: dict[str, Any], status: int, kind: str) -> None:
    state = make_state(ScriptedModel([]), settings=HOSTS)

    async def go() -> httpx.Response:
        async with client(state) as c:
            return await c.post("/v1/agents", json=body, headers=AUTH)

    r = run(go())
    assert r.status_code == status, r.text
    assert r.json()["error"]["type"] == kind and "\n" not in r.json()["error"]["message"]
    assert not AgentStore(state.config.settings.home).names()
    state.close()


def test_ai_only_narrows_and_fs_root_stays_inside_the_servers(tmp_path: Path) -> None:
    (tmp_path / "jail" / "sub").mkdir(parents=True)
    state = make_state(ScriptedModel([]), settings={"ai": False, "fs_root": tmp_path / "jail"})

    async def go() -> tuple[httpx.Response, ...]:
        async with client(state) as c:
            ai = await c.post("/v1/agents", json={"name": "a", "grants": {"no_ai": False}},
                              headers=AUTH)  # fmt: skip
            out = await c.post("/v1/agents", json={"name": "a", "grants": {"fs_root": ".."}},
                               headers=AUTH)  # fmt: skip
            sub = await c.post("/v1/agents", json={"name": "a", "grants": {"fs_root": "sub"}},
                               headers=AUTH)  # fmt: skip
            return ai, out, sub

    ai, out, sub = run(go())
    assert ai.status_code == 403 and "ai" in ai.json()["error"]["message"]
    assert out.status_code == 403
    assert sub.status_code == 201, sub.text
    assert sub.json()["grant"]["fs_root"] == str((tmp_path / "jail" / "sub").resolve())
    assert sub.json()["grant"]["ai"] is False
    state.close()


def test_unknown_agent_is_404_everywhere() -> None:
    state = make_state(ScriptedModel([]))

    async def go() -> None:
        async with client(state) as c:
            for method, path, body in [
                ("GET", "/v1/agents/nobody", None), ("DELETE", "/v1/agents/nobody", None),
                ("POST", "/v1/agents/nobody/messages", {"message": "hi"}),
                ("GET", "/v1/agents/nobody/events", None),
                ("DELETE", "/v1/agents/nobody/run", None),
                ("POST", "/v1/agents/nobody/kill", None),
            ]:  # fmt: skip
                r = await c.request(method, path, json=body, headers=AUTH)
                assert r.status_code == 404, (method, path)
                assert "nobody" in r.json()["error"]["message"]

    run(go())
    state.close()


def test_send_streams_the_turn_with_the_agents_grant_and_instructions() -> None:
    no_host = wat('(answer (http.get "https://example.org/"))')
    model = ScriptedModel([no_host, DONE, DONE])
    state = make_state(model, settings=HOSTS)
    spawn = {"name": "bob", "system": "Answer in capitals.",
             "grants": {"allow_domain": "example.com", "no_ai": True}}  # fmt: skip

    async def go() -> tuple[httpx.Response, ...]:
        async with client(state) as c:
            assert (await c.post("/v1/agents", json=spawn, headers=AUTH)).status_code == 201
            sent = await c.post("/v1/agents/bob/messages", json={"message": "fetch"}, headers=AUTH)
            turn = await c.post("/v1/sessions/bob/turns", json={"task": "again"}, headers=AUTH)
            empty = await c.post("/v1/agents/bob/messages", json={"message": " "}, headers=AUTH)
            got = await c.get("/v1/agents/bob", headers=AUTH)
            return sent, turn, empty, got

    sent, turn, empty, got = run(go())
    events = parse_sse(sent.text)
    assert sent.headers["content-type"].startswith("text/event-stream")
    assert events[0]["event"] == "turn_start" and events[-1]["data"]["state"] == "answered"
    assert [e["data"] for e in events] == [r for r in journal(state, "bob") if r["turn"] == 1]
    system = model.requests[0][0].content
    assert "Instructions for this agent:\nAnswer in capitals." in system
    assert "ai.assist" not in system and "http.get" in system
    assert "EACCESS" in model.requests[1][-1].content  # example.org: the server's, not bob's
    assert parse_sse(turn.text)[-1]["data"]["state"] == "answered"  # the session route too
    again = model.requests[2][0].content
    assert "Answer in capitals." in again and "ai.assist" not in again
    assert empty.status_code == 422
    view = got.json()
    assert view["state"] == "answered" and view["turns"] == 2 and view["last_activity"]
    state.close()


def test_a_plain_session_keeps_the_servers_grant() -> None:
    model = ScriptedModel([DONE])
    state = make_state(model)

    async def go() -> None:
        async with client(state) as c:
            await c.post("/v1/sessions/plain/turns", json={"task": "t"}, headers=AUTH)

    run(go())
    system = model.requests[0][0].content
    assert "ai.assist" in system and "Instructions for this agent" not in system
    state.close()


def test_a_cli_agent_wider_than_the_server_is_narrowed_to_it(tmp_path: Path) -> None:
    state = make_state(ScriptedModel([]), settings={"allow_domains": ["example.com"]})
    AgentStore(state.config.settings.home).spawn(
        AgentConfig(
            "wide",
            allow_domains=("example.com", "example.org"),
            agents=3,
            fs_root=str(tmp_path),
            max_steps=50,
        )  # fmt: skip
    )

    async def go() -> httpx.Response:
        async with client(state) as c:
            return await c.get("/v1/agents/wide", headers=AUTH)

    grant = run(go()).json()["grant"]
    assert grant["allow_domains"] == ["example.com"] and grant["agents"] == 0
    assert grant["fs_root"] is None and grant["max_steps"] == 10
    state.close()


def test_detach_answers_202_with_the_run_then_observe_from_0() -> None:
    gate = Gate()
    state = make_state(ScriptedModel(gate))

    async def go() -> tuple[httpx.Response, httpx.Response, httpx.Response, httpx.Response]:
        async with client(state) as c:
            await c.post("/v1/agents", json={"name": "d"}, headers=AUTH)
            sent = await c.post(
                "/v1/agents/d/messages?detach=1", json={"message": "slow"}, headers=AUTH
            )
            running = await c.get("/v1/agents/d", headers=AUTH)
            busy = await c.delete("/v1/agents/d", headers=AUTH)
            gate.open()
            await asyncio.to_thread(wait_for, lambda: state.pool.running_in("d") is None)
            seen = await c.get("/v1/agents/d/events?after=0&follow=0", headers=AUTH)
            return sent, running, busy, seen

    sent, running, busy, seen = run(go())
    assert sent.status_code == 202, sent.text
    run_id = sent.json()["run"]
    assert running.json()["state"] == "running" and running.json()["run"] == run_id
    assert running.json()["running"]["run"] == run_id
    assert busy.status_code == 409
    events = parse_sse(seen.text)
    assert events[0]["data"]["seq"] == 1 and events[0]["data"]["run"] == run_id
    assert events[-1]["data"]["state"] == "answered"
    assert [e["data"] for e in events] == journal(state, "d")
    state.close()


def test_kill_during_a_turn_records_it_interrupted_then_rm() -> None:
    gate = Gate()
    state = make_state(ScriptedModel(gate))

    async def go() -> tuple[httpx.Response, ...]:
        async with client(state) as c:
            await c.post("/v1/agents", json={"name": "k"}, headers=AUTH)
            idle = await c.post("/v1/agents/k/kill", headers=AUTH)
            sent = await c.post("/v1/agents/k/messages", json={"message": "x", "detach": True},
                                headers=AUTH)  # fmt: skip
            await asyncio.to_thread(gate.entered.wait, 10)
            kill = asyncio.create_task(c.delete("/v1/agents/k/run", headers=AUTH))
            running = state.pool.running_in("k")
            assert running is not None
            await asyncio.to_thread(wait_for, running.cancel.is_set)
            gate.open()
            killed = await kill
            gone = await c.delete("/v1/agents/k", headers=AUTH)
            after = await c.get("/v1/agents/k", headers=AUTH)
            return idle, sent, killed, gone, after

    idle, sent, killed, gone, after = run(go())
    assert idle.status_code == 409 and idle.json()["error"]["type"] == "not_running"
    assert killed.status_code == 200, killed.text
    assert killed.json() == {"agent": "k", "run": sent.json()["run"], "state": "interrupted"}
    home = state.config.settings.home
    assert gone.status_code == 200 and gone.json() == {"deleted": "k"}
    assert after.status_code == 404
    assert not (home / "agents" / "k.json").exists()
    assert not (home / "sessions" / "k.sqlite").exists()
    state.close()


def test_spawn_observe_live_send_and_kill_over_real_http() -> None:
    gate = Gate()
    replies = iter([UPPER, DONE])
    model = ScriptedModel(lambda m: next(replies, None) or gate(m))
    state = make_state(model)
    with live(state) as url, httpx.Client(base_url=url, timeout=20) as c:
        assert c.post("/v1/agents", json={"name": "liv"}, headers=AUTH).status_code == 201
        with c.stream("GET", "/v1/agents/liv/events", headers=AUTH) as observed:
            sent = c.post("/v1/agents/liv/messages", json={"message": "upper hi"}, headers=AUTH)
            first = Events(observed).take(7)
        assert [e["event"] for e in first] == [e["event"] for e in parse_sse(sent.text)]
        assert first[-1]["data"]["state"] == "answered"
        last = first[-1]["data"]["seq"]
        with c.stream(
            "GET", "/v1/agents/liv/events", headers={**AUTH, "Last-Event-ID": str(last)}
        ) as tail:
            detached = c.post(
                "/v1/agents/liv/messages?detach=1", json={"message": "slow"}, headers=AUTH
            )
            assert detached.status_code == 202
            assert gate.entered.wait(10)
            holder: dict[str, httpx.Response] = {}
            killer = threading.Thread(
                target=lambda: holder.update(r=c.delete("/v1/agents/liv/run", headers=AUTH))
            )
            killer.start()
            running = state.pool.running_in("liv")
            assert running is not None
            wait_for(running.cancel.is_set)
            gate.open()
            killer.join(15)
            events = Events(tail)
            rows = events.take(1)
            while rows[-1]["event"] != "turn_end":
                rows += events.take(1)
        assert holder["r"].json()["state"] == "interrupted"
        assert (
            rows[0]["data"]["seq"] == last + 1 and rows[0]["data"]["run"] == detached.json()["run"]
        )
        assert rows[-1]["data"]["state"] == "interrupted"
    assert [t["state"] for t in turns(state, "liv")] == ["answered", "interrupted"]
