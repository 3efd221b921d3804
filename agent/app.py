"""Assemble the agent's parts from Settings: model, capabilities, runtime, catalog, session.

The CLI and library users call ``open_parts`` once, then ``ask`` per task (``watt run`` is
``load_program`` and ``run_program``; ``/save`` is ``Parts.save_last_program``). Which model a
setting means is ``agent.models.backends``'s decision. Nothing here prints; every failure is a
WattError.

The model gets the run's reply grammar (``Parts.reply_grammar``: the granted host functions
and the usable catalog programs, as the system prompt lists them) when it is created, if it
takes one (``agent.models.grammar.GrammarAware``: the local and OpenAI-compatible models do; the
scripted model does not). ``Settings.grammar`` ("auto", "on", "off") decides whether it is
used: a local model uses it unless "off"; an endpoint under "auto" only when it is a
llama.cpp server (``agent.models.client``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.children import Children, watch
from agent.config import Settings, origin_of, price_of
from agent.events import AnswerSource, Event, ResponseEvent, Thinking, ToolResult, ToolStart
from agent.loop import LoopSettings, Resume, run_task
from agent.models.backends import make_model
from agent.models.grammar import GrammarAware, reply_grammar
from agent.models.messages import ChatModel, Message
from agent.outcome import OutcomeKind, TaskOutcome, task_outcome
from agent.programs.catalog import (
    Catalog,
    Source,
    apply_defaults,
    catalog_dirs,
    load_source,
    shipped_dir,
)
from agent.programs.writer import Saved, check_program_name, save_program
from agent.prompt import build_system_prompt
from agent.replay import load_recorded, resume_messages
from agent.store.hostcalls import HostRecorder, Replayer, journaled
from agent.store.journal import Reader, TurnState, new_run_id
from agent.store.sessions import Session, SessionStore
from agent.store.writer import Turn
from capabilities import Registry, standard_registry
from rt.engine import RunResult, Runtime
from rt.errors import CatalogError, ConfigError, SessionError, WattError
from rt.wattext import body_capabilities

if TYPE_CHECKING:
    import httpx

ASSIST_SYSTEM = (
    "You transform text exactly as instructed. Reply with the result only: no preamble, "
    "no ToolCall, no markdown fences."
)


class LazyAssistant:
    """The ai capability's model access, created on first use (``watt run`` rarely needs it)."""

    def __init__(self, factory: Callable[[], ChatModel]) -> None:
        self._factory = factory
        self._model: ChatModel | None = None

    def __call__(
        self,
        instruction: str,
        text: str,
        *,
        single_line: bool,
        cancel: threading.Event | None = None,
    ) -> str:
        if self._model is None:
            self._model = self._factory()
        suffix = " Answer in one line." if single_line else ""
        messages = [
            Message.system(ASSIST_SYSTEM),
            Message.user(f"Instruction: {instruction}{suffix}\n\nText:\n{text}"),
        ]
        reply = self._model.complete(messages, cancel=cancel).text.strip()
        return reply.splitlines()[0] if single_line and reply else reply


