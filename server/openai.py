"""``POST /v1/chat/completions``: Watt as an OpenAI-compatible model, streaming and not.

The last user message is the task (a string, or a list of ``{"type": "text"}`` parts); the
turn runs in the session named by the ``X-Watt-Session`` header (default ``chat``), whose
history the model sees, so earlier messages of the request are not replayed. The answer is
the assistant message. With ``"stream": true`` the steps stream as they run, as
``delta.reasoning_content`` (what chat front ends show as the model's thinking), then the
answer as ``delta.content``; ``stream_options.include_usage`` adds a usage chunk; the stream
ends with ``data: [DONE]``. A turn that gave no answer is a 502 error object (not streaming)
or a final content line ``watt: <reason>``. A client that leaves cancels the turn.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from agent.store.journal import Entry, JournalKind
from server.http import HTTPProblem, read_json, session_name_of
from server.pool import Running
from server.routes import SSE_HEADERS, begin_turn, state_of, turn_entries

SESSION_HEADER = "x-watt-session"
DEFAULT_SESSION = "chat"


def last_user_text(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise HTTPProblem(422, '"messages" must be a non-empty list', "invalid_request")
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                text = content
            elif isinstance(content, list):
                text = "\n".join(
                    str(p.get("text", "")) for p in content
                    if isinstance(p, dict) and p.get("type") == "text"
                )  # fmt: skip
            else:
                text = ""
            if text.strip():
                return text.strip()
            break
    raise HTTPProblem(422, "no user message with text content", "invalid_request")


def step_line(entry: Entry) -> str | None:
    """One line of progress for an event, or None."""
    d = entry.data
    if entry.kind == "thinking" and d.get("text"):
        return f"{d['text']}\n"
    if entry.kind == "tool_start":
        what = d.get("name") or "wat"
        args = ", ".join(json.dumps(a) for a in d.get("args") or [])
        return f"[step {entry.step}] {what}({args})\n"
    if entry.kind == "tool_result":
        if d.get("ok"):
            return f"[step {entry.step}] ok: {' | '.join(d.get('results') or [])[:500]}\n"
        why = d.get("failure") or d.get("error") or d.get("status_name") or "failed"
        return f"[step {entry.step}] FAILED: {why}\n"
    if entry.kind in ("retry", "error"):
        return f"[step {entry.step}] {d.get('reason') or d.get('message') or entry.kind}\n"
    if entry.kind == "guard":
        return f"[guard] blocked: {d.get('category')}\n"
    return None


class Completion:
    """Builds the response objects of one request."""

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-{int(time.time() * 1000)}"
        self.model = model
        self.created = int(time.time())

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        data = {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }  # fmt: skip
        return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()

    def usage_chunk(self, usage: dict[str, Any]) -> bytes:
        data = {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "choices": [], "usage": usage,
        }  # fmt: skip
        return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()

    def whole(self, answer: str, usage: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self.id, "object": "chat.completion", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                         "finish_reason": "stop"}],
            "usage": usage,
        }  # fmt: skip


def usage_of(end: Entry | None) -> dict[str, int]:
    u = (end.data.get("usage") if end is not None else None) or {}
    prompt, completion = int(u.get("input", 0)), int(u.get("output", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}  # fmt: skip


def _outcome(end: Entry | None, running: Running) -> tuple[str | None, str]:
    """(answer, why not) from the turn_end row."""
    if end is None:
        return None, running.error or "the turn ended without a record"
    answer = end.data.get("answer")
    if isinstance(answer, str):
        return answer, ""
    return None, str(end.data.get("reason") or end.data.get("state") or "no answer")


async def _stream(
    completion: Completion, state: Any, running: Running, include_usage: bool
) -> AsyncIterator[bytes]:
    end: Entry | None = None
    finished = False
    try:
        yield completion.chunk({"role": "assistant", "content": ""})
        async for item in turn_entries(state, running):
            if item is None:
                yield b": keep-alive\n\n"
            elif item.kind == JournalKind.TURN_END.value:
                end = item
            elif (line := step_line(item)) is not None:
                yield completion.chunk({"reasoning_content": line})
        answer, why = _outcome(end, running)
        yield completion.chunk({"content": answer if answer is not None else f"watt: {why}"})
        yield completion.chunk({}, "stop")
        if include_usage:
            yield completion.usage_chunk(usage_of(end))
        yield b"data: [DONE]\n\n"
        finished = True
    finally:
        if not finished:
            running.cancel.set()


async def _watch_disconnect(request: Request, running: Running) -> None:
    while not running.done.is_set():
        message = await request.receive()
        if message["type"] == "http.disconnect":
            running.cancel.set()
            return


async def _whole(
    request: Request, state: Any, running: Running, completion: Completion
) -> Response:
    watcher = asyncio.create_task(_watch_disconnect(request, running))
    end: Entry | None = None
    try:
        async for item in turn_entries(state, running):
            if item is not None and item.kind == JournalKind.TURN_END.value:
                end = item
    finally:
        watcher.cancel()
    answer, why = _outcome(end, running)
    if answer is None:
        raise HTTPProblem(502, f"the turn gave no answer: {why}", "turn_failed")
    return JSONResponse(completion.whole(answer, usage_of(end)))


async def chat_completions(request: Request) -> Response:
    state = state_of(request)
    body = await read_json(request, state.config.max_body)
    task = last_user_text(body)
    name = session_name_of(request.headers.get(SESSION_HEADER) or DEFAULT_SESSION)
    stream = body.get("stream") is True
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    running, _new = await begin_turn(state, name, task)
    model = body.get("model") if isinstance(body.get("model"), str) else state.config.model_name
    completion = Completion(model or state.config.model_name)
    if stream:
        return StreamingResponse(
            _stream(completion, state, running, include_usage),
            media_type="text/event-stream", headers=SSE_HEADERS,
        )  # fmt: skip
    return await _whole(request, state, running, completion)


async def list_models(request: Request) -> Response:
    model = state_of(request).config.model_name
    return JSONResponse(
        {
            "object": "list",
            "data": [{"id": model, "object": "model", "owned_by": "watt", "created": 0}],
        }
    )
