"""Read-only and housekeeping commands: catalog, sessions, log, doctor.

Every line goes out through ``say`` (inert: SECURITY.md rule 17), even a catalog file's own
source; ``watt log --json`` keeps the exact text.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from cli.common import EXIT_FAILED, EXIT_OK, say
from cli.safe_text import dumps

if TYPE_CHECKING:
    from agent.config import Settings
    from agent.models.backends import ModelChoice
    from agent.programs.catalog import Catalog
    from rt.errors import CatalogError


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def _load_catalog(settings: Settings) -> tuple[Catalog, list[CatalogError]]:
    from agent.programs.catalog import Catalog, catalog_dirs

    return Catalog.load(catalog_dirs(settings.home, settings.catalog))


def list_catalog(settings: Settings) -> int:
    catalog, errors = _load_catalog(settings)
    for program in catalog:
        say(f"{program.usage()}\n    {program.description}")
    for err in errors:
        say(f"watt: skipped {err.one_line()}")
    return EXIT_OK if not errors else EXIT_FAILED


def show_program(settings: Settings, name: str) -> int:
    catalog, _ = _load_catalog(settings)
    program = catalog.get(name)
    if program is None:
        raise catalog.not_found(name)
    say(f"# {program.path}")
    say(program.path.read_text(encoding="utf-8"))
    return EXIT_OK


def check_catalog(settings: Settings, paths: list[Path]) -> int:
    from agent.app import open_parts
    from agent.programs.catalog import Catalog, load_file
    from rt.errors import WattError

    problems: list[str] = []
    programs = []
    if paths:
        for path in paths:
            if path.is_dir():  # a directory: every program in it, as the catalog loads them
                found, errors = Catalog.load([path])
                programs += list(found)
                problems += [e.one_line() for e in errors]
                continue
            try:
                programs.append(load_file(path))
            except WattError as exc:
                problems.append(exc.one_line())
    else:
        catalog, errors = _load_catalog(settings)
        programs = list(catalog)
        problems += [e.one_line() for e in errors]
    with open_parts(settings, use_session=False) as parts:
        for program in programs:
            try:
                parts.runtime.prepare(program.body, None, line_offset=program.body_line - 1)
            except WattError as exc:
                line = getattr(exc, "line", None)
                where = f"{program.path}:{line}" if line else f"{program.path}"
                problems.append(f"{where}: {exc.one_line()}")
    for problem in problems:
        say(problem)
    say(f"{len(programs)} program(s) checked, {len(problems)} problem(s)")
    return EXIT_OK if not problems else EXIT_FAILED


def new_program(
    settings: Settings, name: str, directory: Path | None, *, force: bool = False
) -> int:
    from agent.programs.writer import new_program as write_scaffold

    catalog, _ = _load_catalog(settings)
    existing = catalog.get(name)
    target = write_scaffold(directory or settings.user_catalog, name, catalog=catalog, force=force)
    if existing is not None:
        say(f"watt: warning: {name} now overrides {existing.path}", err=True)
    say(
        f"wrote {target}; edit it, then `watt catalog check {target}` and `watt catalog test {name}`"
    )
    return EXIT_OK


def test_catalog(settings: Settings, name: str | None) -> int:
    from agent.programs.examples import run_examples

    catalog, errors = _load_catalog(settings)
    programs = list(catalog)
    if name is not None:
        program = catalog.get(name)
        if program is None:
            raise catalog.not_found(name)
        programs = [program]
    passed = failed = 0
    for program in programs:
        for outcome in run_examples(program, limits=settings.limits, cache_dir=settings.cache_dir):
            if outcome.ok:
                passed += 1
            else:
                failed += 1
                say(
                    f"FAIL {outcome.program}[{outcome.index}] {outcome.location}: {outcome.message}"
                )
    for err in errors if name is None else []:
        failed += 1
        say(f"FAIL {err.one_line()}")
    say(f"catalog: {passed} passed, {failed} failed")
    return EXIT_OK if failed == 0 else EXIT_FAILED


def quotas(cap: object) -> list[tuple[str, int | float]]:
    """A capability's quotas, read from its ``max_*`` and ``*_timeout_s`` settings (the numbers
    its refusals name), as ``("calls per run", 20)`` pairs in declaration order."""
    out: list[tuple[str, int | float]] = []
    for key, value in vars(cap).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if key.startswith("max_"):
            out.append((key.removeprefix("max_").replace("_", " "), value))
        elif key.endswith("_timeout_s"):
            out.append((key.removesuffix("_s").replace("_", " ") + " (s)", value))
    return out


def _number(value: int | float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def show_caps(settings: Settings) -> int:
    """``watt caps``: each capability's prompt text, then its quotas; the run limits; grants."""
    from agent.app import open_parts
    from agent.config import allow_list_notes
    from capabilities.base import describe

    with open_parts(settings, use_session=False) as parts:
        for cap in parts.registry:
            granted = "" if cap.namespace in parts.granted else "   (not granted)"
            say(describe(cap) + granted)
            found = quotas(cap)
            if found:
                say("  quotas: " + ", ".join(f"{k} {_number(v)}" for k, v in found))
    lim = settings.limits
    say(
        f"\nper run (watt run flags, config.toml keys): fuel {lim.fuel:,} (--fuel, fuel), "
        f"memory {lim.memory_bytes:,} bytes (--memory, memory), timeout {lim.timeout_s:g} s "
        f"(--timeout, timeout), source {lim.max_source_bytes:,} bytes (max_source_bytes), "
        f"results {lim.max_result_bytes:,} bytes (max_result_bytes)"
    )
    say(f"http allow-list: {', '.join(settings.allow_domains) or '(empty: every host is refused)'}")
    for note in allow_list_notes(settings):
        say(f"  note: {note}")
    say(f"fs root: {settings.fs_root or '(none: fs calls fail with EACCESS)'}")
    return EXIT_OK