@dataclass
class Parts:
    settings: Settings
    registry: Registry
    runtime: Runtime
    catalog: Catalog
    catalog_errors: list[CatalogError]
    granted: set[str]
    session: Session | None = None
    model_factory: Callable[[], ChatModel] | None = None
    host_recorder: HostRecorder | None = None
    children: Children | None = None  # agent.run's runner, when --agents N grants it
    instructions: str = ""  # a named agent's --system text, added to the system prompt
    _model: ChatModel | None = field(default=None, repr=False)

    @property
    def model(self) -> ChatModel:
        if self._model is None:
            if self.model_factory is None:
                raise ConfigError("no model configured")
            model = self.model_factory()
            if isinstance(model, GrammarAware):
                model.use_grammar(self.reply_grammar())
            self._model = model
        return self._model

    def system_prompt(self) -> str:
        prompt = build_system_prompt(self.registry, self.catalog, self.granted)
        if self.instructions.strip():
            prompt += f"\nInstructions for this agent:\n{self.instructions.strip()}\n"
        return prompt

    def reload_catalog(self) -> None:
        """Load the catalog directories again (after a program was written)."""
        self.catalog, self.catalog_errors = Catalog.load(
            catalog_dirs(self.settings.home, self.settings.catalog)
        )

    def save_last_program(self, name: str) -> Saved:
        """``/save NAME``: the session's last successful program into the user catalog, its
        task as the description (``agent.programs.writer.save_program``); the catalog is then
        loaded again."""
        check_program_name(name)
        if self.session is None:
            raise SessionError("no session is open")
        last = self.session.last_program()
        if last is None:
            raise CatalogError("no successful program in this session yet: nothing to save")
        task = next((t.task for t in self.session.turns() if t.id == last.turn), "")
        saved = save_program(
            name, last.text, last.args, task if task.strip() else f"saved from session {self.session.name}",
            directory=self.settings.user_catalog, catalog=self.catalog, runtime=self.runtime,
            granted=self.granted, pure=self.registry.pure_names(),
        )  # fmt: skip
        self.reload_catalog()
        return saved

    def reply_grammar(self) -> str:
        """The GBNF reply grammar of this run: granted functions, usable catalog programs."""
        namespaces = {*self.granted, "sys"}
        functions = [f for f in self.registry.functions() if f.namespace in namespaces]
        programs = [p.name for p in self.catalog if set(p.capabilities) <= namespaces]
        return reply_grammar(functions, programs)

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def __enter__(self) -> Parts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_parts(
    settings: Settings,
    *,
    model: ChatModel | None = None,
    model_spec: str | None = None,
    session: str | None = None,
    use_session: bool = True,
    http_transport: httpx.BaseTransport | None = None,
) -> Parts:
    """Build every part for ``settings``; the session (if any) stays open until ``close``."""
    opened: Session | None = None
    if use_session:
        opened = SessionStore(settings.home).open(session or settings.session)
    try:

        def factory() -> ChatModel:
            return model if model is not None else make_model(settings, model_spec)

        holder: dict[str, ChatModel] = {}

        def shared_model() -> ChatModel:
            if "m" not in holder:
                holder["m"] = factory()
            return holder["m"]

        assistant = LazyAssistant(shared_model) if settings.ai else None
        children = _children(settings, shared_model, opened, assistant, http_transport)
        registry = standard_registry(
            kv=opened.kv if opened is not None else None,
            fs_root=settings.fs_root,
            protected=[*settings.protected_paths(), shipped_dir()],
            allow_domains=settings.allow_domains,
            assistant=assistant,
            http_transport=http_transport,
            secrets=[settings.api_key] if settings.api_key else [],
            agent_runner=children,
        )
        granted = set(registry.names())
        if not settings.ai:
            granted.discard("ai")
        if children is None:
            granted.discard("agent")
        functions = registry.functions()
        if model is None and (model_spec or settings.model or "").startswith("script:"):
            model = make_model(settings, model_spec)  # cheap, and it may carry host results
        recorded = getattr(model, "host_calls", None)
        if recorded:  # an exported turn (watt replay --export): outside calls come from it
            functions = Replayer(recorded, lambda digest: None).functions(functions)
        recorder = HostRecorder(opened) if opened is not None else None
        if recorder is not None:  # host calls reaching outside are journaled (replay, resume)
            functions = journaled(functions, recorder)
        runtime = Runtime(functions, limits=settings.limits, cache_dir=settings.cache_dir)
        catalog, errors = Catalog.load(catalog_dirs(settings.home, settings.catalog))
        parts = Parts(
            settings, registry, runtime, catalog, errors, granted, opened, shared_model,
            host_recorder=recorder, children=children,
        )  # fmt: skip
        if children is not None:
            children.attach(registry, granted, catalog)
        return parts
    except BaseException:
        if opened is not None:
            opened.close()
        raise


def prewarm(parts: Parts) -> list[WattError]:
    """Compile every usable catalog program into the cache; returns the programs' errors."""
    errors: list[WattError] = []
    for program in parts.catalog:
        if not set(program.capabilities) <= parts.granted:
            continue
        try:
            parts.runtime.prepare(program.body, parts.granted, line_offset=program.body_line - 1)
        except WattError as exc:
            errors.append(CatalogError(f"{program.path}: {exc.one_line()}"))
    return errors


def load_program(settings: Settings, name_or_path: str) -> Source:
    """``watt run NAME|PATH``: a .wat file, else the catalog program of that name."""
    return load_source(name_or_path, catalog_dirs(settings.home, settings.catalog))


