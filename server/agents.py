"""Named agents over HTTP (``/v1/agents``): what ``watt agents`` does, for a client.

``POST /v1/agents`` spawns one (its grants in the words of the CLI's flags, which may only
narrow the server's: 403 otherwise), ``GET /v1/agents/{name}`` is its ``ps`` line with its
configuration and the grant it has here, ``POST .../messages`` sends it a turn (SSE, or
``detach`` for a 202 with the run id while the turn runs in the server), ``GET .../events``
observes it, ``DELETE .../run`` (or ``POST .../kill``) interrupts its turn and ``DELETE``
removes it. The logic is ``agent.named``; a turn runs with ``state.agent_settings``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from agent.config import Settings
from agent.named import AgentConfig
from agent.store.journal import Entry, JournalKind, Reader, TurnState
from capabilities.netguard import Grants
from rt.errors import CapabilityError, ConfigError, SessionInUse, UnknownSession, WattError
from server.http import HTTPProblem, read_json, session_name, session_name_of
from server.pool import Busy, Running
from server.routes import (
    MAX_TASK_CHARS,
    SSE_HEADERS,
    after_seq,
    begin_turn,
    events_response,
    following,
    idempotency_key,
    state_of,
    task_text,
    turn_entries,
    turn_stream,
)
from server.state import ServerState, agent_settings

GRANT_WORDS = ("allow_domain", "fs_root", "no_ai", "agents", "catalog", "max_steps", "timeout")
KILL_WAIT_S = 10.0
FILE_MODELS = ("script:", "local:")
START_WAIT_S = 20.0


def _bad(message: str) -> HTTPProblem:
    return HTTPProblem(422, message, "invalid_request")


def _refused(message: str) -> HTTPProblem:
    return HTTPProblem(403, f"not granted by this server: {message}", "not_granted")


def _strings(value: Any, key: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise _bad(f'grants "{key}" must be a string or a list of strings')
    return list(items)


def _hosts(value: Any, base: Settings) -> tuple[str, ...]:
    hosts = _strings(value, "allow_domain")
    try:
        wanted = Grants.from_user(hosts).entries
    except CapabilityError as exc:
        raise _bad(f"--allow-domain: {exc.one_line()}") from None
    held = Grants.parse(base.allow_domains).entries
    if not wanted <= held:
        granted = ", ".join(base.allow_domains) or "no hosts"
        raise _refused(f"http host {', '.join(hosts)} (granted: {granted})")
    return tuple(hosts)


def _fs_root(value: Any, base: Settings) -> str:
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise _bad('grants "fs_root" must be a directory path')
    if base.fs_root is None:
        raise _refused("fs (this server has no fs root)")
    root = base.fs_root.resolve()
    wanted = (root / value).resolve()  # an absolute path stays as it is
    if not wanted.is_relative_to(root):
        raise _refused(f"fs root {value!r} (outside the server's fs root {root})")
    if not wanted.is_dir():
        raise _bad(f"--fs-root: no directory {str(wanted)!r}")
    return str(wanted)


def _number(value: Any, key: str, low: float, high: float, *, integer: bool) -> float:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
        raise _bad(f'grants "{key}" must be {"an integer" if integer else "a number"}')
    if value < low:
        raise _bad(f'grants "{key}" must be at least {low:g}')
    if value > high:
        raise _refused(f"{key} {value:g} (this server allows at most {high:g})")
    return value


def _catalog(value: Any, base: Settings) -> tuple[str, ...]:
    held = {d.resolve(): d for d in base.catalog}
    out = []
    for text in _strings(value, "catalog"):
        found = held.get(Path(text).expanduser().resolve())
        if found is None:
            raise _refused(f"catalog directory {text!r} (not one of the server's)")
        out.append(str(found.resolve()))
    return tuple(out)


def grant_fields(grants: Any, base: Settings) -> dict[str, Any]:
    """``{"allow_domain", "fs_root", "no_ai", "agents", "catalog", "max_steps", "timeout"}``
    (the CLI's flags; ``-`` or ``_``) as ``AgentConfig`` fields: 422 when malformed, 403
    when one would widen ``base``."""
    if grants is None:
        grants = {}
    if not isinstance(grants, dict):
        raise _bad('"grants" must be an object of the CLI\'s grant flags')
    words = {str(k).lstrip("-").replace("-", "_"): v for k, v in grants.items()}
    unknown = sorted(set(words) - set(GRANT_WORDS))
    if unknown:
        named = ", ".join(repr(u[:40]) for u in unknown[:5])
        raise _bad(f"unknown grants {named}; known: {', '.join(GRANT_WORDS)}")
    out: dict[str, Any] = {"ai": base.ai}
    if words.get("allow_domain") is not None:
        out["allow_domains"] = _hosts(words["allow_domain"], base)
    if words.get("fs_root") is not None:
        out["fs_root"] = _fs_root(words["fs_root"], base)
    if words.get("no_ai") is not None:
        if not isinstance(words["no_ai"], bool):
            raise _bad('grants "no_ai" must be true or false')
        if not words["no_ai"] and not base.ai:
            raise _refused("ai")
        out["ai"] = not words["no_ai"]
    if words.get("agents") is not None:
        out["agents"] = int(_number(words["agents"], "agents", 0, base.agents, integer=True))
    if words.get("catalog") is not None:
        out["catalog"] = _catalog(words["catalog"], base)
    if words.get("max_steps") is not None:
        steps = _number(words["max_steps"], "max_steps", 1, base.max_steps, integer=True)
        out["max_steps"] = int(steps)
    if words.get("timeout") is not None:
        out["timeout"] = float(
            _number(words["timeout"], "timeout", 0.001, base.timeout, integer=False)
        )
    return out


def spawn_config(state: ServerState, name: str, body: dict[str, Any]) -> AgentConfig:
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise _bad('"model" must be a model name')
    system = body.get("system", "")
    if not isinstance(system, str) or len(system) > MAX_TASK_CHARS:
        raise _bad(f'"system" must be a string of at most {MAX_TASK_CHARS} characters')
    if model is not None and model.startswith(FILE_MODELS) and model != state.model_spec:
        raise _bad(
            f"\"model\" {model!r}: over HTTP an agent's model is a model name of the server's "
            "endpoint (script: and local: files are the server's own --model)"
        )
    fields = grant_fields(body.get("grants"), state.config.settings)
    return AgentConfig(name, model=model, system=system, **fields)


def _grant_view(settings: Settings) -> dict[str, Any]:
    return {
        "allow_domains": list(settings.allow_domains), "ai": settings.ai,
        "fs_root": None if settings.fs_root is None else str(settings.fs_root),
        "agents": settings.agents, "catalog": [str(c) for c in settings.catalog],
        "max_steps": settings.max_steps, "timeout": settings.timeout,
    }  # fmt: skip


def agent_view(state: ServerState, name: str) -> dict[str, Any]:
    """What ``watt agents ps`` shows of it, its stored configuration and its grant here."""
    config = state.agents.get(name)
    view: dict[str, Any] = state.agents.status(name).to_dict()
    view["config"] = config.to_dict()
    try:
        view["grant"] = _grant_view(agent_settings(config, state.config.settings))
    except ConfigError as exc:
        view["grant"] = {"error": exc.one_line()}
    running = state.pool.running_in(name)
    view["running"] = running.to_dict() if running is not None else None
    return view


async def _view(state: ServerState, name: str) -> dict[str, Any]:
    try:
        return await run_in_threadpool(agent_view, state, name)
    except UnknownSession as exc:
        raise HTTPProblem(404, exc.one_line(), "not_found") from None
    except WattError as exc:
        raise HTTPProblem(500, exc.one_line(), "agent_error") from None


def _need_agent(state: ServerState, name: str) -> None:
    if not state.agents.exists(name):
        raise HTTPProblem(404, f"no agent named {name!r}", "not_found")


async def spawn_agent(request: Request) -> Response:
    state = state_of(request)
    body = await read_json(request, state.config.max_body)
    if not isinstance(body.get("name"), str):
        raise _bad('"name" must be the agent\'s name (a session name)')
    name = session_name_of(body["name"])
    again = body.get("replace", False)
    if not isinstance(again, bool):
        raise _bad('"replace" must be true or false')
    config = spawn_config(state, name, body)

    def spawn() -> None:
        taken = state.agents.exists(name) or state.agents.sessions.exists(name)
        if taken and not again:
            what = "an agent" if state.agents.exists(name) else "a session"
            raise HTTPProblem(
                409, f'{what} named {name!r} exists; send "replace": true to start it afresh',
                "agent_exists",
            )  # fmt: skip
        if again:
            state.pool.close_session(name)
        state.agents.spawn(config, replace_existing=again)

    try:
        await _change_session(spawn)
    except ConfigError as exc:
        raise _bad(exc.one_line()) from None
    except WattError as exc:
        raise HTTPProblem(500, exc.one_line(), "agent_error") from None
    return JSONResponse(await _view(state, name), 201)


async def get_agent(request: Request) -> Response:
    state = state_of(request)
    name = session_name(request)
    _need_agent(state, name)
    return JSONResponse(await _view(state, name))


async def _started(state: ServerState, running: Running) -> Entry | None:
    """The turn's turn_start row (None when it never started)."""
    async with contextlib.aclosing(turn_entries(state, running)) as rows:
        async for item in rows:
            if isinstance(item, Entry) and item.kind == JournalKind.TURN_START.value:
                return item
    return None


async def post_message(request: Request) -> Response:
    """A turn of the agent with its stored configuration: its journal rows as SSE, or with
    ``detach`` a 202 with the run id once it has started (the turn goes on in the server)."""
    state = state_of(request)
    name = session_name(request)
    body = await read_json(request, state.config.max_body)
    message = task_text(body, "message")
    raw = request.query_params.get("detach", "").lower()
    detach = raw in ("1", "true", "yes") or body.get("detach") is True
    _need_agent(state, name)
    running, new = await begin_turn(state, name, message, key=idempotency_key(request))
    if not detach:
        stream = turn_stream(state, running, owner=new)
        return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)
    try:
        start = await asyncio.wait_for(_started(state, running), START_WAIT_S)
    except asyncio.TimeoutError:
        start = None
    if start is None:
        message = running.error or f"the turn did not start within {START_WAIT_S:g} s"
        raise HTTPProblem(500, message, "turn_not_started")
    return JSONResponse({"agent": name, "run": start.run, "turn": start.turn}, 202)


