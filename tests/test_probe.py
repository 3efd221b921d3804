"""agent.models.probe: the backend check in a child process (a death by signal is one line with
the reinstall command), and running it once per backend for ``watt ask``. The children here are
small Python programs standing in for llama.cpp; one kills itself with SIGILL."""

from __future__ import annotations

import functools
import json
import signal
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agent.models import probe
from agent.models.probe import CheckResult, ensure_checked, run_check
from rt.errors import ConfigError, Interrupted

SIGILL_CHILD = "import os, signal\nos.kill(os.getpid(), signal.SIGILL)\n"
PASSING_CHILD = (
    "import json, sys\n"
    "print('noise')\n"
    "print(json.dumps({'tokens': int(sys.argv[2]), 'load_s': 0.5, 'eval_s': 2.0}))\n"
)
FAILING_CHILD = (
    "import sys\nsys.stderr.write('Traceback...\\nValueError: bad model file\\n')\nsys.exit(1)\n"
)
SLOW_CHILD = "import time\ntime.sleep(30)\n"


def test_a_child_killed_by_sigill_is_reported_in_one_line(tmp_path: Path) -> None:
    result = run_check(tmp_path / "m.gguf", code=SIGILL_CHILD)
    assert not result.ok and result.returncode == -signal.SIGILL
    assert result.signal_name is not None and "SIGILL" in result.signal_name
    line = result.line()
    assert "\n" not in line and "killed by signal 4 (SIGILL" in line
    assert "GGML_NATIVE=OFF" in line and "--no-cache-dir" in line and "--force-reinstall" in line


def test_a_passing_child_reports_its_speed(tmp_path: Path) -> None:
    result = run_check(tmp_path / "m.gguf", tokens=1200, code=PASSING_CHILD)
    assert result.ok and result.returncode == 0
    assert (result.tokens, result.eval_s) == (1200, 2.0)
    assert "evaluated a 1200-token prompt" in result.line() and "600 tokens/s" in result.line()


def test_a_failing_child_reports_its_last_error_line(tmp_path: Path) -> None:
    result = run_check(tmp_path / "m.gguf", code=FAILING_CHILD)
    assert not result.ok and result.returncode == 1 and result.signal_name is None
    assert result.line().endswith("failed in a child process: ValueError: bad model file")


def test_a_child_that_does_not_finish_is_a_timeout(tmp_path: Path) -> None:
    start = time.monotonic()
    result = run_check(tmp_path / "m.gguf", code=SLOW_CHILD, timeout=0.5)
    assert time.monotonic() - start < 10
    assert not result.ok and result.returncode is None
    assert "did not finish the check" in result.line()


def test_cancel_stops_the_child_at_once(tmp_path: Path) -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    start = time.monotonic()
    with pytest.raises(Interrupted):
        run_check(tmp_path / "m.gguf", code=SLOW_CHILD, cancel=cancel)
    assert time.monotonic() - start < 10


def test_a_child_that_got_sigint_is_an_interruption(tmp_path: Path) -> None:
    code = "import os, signal\nsignal.signal(signal.SIGINT, signal.SIG_DFL)\nos.kill(os.getpid(), signal.SIGINT)\n"
    with pytest.raises(Interrupted):
        run_check(tmp_path / "m.gguf", code=code)


def test_the_child_gets_the_model_and_the_token_count(tmp_path: Path) -> None:
    code = "import json, sys\nprint(json.dumps({'tokens': len(sys.argv[1]) + int(sys.argv[2])}))\n"
    result = run_check(Path("abc"), tokens=7, code=code)
    assert result.tokens == 10


def test_the_reinstall_command_pins_the_version_and_skips_the_wheel_cache() -> None:
    cmd = probe.reinstall_command("0.3.36")
    assert cmd.startswith('CMAKE_ARGS="-DGGML_NATIVE=OFF ')
    assert cmd.endswith("--no-cache-dir 'llama-cpp-python==0.3.36'")
    assert "llama-cpp-python'" in probe.reinstall_command(None)


def test_the_fingerprint_names_the_native_libraries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "llama_cpp"
    (package / "lib").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    lib = package / "lib" / "libggml-cpu.so"
    lib.write_bytes(b"x" * 10)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "llama_cpp", raising=False)
    before = probe.backend_fingerprint()
    assert before is not None and "libggml-cpu.so:10:" in before
    lib.write_bytes(b"y" * 11)  # rebuilt
    assert probe.backend_fingerprint() != before


# ---- once per backend ---------------------------------------------------------------------------


class Runner:
    def __init__(self, result: CheckResult) -> None:
        self.result = result
        self.calls: list[Path] = []

    def __call__(self, model: Path, **kwargs: Any) -> CheckResult:
        self.calls.append(model)
        return self.result


PASS = CheckResult(True, 0, 3.0, tokens=1200, eval_s=2.0, version="0.3.36")


