"""Named agents: a session plus a stored configuration (grants, model, instructions).

``watt agents spawn NAME`` writes ``$WATT_HOME/agents/NAME.json`` (mode 0600, written to a
temp file and renamed into place) and the agent's turns go into the session named ``NAME``
(``$WATT_HOME/sessions/NAME.sqlite``), so ``watt log --session NAME`` reads them too. The
stored grants are applied as flags would be (``AgentConfig.overrides``); the environment
still supplies the endpoint and key, which are never stored.

``status`` reads the session without its lock (a running turn is visible from another
process); ``kill`` sends SIGINT to the process recorded in the running turn (checked by its
start time, so a recycled pid is never signalled), which records the turn as interrupted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from agent.config import Settings, check_session_name, load_settings
from agent.store.journal import Reader, TurnRecord, TurnState, process_alive
from agent.store.sessions import SessionStore
from rt.errors import ConfigError, SessionError, SessionInUse, UnknownSession

MAX_CONFIG_BYTES = 256_000


@dataclass(frozen=True)
class AgentConfig:
    """What a named agent keeps between turns (the CLI's grant flags, in their words)."""

    name: str
    model: str | None = None
    system: str = ""
    allow_domains: tuple[str, ...] = ()
    fs_root: str | None = None
    ai: bool = True
    agents: int = 0
    catalog: tuple[str, ...] = ()
    max_steps: int | None = None
    timeout: float | None = None
    created: float = field(default_factory=time.time)

    def overrides(self) -> dict[str, Any]:
        """The stored grants as ``load_settings`` overrides (validated like flags)."""
        return {
            "session": self.name, "allow_domains": list(self.allow_domains) or None,
            "fs_root": self.fs_root, "ai": self.ai, "agents": self.agents or None,
            "catalog": list(self.catalog) or None, "max_steps": self.max_steps,
            "timeout": self.timeout, "model": self.model if self.model and ":" not in self.model
            else None,
        }  # fmt: skip

    def settings(self, environ: Mapping[str, str] | None = None) -> Settings:
        env = None if environ is None else dict(environ)
        return load_settings(self.overrides(), environ=env)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["allow_domains"], data["catalog"] = list(self.allow_domains), list(self.catalog)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> AgentConfig:
        try:
            return cls(
                name=str(data["name"]), model=data.get("model"), system=str(data.get("system", "")),
                allow_domains=tuple(str(d) for d in data.get("allow_domains", ())),
                fs_root=data.get("fs_root"), ai=bool(data.get("ai", True)),
                agents=int(data.get("agents", 0)),
                catalog=tuple(str(c) for c in data.get("catalog", ())),
                max_steps=data.get("max_steps"), timeout=data.get("timeout"),
                created=float(data.get("created", 0.0)),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: not a named agent's configuration ({exc})") from None


@dataclass(frozen=True)
class AgentStatus:
    """One line of ``watt agents ps``."""

    name: str
    state: str  # "new" (no turn yet), or the last turn's state (running, answered, ...)
    run: str | None  # the running turn's run id
    last_activity: str | None  # the last journal row's time (UTC, ISO 8601)
    cost: float | None
    turns: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AgentStore:
    """Every named agent under ``home / "agents"``."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.root = self.home / "agents"
        self.sessions = SessionStore(self.home)

    def path(self, name: str) -> Path:
        return self.root / f"{check_session_name(name)}.json"

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def get(self, name: str) -> AgentConfig:
        path = self.path(name)
        try:
            if path.stat().st_size > MAX_CONFIG_BYTES:
                raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UnknownSession(f"no agent named {name!r} (watt agents spawn {name})") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: not a named agent's configuration")
        return AgentConfig.from_dict(data, str(path))

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.json") if p.is_file())

    def spawn(self, config: AgentConfig, *, replace_existing: bool = False) -> AgentConfig:
        """Store a new agent; an existing agent (or plain session) of that name is an error
        unless ``replace_existing``, which also starts its session afresh."""
        name = config.name
        config.settings()  # the grants are checked as flags would be, before anything is written
        taken = self.exists(name) or self.sessions.exists(name)
        if taken and not replace_existing:
            what = "an agent" if self.exists(name) else "a session"
            raise ConfigError(f"{what} named {name!r} exists; use --replace to start it afresh")
        if self.sessions.exists(name):
            self.sessions.remove(name)  # SessionInUse while a turn runs
        self._write(config)
        return config

    def _write(self, config: AgentConfig) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = self.path(config.name)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{config.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(config.to_dict(), out, indent=2, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def remove(self, name: str) -> None:
        """The agent's configuration and its session (refused while a turn runs)."""
        self.get(name)
        if self.sessions.exists(name):
            self.sessions.remove(name)
        self.path(name).unlink(missing_ok=True)

    def reader(self, name: str) -> Reader:
        self.get(name)
        return Reader(self.sessions.path(name), name)

    def status(self, name: str) -> AgentStatus:
        self.get(name)
        if not self.sessions.exists(name):
            return AgentStatus(name, "new", None, None, None, 0)
        with self.reader(name) as reader:
            every = reader.turns()
            last = reader.entries(after=max(0, reader.last_seq() - 1))
        turns = [t for t in every if t.parent_run is None]
        costs = [t.cost for t in every if t.cost is not None]  # children's cost counts too
        top = turns[-1] if turns else None
        state = top.state.value if top is not None else "new"
        run = top.run if top is not None and top.state is TurnState.RUNNING else None
        when = last[-1].ts if last else None
        return AgentStatus(name, state, run, when, sum(costs) if costs else None, len(turns))

    def running(self, name: str) -> TurnRecord | None:
        with self.reader(name) as reader:
            turns = [t for t in reader.turns() if t.parent_run is None]
        return turns[-1] if turns and turns[-1].state is TurnState.RUNNING else None

    def kill(self, name: str, *, wait: float = 10.0) -> TurnRecord | None:
        """Interrupt the agent's running turn (SIGINT to its process); the turn as it then
        reads, or None when no turn was running."""
        turn = self.running(name)
        if turn is None:
            return None
        pid, start = _turn_process(self.sessions.path(name), turn.run)
        if pid is None or not process_alive(pid, start) or pid == os.getpid():
            raise SessionError(f"agent {name!r}: the process of run {turn.run} cannot be signalled")
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            now = self.running(name)
            if now is None or now.run != turn.run:
                break
            time.sleep(0.1)
        with self.reader(name) as reader:
            after = reader.turns(turn.id)
        return after[0] if after else replace(turn)


def _turn_process(db: Path, run: str) -> tuple[int | None, str | None]:
    """The pid and process start time recorded in the turn ``run`` (read-only, no lock)."""
    try:
        conn = sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        raise SessionError(f"cannot read {db}: {exc}") from exc
    try:
        row = conn.execute("SELECT pid, pid_start FROM turns WHERE run = ?", (run,)).fetchone()
    except sqlite3.Error as exc:
        raise SessionError(f"cannot read {db}: {exc}") from exc
    finally:
        conn.close()
    if row is None:
        return None, None
    return (int(row[0]) if row[0] else None), (str(row[1]) if row[1] is not None else None)


__all__ = ["AgentConfig", "AgentStatus", "AgentStore", "SessionInUse", "SessionError"]
