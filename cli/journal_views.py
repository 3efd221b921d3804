"""`watt log`: turns with their state and steps, `--follow` (new rows as they are appended),
`--verify` (the hash chain). Read through ``agent.store.journal.Reader``: no lock is taken,
so it works while a chat or ask writes the session in another process."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from cli.common import EXIT_FAILED, EXIT_OK, cancel_on_sigint, say
from cli.safe_text import dumps

if TYPE_CHECKING:
    from agent.config import Settings
    from agent.steps import Step
    from agent.store.journal import Entry, Reader, TurnRecord


def _reader(settings: Settings) -> Reader:
    from agent.store.journal import Reader
    from agent.store.sessions import SessionStore
    from rt.errors import UnknownSession

    store = SessionStore(settings.home)
    if not store.exists(settings.session):
        raise UnknownSession(f"no session named {settings.session!r}")
    return Reader(store.path(settings.session), settings.session)


def _clock(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _cost(cost: float | None) -> str:
    return "" if cost is None else f"  ${cost:.4f}"


def turn_line(turn: TurnRecord) -> str:
    took = f" ({turn.finished - turn.started:.1f}s)" if turn.finished else ""
    tokens = turn.input_tokens + turn.output_tokens
    return (
        f"turn {turn.id}  {turn.state.value}  {_clock(turn.started)} -> "
        f"{_clock(turn.finished)}{took}  tokens {tokens}{_cost(turn.cost)}"
    )


def step_lines(step: Step) -> list[str]:
    from agent.steps import ActionKind

    tokens = (step.prompt_tokens or 0) + (step.completion_tokens or 0)
    head = f"  step {step.step} {step.action.value}"
    if step.action is ActionKind.RESPONSE:
        lines = [f"{head}  tokens {tokens}{_cost(step.cost)}"]
    else:
        status = "not run" if step.status is None else f"status {step.status}"
        fuel = "" if step.fuel is None else f"  fuel {step.fuel}"
        ms = sum(float(v) for v in step.timings.values()) if step.timings else 0.0
        args = f"  args {list(step.args)}" if step.args else ""
        lines = [f"{head}  {status}{fuel}  {ms:.1f}ms  tokens {tokens}{_cost(step.cost)}{args}"]
    if step.program:
        lines += [f"      {line}" for line in step.program.strip().splitlines()[:12]]
    if step.observation:
        lines.append("      -> " + " ".join(step.observation.split())[:200])
    return lines


def show_log(settings: Settings, *, json_out: bool, limit: int, turn: int | None = None) -> int:
    """Every turn (or one) with its task, state, times, cost and steps."""
    with _reader(settings) as reader:
        turns = reader.turns(last=limit) if turn is None else reader.turns(turn)
        if turn is not None and not turns:
            from rt.errors import UnknownSession

            raise UnknownSession(f"session {settings.session!r} has no turn {turn}")
        first = turns[0].id if turns else 0
        steps: dict[int, list[Step]] = {}
        for step in reader.steps(turn, since=first):  # the shown turns' steps only
            steps.setdefault(step.turn, []).append(step)
    children: dict[str, list[TurnRecord]] = {}
    shown_runs = {t.run for t in turns}
    for record in turns:
        if record.parent_run in shown_runs:
            children.setdefault(record.parent_run or "", []).append(record)
    top = [t for t in turns if t.parent_run not in shown_runs]
    if json_out:
        for record in top:
            print(dumps(_turn_json(record, steps, children)))
        return EXIT_OK
    if not turns:
        say("no turns yet")
    lines: list[str] = []
    for record in top:
        lines += _turn_lines(record, steps, children, "")
    if lines:
        say("\n".join(lines))
    return EXIT_OK


def _turn_json(
    record: TurnRecord, steps: dict[int, list[Step]], children: dict[str, list[TurnRecord]]
) -> dict[str, Any]:
    data = record.to_dict()
    data["steps"] = [s.to_dict() for s in steps.get(record.id, [])]
    data["children"] = [_turn_json(c, steps, children) for c in children.get(record.run, [])]
    return data


def _turn_lines(
    record: TurnRecord, steps: dict[int, list[Step]], children: dict[str, list[TurnRecord]],
    indent: str,
) -> list[str]:  # fmt: skip
    """A turn, its steps, then its child agents' turns nested under it."""
    head = "child agent " if record.parent_run else ""
    lines = [
        indent + head + turn_line(record),
        f"{indent}  task: {' '.join(record.task.split())[:200]}",
    ]
    for step in steps.get(record.id, []):
        lines += [indent + line for line in step_lines(step)]
    for child in children.get(record.run, []):
        lines += _turn_lines(child, steps, children, indent + "    ")
    if record.answer is not None:
        lines.append(f"{indent}  answer: {' '.join(record.answer.split())[:300]}")
    elif record.reason:
        lines.append(f"{indent}  {record.state.value}: {record.reason}")
    return lines


def _detail(kind: str, data: dict[str, Any]) -> str:
    if kind == "turn_start":
        return str(data.get("task", ""))
    if kind == "turn_end":
        return f"{data.get('state')}: {data.get('answer') or data.get('reason') or ''}"
    if kind == "thinking":
        return str(data.get("text", ""))
    if kind == "tool_start":
        return str(data.get("name") or data.get("program", ""))
    if kind == "tool_result":
        failed = "" if data.get("ok") else f" {data.get('failure') or data.get('error') or ''}"
        return f"status {data.get('status')} {data.get('status_name')} fuel {data.get('fuel_used')}{failed}"
    if kind == "host_call":
        return f"{data.get('fn')} {data.get('phase', '')} code {data.get('code', '-')}"
    return str(data.get("text") or data.get("message") or "")


def entry_line(entry: Entry) -> str:
    """One journal row in a line, for `watt log --follow`."""
    detail = " ".join(_detail(entry.kind, dict(entry.data)).split())
    return f"{entry.seq:>6} turn {entry.turn} step {entry.step} {entry.kind}  {detail[:200]}"


def follow_log(settings: Settings, *, json_out: bool, after: int | None) -> int:
    """Print rows as they are appended until Ctrl-C; from the end unless ``after`` is given."""
    stop = threading.Event()
    with _reader(settings) as reader:
        start = reader.last_seq() if after is None else after
        if not json_out:
            say(f"following session {settings.session!r} from row {start} (Ctrl-C stops)", err=True)
        try:
            with cancel_on_sigint(stop):
                for entry in reader.follow(after=start, stop=stop):
                    if json_out:
                        print(dumps(entry.to_dict()), flush=True)
                    else:
                        say(entry_line(entry))
        except KeyboardInterrupt:
            pass
    return EXIT_OK


def verify_log(settings: Settings) -> int:
    with _reader(settings) as reader:
        verdict = reader.verify()
    if verdict.ok:
        say(f"ok: {verdict.rows} rows; head {verdict.head}")
        return EXIT_OK
    say(
        f"watt: journal row {verdict.bad_seq} does not match its hash (edited, removed or "
        f"reordered); the {verdict.rows} rows before it are intact, head {verdict.head}",
        err=True,
    )
    return EXIT_FAILED
