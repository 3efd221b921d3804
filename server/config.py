"""What ``watt serve`` was started with: the agent's Settings and the server's own limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.config import Settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
MAX_BODY_BYTES = 1024 * 1024
"""A request body larger than this is refused with 413 before it is read whole."""
MAX_RUNNING = 32
"""Turns running at once across all sessions; one more is refused with 429 and Retry-After."""
IDLE_CLOSE_S = 30.0
"""An open session unused this long is closed, so ``watt ask --session NAME`` can use it."""
MAX_IDEMPOTENCY_KEYS = 4096
"""Idempotency-Key records kept (in memory, for the server's lifetime), oldest dropped first."""
RETRY_AFTER_S = 1


@dataclass(frozen=True)
class ServeConfig:
    settings: Settings
    token: str = field(repr=False)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_body: int = MAX_BODY_BYTES
    max_running: int = MAX_RUNNING
    idle_close_s: float = IDLE_CLOSE_S
    cors_origins: tuple[str, ...] = ()  # no CORS headers at all unless origins are given
    model_name: str = "watt"  # what /v1/models and chat completions call the model
