"""The HTTP API's routes (see README "watt serve"): sessions, turns, events, and catalog
programs as endpoints (``/v1/programs/{name}``, ``/v1/catalog``, ``/v1/caps``), which follow
the catalog directories live (``server.programs.CatalogWatch``).

Every handler answers JSON or ``text/event-stream``; errors are ``{"error": {"message",
"type"}}`` with 401, 404, 409, 413, 422, 429 (with Retry-After) or 503.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from agent.app import Parts
from agent.programs.catalog import Catalog, Program
from agent.store.journal import Entry, JournalKind, Reader
from capabilities.base import describe
from rt.errors import CatalogError, ConfigError, SessionError, SessionInUse, WattError
from server.config import RETRY_AFTER_S
from server.http import HTTPProblem, optional_int, read_json, session_name, version
from server.pool import Busy, KeyReused, Running, TooMany
from server.programs import BadArgs, narrowed, program_info, request_args
from server.state import AgentTurn, ServerState
from server.stream import (
    KEEPALIVE_S,
    POLL_S,
    ends_turn,
    entry_event,
    sse,
    tail,
    wait_or_timeout,
)
from server.turns import start_turn

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MAX_TASK_CHARS = 100_000
MAX_KEY_CHARS = 200


def state_of(request: Request) -> ServerState:
    state: ServerState = request.app.state.watt
    return state


def request_caps(state: ServerState, body: dict[str, Any]) -> set[str] | None:
    if body.get("caps") is None:
        return None
    try:
        return narrowed(state.runner.parts.granted, body.get("caps"))
    except BadArgs as exc:
        raise HTTPProblem(422, str(exc), "invalid_request") from None
    except PermissionError as exc:
        raise HTTPProblem(403, str(exc), "not_granted") from None


async def session_parts(state: ServerState, running: Running) -> Parts:
    """The claimed session's parts: open already, or opened on a worker thread."""
    parts = state.pool.cached(running)
    if parts is None:
        parts = await run_in_threadpool(state.pool.open, running)
    return parts


async def catalog_now(state: ServerState) -> tuple[Catalog, list[CatalogError]]:
    """The live catalog: a few stat calls on the loop, a reload (parsing) off it."""
    found = state.watch.peek()
    if found is None:
        found = await run_in_threadpool(state.watch.current)
    return found


async def agent_turn(state: ServerState, name: str) -> AgentTurn | None:
    """A named agent's configuration for a turn of session ``name`` (one stat when none)."""
    if not state.agents.exists(name):
        return None
    try:
        return await run_in_threadpool(state.agent_turn, name)
    except ConfigError as exc:
        raise HTTPProblem(422, exc.one_line(), "agent_config") from None
    except WattError as exc:
        raise HTTPProblem(500, exc.one_line(), "agent_error") from None


async def begin_turn(
    state: ServerState, name: str, task: str, *, key: str | None = None,
    max_steps: int | None = None, caps: set[str] | None = None,
) -> tuple[Running, bool]:  # fmt: skip
    """Claim the session and start the turn (with a named agent's configuration when the
    session is one): ``(running, True)``, or ``(earlier, False)`` for an Idempotency-Key seen
    before. HTTPProblem for 409, 422, 429 and 503."""
    if state.model is None:
        raise HTTPProblem(503, state.model_error or "no model configured", "no_model")
    if state.stopping:
        raise HTTPProblem(503, "the server is shutting down", "shutting_down")
    agent = await agent_turn(state, name)
    try:
        running, new = state.pool.reserve(name, task, key)
    except Busy as exc:
        raise HTTPProblem(409, str(exc), "session_busy") from None
    except TooMany as exc:
        headers = {"Retry-After": str(RETRY_AFTER_S)}
        raise HTTPProblem(429, str(exc), "too_many_turns", headers) from None
    except KeyReused as exc:
        raise HTTPProblem(422, str(exc), "idempotency_key_reused") from None
    if not new:
        return running, False
    try:
        if agent is not None:
            running.settings, running.model = agent.settings, agent.model
            running.instructions = agent.config.system
        parts = await session_parts(state, running)
    except SessionInUse as exc:
        raise HTTPProblem(409, exc.one_line(), "session_in_use") from None
    except WattError as exc:
        raise HTTPProblem(500, exc.one_line(), "session_error") from None
    # the session stays open between turns: its catalog follows the directories
    if parts.settings.catalog == state.config.settings.catalog:
        parts.catalog, parts.catalog_errors = await catalog_now(state)
    else:  # a named agent's narrower catalog
        await run_in_threadpool(parts.reload_catalog)
    thread = start_turn(
        state.pool, running, parts, lambda: state.notifier.notify(name),
        max_steps=max_steps, caps=caps,
    )  # fmt: skip
    state.threads = [t for t in state.threads if t.is_alive()] + [thread]
    return running, True


