"""Sessions through the agent: history and kv across turns, across processes, across kill -9.

Every test goes through ``agent.app.open_parts`` / ``ask`` with a ``ScriptedModel``, so the
loop, the session store and the kv capability are the real ones.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from agent.app import Parts, ask, compact_history, open_parts
from agent.config import Settings, load_settings
from agent.events import ErrorEvent, Event, ResponseEvent, ToolResult
from agent.models.messages import Message
from agent.models.scripted import ScriptedModel
from agent.steps import ActionKind, Step
from agent.store.journal import TurnState
from agent.store.sessions import SessionStore
from rt.errors import Interrupted, ModelAPIError, SessionInUse

REPO = Path(__file__).resolve().parent.parent

KV_SET = """(argv 0 $key) (argv 1 $value)
(local $err i32)
(call $kv.set (local.get $key) (local.get $value)) (local.set $err)
(check $err)
(i32.const 0)"""
KV_GET = """(argv 0 $key)
(local $value i32) (local $err i32)
(call $kv.get (local.get $key)) (local.set $err) (local.set $value)
(check $err)
(resv $value)
(i32.const 0)"""


def wat(body: str, *args: str) -> str:
    return f"ToolCall::Wat(```wat\n{body}\n```" + "".join(f", {json.dumps(a)}" for a in args) + ")"


def respond(text: str) -> str:
    return f'ToolCall::Response("""\n{text}\n""")'


def settings_for(tmp_path: Path) -> Settings:
    return load_settings(environ={"WATT_HOME": str(tmp_path / "home")})


def run(parts: Parts, task: str) -> list[Event]:
    return list(ask(parts, task))


def answer(events: list[Event]) -> str:
    final = events[-1]
    assert isinstance(final, ResponseEvent), final
    return final.text


def child(script: str, *args: str, **popen: object) -> subprocess.Popen[str]:
    """A new Python process running ``script`` from the repository root."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-c", textwrap.dedent(script), *args],
        cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen,
    )  # fmt: skip


# ---- one process ---------------------------------------------------------------------------


def test_history_and_kv_carry_across_turns(tmp_path: Path) -> None:
    model = ScriptedModel([
        wat(KV_SET, "city", "Lisbon"), respond("Stored."),
        wat(KV_GET, "city"), respond("Lisbon"),
    ])  # fmt: skip
    with open_parts(settings_for(tmp_path), model=model) as parts:
        assert answer(run(parts, "remember Lisbon")) == "Stored."
        second = run(parts, "which city?")
        assert answer(second) == "Lisbon"
        assert [e.results for e in second if isinstance(e, ToolResult)] == [("Lisbon",)]
        session = parts.session
        assert session is not None
        assert [t.task for t in session.turns()] == ["remember Lisbon", "which city?"]
        assert all(t.finished is not None for t in session.turns())
        assert session.kv.get("city") == "Lisbon"
        assert [(s.turn, s.step, s.action) for s in session.steps()] == [
            (1, 1, ActionKind.WAT), (1, 2, ActionKind.RESPONSE),
            (2, 1, ActionKind.WAT), (2, 2, ActionKind.RESPONSE),
        ]  # fmt: skip
    # turn 2's first request: the system prompt, turn 1 compacted to task + answer, the task
    first_of_turn_two = model.requests[2]
    assert first_of_turn_two[1:] == [
        Message.user("remember Lisbon"),
        Message.assistant(respond("Stored.")),
        Message.user("which city?"),
    ]


def test_a_repaired_step_is_saved_with_the_turn(tmp_path: Path) -> None:
    broken = KV_GET.replace("(i32.const 0)", "(i32.const 0")
    model = ScriptedModel([wat(broken, "k"), wat(KV_SET, "k", "v"), respond("set")])
    with open_parts(settings_for(tmp_path), model=model) as parts:
        events = run(parts, "set k")
        assert answer(events) == "set"
        assert parts.session is not None
        saved = parts.session.steps()
        assert [s.step for s in saved] == [1, 2, 3]
        assert saved[0].status is None and "(repair 1 of 2)" in saved[0].observation
        assert saved[1].status == 0 and saved[1].args == ("k", "v")
        assert parts.session.last_program() is not None
        assert parts.session.kv.get("k") == "v"