def list_sessions(settings: Settings) -> int:
    from agent.store.sessions import SessionStore

    rows = SessionStore(settings.home).list()
    if not rows:
        say("no sessions yet")
    for info in rows:
        extra = f"  ERROR {info.error}" if info.error else ""
        say(
            f"{info.name:<24} turns {info.turns:<4} steps {info.steps:<5} last used {_when(info.updated)}{extra}"
        )
    return EXIT_OK


def show_session(settings: Settings, name: str) -> int:
    from agent.store.sessions import SessionStore
    from rt.errors import UnknownSession

    store = SessionStore(settings.home)
    if not store.exists(name):
        raise UnknownSession(f"no session named {name!r}")
    with store.open(name, create=False) as session:
        turns = session.turns()
        say(f"session {name}: {len(turns)} turn(s)")
        for turn in turns:
            say(f"  turn {turn.id} {_when(turn.started)}: {turn.task[:100]}")
        keys = session.kv.keys()
        say(f"kv: {len(keys)} key(s)")
        for key in keys:
            value = session.kv.get(key) or ""
            say(f"  {key} = {value[:80]!r}")
    return EXIT_OK


def show_log(settings: Settings, *, json_out: bool, limit: int) -> int:
    from agent.store.sessions import SessionStore
    from rt.errors import UnknownSession

    store = SessionStore(settings.home)
    if not store.exists(settings.session):
        raise UnknownSession(f"no session named {settings.session!r}")
    with store.open(settings.session, create=False) as session:
        steps = session.steps()[-limit:]
    for step in steps:
        if json_out:
            print(dumps(step.to_dict()))
            continue
        tokens = (step.prompt_tokens or 0) + (step.completion_tokens or 0)
        say(
            f"turn {step.turn} step {step.step} {step.action.value}  status {step.status}  fuel {step.fuel}  tokens {tokens}"
        )
        if step.program:
            for line in step.program.strip().splitlines()[:12]:
                say(f"    {line}")
        if step.observation:
            say("    -> " + " ".join(step.observation.split())[:200])
    if not steps and not json_out:
        say("no steps yet")
    return EXIT_OK


def _model_file_checks(choice: ModelChoice) -> list[tuple[bool, str]]:
    """``--model local:PATH.gguf`` or ``script:FILE.jsonl``: the file, and for local the library."""
    from agent.models.backends import Backend
    from agent.models.local import INSTALL_HINT, llama_available

    path, backend = choice.path, choice.backend
    assert path is not None and backend is not None  # a script: or local: spec names its file
    checks = [
        (
            path.is_file(),
            f"{backend.value} model file: {path}" + ("" if path.is_file() else " (not found)"),
        )
    ]
    if backend is Backend.LOCAL:
        library = llama_available()
        checks.append(
            (
                library,
                "llama-cpp-python installed"
                if library
                else f"llama-cpp-python missing: {INSTALL_HINT}",
            )
        )
    return checks


