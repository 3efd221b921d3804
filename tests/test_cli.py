from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from agent.events import (
    ErrorEvent,
    ErrorKind,
    Event,
    EventKind,
    ResponseEvent,
    Retry,
    Thinking,
    ToolResult,
    ToolStart,
)
from agent.models.messages import Usage
from agent.steps import ActionKind
from cli.main import app
from cli.render import JsonRenderer, RichRenderer
from tests.golden_util import assert_golden

runner = CliRunner()
ENV = {"COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1"}

UPPER = 'ToolCall::Wat(```wat\n(argv 0 $t)\n(local $u i32) (local $e i32)\n(call $str.upper (local.get $t)) (local.set $e) (local.set $u)\n(check $e)\n(resv $u)\n(i32.const 0)\n```, "hello")'


def invoke(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), env=ENV, input=input)


def script(tmp_path: Path, *replies: str) -> str:
    path = tmp_path / "script.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in replies), encoding="utf-8")
    return f"script:{path}"


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["ask"],
        ["chat"],
        ["run"],
        ["caps"],
        ["log"],
        ["doctor"],
        ["catalog"],
        ["catalog", "list"],
        ["catalog", "show"],
        ["catalog", "check"],
        ["catalog", "new"],
        ["catalog", "test"],
        ["sessions"],
        ["sessions", "list"],
        ["sessions", "show"],
        ["sessions", "rm"],
        ["config", "show"],
        ["model"],
        ["model", "pull"],
        ["model", "list"],
    ],
)
def test_help_golden(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    assert_golden(f"help_{'_'.join(command) or 'watt'}.txt", result.output)


def test_run_catalog_program_and_json() -> None:
    result = invoke("run", "upper", "héllo")
    assert result.exit_code == 0 and result.stdout == "HÉLLO\n"
    result = invoke("run", "word_count", "a b c", "--json")
    data = json.loads(result.stdout)
    assert data["status"] == 0 and data["results"] == ["3"] and data["status_name"] == "SUCCESS"


def test_run_file_with_status_and_errors(tmp_path: Path) -> None:
    prog = tmp_path / "p.wat"
    prog.write_text('(resv "partial")\n(i32.const 4)\n')
    result = invoke("run", str(prog))
    assert result.exit_code == 1
    assert "partial" in result.stdout and "ENOENT" in result.stderr
    bad = tmp_path / "bad.wat"
    bad.write_text(';;; name = "bad"\n;;; description = "x"\n(i32.const 0)\n(oops)\n')
    result = invoke("run", str(bad))
    assert result.exit_code == 1
    assert "bad.wat" in result.stderr and "line 4" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["run", "no_such_program"], 2, "no catalog program or file named"),
        (["run", "upper"], 2, "usage: upper(text)"),
        (["run", "upper", "x", "--fuel", "0"], 2, "--fuel must be between 1 and"),
        (["run", "upper", "x", "--fuel", "lots"], 2, ""),
        (["run", "/nonexistent/x.wat"], 2, "cannot read"),
        (["ask", "hi"], 2, "no model endpoint configured"),
        (["ask", "hi", "--model", "script:/nonexistent.jsonl"], 2, "nonexistent.jsonl"),
    ],
)
def test_usage_and_config_errors_are_one_line_exit_2(
    args: list[str], code: int, fragment: str
) -> None:
    result = invoke(*args)
    assert result.exit_code == code, result.output
    assert fragment in result.output
    assert "Traceback" not in result.output


def test_run_loop_is_stopped_by_fuel_and_timeout(tmp_path: Path) -> None:
    prog = tmp_path / "spin.wat"
    prog.write_text("(loop $l (br $l))\n(i32.const 0)\n")
    result = invoke("run", str(prog), "--fuel", "100000")
    assert result.exit_code == 1 and "fuel exhausted" in result.stderr
    result = invoke("run", str(prog), "--fuel", "100000000000000", "--timeout", "0.3")
    assert result.exit_code == 1 and "timed out" in result.stderr


