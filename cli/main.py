"""The `watt` command: a thin typer layer over agent/ and rt/ (no business logic here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.agents_cmd import agents_app
from cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    HELP_OPTIONS,
    FullHelpGroup,
    fail,
    handle_errors,
    say,
    settings_from,
    version_text,
)
from cli.model_cmd import model_app

app = typer.Typer(
    name="watt",
    help="Watt: an agent that answers by writing small WebAssembly programs and running them "
    "in a sandbox with only the capabilities you grant.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=FullHelpGroup,
    context_settings=HELP_OPTIONS,
)
catalog_app = typer.Typer(
    help="List, show, check, scaffold and test catalog programs.",
    no_args_is_help=True,
    cls=FullHelpGroup,
)
sessions_app = typer.Typer(
    help="List, show and remove sessions.", no_args_is_help=True, cls=FullHelpGroup
)
config_app = typer.Typer(
    help="Show the effective configuration.", no_args_is_help=True, cls=FullHelpGroup
)
app.add_typer(catalog_app, name="catalog")
app.add_typer(sessions_app, name="sessions")
app.add_typer(config_app, name="config")
app.add_typer(model_app, name="model", cls=FullHelpGroup)
app.add_typer(agents_app, name="agents", cls=FullHelpGroup)


def _version(value: bool) -> None:
    if value:
        print(version_text())
        raise typer.Exit(0)


@app.callback()
def _watt(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Watt: an agent that answers by writing small WebAssembly programs and running them in a
    sandbox with only the capabilities you grant."""


# ---- shared options ---------------------------------------------------------------------------
Session = Annotated[
    str | None,
    typer.Option("--session", "-s", metavar="NAME", help="Session name (default: 'default')."),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", metavar="MODEL", help="Model name, script:FILE.jsonl or local:PATH.gguf."
    ),
]
BaseUrl = Annotated[
    str | None,
    typer.Option("--base-url", metavar="URL", help="OpenAI-compatible endpoint ending in /v1."),
]
FsRoot = Annotated[
    Path | None,
    typer.Option(
        "--fs-root", metavar="DIR", help="Directory the fs capability may use (none by default)."
    ),
]
AllowDomain = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-domain", metavar="HOST", help="Host (or host:port) http may reach; repeatable."
    ),
]
NoAi = Annotated[bool, typer.Option("--no-ai", help="Do not grant the ai capability.")]
CatalogDir = Annotated[
    list[Path] | None,
    typer.Option("--catalog", metavar="DIR", help="Extra catalog directory; repeatable."),
]
Fuel = Annotated[int | None, typer.Option("--fuel", metavar="N", help="Fuel (CPU budget) per run.")]
Memory = Annotated[
    int | None, typer.Option("--memory", metavar="BYTES", help="Memory limit per run, in bytes.")
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option("--timeout", metavar="SECONDS", help="Wall-clock limit per run, in seconds."),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
Agents = Annotated[
    int | None,
    typer.Option(
        "--agents", metavar="N", help="Grant agent.run: at most N child agent runs per task."
    ),
]


def _grants(
    fs_root: Path | None, allow_domain: list[str] | None, no_ai: bool, catalog: list[Path] | None
) -> dict[str, Any]:
    return {
        "fs_root": fs_root,
        "allow_domains": allow_domain or None,
        "ai": False if no_ai else None,
        "catalog": catalog or None,
    }


# ---- ask ----------------------------------------------------------------------------------------
@app.command()
@handle_errors
def ask(
    task: Annotated[
        str | None,
        typer.Argument(metavar="TASK", help="The task; '-' or nothing reads it from stdin."),
    ] = None,
    session: Session = None,
    model: ModelOpt = None,
    base_url: BaseUrl = None,
    max_steps: Annotated[
        int | None,
        typer.Option(
            "--max-steps", metavar="N", help="Steps before the model must answer (default 10)."
        ),
    ] = None,
    fs_root: FsRoot = None,
    allow_domain: AllowDomain = None,
    no_ai: NoAi = False,
    catalog: CatalogDir = None,
    agents: Agents = None,
    timeout: TimeoutOpt = None,
    max_tokens_total: Annotated[
        int | None,
        typer.Option(
            "--max-tokens-total", metavar="N", help="Stop when this many tokens are spent."
        ),
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option(
            "--max-cost", metavar="USD", help="Stop when this many dollars are spent ([prices])."
        ),
    ] = None,
    json_out: JsonOut = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
    keep_context: Annotated[
        bool,
        typer.Option(
            "--continue", "-c", help="Give the model the session's earlier answered turns."
        ),
    ] = False,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the last interrupted or crashed turn."),
    ] = False,
) -> None:
    """Answer one task; the answer goes to stdout, progress to stderr. Each ask starts a new
    context unless -c/--continue or --session is given (the turn is journaled either way)."""
    from cli.session_run import run_ask

    if resume:
        if task not in (None, "-"):
            raise fail("--resume continues a recorded turn: give no TASK", EXIT_USAGE)
        task = ""
    elif task is None or task == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise fail("no task: pass TASK or pipe it on stdin", EXIT_USAGE)
        task = sys.stdin.read()
    if not resume and not task.strip():
        raise fail("the task is empty", EXIT_USAGE)
    settings = settings_from(
        base_url=base_url, max_steps=max_steps, max_tokens_total=max_tokens_total, session=session,
        max_cost=max_cost, notes=not quiet, agents=agents, timeout=timeout,
        **_grants(fs_root, allow_domain, no_ai, catalog),
    )  # fmt: skip
    fresh = not (keep_context or session)
    raise typer.Exit(
        run_ask(
            settings,
            task.strip(),
            model_spec=model,
            json_out=json_out,
            quiet=quiet,
            fresh=fresh,
            resume=resume,
        )  # fmt: skip
    )


