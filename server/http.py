"""Request and response helpers shared by the routes: JSON errors, bounded bodies, names."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from agent.config import check_session_name
from rt.errors import ConfigError


class HTTPProblem(Exception):
    """An error answer: ``{"error": {"message", "type"}}`` with ``status``."""

    def __init__(
        self, status: int, message: str, kind: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.headers = status, message, kind, headers

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, self.kind, self.headers)


def error_response(
    status: int, message: str, kind: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind}}, status, headers=headers)


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object, refused with 413 past ``limit`` bytes (from the
    Content-Length, else as it arrives: nothing past the limit is kept)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPProblem(413, f"the body is larger than {limit} bytes", "body_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPProblem(413, f"the body is larger than {limit} bytes", "body_too_large")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise HTTPProblem(400, "the body is not valid JSON", "bad_json") from None
    if not isinstance(value, dict):
        raise HTTPProblem(422, "the body must be a JSON object", "invalid_request")
    return value


def session_name(request: Request) -> str:
    return session_name_of(str(request.path_params["name"]))


def session_name_of(name: str) -> str:
    try:
        return check_session_name(name)
    except ConfigError as exc:
        raise HTTPProblem(422, exc.one_line(), "invalid_session_name") from None


def optional_int(body: dict[str, Any], key: str, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise HTTPProblem(
            422, f'"{key}" must be an integer from {low} to {high}', "invalid_request"
        )
    return value


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("watt-agent")
    except PackageNotFoundError:
        return "unknown"
