"""Replay, export and resume of journaled turns (agent.replay, agent.app.resume_turn).

Each scenario runs a real turn through ``open_parts``/``ask`` with a scripted model (and a
MockTransport for http), then replays it offline from the journal: it must come out
identical. Divergence, export through ``watt ask`` and resume after a crash follow.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.app import ask, open_parts, resume_turn
from agent.config import Settings, load_settings
from agent.events import Event, ResponseEvent
from agent.models.scripted import ScriptedModel
from agent.replay import export_turn, replay_turn
from agent.store.journal import Reader, TurnState
from agent.store.sessions import SessionStore
from rt.errors import ConfigError, SessionError

REPO = Path(__file__).resolve().parent.parent

KV_SET = "(argv 0 $k) (argv 1 $v)\n(check (kv.set $k $v))\n(i32.const 0)"
KV_GET = "(argv 0 $k)\n(resv (kv.get $k))\n(i32.const 0)"
UPPER = "(argv 0 $t)\n(resv (str.upper $t))\n(i32.const 0)"


def wat(body: str, *args: str) -> str:
    return f"ToolCall::Wat(```wat\n{body}\n```" + "".join(f", {json.dumps(a)}" for a in args) + ")"


def respond(text: str) -> str:
    return f'ToolCall::Response("""{text}""")'


def settings_for(tmp_path: Path, **extra: Any) -> Settings:
    return load_settings(extra, environ={"WATT_HOME": str(tmp_path / "home")})


def run_turn(settings: Settings, replies: list[Any], task: str = "task", **kw: Any) -> list[Event]:
    with open_parts(settings, model=ScriptedModel(replies), **kw) as parts:
        return list(ask(parts, task))


def pages(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, text=f"page for {request.url.path}")


SCENARIOS: dict[str, tuple[list[Any], dict[str, Any]]] = {
    "kv set then get": ([wat(KV_SET, "a", "1"), wat(KV_GET, "a"), respond("1")], {}),
    "a trap, then an answer": ([wat("(unreachable)"), respond("it trapped")], {}),
    "a compile error repaired": (
        [wat("(i32.bogus 1)"), wat(UPPER, "x"), respond("X")],
        {},
    ),
    "the loop guard": ([wat("(unreachable)")] * 3 + [respond("best")], {}),
    "a program's answer": ([wat('(answer "forty-two")')], {}),
    "a catalog program": (['ToolCall::Catalog("upper", "hi")', respond("HI")], {}),
    "http.get": (
        [wat('(resv (http.get "https://example.com/a"))\n(i32.const 0)'), respond("ok")],
        {"allow_domains": ["example.com"]},
    ),
    "fs write and read": (
        [
            wat('(check (fs.write "n.txt" "hello"))\n(resv (fs.read "n.txt"))\n(i32.const 0)'),
            respond("hello"),
        ],
        {"fs_root": "JAIL"},
    ),  # fmt: skip
    "ai.assist": (
        [wat('(resv (ai.assist "shout" "hi" 0))\n(i32.const 0)'), "HI!", respond("HI!")],
        {},
    ),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_replayed_turn_is_identical(tmp_path: Path, name: str) -> None:
    replies, extra = SCENARIOS[name]
    if extra.get("fs_root") == "JAIL":
        (tmp_path / "jail").mkdir()
        extra = {**extra, "fs_root": str(tmp_path / "jail")}
    settings = settings_for(tmp_path, **extra)
    events = run_turn(settings, replies, http_transport=httpx.MockTransport(pages))
    assert events, name
    if extra.get("fs_root"):  # the replay writes nothing: the file is the recorded run's
        (Path(extra["fs_root"]) / "n.txt").unlink()
    report = replay_turn(settings, "default")
    assert report.identical, report
    assert report.steps >= 1
    if extra.get("fs_root"):
        assert not (Path(extra["fs_root"]) / "n.txt").exists()


def test_replay_reports_a_changed_catalog_program_instead_of_crashing(tmp_path: Path) -> None:
    catalog = tmp_path / "cat"
    catalog.mkdir()
    program = catalog / "greet.wat"
    program.write_text(
        ';;; name = "greet"\n;;; description = "greets"\n(resv "hello")\n(i32.const 0)\n',
        encoding="utf-8",
    )
    settings = settings_for(tmp_path, catalog=[str(catalog)])
    run_turn(settings, ['ToolCall::Catalog("greet")', respond("hello")])
    assert replay_turn(settings, "default").identical
    program.write_text(program.read_text().replace('"hello"', '"goodbye"'), encoding="utf-8")
    report = replay_turn(settings, "default")
    assert not report.identical
    assert (report.step, report.field) == (1, "results")
    assert report.recorded == ["hello"] and report.replayed == ["goodbye"]


def test_replay_with_no_turn_is_one_line(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    SessionStore(settings.home).open("default").close()
    with pytest.raises(SessionError, match="no turns yet"):
        replay_turn(settings, "default")
    with pytest.raises(SessionError, match="no session named 'nope'"):
        replay_turn(settings, "nope")


def test_an_exported_turn_replays_through_watt_ask(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, allow_domains=["example.com"])
    replies = [wat('(resv (http.get "https://example.com/x"))\n(i32.const 0)'),
               wat(KV_SET, "k", "v"), respond("page for /x")]  # fmt: skip
    run_turn(settings, replies, http_transport=httpx.MockTransport(pages))
    exported = tmp_path / "turn.jsonl"
    assert export_turn(settings, "default", None, exported) == 5
    env = {**os.environ, "WATT_HOME": str(tmp_path / "other-home")}
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "ask", "--model", f"script:{exported}", "-q",
         "--allow-domain", "example.com", "task"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "page for /x"  # no network: the page came from the file
    other = load_settings(environ={"WATT_HOME": str(tmp_path / "other-home")})
    assert replay_turn(other, "default").identical


# ---- resume ---------------------------------------------------------------------------------

CRASHING = """
    import json, os, signal, sys
    from agent.app import ask, open_parts
    from agent.config import load_settings
    from agent.models.scripted import ScriptedModel
    home, replies = sys.argv[1], iter(json.loads(sys.argv[2]))

    def responder(messages):
        reply = next(replies, None)
        if reply is None:  # the model call after step 1: the process dies here
            os.kill(os.getpid(), signal.SIGKILL)
        return reply

    settings = load_settings(environ={"WATT_HOME": home})
    with open_parts(settings, model=ScriptedModel(responder)) as parts:
        for event in ask(parts, "count and finish"):
            pass
