"""Everything one server holds, built once from its ``ServeConfig``; no Starlette here.

A named agent's turn runs with ``agent_settings``: each of its stored grants intersected with
the server's (a host the server lacks is dropped, an fs root outside the server's jail is no
fs, the smaller of two limits), so an agent spawned by ``watt agents spawn`` with more than the
server holds gets no more over HTTP. Its model is the server's when the server runs a
scripted queue or the same model, else that model name on the server's endpoint.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path

from agent.config import Settings
from agent.models.backends import make_model
from agent.models.messages import ChatModel
from agent.named import AgentConfig, AgentStore
from capabilities.netguard import Grants
from rt.errors import CapabilityError, ConfigError
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
        self.model_spec = model_spec
        # every session, agents' too, draws from the one model (a scripted queue)
        self.shares_model = (model is not None and model_spec is None) or bool(
            model_spec and model_spec.startswith("script:")
        )
        self.agents = AgentStore(config.settings.home)
        self._models: dict[str, ChatModel] = {}
        self._models_lock = threading.Lock()

    def agent_model(self, spec: str | None) -> ChatModel | None:
        """The model of an agent's turns (None: the server's). ConfigError when the agent's
        model is a file (``script:``, ``local:``) other than the server's own."""
        if spec is None or spec == self.model_spec or self.shares_model:
            return None
        if spec.startswith(("script:", "local:")):
            raise ConfigError(
                f"the agent's model {spec} is not this server's; over HTTP an agent's model is "
                "a model name of the server's endpoint"
            )
        with self._models_lock:
            if spec not in self._models:
                self._models[spec] = make_model(self.config.settings, spec)
            return self._models[spec]

    def agent_turn(self, name: str) -> AgentTurn | None:
        """How a turn of session ``name`` runs when it is a named agent (else None); blocking
        (reads its configuration): call it off the event loop. ConfigError, UnknownSession."""
        if not self.agents.exists(name):
            return None
        config = self.agents.get(name)
        settings = agent_settings(config, self.config.settings)
        return AgentTurn(config, settings, self.agent_model(config.model))

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


@dataclass(frozen=True)
class AgentTurn:
    config: AgentConfig
    settings: Settings
    model: ChatModel | None  # None: the server's


def _covered(host: str, held: frozenset[tuple[str, int | None]]) -> bool:
    try:
        return Grants.parse([host]).entries <= held
    except CapabilityError:
        return False


def agent_settings(config: AgentConfig, base: Settings) -> Settings:
    """The agent's stored grants intersected with ``base`` (the server's); what it left
    unset is ``base``'s, as the CLI's defaults are the configuration's."""
    hosts = base.allow_domains
    if config.allow_domains:
        held = Grants.parse(base.allow_domains).entries
        hosts = tuple(h for h in config.allow_domains if _covered(h, held))
    fs_root = base.fs_root
    if config.fs_root is not None:
        wanted = Path(config.fs_root).resolve()
        inside = base.fs_root is not None and wanted.is_relative_to(base.fs_root.resolve())
        fs_root = wanted if inside else None
    catalog = base.catalog
    if config.catalog:
        held_dirs = {d.resolve() for d in base.catalog}
        catalog = tuple(Path(c) for c in config.catalog if Path(c).resolve() in held_dirs)
    return replace(
        base, session=config.name, allow_domains=hosts, fs_root=fs_root,
        ai=base.ai and config.ai,
        agents=min(config.agents, base.agents) if config.agents else base.agents,
        catalog=catalog, max_steps=min(config.max_steps or base.max_steps, base.max_steps),
        timeout=min(config.timeout or base.timeout, base.timeout),
    )  # fmt: skip
