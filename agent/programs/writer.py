"""Writing catalog programs: front matter, ``watt catalog new`` and the REPL's ``/save``.

Every file is written whole and only if it does not exist (``open(..., "x")``), after its text
parsed as a catalog program, so a written file always loads.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.programs.catalog import (
    NAME_RE,
    ArgSpec,
    CannedResponse,
    Catalog,
    Example,
    Program,
    parse_program,
    toml_str,
)
from rt.codes import status_text
from rt.engine import Runtime
from rt.errors import CatalogError, Interrupted, RunError
from rt.wattext import arguments_read, body_capabilities

DESCRIPTION_CHARS = 200


def _inline(table: Mapping[str, Any]) -> str:
    items = []
    for key, value in table.items():
        if isinstance(value, CannedResponse):
            text = (
                toml_str(value.body)
                if value.status == 200
                else (f"{{ status = {value.status}, body = {toml_str(value.body)} }}")
            )
        else:
            text = toml_str(str(value))
        items.append(f"{toml_str(key)} = {text}")
    return "{ " + ", ".join(items) + " }" if items else "{}"


def render_front_matter(
    name: str, description: str, args: Sequence[ArgSpec], examples: Sequence[Example] = ()
) -> str:
    """The ``;;;`` front matter for a program (ends with a newline)."""
    lines = [f"name = {toml_str(name)}", f"description = {toml_str(description)}"]
    for a in args:
        lines += [
            "",
            "[[args]]",
            f"name = {toml_str(a.name)}",
            f"type_hint = {toml_str(a.type_hint)}",
            f"description = {toml_str(a.description)}",
        ]
        if a.default is not None:
            lines.append(f"default = {toml_str(a.default)}")
    for ex in examples:
        lines += ["", "[[examples]]", "args = [" + ", ".join(toml_str(a) for a in ex.args) + "]"]
        for key in ("http", "ai", "files", "kv"):
            if getattr(ex, key):
                lines.append(f"{key} = {_inline(getattr(ex, key))}")
        if ex.results is not None:
            lines.append("results = [" + ", ".join(toml_str(r) for r in ex.results) + "]")
        if ex.status is not None:
            lines.append(f"status = {ex.status}")
        for key in ("fs_after", "kv_after"):
            if getattr(ex, key) is not None:
                lines.append(f"{key} = {_inline(getattr(ex, key))}")
    return "".join(f";;; {line}".rstrip() + "\n" for line in lines)


_SCAFFOLD_BODY = """\
;; Body: WAT-plus, run inside (func $run (result i32) ...); return 0 for success.
(argv 0 $text)
(local $out i32) (local $e i32)
;; A (ptr err) result is consumed err first: (local.set $e) (local.set $out)
(call $str.upper (local.get $text)) (local.set $e) (local.set $out)
(check $e)
(resv $out)
(i32.const 0)
"""


def scaffold(name: str) -> str:
    """A new program template (front matter, a body and one example) for ``watt catalog new``."""
    check_program_name(name)
    front = render_front_matter(
        name,
        f"Describe what {name} does in one line",
        [ArgSpec("text", "string", "the input text")],
        [Example(args=("hello",), results=("HELLO",))],
    )
    return front + _SCAFFOLD_BODY


def write_program(path: Path, source: str) -> Program:
    """Create ``path`` holding ``source`` (a catalog program, checked first); CatalogError
    if it exists or cannot be written."""
    program = parse_program(source.encode("utf-8"), path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as fh:
            fh.write(source)
    except FileExistsError as exc:
        raise CatalogError(f"{path} already exists: choose another name or remove it") from exc
    except OSError as exc:
        raise CatalogError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return program


def new_program(
    directory: Path, name: str, *, catalog: Catalog | None = None, force: bool = False
) -> Path:
    """``watt catalog new``: write the scaffold of ``name`` into ``directory``.

    A name ``catalog`` already has (a shipped program, say) is refused unless ``force``: the
    new file would override that program, by name, for every task."""
    check_program_name(name)
    target = directory / f"{name}.wat"
    existing = catalog.get(name) if catalog is not None else None
    if existing is not None and not force and existing.path != target:
        raise CatalogError(
            f"{name!r} is already a catalog program ({existing.path}); a new one would override "
            "it in every task: choose another name, or pass --force to override it"
        )
    write_program(target, scaffold(name))
    return target


@dataclass(frozen=True)
class Saved:
    path: Path
    program: Program
    results_captured: bool
    notes: tuple[str, ...] = ()


def check_program_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise CatalogError(f"program name {name!r} must match [a-z][a-z0-9_]{{0,63}}")
    return name


def save_program(
    name: str,
    body: str,
    args: Sequence[str],
    description: str,
    *,
    directory: Path,
    catalog: Catalog,
    runtime: Runtime,
    granted: Collection[str],
    pure: Collection[str],
) -> Saved:
    """``/save NAME``: write ``body`` (a program that ran on ``args``) to ``directory`` as the
    catalog program ``name``, with ``description`` on one line and one example: its
    arguments and, when it only uses ``pure`` capabilities, the results of running it again."""
    check_program_name(name)
    path = directory / f"{name}.wat"
    if path.exists():
        raise CatalogError(f"{path} already exists: choose another name or remove it")
    body = body.strip("\n")
    read = arguments_read(body)
    count = len(args) if read is None else read
    notes = []
    if count < len(args):  # an argument the body never reads would be required by every call
        dropped = len(args) - count
        notes.append(f"{dropped} argument(s) left out: the program never reads them")
    args = list(args[:count])
    specs = [
        ArgSpec(f"arg{i}", "string", f"argument {i}", None if i < len(args) else "")
        for i in range(count)
    ]
    results, note = _example_results(body, args, runtime, granted, pure)
    notes += [note] if note else []
    shadowed = catalog.get(name)
    if shadowed is not None:
        notes.append(f"it overrides {shadowed.path}")
    example = Example(args=tuple(args), results=results)
    summary = _clip(" ".join(description.split()), DESCRIPTION_CHARS)
    # The blank line keeps a body that starts with ';;;' out of the front matter.
    source = render_front_matter(name, summary, specs, [example]) + "\n" + body + "\n"
    program = write_program(path, source)
    return Saved(path, program, results is not None, tuple(notes))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _example_results(
    body: str, args: list[str], runtime: Runtime, granted: Collection[str], pure: Collection[str]
) -> tuple[tuple[str, ...] | None, str]:
    """Re-run a side-effect-free program to capture its results; None when we cannot."""
    impure = sorted(set(body_capabilities(body)) - set(pure))
    if impure:
        return None, f"example results not recorded: the program uses {', '.join(impure)}"
    try:
        result = runtime.run(body, args, granted=granted)
    except Interrupted:
        raise
    except RunError as exc:
        return None, f"example results not recorded: the re-run failed: {exc.one_line()}"
    if not result.ok:
        return (
            None,
            f"example results not recorded: the re-run returned {status_text(result.status)}",
        )
    return tuple(result.results), ""
