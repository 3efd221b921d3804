"""Configuration: flags override the environment, which overrides ``$WATT_HOME/config.toml``.

Environment: WATT_BASE_URL, WATT_API_KEY (falls back to OPENAI_API_KEY), WATT_MODEL,
WATT_GRAMMAR (constrained decoding: auto, on or off), WATT_HOME (state, config, caches, user
catalog; default ``~/.watt``).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args

from rt.errors import ConfigError
from rt.limits import Limits
from rt.nesting import TooDeep, check_depth

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


@dataclass(frozen=True)
class Settings:
    home: Path
    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None
    fuel: int = Limits.fuel
    memory: int = Limits.memory_bytes
    timeout: float = Limits.timeout_s
    max_source_bytes: int = Limits.max_source_bytes
    max_result_bytes: int = Limits.max_result_bytes
    allow_domains: tuple[str, ...] = ()
    fs_root: Path | None = None
    ai: bool = True
    max_steps: int = 10
    max_retries: int = 2
    max_tokens_total: int | None = None
    catalog: tuple[Path, ...] = ()
    session: str = "default"
    observation_chars: int = 4000
    grammar: GrammarMode = "auto"  # constrained decoding with the reply grammar: auto, on, off
    model_deadline: float = 300.0  # seconds for a whole model call, retries included
    max_reply_tokens: int = 1024  # sent as max_tokens with every endpoint model call
    max_cost: float | None = None  # dollars per task, when the model has a price
    # [prices."MODEL"] input = USD, output = USD (per million tokens); no network look-up
    prices: tuple[tuple[str, float, float], ...] = ()
    agents: int = 0  # child agent runs per task (--agents N); 0: agent.run is not granted
    agent_depth: int = 2  # how deep child agents may nest (a child of a child is depth 2)
    guard: str = "off"  # `watt serve`'s input guard: "off", or "model" (the model screens tasks)
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def limits(self) -> Limits:
        return Limits(
            fuel=self.fuel,
            memory_bytes=self.memory,
            timeout_s=self.timeout,
            max_source_bytes=self.max_source_bytes,
            max_result_bytes=self.max_result_bytes,
        ).validated()

    @property
    def config_file(self) -> Path:
        return self.home / "config.toml"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache" / "modules"

    @property
    def user_catalog(self) -> Path:
        return self.home / "catalog"

    def protected_paths(self) -> list[Path]:
        """Paths an fs jail must never overlap (SECURITY.md rule 11)."""
        return [self.home, self.config_file, self.cache_dir, self.user_catalog]

    def masked_key(self) -> str:
        return mask_key(self.api_key)

    def shown(self) -> dict[str, str]:
        """The effective configuration with the key masked, for `watt config show`."""
        out: dict[str, str] = {}
        for f in fields(self):
            if f.name == "sources":
                continue
            value = getattr(self, f.name)
            if f.name == "api_key":
                value = self.masked_key()
            elif isinstance(value, tuple):
                value = ", ".join(str(v) for v in value) or "(none)"
            elif value is None:
                value = "(unset)"
            out[f.name] = f"{value}  [{self.sources.get(f.name, 'default')}]"
        return out


# ---- validation ------------------------------------------------------------------------------
RANGES: dict[str, tuple[float, float, str]] = {
    "fuel": (1, 10**15, ""),
    "memory": (65536, 4 * 1024**3, " bytes"),
    "max_source_bytes": (1, 64 * 1024**2, " bytes"),
    "max_result_bytes": (1, 64 * 1024**2, " bytes"),
    "max_steps": (1, 1000, ""),
    "max_retries": (0, 100, ""),
    "max_tokens_total": (1, 10**9, ""),
    "observation_chars": (100, 1_000_000, ""),
    "model_deadline": (1, 86_400, " s"),
    "max_reply_tokens": (1, 1_000_000, ""),
    "agents": (0, 1000, ""),
    "agent_depth": (1, 8, ""),
}
"""Inclusive ranges of the numeric settings (``timeout`` is more than 0, at most 3600 s)."""
MAX_TIMEOUT_S = 3600.0
GUARD_MODES = ("off", "model")
"""``guard``: no input guard, or the configured model classifies each served task first."""
_FLAGS = {"allow_domains": "--allow-domain"}


def origin_of(settings: Settings, name: str) -> str:
    """How a setting is named where it came from: ``--max-steps``, ``WATT_MODEL``, the file."""
    source = settings.sources.get(name, "default")
    if source == "flag":
        return _FLAGS.get(name, "--" + name.replace("_", "-"))
    if source == "config.toml":
        return f"{settings.config_file}: {name}"
    if source == "default":
        return name
    return source


def validate(settings: Settings) -> None:
    """Every value in its range, every path where it must be: ``ConfigError`` naming the origin.

    Called on construction, so a ``Settings`` a library user builds is checked as the CLI's is.
    """
    for name, (low, high, unit) in RANGES.items():
        value = getattr(settings, name)
        if value is None:
            continue
        if not low <= value <= high:
            raise ConfigError(
                f"{origin_of(settings, name)} must be between {low:_} and {high:_}{unit}, "
                f"got {value:_}"
            )
    if settings.max_cost is not None and not 0 < settings.max_cost <= 1e6:
        raise ConfigError(f"{origin_of(settings, 'max_cost')} must be more than 0 USD")
    timeout = settings.timeout
    if not 0 < timeout <= MAX_TIMEOUT_S:  # NaN fails too
        raise ConfigError(
            f"{origin_of(settings, 'timeout')} must be more than 0 and at most "
            f"{MAX_TIMEOUT_S:g} seconds, got {timeout:g}"
        )
    for directory in settings.catalog:
        _check_dir(directory, origin_of(settings, "catalog"), "catalog directory")
    if settings.fs_root is not None:
        _check_dir(settings.fs_root, origin_of(settings, "fs_root"), "fs root")
    if settings.allow_domains:
        from capabilities.netguard import Grants
        from rt.errors import CapabilityError

        try:
            Grants.from_user(settings.allow_domains)
        except CapabilityError as exc:
            raise ConfigError(f"{origin_of(settings, 'allow_domains')}: {exc}") from None
    if settings.guard not in GUARD_MODES:
        raise ConfigError(
            f"{origin_of(settings, 'guard')} must be one of {', '.join(GUARD_MODES)}, "
            f"got {settings.guard!r}"
        )
    try:
        check_session_name(settings.session)
    except ConfigError as exc:
        raise ConfigError(f"{origin_of(settings, 'session')}: {exc}") from None


SESSION_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def check_session_name(name: str) -> str:
    """A session name is a file name: never ``.``/``..``, a path separator or a control."""
    if not isinstance(name, str) or not SESSION_NAME.fullmatch(name) or name in (".", ".."):
        raise ConfigError(
            f"invalid session name {name!r}: use 1-64 letters, digits, '_', '.' or '-' "
            "(not . or ..)"
        )
    return name


def _check_dir(path: Path, origin: str, what: str) -> None:
    if path.is_dir():
        return
    why = "is not a directory" if path.exists() else "does not exist"
    raise ConfigError(f"{origin}: {what} {path} {why}")


def allow_list_notes(settings: Settings) -> list[str]:
    """What the user should know about the allow-list (loopback entries), one line each."""
    if not settings.allow_domains:
        return []
    from capabilities.netguard import Grants

    return Grants.from_user(settings.allow_domains).notes()


def mask_key(key: str | None) -> str:
    if not key:
        return "(unset)"
    return "****" if len(key) < 12 else f"{key[:3]}…{key[-4:]}"


_TYPES: dict[str, type] = {
    "base_url": str,
    "api_key": str,
    "model": str,
    "fuel": int,
    "memory": int,
    "timeout": float,
    "max_source_bytes": int,
    "max_result_bytes": int,
    "allow_domains": tuple,
    "fs_root": Path,
    "ai": bool,
    "max_steps": int,
    "max_retries": int,
    "max_tokens_total": int,
    "catalog": tuple,
    "session": str,
    "observation_chars": int,
    "grammar": str,
    "model_deadline": float,
    "max_reply_tokens": int,
    "max_cost": float,
    "prices": dict,
    "agents": int,
    "agent_depth": int,
    "guard": str,
}
GrammarMode = Literal["auto", "on", "off"]
GRAMMAR_MODES: tuple[GrammarMode, ...] = get_args(GrammarMode)
"""Constrained decoding with the reply grammar: auto (local models and llama.cpp servers), on, off."""
MAX_CONFIG_DEPTH = 32
"""config.toml nests arrays and tables at most this deep (a real one needs two)."""
_GRAMMAR_WORDS = {"true": "on", "yes": "on", "1": "on", "false": "off", "no": "off", "0": "off"}


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse config.toml; a bad file is a one-line ConfigError naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    try:
        check_depth(text, MAX_CONFIG_DEPTH, syntax="toml")
    except TooDeep as exc:
        raise ConfigError(f"{path}: {exc}") from None
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    unknown = sorted(set(data) - set(_TYPES))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(_TYPES))}"
        )
    return data


def _coerce(name: str, value: Any, origin: str) -> Any:
    kind = _TYPES[name]
    try:
        if kind is tuple:
            items = [value] if isinstance(value, str) else list(value)
            if name == "catalog":
                return tuple(Path(str(v)).expanduser() for v in items)
            return tuple(str(v) for v in items)
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind is Path:
            return Path(str(value)).expanduser()
        if kind is int:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(str(value).replace("_", ""))
        if kind is float:
            return float(value)
        if name == "grammar":
            return _grammar_choice(value, origin)
        if kind is dict:
            return _prices(value, origin)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: {name} must be {kind.__name__}, got {value!r}") from exc


def _prices(value: Any, origin: str) -> tuple[tuple[str, float, float], ...]:
    """``[prices."MODEL"]`` tables of ``input`` and ``output`` dollars per million tokens."""
    if not isinstance(value, dict):
        raise ConfigError(f'{origin}: prices must be a table of [prices."MODEL"] tables')
    out = []
    for model, table in sorted(value.items()):
        if not isinstance(table, dict) or set(table) - {"input", "output"}:
            raise ConfigError(
                f'{origin}: [prices."{model}"] takes input and output (USD per million tokens)'
            )
        try:
            price_in, price_out = float(table.get("input", 0)), float(table.get("output", 0))
        except (TypeError, ValueError):
            raise ConfigError(f'{origin}: [prices."{model}"] prices must be numbers') from None
        if not (0 <= price_in < 1e6 and 0 <= price_out < 1e6):
            raise ConfigError(f'{origin}: [prices."{model}"] prices must be 0 or more')
        out.append((str(model), price_in, price_out))
    return tuple(out)


def price_of(settings: Settings, model: str | None) -> tuple[float, float] | None:
    """The configured price of ``model`` (USD per million input, output tokens), if any."""
    for name, price_in, price_out in settings.prices:
        if name == model:
            return price_in, price_out
    return None


def _grammar_choice(value: Any, origin: str) -> GrammarMode:
    """auto, on or off (true/false, yes/no and 1/0 too, as TOML writes booleans)."""
    text = str(value).strip().lower()
    text = _GRAMMAR_WORDS.get(text, text)
    for mode in GRAMMAR_MODES:
        if text == mode:
            return mode
    raise ConfigError(f"{origin}: grammar must be auto, on or off, got {value!r}")


def load_settings(
    overrides: dict[str, Any] | None = None, *, environ: dict[str, str] | None = None
) -> Settings:
    """Settings from config file < environment < ``overrides`` (flags; None means unset)."""
    env = dict(os.environ if environ is None else environ)
    home = Path(env["WATT_HOME"]).expanduser() if env.get("WATT_HOME") else Path.home() / ".watt"
    settings = Settings(home=home)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {"home": "WATT_HOME"} if env.get("WATT_HOME") else {}
    config_path = settings.config_file
    for key, value in read_config_file(config_path).items():
        values[key] = _coerce(key, value, str(config_path))
        sources[key] = "config.toml"
    env_keys = {
        "base_url": "WATT_BASE_URL",
        "api_key": "WATT_API_KEY",
        "model": "WATT_MODEL",
        "grammar": "WATT_GRAMMAR",
    }
    if not env.get("WATT_API_KEY") and env.get("OPENAI_API_KEY"):
        env_keys["api_key"] = "OPENAI_API_KEY"
    for key, var in env_keys.items():
        if env.get(var):
            values[key] = _coerce(key, env[var], var)
            sources[key] = var
    for key, value in (overrides or {}).items():
        if value is None or value == () or value == []:
            continue
        values[key] = _coerce(key, value, "--" + key.replace("_", "-"))
        sources[key] = "flag"
    result = replace(settings, **values, sources=sources)  # validated on construction
    result.limits  # noqa: B018 - and the runtime's own checks agree
    return result
