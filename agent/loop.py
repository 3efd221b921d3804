"""The ReAct loop: a small function over injected parts (DESIGN.md "Loop semantics").

``run_task`` yields typed events (agent.events) and ends after a ResponseEvent, or an
ErrorEvent when it gives up (loop guard, token budget). Interrupted and ModelAPIError
propagate to the caller after an ErrorEvent, so the CLI can choose the exit code.

- A compile or link error of a Wat call is sent back for repair up to ``max_retries`` times
  within the same step (Retry events); then it is an ordinary failed observation.
- A program that finishes with ``(answer ...)`` (``sys.answer``) ends the task with that
  string, byte-exact, and no further model call (source=PROGRAM).
- After ``max_steps`` the model is told FORCE_ANSWER; its reply is the answer (forced=True,
  unverified=True), the Response's text if it wrote one, else its whole text. Nothing more runs.
- The loop guard stops the task when one failing action (the same program or catalog call,
  arguments and failure) has failed GUARD_REPEATS times within it, consecutively or not;
  compile-repair attempts count, since a small model often resends the program unchanged.
  After its ErrorEvent the model is asked once for its best answer (BEST_ANSWER), which is
  yielded marked unverified: the task still counts as failed.
- Compile and link errors carry a one-line hint when one applies (agent.hints).
- An empty final answer, or one that only repeats an observation's failure, is asked for once
  more (EMPTY_ANSWER, ERROR_ANSWER); a second one stands. An empty program answer is a result.
- The token budget (``max_tokens_total``, the CLI's --max-tokens-total) is checked before
  each model call against the usage reported (or estimated) so far in this task.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Collection, Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from agent import observation
from agent.events import (
    AnswerSource,
    ErrorEvent,
    ErrorKind,
    Event,
    ResponseEvent,
    Retry,
    Thinking,
    ToolResult,
    ToolStart,
)
from agent.hints import catalog_hint, repair_hint
from agent.models.messages import ChatModel, Completion, Message, Role, Usage
from agent.parser import Action, CatalogCall, Response, WatCall, parse_reply
from agent.programs.catalog import Catalog, apply_defaults
from agent.steps import ActionKind, Step
from rt.codes import status_text
from rt.engine import RunResult, Runtime
from rt.errors import CatalogError, CompileError, Interrupted, LinkError, ModelAPIError, RunError

FORCE_ANSWER = (
    "[Step limit reached] You have used all {steps} steps. Reply now with "
    'ToolCall::Response("""...""") giving your best final answer from the observations so far.'
)
BEST_ANSWER = (
    '[Stopped] {reason}. Reply now with ToolCall::Response("""...""") giving your best answer '
    "from the observations so far; say plainly if they do not hold it."
)
EMPTY_ANSWER = (
    "[Empty answer] Your reply held no answer. Reply with "
    'ToolCall::Response("""...""") with the answer written out.'
)
ERROR_ANSWER = (
    "[Not an answer] Your reply repeats a failure from an observation. Fix the program (or "
    "choose another) and run it; answer only from a successful result."
)
GUARD_REPEATS = 3
# Small models go on to invent the observation their call would get; cut the reply there.
OBSERVATION_STOPS = ("[Observation", "\nObservation:", "\nObservation (")


class Recorder(Protocol):
    """Where a turn's messages and steps go (a session Turn, or nothing)."""

    def add_message(self, role: Role, content: str) -> object: ...

    def add_step(self, record: Step) -> object: ...


class NullRecorder:
    def add_message(self, role: Role, content: str) -> None:
        return None

    def add_step(self, record: Step) -> None:
        return None


@dataclass(frozen=True)
class LoopSettings:
    max_steps: int = 10
    max_retries: int = 2
    max_tokens_total: int | None = None
    observation_chars: int = 4000
    granted: Collection[str] | None = None
    max_cost: float | None = None  # dollars; needs ``price``
    price: tuple[float, float] | None = None  # USD per million input, output tokens
    # usage charged to this task besides its own model calls (its child agents' calls)
    charged: Callable[[], Usage] | None = None


