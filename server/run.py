"""Run the server on uvicorn: bind first (``--port 0`` picks a free port, announced before
the first request can arrive), then serve until Ctrl-C or SIGTERM. Either signal cancels
the running turns, which the journal records as interrupted, ends the event tails, and
stops the server; a second Ctrl-C forces the exit."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn

from agent.models.messages import ChatModel
from server.app import create_app
from server.config import ServeConfig
from server.state import ServerState

GRACEFUL_S = 5


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: ServerState) -> None:
        super().__init__(config)
        self._state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not in the handler itself: it runs on the main thread, which may hold the pool's
        # lock at that moment (a deadlock); a thread takes the locks when they are free.
        threading.Thread(target=self._state.begin_shutdown, name="watt-shutdown").start()
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Like uvicorn's, but the signal is not raised again afterwards: a clean stop."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {s: signal.signal(s, self.handle_exit) for s in signals}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it a keep-alive response's body waited 40 ms for the headers' delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def serve(
    config: ServeConfig, *, model_spec: str | None = None, model: ChatModel | None = None,
    announce: Callable[[str, int, ServerState], None] = lambda _h, _p, _s: None,
) -> None:  # fmt: skip
    """Serve until a signal; ``announce(host, port, state)`` runs once the port is bound."""
    state = ServerState(config, model=model, model_spec=model_spec)
    sock = bind(config.host, config.port)
    app = create_app(state)
    uv = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_S, server_header=False,
    )  # fmt: skip
    server = _Server(uv, state)
    try:
        announce(config.host, sock.getsockname()[1], state)
        server.run(sockets=[sock])
    finally:
        sock.close()
        state.close()
