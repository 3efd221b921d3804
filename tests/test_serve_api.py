"""`watt serve` in-process (httpx's ASGI transport): auth, turns as SSE, idempotency, the
error statuses, program routes following the catalog, caps narrowing, sessions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.models.scripted import ScriptedModel
from tests.serve_support import (
    AUTH,
    DONE,
    UPPER,
    Gate,
    client,
    journal,
    make_state,
    parse_sse,
    turns,
)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_healthz_needs_no_token_and_every_v1_route_does() -> None:
    state = make_state(ScriptedModel([]))

    async def go() -> None:
        async with client(state) as c:
            health = await c.get("/healthz")
            assert health.status_code == 200 and health.json()["ok"] is True
            assert health.json()["version"]
            for method, path in [
                ("GET", "/v1/sessions"), ("GET", "/v1/sessions/a"), ("DELETE", "/v1/sessions/a"),
                ("POST", "/v1/sessions/a/turns"), ("GET", "/v1/sessions/a/events"),
                ("POST", "/v1/programs/upper"), ("GET", "/v1/catalog"), ("GET", "/v1/caps"),
                ("GET", "/v1/agents"), ("POST", "/v1/chat/completions"), ("GET", "/v1/models"),
            ]:  # fmt: skip
                for headers in ({}, {"Authorization": "Bearer wrong-token-xxxxxxxxxx"},
                                {"Authorization": "Basic " + AUTH["Authorization"][7:]}):  # fmt: skip
                    r = await c.request(method, path, headers=headers)
                    assert r.status_code == 401, (method, path)
                    assert r.json()["error"]["type"] == "unauthorized"
                    assert r.headers["www-authenticate"].startswith("Bearer")
                    assert "test-token" not in r.text

    run(go())
    state.close()


def test_page_is_served_without_a_token_with_a_strict_policy() -> None:
    state = make_state(ScriptedModel([]))

    async def go() -> None:
        async with client(state) as c:
            page = await c.get("/")
            assert page.status_code == 200 and "text/html" in page.headers["content-type"]
            assert "default-src 'none'" in page.headers["content-security-policy"]
            assert '<script type="module" src="/static/app.js">' in page.text
            for name, kind in [("app.js", "javascript"), ("style.css", "css")]:
                r = await c.get(f"/static/{name}")
                assert r.status_code == 200 and kind in r.headers["content-type"]
            assert (await c.get("/static/../app.py")).status_code == 404
            assert (await c.get("/static/secret.txt")).status_code == 404
            assert "access-control-allow-origin" not in page.headers

    run(go())
    state.close()


def test_a_turn_streams_the_journal_rows_as_sse() -> None:
    model = ScriptedModel([UPPER, DONE])
    state = make_state(model)

    async def go() -> list[dict[str, Any]]:
        async with client(state) as c:
            r = await c.post("/v1/sessions/s1/turns", json={"task": "upper hi"}, headers=AUTH)
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            return parse_sse(r.text)

    events = run(go())
    kinds = [e["event"] for e in events]
    assert kinds == ["turn_start", "thinking", "tool_start", "tool_result", "thinking",
                     "response", "turn_end"]  # fmt: skip
    assert [int(e["id"]) for e in events] == [e["data"]["seq"] for e in events]
    assert all(e["event"] == e["data"]["kind"] for e in events)
    assert [e["data"] for e in events] == journal(state, "s1")
    assert events[-2]["data"]["text"] == "HI"
    assert events[-1]["data"]["state"] == "answered"
    assert turns(state, "s1")[0]["state"] == "answered"
    state.close()


def test_idempotency_key_returns_the_same_turn_instead_of_a_new_one() -> None:
    model = ScriptedModel([DONE, DONE])
    state = make_state(model)

    async def go() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with client(state) as c:
            key = {**AUTH, "Idempotency-Key": "k-1"}
            first = await c.post("/v1/sessions/s/turns", json={"task": "t"}, headers=key)
            again = await c.post("/v1/sessions/s/turns", json={"task": "t"}, headers=key)
            other = await c.post("/v1/sessions/s/turns", json={"task": "u"}, headers=key)
            return first, again, other

    first, again, other = run(go())
    assert parse_sse(first.text) == parse_sse(again.text)
    assert len(model.requests) == 1 and len(turns(state, "s")) == 1
    assert other.status_code == 422 and other.json()["error"]["type"] == "idempotency_key_reused"
    state.close()


def test_idempotent_retry_while_running_follows_it_live() -> None:
    gate = Gate()
    state = make_state(ScriptedModel(gate))

    async def go() -> tuple[str, str]:
        async with client(state) as c:
            key = {**AUTH, "Idempotency-Key": "k-live"}
            first = asyncio.create_task(
                c.post("/v1/sessions/s/turns", json={"task": "t"}, headers=key)
            )
            await asyncio.to_thread(gate.entered.wait, 10)
            second = asyncio.create_task(
                c.post("/v1/sessions/s/turns", json={"task": "t"}, headers=key)
            )
            await asyncio.sleep(0.2)
            gate.open()
            return (await first).text, (await second).text

    a, b = run(go())
    assert parse_sse(a) == parse_sse(b) and parse_sse(a)[-1]["data"]["state"] == "answered"
    assert len(turns(state, "s")) == 1
    state.close()


def test_a_second_turn_on_a_running_session_is_409_and_past_the_cap_429() -> None:
    gate = Gate()
    state = make_state(ScriptedModel(gate), max_running=1)

    async def go() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with client(state) as c:
            first = asyncio.create_task(
                c.post("/v1/sessions/a/turns", json={"task": "slow"}, headers=AUTH)
            )
            await asyncio.to_thread(gate.entered.wait, 10)
            busy = await c.post("/v1/sessions/a/turns", json={"task": "again"}, headers=AUTH)
            full = await c.post("/v1/sessions/b/turns", json={"task": "other"}, headers=AUTH)
            agents = await c.get("/v1/agents", headers=AUTH)
            assert [a["session"] for a in agents.json()["running"]] == ["a"]
            gate.open()
            return await first, busy, full

    first, busy, full = run(go())
    assert parse_sse(first.text)[-1]["data"]["state"] == "answered"
    assert busy.status_code == 409 and "'a'" in busy.json()["error"]["message"]
    assert "slow" in busy.json()["error"]["message"]
    assert full.status_code == 429 and full.headers["retry-after"] == "1"
    state.close()


@pytest.mark.parametrize(
    "body, status",
    [
        ({}, 422),
        ({"task": ""}, 422),
        ({"task": 5}, 422),
        ({"task": "x", "max_steps": 0}, 422),
        ({"task": "x", "max_steps": 11}, 422),
        ({"task": "x", "max_steps": True}, 422),
        ({"task": "x", "caps": "str"}, 422),
        ({"task": "x", "caps": ["str", "rocket"]}, 403),
    ],
)
def test_bad_turn_requests(body: dict[str, Any], status: int) -> None:
    state = make_state(ScriptedModel([]))

    async def go() -> httpx.Response:
        async with client(state) as c:
            return await c.post("/v1/sessions/s/turns", json=body, headers=AUTH)

    r = run(go())
    assert r.status_code == status and "message" in r.json()["error"]
    state.close()


def test_body_limit_413_bad_json_400_bad_names_422_unknown_404() -> None:
    state = make_state(ScriptedModel([]), max_body=100)

    async def go() -> None:
        async with client(state) as c:
            big = await c.post("/v1/sessions/s/turns", json={"task": "x" * 200}, headers=AUTH)
            assert big.status_code == 413

            async def chunks() -> Any:
                for _ in range(10):
                    yield b"x" * 50

            chunked = await c.post("/v1/programs/upper", content=chunks(), headers=AUTH)
            assert chunked.status_code == 413
            bad = await c.post("/v1/sessions/s/turns", content=b"{nope", headers=AUTH)
            assert bad.status_code == 400
            for path in ("/v1/sessions/..", "/v1/sessions/a%2Fb", "/v1/sessions/-x%20y"):
                r = await c.get(path, headers=AUTH)
                assert r.status_code in (404, 422), path
            assert (await c.get("/v1/sessions/nobody", headers=AUTH)).status_code == 404
            assert (await c.get("/v1/sessions/nobody/events", headers=AUTH)).status_code == 404
            assert (await c.delete("/v1/sessions/nobody", headers=AUTH)).status_code == 404
            assert (await c.get("/v1/nothing", headers=AUTH)).status_code == 404
            r = await c.post("/v1/programs/no_such_program", json={}, headers=AUTH)
            assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
            after = await c.get("/v1/sessions/x/events?after=-1", headers=AUTH)
            assert after.status_code == 422

    run(go())
    state.close()


def test_programs_answer_like_watt_run_json() -> None:
    state = make_state(ScriptedModel([]))

    async def go() -> None:
        async with client(state) as c:
            r = await c.post("/v1/programs/upper", json={"args": ["abc"]}, headers=AUTH)
            assert r.status_code == 200
            body = r.json()
            assert body["results"] == ["ABC"] and body["status"] == 0
            assert {"fuel_used", "timings", "status_name", "debug"} <= set(body)
            num = await c.post("/v1/programs/upper", json={"args": [12]}, headers=AUTH)
            assert num.json()["results"] == ["12"]
            for args in ([], ["a", "b", "c", "d"], "abc", [None], [True], [["x"]]):
                bad = await c.post("/v1/programs/upper", json={"args": args}, headers=AUTH)
                assert bad.status_code == 422, args
                assert bad.json()["error"]["type"] == "invalid_args"
            narrowed = await c.post(
                "/v1/programs/upper", json={"args": ["a"], "caps": ["math"]}, headers=AUTH
            )
            assert narrowed.status_code == 200 and narrowed.json()["error_type"] == "LinkError"
            wider = await c.post(
                "/v1/programs/upper", json={"args": ["a"], "caps": ["warp"]}, headers=AUTH
            )
            assert wider.status_code == 403

    run(go())
    state.close()


PROGRAM = """;;; name = "shout"
;;; description = "Upper-case and add an exclamation mark"
;;; [[args]]
;;; name = "text"
;;; description = "what to shout"
(resv (str.concat (str.upper (arg 0)) "!"))
"""


def test_program_routes_follow_the_catalog_directory(watt_home: Path) -> None:
    state = make_state(ScriptedModel([]))
    directory = watt_home / "catalog"

    async def go() -> None:
        async with client(state) as c:
            gone = await c.post("/v1/programs/shout", json={"args": ["hey"]}, headers=AUTH)
            assert gone.status_code == 404
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "shout.wat").write_text(PROGRAM)
            r = await c.post("/v1/programs/shout", json={"args": ["hey"]}, headers=AUTH)
            assert r.status_code == 200 and r.json()["results"] == ["HEY!"]
            listed = await c.get("/v1/catalog", headers=AUTH)
            shout = [p for p in listed.json()["programs"] if p["name"] == "shout"]
            assert shout and shout[0]["args"][0]["name"] == "text" and shout[0]["usable"]
            (directory / "shout.wat").write_text(PROGRAM.replace('"!"', '"?"'))
            changed = await c.post("/v1/programs/shout", json={"args": ["hey"]}, headers=AUTH)
            assert changed.json()["results"] == ["HEY?"]
            (directory / "shout.wat").unlink()
            again = await c.post("/v1/programs/shout", json={"args": ["hey"]}, headers=AUTH)
            assert again.status_code == 404
            (directory / "broken.wat").write_text(";;; name = \n(nop)")
            errors = (await c.get("/v1/catalog", headers=AUTH)).json()["errors"]
            assert any("broken.wat" in e for e in errors)

    run(go())
    state.close()


def test_a_turn_sees_a_program_dropped_in_after_its_session_opened(watt_home: Path) -> None:
    shout = 'ToolCall::Catalog("shout", "hey")'
    state = make_state(ScriptedModel([DONE, shout, DONE]))

    async def go() -> str:
        async with client(state) as c:
            await c.post("/v1/sessions/cat/turns", json={"task": "one"}, headers=AUTH)
            (watt_home / "catalog").mkdir(parents=True, exist_ok=True)
            (watt_home / "catalog" / "shout.wat").write_text(PROGRAM)
            r = await c.post("/v1/sessions/cat/turns", json={"task": "two"}, headers=AUTH)
            return r.text

    results = [e["data"] for e in parse_sse(run(go())) if e["event"] == "tool_result"]
    assert results[0]["ok"] and results[0]["results"] == ["HEY!"]
    state.close()


def test_kv_programs_run_in_their_session() -> None:
    state = make_state(ScriptedModel([]))

    async def go() -> None:
        async with client(state) as c:
            put = await c.post(
                "/v1/programs/kv_set", json={"args": ["k", "v1"], "session": "kvs"}, headers=AUTH
            )
            assert put.status_code == 200 and put.json()["status"] == 0, put.text
            got = await c.post(
                "/v1/programs/kv_get", json={"args": ["k"], "session": "kvs"}, headers=AUTH
            )
            assert got.json()["results"] == ["v1"]
            other = await c.post(
                "/v1/programs/kv_get", json={"args": ["k"], "session": "other"}, headers=AUTH
            )
            assert other.json()["results"] != ["v1"]

    run(go())
    state.close()


def test_caps_and_sessions_routes() -> None:
    state = make_state(ScriptedModel([DONE]), settings={"ai": False})

    async def go() -> None:
        async with client(state) as c:
            caps = (await c.get("/v1/caps", headers=AUTH)).json()
            by_name = {cap["namespace"]: cap for cap in caps["caps"]}
            assert by_name["str"]["granted"] and not by_name["ai"]["granted"]
            assert any(f["name"] == "upper" for f in by_name["str"]["functions"])
            assert caps["allow_domains"] == [] and caps["fs_root"] is None
            await c.post("/v1/sessions/s2/turns", json={"task": "hello"}, headers=AUTH)
            listed = (await c.get("/v1/sessions", headers=AUTH)).json()["sessions"]
            assert [(s["name"], s["turns"], s["running"]) for s in listed] == [("s2", 1, None)]
            one = (await c.get("/v1/sessions/s2", headers=AUTH)).json()
            assert one["turns"][0]["task"] == "hello" and one["turns"][0]["state"] == "answered"
            assert one["last_seq"] == len(journal(state, "s2"))
            gone = await c.delete("/v1/sessions/s2", headers=AUTH)
            assert gone.status_code == 200 and gone.json() == {"deleted": "s2"}
            assert (await c.get("/v1/sessions/s2", headers=AUTH)).status_code == 404

    run(go())
    state.close()


def test_events_after_a_seq_without_follow() -> None:
    state = make_state(ScriptedModel([DONE, DONE]))

    async def go() -> tuple[str, str]:
        async with client(state) as c:
            await c.post("/v1/sessions/e/turns", json={"task": "one"}, headers=AUTH)
            await c.post("/v1/sessions/e/turns", json={"task": "two"}, headers=AUTH)
            by_query = await c.get("/v1/sessions/e/events?after=2&follow=0", headers=AUTH)
            by_header = await c.get(
                "/v1/sessions/e/events?follow=0", headers={**AUTH, "Last-Event-ID": "2"}
            )
            return by_query.text, by_header.text

    by_query, by_header = run(go())
    rows = journal(state, "e")
    assert [e["data"] for e in parse_sse(by_query)] == rows[2:]
    assert parse_sse(by_header) == parse_sse(by_query)
    state.close()


def test_no_model_means_503_for_turns_but_programs_still_run() -> None:
    state = make_state(ScriptedModel([]))
    state.model, state.model_error = None, "no model endpoint configured"

    async def go() -> None:
        async with client(state) as c:
            r = await c.post("/v1/sessions/s/turns", json={"task": "x"}, headers=AUTH)
            assert r.status_code == 503 and "no model" in r.json()["error"]["message"]
            p = await c.post("/v1/programs/upper", json={"args": ["x"]}, headers=AUTH)
            assert p.json()["results"] == ["X"]

    run(go())
    state.close()


def test_cors_only_when_configured() -> None:
    state = make_state(ScriptedModel([]), cors_origins=("http://app.example",))

    async def go() -> None:
        async with client(state) as c:
            pre = await c.options(
                "/v1/sessions",
                headers={"Origin": "http://app.example", "Access-Control-Request-Method": "GET",
                         "Access-Control-Request-Headers": "authorization"},
            )  # fmt: skip
            assert pre.headers["access-control-allow-origin"] == "http://app.example"
            other = await c.get("/v1/sessions", headers={**AUTH, "Origin": "http://evil.example"})
            assert "access-control-allow-origin" not in other.headers

    run(go())
    state.close()


@pytest.fixture
def watt_home(_watt_home: Path) -> Path:
    return _watt_home


def test_an_idle_session_is_closed_so_other_watt_commands_can_use_it() -> None:
    from agent.store.sessions import SessionStore
    from rt.errors import SessionInUse

    state = make_state(ScriptedModel([DONE, DONE]), idle_close_s=0.0)
    store = SessionStore(state.config.settings.home)

    async def turn() -> None:
        async with client(state) as c:
            await c.post("/v1/sessions/idle/turns", json={"task": "one"}, headers=AUTH)

    run(turn())
    with pytest.raises(SessionInUse):
        store.open("idle")  # the server still holds it
    assert state.pool.close_idle() == 1
    store.open("idle").close()  # what `watt ask --session idle` does
    run(turn())  # and the server opens it again for the next turn
    assert [t["state"] for t in turns(state, "idle")] == ["answered", "answered"]
    state.close()


def test_a_session_held_elsewhere_or_running_is_409_for_turns_and_delete() -> None:
    from agent.store.sessions import SessionStore

    gate = Gate()
    state = make_state(ScriptedModel(gate))
    held = SessionStore(state.config.settings.home).open("held")  # another watt process

    async def go() -> None:
        async with client(state) as c:
            key = {**AUTH, "Idempotency-Key": "k-held"}
            r = await c.post("/v1/sessions/held/turns", json={"task": "x"}, headers=key)
            assert r.status_code == 409 and r.json()["error"]["type"] == "session_in_use"
            assert "in use" in r.json()["error"]["message"]
            gone = await c.delete("/v1/sessions/held", headers=AUTH)
            assert gone.status_code == 409
            held.close()
            running = asyncio.create_task(
                c.post("/v1/sessions/held/turns", json={"task": "x"}, headers=key)
            )  # the same key again: the failed claim did not keep it
            await asyncio.to_thread(gate.entered.wait, 10)
            busy = await c.delete("/v1/sessions/held", headers=AUTH)
            assert busy.status_code == 409 and busy.json()["error"]["type"] == "session_busy"
            gate.open()
            assert parse_sse((await running).text)[-1]["data"]["state"] == "answered"

    run(go())
    state.close()


def test_agents_lists_the_named_agents() -> None:
    from agent.named import AgentConfig, AgentStore

    state = make_state(ScriptedModel([]))
    AgentStore(state.config.settings.home).spawn(AgentConfig(name="helper", max_steps=3))

    async def go() -> Any:
        async with client(state) as c:
            return (await c.get("/v1/agents", headers=AUTH)).json()

    listed = run(go())
    assert [(a["name"], a["state"], a["turns"]) for a in listed["agents"]] == [("helper", "new", 0)]
    assert listed["running"] == []
    state.close()