def run_program(
    settings: Settings, source: Source, args: Sequence[str] = (), *, model_spec: str | None = None
) -> RunResult:
    """Run ``source`` once on ``args`` (a catalog program's defaults fill omitted ones) with
    the granted capabilities; the session is opened only when the program uses kv. Raises
    the RunError of a failed run (with its ``partial`` result)."""
    full = apply_defaults(source.program, args) if source.program is not None else list(args)
    uses_kv = "kv" in body_capabilities(source.body)
    with open_parts(settings, model_spec=model_spec, use_session=uses_kv) as parts:
        return parts.runtime.run(
            source.body, full, granted=parts.granted, line_offset=source.line_offset
        )


HISTORY_TURNS = 8

EntrySink = Callable[[dict[str, Any]], None]


def compact_history(session: Session, turns: int = HISTORY_TURNS) -> list[Message]:
    """Earlier turns as the model sees them: the last ``turns`` answered tasks, each as its
    task and the reply that answered it, read in one query (flat in the session's length).
    Turns that did not answer (failed, stopped, interrupted, crashed) are left out, so the
    model never takes a failed program for an answer."""
    out: list[Message] = []
    for task, reply in session.answered(turns):
        out += [Message.user(task), Message.assistant(reply)]
    return out


def _state(outcome: TaskOutcome) -> TurnState:
    return {
        OutcomeKind.ANSWERED: TurnState.ANSWERED,
        OutcomeKind.STOPPED: TurnState.STOPPED,
        OutcomeKind.INTERRUPTED: TurnState.INTERRUPTED,
    }.get(outcome.kind, TurnState.FAILED)


def _history_reply(events: Sequence[Event], answer: str) -> str:
    """What the history shows as the answering reply: the model's own, or for a program's
    answer a Response holding it."""
    last = events[-1] if events else None
    if isinstance(last, ResponseEvent) and last.source is AnswerSource.MODEL:
        replies = [e.reply for e in events if isinstance(e, Thinking)]
        if replies and replies[-1]:
            return replies[-1]
    return f'ToolCall::Response("""{answer}""")'


def model_price(parts: Parts) -> tuple[float, float] | None:
    """The ``[prices."MODEL"]`` entry of the model in use, looked up by its name (``gpt-4o``,
    ``script:FILE.jsonl``, ``local:FILE.gguf``: a ``--model`` given on the command line is not
    ``settings.model``), else by the configured model setting."""
    s = parts.settings
    return price_of(s, parts.model.name) or price_of(s, s.model)


def _loop_settings(parts: Parts) -> LoopSettings:
    s, price = parts.settings, model_price(parts)
    if s.max_cost is not None and price is None:
        name = parts.model.name
        raise ConfigError(
            f"{origin_of(s, 'max_cost')} needs a price for the model {name!r}: add "
            f'[prices."{name}"] with input and output (USD per million tokens) to config.toml'
        )
    return LoopSettings(
        s.max_steps, s.max_retries, s.max_tokens_total, s.observation_chars, parts.granted,
        s.max_cost, price,
        charged=parts.children.charged if parts.children is not None else None,
    )  # fmt: skip


def _children(
    settings: Settings,
    model: Callable[[], ChatModel],
    session: Session | None,
    assistant: LazyAssistant | None,
    transport: httpx.BaseTransport | None,
) -> Children | None:
    """agent.run's runner when ``--agents N`` grants it (else the capability is not granted)."""
    if settings.agents <= 0:
        return None
    return Children(
        settings, model=model, session=session, assistant=assistant, http_transport=transport,
        secrets=[settings.api_key] if settings.api_key else [],
        protected=[*settings.protected_paths(), shipped_dir()],
    )  # fmt: skip


def ask(
    parts: Parts,
    task: str,
    *,
    cancel: threading.Event | None = None,
    on_text: Callable[[str], None] | None = None,
    on_entry: EntrySink | None = None,
    fresh: bool = False,
) -> Iterator[Event]:
    """Run one task through the loop. With a session, every event is journaled as it happens
    (``on_entry`` gets each row's JSON, as ``watt ask --json`` prints it) and the turn ends
    with its state; ``fresh`` leaves the earlier turns out of the model's context."""
    loop_settings = _loop_settings(parts)
    model, system_prompt = parts.model, parts.system_prompt()
    if parts.session is None:
        for event in watch(parts.children, new_run_id(), loop_settings, run_task(
            task, model=model, runtime=parts.runtime, catalog=parts.catalog, system_prompt=system_prompt,
            settings=loop_settings, cancel=cancel, on_text=on_text,
        )):  # fmt: skip
            if on_entry is not None:
                on_entry(event.to_dict())
            yield event
        return
    history = [] if fresh else compact_history(parts.session)
    seen: list[Event] = []
    with parts.session.turn(task, price=loop_settings.price, meta=turn_meta(parts)) as turn:
        for event in watch(parts.children, turn.run, loop_settings, run_task(
            task, model=model, runtime=parts.runtime, catalog=parts.catalog, system_prompt=system_prompt,
            history=history, recorder=turn, settings=loop_settings, cancel=cancel, on_text=on_text,
        ), on_entry):  # fmt: skip
            seen.append(event)
            yield _journal(parts, turn, event, on_entry)
        _finish(turn, seen)


