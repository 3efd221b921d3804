"""The REPL's slash commands: /help, /catalog, /run, /kv, /session, /reset, /steps, /save, /exit.

Each command is a function ``(parts, console, arg) -> None`` that prints to the console (text
from programs, the model or the session through ``shown``: inert, never markup) and raises
``WattError`` on failure (the REPL turns that into one line). The work is the library's:
/save is ``Parts.save_last_program`` (``agent.programs.writer``).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.text import Text

from agent.app import Parts
from agent.hints import status_hint
from agent.programs.catalog import Catalog, Program, apply_defaults
from agent.steps import ActionKind
from agent.store.sessions import Session
from cli.render import program_view, shown
from rt.codes import status_text
from rt.errors import ConfigError, RunError, SessionError

VALUE_CHARS = 60
SNIPPET_CHARS = 72

INPUT_HELP = (
    "Type a task and press Enter. For more lines, end a line with \\ or press Esc+Enter "
    "(Alt+Enter). Ctrl-C stops a running task or clears the line; Ctrl-D exits."
)

Handler = Callable[[Parts, Console, str], None]


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    summary: str
    handler: Handler | None  # None: handled by the REPL itself (/exit)


def clip(text: str, limit: int) -> str:
    """``text`` on one line (newlines shown as ⏎), cut to ``limit`` characters."""
    flat = text.replace("\r", "").replace("\n", "⏎ ")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def one_line(text: str) -> str:
    return " ".join(text.split())


def need_session(parts: Parts) -> Session:
    if parts.session is None:
        raise SessionError("no session is open")
    return parts.session


# ---- the commands -------------------------------------------------------------------------------


def cmd_help(parts: Parts, console: Console, arg: str) -> None:
    width = max(len(c.usage) for c in COMMANDS)
    for c in COMMANDS:
        console.print(Text(f"  {c.usage:<{width}}  ", style="bold") + Text(c.summary))
    console.print(Text(INPUT_HELP, style="dim"))


def cmd_catalog(parts: Parts, console: Console, arg: str) -> None:
    if len(parts.catalog) == 0:
        console.print("(the catalog is empty)")
    user_dir = parts.settings.user_catalog
    for program in parts.catalog:
        line = shown(f"  {program.usage()}", style="bold")
        line.append_text(shown(f"  {program.description}"))
        if program.path.parent == user_dir:
            line.append("  (user)", style="dim")
        console.print(line)
    if parts.catalog_errors:
        console.print(
            Text(
                f"  {len(parts.catalog_errors)} file(s) did not load: see `watt catalog check`",
                style="yellow",
            )
        )


def cmd_run(parts: Parts, console: Console, arg: str) -> None:
    try:
        words = shlex.split(arg)
    except ValueError as exc:
        raise ConfigError(f"/run: {exc}") from exc
    if not words:
        raise ConfigError("usage: /run NAME [ARGS...]")
    program = find_program(parts.catalog, words[0])
    args = apply_defaults(program, words[1:])
    console.print(
        shown(f"run catalog {program.name}({', '.join(repr(a) for a in args)})", style="magenta")
    )
    try:
        result = parts.runtime.run(
            program.body, args, granted=parts.granted, line_offset=program.body_line - 1
        )
    except RunError as exc:
        if exc.partial is not None:
            _print_results(console, exc.partial.results)
        raise
    _print_results(console, result.results)
    for line in result.debug:
        console.print(shown(f"debug: {clip(line, 400)}", style="dim"))
    style = "green" if result.ok else "red"
    console.print(Text(f"{status_text(result.status)}, fuel {result.fuel_used}", style=style))
    hint = status_hint(program.body, result.status)
    if hint:
        console.print(shown(hint, style="yellow"))


def _print_results(console: Console, results: list[str]) -> None:
    for line in results:
        console.print(shown(line))


def find_program(catalog: Catalog, name: str) -> Program:
    program = catalog.get(name)
    if program is None:
        raise catalog.not_found(name)
    return program


def cmd_kv(parts: Parts, console: Console, arg: str) -> None:
    kv = need_session(parts).kv
    keys = kv.keys()
    if not keys:
        console.print("(kv is empty)")
    for key in keys:
        value = kv.get(key)
        console.print(
            shown(f"  {clip(key, VALUE_CHARS)}", style="bold")
            + shown(f" = {clip(value or '', VALUE_CHARS)}")
        )


def cmd_session(parts: Parts, console: Console, arg: str) -> None:
    session = need_session(parts)
    turns, steps, keys = len(session.turns()), len(session.steps()), len(session.kv.keys())
    console.print(
        shown(f"session {session.name}: {turns} turn(s), {steps} step(s), {keys} kv key(s)")
    )
    console.print(shown(f"  {session.path}", style="dim"))


def cmd_reset(parts: Parts, console: Console, arg: str) -> None:
    need_session(parts).reset()
    console.print("history and steps cleared (kv kept)")


def cmd_steps(parts: Parts, console: Console, arg: str) -> None:
    session = need_session(parts)
    turns = session.turns()
    if not turns:
        console.print("(no turns yet)")
        return
    turn = turns[-1]
    console.print(
        shown(f"turn {turn.id}: {clip(one_line(turn.task), SNIPPET_CHARS)}", style="bold")
    )
    for s in session.steps(turn.id):
        status = "status -" if s.status is None else status_text(s.status)
        tokens = f"{s.prompt_tokens or 0}+{s.completion_tokens or 0}"
        head = f"  step {s.step} {s.action.value}: {status}, fuel {s.fuel or 0}, tokens {tokens}"
        console.print(Text(head, style="cyan"))
        if s.action is ActionKind.RESPONSE:
            snippet = s.reply
        elif s.action is ActionKind.CATALOG:
            snippet = f"{s.program}({', '.join(repr(a) for a in s.args)})"
        else:
            snippet = one_line(s.program or "") + (f"  args {list(s.args)}" if s.args else "")
        console.print(shown(f"    {clip(snippet.strip(), SNIPPET_CHARS)}", style="dim"))


def cmd_save(parts: Parts, console: Console, arg: str) -> None:
    words = arg.split()
    if len(words) != 1:
        raise ConfigError("usage: /save NAME")
    saved = parts.save_last_program(words[0])
    console.print(program_view(saved.program.body))
    console.print(shown(f"saved {saved.program.usage()} to {saved.path}", style="green"))
    for note in saved.notes:
        console.print(shown(note, style="yellow"))


COMMANDS: tuple[Command, ...] = (
    Command("help", "/help", "this help", cmd_help),
    Command("catalog", "/catalog", "list catalog programs with their usage", cmd_catalog),
    Command("run", "/run NAME ARGS", "run a catalog program (shell-style quoting)", cmd_run),
    Command("kv", "/kv", "the session's key-value store", cmd_kv),
    Command("session", "/session", "the session's name, turns and steps", cmd_session),
    Command("reset", "/reset", "forget history and steps (kv is kept)", cmd_reset),
    Command("steps", "/steps", "the last turn's steps: program, status, fuel, tokens", cmd_steps),
    Command("save", "/save NAME", "save the last successful program to your catalog", cmd_save),
    Command("resume", "/resume", "continue the last interrupted or crashed turn", None),
    Command("exit", "/exit", "leave (Ctrl-D works too)", None),
)


def find_command(name: str) -> Command | None:
    return next((c for c in COMMANDS if c.name == name), None)


def command_list() -> str:
    return ", ".join("/" + c.name for c in COMMANDS)
