"""Host capabilities: one module each, registered into a caller-built ``Registry``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from capabilities.ai import AgentCapability, AiCapability, Assistant, ChildRunner
from capabilities.arrays import ArrCapability
from capabilities.base import Capability, Registry, describe
from capabilities.fs import FsCapability
from capabilities.http import HttpCapability
from capabilities.jsonpath import JsonCapability
from capabilities.kv import KvBackend, KvCapability, MemoryKv
from capabilities.math import MathCapability
from capabilities.strings import StrCapability
from capabilities.sys import DebugCapability, SysCapability

if TYPE_CHECKING:
    import httpx

__all__ = ["Capability", "Registry", "describe", "standard_registry"]


def standard_registry(
    *,
    kv: KvBackend | None = None,
    fs_root: Path | None = None,
    protected: Iterable[Path] = (),
    allow_domains: Iterable[str] = (),
    assistant: Assistant | None = None,
    http_transport: httpx.BaseTransport | None = None,
    secrets: Iterable[str] = (),
    agent_runner: ChildRunner | None = None,
) -> Registry:
    """Every baseline capability, core first, configured with the user's grants."""
    return Registry(
        [
            SysCapability(),
            StrCapability(),
            MathCapability(),
            ArrCapability(),
            JsonCapability(),
            DebugCapability(),
            KvCapability(kv if kv is not None else MemoryKv()),
            FsCapability(fs_root, protected=protected),
            HttpCapability(allow_domains, transport=http_transport),
            AiCapability(assistant, secrets=secrets),
            AgentCapability(agent_runner),
        ]
    )
