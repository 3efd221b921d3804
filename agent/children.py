"""Child agents: the runner behind ``agent.run`` (DESIGN.md "The agent capability").

A task's agents form a tree. ``Children`` (one per ``Parts``) is the tree's shared part and the
runner of the top task; every child is a ``Node`` that runs its own task with the loop, in the
same session, as a turn of its own whose ``parent_run`` is its parent's run id.

- The grant (``narrow``) is the intersection of the parent's grant and the words the program
  asked for: capability names, ``http`` (all of the parent's hosts) or ``http:HOST[:PORT]`` (one
  of them, exactly), ``fs`` (the parent's jail) or ``fs:SUBDIR`` (a directory inside it). Any
  word the parent's grant does not cover is EACCESS before anything runs. ``agent`` is granted
  to a child only above the depth cap (``agent_depth``; the top task is depth 0). Every child
  has ``kv``: the parent's store when it asked for ``kv``, else one of its own for its run.
- At most ``agents`` child runs per task, the whole tree counted (ENOMEM past it).
- Budgets come out of the parent's remaining budget: the child's steps are at most the
  parent's remaining steps, its tokens and cost what is left of the parent's (the child's own
  usage and its children's are then charged to the parent: ``Node.charged``), its wall time
  what is left of the parent program's run (the child stops when that run's stop event is
  set: at its deadline and on Ctrl-C, so Ctrl-C stops the whole tree).
- A child that does not answer (stopped by a budget, failed, interrupted) makes the parent's
  call fail with EREMOTE and a one-line reason in the run's debug lines.
- The child's run id is derived from (parent run id, step, call index): a child whose turn is
  already answered in the session is not run again, its recorded answer is returned.
- The model is the parent's (one object: with ``--model script:FILE`` the whole tree draws from
  one queue in call order); the system prompt is built from the child's registry and grant.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent.config import Settings
from agent.events import Event, Thinking, ToolStart
from agent.loop import LoopSettings, run_task
from agent.models.messages import ChatModel, Usage
from agent.outcome import OutcomeKind, TaskOutcome, task_outcome
from agent.programs.catalog import Catalog
from agent.prompt import build_system_prompt
from agent.store.journal import TurnRecord, TurnState
from agent.store.sessions import Session
from agent.store.writer import Turn, cost_of
from capabilities import Registry, standard_registry
from capabilities.ai import Assistant
from capabilities.kv import KvBackend, MemoryKv
from capabilities.netguard import Grants
from rt.codes import Err
from rt.engine import Runtime
from rt.errors import CapabilityError, Interrupted, ModelAPIError, WattError
from rt.host import GuestError

CORE = frozenset({"sys"})
ALWAYS = frozenset({"sys", "kv"})  # a child's kv is its own unless it asks for the parent's


@dataclass(frozen=True)
class Grant:
    """What one agent of the tree may use: capability names, http hosts, the fs jail root."""

    names: frozenset[str]
    hosts: tuple[str, ...] = ()
    fs_root: Path | None = None
    shares_kv: bool = True  # False: the agent's kv is its own, not the parent's

    def to_dict(self) -> dict[str, Any]:
        return {
            "capabilities": sorted(self.names), "http": list(self.hosts),
            "fs_root": None if self.fs_root is None else str(self.fs_root),
            "kv": "shared" if self.shares_kv else "own",
        }  # fmt: skip


def _refuse(word: str, why: str) -> GuestError:
    return GuestError(Err.EACCESS, f"grant {word!r} refused: {why}")


def _http_word(word: str, host: str, parent: Grant) -> tuple[str, ...]:
    """The hosts ``http`` (all of the parent's) or ``http:HOST[:PORT]`` (one of them) grants."""
    if "http" not in parent.names:
        raise _refuse(word, "http is not granted to this agent")
    if not parent.hosts:
        raise _refuse(word, "this agent's http allow-list is empty")
    if not host:
        return parent.hosts
    try:
        wanted = Grants.parse([host]).entries
        held = Grants.parse(parent.hosts).entries
    except CapabilityError as exc:
        raise GuestError(Err.EPARSE, f"grant {word!r}: {exc}") from None
    if not wanted <= held:
        raise _refuse(word, f"not in this agent's http allow-list ({Grants(held)})")
    return (host,)


def _fs_word(word: str, sub: str, parent: Grant) -> Path | None:
    if "fs" not in parent.names:
        raise _refuse(word, "fs is not granted to this agent")
    if parent.fs_root is None:
        raise _refuse(word, "this agent has no fs jail")
    if not sub:
        return parent.fs_root
    parts = sub.replace("\\", "/").split("/")
    if (
        sub.startswith("/")
        or "\0" in sub
        or "\\" in sub
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise _refuse(word, "SUBDIR must be a relative path inside the jail, without '..'")
    root = parent.fs_root.resolve()
    try:
        real = (root / sub).resolve(strict=True)
    except (OSError, RuntimeError):
        raise GuestError(Err.ENOENT, f"grant {word!r}: no directory {sub!r} in the jail") from None
    if not real.is_relative_to(root) or real == root:
        raise _refuse(word, "it leads outside the jail")
    if not real.is_dir():
        raise GuestError(Err.ENOENT, f"grant {word!r}: {sub!r} is not a directory")
    return real


def narrow(parent: Grant, words: Iterable[str], *, depth: int, max_depth: int) -> Grant:
    """The child's grant at ``depth``: what ``words`` ask for, if ``parent`` holds all of it."""
    names: set[str] = set(ALWAYS)
    hosts: list[str] = []
    fs_root: Path | None = None
    shares_kv = False
    for word in words:
        name, _, rest = word.partition(":")
        name = name.lower()
        if name == "http":
            hosts += _http_word(word, rest, parent)
        elif name == "fs":
            fs_root = _fs_word(word, rest, parent)
        elif rest:
            raise _refuse(word, "only http:HOST[:PORT] and fs:SUBDIR take a ':' part")
        elif name == "agent" and depth >= max_depth:
            raise _refuse(word, f"the depth cap of {max_depth} is reached (agent_depth)")
        elif name not in parent.names and name not in CORE:
            raise _refuse(word, f"this agent holds {', '.join(sorted(parent.names))}")
        shares_kv = shares_kv or name == "kv"
        names.add(name)
    return Grant(frozenset(names), tuple(dict.fromkeys(hosts)), fs_root, shares_kv)


def child_run_id(parent: str, step: int, index: int) -> str:
    """The run id of the ``index``-th child (from 1) started in ``step`` of run ``parent``: a
    UUIDv8 (RFC 9562) of a hash, so replaying or resuming the parent finds the same child."""
    value = int(hashlib.sha256(f"watt-child:{parent}:{step}:{index}".encode()).hexdigest()[:32], 16)
    value = (value & ~(0xF << 76)) | (0x8 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass
class Node:
    """One agent of the tree: its grant, budget, run id, and what it and its children spent."""

    tree: Children
    depth: int
    grant: Grant
    kv: KvBackend
    loop: LoopSettings
    run: str = ""
    step: int = 0
    index: int = 0  # agent.run calls started in this step
    own: Usage = field(default_factory=Usage)
    charged_usage: Usage = field(default_factory=Usage)

    def charged(self) -> Usage:
        """What this agent's children (and theirs) spent: charged to its budgets."""
        return self.charged_usage

    def spent(self) -> Usage:
        return self.own + self.charged_usage

    def at(self, event: Event) -> None:
        """Follow this agent's loop: its step, and its own model calls' usage."""
        if event.step != self.step and isinstance(event, (Thinking, ToolStart)):
            self.step, self.index = event.step, 0
        if isinstance(event, Thinking):
            self.own = self.own + event.usage

    def __call__(
        self, task: str, grants: list[str], *, cancel: threading.Event, seconds: float
    ) -> str:
        return self.tree.spawn(self, task, grants, cancel=cancel, seconds=seconds)

    def child_loop(self) -> LoopSettings:
        """The child's loop settings: this agent's remaining budget (EREMOTE when spent)."""
        loop, spent = self.loop, self.spent()
        tokens = None if loop.max_tokens_total is None else loop.max_tokens_total - spent.total
        if tokens is not None and tokens <= 0:
            raise GuestError(Err.EREMOTE, "no token budget left for a child agent")
        cost = None
        if loop.max_cost is not None and loop.price is not None:
            cost = loop.max_cost - (cost_of(loop.price, spent.prompt, spent.completion) or 0.0)
            if cost <= 0:
                raise GuestError(Err.EREMOTE, "no cost budget left for a child agent")
        steps = max(1, loop.max_steps - max(self.step, 1) + 1)
        return replace(loop, max_steps=steps, max_tokens_total=tokens, max_cost=cost)


class Children:
    """The shared part of a task's agent tree, and the runner of its top task (depth 0)."""

    def __init__(
        self, settings: Settings, *, model: Callable[[], ChatModel], session: Session | None,
        assistant: Assistant | None = None, http_transport: Any = None,
        secrets: Sequence[str] = (), protected: Sequence[Path] = (),
    ) -> None:  # fmt: skip
        self.settings, self.model, self.session = settings, model, session
        self.assistant, self.http_transport = assistant, http_transport
        self.secrets, self.protected = tuple(secrets), tuple(protected)
        self.max_children, self.max_depth = settings.agents, settings.agent_depth
        self.catalog = Catalog({})
        self.started = 0
        self.on_entry: Callable[[dict[str, Any]], None] | None = None  # the children's rows
        self.root = Node(self, 0, Grant(frozenset()), MemoryKv(), LoopSettings())

    def attach(self, registry: Registry, granted: Iterable[str], catalog: Catalog) -> None:
        """The top task's grant (as the user gave it), kv store and catalog (``open_parts``;
        ``begin`` gives each task its loop settings)."""
        fs_root = getattr(registry.get("fs"), "root", None) if "fs" in registry else None
        kv = getattr(registry.get("kv"), "backend", None) if "kv" in registry else None
        grant = Grant(frozenset(granted), tuple(self.settings.allow_domains), fs_root, True)
        self.catalog = catalog
        self.root = Node(self, 0, grant, kv or MemoryKv(), LoopSettings(granted=grant.names))

    def begin(self, run: str, loop: LoopSettings) -> Node:
        """A new top task: its run id and budgets; the tree's count starts again."""
        self.started = 0
        self.root = replace(
            self.root, run=run, loop=replace(loop, charged=None), step=0, index=0,
            own=Usage(), charged_usage=Usage(),
        )  # fmt: skip
        return self.root

    def charged(self) -> Usage:
        return self.root.charged()

    def __call__(
        self, task: str, grants: list[str], *, cancel: threading.Event, seconds: float
    ) -> str:
        return self.spawn(self.root, task, grants, cancel=cancel, seconds=seconds)

    def spawn(
        self, parent: Node, task: str, words: list[str], *, cancel: threading.Event,
        seconds: float,
    ) -> str:  # fmt: skip
        """Run one child of ``parent`` and return its answer; refusals and failures are
        ``GuestError``s (EACCESS, ENOMEM, EREMOTE) with a one-line reason."""
        grant = narrow(parent.grant, words, depth=parent.depth + 1, max_depth=self.max_depth)
        if self.started >= self.max_children:
            n = self.max_children
            raise GuestError(Err.ENOMEM, f"at most {n} child agent runs per task (--agents {n})")
        loop = replace(parent.child_loop(), granted=grant.names)
        parent.index += 1
        self.started += 1
        kv = parent.kv if grant.shares_kv else MemoryKv()
        child = Node(self, parent.depth + 1, grant, kv, loop)
        child.run = child_run_id(parent.run, parent.step, parent.index)
        child.loop = replace(loop, charged=child.charged)
        deadline = time.monotonic() + seconds
        try:
            outcome = self._run(parent, child, task, cancel)
        except Interrupted:
            late = time.monotonic() >= deadline
            why = (
                f"ran out of wall time ({seconds:.1f} s left in the run)" if late else "interrupted"
            )
            raise GuestError(Err.EREMOTE, f"child agent {why}") from None
        except ModelAPIError as exc:
            raise GuestError(Err.EREMOTE, f"child agent's model failed: {exc.one_line()}") from None
        finally:
            parent.charged_usage = parent.charged_usage + child.spent()
        if outcome.answered and outcome.answer is not None:
            return outcome.answer
        why = outcome.error or "it gave no answer"
        raise GuestError(Err.EREMOTE, f"child agent {outcome.kind.value}: {why}")

    def _parts(self, child: Node) -> tuple[Registry, Runtime]:
        grant = child.grant
        registry = standard_registry(
            kv=child.kv, fs_root=grant.fs_root, protected=self.protected,
            allow_domains=grant.hosts,
            assistant=self.assistant if "ai" in grant.names else None,
            http_transport=self.http_transport, secrets=self.secrets,
            agent_runner=child if "agent" in grant.names else None,
        )  # fmt: skip
        runtime = Runtime(
            registry.functions(), limits=self.settings.limits, cache_dir=self.settings.cache_dir
        )
        return registry, runtime

    def _run(self, parent: Node, child: Node, task: str, cancel: threading.Event) -> TaskOutcome:
        """The child's task through the loop, journaled as its own turn when there is a session."""
        session = self.session
        earlier = _recorded(session, child.run) if session is not None else None
        if earlier is not None and earlier.state is TurnState.ANSWERED:
            return TaskOutcome(OutcomeKind.ANSWERED, earlier.answer or "")  # not run again
        try:
            registry, runtime = self._parts(child)
        except WattError as exc:
            raise GuestError(Err.EACCESS, f"child agent's grant: {exc.one_line()}") from None
        prompt = build_system_prompt(registry, self.catalog, child.grant.names)

        def events(recorder: Turn | None) -> Iterator[Event]:
            return _followed(child, run_task(
                task, model=self.model(), runtime=runtime, catalog=self.catalog,
                system_prompt=prompt, recorder=recorder, settings=child.loop, cancel=cancel,
            ))  # fmt: skip

        try:
            return self._journaled(parent, child, task, events)
        finally:
            runtime.close()

    def _journaled(
        self, parent: Node, child: Node, task: str, events: Callable[[Turn | None], Iterator[Event]]
    ) -> TaskOutcome:
        session = self.session
        if session is None:
            return task_outcome(list(events(None)))
        earlier = _recorded(session, child.run)
        meta = {"depth": child.depth, "grant": child.grant.to_dict(), "budget": _budget(child.loop),
                "parent_step": parent.step}  # fmt: skip
        price = child.loop.price
        turn = Turn(
            session, task, parent_run=parent.run, price=price, run=child.run, meta=meta,
            resume=earlier.id if earlier is not None else 0,
        )  # fmt: skip
        with turn:
            seen = []
            for event in events(turn):
                seen.append(event)
                data = event.to_dict()
                if isinstance(event, Thinking) and price is not None:
                    data["cost"] = cost_of(price, event.usage.prompt, event.usage.completion)
                entry = turn.record(event.kind.value, event.step, data)
                if self.on_entry is not None:
                    self.on_entry(entry.to_dict())
            outcome = task_outcome(seen)
            answer = outcome.answer if outcome.answered else None
            state = _STATES.get(outcome.kind, TurnState.FAILED)
            turn.finish(state, answer=answer, reason=outcome.error)
        return outcome


_STATES = {
    OutcomeKind.ANSWERED: TurnState.ANSWERED,
    OutcomeKind.STOPPED: TurnState.STOPPED,
    OutcomeKind.INTERRUPTED: TurnState.INTERRUPTED,
}


def _budget(loop: LoopSettings) -> dict[str, Any]:
    return {"steps": loop.max_steps, "tokens": loop.max_tokens_total, "cost": loop.max_cost}


def _followed(node: Node, events: Iterator[Event]) -> Iterator[Event]:
    for event in events:
        node.at(event)
        yield event


def _recorded(session: Session, run: str) -> TurnRecord | None:
    """The session's turn with run id ``run`` (a child started before: replay, resume)."""
    return next((t for t in session.turns() if t.run == run), None)


def watch(
    children: Children | None, run: str, loop: LoopSettings, events: Iterator[Event],
    on_entry: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[Event]:  # fmt: skip
    """The top task's events, followed by its tree (its step, its own usage); passes them on.
    ``on_entry`` also gets the journal rows of the children (``watt ask --json``)."""
    if children is None:
        yield from events
        return
    root = children.begin(run, loop)
    children.on_entry = on_entry
    try:
        for event in events:
            root.at(event)
            yield event
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