def test_a_turn_that_fails_keeps_its_steps_and_is_marked_failed(tmp_path: Path) -> None:
    model = ScriptedModel([
        wat(KV_SET, "kept", "1"), respond("ok"),
        wat(KV_SET, "lost", "2"), ModelAPIError("HTTP 503 from the endpoint"),
        respond("again"),
    ])  # fmt: skip
    with open_parts(settings_for(tmp_path), model=model) as parts:
        run(parts, "first")
        events: list[Event] = []
        with pytest.raises(ModelAPIError):
            for event in ask(parts, "second"):
                events.append(event)
        assert isinstance(events[-1], ErrorEvent)
        session = parts.session
        assert session is not None
        turns = session.turns()
        assert [(t.task, t.state.value) for t in turns] == [
            ("first", "answered"),
            ("second", "failed"),
        ]
        assert "HTTP 503" in (turns[1].reason or "")
        assert session.kv.keys() == ["kept", "lost"]  # what the failed turn did is kept
        assert [s.turn for s in session.steps()] == [1, 1, 2]
        assert answer(run(parts, "third")) == "again"  # the session is still usable
        assert [t.task for t in session.turns()] == ["first", "second", "third"]
        # the model's history holds answered turns only
        assert [m.content for m in model.requests[-1][1:3]] == ["first", respond("ok")]
        assert model.requests[-1][3] == Message.user("third")


def test_an_interrupted_turn_is_saved_as_interrupted(tmp_path: Path) -> None:
    cancel = threading.Event()
    replies = iter([wat(KV_SET, "a", "1"), respond("one")])

    def responder(messages: list[Message]) -> str:
        reply = next(replies, None)
        if reply is None:
            cancel.set()  # Ctrl-C while the reply streams
            return respond("never")
        return reply

    with open_parts(settings_for(tmp_path), model=ScriptedModel(responder)) as parts:
        run(parts, "first")
        with pytest.raises(Interrupted):
            list(ask(parts, "second", cancel=cancel))
        assert parts.session is not None
        states = [(t.task, t.state.value) for t in parts.session.turns()]
        assert states == [("first", "answered"), ("second", "interrupted")]
        assert parts.session.answered(8) == [("first", respond("one"))]


def test_a_turn_stopped_by_the_loop_guard_is_saved(tmp_path: Path) -> None:
    trap = wat("(unreachable)\n(i32.const 0)")
    model = ScriptedModel([trap, trap, trap])
    with open_parts(settings_for(tmp_path), model=model) as parts:
        events = run(parts, "spin")
        assert isinstance(events[-1], ErrorEvent) and events[-1].error_type == "LoopGuard"
        assert parts.session is not None
        assert len(parts.session.steps()) == 3
        assert parts.session.turns()[0].finished is not None


# ---- across processes ----------------------------------------------------------------------

TURN_IN_A_CHILD = """
    import json, sys
    from agent.app import ask, open_parts
    from agent.config import load_settings
    from agent.models.scripted import ScriptedModel
    home, task, replies = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    settings = load_settings(environ={"WATT_HOME": home})
    with open_parts(settings, model=ScriptedModel(replies)) as parts:
        for event in ask(parts, task):
            print(event.kind.value, flush=True)
"""