async def agent_events(request: Request) -> Response:
    """``watt agents observe``: the rows after Last-Event-ID or ``?after=SEQ``, then live."""
    state = state_of(request)
    name = session_name(request)
    after = after_seq(request)
    _need_agent(state, name)
    return events_response(state, name, after, follow=following(request))


def _turn_state(state: ServerState, name: str, turn: int | None) -> str:
    with Reader(state.pool.store.path(name), name) as reader:
        found = [t for t in reader.turns() if turn is None or t.id == turn]
    return found[-1].state.value if found else TurnState.INTERRUPTED.value


async def _kill_here(state: ServerState, name: str, running: Running) -> dict[str, Any]:
    running.cancel.set()
    deadline = asyncio.get_running_loop().time() + KILL_WAIT_S
    while not running.done.is_set() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    if not running.done.is_set():
        return {"agent": name, "run": running.run, "state": TurnState.RUNNING.value}
    turn_state = await run_in_threadpool(_turn_state, state, name, running.turn)
    return {"agent": name, "run": running.run, "state": turn_state}


async def kill_agent(request: Request) -> Response:
    """Interrupt the agent's running turn (this server's, or another process's: SIGINT, as
    ``watt agents kill`` does); 409 when none runs. The turn is recorded as interrupted."""
    state = state_of(request)
    name = session_name(request)
    _need_agent(state, name)
    running = state.pool.running_in(name)
    if running is not None:
        killed = await _kill_here(state, name, running)
        return JSONResponse(killed, 202 if killed["state"] == TurnState.RUNNING.value else 200)
    if not state.agents.sessions.exists(name):
        raise HTTPProblem(409, f"agent {name!r} has no running turn", "not_running")
    try:
        turn = await run_in_threadpool(state.agents.kill, name)
    except WattError as exc:
        raise HTTPProblem(409, exc.one_line(), "cannot_kill") from None
    if turn is None:
        raise HTTPProblem(409, f"agent {name!r} has no running turn", "not_running")
    return JSONResponse({"agent": name, "run": turn.run, "state": turn.state.value})


async def remove_agent(request: Request) -> Response:
    state = state_of(request)
    name = session_name(request)
    _need_agent(state, name)

    def remove() -> None:
        state.pool.close_session(name)
        state.agents.remove(name)

    try:
        await _change_session(remove)
    except UnknownSession as exc:
        raise HTTPProblem(404, exc.one_line(), "not_found") from None
    except WattError as exc:
        raise HTTPProblem(500, exc.one_line(), "agent_error") from None
    return JSONResponse({"deleted": name})


async def _change_session(work: Callable[[], None]) -> None:
    """Run ``work`` (it changes an agent's session) on the thread pool; a session that is
    running a turn here, or is open in another process, is a 409."""
    try:
        await run_in_threadpool(work)
    except Busy as exc:
        raise HTTPProblem(409, str(exc), "session_busy") from None
    except SessionInUse as exc:
        raise HTTPProblem(409, exc.one_line(), "session_in_use") from None