@app.command()
@handle_errors
def chat(
    session: Session = None,
    model: ModelOpt = None,
    base_url: BaseUrl = None,
    fs_root: FsRoot = None,
    allow_domain: AllowDomain = None,
    no_ai: NoAi = False,
    catalog: CatalogDir = None,
) -> None:
    """Interactive REPL: tasks, slash commands (/help), Ctrl-C stops a run, Ctrl-D exits."""
    from cli.repl import run_repl

    settings = settings_from(
        base_url=base_url, session=session, notes=True,
        **_grants(fs_root, allow_domain, no_ai, catalog),
    )  # fmt: skip
    raise typer.Exit(run_repl(settings, model_spec=model))


# ---- run ----------------------------------------------------------------------------------------
@app.command()
@handle_errors
def run(
    program: Annotated[
        str,
        typer.Argument(
            metavar="NAME|PATH",
            help="A catalog program name or a .wat file (front matter allowed).",
        ),
    ],
    args: Annotated[
        list[str] | None, typer.Argument(metavar="ARGS...", help="Arguments, as strings.")
    ] = None,
    fuel: Fuel = None,
    memory: Memory = None,
    timeout: TimeoutOpt = None,
    fs_root: FsRoot = None,
    allow_domain: AllowDomain = None,
    no_ai: NoAi = False,
    catalog: CatalogDir = None,
    session: Session = None,
    model: ModelOpt = None,
    json_out: JsonOut = False,
    raw: Annotated[
        bool, typer.Option("--raw", help="Results byte-exact, nothing escaped (for pipelines).")
    ] = False,
) -> None:
    """Run a WAT-plus program: results one per line; exit 0 when its status is 0."""
    from cli.session_run import run_program

    settings = settings_from(
        fuel=fuel, memory=memory, timeout=timeout, session=session, notes=True,
        **_grants(fs_root, allow_domain, no_ai, catalog),
    )  # fmt: skip
    raise typer.Exit(
        run_program(settings, program, args or [], json_out=json_out, model_spec=model, raw=raw)
    )


