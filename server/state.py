"""Everything one server holds, built once from its ``ServeConfig``; no Starlette here."""

from __future__ import annotations

import threading

from agent.models.backends import make_model
from agent.models.messages import ChatModel
from rt.errors import ConfigError
from server.config import ServeConfig
from server.pool import Pool
from server.programs import CatalogWatch, ProgramRunner
from server.stream import Notifier


class ServerState:
    """The model (one for every session: a scripted queue is drawn in request order), the
    session pool, the live catalog and the program runner."""

    def __init__(
        self, config: ServeConfig, *, model: ChatModel | None = None, model_spec: str | None = None
    ) -> None:
        self.config = config
        self.model_error: str | None = None
        if model is None:
            try:
                model = make_model(config.settings, model_spec)
            except ConfigError as exc:  # programs are still served; turns answer 503
                self.model_error = exc.one_line()
        self.model = model
        self.pool = Pool(config, lambda: self.model)
        self.notifier = Notifier()
        self.watch = CatalogWatch(config.settings)
        self.runner = ProgramRunner(config.settings, self.watch, model)
        self.threads: list[threading.Thread] = []

    @property
    def stopping(self) -> bool:
        return self.pool.closing.is_set()

    def begin_shutdown(self) -> None:
        """Ctrl-C or SIGTERM: cancel the running turns (recorded interrupted), end the tails."""
        self.pool.cancel_all()
        self.notifier.notify(None)

    def close(self, wait_s: float = 10.0) -> None:
        self.begin_shutdown()
        self.pool.close(wait_s)
        for thread in self.threads:
            thread.join(timeout=1.0)
        self.runner.close()
