"""The ``http`` capability: GET and POST to hosts the user granted (SECURITY.md rules 7-10).

- Exact host allow-list (``capabilities.netguard``); the model cannot widen it, and EACCESS
  details say the user must grant with ``--allow-domain``.
- Redirects are followed here, one hop at a time, each hop re-checked; more than
  ``max_redirects`` is EREMOTE.
- The default transport resolves and vets the address at connect time and dials that address
  (``netguard.PinnedTransport``); ``transport=`` replaces the network entirely (tests).
- One deadline covers the whole request (every hop, connect, headers, body):
  ``min(request_timeout_s, ctx.remaining())``.
- The body is decoded here (gzip/deflate, bounded by ``zlib``'s ``max_length``), so a
  compression bomb stops at ``max_body_bytes`` of DECODED data.
- Error codes: EPARSE bad URL or content type; EACCESS not granted; EREMOTE network error,
  timeout, HTTP status >= 400, too many redirects; ENOMEM any limit reached (response size,
  request body size, calls per run, calls per session).
- Bodies are returned as the raw bytes received (decoded from gzip/deflate, never re-encoded).
"""

from __future__ import annotations

import ssl
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx

from capabilities.base import with_names
from capabilities.netguard import (
    Deadline,
    Grants,
    PinnedTransport,
    Resolver,
    check_url,
    system_resolver,
)
from rt.codes import Err
from rt.host import GuestError, HostFunction, RunContext

USER_AGENT = "watt/0.1"
ACCEPT_ENCODING = "gzip, deflate"
ERROR_SNIPPET_BYTES = 300
MAX_CONTENT_TYPE_CHARS = 200
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass
class _RunState:
    calls: int = 0


