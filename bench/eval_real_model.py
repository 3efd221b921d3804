"""Measure the agent against a real model: every task of bench/tasks.py through `watt ask --json`.

    WATT_BASE_URL=http://127.0.0.1:8765/v1 WATT_API_KEY=local WATT_MODEL=qwen2.5-coder-1.5b \\
        python bench/eval_real_model.py --max-steps 6 --out /tmp/eval.jsonl

Each task runs as its own `watt ask --json` subprocess with WATT_HOME in a fresh temporary
directory (kv values seeded into its default session first), fs tasks with `--fs-root` on a
temporary jail, http tasks with `--allow-domain` for a fixture server on 127.0.0.1. Runs use
`--no-ai` so that every call shares one system prompt (a local server can reuse its cache).

Printed, per task and overall:

- task success: the task's checker accepted the final answer (and the state left behind),
  for all tasks, the tuning set and the held-out set (``Task.held_out``), and per kind;
- format compliance: share of model turns that parsed with no fallback at all (a reply with no
  ToolCall, or one the parser had to repair, is a miss; the parser's notes are listed);
- first-try compile rate: share of WAT programs that compiled at their first attempt
  (a program after a compile-repair request is a repair, not a first try);
- repair success: share of compile-repair requests whose next program compiled;
- model calls per task (median and mean; a compile repair is a call of its own), median
  steps, median tokens (prompt + completion, summed over calls) and wall time per task.

It also prints the system prompt's size: estimated (agent.models.messages.estimate_tokens) and as
the server counts it (``usage.prompt_tokens`` of a one-token call, which also warms its cache).

``--out FILE`` writes one JSON object per task: its events and the model's raw replies;
``--summarize FILE`` prints the report of such a file again (or of a partial one) without
running anything. ``--held-out`` / ``--tuning`` run only that part of the suite; ``--task``
names tasks. ``--model SPEC`` is passed to `watt ask --model`: a model name for the endpoint,
``local:/path/to/model.gguf`` (the embedded backend) or ``script:FILE.jsonl``.
``--prompt FILE.py`` takes ``build_system_prompt`` from a copy of agent/prompt.py, to compare
prompts without editing the tree. ``--max-tokens-total`` (default 30000) bounds each task:
a small model stuck resending one failing program otherwise runs to the step limit.
Token figures are the client's: estimated (~4 chars/token) when the server streams no usage.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.tasks import KINDS, TASKS, Outcome, Task, fixture_server, write_files  # noqa: E402

COMPILE_ERRORS = frozenset({"CompileError", "LinkError", "PreprocessError"})


@dataclass
class TaskRun:
    name: str
    category: str
    ok: bool
    answer: str | None
    exit_code: int
    wall_s: float
    events: list[dict[str, Any]] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    stderr: str = ""
    kind: str = ""
    held_out: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskRun:
        """A run as ``--out`` wrote it (kind and held_out from bench/tasks.py when missing)."""
        known = {t.name: t for t in TASKS}
        names = set(cls.__dataclass_fields__)
        run = cls(**{k: v for k, v in data.items() if k in names})
        task = known.get(run.name)
        if task is not None and "kind" not in data:
            run.kind = task.kind
        if task is not None and "held_out" not in data:
            run.held_out = task.held_out
        return run


@dataclass(frozen=True)
class Counts:
    """Turn and compile counts of one run's event stream."""

    turns: int = 0
    compliant: int = 0
    notes: tuple[str, ...] = ()
    first_tries: int = 0
    first_compiled: int = 0
    repairs: int = 0
    repaired: int = 0
    steps: int = 0
    tokens: int = 0
    prompt_tokens_first: int = 0


# Runs the CLI with agent.app's build_system_prompt taken from another file (argv[1]).
_PROMPT_SHIM = """\
import importlib.util, sys
spec = importlib.util.spec_from_file_location("watt_eval_prompt", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
import agent.app
agent.app.build_system_prompt = module.build_system_prompt
from cli.main import main
sys.argv = ["watt", *sys.argv[2:]]
main()
"""


