"""Read-only and housekeeping commands: catalog, sessions, log, doctor.

Every line goes out through ``say`` (inert: SECURITY.md rule 17), even a catalog file's own
source; ``watt log --json`` keeps the exact text.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail, say
from cli.safe_text import dumps


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def _load_catalog(settings: Any) -> tuple[Any, list[Any]]:
    from agent.catalog import Catalog, catalog_dirs

    return Catalog.load(catalog_dirs(settings.home, settings.catalog))


def list_catalog(settings: Any) -> int:
    catalog, errors = _load_catalog(settings)
    for program in catalog:
        say(f"{program.usage()}\n    {program.description}")
    for err in errors:
        say(f"watt: skipped {err.one_line()}")
    return EXIT_OK if not errors else EXIT_FAILED


def show_program(settings: Any, name: str) -> int:
    catalog, _ = _load_catalog(settings)
    program = catalog.get(name)
    if program is None:
        raise fail(f"no catalog program {name!r}; programs: {', '.join(catalog.names())}", EXIT_USAGE)
    say(f"# {program.path}")
    say(program.path.read_text(encoding="utf-8"))
    return EXIT_OK


def check_catalog(settings: Any, paths: list[Path]) -> int:
    from agent.app import open_parts
    from agent.catalog import load_file
    from rt.errors import WattError

    problems: list[str] = []
    programs = []
    if paths:
        for path in paths:
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


def new_program(settings: Any, name: str, directory: Path | None) -> int:
    from agent.catalog import scaffold

    text = scaffold(name)
    target_dir = directory or settings.user_catalog
    target = target_dir / f"{name}.wat"
    if target.exists():
        raise fail(f"{target} exists; choose another name or remove it", EXIT_USAGE)
    target_dir.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    say(f"wrote {target}; edit it, then `watt catalog check {target}` and `watt catalog test {name}`")
    return EXIT_OK


def test_catalog(settings: Any, name: str | None) -> int:
    from agent.examples import run_examples

    catalog, errors = _load_catalog(settings)
    programs = list(catalog)
    if name is not None:
        program = catalog.get(name)
        if program is None:
            raise fail(f"no catalog program {name!r}", EXIT_USAGE)
        programs = [program]
    passed = failed = 0
    for program in programs:
        for outcome in run_examples(program, limits=settings.limits, cache_dir=settings.cache_dir):
            if outcome.ok:
                passed += 1
            else:
                failed += 1
                say(f"FAIL {outcome.program}[{outcome.index}] {outcome.location}: {outcome.message}")
    for err in errors if name is None else []:
        failed += 1
        say(f"FAIL {err.one_line()}")
    say(f"catalog: {passed} passed, {failed} failed")
    return EXIT_OK if failed == 0 else EXIT_FAILED


def list_sessions(settings: Any) -> int:
    from agent.sessions import SessionStore

    rows = SessionStore(settings.home).list()
    if not rows:
        say("no sessions yet")
    for info in rows:
        extra = f"  ERROR {info.error}" if info.error else ""
        say(f"{info.name:<24} turns {info.turns:<4} steps {info.steps:<5} last used {_when(info.updated)}{extra}")
    return EXIT_OK


def show_session(settings: Any, name: str) -> int:
    from agent.sessions import SessionStore
    from rt.errors import SessionError

    store = SessionStore(settings.home)
    if not store.exists(name):
        raise SessionError(f"no session named {name!r}")
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


def show_log(settings: Any, *, json_out: bool, limit: int) -> int:
    from agent.sessions import SessionStore
    from rt.errors import SessionError

    store = SessionStore(settings.home)
    if not store.exists(settings.session):
        raise SessionError(f"no session named {settings.session!r}")
    with store.open(settings.session, create=False) as session:
        steps = session.steps()[-limit:]
    for step in steps:
        if json_out:
            print(dumps(step.to_dict()))
            continue
        tokens = (step.prompt_tokens or 0) + (step.completion_tokens or 0)
        say(f"turn {step.turn} step {step.step} {step.action.value}  status {step.status}  fuel {step.fuel}  tokens {tokens}")
        if step.program:
            for line in step.program.strip().splitlines()[:12]:
                say(f"    {line}")
        if step.observation:
            say("    -> " + " ".join(step.observation.split())[:200])
    if not steps and not json_out:
        say("no steps yet")
    return EXIT_OK


def _model_file_checks(spec: str) -> list[tuple[bool, str]]:
    """``--model local:PATH.gguf`` or ``script:FILE.jsonl``: the file, and for local the library."""
    from agent.local import INSTALL_HINT, llama_available

    kind, _, name = spec.partition(":")
    path = Path(name).expanduser()
    checks = [(path.is_file(), f"{kind} model file: {path}" + ("" if path.is_file() else " (not found)"))]
    if kind == "local":
        library = llama_available()
        checks.append((library, "llama-cpp-python installed" if library else f"llama-cpp-python missing: {INSTALL_HINT}"))
    return checks


def _default_local_checks(home: Path) -> list[tuple[bool, str]]:
    """No endpoint configured: the embedded local model is the default when it is installed."""
    from agent.local import INSTALL_HINT, llama_available
    from agent.weights import best_installed

    best, library = best_installed(home), llama_available()
    endpoint = "set WATT_BASE_URL (OpenAI-compatible /v1) and WATT_API_KEY"
    if best is not None and library:
        state = "sha256 verified" if best.verified else "not verified: run `watt model pull` again"
        return [(True, "no endpoint configured: using the local model"),
                (best.verified, f"local model {best.path.name} ({state})")]
    if best is not None:
        return [(False, f"local model {best.path.name} is installed but llama-cpp-python is missing: "
                        f"{INSTALL_HINT}, or {endpoint}")]
    if library:
        return [(False, f"no model: run `watt model pull` for the local model, or {endpoint}")]
    return [(False, f"no model: {endpoint}, or {INSTALL_HINT} && watt model pull")]


def run_doctor(settings: Any) -> int:
    """One line per check: ok, or what to do."""
    from importlib.metadata import version

    from agent.model import OpenAIChatModel
    from rt.errors import WattError

    checks: list[tuple[bool, str]] = []
    checks.append((True, f"config: {settings.config_file} ({'present' if settings.config_file.exists() else 'absent, using defaults'})"))
    spec = settings.model or ""
    if spec.startswith(("local:", "script:")):
        checks += _model_file_checks(spec)
    elif settings.base_url:
        checks.append((True, f"endpoint configured: {settings.base_url}"))
        from urllib.parse import urlparse

        from agent.app import LOCAL_HOSTS

        local = (urlparse(settings.base_url).hostname or "") in LOCAL_HOSTS
        key_ok = bool(settings.api_key) or local
        checks.append((key_ok, "API key present" if settings.api_key else
                       ("no API key (not needed for a local endpoint)" if local else "no API key: set WATT_API_KEY")))
        try:
            client = OpenAIChatModel(settings.base_url, settings.api_key, settings.model or "-", max_retries=0, timeout_s=5)
            models = client.list_models()
            client.close()
            checks.append((True, f"endpoint reachable: {len(models)} model(s)"))
            if settings.model:
                listed = settings.model in models
                checks.append((listed, f"model {settings.model} listed" if listed else
                               f"model {settings.model} is not listed; available: {', '.join(models[:8])}"))
            else:
                checks.append((False, "no model name: set WATT_MODEL"))
        except WattError as exc:
            checks.append((False, f"endpoint: {exc.one_line()}"))
    else:
        checks += _default_local_checks(settings.home)
    checks.append((True, f"wasmtime {version('wasmtime')}"))
    for label, path in (("state", settings.home), ("cache", settings.cache_dir)):
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".doctor-{os.getpid()}"
            probe.write_text("ok")
            probe.unlink()
            checks.append((True, f"{label} directory writable: {path}"))
        except OSError as exc:
            checks.append((False, f"{label} directory {path} not writable: {exc.strerror}; set WATT_HOME"))
    catalog, errors = _load_catalog(settings)
    checks.append((not errors, f"catalog: {len(catalog)} program(s)" + (f", {len(errors)} bad file(s): {errors[0].one_line()}" if errors else "")))
    for ok, line in checks:
        say(f"{'ok  ' if ok else 'FIX '} {line}")
    return EXIT_OK if all(ok for ok, _ in checks) else EXIT_FAILED
