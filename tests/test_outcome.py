"""TaskOutcome: how a task ended, read from its event stream once (agent.outcome)."""

from __future__ import annotations

import pytest

from agent.events import AnswerSource, ErrorEvent, ErrorKind, Event, ResponseEvent, Thinking
from agent.loop import LoopSettings, run_task
from agent.models.scripted import ScriptedModel
from agent.outcome import OutcomeKind, StopReason, TaskOutcome, task_outcome
from tests.test_loop import make_harness, respond, wat

THINK = Thinking(1, "why")


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([THINK, ResponseEvent(1, "4")], TaskOutcome(OutcomeKind.ANSWERED, "4")),
        (
            [THINK, ResponseEvent(1, "X", source=AnswerSource.PROGRAM)],
            TaskOutcome(OutcomeKind.ANSWERED, "X"),
        ),
        (
            [THINK, ErrorEvent(3, "stopped: repeated", ErrorKind.LOOP_GUARD),
             ResponseEvent(3, "best", unverified=True)],
            TaskOutcome(OutcomeKind.STOPPED, "best", True, StopReason.LOOP_GUARD, "stopped: repeated"),
        ),
        (
            [THINK, ErrorEvent(2, "budget spent", ErrorKind.BUDGET)],
            TaskOutcome(OutcomeKind.STOPPED, None, False, StopReason.BUDGET, "budget spent"),
        ),
        (
            [THINK, ResponseEvent(11, "guess", forced=True, unverified=True)],
            TaskOutcome(OutcomeKind.STOPPED, "guess", True, StopReason.STEP_LIMIT),
        ),
        (
            [THINK, ErrorEvent(1, "HTTP 500", ErrorKind.MODEL_API)],
            TaskOutcome(OutcomeKind.FAILED, None, False, None, "HTTP 500"),
        ),
        ([THINK], TaskOutcome(OutcomeKind.FAILED)),
        (
            [ErrorEvent(3, "stopped", ErrorKind.LOOP_GUARD), ErrorEvent(3, "ctrl-c", ErrorKind.INTERRUPTED)],
            TaskOutcome(OutcomeKind.INTERRUPTED, None, False, None, "stopped"),
        ),
    ],
)  # fmt: skip
def test_outcome_of_each_ending(events: list[Event], expected: TaskOutcome) -> None:
    outcome = task_outcome(events)
    assert outcome == expected
    assert outcome.answered is (expected.kind is OutcomeKind.ANSWERED)


def test_the_caller_can_say_it_was_interrupted() -> None:
    assert task_outcome([THINK], interrupted=True).kind is OutcomeKind.INTERRUPTED


def test_outcomes_of_real_loop_runs() -> None:
    harness = make_harness()

    def outcome(replies: list[str], **settings: object) -> TaskOutcome:
        events = run_task(
            "task", model=ScriptedModel(replies), runtime=harness.runtime,
            catalog=harness.catalog, system_prompt="S", settings=LoopSettings(**settings),  # type: ignore[arg-type]
        )  # fmt: skip
        return task_outcome(events)

    assert outcome([wat('(answer "hi")')]) == TaskOutcome(OutcomeKind.ANSWERED, "hi")
    assert outcome([respond("4")]).answered
    stopped = outcome([wat("(unreachable)", "x")] * 3 + [respond("maybe")])
    assert (stopped.kind, stopped.stop, stopped.answer, stopped.unverified) == (
        OutcomeKind.STOPPED, StopReason.LOOP_GUARD, "maybe", True,
    )  # fmt: skip
    forced = outcome([wat("(i32.const 0)"), respond("late")], max_steps=1)
    assert (forced.kind, forced.stop, forced.answer) == (
        OutcomeKind.STOPPED,
        StopReason.STEP_LIMIT,
        "late",
    )
