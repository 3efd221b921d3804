"""Catalog programs as endpoints, and what the server offers: ``/v1/programs/{name}``,
``/v1/catalog``, ``/v1/caps``. The routes follow the catalog directories live
(``server.programs.CatalogWatch``)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agent.programs.catalog import Program
from capabilities.base import describe
from rt.errors import SessionInUse, WattError
from server.http import HTTPProblem, read_json
from server.pool import Busy, TooMany
from server.programs import BadArgs, program_info, request_args
from server.routes import catalog_now, request_caps, session_parts, state_of
from server.state import ServerState


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