def test_ask_answers_on_stdout(tmp_path: Path) -> None:
    model = script(tmp_path, UPPER, 'ToolCall::Response("""HELLO""")')
    result = invoke("ask", "upper-case hello", "--model", model)
    assert result.exit_code == 0, result.output
    assert result.stdout == "HELLO\n"
    assert "step 1" in result.stderr and "[0] HELLO" in result.stderr


def test_ask_json_lines_end_with_response(tmp_path: Path) -> None:
    model = script(tmp_path, UPPER, 'ToolCall::Response("""HELLO""")')
    result = invoke("ask", "--json", "upper-case hello", "--model", model)
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["kind"] for e in events] == [
        "thinking",
        "tool_start",
        "tool_result",
        "thinking",
        "response",
    ]
    assert events[-1]["text"] == "HELLO"
    assert events[2]["results"] == ["HELLO"] and events[2]["fuel_used"] > 0


def test_ask_task_from_stdin_quiet(tmp_path: Path) -> None:
    model = script(tmp_path, 'ToolCall::Response("42")')
    result = invoke("ask", "-", "--quiet", "--model", model, input="what is 6*7?\n")
    assert result.exit_code == 0 and result.stdout == "42\n" and result.stderr == ""


def test_ask_gives_up_with_exit_1(tmp_path: Path) -> None:
    failing = "ToolCall::Wat(```wat\n(i32.const 4)\n```)"
    model = script(tmp_path, failing, failing, failing, failing)
    result = invoke("ask", "x", "--model", model)
    assert result.exit_code == 1
    assert "repeated 3 times" in result.stderr


def test_log_sessions_and_config(tmp_path: Path, monkeypatch) -> None:
    model = script(tmp_path, UPPER, 'ToolCall::Response("""HELLO""")')
    assert invoke("ask", "x", "--model", model, "--session", "demo").exit_code == 0
    result = invoke("log", "--session", "demo", "--json")
    turns = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(t["turn"], t["state"], t["answer"]) for t in turns] == [(1, "answered", "HELLO")]
    steps = turns[0]["steps"]
    assert (
        steps[0]["action"] == "wat"
        and steps[0]["status"] == 0
        and "str.upper" in steps[0]["program"]
    )
    assert steps[-1]["action"] == "response"
    assert "demo" in invoke("sessions", "list").stdout
    assert "turn 1" in invoke("sessions", "show", "demo").stdout
    assert invoke("sessions", "rm", "demo").exit_code == 0
    assert invoke("sessions", "show", "demo").exit_code == 2  # unknown session: usage
    monkeypatch.setenv("WATT_API_KEY", "sk-secret-key-123456")
    shown = invoke("config", "show").stdout
    assert "sk-secret-key-123456" not in shown and "sk-…3456" in shown and "[WATT_API_KEY]" in shown


def test_bad_config_file_is_one_line(_watt_home: Path) -> None:
    _watt_home.mkdir(parents=True, exist_ok=True)
    (_watt_home / "config.toml").write_text("fuel = [\n")
    result = invoke("config", "show")
    assert (
        result.exit_code == 2
        and "config.toml" in result.output
        and "Traceback" not in result.output
    )


def test_catalog_new_check_and_test(_watt_home: Path) -> None:
    result = invoke("catalog", "new", "shout")
    assert result.exit_code == 0, result.output
    path = _watt_home / "catalog" / "shout.wat"
    assert path.exists()
    assert invoke("catalog", "check", str(path)).exit_code == 0
    result = invoke("catalog", "test", "shout")
    assert "1 passed, 0 failed" in result.stdout, result.stdout
    assert "shout(" in invoke("catalog", "list").stdout
    path.write_text(path.read_text().replace("(i32.const 0)", "(i32.const 0) (bogus)"))
    result = invoke("catalog", "check", str(path))
    assert result.exit_code == 1 and "shout.wat:" in result.stdout
    assert invoke("catalog", "new", "shout").exit_code == 2