@dataclass(frozen=True)
class Resume:
    """Where a resumed turn starts: its completed steps' messages after the task, the next
    step's number and the number of step records already stored."""

    messages: Sequence[Message]
    first_step: int
    first_record: int


@dataclass
class _Outcome:
    event: ToolResult
    compile_error: str | None = None  # set when the failure is repairable
    hint: str = ""  # a one-line fix for the compile error, when one is known


@dataclass(frozen=True)
class _Reply:
    completion: Completion
    action: Action
    thinking: Thinking


def run_task(
    task: str,
    *,
    model: ChatModel,
    runtime: Runtime,
    catalog: Catalog,
    system_prompt: str,
    history: Sequence[Message] = (),
    recorder: Recorder | None = None,
    settings: LoopSettings = LoopSettings(),
    cancel: threading.Event | None = None,
    on_text: Callable[[str], None] | None = None,
    resume: Resume | None = None,
) -> Iterator[Event]:
    """Answer ``task``: yield the events of every step, ending with a response or an error.

    ``resume`` continues a recorded turn: its completed steps' messages are given to the
    model as they were (nothing of them runs again) and the steps go on from ``first_step``.

    Steps recorded through ``recorder`` are numbered 1, 2, ... in order within the task
    (a compile-repair attempt is a record of its own, so record numbers can run ahead of
    event step numbers); every message the model saw after the system prompt and the
    history is recorded too, observations included.
    """
    state = _Task(
        task, model, runtime, catalog, system_prompt, history, recorder, settings, cancel, on_text,
        resume,
    )  # fmt: skip
    try:
        yield from state.run()
    except (ModelAPIError, Interrupted) as exc:
        yield ErrorEvent(state.step, exc.one_line(), ErrorKind.of(exc))
        raise


