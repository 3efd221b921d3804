"""End to end against a real model (opt-in): the tasks of bench/tasks.py through `watt ask --json`.

Skipped unless ``WATT_E2E_BASE_URL`` or ``WATT_E2E_MODEL`` is set (the lead's conftest clears
the ordinary WATT_* variables, so the endpoint is named separately). For the local model::

    python -m llama_cpp.server --model qwen2.5-coder-1.5b-instruct-q4_k_m.gguf \\
        --model_alias qwen2.5-coder-1.5b --port 8765 --n_ctx 8192 &
    WATT_E2E_BASE_URL=http://127.0.0.1:8765/v1 WATT_E2E_MODEL=qwen2.5-coder-1.5b \\
        python -m pytest -W error tests/test_e2e_real_model.py

``WATT_E2E_API_KEY`` (default "local"), ``WATT_E2E_MAX_STEPS`` (default 6) and
``WATT_E2E_MIN_SUCCESS`` (share of tasks that must succeed, default 0.4: qwen2.5-coder-1.5b
scored 0.43-0.5 with the tuned prompt) tune it. Every task runs once per session (a module
fixture); the tests then check the event stream of each run and the overall success rate. ``WATT_E2E_MODEL=script:FILE.jsonl`` works too (no endpoint).

The harness itself (fixture server, checkers, event counting) is tested offline below with
a scripted model, so it cannot rot while nobody has an endpoint at hand.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bench.eval_real_model import TaskRun, count, run_one, summarize
from bench.tasks import TASKS, Outcome, fixture_server

E2E_URL = os.environ.get("WATT_E2E_BASE_URL", "")
E2E_MODEL = os.environ.get("WATT_E2E_MODEL", "")
real_model = pytest.mark.skipif(
    not (E2E_URL or E2E_MODEL),
    reason="set WATT_E2E_BASE_URL or WATT_E2E_MODEL to run against a real model",
)
KINDS = {"thinking", "tool_start", "tool_result", "retry", "response", "error"}


def _env(home: Path, url: str, model: str, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATT_", "OPENAI_"))}
    env["WATT_HOME"] = str(home)
    if url:
        env["WATT_BASE_URL"] = url
    if model:
        env["WATT_MODEL"] = model
    env["WATT_API_KEY"] = key
    return env


# ---- against the real model ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TaskRun]:
    home = tmp_path_factory.mktemp("e2e-home")
    env = _env(home, E2E_URL, E2E_MODEL, os.environ.get("WATT_E2E_API_KEY", "local"))
    steps = int(os.environ.get("WATT_E2E_MAX_STEPS", "6"))
    with fixture_server() as base:
        return {t.name: run_one(t, base_url=base, env=env, max_steps=steps) for t in TASKS}


@real_model
@pytest.mark.parametrize("name", [t.name for t in TASKS])
def test_event_stream_is_well_formed(runs: dict[str, TaskRun], name: str) -> None:
    run = runs[name]
    assert run.exit_code in (0, 1), run.stderr
    assert run.events, run.stderr
    assert {e["kind"] for e in run.events} <= KINDS
    assert run.events[0]["kind"] == "thinking"
    assert run.events[-1]["kind"] in ("response", "error")
    if run.exit_code == 0:
        assert run.answer is not None


@real_model
def test_enough_tasks_succeed(runs: dict[str, TaskRun]) -> None:
    assert len(runs) >= 12
    categories = {r.category for r in runs.values()}
    assert {"arithmetic", "strings", "kv", "fs", "http", "catalog", "multi-step"} <= categories
    figures = summarize(list(runs.values()))
    floor = float(os.environ.get("WATT_E2E_MIN_SUCCESS", "0.4"))
    failed = [f"{r.name}: {r.answer!r}" for r in runs.values() if not r.ok]
    assert figures["succeeded"] >= floor * figures["tasks"], failed


# ---- the harness, offline -------------------------------------------------------------------------
def test_fixture_server_serves_pages() -> None:
    with fixture_server() as base:
        with urllib.request.urlopen(base + "/weather.json", timeout=10) as reply:
            assert json.loads(reply.read())["current"]["temp_c"] == -3.5
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(base + "/nope", timeout=10)


def test_every_task_has_a_distinct_name_and_a_checker_that_can_fail() -> None:
    assert len({t.name for t in TASKS}) == len(TASKS) >= 12
    for task in TASKS:
        assert not task.check(Outcome("")), task.name


def test_checkers_accept_right_answers(tmp_path: Path) -> None:
    by_name = {t.name: t for t in TASKS}
    assert by_name["arith_mul_add"].check(Outcome("The result is 144,830."))
    assert not by_name["arith_mul_add"].check(Outcome("1448301"))
    assert by_name["http_json_field"].check(Outcome("It is -3.5 degrees"))
    assert not by_name["http_json_field"].check(Outcome("It is 3.5 degrees"))
    assert by_name["catalog_contains"].check(Outcome("Yes, it does (true)."))
    assert not by_name["catalog_contains"].check(Outcome("false"))
    (tmp_path / "greeting.txt").write_text("hello from watt\n")
    assert by_name["fs_write"].check(Outcome("done", tmp_path))
    assert by_name["multi_kv_incr_twice"].check(Outcome("42", None, {"visits": "42"}))
    assert not by_name["multi_kv_incr_twice"].check(Outcome("42", None, {"visits": "41"}))


def _events(*items: dict[str, Any]) -> list[dict[str, Any]]:
    return list(items)


def test_count_separates_first_tries_repairs_and_format_misses() -> None:
    usage = {"prompt": 100, "completion": 10}
    events = _events(
        {"kind": "thinking", "step": 1, "notes": [], "usage": usage},
        {"kind": "tool_start", "step": 1, "action": "wat"},
        {"kind": "retry", "step": 1, "attempt": 1},
        {"kind": "thinking", "step": 1, "notes": ["unclosed fence"], "usage": usage},
        {"kind": "tool_start", "step": 1, "action": "wat"},
        {"kind": "tool_result", "step": 1, "ok": True, "error_type": None},
        {"kind": "thinking", "step": 2, "notes": [], "usage": usage},
        {"kind": "tool_start", "step": 2, "action": "catalog"},
        {"kind": "tool_result", "step": 2, "ok": False, "error_type": "UnknownProgram"},
        {"kind": "thinking", "step": 3, "notes": [], "usage": usage},
        {"kind": "tool_start", "step": 3, "action": "wat"},
        {"kind": "tool_result", "step": 3, "ok": False, "error_type": "Trap"},
        {
            "kind": "thinking",
            "step": 4,
            "notes": ["no ToolCall: whole text taken as the answer"],
            "usage": usage,
        },
        {"kind": "response", "step": 4, "text": "x"},
    )
    c = count(events)
    assert (c.turns, c.compliant) == (5, 3)
    assert (c.first_tries, c.first_compiled) == (2, 1)
    assert (c.repairs, c.repaired) == (1, 1)
    assert (c.steps, c.tokens, c.prompt_tokens_first) == (4, 550, 100)


def test_count_treats_an_answer_after_a_repair_request_as_a_failed_repair() -> None:
    events = _events(
        {"kind": "thinking", "step": 1, "notes": []},
        {"kind": "tool_start", "step": 1, "action": "wat"},
        {"kind": "retry", "step": 1},
        {"kind": "thinking", "step": 1, "notes": []},
        {"kind": "response", "step": 1, "text": "gave up"},
    )
    c = count(events)
    assert (c.first_tries, c.first_compiled, c.repairs, c.repaired) == (1, 0, 1, 0)


def test_run_one_with_a_scripted_model(tmp_path: Path) -> None:
    task = next(t for t in TASKS if t.name == "fs_count_lines")
    script = tmp_path / "script.jsonl"
    replies = ['ToolCall::Catalog("count_lines", "notes.txt")', 'ToolCall::Response("""3 lines""")']
    script.write_text("\n".join(json.dumps(r) for r in replies) + "\n")
    env = _env(tmp_path / "home", "", f"script:{script}", "none")
    with fixture_server() as base:
        run = run_one(task, base_url=base, env=env, max_steps=3)
    assert run.ok, (run.answer, run.stderr)
    assert run.replies == replies
    assert [e["kind"] for e in run.events] == [
        "thinking",
        "tool_start",
        "tool_result",
        "thinking",
        "response",
    ]
    figures = summarize([run])
    assert figures["succeeded"] == 1 and figures["compliant_turns"] == 2


def test_run_one_seeds_kv_and_reads_it_back(tmp_path: Path) -> None:
    task = next(t for t in TASKS if t.name == "multi_kv_incr_twice")
    script = tmp_path / "script.jsonl"
    replies = [
        'ToolCall::Catalog("kv_incr", "visits")',
        'ToolCall::Catalog("kv_incr", "visits")',
        'ToolCall::Response("""It is 42 now.""")',
    ]
    script.write_text("\n".join(json.dumps(r) for r in replies) + "\n")
    env = _env(tmp_path / "home", "", f"script:{script}", "none")
    with fixture_server() as base:
        run = run_one(task, base_url=base, env=env, max_steps=4)
    assert run.ok, (run.answer, run.stderr, run.events)
