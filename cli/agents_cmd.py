"""`watt agents`: named agents (a session plus stored grants, model and instructions).

spawn, send (in the foreground, or ``--detach`` in a background process), observe (the
journal's rows, live), ps, kill (interrupts a running turn) and rm. The logic is
``agent.named``; this module parses, prints (inert: ``cli.common.say``) and maps exit codes.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    FullHelpGroup,
    cancel_on_sigint,
    fail,
    handle_errors,
    say,
    settings_from,
)
from cli.safe_text import dumps

if TYPE_CHECKING:
    from agent.named import AgentStore
    from agent.store.journal import TurnRecord

agents_app = typer.Typer(
    help="Named agents: spawn one with its grants, send it tasks, observe, ps, kill, rm.",
    no_args_is_help=True,
    cls=FullHelpGroup,
)

Name = Annotated[str, typer.Argument(metavar="NAME", help="The agent's name (a session name).")]
JsonOut = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
DETACH_WAIT_S = 20.0


def _store() -> AgentStore:
    from agent.named import AgentStore

    return AgentStore(settings_from().home)


def _absolute(path: Path | None) -> str | None:
    return None if path is None else str(path.expanduser().resolve())


def _model_spec(model: str | None) -> str | None:
    """A ``script:FILE`` or ``local:PATH`` model is stored with an absolute path."""
    if model is None or ":" not in model or "://" in model:
        return model
    kind, _, rest = model.partition(":")
    if kind in ("script", "local") and rest:
        return f"{kind}:{Path(rest).expanduser().resolve()}"
    return model


@agents_app.command("spawn")
@handle_errors
def spawn(
    name: Name,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", metavar="MODEL", help="Model, script:FILE or local:PATH."),
    ] = None,
    fs_root: Annotated[
        Path | None, typer.Option("--fs-root", metavar="DIR", help="Directory fs may use.")
    ] = None,
    allow_domain: Annotated[
        list[str] | None,
        typer.Option("--allow-domain", metavar="HOST", help="Host http may reach; repeatable."),
    ] = None,
    no_ai: Annotated[bool, typer.Option("--no-ai", help="Do not grant ai.")] = False,
    agents: Annotated[
        int, typer.Option("--agents", metavar="N", help="Grant agent.run: N child runs per task.")
    ] = 0,
    catalog: Annotated[
        list[Path] | None,
        typer.Option("--catalog", metavar="DIR", help="Extra catalog directory; repeatable."),
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", metavar="N", help="Steps per turn.")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", metavar="SECONDS", help="Wall-clock limit per program run."),
    ] = None,
    system: Annotated[
        str, typer.Option("--system", metavar="TEXT", help="Instructions added to its prompt.")
    ] = "",
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace an existing agent (its history too).")
    ] = False,
) -> None:
    """Create a named agent with its own grants, model and instructions."""
    from agent.named import AgentConfig

    config = AgentConfig(
        name, model=_model_spec(model), system=system, allow_domains=tuple(allow_domain or ()),
        fs_root=_absolute(fs_root), ai=not no_ai, agents=agents,
        catalog=tuple(str(_absolute(c)) for c in catalog or ()), max_steps=max_steps,
        timeout=timeout,
    )  # fmt: skip
    _store().spawn(config, replace_existing=replace)
    granted = ", ".join(config.allow_domains) or "no hosts"
    say(f"spawned agent {name!r} (model {config.model or 'default'}; http: {granted})")


@agents_app.command("send")
@handle_errors
def send(
    name: Name,
    message: Annotated[str, typer.Argument(metavar="MESSAGE", help="The task for the agent.")],
    json_out: JsonOut = False,
    detach: Annotated[
        bool, typer.Option("--detach", help="Run in a background process; print the run id.")
    ] = False,
) -> None:
    """Run one turn with the agent's stored configuration and print its answer."""
    from cli.session_run import run_ask

    if not message.strip():
        raise fail("the message is empty", EXIT_USAGE)
    store = _store()
    config = store.get(name)
    settings = config.settings()
    if detach:
        raise typer.Exit(_detach(store, name, message))
    raise typer.Exit(
        run_ask(
            settings,
            message.strip(),
            model_spec=config.model,
            json_out=json_out,
            quiet=json_out,
            fresh=False,
            instructions=config.system,
        )  # fmt: skip
    )