class _Task:
    """One task's state. ``run`` takes it a step at a time: ask the model, then ``_act`` on
    the reply (repairs within the step), which says whether the task has ended."""

    def __init__(
        self, task: str, model: ChatModel, runtime: Runtime, catalog: Catalog, system_prompt: str,
        history: Sequence[Message], recorder: Recorder | None, settings: LoopSettings,
        cancel: threading.Event | None, on_text: Callable[[str], None] | None,
        resume: Resume | None = None,
    ) -> None:  # fmt: skip
        self.model, self.runtime, self.catalog, self.settings = model, runtime, catalog, settings
        self.cancel, self.on_text = cancel, on_text
        self.messages = [Message.system(system_prompt), *history, Message.user(task)]
        self.recorder: Recorder = recorder or NullRecorder()
        self.first_step = 1
        if resume is None:
            self.recorder.add_message("user", task)
        else:  # the task and these messages are in the record already
            self.messages += resume.messages
            self.first_step = resume.first_step
        self.usage = Usage()
        self.started = time.perf_counter()
        self.failures: dict[tuple[object, ...], int] = {}
        self.step = 0  # the step in progress, for the events of a stop
        self.records = 0 if resume is None else resume.first_record
        self.asked_again = False

    def run(self) -> Generator[Event, None, None]:
        for step in range(self.first_step, self.settings.max_steps + 1):
            self.step = step
            reply = self._ask()
            if reply is None:
                yield self._budget_spent()
                return
            yield reply.thinking
            action = reply.action
            retell = _not_an_answer(action.text) if isinstance(action, Response) else ""
            if retell and not self.asked_again:
                self.asked_again = True  # asked for once more, at the cost of a step
                self._tell(retell)
                continue
            if (yield from self._act(reply)):
                return
        self.step = self.settings.max_steps + 1
        self._tell(FORCE_ANSWER.format(steps=self.settings.max_steps))
        yield from self._best_answer()

    def _act(self, reply: _Reply) -> Generator[Event, None, bool]:
        """Carry out the reply's action, sending compile errors back for repair within the
        step; True when the task has ended."""
        attempt = 0
        while not isinstance(reply.action, Response):
            yield _start(self.step, reply.action)
            outcome = _execute(
                self.step, reply.action, self.runtime, self.catalog, self.settings, self.cancel
            )
            repeats = self._count_failure(reply.action, outcome.event)
            if (
                outcome.compile_error is None
                or attempt >= self.settings.max_retries
                or repeats >= GUARD_REPEATS
            ):
                yield outcome.event
                self._record(_tool_step(reply.completion, reply.action, outcome.event))
                return (yield from self._after_run(outcome.event, repeats))
            attempt += 1
            yield Retry(self.step, attempt, outcome.compile_error)
            told = observation.compile_failure(
                self.step, outcome.compile_error, attempt, self.settings.max_retries,
                outcome.hint, repeated=repeats > 1,
            )  # fmt: skip
            self._record(_tool_step(reply.completion, reply.action, outcome.event, told))
            self._tell(told)
            repaired = self._ask()
            if repaired is None:
                yield self._budget_spent()
                return True
            reply = repaired
            yield reply.thinking
        self._record(_response_step(reply.completion))
        yield self._answer(reply.action.text)
        return True

    def _after_run(self, event: ToolResult, repeats: int) -> Generator[Event, None, bool]:
        """After a run: a program's answer ends the task; else the model is told what happened,
        and the loop guard stops a failure repeated GUARD_REPEATS times."""
        if event.ok and event.answer:  # an empty (answer "") is only a result
            self._record(
                Step(ActionKind.RESPONSE, observation=f"answer from the program (step {self.step})")
            )
            yield self._answer(event.answer, source=AnswerSource.PROGRAM)
            return True
        self._tell(event.observation)
        if event.ok or repeats < GUARD_REPEATS:
            return False
        reason = (
            f"stopped: the same failing action was repeated {GUARD_REPEATS} times "
            f"({event.error or event.failure or status_text(event.status or 0)})"
        )
        yield ErrorEvent(self.step, reason, ErrorKind.LOOP_GUARD)
        self._tell(BEST_ANSWER.format(reason=reason[0].upper() + reason[1:]))
        yield from self._best_answer(quiet=True)
        return True

    def _best_answer(self, *, quiet: bool = False) -> Generator[Event, None, None]:
        """Ask once for a best answer after a stop; it is yielded forced and unverified.
        ``quiet``: a spent budget or a model failure leaves the stop already reported."""
        try:
            reply = self._ask()
        except ModelAPIError:
            if not quiet:
                raise
            return
        if reply is None:
            if not quiet:
                yield self._budget_spent()
            return
        yield reply.thinking
        self._record(_response_step(reply.completion, unverified=True))
        best = _text(reply.completion, reply.action)
        if best:
            yield self._answer(best, forced=True, unverified=True)
        elif not quiet:
            yield ErrorEvent(
                self.step,
                f"stopped: {self.settings.max_steps} steps used and no answer given",
                ErrorKind.STEP_LIMIT,
            )

    def _ask(self) -> _Reply | None:
        """The model's next reply, parsed; None when the token budget is spent."""
        limit = self.settings.max_tokens_total
        if limit is not None and self._spent().total >= limit:
            return None
        if self._cost_spent():
            return None
        t0 = time.perf_counter()
        completion = self.model.complete(
            self.messages, on_text=self.on_text, cancel=self.cancel, stop=OBSERVATION_STOPS
        )
        self.usage = self.usage + completion.usage
        self.messages.append(Message.assistant(completion.text))
        self.recorder.add_message("assistant", completion.text)
        action = parse_reply(completion.text)
        ms = (time.perf_counter() - t0) * 1000
        return _Reply(
            completion,
            action,
            Thinking(
                self.step,
                action.reasoning,
                completion.usage,
                ms,
                action.notes,
                completion.text,
                _cost_of(self.settings.price, completion.usage),
            ),  # fmt: skip
        )

    def _tell(self, text: str) -> None:
        self.messages.append(Message.user(text))
        self.recorder.add_message("user", text)

    def _record(self, record: Step) -> None:
        self.records += 1
        self.recorder.add_step(replace(record, step=self.records))

    def _count_failure(self, action: Action, event: ToolResult) -> int:
        """How often this failure has been seen in the task (0 for a success); repair
        attempts count too: a model may resend one program."""
        if event.ok:
            return 0
        key = _signature(action, event)
        self.failures[key] = self.failures.get(key, 0) + 1
        return self.failures[key]

    def _answer(
        self, text: str, *, source: AnswerSource = AnswerSource.MODEL, forced: bool = False,
        unverified: bool = False,
    ) -> ResponseEvent:  # fmt: skip
        elapsed = (time.perf_counter() - self.started) * 1000
        return ResponseEvent(self.step, text, forced, self.usage, elapsed, source, unverified)

    def _cost(self) -> float:
        price = self.settings.price or (0.0, 0.0)
        spent = self._spent()
        return (spent.prompt * price[0] + spent.completion * price[1]) / 1_000_000

    def _spent(self) -> Usage:
        """This task's usage with what its child agents spent (the budgets cover the tree)."""
        charged = self.settings.charged
        return self.usage if charged is None else self.usage + charged()

    def _cost_spent(self) -> bool:
        limit = self.settings.max_cost
        return limit is not None and self.settings.price is not None and self._cost() >= limit

    def _budget_spent(self) -> ErrorEvent:
        if self._cost_spent():
            return ErrorEvent(
                self.step,
                f"stopped: the cost budget of ${self.settings.max_cost:g} is spent "
                f"(${self._cost():.4f} used); raise --max-cost to allow more",
                ErrorKind.BUDGET,
            )
        return ErrorEvent(
            self.step,
            f"stopped: the token budget of {self.settings.max_tokens_total} tokens is spent "
            f"({self._spent().total} used); raise --max-tokens-total to allow more",
            ErrorKind.BUDGET,
        )


