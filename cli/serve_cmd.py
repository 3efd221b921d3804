"""`watt serve`: check the serve extra, load the token, announce, run ``server.run``."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from cli.common import EXIT_OK, EXIT_USAGE, fail, say

if TYPE_CHECKING:
    from agent.config import Settings
    from server.state import ServerState

INSTALL_HINT = "watt serve needs the serve extra: pip install 'watt-agent[serve]'"


def run_serve(
    settings: Settings, *, host: str, port: int, model_spec: str | None, max_body: int | None,
    max_running: int | None, cors_origins: list[str], idle_close: float | None,
) -> int:  # fmt: skip
    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise fail(f"{INSTALL_HINT} ({', '.join(missing)} is missing)", EXIT_USAGE)
    from server.config import IDLE_CLOSE_S, MAX_BODY_BYTES, MAX_RUNNING, ServeConfig
    from server.run import serve
    from server.security import check_bind, load_token

    token = load_token(settings.home)
    check_bind(host, token)
    config = ServeConfig(
        settings, token.value, host=host, port=port,
        max_body=max_body or MAX_BODY_BYTES, max_running=max_running or MAX_RUNNING,
        idle_close_s=idle_close if idle_close is not None else IDLE_CLOSE_S,
        cors_origins=tuple(cors_origins),
    )  # fmt: skip

    def announce(bound_host: str, bound_port: int, state: ServerState) -> None:
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        url = f"http://{shown}:{bound_port}/"
        say(f"watt serve: listening on {url} (port {bound_port})", err=True)
        if token.created:
            say(
                f"watt serve: new token (shown once, saved in {token.path}): {token.value}",
                err=True,
            )
            say(f"watt serve: open {url}#token={token.value}", err=True)
        elif token.explicit:
            say("watt serve: token from WATT_SERVE_TOKEN", err=True)
        else:
            say(f"watt serve: token in {token.path}", err=True)
        if state.model_error:
            say(f"watt serve: note: {state.model_error}; turns answer 503", err=True)

    serve(config, model_spec=model_spec, announce=announce)
    say("watt serve: stopped", err=True)
    return EXIT_OK
