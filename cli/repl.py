"""`watt chat`: the REPL.

``Repl.handle(line)`` is the whole behaviour (a task, or a slash command from cli.slash) and
is tested without a terminal; ``run_repl`` wires it to prompt-toolkit (a persistent history
file, multi-line input) when stdin and stdout are terminals, and to plain lines from stdin
otherwise, so the REPL can be scripted. Every error is one line and the loop carries on;
Ctrl-C stops the running task (its session turn is rolled back whole) or clears the line;
Ctrl-D exits with status 0. Everything printed is inert (``cli.render.shown``).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from typing import IO, Any, cast

from rich.console import Console
from rich.text import Text

from agent.app import Parts
from agent.config import Settings
from agent.events import ErrorEvent, Event
from agent.outcome import task_outcome
from cli.common import EXIT_OK, cancel_on_sigint
from cli.render import RichRenderer, failure_text, shown
from cli.slash import INPUT_HELP, command_list, find_command
from rt.errors import Interrupted, WattError

PROMPT = "watt> "
Reader = Callable[[], str]  # returns one (possibly multi-line) entry; EOFError at the end


class Repl:
    """The REPL's logic over injected parts and a console; no terminal handling here."""

    def __init__(self, parts: Parts, console: Console, *, show_programs: bool = True) -> None:
        self.parts = parts
        self.console = console
        self.renderer = RichRenderer(console, show_programs=show_programs)
        self.render: Callable[[Event], None] = self.renderer

    def banner(self) -> None:
        session = self.parts.session.name if self.parts.session is not None else "(none)"
        self.console.print(
            shown(f"watt chat: session {session}, model {self.parts.model.name}", style="bold")
        )
        self.console.print(Text(f"/help lists the commands. {INPUT_HELP}", style="dim"))
        if self.parts.catalog_errors:
            self.console.print(
                Text(
                    f"warning: {len(self.parts.catalog_errors)} catalog file(s) did not load: "
                    "see `watt catalog check`",
                    style="yellow",
                )
            )

    def handle(self, line: str) -> bool:
        """Act on one entry; False means exit. Never raises for a WattError or Ctrl-C."""
        text = line.strip()
        if not text:
            return True
        try:
            if text.startswith("/"):
                return self.command(text)
            self.task(text)
        except (KeyboardInterrupt, Interrupted):
            self.console.print(Text("interrupted", style="yellow"))
        except WattError as exc:  # a limit that stopped /run names the setting that raises it
            self.error(failure_text(type(exc).__name__, exc.one_line()))
        except Exception as exc:  # noqa: BLE001 - the REPL survives anything, in one line
            self.error(f"{type(exc).__name__}: {' '.join(str(exc).split())}")
        return True

    def error(self, message: str) -> None:
        self.console.print(shown(f"error: {message}", style="bold red"))

    def command(self, text: str) -> bool:
        name, _, arg = text[1:].partition(" ")
        command = find_command(name.strip())
        if command is None:
            self.error(f"unknown command {text.split()[0]}; commands: {command_list()}")
            return True
        if command.name == "resume":
            self.task("", resume=True)
            return True
        if command.handler is None:
            return False
        command.handler(self.parts, self.console, arg.strip())
        return True

    def task(self, task: str, *, resume: bool = False) -> None:
        """Run one task (or ``/resume`` the last interrupted one); an interruption or error
        propagates to ``handle`` after cleanup."""
        from agent.app import ask, resume_turn
        from cli.model_cmd import model_progress

        cancel = threading.Event()
        # ask is a generator function: closing it ends an open turn (recorded interrupted)
        run = (
            resume_turn(self.parts, cancel=cancel)
            if resume
            else ask(self.parts, task, cancel=cancel)
        )
        events = cast("Generator[Event, None, None]", run)
        seen: list[Event] = []
        try:
            # the local model's check, load and prompt evaluation as progress (the first task)
            with cancel_on_sigint(cancel), model_progress(self.parts.model, self.console):
                for event in events:
                    seen.append(event)
                    if not isinstance(event, ErrorEvent):  # a stop is shown once, below
                        self.render(event)
        except BaseException:
            cancel.set()
            raise
        finally:
            self.renderer.close()  # the running line of a program Ctrl-C stopped
            events.close()  # a turn left open by Ctrl-C in our own code is ended here
        outcome = task_outcome(seen)
        if outcome.error is not None:
            self.error(outcome.error)
        if outcome.answer is not None:
            self.console.print()
            self.console.print(shown(outcome.answer, style="bold"))
            self.console.print()

    def loop(self, read: Reader) -> int:
        """Read and handle entries until /exit or end of input (Ctrl-D)."""
        while True:
            try:
                line = read()
            except KeyboardInterrupt:
                continue  # Ctrl-C at the prompt clears the line
            except EOFError:
                return EXIT_OK
            try:
                if not self.handle(line):
                    return EXIT_OK
            except KeyboardInterrupt:
                self.console.print(Text("interrupted", style="yellow"))


def stdin_reader(stream: IO[str]) -> Reader:
    """Entries from a non-terminal stream; a line ending with a backslash continues."""

    def read() -> str:
        lines: list[str] = []
        while True:
            raw = stream.readline()
            if not raw:
                if lines:
                    return "\n".join(lines)
                raise EOFError
            line = raw.rstrip("\n").rstrip("\r")
            if line.endswith("\\"):
                lines.append(line[:-1])
                continue
            lines.append(line)
            return "\n".join(lines)

    return read


def prompt_reader(history_path: Path | None) -> Reader:
    """prompt-toolkit input: Enter sends; a trailing backslash or Esc+Enter adds a line."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, History, InMemoryHistory
    from prompt_toolkit.key_binding import KeyBindings

    bindings = KeyBindings()

    @bindings.add("enter")
    def _enter(event: Any) -> None:
        buffer = event.current_buffer
        if buffer.document.is_cursor_at_the_end and buffer.text.endswith("\\"):
            buffer.delete_before_cursor(1)
            buffer.insert_text("\n")
        else:
            buffer.validate_and_handle()

    @bindings.add("escape", "enter")
    def _newline(event: Any) -> None:
        event.current_buffer.insert_text("\n")

    history: History = (
        FileHistory(str(history_path)) if history_path is not None else InMemoryHistory()
    )
    session: PromptSession[str] = PromptSession(
        history=history,
        multiline=True,
        key_bindings=bindings,
        prompt_continuation=lambda width, line_number, wrap_count: "." * (width - 1) + " ",
    )
    return lambda: session.prompt(PROMPT)


def history_file(home: Path) -> Path | None:
    """``home/chat_history`` (creating ``home``), or None when it cannot be written."""
    path = home / "chat_history"
    try:
        home.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    except OSError:
        return None
    return path


def run_repl(settings: Settings, *, model_spec: str | None = None) -> int:
    from agent.app import open_parts, prewarm
    from cli.common import out_console

    console = out_console()
    with open_parts(settings, model_spec=model_spec) as parts:
        parts.model  # noqa: B018 - configuration errors surface before the prompt
        prewarm(parts)
        repl = Repl(parts, console)
        repl.banner()
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
        if not interactive:
            return repl.loop(stdin_reader(sys.stdin))
        history = history_file(settings.home)
        if history is None:
            repl.error(f"cannot write {settings.home / 'chat_history'}: history is not saved")
        code = repl.loop(prompt_reader(history))
        console.print()
        return code
