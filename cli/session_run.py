"""`watt ask` and `watt run`: drive the library and map outcomes to exit codes.

What a person reads is inert (``cli.common.say``); ``--json`` keeps the exact text and
``watt run --raw`` writes the results byte-exact (UTF-8) for pipelines.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    cancel_on_sigint,
    err_console,
    fail,
    say,
)
from cli.safe_text import dumps


def run_ask(settings: Any, task: str, *, model_spec: str | None, json_out: bool, quiet: bool) -> int:
    from agent.app import ask, open_parts, prewarm
    from agent.events import ErrorEvent, Event
    from agent.outcome import task_outcome
    from cli.render import JsonRenderer, RichRenderer
    from rt.errors import Interrupted

    with open_parts(settings, model_spec=model_spec) as parts:
        parts.model  # noqa: B018 - configuration errors surface before any work
        prewarm(parts)
        render: Any
        if json_out:
            render = JsonRenderer(sys.stdout)
        elif quiet:
            render = None
        else:
            render = RichRenderer(err_console())
        seen: list[Event] = []
        cancel = threading.Event()
        try:
            with cancel_on_sigint(cancel):
                for event in ask(parts, task, cancel=cancel):
                    seen.append(event)
                    if render is not None:
                        render(event)
                    elif isinstance(event, ErrorEvent):
                        say(f"watt: {event.message}", err=True)
        except (Interrupted, KeyboardInterrupt):
            print("watt: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        outcome = task_outcome(seen)
        if outcome.answer is not None and not json_out:
            say(outcome.answer)
        return EXIT_OK if outcome.answered else EXIT_FAILED


def load_program(settings: Any, name_or_path: str) -> tuple[str, int, Any]:
    """(body, line offset, Program or None) for a catalog name or a .wat file."""
    from agent.catalog import (
        Catalog,
        catalog_dirs,
        parse_program,
        read_catalog_file,
        split_front_matter,
    )
    from rt.errors import CatalogError

    path = Path(name_or_path)
    if path.suffix == ".wat" or path.exists():
        data = read_catalog_file(path)  # refused from its stat when it is too large
        text = data.decode("utf-8", errors="replace")
        front, body_line, body = split_front_matter(text)
        if front:
            program = parse_program(data, path)
            return program.body, program.body_line - 1, program
        return body, body_line - 1, None
    catalog, _errors = Catalog.load(catalog_dirs(settings.home, settings.catalog))
    found = catalog.get(name_or_path)
    if found is None:
        names = ", ".join(catalog.names())
        raise CatalogError(f"no catalog program or file named {name_or_path!r}; programs: {names}")
    return found.body, found.body_line - 1, found


def write_raw(lines: Iterable[str]) -> None:
    """Each line's UTF-8 bytes and a newline on stdout, with no escaping (``watt run --raw``)."""
    sys.stdout.flush()
    buffer = getattr(sys.stdout, "buffer", None)
    for line in lines:
        if buffer is None:
            sys.stdout.write(line + "\n")
        else:
            buffer.write(line.encode("utf-8") + b"\n")
    (buffer or sys.stdout).flush()


def run_program(
    settings: Any, name_or_path: str, args: list[str], *, json_out: bool, model_spec: str | None, raw: bool = False
) -> int:
    """Results on stdout (inert, or byte-exact with ``raw``); debug and errors inert on stderr."""
    from agent.app import open_parts
    from agent.catalog import apply_defaults
    from rt.errors import CompileError, Interrupted, LinkError, RunError

    body, offset, program = load_program(settings, name_or_path)
    if program is not None:
        args = apply_defaults(program, args)
    uses_kv = "$kv." in body
    with open_parts(settings, model_spec=model_spec, use_session=uses_kv) as parts:
        try:
            result = parts.runtime.run(body, args, granted=parts.granted, line_offset=offset)
        except Interrupted:
            raise fail("interrupted", EXIT_INTERRUPTED) from None
        except RunError as exc:
            kind = type(exc).__name__
            if json_out:
                partial = exc.partial.to_dict() if exc.partial is not None else None
                print(dumps({"error": exc.one_line(), "error_type": kind, "partial": partial}))
                return EXIT_FAILED
            if isinstance(exc, (CompileError, LinkError)):
                where = program.path if program is not None else name_or_path
                raise fail(f"{where}: {exc.one_line()}", EXIT_FAILED) from None
            if exc.partial is not None:
                _print_results(exc.partial.results, raw=raw)
            raise fail(f"{kind}: {exc.one_line()}", EXIT_FAILED) from None
    if json_out:
        print(dumps(result.to_dict()))
    else:
        _print_results(result.results, raw=raw)
        for line in result.debug:
            say(f"debug: {line}", err=True)
        if not result.ok:
            say(f"watt: status {result.status} {result.status_name}", err=True)
    return EXIT_OK if result.ok else EXIT_FAILED


def _print_results(results: Iterable[str], *, raw: bool) -> None:
    if raw:
        write_raw(results)
        return
    for line in results:
        say(line)