async def turn_entries(state: ServerState, running: Running) -> AsyncGenerator[Entry | None, None]:
    """The journal rows of the claimed turn, live, ending with its turn_end (None: a tick)."""
    while not running.ready.is_set():  # a retry that came while the first claim opened
        await asyncio.sleep(0.01)
    if not running.opened:
        return
    path = state.pool.store.path(running.session)
    async for item in tail(
        path, running.session, running.start_seq, state.notifier,
        until=ends_turn(running.start_seq), finished=running.done.is_set,
        cached=running.rows.get,
    ):  # fmt: skip
        if isinstance(item, Entry) and item.kind == JournalKind.TURN_START.value:
            running.turn, running.run = item.turn, item.run
        if isinstance(item, Entry) and item.kind == JournalKind.TURN_END.value:
            # the stream ends once the session is free: a client's next turn is never a 409
            while not running.done.is_set():
                await wait_or_timeout(state.notifier.waiter(running.session), 0.05)
        yield item


async def turn_stream(state: ServerState, running: Running, owner: bool) -> AsyncIterator[bytes]:
    """The turn as SSE; the owner's disconnect cancels the turn (recorded interrupted)."""
    ended = False
    try:
        async for item in turn_entries(state, running):
            if item is None:
                yield b": keep-alive\n\n"
                continue
            yield entry_event(item)
            ended = ended or item.kind == JournalKind.TURN_END.value
        if not ended:
            message = running.error or "the turn ended without a record"
            yield sse({"kind": "error", "message": message}, event="error")
        ended = True
    finally:
        if owner and not ended:
            running.cancel.set()


def task_text(body: dict[str, Any], key: str) -> str:
    task = body.get(key)
    if not isinstance(task, str) or not task.strip() or len(task) > MAX_TASK_CHARS:
        raise HTTPProblem(
            422, f'"{key}" must be a non-empty string of at most {MAX_TASK_CHARS} characters',
            "invalid_request",
        )  # fmt: skip
    return task.strip()


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_KEY_CHARS:
        raise HTTPProblem(
            422, f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} characters", "invalid_request"
        )
    return key


async def post_turn(request: Request) -> Response:
    state = state_of(request)
    name = session_name(request)
    body = await read_json(request, state.config.max_body)
    task = task_text(body, "task")
    max_steps = optional_int(body, "max_steps", 1, state.config.settings.max_steps)
    caps = request_caps(state, body)
    running, new = await begin_turn(
        state, name, task, key=idempotency_key(request), max_steps=max_steps, caps=caps
    )
    return StreamingResponse(
        turn_stream(state, running, owner=new), media_type="text/event-stream", headers=SSE_HEADERS
    )


def after_seq(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    if not raw.strip().isdigit():
        raise HTTPProblem(
            422, "Last-Event-ID and after must be a seq (an integer >= 0)", "invalid_request"
        )
    return int(raw.strip())


def _need_session(state: ServerState, name: str) -> None:
    if not state.pool.store.exists(name):
        raise HTTPProblem(404, f"no session named {name!r}", "not_found")


async def get_events(request: Request) -> Response:
    state = state_of(request)
    name = session_name(request)
    after = after_seq(request)
    _need_session(state, name)
    return events_response(state, name, after, follow=following(request))


def following(request: Request) -> bool:
    return request.query_params.get("follow", "1").lower() not in ("0", "false", "no")


def _readable(path: Path, name: str) -> bool:
    """The session's journal exists and can be read (not being created right now)."""
    if not path.is_file():
        return False
    try:
        with Reader(path, name):
            return True
    except SessionError:
        return False


def events_response(state: ServerState, name: str, after: int, *, follow: bool) -> Response:
    """The session's rows after ``after``, then live ones while ``follow``; a session not
    created yet (a named agent with no turn) is waited for while following."""
    path = state.pool.store.path(name)

    def cached(seq: int) -> dict[str, Any] | None:
        running = state.pool.running_in(name)
        return running.rows.get(seq) if running is not None else None

    def stopping() -> bool:
        return state.stopping and state.pool.running_in(name) is None

    async def stream() -> AsyncIterator[bytes]:
        quiet_since = time.monotonic()
        while not await run_in_threadpool(_readable, path, name):
            if not follow or stopping():
                return
            await wait_or_timeout(state.notifier.waiter(name), POLL_S)
            if time.monotonic() - quiet_since >= KEEPALIVE_S:
                quiet_since = time.monotonic()
                yield b": keep-alive\n\n"
        async for item in tail(
            path, name, after, state.notifier, finished=lambda: not follow, cached=cached,
            stopping=stopping,
        ):  # fmt: skip
            yield b": keep-alive\n\n" if item is None else entry_event(item)

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


async def list_sessions(request: Request) -> Response:
    state = state_of(request)
    infos = await run_in_threadpool(state.pool.store.list)
    out = []
    for info in infos:
        running = state.pool.running_in(info.name)
        out.append({
            "name": info.name, "created": info.created, "updated": info.updated,
            "turns": info.turns, "steps": info.steps, "error": info.error,
            "running": running.to_dict() if running is not None else None,
        })  # fmt: skip
    return JSONResponse({"sessions": out})


def _session_view(state: ServerState, name: str) -> dict[str, Any]:
    with Reader(state.pool.store.path(name), name) as reader:
        turns = [t.to_dict() for t in reader.turns()]
        last = reader.last_seq()
    running = state.pool.running_in(name)
    return {
        "name": name, "turns": turns, "last_seq": last,
        "running": running.to_dict() if running is not None else None,
    }  # fmt: skip


async def get_session(request: Request) -> Response:
    state = state_of(request)
    name = session_name(request)
    _need_session(state, name)
    try:
        view = await run_in_threadpool(_session_view, state, name)
    except WattError as exc:
        raise HTTPProblem(500, exc.one_line(), "session_error") from None
    return JSONResponse(view)


async def delete_session(request: Request) -> Response:
    state = state_of(request)
    name = session_name(request)
    _need_session(state, name)
    try:
        state.pool.close_session(name)
        await run_in_threadpool(state.pool.store.remove, name)
    except Busy as exc:
        raise HTTPProblem(409, str(exc), "session_busy") from None
    except SessionInUse as exc:
        raise HTTPProblem(409, exc.one_line(), "session_in_use") from None
    except WattError as exc:
        raise HTTPProblem(500, exc.one_line(), "session_error") from None
    return JSONResponse({"deleted": name})


async def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True, "version": version()})


