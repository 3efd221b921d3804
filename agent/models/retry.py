"""The retry policy of ``OpenAIChatModel``: what is worth another attempt, and how long to wait.

- ``Retryable`` marks a failure worth another attempt (408, 429, 5xx, connect errors, timeouts,
  dropped connections). ``cut`` marks a reply stream that ended before the reply did: it gets
  one more attempt only (``CUT_RETRIES``), as a server that cuts one reply tends to cut the
  next. ``setup`` marks a failure the user fixes in the configuration (the endpoint cannot be
  reached): when the attempts run out it is a ``ModelSetupError`` (exit code 2).
- A 429 whose body says the account's quota is used up (OpenAI's ``insufficient_quota``) is
  not retried: waiting does not refill it (``is_quota_exhausted``).
- Backoff is exponential with jitter (``base * 2**(n-1)``, times a factor in [0.5, 1.5),
  capped at ``BACKOFF_CAP_S``); ``Retry-After`` / ``retry-after-ms`` win when sent (capped).
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import math
import random
import time
from collections.abc import Callable, Mapping
from datetime import timezone
from typing import Any

RETRY_AFTER_CAP_S = 30.0
BACKOFF_CAP_S = 30.0
CUT_RETRIES = 1
QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached", "quota_exceeded"})


class Retryable(Exception):
    """A failure worth another attempt; ``message`` is the user-facing text."""

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        *,
        cut: bool = False,
        setup: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.cut = cut
        self.setup = setup


def backoff(base_s: float, attempt: int, rng: random.Random) -> float:
    """Seconds to wait before attempt ``attempt + 1``."""
    return min(BACKOFF_CAP_S, base_s * 2.0 ** (attempt - 1) * (0.5 + rng.random()))


def is_quota_exhausted(body: bytes) -> bool:
    """Whether an error body says the account's quota or credit is used up (not a rate limit).

    OpenAI sends ``{"error": {"type": "insufficient_quota", "code": "insufficient_quota"}}``;
    other providers reuse the code or say so in the message."""
    text = body.decode("utf-8", "replace")
    try:
        obj: Any = json.loads(text)
    except ValueError:
        return "insufficient_quota" in text
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, dict):
        for key in ("code", "type"):
            if str(err.get(key, "")).lower() in QUOTA_CODES:
                return True
    return "insufficient_quota" in text


def parse_retry_after(
    headers: Mapping[str, str], now: Callable[[], float] = time.time
) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date), capped."""
    seconds: float | None = None
    millis = headers.get("retry-after-ms")
    if millis:
        with contextlib.suppress(ValueError):
            seconds = float(millis) / 1000.0
    value = headers.get("retry-after")
    if seconds is None and value:
        try:
            seconds = float(value.strip())
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value.strip())
            except (TypeError, ValueError, IndexError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            seconds = when.timestamp() - now()
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)