@pytest.fixture
def fingerprint(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    value = ["llama-cpp-python 0.3.36 [libllama.so:1:2]"]
    monkeypatch.setattr(probe, "backend_fingerprint", lambda: value[0])
    return value


def test_a_pass_is_recorded_and_not_run_again(tmp_path: Path, fingerprint: list[str]) -> None:
    runner = Runner(PASS)
    started: list[bool] = []
    assert (
        ensure_checked(
            tmp_path, Path("m.gguf"), runner=runner, on_start=lambda: started.append(True)
        )
        == PASS
    )
    assert ensure_checked(tmp_path, Path("m.gguf"), runner=runner) is None
    assert runner.calls == [Path("m.gguf")] and started == [True]
    record = json.loads(probe.record_path(tmp_path).read_text())
    assert record["ok"] is True and record["fingerprint"] == fingerprint[0]
    fingerprint[0] = "llama-cpp-python 0.3.36 [libllama.so:1:3]"  # reinstalled
    ensure_checked(tmp_path, Path("m.gguf"), runner=runner)
    assert len(runner.calls) == 2


def test_a_crash_is_a_one_line_config_error_and_not_recorded(
    tmp_path: Path, fingerprint: list[str]
) -> None:
    runner = functools.partial(run_check, code=SIGILL_CHILD)
    with pytest.raises(ConfigError, match=r"killed by signal 4 \(SIGILL.*GGML_NATIVE=OFF") as info:
        ensure_checked(tmp_path, Path("m.gguf"), runner=runner)
    assert "\n" not in str(info.value)
    assert not probe.record_path(tmp_path).exists()


def test_a_timeout_neither_fails_nor_is_recorded(tmp_path: Path, fingerprint: list[str]) -> None:
    runner = Runner(CheckResult(False, None, 900.0))
    assert ensure_checked(tmp_path, Path("m.gguf"), runner=runner) is not None
    assert not probe.record_path(tmp_path).exists()


@pytest.mark.parametrize(
    "text", ["", "{not json", '["ok"]', '{"fingerprint": "other", "ok": true}']
)
def test_a_bad_or_foreign_record_means_checking_again(
    tmp_path: Path, fingerprint: list[str], text: str
) -> None:
    probe.record_path(tmp_path).parent.mkdir(parents=True)
    probe.record_path(tmp_path).write_text(text)
    runner = Runner(PASS)
    ensure_checked(tmp_path, Path("m.gguf"), runner=runner)
    assert runner.calls and probe.passed_before(tmp_path, fingerprint[0])


def test_no_backend_installed_means_nothing_to_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(probe, "backend_fingerprint", lambda: None)
    runner = Runner(PASS)
    assert ensure_checked(tmp_path, Path("m.gguf"), runner=runner) is None and not runner.calls


def test_forget_removes_the_record(tmp_path: Path, fingerprint: list[str]) -> None:
    assert not probe.forget(tmp_path)
    ensure_checked(tmp_path, Path("m.gguf"), runner=Runner(PASS))
    assert probe.forget(tmp_path) and not probe.record_path(tmp_path).exists()


def test_doctor_checks_the_chosen_local_backend_in_a_child(
    monkeypatch: pytest.MonkeyPatch, _watt_home: Path, fingerprint: list[str]
) -> None:
    from agent.config import load_settings
    from agent.models import local
    from cli.model_cmd import backend_checks

    model = _watt_home / "m.gguf"
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_bytes(b"GGUF")
    monkeypatch.setattr(local, "llama_available", lambda: True)
    crash = functools.partial(run_check, code=SIGILL_CHILD)
    monkeypatch.setattr(probe, "run_check", crash)
    settings = load_settings({"model": f"local:{model}"})
    [(ok, line)] = backend_checks(settings)
    assert not ok and "killed by signal 4 (SIGILL" in line and "GGML_NATIVE=OFF" in line
    monkeypatch.setattr(probe, "run_check", Runner(PASS))
    assert backend_checks(settings) == [(True, PASS.line())]
    assert probe.passed_before(_watt_home, fingerprint[0])  # doctor's pass counts for ask
    assert backend_checks(load_settings({"model": "script:x.jsonl"})) == []


# A child standing in for PROMPT_CHILD_CODE: it reports what it was given.
PROMPT_ECHO_CHILD = (
    "import json, sys\nfrom pathlib import Path\n"
    "home, n_ctx, name = sys.argv[3:6]\n"
    "text = Path(name).read_text(encoding='utf-8')\n"
    "for done in (512, 1024, 1100):\n"
    "    print(json.dumps({'progress': [done, 1100]}), flush=True)\n"
    "print(json.dumps({'tokens': len(text), 'eval_s': 1.0}))\n"
    "sys.stderr.write(json.dumps([home, n_ctx, name, text]))\n"
    "sys.exit(0 if text.startswith('You are') else 3)\n"
)


def test_a_check_with_the_system_prompt_gives_the_child_the_prompt_and_removes_its_file(
    tmp_path: Path,
) -> None:
    prompt = probe.SystemPrompt("You are Watt. ü\n" * 50, 8192, tmp_path / "home")
    seen: list[tuple[int, int]] = []
    result = run_check(
        tmp_path / "m.gguf", code=PROMPT_ECHO_CHILD, prompt=prompt,
        on_progress=lambda done, total: seen.append((done, total)),
    )  # fmt: skip
    assert result.ok and result.tokens == len(prompt.text)
    assert seen == [(512, 1100), (1024, 1100), (1100, 1100)]  # as the child printed them
    assert list((tmp_path / "home").rglob("*.txt")) == []  # the prompt's file is gone again


def test_the_first_ask_passes_its_system_prompt_to_the_check(
    tmp_path: Path, fingerprint: list[str]
) -> None:
    seen: list[Any] = []

    def runner(model: Path, **kwargs: Any) -> CheckResult:
        seen.append(kwargs.get("prompt"))
        return PASS

    prompt = probe.SystemPrompt("You are Watt.", 8192, tmp_path)
    ensure_checked(tmp_path, Path("m.gguf"), runner=runner, prompt=prompt)
    assert seen == [prompt]


class FakePrefillModel:
    """Stands for LocalModel in ``prompt_check``: ``evaluated`` tokens evaluated, or 0 when a
    state was restored."""

    made: list[FakePrefillModel] = []

    def __init__(self, path: Path, *, home: Path, n_ctx: int, grammar: bool, progress: Any) -> None:
        self.args = (path, home, n_ctx, grammar)
        self.progress = progress
        self.messages: list[Any] = []
        self.closed = False
        FakePrefillModel.made.append(self)

    def prefill(self, messages: list[Any]) -> None:
        self.messages = messages
        evaluated = 0 if "restored" in messages[0].content else 3166
        self.progress("prompt", evaluated, 3166)
        self.last_prefill = SimpleNamespace(evaluated=evaluated, seconds=55.0, saved=True)

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    ("system", "expected"),
    [
        ("You are Watt.", {"tokens": 3166, "eval_s": 55.0, "saved": 1.0}),
        ("You are Watt; restored", {"tokens": 1200, "eval_s": 9.0}),  # nothing evaluated: fixed
    ],
)
def test_the_prompt_child_evaluates_the_system_prompt_else_the_fixed_text(
    tmp_path: Path, system: str, expected: dict[str, float], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "system.txt").write_text(system, encoding="utf-8")
    fixed: list[tuple[str, int]] = []

    def fixed_check(path: str, n: int) -> dict[str, float]:
        fixed.append((path, n))
        return {"tokens": n, "eval_s": 9.0}

    args = ("m.gguf", "1200", str(tmp_path), "8192", str(tmp_path / "system.txt"))
    got = probe.prompt_check(*args, model_class=FakePrefillModel, fixed=fixed_check)
    assert capsys.readouterr().out.startswith('{"progress": [')  # read by the parent
    assert got == expected and (fixed == [("m.gguf", 1200)]) == ("restored" in system)
    model = FakePrefillModel.made[-1]
    assert model.args == (Path("m.gguf"), tmp_path, 8192, False) and model.closed
    assert [m.role for m in model.messages] == ["system", "user"]
    assert model.messages[0].content == system


