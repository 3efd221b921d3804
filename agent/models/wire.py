"""The shapes of OpenAI-compatible replies that ``OpenAIChatModel`` reads besides the chat
message itself: error bodies, reported usage, and what tells a llama.cpp server apart."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from agent.models.messages import Usage
from rt.errors import ModelAPIError


def one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def server_message(body: bytes) -> str:
    """The short human message in an error body (OpenAI ``{"error": {"message": ...}}`` et al.)."""
    text = body.decode("utf-8", "replace")
    try:
        obj: Any = json.loads(text)
    except ValueError:
        return one_line(text)
    if isinstance(obj, dict):
        err = obj.get("error", obj.get("detail", obj.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if isinstance(err, str):
            return one_line(err)
        if err is not None:
            return one_line(json.dumps(err))
    return one_line(text)


def parse_usage(raw: object) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    if type(prompt) is not int or type(completion) is not int:
        return None
    return Usage(prompt, completion, estimated=False)


def declares_grammar(openapi: object) -> bool:
    """Whether an OpenAPI document's chat request schema has a ``grammar`` property
    (llama-cpp-python's server)."""
    schemas = openapi.get("components", {}).get("schemas", {}) if isinstance(openapi, dict) else {}
    request = schemas.get("CreateChatCompletionRequest") if isinstance(schemas, dict) else None
    props = request.get("properties") if isinstance(request, dict) else None
    return isinstance(props, dict) and "grammar" in props


def is_llama_server(props: object) -> bool:
    """Whether a ``/props`` answer is llama.cpp's llama-server."""
    return isinstance(props, dict) and isinstance(props.get("default_generation_settings"), dict)


def message_of(
    obj: dict[str, Any], url: str, clean: Callable[[str], str]
) -> tuple[str, str | None]:
    """The text and finish reason of a whole (non-streamed) chat completion; ``clean`` makes a
    server's error text safe to show (the key redacted, one line)."""
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        if obj.get("error"):
            detail = clean(server_message(json.dumps(obj).encode()))
            raise ModelAPIError(f"model at {url} reported an error: {detail}")
        raise ModelAPIError(f"malformed response from {url}: no choices")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if content is None and isinstance(choices[0].get("text"), str):
        content = choices[0]["text"]
    if content is not None and not isinstance(content, str):
        raise ModelAPIError(f"malformed response from {url}: message content is not text")
    finish = choices[0].get("finish_reason")
    return content or "", str(finish) if finish else None
