"""The commonest WAT mistakes name their fix, for the person and in the model's observation."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from agent.app import ask, open_parts
from agent.config import load_settings
from agent.events import Retry, ToolResult, ToolStart
from agent.hints import GENERIC_STATUS_HINT, repair_hint, status_hint, swapped_sets
from agent.models.scripted import ScriptedModel
from agent.steps import ActionKind
from capabilities.sys import SysCapability
from cli.main import app
from cli.render import RichRenderer, Running
from rt.engine import Runtime
from rt.errors import CompileError, known_fix

runner = CliRunner()
ENV = {"COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1"}

NO_STATUS_MODULE = """(module
 (import "sys" "resv" (func $sys.resv (param i32) (result i32)))
 (memory (export "mem.tape") 1)
 (func $run (export "run") (result i32)
  (call $sys.resv (i32.const 0)) (drop)))
"""
FUNC_WRAPPER = "(func $run (result i32)\n  (i32.const 0)\n)\n"
SWAPPED = """(argv 0 $t)
(local $u i32) (local $e i32)
(call $str.upper (local.get $t)) (local.set $u) (local.set $e)
(check $e)
(resv $u)
(i32.const 0)
"""
RIGHT = SWAPPED.replace("(local.set $u) (local.set $e)", "(local.set $e) (local.set $u)")


def wat(body: str, *args: str) -> str:
    tail = "".join(f', "{a}"' for a in args)
    return f"ToolCall::Wat(```wat\n{body}```{tail})"


@pytest.fixture
def runtime() -> Runtime:
    return Runtime(SysCapability().functions())


def compile_error(runtime: Runtime, source: str) -> CompileError:
    with pytest.raises(CompileError) as info:
        runtime.run(source, ["x"])
    return info.value


def test_missing_final_status_names_the_fix(runtime: Runtime) -> None:
    err = compile_error(runtime, NO_STATUS_MODULE)
    assert "nothing on stack" in err.message
    assert "(fix: end the function with its i32 status: (i32.const 0)" in str(err)
    assert repair_hint(err) == ""  # said once: the fix is in the message


def test_func_wrapper_sent_as_the_body_names_the_fix(runtime: Runtime) -> None:
    err = compile_error(runtime, FUNC_WRAPPER)
    assert err.line == 1 and "fix: send only the body" in str(err)


@pytest.mark.parametrize(
    ("message", "line", "source", "expected"),
    [
        ("type mismatch: expected i32 but nothing on stack", None, None, "i32 status"),
        ("type mismatch: expected i32 but nothing on stack", 3, "(i32.add)", ""),  # an operand
        ("unknown operator or unexpected token", 1, "(func $run (result i32)", "only the body"),
        ("unknown operator or unexpected token", 2, "(bogus)", ""),
    ],
)
def test_known_fix(message: str, line: int | None, source: str | None, expected: str) -> None:
    fix = known_fix(message, line, source)
    assert (expected in fix) if expected else fix == ""


def test_watt_run_shows_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "m.wat"
    path.write_text(NO_STATUS_MODULE)
    result = runner.invoke(app, ["run", str(path)], env=ENV)
    assert result.exit_code == 1
    assert "fix: end the function with its i32 status" in result.stderr


def test_the_model_and_the_live_view_get_the_fix(_watt_home: Path) -> None:
    replies = [wat(NO_STATUS_MODULE), 'ToolCall::Response("done")']
    with open_parts(load_settings(), model=ScriptedModel(replies), use_session=False) as parts:
        events = list(ask(parts, "t"))
        sent = parts.model.requests[-1]  # type: ignore[attr-defined]
    retry = next(e for e in events if isinstance(e, Retry))
    assert "fix: end the function with its i32 status" in retry.reason
    told = sent[-1].content  # the repair request
    assert told.count("end the function with its i32 status") == 1


# ---- swapped local.set -------------------------------------------------------------------------
def test_swapped_sets_are_found() -> None:
    assert swapped_sets(SWAPPED) == (3, "$e", "$u")
    assert swapped_sets(RIGHT) is None
    assert swapped_sets(";; " + SWAPPED.replace("\n", "\n;; ")) is None  # comments only
    flat = "(str.upper (local.get $t)) (local.set $u) (local.set $e) (check $e)"
    assert swapped_sets(flat) == (1, "$e", "$u")
    assert (
        swapped_sets("(i32.const 1) (i32.const 2) (local.set $u) (local.set $e) (check $e)") is None
    )


def test_status_hint_names_the_fix() -> None:
    hint = status_hint(SWAPPED, 20)
    assert "line 3" in hint and "write (local.set $e) (local.set $u), then (check $e)" in hint
    assert status_hint(SWAPPED, 0) == "" and status_hint(RIGHT, 20) == ""


def test_watt_run_with_swapped_sets_names_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "s.wat"
    path.write_text(SWAPPED)
    result = runner.invoke(app, ["run", str(path), "hello"], env=ENV)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("watt: status ") and "not an error code" in lines[1]
    assert "write (local.set $e) (local.set $u)" in lines[1]


def test_the_observation_for_a_status_that_is_no_error_code_has_the_hint(
    _watt_home: Path,
) -> None:
    replies = [wat(SWAPPED, "hello"), 'ToolCall::Response("done")']
    with open_parts(load_settings(), model=ScriptedModel(replies), use_session=False) as parts:
        events = list(ask(parts, "t"))
    result = next(e for e in events if isinstance(e, ToolResult))
    assert result.status not in (0, None)
    assert GENERIC_STATUS_HINT.format(status=result.status) in result.observation


def test_live_view_shows_the_status_hint() -> None:
    out = io.StringIO()
    render = RichRenderer(Console(file=out, width=300, color_system=None))
    render(ToolStart(1, action=ActionKind.WAT, program=SWAPPED, args=("hello",)))
    render(ToolResult(1, ok=False, status=20, status_name=""))
    assert "status 20 is a pointer, not an error code: on line 3" in out.getvalue()


# ---- a long run shows that it is running ---------------------------------------------------------
def test_running_shows_the_elapsed_time() -> None:
    now = [100.0]
    running = Running("program", clock=lambda: now[0])
    now[0] += 2.34
    assert running.__rich__().plain == "  program running, 2.3s"


def test_a_program_running_past_the_threshold_gets_a_live_line() -> None:
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=True, color_system=None)
    render = RichRenderer(console, show_programs=False, running_after=0.0)
    render(ToolStart(1, action=ActionKind.WAT, program="(i32.const 0)"))
    assert render.live_started.wait(5)
    render(ToolResult(1, ok=True, status=0, status_name="SUCCESS"))  # stops the line
    text = out.getvalue()
    assert "program running, " in text and "status 0 SUCCESS" in text
    assert render._live is None and threading.active_count() >= 1


def test_no_live_line_when_not_a_terminal() -> None:
    out = io.StringIO()
    render = RichRenderer(Console(file=out, width=100), running_after=0.0)
    render(ToolStart(1, action=ActionKind.WAT, program="(i32.const 0)"))
    assert not render.live_started.wait(0.2)
    render.close()
    assert "running" not in out.getvalue()


def test_the_running_line_and_another_live_display_share_the_console() -> None:
    from rich.live import Live

    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=True, color_system=None)
    render = RichRenderer(console, show_programs=False, running_after=0.0)
    with Live("model progress", console=console, transient=True):  # a model's progress line
        render(ToolStart(1, action=ActionKind.WAT, program="(i32.const 0)"))
        timer = render._timer
        assert timer is not None
        timer.join(5)  # rich nests the two, or (older rich) the running line is left out
        render.close()
    assert render._live is None and render._timer is None