def _detach(store: AgentStore, name: str, message: str) -> int:
    """Start ``send`` in a background process; print the run id once its turn has begun."""
    from agent.store.journal import Reader

    path = store.sessions.path(name)
    before = 0
    if path.is_file():
        with Reader(path, name) as reader:
            before = max((t.id for t in reader.turns()), default=0)
    log = store.root / f"{name}.log"
    argv = [sys.executable, "-m", "cli.main", "agents", "send", name, message, "--json"]
    pid = os.posix_spawn(
        sys.executable,
        argv,
        dict(os.environ),
        setsid=True,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
        ],
    )  # its own session: a Ctrl-C in this terminal does not reach it
    deadline = time.monotonic() + DETACH_WAIT_S
    while time.monotonic() < deadline:
        new = _new_turns(path, name, before)
        if new:
            say(new[0].run)
            return EXIT_OK
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
            code = os.waitstatus_to_exitcode(status)
            raise fail(f"the background turn failed to start: {' '.join(tail) or code}")
        time.sleep(0.1)
    raise fail(f"the background turn did not start within {DETACH_WAIT_S:g} s (see {log})")


def _new_turns(path: Path, name: str, after: int) -> list[TurnRecord]:
    """The top-level turns after turn ``after`` (none while the process creates the session)."""
    from agent.store.journal import Reader
    from rt.errors import SessionError

    if not path.is_file():
        return []
    try:
        with Reader(path, name) as reader:
            return [t for t in reader.turns() if t.id > after and t.parent_run is None]
    except SessionError:  # being created by the background process
        return []


@agents_app.command("observe")
@handle_errors
def observe(
    name: Name,
    start: Annotated[
        int | None,
        typer.Option("--from", metavar="SEQ", help="From journal row SEQ (default: new rows)."),
    ] = None,
    no_follow: Annotated[
        bool, typer.Option("--no-follow", help="Print what is there and stop.")
    ] = False,
    json_out: JsonOut = False,
) -> None:
    """Print the agent's events (its children's too), following live until Ctrl-C."""
    from cli.journal_views import entry_line

    store = _store()
    store.get(name)
    stop = threading.Event()
    if not _wait_for_session(store, name, stop, follow=not no_follow):
        return
    with store.reader(name) as reader:
        after = reader.last_seq() if start is None else max(0, start - 1)
        rows = reader.entries(after=after) if no_follow else reader.follow(after=after, stop=stop)
        try:
            with cancel_on_sigint(stop):
                for entry in rows:
                    if json_out:
                        print(dumps(entry.to_dict()), flush=True)
                    else:
                        child = f"[child {entry.run[:8]}] " if entry.parent_run else ""
                        say(child + entry_line(entry))
        except KeyboardInterrupt:
            pass


def _wait_for_session(store: AgentStore, name: str, stop: threading.Event, *, follow: bool) -> bool:
    """An agent with no turn yet has no session: wait for its first (until Ctrl-C) if following."""
    path = store.sessions.path(name)
    try:
        with cancel_on_sigint(stop):
            while follow and not path.is_file() and not stop.wait(0.2):
                pass
    except KeyboardInterrupt:
        return False
    return path.is_file()


@agents_app.command("ps")
@handle_errors
def ps(json_out: JsonOut = False) -> None:
    """Every agent: name, state, current run, last activity, cost."""
    store = _store()
    statuses = [store.status(n) for n in store.names()]
    if json_out:
        for status in statuses:
            print(dumps(status.to_dict()))
        return
    if not statuses:
        say("no agents (watt agents spawn NAME)")
        return
    say(f"{'NAME':<20} {'STATE':<12} {'RUN':<36} {'LAST ACTIVITY':<29} COST")
    for s in statuses:
        cost = "-" if s.cost is None else f"${s.cost:.4f}"
        say(f"{s.name:<20} {s.state:<12} {s.run or '-':<36} {s.last_activity or '-':<29} {cost}")


@agents_app.command("kill")
@handle_errors
def kill(name: Name) -> None:
    """Interrupt the agent's running turn (recorded as interrupted)."""
    turn = _store().kill(name)
    if turn is None:
        raise fail(f"agent {name!r} has no running turn", EXIT_FAILED)
    say(f"run {turn.run}: {turn.state.value}")
    raise typer.Exit(EXIT_OK if turn.state.value != "running" else EXIT_FAILED)


@agents_app.command("rm")
@handle_errors
def rm(name: Name) -> None:
    """Remove the agent: its configuration and its session."""
    _store().remove(name)
    say(f"removed agent {name!r}")
