"""The HTTP API's routes (see README "watt serve"): sessions, turns, events, programs.

Every handler answers JSON or ``text/event-stream``; errors are ``{"error": {"message",
"type"}}`` with 401, 404, 409, 413, 422, 429 (with Retry-After) or 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from agent.app import Parts
from agent.programs.catalog import Catalog
from agent.store.journal import Entry, JournalKind, Reader
from rt.errors import CatalogError, SessionInUse, WattError
from server.config import RETRY_AFTER_S
from server.http import HTTPProblem, optional_int, read_json, session_name, version
from server.pool import Busy, KeyReused, Running, TooMany
from server.programs import BadArgs, narrowed
from server.state import ServerState
from server.stream import ends_turn, entry_event, sse, tail, wait_or_timeout
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


async def begin_turn(
    state: ServerState, name: str, task: str, *, key: str | None = None,
    max_steps: int | None = None, caps: set[str] | None = None,
) -> tuple[Running, bool]:  # fmt: skip
    """Claim the session and start the turn: ``(running, True)``, or ``(earlier, False)`` for
    an Idempotency-Key seen before. HTTPProblem for 409, 422, 429 and 503."""
    if state.model is None:
        raise HTTPProblem(503, state.model_error or "no model configured", "no_model")
    if state.stopping:
        raise HTTPProblem(503, "the server is shutting down", "shutting_down")
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
        parts = await session_parts(state, running)
    except SessionInUse as exc:
        raise HTTPProblem(409, exc.one_line(), "session_in_use") from None
    except WattError as exc:
        raise HTTPProblem(500, exc.one_line(), "session_error") from None
    # the session stays open between turns: its catalog follows the directories
    parts.catalog, parts.catalog_errors = await catalog_now(state)
    thread = start_turn(
        state.pool, running, parts, lambda: state.notifier.notify(name),
        max_steps=max_steps, caps=caps,
    )  # fmt: skip
    state.threads = [t for t in state.threads if t.is_alive()] + [thread]
    return running, True


async def turn_entries(state: ServerState, running: Running) -> AsyncIterator[Entry | None]:
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


async def post_turn(request: Request) -> Response:
    state = state_of(request)
    name = session_name(request)
    body = await read_json(request, state.config.max_body)
    task = body.get("task")
    if not isinstance(task, str) or not task.strip() or len(task) > MAX_TASK_CHARS:
        raise HTTPProblem(
            422, f'"task" must be a non-empty string of at most {MAX_TASK_CHARS} characters',
            "invalid_request",
        )  # fmt: skip
    max_steps = optional_int(body, "max_steps", 1, state.config.settings.max_steps)
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_KEY_CHARS:
        raise HTTPProblem(
            422, f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} characters", "invalid_request"
        )
    caps = request_caps(state, body)
    running, new = await begin_turn(
        state, name, task.strip(), key=key, max_steps=max_steps, caps=caps
    )
    return StreamingResponse(
        turn_stream(state, running, owner=new), media_type="text/event-stream", headers=SSE_HEADERS
    )


def _after(request: Request) -> int:
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
    after = _after(request)
    _need_session(state, name)
    follow = request.query_params.get("follow", "1").lower() not in ("0", "false", "no")
    path = state.pool.store.path(name)

    def cached(seq: int) -> dict[str, Any] | None:
        running = state.pool.running_in(name)
        return running.rows.get(seq) if running is not None else None

    async def stream() -> AsyncIterator[bytes]:
        async for item in tail(
            path, name, after, state.notifier, finished=lambda: not follow, cached=cached,
            stopping=lambda: state.stopping and state.pool.running_in(name) is None,
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