def watt_command(prompt_file: Path | None = None) -> list[str]:
    """The `watt` command; with ``prompt_file``, one whose system prompt comes from that file
    (a copy of agent/prompt.py), to compare prompts without editing the tree."""
    if prompt_file is not None:
        return [sys.executable, "-c", _PROMPT_SHIM, str(prompt_file.resolve())]
    watt = shutil.which("watt")
    return [watt] if watt else [sys.executable, "-m", "cli.main"]


def count(events: Sequence[Mapping[str, Any]]) -> Counts:
    """Format compliance and compile figures from one `watt ask --json` event stream."""
    turns = compliant = first = first_ok = repairs = repaired = tokens = steps = 0
    prompt_first = 0
    notes: list[str] = []
    pending_repair = False  # a Retry was seen and its next program is not judged yet
    judging: str | None = None  # "first" or "repair": the program just started
    for ev in events:
        kind = ev.get("kind")
        if kind == "thinking":
            turns += 1
            usage = ev.get("usage") or {}
            # the journal's usage is {input, output}; older runs wrote {prompt, completion}
            call_input = int(usage.get("input", usage.get("prompt", 0)))
            tokens += call_input + int(usage.get("output", usage.get("completion", 0)))
            if turns == 1:
                prompt_first = call_input
            if ev.get("notes"):
                notes.extend(ev["notes"])
            else:
                compliant += 1
        elif kind == "tool_start":
            if ev.get("action") == "wat":
                judging = "repair" if pending_repair else "first"
            else:
                judging = None
            pending_repair = False
        elif kind in ("retry", "tool_result"):
            failed = kind == "retry" or ev.get("error_type") in COMPILE_ERRORS
            if judging == "first":
                first += 1
                first_ok += not failed
            elif judging == "repair":
                repairs += 1
                repaired += not failed
            judging = None
            if kind == "retry":
                pending_repair = True
        elif kind in ("response", "error"):
            if pending_repair:  # asked for a repair, got an answer (or a stop) instead
                repairs += 1
            pending_repair = False
        if kind in ("response", "error"):
            steps = max(steps, int(ev.get("step", 0)))
    return Counts(
        turns,
        compliant,
        tuple(notes),
        first,
        first_ok,
        repairs,
        repaired,
        steps,
        tokens,
        prompt_first,
    )


def _seed_kv(home: Path, values: Mapping[str, str]) -> None:
    if not values:
        return
    from agent.store.sessions import SessionStore

    with SessionStore(home).open("default") as session:
        for key, value in values.items():
            session.kv.set(key, value)


def _read_kv(home: Path) -> dict[str, str]:
    from agent.store.sessions import SessionStore

    store = SessionStore(home)
    if not store.exists("default"):
        return {}
    with store.open("default", create=False) as session:
        return {k: session.kv.get(k) or "" for k in session.kv.keys()}


LOOP_KINDS = ("thinking", "tool_start", "tool_result", "retry", "response", "error")


