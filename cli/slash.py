"""The REPL's slash commands: /help, /catalog, /run, /kv, /session, /reset, /steps, /save, /exit.

Each command is a function ``(parts, console, arg) -> None`` that prints to the console (text
from programs, the model or the session through ``shown``: inert, never markup) and raises
``WattError`` on failure (the REPL turns that into one line). ``save_last_program``
is the library-style part of /save: it writes the file and returns what it did, printing
nothing.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.text import Text

from agent.app import Parts
from agent.catalog import (
    NAME_RE,
    ArgSpec,
    Catalog,
    Example,
    Program,
    apply_defaults,
    body_capabilities,
    catalog_dirs,
    parse_program,
    render_front_matter,
)
from agent.sessions import Session
from agent.steps import ActionKind
from cli.render import program_view, shown
from rt.codes import status_name
from rt.errors import CatalogError, ConfigError, Interrupted, RunError, SessionError

# Capabilities without side effects: /save may re-run such a program to record its results.
PURE_NAMESPACES = frozenset({"sys", "str", "math", "arr", "json", "debug"})
DESCRIPTION_CHARS = 200
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
    console.print(
        Text(f"status {result.status} {result.status_name}, fuel {result.fuel_used}", style=style)
    )


def _print_results(console: Console, results: list[str]) -> None:
    for line in results:
        console.print(shown(line))


def find_program(catalog: Catalog, name: str) -> Program:
    program = catalog.get(name)
    if program is None:
        names = ", ".join(catalog.names()) or "(the catalog is empty)"
        raise CatalogError(f"no catalog program named {name!r}; programs: {names}")
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
    console.print(shown(f"session {session.name}: {turns} turn(s), {steps} step(s), {keys} kv key(s)"))
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
    console.print(shown(f"turn {turn.id}: {clip(one_line(turn.task), SNIPPET_CHARS)}", style="bold"))
    for s in session.steps(turn.id):
        status = "-" if s.status is None else f"{s.status} {status_name(s.status)}"
        tokens = f"{s.prompt_tokens or 0}+{s.completion_tokens or 0}"
        head = f"  step {s.step} {s.action.value}: status {status}, fuel {s.fuel or 0}, tokens {tokens}"
        console.print(Text(head, style="cyan"))
        if s.action is ActionKind.RESPONSE:
            snippet = s.reply
        elif s.action is ActionKind.CATALOG:
            snippet = f"{s.program}({', '.join(repr(a) for a in s.args)})"
        else:
            snippet = one_line(s.program or "") + (f"  args {list(s.args)}" if s.args else "")
        console.print(shown(f"    {clip(snippet.strip(), SNIPPET_CHARS)}", style="dim"))


@dataclass(frozen=True)
class Saved:
    path: Path
    program: Program
    results_captured: bool
    notes: tuple[str, ...] = ()


def save_last_program(parts: Parts, name: str) -> Saved:
    """Write the session's last successful program to the user catalog and reload the catalog."""
    if not NAME_RE.fullmatch(name):
        raise CatalogError(f"program name {name!r} must match [a-z][a-z0-9_]{{0,63}}")
    session = need_session(parts)
    last = session.last_program()
    if last is None:
        raise CatalogError("no successful program in this session yet: nothing to save")
    path = parts.settings.user_catalog / f"{name}.wat"
    if path.exists():
        raise CatalogError(f"{path} already exists: choose another name or remove it")
    task = next((t.task for t in session.turns() if t.id == last.turn), "")
    description = clip(one_line(task), DESCRIPTION_CHARS) or f"saved from session {session.name}"
    specs = [ArgSpec(f"arg{i}", "string", f"argument {i}") for i in range(len(last.args))]
    body = last.text.strip("\n")
    results, note = _example_results(parts, body, list(last.args))
    notes = [note] if note else []
    shadowed = parts.catalog.get(name)
    if shadowed is not None:
        notes.append(f"it overrides {shadowed.path}")
    example = Example(args=tuple(last.args), results=results)
    # The blank line keeps a body that starts with ';;;' out of the front matter.
    source = render_front_matter(name, description, specs, [example]) + "\n" + body + "\n"
    program = parse_program(source.encode("utf-8"), path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as fh:
            fh.write(source)
    except FileExistsError as exc:
        raise CatalogError(f"{path} already exists: choose another name or remove it") from exc
    except OSError as exc:
        raise CatalogError(f"cannot write {path}: {exc.strerror or exc}") from exc
    reload_catalog(parts)
    return Saved(path, program, results is not None, tuple(notes))


def _example_results(
    parts: Parts, body: str, args: list[str]
) -> tuple[tuple[str, ...] | None, str]:
    """Re-run a side-effect-free program to capture its results; None when we cannot."""
    impure = sorted(set(body_capabilities(body)) - PURE_NAMESPACES)
    if impure:
        return None, f"example results not recorded: the program uses {', '.join(impure)}"
    try:
        result = parts.runtime.run(body, args, granted=parts.granted)
    except Interrupted:
        raise
    except RunError as exc:
        return None, f"example results not recorded: the re-run failed: {exc.one_line()}"
    if not result.ok:
        return None, f"example results not recorded: the re-run returned {result.status_name}"
    return tuple(result.results), ""


def reload_catalog(parts: Parts) -> None:
    parts.catalog, parts.catalog_errors = Catalog.load(
        catalog_dirs(parts.settings.home, parts.settings.catalog)
    )


def cmd_save(parts: Parts, console: Console, arg: str) -> None:
    words = arg.split()
    if len(words) != 1:
        raise ConfigError("usage: /save NAME")
    saved = save_last_program(parts, words[0])
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
    Command("exit", "/exit", "leave (Ctrl-D works too)", None),
)


def find_command(name: str) -> Command | None:
    return next((c for c in COMMANDS if c.name == name), None)


def command_list() -> str:
    return ", ".join("/" + c.name for c in COMMANDS)
