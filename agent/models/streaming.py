"""One model request whose waiting the caller can abandon at once, and the SSE reader.

httpx bounds each read (``timeout``) but not a whole exchange, and a read blocked in one
thread cannot be woken from another by closing the client. ``Exchange`` therefore sends the
request and reads the body on a daemon thread that hands the response and its chunks over a
small bounded queue; the calling thread waits on that queue in short slices, so it notices
the ``cancel`` event, the call's overall deadline and Ctrl-C (a ``KeyboardInterrupt`` in the
main thread) within about 0.05 s. Giving up shuts the socket down, which ends the reader's
blocking read too: a new connection's socket is known from connect time (httpcore's ``trace``
hook), a reused keep-alive connection's once the response headers arrive (its
``network_stream``). Before that, or with a transport that exposes no socket (a test's
``MockTransport``), the reader ends at its next chunk or its own per-read timeout and throws
what it read away.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx

from agent.models.messages import check_cancel

SLICE_S = 0.05
QUEUE_CHUNKS = 16

_Item = tuple[
    str, Any
]  # ("response", Response) | ("bytes", bytes) | ("end", None) | ("error", exc)


class Exchange:
    """A streaming request run on a daemon thread; use as a context manager.

    ``on_deadline()`` builds the error raised once ``time.monotonic()`` passes ``deadline``;
    a set ``cancel`` raises ``Interrupted``. Leaving the block before the body was read to
    its end abandons the request (the socket is shut down when it can be reached).
    """

    def __init__(
        self,
        client: httpx.Client,
        request: httpx.Request,
        *,
        cancel: threading.Event | None,
        deadline: float,
        on_deadline: Callable[[], Exception],
    ) -> None:
        self._cancel = cancel
        self._deadline = deadline
        self._on_deadline = on_deadline
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=QUEUE_CHUNKS)
        self._stop = threading.Event()
        self._response: httpx.Response | None = None
        self._sockets: list[socket.socket] = []
        self._finished = False
        request.extensions = {**request.extensions, "trace": self._trace}
        self._thread = threading.Thread(
            target=self._run, args=(client, request), name="watt-model-http", daemon=True
        )

    def __enter__(self) -> Exchange:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._finished:
            self.abandon()

    # ---- the reader thread -------------------------------------------------------------
    def _run(self, client: httpx.Client, request: httpx.Request) -> None:
        try:
            response = client.send(request, stream=True)
        except BaseException as exc:  # handed to the caller, who translates it
            self._put(("error", exc))
            return
        try:
            if not self._put(("response", response)):
                return
            for chunk in response.iter_bytes():
                if not self._put(("bytes", chunk)):
                    return
            self._put(("end", None))
        except BaseException as exc:
            self._put(("error", exc))
        finally:
            with contextlib.suppress(Exception):
                response.close()

    def _put(self, item: _Item) -> bool:
        """Hand ``item`` over; False once the caller has given up."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=SLICE_S)
            except queue.Full:
                continue
            return True
        return False

    # ---- the calling thread ------------------------------------------------------------
    def _get(self) -> _Item:
        while True:
            check_cancel(self._cancel)
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise self._on_deadline()
            try:
                kind, value = self._queue.get(timeout=min(SLICE_S, left))
            except queue.Empty:
                continue
            if kind == "error":
                self._finished = True
                raise value
            return kind, value

    def response(self) -> httpx.Response:
        """The response, once its status line and headers have arrived."""
        kind, value = self._get()
        assert kind == "response"
        self._response = value
        return value  # type: ignore[no-any-return]

    def chunks(self) -> Iterator[bytes]:
        """The (content-decoded) body, chunk by chunk."""
        while True:
            kind, value = self._get()
            if kind == "end":
                self._finished = True
                return
            yield value

    def read(self, limit: int, too_large: Callable[[], Exception]) -> bytes:
        """The whole body; ``too_large()`` is raised once it passes ``limit`` bytes."""
        buf = bytearray()
        for chunk in self.chunks():
            buf += chunk
            if len(buf) > limit:
                raise too_large()
        return bytes(buf)

    def lines(self) -> Iterator[str]:
        """The body as text lines (UTF-8; CRLF, LF and CR end a line), for SSE."""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pending = ""
        for chunk in self.chunks():
            pending += decoder.decode(chunk)
            *done, pending = _split_lines(pending)
            yield from done
        pending += decoder.decode(b"", final=True)
        if pending:
            yield from _split_lines(pending + "\n")[:-1]

    def _trace(self, event: str, info: dict[str, object]) -> None:
        """httpcore's trace hook (reader thread): keep the socket of a new connection."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            self._keep(info.get("return_value"))
            if self._stop.is_set():  # given up while it was connecting
                self.abandon()

    def _keep(self, stream: object) -> None:
        sock = getattr(stream, "get_extra_info", lambda _name: None)("socket")
        if isinstance(sock, socket.socket) and sock not in self._sockets:
            self._sockets.append(sock)

    def abandon(self) -> None:
        """Stop waiting: the reader throws away what it still reads; shut the socket down."""
        self._stop.set()
        if self._response is not None:
            self._keep(self._response.extensions.get("network_stream"))
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _split_lines(text: str) -> list[str]:
    """``text`` split at line ends; the last item is what follows the last line end.
    A CR at the very end is held back, as a CRLF may be split across chunks."""
    hold = text.endswith("\r")
    if hold:
        text = text[:-1]
    parts = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if hold:
        parts[-1] += "\r"
    return parts


def iter_sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The ``data`` payloads of a server-sent-event stream, one per event.

    Follows the SSE rules (fields, comments, multi-line data joined by newlines, blank line
    ends an event) and tolerates servers that omit the blank line between ``data:`` lines
    when each line is a complete JSON value or ``[DONE]``.
    """
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field != "data":
            continue
        value = value[1:] if value.startswith(" ") else value
        if data and _is_complete("\n".join(data)):
            yield "\n".join(data)
            data = []
        data.append(value)
    if data:
        yield "\n".join(data)


def _is_complete(payload: str) -> bool:
    if payload.strip() == "[DONE]":
        return True
    try:
        json.loads(payload)
    except ValueError:
        return False
    return True
