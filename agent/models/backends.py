"""Which model a setting means, decided in one place (``choose_model``), and building it.

A ``--model`` spec (or ``WATT_MODEL``) names its backend through ``BACKENDS``, the one table:
``script:FILE.jsonl`` replays a script (``ScriptedModel``), ``local:PATH.gguf`` runs a GGUF
in-process (``LocalModel``), and any other name is a model at the OpenAI-compatible endpoint
``WATT_BASE_URL`` (``OpenAIChatModel``). With no endpoint configured, the best model that
``watt model pull`` installed is the default, when llama-cpp-python is there to run it.

``make_model`` builds what ``choose_model`` decided; ``watt doctor`` reports the decision.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from agent.config import Settings
from agent.models.messages import ChatModel
from rt.errors import ConfigError

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""Endpoint hosts that need no API key."""

NO_MODEL = (
    "no model endpoint configured: set WATT_BASE_URL to an OpenAI-compatible /v1 URL "
    "(and WATT_API_KEY), run `watt model pull`, or pass --model script:FILE.jsonl"
)


class Backend(str, enum.Enum):
    SCRIPT = "script"  # a scripted model replaying a JSON-lines file
    LOCAL = "local"  # a GGUF run in-process by llama-cpp-python
    ENDPOINT = "endpoint"  # an OpenAI-compatible /v1 endpoint


@dataclass(frozen=True)
class ModelChoice:
    """What a setting means. ``problem`` (a ConfigError message) says why it cannot be used;
    ``default`` marks the installed local model, chosen because no endpoint is configured."""

    backend: Backend | None
    name: str = ""  # the model's name at the endpoint, or the file's path
    path: Path | None = None  # the script or GGUF file
    default: bool = False
    problem: str | None = None


@dataclass(frozen=True)
class BackendSpec:
    backend: Backend
    prefix: str  # the --model prefix that names it ("" for a model name at the endpoint)
    build: Callable[[ModelChoice, Settings], ChatModel]


def _scripted(choice: ModelChoice, settings: Settings) -> ChatModel:
    from agent.models.scripted import ScriptedModel

    assert choice.path is not None
    return ScriptedModel.from_jsonl(choice.path)


def _local(choice: ModelChoice, settings: Settings) -> ChatModel:
    from agent.models.local import LocalModel  # optional extra: llama-cpp-python

    assert choice.path is not None
    return LocalModel(
        choice.path, grammar=settings.grammar != "off", home=settings.home, check_backend=True
    )


def _endpoint(choice: ModelChoice, settings: Settings) -> ChatModel:
    from agent.models.client import OpenAIChatModel  # httpx loads only when a model is used

    assert settings.base_url is not None
    return OpenAIChatModel(
        settings.base_url,
        settings.api_key or "none",
        choice.name,
        grammar=settings.grammar,
        deadline_s=settings.model_deadline,
        max_reply_tokens=settings.max_reply_tokens,
    )


BACKENDS: tuple[BackendSpec, ...] = (
    BackendSpec(Backend.SCRIPT, "script:", _scripted),
    BackendSpec(Backend.LOCAL, "local:", _local),
    BackendSpec(Backend.ENDPOINT, "", _endpoint),
)
"""The one table from a --model spec to its backend: the first whose prefix the spec has."""


def is_local_endpoint(base_url: str) -> bool:
    """Whether the endpoint is on this machine (no API key needed)."""
    return (urlparse(base_url).hostname or "") in LOCAL_HOSTS


def choose_model(settings: Settings, spec: str | None = None) -> ModelChoice:
    """The model ``spec`` (else ``settings.model``) means under ``settings``."""
    spec = spec if spec is not None else settings.model
    for entry in BACKENDS:
        if entry.prefix and spec and spec.startswith(entry.prefix):
            name = spec[len(entry.prefix) :]
            return ModelChoice(entry.backend, name, Path(name).expanduser())
    if not settings.base_url:
        return _default_local(settings.home)
    if not settings.api_key and not is_local_endpoint(settings.base_url):
        return ModelChoice(
            Backend.ENDPOINT,
            spec or "",
            problem=f"no API key: set WATT_API_KEY (or OPENAI_API_KEY) for {settings.base_url}",
        )
    if not spec:
        return ModelChoice(
            Backend.ENDPOINT, problem="no model name: set WATT_MODEL or pass --model NAME"
        )
    return ModelChoice(Backend.ENDPOINT, spec)


def _default_local(home: Path) -> ModelChoice:
    from agent.models import local
    from agent.models.weights import best_installed

    best = best_installed(home)
    if best is None or not local.llama_available():
        return ModelChoice(None, problem=NO_MODEL)
    return ModelChoice(Backend.LOCAL, str(best.path), best.path, default=True)


def make_model(settings: Settings, spec: str | None = None) -> ChatModel:
    """The model ``spec`` (``script:FILE.jsonl``, ``local:PATH.gguf``, a name) or the configured one."""
    choice = choose_model(settings, spec)
    if choice.problem is not None or choice.backend is None:
        raise ConfigError(choice.problem or NO_MODEL)
    build = next(entry.build for entry in BACKENDS if entry.backend is choice.backend)
    return build(choice, settings)
