"""The live catalog: loaded again whenever a catalog directory's ``*.wat`` files change.

A program saved with ``/save`` or dropped into ``$WATT_HOME/catalog`` is served at the next
request, and a removed one is gone: each request compares the directories' listing (names,
sizes, modification times) with the last one, which costs a few ``stat`` calls. Parsing is
memoized on the files' bytes (``agent.programs.catalog.load_file``), so a reload re-parses
only what changed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.app import Parts, open_parts
from agent.config import Settings
from agent.models.messages import ChatModel
from agent.programs.catalog import (
    Catalog,
    Program,
    apply_defaults,
    catalog_dirs,
    shipped_dir,
)
from rt.errors import CatalogError, RunError

Signature = tuple[tuple[str, tuple[tuple[str, int, int], ...]], ...]


def _listing(directory: Path) -> tuple[tuple[str, int, int], ...]:
    out = []
    try:
        with os.scandir(directory) as it:
            for entry in it:
                if entry.name.endswith(".wat"):
                    try:
                        st = entry.stat()
                    except OSError:
                        continue
                    out.append((entry.name, st.st_size, st.st_mtime_ns))
    except OSError:
        return ()
    return tuple(sorted(out))


class CatalogWatch:
    """The catalog of ``settings``' directories, as they are now."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._signature: Signature | None = None
        self._catalog = Catalog()
        self._errors: list[CatalogError] = []
        self._shipped = shipped_dir()

    def _signature_now(self) -> Signature:
        watched = [self._shipped, self._settings.user_catalog, *self._settings.catalog]
        return tuple((str(d), _listing(d)) for d in watched)

    def peek(self) -> tuple[Catalog, list[CatalogError]] | None:
        """The catalog when no directory changed (a few ``stat`` calls), else None: then
        ``current`` (which may parse files: call it off the event loop)."""
        signature = self._signature_now()
        with self._lock:
            if signature == self._signature:
                return self._catalog, list(self._errors)
        return None

    def current(self) -> tuple[Catalog, list[CatalogError]]:
        """The catalog as the directories are now, loaded again when they changed."""
        signature = self._signature_now()
        with self._lock:
            if signature != self._signature:
                dirs = catalog_dirs(self._settings.home, self._settings.catalog)
                self._catalog, self._errors = Catalog.load(dirs)
                self._signature = signature
            return self._catalog, list(self._errors)


class BadArgs(ValueError):
    """The request's ``args`` cannot be a program's arguments (422)."""


def request_args(program: Program, raw: Any) -> list[str]:
    """``{"args": [...]}``: strings (numbers become their text), defaults filling the rest."""
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise BadArgs('"args" must be a list of strings')
    args: list[str] = []
    for i, value in enumerate(raw):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise BadArgs(f"args[{i}] must be a string or a number")
        args.append(value if isinstance(value, str) else str(value))
    try:
        return apply_defaults(program, args)
    except CatalogError as exc:
        raise BadArgs(exc.one_line()) from None


def narrowed(granted: set[str], asked: Any) -> set[str]:
    """A request's ``"caps"`` narrow the server's grants, never widen them (ValueError)."""
    if asked is None:
        return set(granted)
    if not isinstance(asked, list) or not all(isinstance(c, str) for c in asked):
        raise BadArgs('"caps" must be a list of capability names')
    extra = sorted(set(asked) - granted)
    if extra:
        raise PermissionError(
            f"not granted by this server: {', '.join(extra)}; granted: {', '.join(sorted(granted))}"
        )
    return set(asked)


class ProgramRunner:
    """Runs catalog programs without a session on one shared set of parts (a runtime built
    once); programs that use kv run in their session's parts instead (see ``pool``)."""

    def __init__(self, settings: Settings, watch: CatalogWatch, model: ChatModel | None) -> None:
        self.watch = watch
        self._model = model
        self._parts: Parts | None = None
        self._settings = settings
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()  # one runtime, one run at a time (wasm is anyway)

    @property
    def parts(self) -> Parts:
        with self._lock:
            if self._parts is None:
                self._parts = open_parts(self._settings, model=self._model, use_session=False)
            return self._parts

    def run(
        self, parts: Parts, program: Program, args: Sequence[str], granted: set[str]
    ) -> dict[str, Any]:
        """The ``watt run --json`` result: a run's ``to_dict()``, or for a run that could not
        finish ``{"error", "error_type", "partial"}``."""
        try:
            with self._run_lock:
                result = parts.runtime.run(
                    program.body, list(args), granted=granted, line_offset=program.body_line - 1
                )
        except RunError as exc:
            partial = exc.partial.to_dict() if exc.partial is not None else None
            return {"error": exc.one_line(), "error_type": type(exc).__name__, "partial": partial}
        return result.to_dict()

    def close(self) -> None:
        with self._lock:
            if self._parts is not None:
                self._parts.close()
                self._parts = None


def program_info(program: Program) -> dict[str, Any]:
    return {
        "name": program.name, "description": program.description, "usage": program.usage(),
        "args": [
            {"name": a.name, "type_hint": a.type_hint, "description": a.description,
             "default": a.default}
            for a in program.args
        ],
        "capabilities": list(program.capabilities),
    }  # fmt: skip
