"""What a person reads says each thing once: statuses, failures, errors raised in the loop."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from agent.events import ToolResult
from cli.main import app
from cli.render import RichRenderer, failure_text
from rt.codes import status_name, status_text

runner = CliRunner()
ENV = {"COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1"}


def invoke(*args: str):
    return runner.invoke(app, list(args), env=ENV)


def program(tmp_path: Path, body: str) -> str:
    path = tmp_path / "p.wat"
    path.write_text(body)
    return str(path)


def script(tmp_path: Path, *replies: object) -> str:
    path = tmp_path / "script.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in replies), encoding="utf-8")
    return f"script:{path}"


@pytest.mark.parametrize(
    ("status", "name", "text"),
    [(0, "SUCCESS", "status 0 SUCCESS"), (4, "ENOENT", "status 4 ENOENT"), (42, "", "status 42"),
     (-1, "", "status -1")],
)  # fmt: skip
def test_status_names_never_repeat_the_number(status: int, name: str, text: str) -> None:
    assert (status_name(status), status_text(status)) == (name, text)


def test_run_status_outside_the_table_is_said_once(tmp_path: Path) -> None:
    result = invoke("run", program(tmp_path, "(i32.const 42)\n"))
    assert result.exit_code == 1
    assert result.stderr == "watt: status 42\n"
    data = json.loads(invoke("run", program(tmp_path, "(i32.const -1)\n"), "--json").stdout)
    assert data["status"] == -1 and data["status_name"] == ""


def test_trap_is_said_once(tmp_path: Path) -> None:
    result = invoke("run", program(tmp_path, "(unreachable)\n"))
    assert result.exit_code == 1
    assert result.stderr.startswith("watt: trap: ") and "Trap" not in result.stderr


def test_fuel_and_timeout_failures_name_the_setting(tmp_path: Path) -> None:
    spin = program(tmp_path, "(loop $l (br $l))\n(i32.const 0)\n")
    result = invoke("run", spin, "--fuel", "1000")
    assert result.exit_code == 1
    assert "fuel exhausted" in result.stderr and "--fuel N" in result.stderr
    assert "fuel = N in config.toml" in result.stderr and "FuelExhausted" not in result.stderr
    result = invoke("run", spin, "--fuel", "100000000000000", "--timeout", "0.2")
    assert result.exit_code == 1
    assert "timed out" in result.stderr and "--timeout SECONDS" in result.stderr


def test_live_view_says_status_and_failure_once() -> None:
    out = io.StringIO()
    render = RichRenderer(Console(file=out, width=100, color_system=None))
    render(ToolResult(1, ok=False, status=42, status_name=""))
    render(
        ToolResult(2, ok=False, status_name="Trap", error="trap: unreachable", error_type="Trap")
    )
    render(ToolResult(3, ok=False, error="fuel exhausted: all 5 units", error_type="FuelExhausted"))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("  status 42, fuel")
    assert lines[1] == "  failed: trap: unreachable"
    assert lines[2].startswith("  failed: fuel exhausted: all 5 units; to allow more, pass --fuel")


def test_compile_and_link_errors_say_what_they_are() -> None:
    assert failure_text("CompileError", "line 2: x") == "compile error: line 2: x"
    assert failure_text("LinkError", "unknown import") == "link error: unknown import"
    assert failure_text("Trap", "trap: unreachable") == "trap: unreachable"


@pytest.mark.parametrize("quiet", [False, True])
def test_an_error_raised_in_the_loop_is_printed_once(tmp_path: Path, quiet: bool) -> None:
    model = script(tmp_path, {"error": "the provider said no"})
    result = invoke("ask", "hi", "--model", model, *(["-q"] if quiet else []))
    assert result.exit_code != 0
    assert result.stderr.count("the provider said no") == 1, result.stderr


def test_json_keeps_the_event_and_one_stderr_line(tmp_path: Path) -> None:
    model = script(tmp_path, {"error": "the provider said no"})
    result = invoke("ask", "hi", "--model", model, "--json")
    assert '"kind": "error"' in result.stdout
    assert result.stderr.count("the provider said no") == 1


# ---- --version and -h ------------------------------------------------------------------------
@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag: str) -> None:
    result = invoke(flag)
    assert result.exit_code == 0
    assert result.stdout.startswith("watt ") and len(result.stdout.splitlines()) == 1


@pytest.mark.parametrize("command", [[], ["ask"], ["catalog"], ["catalog", "new"], ["sessions"]])
def test_dash_h_is_help(command: list[str]) -> None:
    result = invoke(*command, "-h")
    assert result.exit_code == 0, result.output
    assert result.stdout == invoke(*command, "--help").stdout


@pytest.mark.parametrize("command", [[], ["catalog"], ["sessions"], ["config"]])
def test_command_summaries_are_not_cut(command: list[str]) -> None:
    text = runner.invoke(app, [*command, "--help"], env={**ENV, "COLUMNS": "60"}).stdout
    commands = text.split("Commands:", 1)[1]
    assert "..." not in commands and "…" not in commands