EVENTS = [
    Thinking(1, "Upper-case the text with str.upper.", Usage(900, 60), 812.0),
    ToolStart(1, ActionKind.WAT, None, "(argv 0 $t)\n(resv $t)\n(i32.const 0)", ("hello",)),
    ToolResult(
        1,
        ok=True,
        status=0,
        status_name="SUCCESS",
        results=("HELLO",),
        fuel_used=31,
        timings={"compile_ms": 2.5, "run_ms": 0.4},
    ),
    Retry(2, 1, "line 2, column 1: unknown operator"),
    ToolStart(2, ActionKind.CATALOG, "word_count", "", ("a b",)),
    ToolResult(2, ok=False, status_name="Trap", error="trap: unreachable", error_type="Trap"),
    ResponseEvent(3, "HELLO", False, Usage(2000, 100, True), 2400.0),
    ErrorEvent(3, "stopped: the token budget is spent", ErrorKind.BUDGET),
]


def test_rich_rendering_golden() -> None:
    out = io.StringIO()
    render = RichRenderer(Console(file=out, width=80, color_system=None, force_terminal=False))
    for event in EVENTS:
        render(event)
    assert_golden("render_rich.txt", out.getvalue())


def test_json_rendering_golden() -> None:
    out = io.StringIO()
    render = JsonRenderer(out)
    for event in EVENTS:
        render(event)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["kind"] for e in lines] == [
        "thinking",
        "tool_start",
        "tool_result",
        "retry",
        "tool_start",
        "tool_result",
        "response",
        "error",
    ]
    assert_golden("render_json.txt", out.getvalue())


