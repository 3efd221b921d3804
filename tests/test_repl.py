"""`watt chat`: Repl.handle with a scripted model, and the real REPL on a pseudo-terminal."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from agent.app import Parts, open_parts
from agent.config import load_settings
from agent.events import Event, ToolStart
from agent.models.scripted import ScriptedModel
from agent.programs.catalog import load_file
from cli.repl import Repl, stdin_reader
from cli.slash import COMMANDS
from rt.errors import CatalogError, ModelAPIError

REPO = Path(__file__).resolve().parents[1]

UPPER = """(argv 0 $s)
(local $o i32) (local $e i32)
(call $str.upper (local.get $s)) (local.set $e) (local.set $o)
(check $e)
(resv $o)
(i32.const 0)"""
KV_SET = """(argv 0 $k)
(local $e i32)
(call $kv.set (local.get $k) (local.get $k)) (local.set $e)
(check $e)
(i32.const 0)"""
FOREVER = "(loop $l (br $l))\n(i32.const 0)"


def wat(body: str, *args: str) -> str:
    quoted = "".join(f', "{a}"' for a in args)
    return f"<reasoning>run it</reasoning>\nToolCall::Wat(```wat\n{body}\n```{quoted})"


def answer(text: str) -> str:
    return f'ToolCall::Response("""{text}""")'


class Harness:
    def __init__(self, parts: Parts, out: io.StringIO) -> None:
        self.parts = parts
        self.out = out
        self.repl = Repl(
            parts, Console(file=out, width=100, highlight=False, color_system=None, soft_wrap=True)
        )

    def run(self, line: str) -> str:
        """Handle one line; return what it printed."""
        start = self.out.tell()
        assert self.repl.handle(line) is True
        self.out.seek(start)
        text = self.out.read()
        self.out.seek(0, io.SEEK_END)
        return text

    def errors(self, text: str) -> list[str]:
        return [ln for ln in text.splitlines() if ln.startswith("error:")]


@pytest.fixture
def make() -> Iterator[Any]:
    opened: list[Parts] = []

    def build(*replies: object) -> Harness:
        parts = open_parts(load_settings(), model=ScriptedModel(list(replies)))  # type: ignore[arg-type]
        opened.append(parts)
        return Harness(parts, io.StringIO())

    yield build
    for parts in opened:
        parts.close()


# ---- tasks ----------------------------------------------------------------------------------------


def test_task_is_answered_and_recorded(make: Any) -> None:
    h = make(wat(UPPER, "hello"), answer("It is HELLO."))
    out = h.run("upper-case hello")
    assert "run program args ['hello']" in out
    assert "(call $str.upper" in out  # the program is shown
    assert "[0] HELLO" in out
    assert "\nIt is HELLO.\n" in out
    assert h.errors(out) == []
    turns = h.parts.session.turns()
    assert [t.task for t in turns] == ["upper-case hello"]


def test_failing_program_shows_one_line_and_the_repl_carries_on(make: Any) -> None:
    h = make(wat("(unreachable)"), answer("it trapped"), answer("second"))
    out = h.run("trap please")
    failed = [ln for ln in out.splitlines() if "failed:" in ln]
    assert len(failed) == 1 and "failed: trap: " in failed[0]
    assert "it trapped" in out
    assert "second" in h.run("again")


def states(h: Any) -> list[str]:
    return [t.state.value for t in h.parts.session.turns()]


def test_model_error_is_one_line_and_the_turn_is_kept_as_failed(make: Any) -> None:
    h = make(ModelAPIError("HTTP 503 from the scripted endpoint"), answer("fine now"))
    out = h.run("first")
    assert h.errors(out) == ["error: HTTP 503 from the scripted endpoint"]
    assert states(h) == ["failed"]
    assert "fine now" in h.run("second")
    assert states(h) == ["failed", "answered"]


def test_unexpected_exception_is_one_line(make: Any) -> None:
    h = make(RuntimeError("boom\nsecond line"), answer("ok"))
    out = h.run("first")
    assert h.errors(out) == ["error: RuntimeError: boom second line"]
    assert "Traceback" not in out
    assert "ok" in h.run("second")


def test_ctrl_c_during_the_model_request_marks_the_turn_interrupted(make: Any) -> None:
    h = make(KeyboardInterrupt(), answer("after"))
    out = h.run("first")
    assert out.strip() == "interrupted"
    assert states(h) == ["interrupted"]
    assert "after" in h.run("second")


def test_ctrl_c_while_rendering_closes_the_turn(make: Any) -> None:
    h = make(wat(UPPER, "x"), answer("after"))
    original = h.repl.render

    def render(event: Event) -> None:
        if isinstance(event, ToolStart):
            raise KeyboardInterrupt
        original(event)

    h.repl.render = render  # type: ignore[assignment]
    assert "interrupted" in h.run("first")
    assert states(h) == ["interrupted"]  # recorded, and no turn left open:
    h.repl.render = original
    assert "after" in h.run("second")


def test_loop_guard_error_event_is_shown_once(make: Any) -> None:
    h = make(*[wat("(unreachable)")] * 3)
    out = h.run("keep failing")
    errors = h.errors(out)
    assert len(errors) == 1 and "repeated" in errors[0]


# ---- slash commands ---------------------------------------------------------------------------------


def test_help_lists_every_command_and_multiline_input(make: Any) -> None:
    out = make().run("/help")
    for c in COMMANDS:
        assert c.usage in out
    assert "end a line with \\" in out and "Esc+Enter" in out


def test_unknown_command_is_one_line(make: Any) -> None:
    h = make()
    out = h.run("/frobnicate now")
    assert out.splitlines() == [
        "error: unknown command /frobnicate; commands: /help, /catalog, /run, /kv, /session, "
        "/reset, /steps, /save, /resume, /exit"
    ]


def test_exit(make: Any) -> None:
    h = make()
    assert h.repl.handle("/exit") is False
    assert h.repl.handle("   ") is True


def test_catalog_lists_programs_with_usage(make: Any) -> None:
    out = make().run("/catalog")
    assert "upper(text)" in out and 'kv_incr(key, by="1")' in out


def test_run_catalog_program(make: Any) -> None:
    h = make()
    out = h.run("/run upper 'hi there'")
    assert "HI THERE" in out and "status 0 SUCCESS" in out
    out = h.run("/run kv_get missing")
    assert "status 4 ENOENT" in out


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/run", "usage: /run NAME"),
        ("/run nope", "no catalog program named 'nope'"),
        ("/run upper", "upper takes 1 argument(s), got 0"),
        ("/run upper 'unclosed", "/run: No closing quotation"),
    ],
)
def test_run_errors_are_one_line(make: Any, line: str, message: str) -> None:
    h = make()
    out = h.run(line)
    errors = h.errors(out)
    assert len(errors) == 1 and message in errors[0], out


def test_kv_lists_truncated_values(make: Any) -> None:
    h = make()
    assert "(kv is empty)" in h.run("/kv")
    h.parts.session.kv.set("name", "x" * 200)
    h.parts.session.kv.set("city", "Paris\nFrance")
    out = h.run("/kv")
    lines = out.splitlines()
    assert lines[0].strip() == "city = Paris⏎ France"
    assert lines[1].startswith("  name = xxx") and lines[1].endswith("…") and len(lines[1]) < 80


def test_session_reset_and_steps(make: Any) -> None:
    h = make(wat(UPPER, "hello"), answer("HELLO"))
    assert "(no turns yet)" in h.run("/steps")
    h.run("upper hello")
    h.parts.session.kv.set("kept", "1")
    assert "session default: 1 turn(s), 2 step(s), 1 kv key(s)" in h.run("/session")
    out = h.run("/steps")
    assert "turn 1: upper hello" in out
    assert "step 1 wat: status 0 SUCCESS, fuel " in out and "tokens " in out
    assert "(argv 0 $s) (local $o i32)" in out
    assert "step 2 response" in out
    assert "cleared" in h.run("/reset")
    assert "0 turn(s), 0 step(s), 1 kv key(s)" in h.run("/session")


def test_save_writes_a_valid_program_that_runs(make: Any) -> None:
    h = make(wat(UPPER, "hello"), answer("HELLO"))
    assert "nothing to save" in h.run("/save shout")
    h.run("upper-case the word hello")
    out = h.run("/save shout")
    assert h.errors(out) == []
    path = h.parts.settings.user_catalog / "shout.wat"
    assert f"saved shout(arg0) to {path}" in out.replace("\n", "")
    program = load_file(path)
    assert program.description == "upper-case the word hello"
    assert [(a.name, a.description) for a in program.args] == [("arg0", "argument 0")]
    assert [(e.args, e.results) for e in program.examples] == [(("hello",), ("HELLO",))]
    result = h.parts.runtime.run(program.body, ["abc"], line_offset=program.body_line - 1)
    assert result.results == ["ABC"]
    assert "shout(arg0)  upper-case the word hello  (user)" in h.run("/catalog")
    assert "ABC" in h.run("/run shout abc")
    # never overwrite, validate the name
    before = path.read_text()
    assert "already exists" in h.errors(h.run("/save shout"))[0]
    assert path.read_text() == before
    assert "must match" in h.errors(h.run("/save Bad-Name"))[0]
    assert "usage: /save NAME" in h.errors(h.run("/save"))[0]


def test_save_does_not_rerun_a_program_with_side_effects(make: Any) -> None:
    h = make(wat(KV_SET, "k1"), answer("stored"))
    h.run("store k1")
    h.parts.session.kv.delete("k1")
    out = h.run("/save store_key")
    assert "example results not recorded: the program uses kv" in out
    assert h.parts.session.kv.get("k1") is None  # not run again
    program = load_file(h.parts.settings.user_catalog / "store_key.wat")
    assert [(e.args, e.results) for e in program.examples] == [(("k1",), None)]


def test_save_keeps_a_body_starting_with_triple_semicolons_out_of_front_matter(make: Any) -> None:
    body = ";;; not front matter\n" + UPPER
    h = make(wat(body, "a"), answer("A"))
    h.run("upper a")
    saved = h.parts.save_last_program("commented")
    assert saved.program.body.startswith(";;; not front matter")
    assert load_file(saved.path).examples[0].results == ("A",)
    with pytest.raises(CatalogError, match="already exists"):
        h.parts.save_last_program("commented")


# ---- the input side ---------------------------------------------------------------------------------


def test_stdin_reader_joins_backslash_lines() -> None:
    read = stdin_reader(io.StringIO("one\ntwo \\\nthree\\\r\nfour\nlast \\\n"))
    assert [read(), read(), read()] == ["one", "two \nthree\nfour", "last "]
    with pytest.raises(EOFError):
        read()


def test_loop_carries_on_after_ctrl_c_and_ends_at_eof(make: Any) -> None:
    h = make(answer("one"))
    entries: list[object] = [KeyboardInterrupt(), "/nope", "a task", EOFError()]

    def read() -> str:
        item = entries.pop(0)
        if isinstance(item, BaseException):
            raise item
        return str(item)

    assert h.repl.loop(read) == 0
    text = h.out.getvalue()
    assert "unknown command /nope" in text and "one" in text
    assert h.repl.loop(stdin_reader(io.StringIO("/exit\nnever\n"))) == 0


# ---- a real pseudo-terminal ---------------------------------------------------------------------------

pexpect = pytest.importorskip("pexpect")
PROMPT = "watt>"  # prompt-toolkit draws the space as a cursor move


def spawn(home: Path, *replies: str) -> Any:
    script = home / "script.jsonl"
    home.mkdir(parents=True, exist_ok=True)
    script.write_text("".join(json.dumps(r) + "\n" for r in replies), encoding="utf-8")
    (home / "config.toml").write_text("fuel = 100000000000\ntimeout = 60\n", encoding="utf-8")
    env = {
        **os.environ,
        "WATT_HOME": str(home),
        "TERM": "xterm",
        "PYTHONPATH": str(REPO),
        "PROMPT_TOOLKIT_NO_CPR": "1",
    }  # pexpect does not answer cursor-position requests
    child = pexpect.spawn(
        sys.executable,
        ["-m", "cli.main", "chat", "--model", f"script:{script}"],
        cwd=str(REPO), env=env, encoding="utf-8", timeout=20, dimensions=(50, 200),
    )  # fmt: skip
    child.expect_exact(PROMPT)
    return child


def finish(child: Any) -> int:
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    return int(child.exitstatus)


def test_pty_task_multiline_history_and_ctrl_d(_watt_home: Path) -> None:
    child = spawn(_watt_home, wat(UPPER, "hello"), answer("It is HELLO."))
    try:
        child.send("upper-case \\\r")  # a trailing backslash continues the entry
        child.send("hello\r")
        child.expect_exact("It is HELLO.")
        child.expect_exact(PROMPT)
        child.send("some half-typed line")
        child.sendintr()  # Ctrl-C at the prompt clears the line
        child.send("/steps\r")
        child.expect_exact("turn 1: upper-case ")
        child.expect_exact(PROMPT)
        assert finish(child) == 0
    finally:
        child.close(force=True)
    assert "upper-case" in (_watt_home / "chat_history").read_text(encoding="utf-8")


def test_pty_ctrl_c_stops_a_running_program(_watt_home: Path) -> None:
    child = spawn(_watt_home, wat(FOREVER), wat(UPPER, "x"), answer("still here"))
    try:
        child.send("loop forever\r")
        child.expect(r"br\S*\s+\S*\$l")  # the program is shown: it is about to run
        child.sendintr()
        child.expect_exact("interrupted")
        child.expect_exact(PROMPT)
        child.send("/session\r")
        child.expect_exact("1 turn(s)")  # the interrupted turn is recorded as such
        child.expect_exact(PROMPT)
        child.send("are you there\r")
        child.expect_exact("[0] X")  # the sandbox runs programs again
        child.expect_exact("still here")
        child.expect_exact(PROMPT)
        assert finish(child) == 0
    finally:
        child.close(force=True)


def test_pty_failing_program_then_save_and_catalog(_watt_home: Path) -> None:
    child = spawn(
        _watt_home,
        wat("(unreachable)"), answer("that trapped"),
        wat(UPPER, "hello"), answer("HELLO"),
    )  # fmt: skip
    try:
        child.send("trap\r")
        child.expect_exact("failed: trap: ")
        child.expect_exact("that trapped")
        child.expect_exact(PROMPT)
        child.send("upper\x1b\r")  # Esc+Enter (Alt+Enter) adds a line
        child.send("hello\r")
        child.expect_exact("[0] HELLO")
        child.expect_exact(PROMPT)
        child.send("/save shout\r")
        child.expect_exact("saved shout(arg0)")
        child.expect_exact(PROMPT)
        child.send("/catalog\r")
        child.expect_exact("shout(arg0)")
        child.expect_exact(PROMPT)
        child.send("/exit\r")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
    finally:
        child.close(force=True)
    saved = load_file(_watt_home / "catalog" / "shout.wat")
    assert saved.description == "upper hello"  # the two-line task, on one line
    assert saved.examples[0].results == ("HELLO",)


# ---- output safety (SECURITY.md rule 17) -----------------------------------------------------------

NASTY = "\x1b]52;c;SGVsbG8=\x07 \x1b[2J \u202e [bold red]x[/]"  # clipboard, clear, RLO, markup
SHOWN = "\\x1b]52;c;SGVsbG8=\\x07 \\x1b[2J \\u202e [bold red]x[/]"
TOML_NASTY = "\\u001b]52;c;SGVsbG8=\\u0007 \\u001b[2J \\u202e [bold red]x[/]"
ECHO = f'(resv (arg 0))\n(debug.log "{NASTY}")\n(i32.const 0)'  # wat refuses U+202E in comments


def assert_inert(text: str, times: int = 1) -> None:
    assert text.count(SHOWN) >= times, text
    assert not {"\x1b", "\x07", "\u202e"} & set(text), repr(text)


def test_task_events_and_answer_are_inert(make: Any) -> None:
    h = make(wat(ECHO, NASTY).replace("run it", NASTY), answer(NASTY))
    out = h.run("echo it")
    # reasoning, argument, program text, result, debug line, answer
    assert_inert(out, times=6)
    assert f"[0] {SHOWN}" in out and f"\n{SHOWN}\n" in out


def test_error_lines_are_inert(make: Any) -> None:
    h = make(ModelAPIError(f"HTTP 500: {NASTY}"))
    out = h.run("first")
    assert h.errors(out) == [f"error: HTTP 500: {SHOWN}"]
    assert_inert(out)
    out = h.run(f"/nope{NASTY}")
    assert len(h.errors(out)) == 1
    assert not {"\x1b", "\x07", "\u202e"} & set(out)


def test_slash_command_output_is_inert(make: Any) -> None:
    h = make(wat(ECHO, NASTY), answer("done"))
    catalog = h.parts.settings.user_catalog
    catalog.mkdir(parents=True, exist_ok=True)
    (catalog / "echo.wat").write_text(
        f';;; name = "echo"\n;;; description = "{TOML_NASTY}"\n'
        ';;; [[args]]\n;;; name = "text"\n;;; description = "the text"\n' + ECHO + "\n",
        encoding="utf-8",
    )
    h.parts.reload_catalog()
    out = h.run("/catalog")
    assert f"echo(text)  {SHOWN}  (user)" in out
    assert_inert(out)
    out = h.run(f"/run echo '{NASTY}'")
    assert_inert(out, times=3)  # the argument, the result, the debug line
    assert f"\n{SHOWN}\n" in out and f"debug: {SHOWN}" in out and "status 0 SUCCESS" in out
    h.parts.session.kv.set(NASTY, NASTY)
    out = h.run("/kv")
    assert_inert(out, times=2)
    h.run(f"task {NASTY}")
    out = h.run("/steps")
    assert f"turn 1: task {SHOWN}" in out
    assert_inert(out, times=2)  # the task, the program
    out = h.run("/save echoed")
    assert f'(debug.log "{SHOWN}")' in out
    assert not {"\x1b", "\x07", "\u202e"} & set(out)


def test_resume_continues_the_interrupted_turn(make: Any) -> None:
    h = make(wat(UPPER, "x"), KeyboardInterrupt(), answer("X at last"))
    assert "interrupted" in h.run("shout x")
    assert states(h) == ["interrupted"]
    out = h.run("/resume")
    assert "X at last" in out
    assert states(h) == ["answered"]  # the same turn, now answered
    assert "nothing to resume" in h.run("/resume")


class ProgressModel(ScriptedModel):
    """A scripted model with the local model's ``progress`` hook: it reports a prompt
    evaluation, as LocalModel does before its first reply."""

    progress: Any = None
    seen: list[Any] = []

    def complete(self, messages: Any, **kwargs: Any) -> Any:
        ProgressModel.seen.append(self.progress)
        if self.progress is not None:
            self.progress("prompt", 3000, 3000)
        return super().complete(messages, **kwargs)


def test_on_a_terminal_the_first_task_shows_the_local_models_progress() -> None:
    from cli.model_cmd import LiveProgress

    parts = open_parts(load_settings(), model=ProgressModel([answer("done")]))
    out = io.StringIO()
    repl = Repl(parts, Console(file=out, width=100, force_terminal=True, color_system=None))
    try:
        assert repl.handle("anything") is True
    finally:
        parts.close()
    assert isinstance(ProgressModel.seen[-1], LiveProgress)  # drawn while the task ran
    assert parts.model.progress is None  # type: ignore[attr-defined]  # and removed after it
    assert "done" in out.getvalue()
