"""`watt ask` and `watt run`: drive the library and map outcomes to exit codes.

What a person reads is inert (``cli.common.say``); ``--json`` keeps the exact text and
``watt run --raw`` writes the results byte-exact (UTF-8) for pipelines.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from agent.config import Settings
    from agent.events import Event


def run_ask(
    settings: Settings, task: str, *, model_spec: str | None, json_out: bool, quiet: bool,
    fresh: bool = False, resume: bool = False, instructions: str = "",
) -> int:  # fmt: skip
    """``--json`` prints the journal's rows as they are appended (the same JSON as
    ``watt log --json --follow`` and the server's stream)."""
    from agent.app import ask, open_parts, prewarm, resume_turn
    from agent.events import ErrorEvent
    from agent.outcome import task_outcome
    from cli.common import exit_code_for
    from cli.model_cmd import model_progress
    from cli.render import JsonRenderer, RichRenderer
    from rt.errors import Interrupted, WattError

    with open_parts(settings, model_spec=model_spec) as parts:
        parts.instructions = instructions  # a named agent's (watt agents send)
        parts.model  # noqa: B018 - configuration errors surface before any work
        prewarm(parts)
        render: Callable[[Event], None] | None
        if json_out:
            render = None
        elif quiet:
            render = None
        else:
            render = RichRenderer(err_console())
        seen: list[Event] = []
        cancel = threading.Event()
        try:
            console = render.console if isinstance(render, RichRenderer) else None
            with cancel_on_sigint(cancel), model_progress(parts.model, console):
                on_entry = JsonRenderer(sys.stdout).entry if json_out else None
                events = (
                    resume_turn(parts, cancel=cancel, on_entry=on_entry)
                    if resume
                    else ask(parts, task, cancel=cancel, on_entry=on_entry, fresh=fresh)
                )
                for event in events:
                    seen.append(event)
                    if render is not None:
                        render(event)
                    elif isinstance(event, ErrorEvent) and not json_out:
                        say(f"watt: {event.message}", err=True)
        except (Interrupted, KeyboardInterrupt):
            print("watt: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except WattError as exc:
            # The loop yields an ErrorEvent, then raises: a person has read it once already.
            if json_out or not seen or not isinstance(seen[-1], ErrorEvent):
                raise
            return exit_code_for(exc)
        finally:
            if isinstance(render, RichRenderer):
                render.close()  # a program's running line never outlives the task
        outcome = task_outcome(seen)
        if outcome.answer is not None and not json_out:
            say(outcome.answer)
        return EXIT_OK if outcome.answered else EXIT_FAILED


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
    settings: Settings,
    name_or_path: str,
    args: list[str],
    *,
    json_out: bool,
    model_spec: str | None,
    raw: bool = False,
) -> int:
    """Results on stdout (inert, or byte-exact with ``raw``); debug and errors inert on stderr."""
    from agent.app import load_program
    from agent.app import run_program as run_source
    from agent.hints import status_hint
    from cli.render import failure_text
    from rt.codes import status_text
    from rt.errors import CompileError, Interrupted, LinkError, RunError

    source = load_program(settings, name_or_path)
    try:
        result = run_source(settings, source, args, model_spec=model_spec)
    except Interrupted:
        raise fail("interrupted", EXIT_INTERRUPTED) from None
    except RunError as exc:
        kind = type(exc).__name__
        if json_out:
            partial = exc.partial.to_dict() if exc.partial is not None else None
            print(dumps({"error": exc.one_line(), "error_type": kind, "partial": partial}))
            return EXIT_FAILED
        if isinstance(exc, (CompileError, LinkError)):
            raise fail(f"{source.where}: {exc.one_line()}", EXIT_FAILED) from None
        if exc.partial is not None:
            _print_results(exc.partial.results, raw=raw)
        raise fail(failure_text(kind, exc.one_line()), EXIT_FAILED) from None
    if json_out:
        print(dumps(result.to_dict()))
    else:
        _print_results(result.results, raw=raw)
        for line in result.debug:
            say(f"debug: {line}", err=True)
        if not result.ok:
            say(f"watt: {status_text(result.status)}", err=True)
            hint = status_hint(source.body, result.status)
            if hint:
                say(hint, err=True)
    return EXIT_OK if result.ok else EXIT_FAILED


def _print_results(results: Iterable[str], *, raw: bool) -> None:
    if raw:
        write_raw(results)
        return
    for line in results:
        say(line)
