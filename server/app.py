"""The ASGI app: routes, the bearer token on ``/v1``, optional CORS, the page at ``/``."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from server import agents, openai, routes
from server.http import HTTPProblem, error_response
from server.security import bearer_matches
from server.state import ServerState

PAGE_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
REAP_EVERY_S = 5.0


class BearerAuth:
    """Every ``/v1`` request needs ``Authorization: Bearer TOKEN`` (else 401, JSON)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self._token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith("/v1"):
            if scope.get("method") != "OPTIONS":
                headers = dict(scope.get("headers") or [])
                value = headers.get(b"authorization", b"").decode("latin-1")
                if not bearer_matches(value, self._token):
                    response = error_response(
                        401, "missing or wrong bearer token", "unauthorized",
                        {"WWW-Authenticate": 'Bearer realm="watt"'},
                    )  # fmt: skip
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _page_file(name: str) -> bytes:
    return importlib.resources.files("server").joinpath("static").joinpath(name).read_bytes()


async def page(request: Request) -> Response:
    name = str(request.path_params.get("file", "index.html"))
    if name not in PAGE_FILES:
        return error_response(404, "not found", "not_found")
    return Response(_page_file(name), media_type=PAGE_FILES[name], headers=PAGE_HEADERS)


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPProblem)
    return exc.response()


async def _internal(request: Request, exc: Exception) -> Response:
    """A bug answers 500 with a JSON error and no detail (the traceback stays in the log)."""
    return error_response(500, "internal server error", "internal_error")


async def _not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    return error_response(
        status,
        "not found" if status == 404 else "method not allowed",
        "not_found" if status == 404 else "method_not_allowed",
    )


def _routes() -> list[Route]:
    return [
        Route("/", page, methods=["GET"]),
        Route("/static/{file}", page, methods=["GET"]),
        Route("/healthz", routes.healthz, methods=["GET"]),
        Route("/v1/sessions", routes.list_sessions, methods=["GET"]),
        Route("/v1/sessions/{name}", routes.get_session, methods=["GET"]),
        Route("/v1/sessions/{name}", routes.delete_session, methods=["DELETE"]),
        Route("/v1/sessions/{name}/turns", routes.post_turn, methods=["POST"]),
        Route("/v1/sessions/{name}/events", routes.get_events, methods=["GET"]),
        Route("/v1/programs/{name}", routes.run_program, methods=["POST"]),
        Route("/v1/catalog", routes.list_catalog, methods=["GET"]),
        Route("/v1/caps", routes.list_caps, methods=["GET"]),
        Route("/v1/agents", routes.agents, methods=["GET"]),
        Route("/v1/agents", agents.spawn_agent, methods=["POST"]),
        Route("/v1/agents/{name}", agents.get_agent, methods=["GET"]),
        Route("/v1/agents/{name}", agents.remove_agent, methods=["DELETE"]),
        Route("/v1/agents/{name}/messages", agents.post_message, methods=["POST"]),
        Route("/v1/agents/{name}/events", agents.agent_events, methods=["GET"]),
        Route("/v1/agents/{name}/run", agents.kill_agent, methods=["DELETE"]),
        Route("/v1/agents/{name}/kill", agents.kill_agent, methods=["POST"]),
        Route("/v1/chat/completions", openai.chat_completions, methods=["POST"]),
        Route("/v1/models", openai.list_models, methods=["GET"]),
    ]


def create_app(state: ServerState) -> Starlette:
    """The app over ``state``; its lifespan closes idle sessions and, at the end, cancels
    the running turns and waits for them to be recorded."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def reap() -> None:
            while True:
                await asyncio.sleep(REAP_EVERY_S)
                await asyncio.to_thread(state.pool.close_idle)

        task = asyncio.create_task(reap())
        try:
            yield
        finally:
            task.cancel()
            await asyncio.to_thread(state.close)

    middleware = []
    if state.config.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(state.config.cors_origins),
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    "Idempotency-Key",
                    "Last-Event-ID",
                    "X-Watt-Session",
                ],
            )  # fmt: skip
        )
    middleware.append(Middleware(BearerAuth, token=state.config.token))
    handlers: dict[Any, Any] = {
        HTTPProblem: _problem, 404: _not_found, 405: _not_found, Exception: _internal,
    }  # fmt: skip
    app = Starlette(
        routes=_routes(), middleware=middleware, exception_handlers=handlers, lifespan=lifespan
    )
    app.state.watt = state
    return app