def _cost_of(price: tuple[float, float] | None, usage: Usage) -> float | None:
    """Dollars for one call at ``price`` (USD per million input, output tokens)."""
    if price is None:
        return None
    return (usage.prompt * price[0] + usage.completion * price[1]) / 1_000_000


def _text(reply: Completion, action: Action) -> str:
    """The answer of a reply that was asked for one: its Response, else its text before any
    ToolCall, without reasoning tags ("" when it holds nothing else: no answer at all)."""
    if isinstance(action, Response):
        return action.text
    return _TAGS.sub("", reply.text.split("ToolCall::", 1)[0]).strip()


_TAGS = re.compile(r"<(reasoning|think)>.*?</\1>|</?(?:reasoning|think)>", re.DOTALL)


def _not_an_answer(text: str) -> str:
    """What to tell the model when its Response is no answer: empty, or an observation's
    failure copied out (the 1.5B model answered "Execution FAILED: line 1: ..." verbatim)."""
    if not text.strip(" \t\n.…"):  # "..." too: the 1.5B model answered a delegation so
        return EMPTY_ANSWER
    if (
        "Execution FAILED" in text
        or "Nothing below is an answer" in text
        or text.lstrip().startswith("[Observation")
    ):
        return ERROR_ANSWER
    return ""


def _start(step: int, action: Action) -> ToolStart:
    if isinstance(action, CatalogCall):
        return ToolStart(step, ActionKind.CATALOG, action.name, "", tuple(action.args))
    assert isinstance(action, WatCall)
    return ToolStart(step, ActionKind.WAT, None, action.body, tuple(action.args))


def _signature(action: Action, event: ToolResult) -> tuple[object, ...]:
    if isinstance(action, CatalogCall):
        what: object = ("catalog", action.name, tuple(action.args))
    else:
        what = (
            "wat",
            event.module_hash or getattr(action, "body", ""),
            tuple(getattr(action, "args", ())),
        )
    return (what, event.status, event.error)


