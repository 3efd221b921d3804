"""The agent loop's own overhead per step, with the model's time taken out (prints, never asserts).

    python bench/bench_agent.py [N]

One turn = ToolCall::Catalog("upper", "x"), then ToolCall::Response(...), through
``agent.app.ask`` with a ``ScriptedModel`` and a real session (SQLite, WAL, synchronous=FULL)
under a temporary WATT_HOME. The catalog program is compiled before timing (``prewarm``),
so the tool step is a cached run. Repeated N times (default 200); medians are reported.

Overhead per turn = wall time of the turn - time inside ``model.complete``. The target is
<= 5 ms for a cached catalog step. The breakdown wraps the loop's parts with timers
(each wrapper adds about a microsecond):

- prompt:  building the system prompt (``ask`` rebuilds it every turn)
- history: compacting earlier turns into messages
- parse:   ``parse_reply`` on both replies
- run:     ``Runtime.run`` (preprocess/compile cache hit, instantiate, run)
- record:  session writes (messages, steps) and the turn's commit
- rest:    everything else (events, observations, bookkeeping)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import agent.app as app  # noqa: E402
import agent.loop as loop  # noqa: E402
from agent.config import load_settings  # noqa: E402
from agent.events import ResponseEvent, ToolResult  # noqa: E402
from agent.models.scripted import ScriptedModel  # noqa: E402
from agent.store.sessions import Session, Turn  # noqa: E402

CALL = 'ToolCall::Catalog("upper", "x")'
ANSWER = 'ToolCall::Response("""\nX\n""")'


class Clock:
    """Accumulates time per label; ``wrap`` returns a timed version of a function."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[label] += time.perf_counter() - t0

        return timed

    def take(self) -> dict[str, float]:
        spent, self.spent = dict(self.spent), defaultdict(float)
        return spent


@contextmanager
def patched(clock: Clock, parts: app.Parts) -> Iterator[None]:
    """Time the loop's parts by wrapping them (restored on exit)."""
    saved: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)
        saved.append((owner, name, original))
        setattr(owner, name, clock.wrap(label, original))

    patch(app, "build_system_prompt", "prompt")
    patch(app, "compact_history", "history")
    patch(loop, "parse_reply", "parse")
    patch(parts.runtime, "run", "run")
    patch(Turn, "add_message", "record")
    patch(Turn, "add_step", "record")
    patch(Session, "_begin", "record")
    patch(Session, "_end", "record")
    try:
        yield
    finally:
        for owner, name, original in reversed(saved):
            if isinstance(owner, type) or owner in (app, loop):
                setattr(owner, name, original)
            else:
                delattr(owner, name)  # the instance attribute shadowed the method


def measure(n: int, use_session: bool) -> tuple[list[float], dict[str, list[float]]]:
    """Per-turn overhead (ms) and per-part times (ms) over n turns after a warm-up."""
    with tempfile.TemporaryDirectory() as home:
        settings = load_settings(environ={"WATT_HOME": home})
        model = ScriptedModel(lambda messages: ANSWER if messages[-1].role == "user"
                              and messages[-1].content.startswith("[Observation") else CALL)  # fmt: skip
        clock = Clock()
        model.complete = clock.wrap("model", model.complete)  # type: ignore[method-assign]
        with app.open_parts(settings, model=model, use_session=use_session) as parts:
            errors = app.prewarm(parts)
            if errors:
                raise SystemExit(f"prewarm failed: {errors[0]}")
            overheads: list[float] = []
            parts_ms: dict[str, list[float]] = defaultdict(list)
            with patched(clock, parts):
                for i in range(n + 20):
                    clock.take()
                    t0 = time.perf_counter()
                    events = list(app.ask(parts, f"upper-case x ({i})"))
                    wall = time.perf_counter() - t0
                    spent = clock.take()
                    result = next(e for e in events if isinstance(e, ToolResult))
                    if not (isinstance(events[-1], ResponseEvent) and result.cache == "memory"):
                        raise SystemExit(f"unexpected turn: {events[-1]} (cache {result.cache})")
                    if i < 20:
                        continue  # warm-up
                    overheads.append((wall - spent.get("model", 0.0)) * 1000)
                    timed = 0.0
                    for label in ("prompt", "history", "parse", "run", "record"):
                        parts_ms[label].append(spent.get(label, 0.0) * 1000)
                        timed += spent.get(label, 0.0)
                    parts_ms["rest"].append((wall - spent.get("model", 0.0) - timed) * 1000)
                    parts_ms["model"].append(spent.get("model", 0.0) * 1000)
    return overheads, parts_ms


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    print(f'agent loop overhead, {n} turns of Catalog("upper", "x") + Response (medians)')
    for use_session in (True, False):
        overheads, parts_ms = measure(n, use_session)
        med = statistics.median(overheads)
        p90 = statistics.quantiles(overheads, n=10)[-1]
        per_step = med / 2  # a turn is two steps: the catalog call and the answer
        label = "with a session" if use_session else "no session"
        print(f"  {label}: {med:.3f} ms per turn (p90 {p90:.3f}), {per_step:.3f} ms per step; "
              f"target <= 5 ms per cached catalog step: {per_step / 5:.2f}x of it")  # fmt: skip
        shown = ", ".join(
            f"{k} {statistics.median(v):.3f}" for k, v in parts_ms.items() if k != "model"
        )
        model = statistics.median(parts_ms["model"])
        print(f"      per turn, ms: {shown}; model (excluded) {model:.3f}")
        if use_session and n >= 40:
            early, late = (
                statistics.median(parts_ms["history"][s]) for s in (slice(20), slice(-20, None))
            )
            print(f"      history compaction grows with the session: {early:.3f} ms at turn ~30, "
                  f"{late:.3f} ms at turn ~{n + 10} ({late / max(early, 1e-9):.1f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
