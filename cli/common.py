"""Shared CLI plumbing: settings from flags, error-to-exit-code mapping, consoles.

Everything a person reads goes through ``cli.safe_text.inert`` (SECURITY.md rule 17): ``say``
for plain lines, ``fail`` for the one-line errors, and the rich consoles below never read
markup from a string, so a result holding ``[bold red]`` prints as it is.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from typer.core import TyperGroup

from cli.safe_text import inert

if TYPE_CHECKING:
    from rich.console import Console

    from agent.config import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
F = TypeVar("F", bound=Callable[..., Any])


HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
"""``-h`` as well as ``--help``, on every command (click's child contexts inherit it)."""


class FullHelpGroup(TyperGroup):
    """A command group whose ``--help`` lists each command's whole summary line, wrapped,
    instead of click's first 45-odd characters cut with "..."."""

    def format_commands(self, ctx: Any, formatter: Any) -> None:  # typer's vendored click types
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def version_text() -> str:
    """``watt X.Y.Z`` from the installed distribution's metadata."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"watt {version('watt-agent')}"
    except PackageNotFoundError:
        return "watt (version unknown: not installed as a distribution)"


def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


def out_console() -> Console:
    from rich.console import Console

    return Console(highlight=False, markup=False, soft_wrap=True)


def say(text: str, *, err: bool = False) -> None:
    """Print a line for a person, inert: control and bidi characters shown as escapes."""
    print(inert(text), file=sys.stderr if err else sys.stdout)


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """Print one line (inert) to stderr and return the Exit to raise."""
    say(f"watt: {message}", err=True)
    return typer.Exit(code)


def exit_code_for(exc: BaseException) -> int:
    """130 for Ctrl-C; 2 for what the user must fix (a flag, config, grant, session name, the
    endpoint, a catalog file); 1 for everything else (the task or program failed)."""
    from rt.errors import (
        CapabilityError,
        CatalogError,
        ConfigError,
        Interrupted,
        ModelSetupError,
        SessionInUse,
        UnknownSession,
    )

    if isinstance(exc, Interrupted):
        return EXIT_INTERRUPTED
    usage = (
        ConfigError,
        ModelSetupError,
        SessionInUse,
        UnknownSession,
        CatalogError,
        CapabilityError,
    )
    if isinstance(exc, usage):
        return EXIT_USAGE
    return EXIT_FAILED


def handle_errors(fn: F) -> F:
    """Every WattError becomes one line on stderr and an exit code; Ctrl-C exits 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from rt.errors import WattError

        try:
            return fn(*args, **kwargs)
        except WattError as exc:
            raise fail(exc.one_line(), exit_code_for(exc)) from None
        except KeyboardInterrupt:
            raise fail("interrupted", EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def settings_from(*, notes: bool = False, **flags: Any) -> Settings:
    """Settings from the flags (a bad value is a ConfigError: exit 2). With ``notes``, what the
    user should know about the grants (a loopback allow-list entry) goes to stderr."""
    from agent.config import allow_list_notes, load_settings

    settings = load_settings(flags)
    if notes:
        for line in allow_list_notes(settings):
            say(f"note: {line}", err=True)
    return settings


@contextlib.contextmanager
def cancel_on_sigint(cancel: threading.Event) -> Iterator[None]:
    """While a task runs, Ctrl-C also sets ``cancel``, then raises KeyboardInterrupt as usual.

    A KeyboardInterrupt raised while native code is calling back into Python (llama.cpp's log
    and progress callbacks, through ctypes) is printed and dropped by ctypes: a Ctrl-C during
    a local model's load was lost that way and the task ran on. The event survives: the model
    and the runtime check it and stop the task at their next check.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        cancel.set()
        if callable(previous) and previous is not handler:
            previous(signum, frame)
        else:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