RESUMABLE = (TurnState.INTERRUPTED, TurnState.CRASHED)


def resume_turn(
    parts: Parts,
    *,
    cancel: threading.Event | None = None,
    on_text: Callable[[str], None] | None = None,
    on_entry: EntrySink | None = None,
) -> Iterator[Event]:
    """``--resume``: continue the session's last turn if it was interrupted or crashed, from
    its last completed step. Completed steps are not run again: their messages go to the
    model as they were. A side effect that started and never finished is not retried: the
    model is told its outcome is unknown."""
    session = parts.session
    if session is None:
        raise SessionError("--resume needs a session")
    turns = [t for t in session.turns() if t.parent_run is None]  # a child resumes with it
    if not turns or turns[-1].state not in RESUMABLE:
        state = turns[-1].state.value if turns else "none"
        raise ConfigError(  # a flag that does not apply: a usage error (exit 2)
            f"--resume: session {session.name!r} has nothing to resume (the last turn is "
            f"{state}; only an interrupted or crashed turn can be resumed)"
        )
    record = turns[-1]
    with Reader(session.path, session.name) as reader:
        recorded = load_recorded(reader, record.id)
    done = [e["step"] for e in recorded.events if e["kind"] == "tool_result"]
    resume = Resume(
        resume_messages(session.messages_of(record.id), recorded.unknown),
        first_step=max(done, default=0) + 1, first_record=session.last_step(record.id),
    )  # fmt: skip
    settings = _loop_settings(parts)
    history = compact_history(session)
    seen: list[Event] = []
    with session.turn(
        record.task, price=settings.price, meta=turn_meta(parts), resume=record.id
    ) as turn:
        for message in resume.messages[len(resume.messages) - len(recorded.unknown) :]:
            turn.add_message("user", message.content)
        for event in watch(parts.children, turn.run, settings, run_task(
            record.task, model=parts.model, runtime=parts.runtime, catalog=parts.catalog,
            system_prompt=parts.system_prompt(), history=history, recorder=turn, settings=settings,
            cancel=cancel, on_text=on_text, resume=resume,
        ), on_entry):  # fmt: skip
            seen.append(event)
            yield _journal(parts, turn, event, on_entry)
        _finish(turn, seen)


def _journal(parts: Parts, turn: Turn, event: Event, on_entry: EntrySink | None) -> Event:
    if isinstance(event, ToolStart) and parts.host_recorder is not None:
        parts.host_recorder.begin_step(event.step)
    entry = turn.record(event.kind.value, event.step, event.to_dict())
    if on_entry is not None:
        on_entry(entry.to_dict())
    if isinstance(event, ToolResult) and parts.host_recorder is not None:
        parts.host_recorder.check()  # a host call's record failed (disk full): the turn ends
    return event


def _finish(turn: Turn, seen: Sequence[Event]) -> None:
    outcome = task_outcome(seen)
    answer = outcome.answer if outcome.answered else None
    reply = _history_reply(seen, answer) if answer is not None else None
    turn.finish(_state(outcome), answer=answer, reply=reply, reason=outcome.error)


def turn_meta(parts: Parts) -> dict[str, Any]:
    """What a turn_start row records besides the task, so replay runs it the same way."""
    s, limits = parts.settings, parts.settings.limits
    return {
        "granted": sorted(parts.granted), "model": getattr(parts.model, "name", ""),
        "limits": {"fuel": limits.fuel, "memory": limits.memory_bytes,
                   "timeout": limits.timeout_s, "max_result_bytes": limits.max_result_bytes,
                   "max_source_bytes": limits.max_source_bytes},
        "max_steps": s.max_steps, "max_retries": s.max_retries,
        "observation_chars": s.observation_chars,
    }  # fmt: skip