def test_a_child_never_imports_from_the_directory_watt_was_started_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shadow.py").write_text("import sys\nsys.exit(7)\n")
    monkeypatch.chdir(tmp_path)
    child = "import json, sys\ntry:\n    import shadow\nexcept ImportError:\n    pass\n" + (
        "print(json.dumps({'tokens': 1, 'eval_s': 1.0}))\n"
    )
    assert run_check(tmp_path / "m.gguf", code=child).ok


@pytest.mark.parametrize(
    ("flags", "avx512", "tip"),
    [
        ("fpu sse2 avx2 avx512f avx512bw", False, True),  # the CPU has it, the build does not
        ("fpu sse2 avx2 avx512f avx512bw", True, False),  # built with it already
        ("fpu sse2 avx2", False, False),  # the CPU lacks it: the portable build is right
        ("fpu sse2 avx2 avx512f", None, False),  # the child did not say
    ],
)
def test_doctor_names_the_faster_build_only_where_the_cpu_runs_it(
    tmp_path: Path, flags: str, avx512: bool | None, tip: bool
) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    result = CheckResult(True, 0, 3.0, tokens=1200, eval_s=2.0, version="0.3.36", avx512=avx512)
    line = probe.faster_build_tip(result, cpuinfo)
    assert bool(line) is tip
    if tip:
        assert "\n" not in line and "-DGGML_AVX512=ON" in line and "--no-cache-dir" in line
        assert "llama-cpp-python==0.3.36" in line


def test_no_tip_without_cpuinfo_or_after_a_failed_check(tmp_path: Path) -> None:
    passed = CheckResult(True, 0, 3.0, avx512=False)
    assert probe.faster_build_tip(passed, tmp_path / "missing") == ""
    (tmp_path / "cpuinfo").write_text("flags : avx512f\n")
    assert probe.faster_build_tip(CheckResult(False, -4, 3.0), tmp_path / "cpuinfo") == ""


def test_a_check_reads_whether_the_build_has_avx512(tmp_path: Path) -> None:
    child = "import json\nprint(json.dumps({'tokens': 1200, 'eval_s': 2.0, 'avx512': 0.0}))\n"
    assert run_check(tmp_path / "m.gguf", code=child).avx512 is False
    assert run_check(tmp_path / "m.gguf", code=PASSING_CHILD).avx512 is None
