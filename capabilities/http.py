"""The ``http`` capability: GET and POST to hosts the user granted (SECURITY.md rules 7-10).

- Exact host allow-list (``capabilities.netguard``); the model cannot widen it, and EACCESS
  details say the user must grant with ``--allow-domain``.
- Redirects are followed here, one hop at a time, each hop re-checked; more than
  ``max_redirects`` is EREMOTE.
- The default transport resolves and vets the address at connect time and dials that address
  (``netguard.PinnedTransport``); ``transport=`` replaces the network entirely (tests).
- One deadline covers the whole request (every hop, connect, headers, body):
  ``min(request_timeout_s, ctx.remaining() + RUN_GRACE_S, what is left of
  max_seconds_per_session)``. The grace lets the run's own watchdog act first when the run's
  wall clock is what runs out, so that run ends as a Timeout rather than an EREMOTE that
  raced it; the request's deadline is the backstop.
- The run's cancel event (Ctrl-C, the run's wall-clock limit) ends a request in flight at
  once: the call answers EREMOTE ("cancelled") and the connection is shut down
  (``capabilities.httpfetch``).
- The body is decoded here (gzip/deflate, bounded by ``zlib``'s ``max_length``), so a
  compression bomb stops at ``max_body_bytes`` of DECODED data.
- Error codes: EPARSE bad URL or content type; EACCESS not granted; EREMOTE network error,
  timeout, HTTP status >= 400, too many redirects; ENOMEM any limit reached (response size,
  request body size, calls per run, calls per session, seconds per session).
- Bodies are returned as the raw bytes received (decoded from gzip/deflate, never re-encoded).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from capabilities.base import host
from rt.codes import Err
from rt.host import IDEMPOTENCY_KEY, GuestError, HostFunction, RunContext

if TYPE_CHECKING:
    import ssl

    import httpx

    from capabilities.netguard import Grants, Resolver

USER_AGENT = "watt/0.1"
ACCEPT_ENCODING = "gzip, deflate"
MAX_CONTENT_TYPE_CHARS = 200
MAX_URL_BYTES = 8192  # refused from the length prefix before the url is read
RUN_GRACE_S = 0.25


@dataclass
class _RunState:
    calls: int = 0


# ---- the capability ---------------------------------------------------------------------------


class HttpCapability:
    """Host functions of the ``http`` namespace. One instance per session (it holds the
    session's call counter); per-run counters live in ``ctx.state("http", ...)``."""

    namespace = "http"
    pure = False  # side effects outside the run
    summary = "GET/POST to user-granted hosts only; ENOMEM when a size or call limit is reached"

    def __init__(
        self,
        allow: Iterable[str] = (),
        *,
        transport: httpx.BaseTransport | None = None,
        resolver: Resolver | None = None,
        max_body_bytes: int = 1_000_000,
        request_timeout_s: float = 10.0,
        max_redirects: int = 5,
        max_calls_per_run: int = 20,
        max_calls_per_session: int = 200,
        max_request_bytes: int = 1_000_000,
        max_seconds_per_session: float = 120.0,
    ) -> None:
        allow = list(allow)
        self.grants: Grants | None = None
        if allow:  # validate the user's entries now; httpx loads only when there are some
            from capabilities.netguard import Grants

            self.grants = Grants.parse(allow)
        self._transport = transport
        self._resolver: Resolver | Any = resolver
        self.max_body_bytes = max_body_bytes
        self.request_timeout_s = request_timeout_s
        self.max_redirects = max_redirects
        self.max_calls_per_run = max_calls_per_run
        self.max_calls_per_session = max_calls_per_session
        self.max_request_bytes = max_request_bytes
        self.max_seconds_per_session = max_seconds_per_session
        self.session_calls = 0
        self.session_seconds = 0.0
        self._tls: ssl.SSLContext | None = None

    # ---- host functions ----------------------------------------------------------------------
    def get(self, ctx: RunContext, url_ptr: int) -> tuple[int, int]:
        url = ctx.read_str(url_ptr, MAX_URL_BYTES, "url")
        return ctx.alloc_bytes(self.request(ctx, "GET", url)), 0

    def post(self, ctx: RunContext, url_ptr: int, body_ptr: int, type_ptr: int) -> tuple[int, int]:
        url = ctx.read_str(url_ptr, MAX_URL_BYTES, "url")
        body = ctx.read_bytes(body_ptr, self.max_request_bytes, "request body")
        content_type = ctx.read_str(type_ptr, MAX_CONTENT_TYPE_CHARS * 4, "content type").strip()
        if len(content_type) > MAX_CONTENT_TYPE_CHARS or not all(
            " " <= c <= "~" for c in content_type
        ):
            raise GuestError(
                Err.EPARSE, "content type must be printable ASCII, at most 200 characters"
            )
        return ctx.alloc_bytes(self.request(ctx, "POST", url, body, content_type)), 0

    # ---- the shared path ---------------------------------------------------------------------
    def request(
        self,
        ctx: RunContext,
        method: str,
        url: str,
        body: bytes | None = None,
        content_type: str = "",
    ) -> bytes:
        """Run one request for the guest: quotas, deadline, fetch. Raises ``GuestError``."""
        state: _RunState = ctx.state(self.namespace, _RunState)
        if state.calls >= self.max_calls_per_run:
            raise GuestError(
                Err.ENOMEM, f"http call limit reached ({self.max_calls_per_run} per run)"
            )
        if self.session_calls >= self.max_calls_per_session:
            raise GuestError(
                Err.ENOMEM, f"http call limit reached ({self.max_calls_per_session} per session)"
            )
        time_left = self.max_seconds_per_session - self.session_seconds
        if time_left <= 0:
            raise GuestError(
                Err.ENOMEM,
                f"http time limit reached ({self.max_seconds_per_session:g} s per session)",
            )
        state.calls += 1
        self.session_calls += 1
        from capabilities.netguard import Deadline

        started = time.monotonic()
        deadline = Deadline.after(
            min(self.request_timeout_s, ctx.remaining() + RUN_GRACE_S, time_left), ctx.cancel
        )
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING}
        if content_type:
            headers["Content-Type"] = content_type
        key = ctx.states.get(IDEMPOTENCY_KEY)  # set by the journal for a side effect
        if method == "POST" and isinstance(key, str):
            headers["Idempotency-Key"] = key
        from capabilities import netguard
        from capabilities.httpfetch import Fetcher

        grants = self.grants if self.grants is not None else netguard.Grants.parse(())
        if self._tls is None and self._transport is None:
            import httpx

            self._tls = httpx.create_ssl_context(trust_env=False)
        fetcher = Fetcher(
            grants,
            self._resolver or netguard.system_resolver,
            self._transport,
            self.max_body_bytes,
            self.max_redirects,
            ctx.log,
            self._tls,
        )
        try:
            data = fetcher.fetch(method, url, body, headers, deadline)
        finally:
            self.session_seconds += time.monotonic() - started
        if not _is_utf8(data):
            ctx.log(f"http: {method} body is not UTF-8 ({len(data)} bytes returned as raw bytes)")
        return data

    def functions(self) -> list[HostFunction]:
        fn = partial(host, self.namespace)
        return [
            fn("get", "url -> ptr err", self.get,
               "GET url, returns body; EPARSE bad URL, EACCESS host not granted, EREMOTE network/HTTP error"),
            fn("post", "url body content_type -> ptr err", self.post,
               "POST body with content type to url, returns response body; errors as get"),
        ]  # fmt: skip


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