def _default_local_checks(home: Path) -> list[tuple[bool, str]]:
    """No endpoint configured: the embedded local model is the default when it is installed."""
    from agent.models.local import INSTALL_HINT, llama_available
    from agent.models.weights import best_installed

    best, library = best_installed(home), llama_available()
    endpoint = "set WATT_BASE_URL (OpenAI-compatible /v1) and WATT_API_KEY"
    if best is not None and library:
        state = "sha256 verified" if best.verified else "not verified: run `watt model pull` again"
        return [
            (True, "no endpoint configured: using the local model"),
            (best.verified, f"local model {best.path.name} ({state})"),
        ]
    if best is not None:
        return [
            (
                False,
                f"local model {best.path.name} is installed but llama-cpp-python is missing: "
                f"{INSTALL_HINT}, or {endpoint}",
            )
        ]
    if library:
        return [(False, f"no model: run `watt model pull` for the local model, or {endpoint}")]
    return [(False, f"no model: {endpoint}, or {INSTALL_HINT} && watt model pull")]


def _endpoint_checks(settings: Settings, base_url: str) -> list[tuple[bool, str]]:
    """An OpenAI-compatible endpoint: the key, whether it answers, whether it lists the model."""
    from agent.models.backends import is_local_endpoint
    from agent.models.client import OpenAIChatModel
    from rt.errors import WattError

    checks = [(True, f"endpoint configured: {base_url}")]
    local = is_local_endpoint(base_url)
    checks.append(
        (
            bool(settings.api_key) or local,
            "API key present"
            if settings.api_key
            else (
                "no API key (not needed for a local endpoint)"
                if local
                else "no API key: set WATT_API_KEY"
            ),
        )
    )
    try:
        client = OpenAIChatModel(
            base_url, settings.api_key, settings.model or "-", max_retries=0, timeout_s=5
        )
        models = client.list_models()
        client.close()
    except WattError as exc:
        return [*checks, (False, f"endpoint: {exc.one_line()}")]
    checks.append((True, f"endpoint reachable: {len(models)} model(s)"))
    if not settings.model:
        return [*checks, (False, "no model name: set WATT_MODEL")]
    listed = settings.model in models
    return [
        *checks,
        (
            listed,
            f"model {settings.model} listed"
            if listed
            else f"model {settings.model} is not listed; available: {', '.join(models[:8])}",
        ),
    ]


def _model_checks(settings: Settings) -> list[tuple[bool, str]]:
    """What ``agent.models.backends.choose_model`` decided the setting means, and whether it works."""
    from agent.models.backends import Backend, choose_model

    choice = choose_model(settings)
    if choice.backend in (Backend.SCRIPT, Backend.LOCAL) and not choice.default:
        return _model_file_checks(choice)
    if choice.backend is Backend.ENDPOINT and settings.base_url:
        return _endpoint_checks(settings, settings.base_url)
    return _default_local_checks(settings.home)


def _state_checks(settings: Settings) -> list[tuple[bool, str]]:
    checks: list[tuple[bool, str]] = []
    for label, path in (("state", settings.home), ("cache", settings.cache_dir)):
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".doctor-{os.getpid()}"
            probe.write_text("ok")
            probe.unlink()
            checks.append((True, f"{label} directory writable: {path}"))
        except OSError as exc:
            checks.append(
                (False, f"{label} directory {path} not writable: {exc.strerror}; set WATT_HOME")
            )
    return checks


def run_doctor(settings: Settings) -> int:
    """One line per check: ok, or what to do."""
    from importlib.metadata import version

    from cli.model_cmd import backend_checks

    config = settings.config_file
    checks = [
        (True, f"config: {config} ({'present' if config.exists() else 'absent, using defaults'})")
    ]
    checks += _model_checks(settings)
    checks += backend_checks(settings)  # the local backend, through a long prompt in a child
    checks.append((True, f"wasmtime {version('wasmtime')}"))
    checks += _state_checks(settings)
    catalog, errors = _load_catalog(settings)
    bad = f", {len(errors)} bad file(s): {errors[0].one_line()}" if errors else ""
    checks.append((not errors, f"catalog: {len(catalog)} program(s){bad}"))
    for ok, line in checks:
        say(f"{'ok  ' if ok else 'FIX '} {line}")
    return EXIT_OK if all(ok for ok, _ in checks) else EXIT_FAILED