"""


def crash_after_step_one(tmp_path: Path, first: str) -> Settings:
    settings = settings_for(tmp_path)
    code = textwrap.dedent(CRASHING)
    proc = subprocess.run(
        [sys.executable, "-c", code, str(settings.home), json.dumps([first])],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return settings


def test_resume_continues_a_crashed_turn_without_repeating_its_step(tmp_path: Path) -> None:
    incr = '(check (kv.set "n" (str.concat (kv.get "n") "+")))\n(i32.const 0)'
    settings = crash_after_step_one(tmp_path, wat(incr))
    with SessionStore(settings.home).open("default") as session:
        session.kv.set("seen", "x")
    model = ScriptedModel([wat(KV_GET, "n"), respond("done")])
    with open_parts(settings, model=model) as parts:
        assert parts.session is not None
        assert parts.session.kv.get("n") is None or parts.session.kv.get("n") == "+"
        before = parts.session.kv.get("n")
        events = list(resume_turn(parts))
        assert isinstance(events[-1], ResponseEvent) and events[-1].text == "done"
        assert parts.session.kv.get("n") == before  # step 1 did not run again
        first = model.requests[0]
        assert any("[Observation (step 1)]" in m.content for m in first)
        assert [e.step for e in events if e.kind.value == "tool_start"] == [2]
        turns = parts.session.turns()
        assert [(t.task, t.state) for t in turns] == [("count and finish", TurnState.ANSWERED)]
        with pytest.raises(ConfigError, match="nothing to resume"):
            list(resume_turn(parts))


def test_a_side_effect_in_flight_is_reported_as_outcome_unknown(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with SessionStore(settings.home).open("default") as session, session.turn("post it") as turn:
        turn.add_message("user", "post it")
        turn.add_message("assistant", wat('(check (kv.set "k" "v"))\n(i32.const 0)'))
        turn.record("tool_start", 1, {"action": "wat", "program": "p", "args": []})
        turn.record("host_call", 1, {"fn": "kv.set", "call": 1, "phase": "start",
                                     "key": f"{turn.run}:1:1"})  # fmt: skip
        session.close()  # the process "died" here: the turn is left running
    model = ScriptedModel([respond("checked")])
    with open_parts(settings, model=model) as parts:
        events = list(resume_turn(parts))
        assert isinstance(events[-1], ResponseEvent)
        told = model.requests[0][-1].content
        assert "outcome is unknown" in told and "kv.set" in told and ":1:1" in told
    with Reader(SessionStore(settings.home).path("default"), "default") as reader:
        assert reader.verify().ok
        kinds = [e.kind for e in reader.entries()]
    assert kinds.count("turn_start") == 2 and kinds[-1] == "turn_end"


def test_resume_in_the_cli(tmp_path: Path) -> None:
    settings = crash_after_step_one(tmp_path, wat(UPPER, "abc"))
    script = tmp_path / "rest.jsonl"
    script.write_text(json.dumps(respond("ABC")) + "\n", encoding="utf-8")
    env = {**os.environ, "WATT_HOME": str(settings.home)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, env=env,
            cwd=REPO, timeout=120,
        )  # fmt: skip

    log = run("log")
    assert "crashed" in log.stdout and "step 1 wat  status 0" in log.stdout
    done = run("ask", "--resume", "--model", f"script:{script}", "-q")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ABC"
    assert "answered" in run("log").stdout
    again = run("ask", "--resume", "--model", f"script:{script}", "-q")
    assert again.returncode == 2 and "nothing to resume" in again.stderr