@app.command()
@handle_errors
def serve(
    host: Annotated[
        str,
        typer.Option("--host", metavar="ADDR", help="Address to listen on (loopback by default)."),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", metavar="N", help="Port (0 picks a free one and prints it).")
    ] = 8787,
    model: ModelOpt = None,
    base_url: BaseUrl = None,
    max_steps: Annotated[
        int | None,
        typer.Option("--max-steps", metavar="N", help="Steps before the model must answer."),
    ] = None,
    max_tokens_total: Annotated[
        int | None,
        typer.Option("--max-tokens-total", metavar="N", help="Stop a turn after this many tokens."),
    ] = None,
    fs_root: FsRoot = None,
    allow_domain: AllowDomain = None,
    no_ai: NoAi = False,
    catalog: CatalogDir = None,
    fuel: Fuel = None,
    memory: Memory = None,
    timeout: TimeoutOpt = None,
    agents: Agents = None,
    max_cost: Annotated[
        float | None,
        typer.Option("--max-cost", metavar="USD", help="Stop a turn after this many dollars."),
    ] = None,
    max_body: Annotated[
        int | None,
        typer.Option("--max-body", metavar="BYTES", help="Largest request body (413 past it)."),
    ] = None,
    max_running: Annotated[
        int | None,
        typer.Option("--max-running", metavar="N", help="Turns running at once (429 past it)."),
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--cors-origin", metavar="ORIGIN", help="Allow this browser origin (CORS); repeatable."
        ),
    ] = None,
    idle_close: Annotated[
        float | None,
        typer.Option("--idle-close", metavar="SECONDS", help="Close a session unused this long."),
    ] = None,
) -> None:
    """Serve the agent over HTTP: turns as SSE, catalog programs as endpoints, a web page."""
    from cli.serve_cmd import run_serve

    settings = settings_from(
        base_url=base_url, max_steps=max_steps, max_tokens_total=max_tokens_total, fuel=fuel,
        memory=memory, timeout=timeout, agents=agents, max_cost=max_cost, notes=True,
        **_grants(fs_root, allow_domain, no_ai, catalog),
    )  # fmt: skip
    raise typer.Exit(
        run_serve(
            settings,
            host=host,
            port=port,
            model_spec=model,
            max_body=max_body,
            max_running=max_running,
            cors_origins=cors_origin or [],
            idle_close=idle_close,
        )  # fmt: skip
    )


@app.command()
@handle_errors
def caps(
    fs_root: FsRoot = None,
    allow_domain: AllowDomain = None,
    no_ai: NoAi = False,
) -> None:
    """What each capability offers (the same text the model sees), its quotas and the limits."""
    from cli.views import show_caps

    raise typer.Exit(show_caps(settings_from(**_grants(fs_root, allow_domain, no_ai, None))))


@app.command()
@handle_errors
def log(
    session: Session = None,
    json_out: JsonOut = False,
    limit: Annotated[
        int, typer.Option("--limit", "-n", metavar="N", min=1, help="Show the last N turns.")
    ] = 20,
    turn: Annotated[
        int | None, typer.Option("--turn", metavar="N", min=1, help="Show turn N only.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Print new events as they are appended.")
    ] = False,
    after: Annotated[
        int | None,
        typer.Option("--after", metavar="SEQ", min=0, help="With --follow: start after row SEQ."),
    ] = None,
    verify: Annotated[
        bool, typer.Option("--verify", help="Check the journal's hash chain; print its head.")
    ] = False,
) -> None:
    """Every turn with its state, times, cost and steps (failed and crashed ones too)."""
    from cli.journal_views import follow_log, show_log, verify_log

    settings = settings_from(session=session)
    if verify:
        raise typer.Exit(verify_log(settings))
    if follow:
        raise typer.Exit(follow_log(settings, json_out=json_out, after=after))
    raise typer.Exit(show_log(settings, json_out=json_out, limit=limit, turn=turn))