def _named_agents(state: ServerState) -> list[dict[str, Any]]:
    from agent.named import AgentStore

    store = AgentStore(state.config.settings.home)
    out = []
    for name in store.names():
        try:
            out.append(store.status(name).to_dict())
        except WattError as exc:
            out.append({"name": name, "error": exc.one_line()})
    return out


async def agents(request: Request) -> Response:
    """The named agents (``watt agents ps``) and the turns this server runs now."""
    state = state_of(request)
    named = await run_in_threadpool(_named_agents, state)
    return JSONResponse({"agents": named, "running": [r.to_dict() for r in state.pool.running()]})


# ---- catalog programs as endpoints -----------------------------------------------------
def _kv_session(state: ServerState, body: dict[str, Any]) -> str:
    from agent.config import check_session_name
    from rt.errors import ConfigError

    name = body.get("session", state.config.settings.session)
    try:
        return check_session_name(name)
    except ConfigError as exc:
        raise HTTPProblem(422, exc.one_line(), "invalid_session_name") from None


async def _run_in_session(
    state: ServerState, name: str, program: Program, args: list[str], caps: set[str] | None
) -> dict[str, Any]:
    """A kv program runs in its session's parts, claimed like a turn."""
    try:
        running, _new = state.pool.reserve(name, f"program {program.name}")
    except Busy as exc:
        raise HTTPProblem(409, str(exc), "session_busy") from None
    except TooMany as exc:
        raise HTTPProblem(429, str(exc), "too_many_turns", {"Retry-After": "1"}) from None
    try:
        parts = await session_parts(state, running)
    except SessionInUse as exc:
        raise HTTPProblem(409, exc.one_line(), "session_in_use") from None
    except WattError as exc:
        raise HTTPProblem(500, exc.one_line(), "session_error") from None
    try:
        return await run_in_threadpool(
            state.runner.run, parts, program, args, caps if caps is not None else parts.granted
        )
    finally:
        state.pool.release(running)


async def run_program(request: Request) -> Response:
    state = state_of(request)
    name = str(request.path_params["name"])
    catalog, _errors = await catalog_now(state)
    program = catalog.get(name)
    if program is None:
        raise HTTPProblem(404, f"no catalog program named {name!r}", "not_found")
    body = await read_json(request, state.config.max_body)
    try:
        args = request_args(program, body.get("args"))
    except BadArgs as exc:
        raise HTTPProblem(422, str(exc), "invalid_args") from None
    caps = request_caps(state, body)
    if "kv" in program.capabilities:
        result = await _run_in_session(state, _kv_session(state, body), program, args, caps)
    else:
        parts = state.runner.parts
        granted = caps if caps is not None else parts.granted
        result = await run_in_threadpool(state.runner.run, parts, program, args, granted)
    return JSONResponse(result)


async def list_catalog(request: Request) -> Response:
    state = state_of(request)
    catalog, errors = await run_in_threadpool(state.watch.current)
    granted = state.runner.parts.granted | {"sys"}
    programs = [{**program_info(p), "usable": set(p.capabilities) <= granted} for p in catalog]
    return JSONResponse({"programs": programs, "errors": [e.one_line() for e in errors]})


async def list_caps(request: Request) -> Response:
    state = state_of(request)
    parts = state.runner.parts
    caps = [
        {
            "namespace": cap.namespace, "summary": cap.summary,
            "granted": cap.namespace in parts.granted or cap.namespace == "sys",
            "functions": [
                {"name": f.name, "signature": f.signature(), "doc": f.doc} for f in cap.functions()
            ],
            "text": describe(cap),
        }
        for cap in parts.registry
    ]  # fmt: skip
    settings = state.config.settings
    return JSONResponse({
        "caps": caps, "allow_domains": list(settings.allow_domains),
        "fs_root": str(settings.fs_root) if settings.fs_root is not None else None,
    })  # fmt: skip
