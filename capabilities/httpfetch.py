"""The network half of the ``http`` capability: hops, bounded decoding, the whole-request deadline.

Imported on the first request only, so commands that never touch the network start without
httpx (see ``capabilities.http``).

Cancel acts on what is in flight (SECURITY.md rule 18): when the deadline carries a cancel
event (the run's: set on Ctrl-C and at the run's wall-clock limit), the request runs on a
helper thread and the host call waits for it in short slices; once the event is set the call
gives up at once (EREMOTE, "cancelled") and shuts down the socket of every connection the
request opened (httpcore reports each through the request's ``trace`` extension), which ends
the helper's blocking read too; its late result is thrown away.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import httpx

from capabilities.netguard import Deadline, Grants, PinnedTransport, Resolver, check_url
from rt.codes import Err
from rt.host import GuestError

ERROR_SNIPPET_BYTES = 300
CANCEL_POLL_S = 0.02


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
    header: str = response.headers.get("content-encoding", "")
    codings = [c.strip().lower() for c in header.split(",")]
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
            raise GuestError(
                Err.ENOMEM, f"response body exceeds the {cap}-byte cap (after decoding)"
            )
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
            response.iter_raw(),
            _encoding_of(response),
            ERROR_SNIPPET_BYTES,
            deadline,
            truncate=True,
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

    def fetch(
        self,
        method: str,
        url_text: str,
        body: bytes | None,
        headers: dict[str, str],
        deadline: Deadline,
    ) -> bytes:
        url = check_url(url_text, self.grants)
        if deadline.cancel is None:
            return self._fetch(method, url, body, headers, deadline, _Sockets())
        return self._fetch_cancellable(method, url, body, headers, deadline, deadline.cancel)

    def _fetch_cancellable(
        self,
        method: str,
        url: httpx.URL,
        body: bytes | None,
        headers: dict[str, str],
        deadline: Deadline,
        cancel: threading.Event,
    ) -> bytes:
        """``_fetch`` on a helper thread, abandoned the moment ``cancel`` is set."""
        sockets = _Sockets()
        outcome: list[bytes | BaseException] = []
        done = threading.Event()

        def work() -> None:
            try:
                outcome.append(self._fetch(method, url, body, headers, deadline, sockets))
            except BaseException as exc:  # handed back to the waiting host call
                outcome.append(exc)
            finally:
                done.set()

        threading.Thread(target=work, name="watt-http", daemon=True).start()
        while not done.wait(CANCEL_POLL_S):
            if cancel.is_set():
                sockets.shut_down()
                raise GuestError(
                    Err.EREMOTE, f"cancelled while waiting for {_origin(url)} (the run was stopped)"
                )
        result = outcome[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _fetch(
        self,
        method: str,
        url: httpx.URL,
        body: bytes | None,
        headers: dict[str, str],
        deadline: Deadline,
        sockets: _Sockets,
    ) -> bytes:
        own_transport = self.transport is None
        transport = self.transport or PinnedTransport(
            self.grants, self.resolver, deadline, self.tls
        )
        client = httpx.Client(
            transport=transport,
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(max(deadline.remaining(), 0.001)),
        )
        try:
            request = client.build_request(
                method, url, content=body, headers=headers, extensions={"trace": sockets.trace}
            )
            return self._hops(client, request, deadline, sockets)
        except httpx.TimeoutException as exc:
            raise GuestError(
                Err.EREMOTE,
                f"timed out: the whole-request deadline of {deadline.seconds:.1f} s passed"
                f" ({type(exc).__name__}) for {_origin(url)}",
            ) from exc
        except (httpx.HTTPError, httpx.StreamError, httpx.InvalidURL) as exc:
            raise GuestError(
                Err.EREMOTE, f"{type(exc).__name__}: {exc} for {_origin(url)}"
            ) from exc
        finally:
            if own_transport:
                client.close()

    def _hops(
        self, client: httpx.Client, request: httpx.Request, deadline: Deadline, sockets: _Sockets
    ) -> bytes:
        for _hop in range(self.max_redirects + 1):
            if deadline.expired():
                raise GuestError(
                    Err.EREMOTE, f"whole-request deadline passed before {_origin(request.url)}"
                )
            response = client.send(request, stream=True)
            try:
                if response.status_code >= 400:
                    raise GuestError(Err.EREMOTE, _error_detail(response, deadline))
                if response.next_request is None:
                    return self._body(response, deadline)
                location = response.headers.get("location", "")
                if "\\" in location:
                    raise GuestError(
                        Err.EACCESS, "redirect Location contains a backslash (refused)"
                    )
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
            raise GuestError(
                Err.ENOMEM,
                f"response of {declared} bytes exceeds the {self.max_body_bytes}-byte cap",
            )
        if response.is_stream_consumed:  # built with its body in memory (httpx.MockTransport):
            # httpx read and decoded it then; the raw stream is gone, the bytes are there
            return read_body([response.content], "identity", self.max_body_bytes, deadline)
        return read_body(response.iter_raw(), encoding, self.max_body_bytes, deadline)


@dataclass
class _Sockets:
    """The sockets a request connected, so a cancel can shut them down from another thread
    (closing a socket does not wake a read blocked on it; ``shutdown`` does)."""

    found: list[socket.socket] = field(default_factory=list)
    done: bool = False

    def trace(self, event: str, info: dict[str, object]) -> None:
        """httpcore's trace hook: keeps the socket of each new TCP (or TLS) connection."""
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        stream = info.get("return_value")
        sock = getattr(stream, "get_extra_info", lambda _name: None)("socket")
        if isinstance(sock, socket.socket):
            self.found.append(sock)
            if self.done:  # cancelled while it was connecting
                self.shut_down()

    def shut_down(self) -> None:
        self.done = True
        for sock in self.found:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