@app.command()
@handle_errors
def replay(
    turn: Annotated[
        int | None, typer.Argument(metavar="TURN", help="The turn (default: the last).")
    ] = None,
    session: Session = None,
    export: Annotated[
        Path | None,
        typer.Option(
            "--export", metavar="FILE", help="Write the turn as a script: model file instead."
        ),
    ] = None,
) -> None:
    """Re-run a recorded turn offline (model replies and host results from the journal) and
    report whether every step came out identical."""
    from cli.replay_view import run_replay

    raise typer.Exit(run_replay(settings_from(session=session), turn, export=export))


@app.command()
@handle_errors
def doctor(model: ModelOpt = None, base_url: BaseUrl = None) -> None:
    """Check configuration, key, endpoint, wasmtime and state directories, one line each."""
    from cli.views import run_doctor

    raise typer.Exit(run_doctor(settings_from(base_url=base_url, model=model)))


# ---- catalog -------------------------------------------------------------------------------------
@catalog_app.command("list")
@handle_errors
def catalog_list(catalog: CatalogDir = None) -> None:
    """Every loaded program with its arguments."""
    from cli.views import list_catalog

    raise typer.Exit(list_catalog(settings_from(catalog=catalog or None)))


@catalog_app.command("show")
@handle_errors
def catalog_show(
    name: Annotated[str, typer.Argument(metavar="NAME")], catalog: CatalogDir = None
) -> None:
    """A program's source."""
    from cli.views import show_program

    raise typer.Exit(show_program(settings_from(catalog=catalog or None), name))


@catalog_app.command("check")
@handle_errors
def catalog_check(
    paths: Annotated[list[Path] | None, typer.Argument(metavar="PATHS...")] = None,
    catalog: CatalogDir = None,
) -> None:
    """Report front-matter and compile errors with file:line (every program when no PATHS)."""
    from cli.views import check_catalog

    raise typer.Exit(check_catalog(settings_from(catalog=catalog or None), paths or []))


@catalog_app.command("new")
@handle_errors
def catalog_new(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir", metavar="DIR", help="Where to write it (default: $WATT_HOME/catalog)."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Write it even if it overrides a program of that name."),
    ] = False,
) -> None:
    """Scaffold a program with front matter and an example."""
    from cli.views import new_program

    raise typer.Exit(new_program(settings_from(), name, directory, force=force))


@catalog_app.command("test")
@handle_errors
def catalog_test(
    name: Annotated[str | None, typer.Argument(metavar="NAME")] = None, catalog: CatalogDir = None
) -> None:
    """Run the programs' [[examples]] offline (canned http and ai)."""
    from cli.views import test_catalog

    raise typer.Exit(test_catalog(settings_from(catalog=catalog or None), name))


# ---- sessions and config ------------------------------------------------------------------------
@sessions_app.command("list")
@handle_errors
def sessions_list() -> None:
    """Every session with its size and last use."""
    from cli.views import list_sessions

    raise typer.Exit(list_sessions(settings_from()))


@sessions_app.command("show")
@handle_errors
def sessions_show(name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """A session's turns and kv."""
    from cli.views import show_session

    raise typer.Exit(show_session(settings_from(), name))


@sessions_app.command("rm")
@handle_errors
def sessions_rm(name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Remove a session."""
    from agent.store.sessions import SessionStore
    from rt.errors import UnknownSession

    store = SessionStore(settings_from().home)
    if not store.exists(name):
        raise UnknownSession(f"no session named {name!r}")
    store.remove(name)
    say(f"removed session {name!r}")


@config_app.command("show")
@handle_errors
def config_show(json_out: JsonOut = False) -> None:
    """The effective configuration (the key masked) and where each value came from."""
    shown = settings_from().shown()
    if json_out:
        print(json.dumps(shown, indent=2))
        return
    width = max(len(k) for k in shown)
    for key, value in shown.items():
        say(f"{key:<{width}}  {value}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        print("watt: interrupted", file=sys.stderr)
        sys.exit(130)


__all__ = ["app", "main", "EXIT_OK", "EXIT_FAILED"]

if __name__ == "__main__":
    main()
