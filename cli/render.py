"""Renderers of the loop's event stream: rich (for people) and JSON lines (for programs).

The rich renderer shows model and program text inert (``cli.safe_text``) and only inside
``Text`` objects, never as markup; the JSON renderer keeps the exact text (``safe_text.dumps``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import IO, Any

from pygments.lexer import inherit, words
from pygments.lexers.webassembly import WatLexer
from pygments.token import Keyword, Name, String
from rich.console import Console
from rich.errors import LiveError
from rich.live import Live
from rich.syntax import Syntax
from rich.text import Text

from agent.events import (
    AnswerSource,
    ErrorEvent,
    Event,
    ResponseEvent,
    Retry,
    Thinking,
    ToolResult,
    ToolStart,
)
from agent.hints import status_hint
from agent.steps import ActionKind
from cli.safe_text import dumps, inert
from rt.codes import status_text
from rt.errors import remedy_for

_LEADS = {
    "CompileError": "compile error",
    "SourceTooLarge": "compile error",
    "LinkError": "link error",
}


def failure_text(error_type: str, error: str) -> str:
    """A failed run for a person: the message once (it names what happened: ``trap: ...``,
    ``fuel exhausted: ...``), a compile or link error said to be one, and the setting that
    raises the limit when a limit stopped it."""
    lead = _LEADS.get(error_type)
    text = f"{lead}: {error}" if lead else error
    remedy = remedy_for(error_type)
    return f"{text}; {remedy}" if remedy else text


def _ms(value: float) -> str:
    return f"{value / 1000:.2f}s" if value >= 1000 else f"{value:.1f}ms"


def shown(text: str, style: str = "") -> Text:
    """Untrusted text for a rich console: inert, and a ``Text`` (so never read as markup)."""
    return Text(inert(text), style=style)


MACROS = ("argv", "check", "resv", "arg", "answer")


class WattLexer(WatLexer):  # type: ignore[misc]  # pygments ships no type hints
    """Pygments' WebAssembly lexer plus WAT-plus: the macros (``argv``, ``check``, ``resv``,
    ``arg``, ``answer``) are keywords, ``str.upper`` is a function name, ``\"\"\"raw\"\"\"`` is a
    string; WAT-plus is never drawn as an error."""

    name = "WAT-plus"
    aliases = ["watt"]
    tokens = {
        "root": [
            (r'"""[\s\S]*?"""', String.Double),
            (words(MACROS, prefix=r"(?<=\()", suffix=r"(?=[\s()]|$)"), Keyword),
            inherit,  # WAT itself first: local.get, i32.const are the WebAssembly lexer's
            (r"[A-Za-z_]\w*\.[A-Za-z_][\w.]*(?=[\s()]|$)", Name.Function),  # a host call
            (r"[^\s()\"$;]+", Name),  # any other word: plain, not an error
        ]
    }


def program_view(program: str) -> Syntax:
    """A WAT-plus program with syntax highlighting (``WattLexer``), inert."""
    return Syntax(
        inert(program.strip("\n")),
        WattLexer(),
        theme="ansi_dark",
        line_numbers=False,
        word_wrap=True,
    )


class Running:
    """``running 2.3s``: a program's elapsed time, read from ``clock`` whenever it is drawn."""

    def __init__(self, what: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.clock = clock
        self.started = clock()

    def __rich__(self) -> Text:
        return Text(f"  {self.what} running, {self.clock() - self.started:.1f}s", style="dim")


class RichRenderer:
    """Progress for a person: step, what the model is doing, the program, its result.

    A program still running after ``running_after`` seconds gets a live line with its elapsed
    time (on a terminal: a rich ``Live``, removed when the result arrives)."""

    def __init__(
        self, console: Console, *, show_programs: bool = True, running_after: float = 1.0
    ) -> None:
        self.console = console
        self.show_programs = show_programs
        self.running_after = running_after
        self._program = ""  # the last program started, for a status hint
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._live: Live | None = None
        self.live_started = threading.Event()

    def _start_running(self, what: str) -> None:
        if not self.console.is_terminal:
            return
        running = Running(what)
        timer: threading.Timer

        def show() -> None:
            with self._lock:
                if self._timer is not timer:  # the result (or the next program) came first
                    return
                live = Live(running, console=self.console, transient=True, refresh_per_second=4)
                try:
                    live.start()
                except LiveError:  # another live display (a model's progress) holds the console
                    return
                self._live = live
                self.live_started.set()

        with self._lock:
            timer = self._timer = threading.Timer(self.running_after, show)
            timer.daemon = True
            timer.start()

    def close(self) -> None:
        """Stop the running line, if any (the next event, Ctrl-C or the end of the task)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._live is not None:
                self._live.stop()
                self._live = None

    def __call__(self, event: Event) -> None:
        self.close()
        c = self.console
        if isinstance(event, Thinking):
            line = Text(f"step {event.step} ", style="bold cyan")
            cost = "" if event.cost is None else f", ${event.cost:.4f}"
            line.append(
                f"model {_ms(event.model_ms)}, {event.usage.total} tokens{cost}", style="dim"
            )
            if event.text:
                line.append("  " + inert(" ".join(event.text.split()))[:300], style="italic")
            c.print(line)
        elif isinstance(event, ToolStart):
            if event.action is ActionKind.CATALOG:
                args = ", ".join(repr(a) for a in event.args)
                c.print(shown(f"  run catalog {event.name}({args})", style="magenta"))
            else:
                args = f" args {list(event.args)}" if event.args else ""
                c.print(shown(f"  run program{args}", style="magenta"))
                if self.show_programs:
                    c.print(program_view(event.program))
            self._program = event.program
            self._start_running(f"catalog {event.name}" if event.name else "program")
        elif isinstance(event, ToolResult):
            self._result(event)
        elif isinstance(event, Retry):
            c.print(
                shown(
                    f"  compile error, asking for a repair ({event.attempt}): {event.reason}",
                    style="yellow",
                )
            )
        elif isinstance(event, ResponseEvent):
            tag = " (forced at the step limit)" if event.forced and not event.unverified else ""
            if event.unverified:
                tag = " (unverified: a best answer after the task was stopped)"
            elif event.source is AnswerSource.PROGRAM:
                tag = " (answer from the program)"
            c.print(
                Text(
                    f"answered in {event.step} step(s){tag}, {_ms(event.elapsed_ms)}, "
                    f"{event.usage.total} tokens{' (estimated)' if event.usage.estimated else ''}",
                    style="green",
                )
            )
        elif isinstance(event, ErrorEvent):
            c.print(shown(f"error: {event.message}", style="bold red"))
        else:  # a kind this view does not know yet: its fields, on one line
            fields = ", ".join(
                f"{k}={v}" for k, v in event.to_dict().items() if k not in ("kind", "step")
            )
            c.print(Text(f"  {event.kind.value} (step {event.step}): {_clip(fields)}", style="dim"))

    def _result(self, event: ToolResult) -> None:
        c = self.console
        timing = sum(event.timings.values()) if event.timings else 0.0
        if event.error is not None:
            c.print(
                shown(f"  failed: {failure_text(event.error_type or '', event.error)}", style="red")
            )
        else:
            style = "green" if event.ok else "red"
            c.print(
                shown(
                    f"  {'status -' if event.status is None else status_text(event.status)}, fuel {event.fuel_used}, {_ms(timing)}",
                    style=style,
                )
            )
        hint = status_hint(self._program, event.status) if event.status else ""
        if hint and event.error is None:
            c.print(shown(f"  {hint}", style="yellow"))
        for i, result in enumerate(event.results[:20]):
            c.print(Text(f"  [{i}] ", style="dim") + Text(_clip(result)))
        if len(event.results) > 20:
            c.print(Text(f"  ... {len(event.results) - 20} more results", style="dim"))
        for line in event.debug[:20]:
            c.print(Text(f"  debug: {_clip(line)}", style="dim"))


def _clip(text: str, limit: int = 400) -> str:
    """One line, inert, cut to ``limit`` characters."""
    text = inert(text.replace("\n", "⏎ "))
    return text if len(text) <= limit else text[:limit] + "…"


class JsonRenderer:
    """One JSON object per event per line."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        self.entry(event.to_dict())

    def entry(self, data: dict[str, Any]) -> None:
        """One journal row's JSON (``agent.store.journal.Entry.to_dict``), or an event's."""
        self.stream.write(dumps(data, default=_default) + "\n")
        self.stream.flush()


def _default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return str(value)