def run_one(
    task: Task,
    *,
    base_url: str,
    env: Mapping[str, str],
    max_steps: int,
    max_tokens_total: int | None = None,
    timeout_s: float = 1800.0,
    cmd: Sequence[str] | None = None,
    model: str | None = None,
) -> TaskRun:
    """Run ``task`` through `watt ask --json` in a fresh WATT_HOME; ``base_url`` is the fixture's.

    ``model`` is passed as `--model` (a name, ``local:PATH.gguf`` or ``script:FILE.jsonl``)."""
    cmd = list(cmd or watt_command())
    with tempfile.TemporaryDirectory(prefix="watt-eval-") as tmp:
        home, jail = Path(tmp) / "home", Path(tmp) / "jail"
        home.mkdir()
        jail.mkdir()
        write_files(jail, task.files)
        _seed_kv(home, task.kv)
        run_env = {**env, "WATT_HOME": str(home)}
        args = [*cmd, "ask", "--json", "--no-ai", "--max-steps", str(max_steps)]
        if model:
            args += ["--model", model]
        if max_tokens_total:
            args += ["--max-tokens-total", str(max_tokens_total)]
        if task.fs:
            args += ["--fs-root", str(jail)]
        if task.http:
            args += ["--allow-domain", base_url.split("//", 1)[1]]
        t0 = time.perf_counter()
        try:
            done = subprocess.run(
                [*args, task.render(base_url, jail)], env=run_env, capture_output=True, text=True,
                timeout=timeout_s, check=False,
            )  # fmt: skip
            stdout, stderr, code = done.stdout, done.stderr, done.returncode
        except subprocess.TimeoutExpired as exc:
            stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            stderr, code = f"timed out after {timeout_s:.0f}s", -1
        wall = time.perf_counter() - t0
        events = []  # the journal's rows (ask --json); the loop's own kinds are counted
        for line in stdout.splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("kind") in LOOP_KINDS:
                events.append(row)
        answer = next(
            (e.get("text") for e in reversed(events) if e.get("kind") == "response"), None
        )
        outcome = Outcome(answer or "", jail if task.fs else None, _read_kv(home))
        ok = answer is not None and code == 0 and task.check(outcome)
        replies = [str(e.get("reply") or "") for e in events if e.get("kind") == "thinking"]
    return TaskRun(
        task.name, task.category, ok, answer, code, wall, events, replies, stderr.strip()[-2000:],
        task.kind, task.held_out,
    )  # fmt: skip


