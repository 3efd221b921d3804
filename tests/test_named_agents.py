"""Named agents (``watt agents``): spawn, send, observe from 0 and live, ps, kill during a
turn, rm. Scripted models; the live and kill cases run real background processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from agent.app import open_parts
from agent.config import Settings
from agent.models.scripted import ScriptedModel
from agent.named import AgentConfig, AgentStore
from cli.main import app

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


def script(tmp_path: Path, *replies: str, name: str = "script.jsonl") -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in replies), encoding="utf-8")
    return f"script:{path}"


def wat(body: str) -> str:
    return f"<reasoning>run it</reasoning>\nToolCall::Wat(```wat\n{body}\n```)"


def rows(output: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_spawn_send_and_observe_from_0(tmp_path: Path, _watt_home: Path) -> None:
    model = script(tmp_path, wat('(answer (str.upper "hi"))'))
    made = invoke("agents", "spawn", "bob", "--model", model, "--system", "Be brief.")
    assert made.exit_code == 0, made.output
    config = json.loads((_watt_home / "agents" / "bob.json").read_text())
    assert config["system"] == "Be brief." and config["model"] == model
    assert oct((_watt_home / "agents" / "bob.json").stat().st_mode & 0o777) == "0o600"
    again = invoke("agents", "spawn", "bob")
    assert again.exit_code == 2 and "exists; use --replace" in again.output
    sent = invoke("agents", "send", "bob", "shout hi")
    assert sent.exit_code == 0, sent.output
    assert sent.output.strip().splitlines()[-1] == "HI"
    seen = invoke("agents", "observe", "bob", "--from", "0", "--no-follow", "--json")
    assert seen.exit_code == 0, seen.output
    events = rows(seen.output)
    assert events[0]["seq"] == 1 and events[0]["kind"] == "turn_start"
    assert events[0]["task"] == "shout hi"
    assert events[-1]["kind"] == "turn_end" and events[-1]["answer"] == "HI"
    later = invoke("agents", "observe", "bob", "--from", "3", "--no-follow", "--json")
    assert [r["seq"] for r in rows(later.output)] == [r["seq"] for r in events[2:]]
    text = invoke("agents", "observe", "bob", "--from", "0", "--no-follow")
    assert "turn_start" in text.output and "turn_end" in text.output
    replaced = invoke("agents", "spawn", "bob", "--replace", "--model", model)
    assert replaced.exit_code == 0
    fresh = invoke("agents", "observe", "bob", "--from", "0", "--no-follow", "--json")
    assert rows(fresh.output) == []  # --replace starts the agent afresh


def test_the_agents_instructions_reach_its_system_prompt(tmp_path: Path) -> None:
    with open_parts(Settings(home=tmp_path), model=ScriptedModel([])) as parts:
        parts.instructions = "Answer in French."
        assert parts.system_prompt().rstrip().endswith("Answer in French.")


def test_spawn_checks_the_grants_before_writing(_watt_home: Path) -> None:
    bad = invoke("agents", "spawn", "eve", "--allow-domain", "*.example.com")
    assert bad.exit_code == 2 and "refused" in bad.output
    assert not (_watt_home / "agents" / "eve.json").exists()
    missing = invoke("agents", "send", "nobody", "hi")
    assert missing.exit_code == 2 and "no agent named 'nobody'" in missing.output


def test_observe_follows_live(tmp_path: Path, _watt_home: Path) -> None:
    model = script(tmp_path, wat('(answer (str.upper "live"))'))
    assert invoke("agents", "spawn", "liv", "--model", model).exit_code == 0
    assert invoke("agents", "send", "liv", "first").exit_code == 0
    with AgentStore(_watt_home).reader("liv") as reader:
        start = reader.last_seq() + 1
    watcher = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "agents", "observe", "liv", "--from", str(start),
         "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
        env={**os.environ, "WATT_HOME": str(_watt_home)},
    )  # fmt: skip
    try:
        assert invoke("agents", "send", "liv", "second").exit_code == 0
        got = []
        assert watcher.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = watcher.stdout.readline()
            if not line:
                break
            got.append(json.loads(line))
            if got[-1]["kind"] == "turn_end":
                break
        assert got[0]["seq"] == start and got[0]["task"] == "second"
        assert got[-1]["kind"] == "turn_end" and got[-1]["answer"] == "LIVE"
    finally:
        watcher.send_signal(signal.SIGINT)
        code = watcher.wait(timeout=10)
        if watcher.stdout is not None:
            watcher.stdout.close()
    assert code == 0


def _ps() -> dict:  # type: ignore[type-arg]
    out = invoke("agents", "ps", "--json")
    assert out.exit_code == 0, out.output
    return {r["name"]: r for r in rows(out.output)}


def test_ps_and_kill_during_a_turn_then_rm(tmp_path: Path, _watt_home: Path) -> None:
    _watt_home.mkdir(parents=True, exist_ok=True)
    (_watt_home / "config.toml").write_text("fuel = 1_000_000_000_000_000\ntimeout = 120\n")
    model = script(tmp_path, wat("(loop $spin (br $spin))"))
    assert invoke("agents", "spawn", "spin", "--model", model).exit_code == 0
    assert _ps()["spin"]["state"] == "new"
    started = invoke("agents", "send", "spin", "spin forever", "--detach")
    assert started.exit_code == 0, started.output
    run = started.output.strip().splitlines()[-1]
    status = _ps()["spin"]
    assert status["state"] == "running" and status["run"] == run
    busy = invoke("agents", "rm", "spin")
    assert busy.exit_code == 2 and "in use" in busy.output
    killed = invoke("agents", "kill", "spin")
    assert killed.exit_code == 0, killed.output
    assert killed.output.strip() == f"run {run}: interrupted"
    status = _ps()["spin"]
    assert status["state"] == "interrupted" and status["run"] is None
    assert status["last_activity"]
    assert invoke("agents", "kill", "spin").exit_code == 1  # nothing runs now
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the background process lets go of the session
        removed = invoke("agents", "rm", "spin")
        if removed.exit_code == 0:
            break
        time.sleep(0.2)
    assert removed.exit_code == 0, removed.output
    assert _ps() == {}
    assert not (_watt_home / "sessions" / "spin.sqlite").exists()
    assert not AgentStore(_watt_home).exists("spin")


def test_config_round_trips() -> None:
    config = AgentConfig("x", model="m", allow_domains=("example.com",), agents=2)
    assert AgentConfig.from_dict(config.to_dict(), "x.json") == config


def test_a_new_agent_has_nothing_to_observe_yet() -> None:
    assert invoke("agents", "spawn", "quiet").exit_code == 0
    seen = invoke("agents", "observe", "quiet", "--from", "0", "--no-follow")
    assert seen.exit_code == 0 and seen.output == ""
    assert _ps()["quiet"]["state"] == "new"
    assert invoke("agents", "rm", "quiet").exit_code == 0
    assert invoke("agents", "observe", "quiet", "--no-follow").exit_code == 2