def _tool_step(
    reply: Completion, action: Action, event: ToolResult, told: str | None = None
) -> Step:
    """A tool step as the recorder stores it; ``told`` is the observation when it differs."""
    wat = isinstance(action, WatCall)
    return Step(
        ActionKind.WAT if wat else ActionKind.CATALOG,
        reply=reply.text,
        program=action.body if isinstance(action, WatCall) else getattr(action, "name", None),
        args=tuple(getattr(action, "args", ())),
        observation=told if told is not None else event.observation,
        status=event.status,
        fuel=event.fuel_used,
        timings=event.timings,
        prompt_tokens=reply.usage.prompt,
        completion_tokens=reply.usage.completion,
        program_hash=event.module_hash or None,
    )


def _response_step(reply: Completion, *, unverified: bool = False) -> Step:
    return Step(
        ActionKind.RESPONSE,
        reply=reply.text,
        observation="unverified: a best answer after the task was stopped" if unverified else "",
        prompt_tokens=reply.usage.prompt,
        completion_tokens=reply.usage.completion,
    )


def _execute(
    step: int,
    action: Action,
    runtime: Runtime,
    catalog: Catalog,
    settings: LoopSettings,
    cancel: threading.Event | None,
) -> _Outcome:
    limit = settings.observation_chars
    if isinstance(action, CatalogCall):
        program = catalog.get(action.name)
        if program is None:  # a file that failed to load says so, with its error
            text = catalog.not_found(action.name).one_line()
            return _Outcome(
                _failed(step, observation.failure(step, text, limit), text, "UnknownProgram")
            )
        try:
            args = apply_defaults(program, action.args)
        except CatalogError as exc:
            return _Outcome(
                _failed(
                    step,
                    observation.failure(step, exc.one_line(), limit),
                    exc.one_line(),
                    "UsageError",
                )
            )
        source, offset = program.body, program.body_line - 1
    else:
        assert isinstance(action, WatCall)
        source, args, offset = action.body, list(action.args), 0
    try:
        result = runtime.run(
            source, args, granted=settings.granted, cancel=cancel, line_offset=offset
        )
    except (CompileError, LinkError) as exc:
        text = exc.one_line()
        hint = repair_hint(exc)
        if isinstance(action, WatCall):
            hint = (
                catalog_hint(
                    action.body,
                    action.args,
                    runtime.functions,
                    catalog.names(),
                    action.reasoning,
                )
                or hint
            )
        event = _failed(
            step, observation.failure(step, text, limit, hint=hint), text, type(exc).__name__
        )
        return _Outcome(
            event, compile_error=text if isinstance(action, WatCall) else None, hint=hint
        )
    except Interrupted:
        raise
    except RunError as exc:
        text = exc.one_line()
        obs = observation.failure(step, text, limit, exc.partial)
        return _Outcome(_failed(step, obs, text, type(exc).__name__, exc.partial))
    return _Outcome(_from_result(step, result, observation.success(step, result, limit)))


def _from_result(step: int, result: RunResult, obs: str) -> ToolResult:
    t = result.timings
    return ToolResult(
        step, ok=result.ok, status=result.status, status_name=result.status_name,
        results=tuple(result.results), debug=tuple(result.debug), fuel_used=result.fuel_used,
        timings={"preprocess_ms": t.preprocess_ms, "compile_ms": t.compile_ms,
                 "instantiate_ms": t.instantiate_ms, "run_ms": t.run_ms},
        cache=result.cache, module_hash=result.module_hash, observation=obs,
        answer=result.answer, failure=result.failure, notes=result.notes,
    )  # fmt: skip


def _failed(
    step: int, obs: str, error: str, etype: str, partial: RunResult | None = None
) -> ToolResult:
    if partial is not None:
        base = _from_result(step, partial, obs)
        return ToolResult(
            step, ok=False, status=None, status_name=etype, results=base.results, debug=base.debug,
            error=error, error_type=etype, fuel_used=base.fuel_used, timings=base.timings,
            cache=base.cache, module_hash=base.module_hash, observation=obs,
        )  # fmt: skip
    return ToolResult(
        step,
        ok=False,
        status=None,
        status_name=etype,
        error=error,
        error_type=etype,
        observation=obs,
    )