def render_prompt(prompt_file: Path | None, *, ai: bool) -> str:
    """The system prompt the runs see: the shipped catalog, every capability (less ai)."""
    import importlib.util

    from agent.programs.catalog import Catalog
    from capabilities import standard_registry

    build: Callable[..., object]
    if prompt_file is not None:
        spec = importlib.util.spec_from_file_location("watt_eval_prompt", prompt_file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        build = module.build_system_prompt
    else:
        from agent.prompt import build_system_prompt as build
    registry = standard_registry()
    catalog, _errors = Catalog.load([Catalog.shipped_dir()])
    granted = set(registry.names()) - (set() if ai else {"ai"})
    return str(build(registry, catalog, granted))


def server_prompt_tokens(system: str, env: Mapping[str, str]) -> int | None:
    """``usage.prompt_tokens`` of a one-token, non-streamed call with ``system`` alone."""
    import httpx

    url = env.get("WATT_BASE_URL")
    if not url or env.get("WATT_MODEL", "").startswith(("local:", "script:")):
        return None
    try:
        reply = httpx.post(
            url.rstrip("/") + "/chat/completions",
            headers={"Authorization": f"Bearer {env.get('WATT_API_KEY', 'none')}"},
            json={"model": env.get("WATT_MODEL", ""), "max_tokens": 1,
                  "messages": [{"role": "system", "content": system}]},
            timeout=600,
        )  # fmt: skip
        return int(reply.json()["usage"]["prompt_tokens"])
    except (httpx.HTTPError, KeyError, TypeError, ValueError):
        return None


def _share(a: int, b: int) -> str:
    return f"{a}/{b} = {100 * a / b:.0f}%" if b else "n/a"


def summarize(runs: Sequence[TaskRun]) -> dict[str, Any]:
    """The overall figures (numbers, not text) of a set of runs."""
    counts = [count(r.events) for r in runs]
    total = Counts(
        turns=sum(c.turns for c in counts),
        compliant=sum(c.compliant for c in counts),
        notes=tuple(n for c in counts for n in c.notes),
        first_tries=sum(c.first_tries for c in counts),
        first_compiled=sum(c.first_compiled for c in counts),
        repairs=sum(c.repairs for c in counts),
        repaired=sum(c.repaired for c in counts),
    )
    calls = [c.turns for c in counts]
    tuning = [r for r in runs if not r.held_out]
    held = [r for r in runs if r.held_out]
    kinds = [k for k in KINDS if any(r.kind == k for r in runs)]
    kinds += sorted({r.kind for r in runs} - set(kinds))
    return {
        "tasks": len(runs),
        "succeeded": sum(r.ok for r in runs),
        "tuning_tasks": len(tuning),
        "tuning_succeeded": sum(r.ok for r in tuning),
        "held_out_tasks": len(held),
        "held_out_succeeded": sum(r.ok for r in held),
        "by_kind": {
            k: (sum(r.ok for r in runs if r.kind == k), sum(r.kind == k for r in runs))
            for k in kinds
        },
        "turns": total.turns,
        "compliant_turns": total.compliant,
        "notes": dict(Counter(total.notes).most_common()),
        "first_tries": total.first_tries,
        "first_compiled": total.first_compiled,
        "repairs": total.repairs,
        "repaired": total.repaired,
        "median_steps": statistics.median([c.steps for c in counts]) if counts else 0,
        "median_calls": statistics.median(calls) if calls else 0,
        "mean_calls": statistics.fmean(calls) if calls else 0.0,
        "median_tokens": statistics.median([c.tokens for c in counts]) if counts else 0,
        "median_wall_s": statistics.median([r.wall_s for r in runs]) if runs else 0.0,
        "mean_wall_s": statistics.fmean([r.wall_s for r in runs]) if runs else 0.0,
        "median_first_prompt_tokens": statistics.median([c.prompt_tokens_first for c in counts])
        if counts
        else 0,
    }


def report(runs: Sequence[TaskRun]) -> str:
    """The printed table and summary."""
    lines = [
        f"{'task':<26} {'kind':<10} {'set':<4} {'ok':<4} {'steps':>5} {'calls':>5} {'tokens':>7} "
        f"{'wall s':>7}  answer"
    ]  # fmt: skip
    for run in runs:
        c = count(run.events)
        answer = " ".join((run.answer or f"(no answer, exit {run.exit_code})").split())[:60]
        lines.append(
            f"{run.name:<26} {run.kind or run.category:<10} {'held' if run.held_out else 'tune':<4} "
            f"{'yes' if run.ok else 'NO':<4} {c.steps:>5} {c.turns:>5} {c.tokens:>7} {run.wall_s:>7.1f}  {answer}"
        )
    s = summarize(runs)
    kinds = ", ".join(f"{k} {ok}/{n}" for k, (ok, n) in s["by_kind"].items())
    lines += [
        "",
        f"task success            {_share(s['succeeded'], s['tasks'])} of all tasks",
        f"  tuning set            {_share(s['tuning_succeeded'], s['tuning_tasks'])}",
        f"  held-out set          {_share(s['held_out_succeeded'], s['held_out_tasks'])}",
        f"  by kind               {kinds}",
        f"format compliance       {_share(s['compliant_turns'], s['turns'])} of turns",
        f"first-try compile rate  {_share(s['first_compiled'], s['first_tries'])} of WAT programs",
        f"repair success          {_share(s['repaired'], s['repairs'])} of repair requests",
        f"model calls per task    median {s['median_calls']:g}, mean {s['mean_calls']:.1f}",
        f"median steps            {s['median_steps']:g}",
        f"median tokens per task  {s['median_tokens']:g}",
        f"wall time per task      median {s['median_wall_s']:.1f}s, mean {s['mean_wall_s']:.1f}s",
        f"first-call prompt tokens (median, as the client reported them) {s['median_first_prompt_tokens']}",
    ]
    if s["notes"]:
        lines.append(
            "parser fallbacks        " + "; ".join(f"{k} x{v}" for k, v in s["notes"].items())
        )
    return "\n".join(lines)


def select(names: Iterable[str] | None, held_out: bool | None = None) -> list[Task]:
    """The tasks named (all without names), then only the held-out (True) or tuning (False) ones."""
    tasks = list(TASKS)
    if names:
        wanted = set(names)
        unknown = wanted - {t.name for t in TASKS}
        if unknown:
            raise SystemExit(f"unknown task(s): {', '.join(sorted(unknown))}")
        tasks = [t for t in tasks if t.name in wanted]
    if held_out is not None:
        tasks = [t for t in tasks if t.held_out == held_out]
    return tasks


def load_runs(path: Path) -> list[TaskRun]:
    """The runs an ``--out`` file holds (a line cut short by an interrupted run is skipped)."""
    runs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            runs.append(TaskRun.from_dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            continue
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--base-url", help="OpenAI-compatible /v1 URL (default: $WATT_BASE_URL)")
    parser.add_argument(
        "--model", metavar="SPEC",
        help="passed to `watt ask --model`: a model name, local:PATH.gguf or script:FILE.jsonl "
        "(default: $WATT_MODEL)",
    )  # fmt: skip
    parser.add_argument("--max-steps", type=int, default=6)
    parser.add_argument(
        "--max-tokens-total", type=int, default=30000,
        help="token budget per task (prompt tokens count on every call); 0 = none",
    )  # fmt: skip
    parser.add_argument("--task", action="append", help="run only this task; repeatable")
    subset = parser.add_mutually_exclusive_group()
    subset.add_argument(
        "--held-out", dest="held_out", action="store_const", const=True,
        help="run only the held-out tasks",
    )  # fmt: skip
    subset.add_argument(
        "--tuning", dest="held_out", action="store_const", const=False,
        help="run only the tuning tasks (the ones not held out)",
    )  # fmt: skip
    parser.add_argument(
        "--summarize", type=Path, metavar="FILE.jsonl",
        help="print the report of an --out file and exit (runs nothing)",
    )  # fmt: skip
    parser.add_argument(
        "--prompt", type=Path, metavar="FILE.py",
        help="take build_system_prompt from this file instead of agent/prompt.py",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="write per-task events and replies as JSON lines")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per task")
    args = parser.parse_args(argv)
    if args.summarize is not None:
        print(report(load_runs(args.summarize)))
        return 0
    env = dict(os.environ)
    if args.base_url:
        env["WATT_BASE_URL"] = args.base_url
    if args.model:
        env["WATT_MODEL"] = args.model
    if not env.get("WATT_BASE_URL") and not env.get("WATT_MODEL"):
        print(
            "eval_real_model: set WATT_BASE_URL and WATT_MODEL (or --base-url/--model)",
            file=sys.stderr,
        )
        return 2
    env.setdefault("WATT_API_KEY", "local")
    tasks = select(args.task, args.held_out)
    runs: list[TaskRun] = []
    spec = env.get("WATT_MODEL", "")
    embedded = spec.startswith(("local:", "script:"))
    where = "embedded" if embedded else f"endpoint {env.get('WATT_BASE_URL', '(none)')}"
    print(f"{where} model {spec or '(default)'}, "
          f"{len(tasks)} tasks ({sum(t.held_out for t in tasks)} held out), max-steps {args.max_steps}, max-tokens-total {args.max_tokens_total}, "
          f"prompt {args.prompt or 'agent/prompt.py'}",
          flush=True)  # fmt: skip
    from agent.models.messages import estimate_tokens

    for ai in (True, False):
        text = render_prompt(args.prompt, ai=ai)
        server = server_prompt_tokens(text, env)  # the last (no ai) also warms a server's cache
        print(f"system prompt ({'full baseline set' if ai else 'as run: --no-ai'}): {len(text)} chars, "
              f"~{estimate_tokens(text)} tokens estimated, {server if server is not None else '?'} "
              "by the server", flush=True)  # fmt: skip
    out = args.out.open("w", encoding="utf-8") if args.out else None
    try:
        with fixture_server() as base_url:
            for task in tasks:
                run = run_one(
                    task, base_url=base_url, env=env, max_steps=args.max_steps,
                    max_tokens_total=args.max_tokens_total, timeout_s=args.timeout,
                    cmd=watt_command(args.prompt), model=args.model,
                )  # fmt: skip
                runs.append(run)
                c = count(run.events)
                print(f"  {task.name}{' (held out)' if task.held_out else ''}: "
                      f"{'ok' if run.ok else 'FAILED'} in {run.wall_s:.1f}s, "
                      f"{c.steps} steps, {c.turns} turns", flush=True)  # fmt: skip
                if out is not None:
                    out.write(json.dumps(asdict(run), ensure_ascii=False) + "\n")
                    out.flush()
    finally:
        if out is not None:
            out.close()
    print()
    print(report(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
