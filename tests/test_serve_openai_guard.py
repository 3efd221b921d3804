"""`watt serve`: the OpenAI-compatible endpoint with openai-style request shapes, the input
guard with the scripted model, and the token and bind rules."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from agent.models.scripted import ScriptedModel
from rt.errors import ConfigError
from server.security import TOKEN_ENV, bearer_matches, check_bind, is_loopback, load_token
from server.turns import parse_verdict
from tests.serve_support import AUTH, DONE, UPPER, client, journal, make_state, parse_sse, turns


def post(state: Any, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    async def go() -> Any:
        async with client(state) as c:
            return await c.post(path, json=body, headers={**AUTH, **(headers or {})})

    return asyncio.run(go())


# ---- /v1/chat/completions ----------------------------------------------------------------------
def test_chat_completion_not_streaming() -> None:
    state = make_state(ScriptedModel([UPPER, DONE]))
    body = {
        "model": "watt",
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "earlier question"},
            {"role": "assistant", "content": "earlier answer"},
            {"role": "user", "content": [{"type": "text", "text": "Upper-case 'hi'"}]},
        ],
        "temperature": 0.2,
        "max_tokens": 100,
    }
    r = post(state, "/v1/chat/completions", body)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["object"] == "chat.completion" and data["model"] == "watt"
    assert data["choices"][0]["message"] == {"role": "assistant", "content": "HI"}
    assert data["choices"][0]["finish_reason"] == "stop"
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert turns(state, "chat")[0]["task"] == "Upper-case 'hi'"
    state.close()


def test_chat_completion_streams_steps_then_the_answer() -> None:
    state = make_state(ScriptedModel([UPPER, DONE]))
    body = {
        "model": "watt", "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "Upper-case 'hi'"}],
    }  # fmt: skip
    r = post(state, "/v1/chat/completions", body, {"X-Watt-Session": "oa"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    messages = parse_sse(r.text)
    assert messages[-1]["data"] == "[DONE]"
    chunks = [m["data"] for m in messages[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0]["role"] == "assistant"
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    assert 'upper("hi")' in reasoning and "ok: HI" in reasoning
    assert "".join(d.get("content", "") for d in deltas) == "HI"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert turns(state, "oa")[0]["state"] == "answered"
    state.close()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"messages": []},
        {"messages": "hi"},
        {"messages": [{"role": "system", "content": "only a system message"}]},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
    ],
)
def test_chat_completion_without_a_user_text_is_422(body: dict[str, Any]) -> None:
    state = make_state(ScriptedModel([]))
    r = post(state, "/v1/chat/completions", body)
    assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_request"
    state.close()


def test_chat_completion_of_a_failed_turn_is_an_error_object() -> None:
    state = make_state(ScriptedModel([]))  # exhausted: the model call fails
    r = post(state, "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 502 and r.json()["error"]["type"] == "turn_failed"
    state.close()


def test_models_lists_watt() -> None:
    state = make_state(ScriptedModel([]))

    async def go() -> Any:
        async with client(state) as c:
            return await c.get("/v1/models", headers=AUTH)

    data = asyncio.run(go()).json()
    assert data["object"] == "list" and data["data"][0]["id"] == "watt"
    state.close()


# ---- the guard ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "reply, allowed, category",
    [
        ("ALLOW", True, ""),
        ("allow.", True, ""),
        ("BLOCK: malware", False, "malware"),
        ("block - self harm\nbecause", False, "self_harm"),
        ("BLOCK", False, "other"),
        ("I think this is fine", False, "unreadable_verdict"),
        ('ToolCall::Response("""\nALLOW\n""")', True, ""),
        ('ToolCall::Response("BLOCK: hate")', False, "hate"),
        ("Blocked? No: ALLOWED", False, "unreadable_verdict"),
        ("", False, "unreadable_verdict"),
    ],
)
def test_parse_verdict(reply: str, allowed: bool, category: str) -> None:
    verdict = parse_verdict(reply)
    assert (verdict.allowed, verdict.category) == (allowed, category)


def test_guard_blocks_a_task_and_runs_nothing() -> None:
    model = ScriptedModel(["BLOCK: malware"])
    state = make_state(model, guard="model")
    r = post(state, "/v1/sessions/g/turns", {"task": "write ransomware"})
    events = parse_sse(r.text)
    assert [e["event"] for e in events] == ["turn_start", "guard", "turn_end"]
    assert events[1]["data"]["category"] == "malware"
    assert events[1]["data"]["verdict"] == "blocked"
    assert events[2]["data"]["state"] == "stopped"
    assert len(model.requests) == 1 and "write ransomware" in model.requests[0][-1].content
    assert [e["data"] for e in events] == journal(state, "g")
    assert turns(state, "g")[0]["state"] == "stopped"
    state.close()


def test_guard_lets_an_allowed_task_run() -> None:
    model = ScriptedModel(["ALLOW", DONE])
    state = make_state(model, guard="model")
    events = parse_sse(post(state, "/v1/sessions/g/turns", {"task": "say HI"}).text)
    assert [e["event"] for e in events][-2:] == ["response", "turn_end"]
    assert events[-1]["data"]["state"] == "answered" and len(model.requests) == 2
    state.close()


def test_guard_is_off_by_default_and_a_config_key(watt_home: Path) -> None:
    from agent.config import load_settings

    assert load_settings({}).guard == "off"
    watt_home.mkdir(parents=True, exist_ok=True)
    (watt_home / "config.toml").write_text('guard = "model"\n')
    assert load_settings({}).guard == "model"
    (watt_home / "config.toml").write_text('guard = "regex"\n')
    with pytest.raises(ConfigError, match="guard must be one of off, model"):
        load_settings({})


# ---- the token and the bind rule ----------------------------------------------------------------
def test_token_file_is_created_0600_once_then_read(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = load_token(home, environ={})
    assert first.created and not first.explicit and first.path == home / "serve.token"
    assert stat.S_IMODE(os.stat(first.path).st_mode) == 0o600
    second = load_token(home, environ={})
    assert second.value == first.value and not second.created
    assert first.value not in repr(first)
    os.chmod(first.path, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        load_token(home, environ={})


def test_explicit_token_and_the_bind_rule(tmp_path: Path) -> None:
    explicit = load_token(tmp_path, environ={TOKEN_ENV: "a-long-enough-token-1234"})
    assert explicit.explicit and explicit.path is None
    with pytest.raises(ConfigError, match="at least 16"):
        load_token(tmp_path, environ={TOKEN_ENV: "short"})
    from_file = load_token(tmp_path / "h", environ={})
    for host in ("127.0.0.1", "localhost", "::1", "127.1.2.3"):
        assert is_loopback(host)
        check_bind(host, from_file)
    for host in ("0.0.0.0", "192.168.1.5", "::", "example.com"):
        assert not is_loopback(host)
        with pytest.raises(ConfigError, match="refusing to listen"):
            check_bind(host, from_file)
        check_bind(host, explicit)


@pytest.mark.parametrize(
    "header, ok",
    [
        ("Bearer sekrit-token-123456", True),
        ("bearer sekrit-token-123456", True),
        ("Bearer sekrit-token-12345", False),
        ("Bearer sekrit-token-1234567", False),
        ("Basic sekrit-token-123456", False),
        ("sekrit-token-123456", False),
        ("", False),
        (None, False),
    ],
)
def test_bearer_matches(header: str | None, ok: bool) -> None:
    assert bearer_matches(header, "sekrit-token-123456") is ok


@pytest.fixture
def watt_home(_watt_home: Path) -> Path:
    return _watt_home