@pytest.fixture
def fake_openai():
    """A tiny OpenAI-compatible server on 127.0.0.1 that lists one model."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = json.dumps({"data": [{"id": "tiny"}]}).encode()
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_doctor_all_ok_against_a_local_endpoint(fake_openai: str, monkeypatch) -> None:
    monkeypatch.setenv("WATT_BASE_URL", fake_openai)
    monkeypatch.setenv("WATT_MODEL", "tiny")
    result = invoke("doctor")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert all(line.startswith("ok") for line in lines)
    assert any("model tiny listed" in line for line in lines)


def test_doctor_names_the_fix(monkeypatch) -> None:
    result = invoke("doctor")
    assert result.exit_code == 1
    assert any(
        line.startswith("FIX") and "WATT_BASE_URL" in line for line in result.stdout.splitlines()
    )
    monkeypatch.setenv("WATT_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("WATT_MODEL", "tiny")
    result = invoke("doctor")
    assert result.exit_code == 1 and "cannot reach" in result.stdout


def test_unreachable_endpoint_is_exit_2(monkeypatch) -> None:
    monkeypatch.setenv("WATT_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("WATT_MODEL", "tiny")
    result = invoke("ask", "hello", "--quiet")
    assert result.exit_code == 2
    assert "cannot reach" in result.stderr and "Traceback" not in result.output


def test_missing_key_for_remote_endpoint_is_exit_2(monkeypatch) -> None:
    monkeypatch.setenv("WATT_BASE_URL", "https://api.example.com/v1")
    monkeypatch.setenv("WATT_MODEL", "gpt")
    result = invoke("ask", "hello")
    assert result.exit_code == 2 and "WATT_API_KEY" in result.stderr


def test_ctrl_c_sets_the_cancel_event_even_when_native_code_drops_the_exception(
    monkeypatch,
) -> None:
    import ctypes
    import signal as sig

    from cli.common import cancel_on_sigint

    dropped: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: dropped.append(u.exc_value))
    compare = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)

    def ctrl_c_inside_a_callback(a: object, b: object) -> int:
        os.kill(os.getpid(), sig.SIGINT)  # the handler runs here, inside the ctypes callback
        return 0

    items = (ctypes.c_int * 2)(2, 1)
    cancel = threading.Event()
    before = sig.getsignal(sig.SIGINT)
    with cancel_on_sigint(cancel):
        ctypes.CDLL(None).qsort(
            items, 2, ctypes.sizeof(ctypes.c_int), compare(ctrl_c_inside_a_callback)
        )
    assert any(isinstance(e, KeyboardInterrupt) for e in dropped)  # ctypes dropped it...
    assert cancel.is_set()  # ...but the task still learns of the Ctrl-C
    assert sig.getsignal(sig.SIGINT) is before


def test_ctrl_c_still_raises_keyboard_interrupt() -> None:
    import signal as sig

    from cli.common import cancel_on_sigint

    cancel = threading.Event()
    with pytest.raises(KeyboardInterrupt), cancel_on_sigint(cancel):
        os.kill(os.getpid(), sig.SIGINT)
        time.sleep(1)
    assert cancel.is_set()


def test_doctor_knows_the_default_local_model(_watt_home: Path, monkeypatch) -> None:
    from agent.models import local, probe
    from agent.models.weights import MODELS, marker_path

    monkeypatch.setattr(local, "llama_available", lambda: True)
    # the backend's own check runs in a child process: here it passes (its failure modes are
    # tested in the probe's tests, with children that really die)
    passed = probe.CheckResult(ok=True, returncode=0, seconds=0.1, tokens=1200, version="0.3")
    monkeypatch.setattr(probe, "run_check", lambda *a, **k: passed)
    result = invoke("doctor")
    assert result.exit_code == 1 and "FIX  no model: run `watt model pull`" in result.stdout
    path = _watt_home / "models" / MODELS["1.5b"].file
    path.parent.mkdir(parents=True)
    path.write_bytes(b"GGUF")
    marker_path(path).write_text(f"{MODELS['1.5b'].sha256}  {path.name}\n")
    result = invoke("doctor")
    assert result.exit_code == 0, result.stdout
    assert f"ok   local model {path.name} (sha256 verified)" in result.stdout
    monkeypatch.setattr(local, "llama_available", lambda: False)
    result = invoke("doctor")
    assert (
        result.exit_code == 1
        and "llama-cpp-python is missing: pip install 'watt-agent[local]'" in result.stdout
    )


def test_doctor_checks_a_model_file_given_with_model(tmp_path: Path) -> None:
    result = invoke("doctor", "--model", script(tmp_path, "hi"))
    assert result.exit_code == 0 and "ok   script model file:" in result.stdout
    result = invoke("doctor", "--model", f"script:{tmp_path / 'missing.jsonl'}")
    assert result.exit_code == 1 and "(not found)" in result.stdout


# ---- output safety (SECURITY.md rule 17) ---------------------------------------------------------

NASTY = "\x1b]52;c;SGVsbG8=\x07 \x1b[2J \u202e [bold red]x[/]"  # clipboard, clear, RLO, markup
SHOWN = "\\x1b]52;c;SGVsbG8=\\x07 \\x1b[2J \\u202e [bold red]x[/]"
TOML_NASTY = "\\u001b]52;c;SGVsbG8=\\u0007 \\u001b[2J \\u202e [bold red]x[/]"  # NASTY in TOML
ECHO = "(resv (arg 0))\n(debug.log (arg 0))\n(i32.const 0)\n"


def assert_inert(text: str, times: int = 1) -> None:
    """``text`` shows NASTY escaped (at least ``times`` times) and holds none of its raw characters."""
    assert text.count(SHOWN) >= times, text
    assert not {"\x1b", "\x07", "\u202e"} & set(text), repr(text)


def test_run_results_debug_and_status_are_inert(tmp_path: Path) -> None:
    prog = tmp_path / "echo.wat"
    prog.write_text(ECHO.replace("(i32.const 0)", "(i32.const 4)"), encoding="utf-8")
    result = invoke("run", str(prog), NASTY)
    assert result.exit_code == 1
    assert result.stdout == SHOWN + "\n"
    assert_inert(result.stderr)
    assert f"debug: {SHOWN}\n" in result.stderr and "status 4 ENOENT" in result.stderr


def test_run_raw_and_json_keep_the_exact_text(tmp_path: Path) -> None:
    prog = tmp_path / "echo.wat"
    prog.write_text(ECHO, encoding="utf-8")
    result = invoke("run", str(prog), NASTY, "--raw")
    assert result.exit_code == 0
    assert result.stdout_bytes == (NASTY + "\n").encode("utf-8")  # byte-exact
    assert f"debug: {SHOWN}\n" in result.stderr  # what a person reads stays inert
    result = invoke("run", str(prog), NASTY, "--json")
    data = json.loads(result.stdout)
    assert data["results"] == [NASTY] and data["debug"] == [NASTY]
    assert not {"\x1b", "\x07", "\u202e"} & set(result.stdout)  # JSON's own escapes


def test_run_errors_and_partial_results_are_inert(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wat"
    bad.write_text(f"(i32.const 0)\n(bogus) ;; {NASTY}\n", encoding="utf-8")
    result = invoke("run", str(bad))
    assert result.exit_code == 1 and result.stderr.startswith("watt: ")
    assert_inert(result.stderr)
    trap = tmp_path / "trap.wat"
    trap.write_text("(resv (arg 0))\n(unreachable)\n", encoding="utf-8")
    result = invoke("run", str(trap), NASTY)
    assert result.exit_code == 1 and result.stdout == SHOWN + "\n" and "trap: " in result.stderr
    result = invoke("run", str(trap), NASTY, "--raw")
    assert result.stdout_bytes == (NASTY + "\n").encode("utf-8")
    result = invoke("run", str(trap), NASTY, "--json")
    assert json.loads(result.stdout)["partial"]["results"] == [NASTY]


def nasty_ask(tmp_path: Path) -> str:
    """A scripted model whose reasoning, program, argument, debug line and answer are NASTY."""
    program = (
        f'(resv (arg 0))\n(debug.log "{NASTY}")\n(i32.const 0)\n'  # wat refuses U+202E in comments
    )
    return script(
        tmp_path,
        f'<reasoning>{NASTY}</reasoning>\nToolCall::Wat(```wat\n{program}```, "{NASTY}")',
        f'ToolCall::Response("""{NASTY}""")',
    )


def test_ask_answer_and_live_view_are_inert(tmp_path: Path) -> None:
    result = invoke("ask", "echo it", "--model", nasty_ask(tmp_path))
    assert result.exit_code == 0, result.output
    assert result.stdout == SHOWN + "\n"
    # the reasoning, the program's argument and its text, the result, the debug line
    assert_inert(result.stderr, times=5)
    assert f"[0] {SHOWN}" in result.stderr and f"debug: {SHOWN}" in result.stderr


def test_ask_json_keeps_the_exact_text(tmp_path: Path) -> None:
    result = invoke("ask", "--json", "echo it", "--model", nasty_ask(tmp_path))
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["text"] == NASTY
    assert events[2]["results"] == [NASTY] and events[2]["debug"] == [NASTY]
    assert NASTY in events[0]["text"] and NASTY in events[1]["program"]
    assert not {"\x1b", "\x07", "\u202e"} & set(result.stdout)


def test_ask_model_error_lines_are_inert(tmp_path: Path) -> None:
    path = tmp_path / "script.jsonl"
    path.write_text(json.dumps({"error": f"HTTP 500: {NASTY}"}) + "\n", encoding="utf-8")
    for quiet in ([], ["--quiet"]):
        result = invoke("ask", "x", "--model", f"script:{path}", *quiet)
        assert result.exit_code != 0
        lines = [ln for ln in result.stderr.splitlines() if "HTTP 500" in ln]
        lead = "watt: " if quiet else "error: "  # said once: by the live view, or as watt:
        assert lines == [f"{lead}HTTP 500: {SHOWN}"], result.stderr
        assert_inert(result.stderr)


def test_log_and_sessions_show_are_inert_and_log_json_is_exact(tmp_path: Path) -> None:
    from agent.config import load_settings
    from agent.store.sessions import SessionStore

    model = nasty_ask(tmp_path)
    assert invoke("ask", f"task {NASTY}", "--model", model, "--session", "demo").exit_code == 0
    result = invoke("log", "--session", "demo")
    assert result.exit_code == 0
    assert_inert(result.stdout, times=2)  # the program's text, its observation
    assert f'    (debug.log "{SHOWN}")' in result.stdout
    result = invoke("log", "--session", "demo", "--json")
    steps = json.loads(result.stdout.splitlines()[-1])["steps"]
    assert NASTY in steps[0]["program"] and NASTY in steps[0]["observation"]
    assert NASTY in steps[-1]["reply"]
    assert not {"\x1b", "\x07", "\u202e"} & set(result.stdout)
    with SessionStore(load_settings().home).open("demo", create=False) as session:
        session.kv.set(NASTY, NASTY)
    result = invoke("sessions", "show", "demo")
    assert result.exit_code == 0
    assert f"task {SHOWN}" in result.stdout and f"  {SHOWN} = " in result.stdout
    assert_inert(result.stdout)


def test_catalog_list_and_show_are_inert(tmp_path: Path) -> None:
    directory = tmp_path / "cat"
    directory.mkdir()
    (directory / "echo.wat").write_text(
        f';;; name = "echo"\n;;; description = "{TOML_NASTY}"\n;;; [[args]]\n;;; name = "text"\n;;; description = "the text"\n'
        f";; {NASTY}\n" + ECHO,
        encoding="utf-8",
    )
    result = invoke("catalog", "list", "--catalog", str(directory))
    assert result.exit_code == 0, result.output
    assert f"echo(text)\n    {SHOWN}\n" in result.stdout
    assert_inert(result.stdout)
    result = invoke("catalog", "show", "echo", "--catalog", str(directory))
    assert result.exit_code == 0 and f";; {SHOWN}\n" in result.stdout
    assert_inert(result.stdout)


def _every_event_kind() -> list[Event]:
    """One event of each concrete kind the loop yields."""
    kinds = [cls for cls in Event.__subclasses__() if cls is not Event]
    events = [cls(2) for cls in kinds]
    assert {e.kind for e in events} == set(EventKind)
    return events


def test_both_renderers_render_every_event_kind() -> None:
    for event in _every_event_kind():
        out = io.StringIO()
        RichRenderer(Console(file=out, width=100, color_system=None, force_terminal=False))(event)
        assert out.getvalue().strip(), event.kind
        lines = io.StringIO()
        JsonRenderer(lines)(event)
        data = json.loads(lines.getvalue())
        assert (data["kind"], data["step"]) == (event.kind.value, 2)


def test_rich_renderer_falls_back_for_a_kind_it_does_not_know() -> None:
    @dataclass(frozen=True)
    class Novel(Event):
        detail: str = NASTY
        kind: EventKind = field(init=False, default=EventKind.RETRY)

    out = io.StringIO()
    RichRenderer(Console(file=out, width=200, color_system=None, force_terminal=False))(Novel(4))
    assert out.getvalue().startswith("  retry (step 4): ") and SHOWN in out.getvalue()
    assert_inert(out.getvalue())


def test_rich_renderer_shows_every_event_inert() -> None:
    out = io.StringIO()
    render = RichRenderer(Console(file=out, width=200, color_system=None, force_terminal=False))
    for event in [
        Thinking(1, NASTY, Usage(1, 1), 1.0),
        ToolStart(1, ActionKind.WAT, None, f";; {NASTY}\n(i32.const 0)", (NASTY,)),
        ToolStart(1, ActionKind.CATALOG, NASTY, "", (NASTY,)),
        ToolResult(1, ok=True, status=0, status_name="SUCCESS", results=(NASTY,), debug=(NASTY,)),
        ToolResult(1, ok=False, status_name="Trap", error=NASTY, error_type="Trap"),
        Retry(2, 1, NASTY),
        ErrorEvent(3, NASTY, ErrorKind.BUDGET),
    ]:
        render(event)
    text = out.getvalue()
    assert_inert(text, times=9)
    assert f"error: {SHOWN}" in text and f"[0] {SHOWN}" in text