def test_a_session_resumes_in_a_new_process(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    replies = [wat(KV_SET, "city", "Lisbon"), respond("Stored Lisbon.")]
    proc = child(TURN_IN_A_CHILD, str(settings.home), "remember Lisbon", json.dumps(replies))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.split() == ["thinking", "tool_start", "tool_result", "thinking", "response"]

    model = ScriptedModel([wat(KV_GET, "city"), respond("Lisbon")])
    with open_parts(settings, model=model) as parts:
        session = parts.session
        assert session is not None
        assert [(m.role, m.turn) for m in session.history()] == [
            ("user", 1), ("assistant", 1), ("user", 1), ("assistant", 1),
        ]  # fmt: skip
        assert [s.action for s in session.steps()] == [ActionKind.WAT, ActionKind.RESPONSE]
        assert session.steps()[0].program == KV_SET
        assert session.steps()[0].args == ("city", "Lisbon")
        assert session.kv.get("city") == "Lisbon"
        assert compact_history(session) == [
            Message.user("remember Lisbon"), Message.assistant(respond("Stored Lisbon.")),
        ]  # fmt: skip
        events = run(parts, "which city?")
    assert answer(events) == "Lisbon"
    assert model.requests[0][1:] == [
        Message.user("remember Lisbon"),
        Message.assistant(respond("Stored Lisbon.")),
        Message.user("which city?"),
    ]


KILLED_MID_TURN = """
    import json, sys, time
    from pathlib import Path
    from agent.app import ask, open_parts
    from agent.config import load_settings
    from agent.models.scripted import ScriptedModel
    home, ready, replies = sys.argv[1], Path(sys.argv[2]), iter(json.loads(sys.argv[3]))

    def responder(messages):
        reply = next(replies, None)
        if reply is None:  # turn 2, step 2: the model "thinks" until it is killed
            ready.write_text("blocked")
            time.sleep(600)
            raise SystemExit(3)
        return reply

    settings = load_settings(environ={"WATT_HOME": home})
    with open_parts(settings, model=ScriptedModel(responder)) as parts:
        for task in ("turn one", "turn two"):
            for event in ask(parts, task):
                print(task, event.kind.value, flush=True)
"""


def test_kill_9_during_a_turn_keeps_its_first_step(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    ready = tmp_path / "ready"
    replies = [
        wat(KV_SET, "a", "1"), respond("set a"),  # turn 1, complete
        wat(KV_SET, "b", "2"),  # turn 2, step 1 runs; step 2 blocks
    ]  # fmt: skip
    proc = child(KILLED_MID_TURN, str(settings.home), str(ready), json.dumps(replies))
    try:
        deadline = time.monotonic() + 120  # a bound on a hung child, not a timing assertion
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the child never reached turn 2"
            time.sleep(0.01)
        with pytest.raises(SessionInUse, match=f"pid {proc.pid}"):
            SessionStore(settings.home).open(settings.session)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert "turn two tool_result" in out  # turn 2 had written a step and a kv value

    model = ScriptedModel([wat(KV_GET, "a"), respond("1")])
    with open_parts(settings, model=model) as parts:  # no stale lock
        session = parts.session
        assert session is not None
        turns = session.turns()
        assert [(t.task, t.state.value) for t in turns] == [
            ("turn one", "answered"), ("turn two", "crashed"),
        ]  # fmt: skip
        assert [s.turn for s in session.steps()] == [1, 1, 2]  # turn 2's step 1 is kept
        assert session.kv.keys() == ["a", "b"]
        events = run(parts, "turn three")
        assert answer(events) == "1"
        assert [t.task for t in session.turns()] == ["turn one", "turn two", "turn three"]
    assert model.requests[0][1:] == [
        Message.user("turn one"), Message.assistant(respond("set a")), Message.user("turn three"),
    ]  # fmt: skip


def test_history_holds_only_answered_turns_and_is_capped(tmp_path) -> None:
    from agent.app import compact_history
    from agent.store.sessions import SessionStore

    with SessionStore(tmp_path).open("h") as session:
        for i in range(12):
            with session.turn(f"task {i}") as turn:
                turn.add_message("user", f"task {i}")
                turn.add_step(
                    Step(ActionKind.WAT, reply="ToolCall::Wat(```wat\n(i32.const 4)\n```)")
                )
                if i != 10:  # turn 10 was stopped by a guard: no answer
                    reply = f'ToolCall::Response("answer {i}")'
                    turn.add_step(Step(ActionKind.RESPONSE, reply=reply))
                    turn.finish(TurnState.ANSWERED, answer=f"answer {i}", reply=reply)
        history = compact_history(session, turns=4)
    assert [m.content for m in history] == [  # the last 4 answered turns
        "task 7",
        'ToolCall::Response("answer 7")',
        "task 8",
        'ToolCall::Response("answer 8")',
        "task 9",
        'ToolCall::Response("answer 9")',
        "task 11",
        'ToolCall::Response("answer 11")',
    ]