# ---- bounded decoding -------------------------------------------------------------------------
class _Inflater:
    """Decode one Content-Encoding, never producing more output than asked for."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._z: zlib._Decompress | None = None
        self._wbits = 0
        self._head = b""  # deflate: bytes held until the zlib-or-raw sniff can be made
        if encoding in ("gzip", "x-gzip"):
            self._wbits = 16 + zlib.MAX_WBITS
            self._z = zlib.decompressobj(self._wbits)

    def feed(self, data: bytes, max_out: int) -> bytes:
        """Up to ``max_out`` (>= 1) decoded bytes of ``data``; input past that is dropped,
        because the caller stops reading once the cap is reached."""
        if self.encoding == "identity":
            return data[:max_out]
        if self._z is None:  # deflate: zlib-wrapped per the RFC, raw from some servers
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return b""
            zlib_header = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._wbits = zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS
            self._z = zlib.decompressobj(self._wbits)
        out = bytearray()
        try:
            while data and len(out) < max_out:
                out += self._z.decompress(data, max_out - len(out))
                if not self._z.eof:
                    data = self._z.unconsumed_tail
                    continue
                data = self._z.unused_data
                if not (data and self._wbits > 16):
                    break  # trailing bytes after a deflate stream are ignored
                self._z = zlib.decompressobj(self._wbits)  # next gzip member
        except zlib.error as exc:
            raise GuestError(Err.EREMOTE, f"corrupt {self.encoding} body: {exc}") from exc
        return bytes(out)


def _encoding_of(response: httpx.Response) -> str:
    codings = [c.strip().lower() for c in response.headers.get("content-encoding", "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return "identity"
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return codings[0]
    raise GuestError(Err.EREMOTE, f"unsupported Content-Encoding {', '.join(codings)!r}")


def read_body(
    chunks: Iterable[bytes], encoding: str, cap: int, deadline: Deadline, *, truncate: bool = False
) -> bytes:
    """The decoded body, at most ``cap`` bytes: ENOMEM past it (or cut, with ``truncate``);
    EREMOTE once the deadline passes between chunks."""
    inflater = _Inflater(encoding)
    out = bytearray()
    for raw in chunks:
        if deadline.expired():
            raise GuestError(Err.EREMOTE, "whole-request deadline passed while reading the body")
        out += inflater.feed(raw, cap + 1 - len(out))
        if len(out) > cap:
            if truncate:
                return bytes(out[:cap])
            raise GuestError(Err.ENOMEM, f"response body exceeds the {cap}-byte cap (after decoding)")
    return bytes(out)


# ---- one request, all hops --------------------------------------------------------------------
def _origin(url: httpx.URL) -> str:
    """Scheme, host and port only: query strings may carry keys and stay out of debug lines."""
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{url.raw_host.decode('ascii', 'replace')}{port}"


def _error_detail(response: httpx.Response, deadline: Deadline) -> str:
    detail = f"HTTP {response.status_code} {response.reason_phrase} from {_origin(response.url)}"
    try:
        head = read_body(
            response.iter_raw(), _encoding_of(response), ERROR_SNIPPET_BYTES, deadline, truncate=True
        )
    except (GuestError, httpx.HTTPError, httpx.StreamError):
        return detail
    snippet = " ".join(head.decode("utf-8", "replace").split())
    return f"{detail}; body starts: {snippet}" if snippet else detail


@dataclass(frozen=True)
class Fetcher:
    """The request loop, separate from guest memory so it is testable on its own."""

    grants: Grants
    resolver: Resolver
    transport: httpx.BaseTransport | None
    max_body_bytes: int
    max_redirects: int
    log: Callable[[str], None]
    tls: ssl.SSLContext | None = None  # shared across calls: building one costs ~20 ms

    def fetch(self, method: str, url_text: str, body: bytes | None, headers: dict[str, str],
              deadline: Deadline) -> bytes:
        url = check_url(url_text, self.grants)
        own_transport = self.transport is None
        transport = self.transport or PinnedTransport(self.grants, self.resolver, deadline, self.tls)
        client = httpx.Client(transport=transport, trust_env=False, follow_redirects=False,
                              timeout=httpx.Timeout(max(deadline.remaining(), 0.001)))
        try:
            return self._hops(client, client.build_request(method, url, content=body, headers=headers),
                              deadline)
        except httpx.TimeoutException as exc:
            raise GuestError(
                Err.EREMOTE,
                f"timed out: the whole-request deadline of {deadline.seconds:.1f} s passed"
                f" ({type(exc).__name__}) for {_origin(url)}",
            ) from exc
        except (httpx.HTTPError, httpx.StreamError, httpx.InvalidURL) as exc:
            raise GuestError(Err.EREMOTE, f"{type(exc).__name__}: {exc} for {_origin(url)}") from exc
        finally:
            if own_transport:
                client.close()

    def _hops(self, client: httpx.Client, request: httpx.Request, deadline: Deadline) -> bytes:
        for _hop in range(self.max_redirects + 1):
            if deadline.expired():
                raise GuestError(Err.EREMOTE, f"whole-request deadline passed before {_origin(request.url)}")
            response = client.send(request, stream=True)
            try:
                if response.status_code >= 400:
                    raise GuestError(Err.EREMOTE, _error_detail(response, deadline))
                if response.next_request is None:
                    return self._body(response, deadline)
                location = response.headers.get("location", "")
                if "\\" in location:
                    raise GuestError(Err.EACCESS, "redirect Location contains a backslash (refused)")
                request = response.next_request
                check_url(str(request.url), self.grants, what="redirect target")
                self.log(f"http: {response.status_code} redirect to {_origin(request.url)}")
            finally:
                response.close()
        raise GuestError(Err.EREMOTE, f"more than {self.max_redirects} redirects")

    def _body(self, response: httpx.Response, deadline: Deadline) -> bytes:
        encoding = _encoding_of(response)
        declared = response.headers.get("content-length", "")
        if encoding == "identity" and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise GuestError(Err.ENOMEM, f"response of {declared} bytes exceeds the {self.max_body_bytes}-byte cap")
        return read_body(response.iter_raw(), encoding, self.max_body_bytes, deadline)


# ---- the capability ---------------------------------------------------------------------------
SHAPES = {
    "get": "url -> ptr err",
    "post": "url body content_type -> ptr err",
}


class HttpCapability:
    """Host functions of the ``http`` namespace. One instance per session (it holds the
    session's call counter); per-run counters live in ``ctx.state("http", ...)``."""

    namespace = "http"
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
    ) -> None:
        self.grants = Grants.parse(allow)
        self._transport = transport
        self._resolver = resolver or system_resolver
        self.max_body_bytes = max_body_bytes
        self.request_timeout_s = request_timeout_s
        self.max_redirects = max_redirects
        self.max_calls_per_run = max_calls_per_run
        self.max_calls_per_session = max_calls_per_session
        self.max_request_bytes = max_request_bytes
        self.session_calls = 0
        self._tls: ssl.SSLContext | None = None

    # ---- host functions ----------------------------------------------------------------------
    def get(self, ctx: RunContext, url_ptr: int) -> tuple[int, int]:
        url = ctx.read_str(url_ptr)
        return ctx.alloc_bytes(self.request(ctx, "GET", url)), 0

    def post(self, ctx: RunContext, url_ptr: int, body_ptr: int, type_ptr: int) -> tuple[int, int]:
        url = ctx.read_str(url_ptr)
        body = ctx.read_bytes(body_ptr)
        content_type = ctx.read_str(type_ptr).strip()
        if len(body) > self.max_request_bytes:
            raise GuestError(Err.ENOMEM, f"request body of {len(body)} bytes exceeds the {self.max_request_bytes}-byte cap")
        if len(content_type) > MAX_CONTENT_TYPE_CHARS or not all(" " <= c <= "~" for c in content_type):
            raise GuestError(Err.EPARSE, "content type must be printable ASCII, at most 200 characters")
        return ctx.alloc_bytes(self.request(ctx, "POST", url, body, content_type)), 0

    # ---- the shared path ---------------------------------------------------------------------
    def request(self, ctx: RunContext, method: str, url: str, body: bytes | None = None,
                content_type: str = "") -> bytes:
        """Run one request for the guest: quotas, deadline, fetch. Raises ``GuestError``."""
        state: _RunState = ctx.state(self.namespace, _RunState)
        if state.calls >= self.max_calls_per_run:
            raise GuestError(Err.ENOMEM, f"http call limit reached ({self.max_calls_per_run} per run)")
        if self.session_calls >= self.max_calls_per_session:
            raise GuestError(Err.ENOMEM, f"http call limit reached ({self.max_calls_per_session} per session)")
        state.calls += 1
        self.session_calls += 1
        deadline = Deadline.after(min(self.request_timeout_s, ctx.remaining()), ctx.cancel)
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING}
        if content_type:
            headers["Content-Type"] = content_type
        if self._tls is None and self._transport is None:
            self._tls = httpx.create_ssl_context(trust_env=False)
        fetcher = Fetcher(self.grants, self._resolver, self._transport, self.max_body_bytes,
                          self.max_redirects, ctx.log, self._tls)
        data = fetcher.fetch(method, url, body, headers, deadline)
        if not _is_utf8(data):
            ctx.log(f"http: {method} body is not UTF-8 ({len(data)} bytes returned as raw bytes)")
        return data

    def functions(self) -> list[HostFunction]:
        return with_names(self._functions(), SHAPES)

    def _functions(self) -> list[HostFunction]:
        return [
            HostFunction("http", "get", ("i32",), ("i32", "i32"), self.get,
                         "GET url, returns body; EPARSE bad URL, EACCESS host not granted, EREMOTE network/HTTP error"),
            HostFunction("http", "post", ("i32", "i32", "i32"), ("i32", "i32"), self.post,
                         "POST body with content type to url, returns response body; errors as get"),
        ]


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True

