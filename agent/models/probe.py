"""The backend check: does the installed llama.cpp survive a long prompt on this CPU?

llama-cpp-python compiles llama.cpp on install, by default for ``-march=native``. On CPUs
(often VMs) that advertise AMX or AVX-512 the kernel has not enabled, that build dies with
SIGILL ("Illegal instruction") at the first prompt long enough to reach the matrix kernels
(a 1,200-token prompt did it; a short one did not). Watt runs the model in-process, so the
user would see watt itself killed with no message.

``run_check`` loads the model in a child process and evaluates ``PROBE_TOKENS`` tokens; a
death by signal becomes a ``CheckResult`` that ``CheckResult.line`` states in one line, with
the portable reinstall command (``reinstall_command``). ``watt doctor`` runs it every time;
``ensure_checked`` runs it once per backend (``backend_fingerprint``: llama-cpp-python's
version and its native libraries' size and mtime) and records a pass in
``$WATT_HOME/cache/backend-check.json``, so the first ``watt ask`` with a local model on a
machine pays it once and a crash is a one-line ``ConfigError`` instead of a killed process.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.models.messages import Message
from rt.errors import ConfigError, Interrupted

PROBE_TOKENS = 1200
TIMEOUT_S = 900.0
PORTABLE_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
"""The instruction set the README's main job builds llama.cpp for (every x86-64 CPU since 2015)."""

NO_CORE = """\
import sys
sys.path[:] = [p for p in sys.path if p not in ("", ".")]  # python -c put the cwd first
try:
    import resource
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
except (ImportError, ValueError, OSError):
    pass
"""
"""Run first in every child: a crash must not leave a core file of the model's memory behind,
and a directory named ``agent`` or ``llama_cpp`` where watt was started is not imported."""

CHILD_CODE = """\
import json, sys
from agent.models.probe import fixed_check
print(json.dumps(fixed_check(sys.argv[1], int(sys.argv[2]))))
"""
"""The child: load the model, evaluate ``n`` tokens in full batches, print its timings as JSON."""

PROMPT_CHILD_CODE = """\
import json, sys
from agent.models.local import LocalModel
from agent.models.probe import prompt_check
print(json.dumps(prompt_check(*sys.argv[1:6], model_class=LocalModel)))
"""
"""The child ``ensure_checked`` runs before a first ask (``prompt_check``)."""


def fixed_check(path: str, n: int) -> dict[str, float]:
    """In the child: load the model, evaluate ``n`` tokens of a fixed text in full batches."""
    import llama_cpp

    t0 = time.perf_counter()
    llm = llama_cpp.Llama(
        model_path=path, n_ctx=n + 64, n_threads=os.cpu_count() or 1, verbose=False
    )
    t1 = time.perf_counter()
    text = (
        "The quick brown fox jumps over the lazy dog while the five boxing wizards jump quickly. "
    )
    tokens = llm.tokenize((text * (n // 8 + 8)).encode())[:n]
    llm.eval(tokens)
    eval_s = time.perf_counter() - t1
    avx512 = b"AVX512 = 1" in llama_cpp.llama_print_system_info()
    return {"tokens": len(tokens), "load_s": t1 - t0, "eval_s": eval_s, "avx512": float(avx512)}


def prompt_check(
    path: str,
    n: str | int,
    home: str,
    n_ctx: str | int,
    system_file: str,
    *,
    model_class: Any,
    fixed: Callable[[str, int], dict[str, float]] = fixed_check,
) -> dict[str, float]:
    """In the child: evaluate the first ask's system prompt with ``model_class`` (``LocalModel``:
    the child's code passes it, so this module does not import it), saving its
    state under ``home``, so that the check and the first prompt evaluation are one
    evaluation (the ask's own process restores the state). When that evaluated fewer than
    ``n`` tokens (a short prompt, or a state already on disk), the fixed text is evaluated
    too: the check must reach the matrix kernels."""
    system = Path(system_file).read_text(encoding="utf-8")

    def progress(phase: str, done: int, total: int) -> None:
        if phase == "prompt":
            print(json.dumps({"progress": [done, total]}), flush=True)

    model = model_class(
        Path(path), home=Path(home), n_ctx=int(n_ctx), grammar=False, progress=progress
    )
    try:
        model.prefill([Message.system(system), Message.user("?")])
        done = model.last_prefill
    finally:
        model.close()
    if done.evaluated < int(n):
        return fixed(path, int(n))
    return {"tokens": done.evaluated, "eval_s": done.seconds, "saved": float(done.saved)}


@dataclass(frozen=True)
class CheckResult:
    """What the child did: ``returncode`` (negative: killed by that signal; None: timed out)."""

    ok: bool
    returncode: int | None
    seconds: float
    tokens: int = 0
    eval_s: float = 0.0
    detail: str = ""  # the last line of the child's stderr, when it failed
    version: str | None = None  # llama-cpp-python's version
    avx512: bool | None = None  # whether llama.cpp was built with AVX-512 (None: not known)

    @property
    def signal_name(self) -> str | None:
        if self.returncode is None or self.returncode >= 0:
            return None
        try:
            number = signal.Signals(-self.returncode)
        except ValueError:
            return f"signal {-self.returncode}"
        description = signal.strsignal(number) or number.name
        return f"signal {-self.returncode} ({number.name}, {description})"

    def line(self) -> str:
        """One line for a person: the pass with its speed, or what went wrong and the fix."""
        backend = f"llama-cpp-python {self.version or '?'}"
        if self.ok:
            rate = f", {self.tokens / self.eval_s:.0f} tokens/s" if self.eval_s > 0 else ""
            return (
                f"local backend: {backend} evaluated a {self.tokens}-token prompt in a child "
                f"process ({self.eval_s:.1f} s{rate})"
            )
        if self.returncode is None:
            return f"local backend: {backend} did not finish the check in {self.seconds:.0f} s"
        if self.signal_name is not None:
            return (
                f"local backend: {backend} was killed by {self.signal_name} evaluating a "
                f"{PROBE_TOKENS}-token prompt (a llama.cpp built for instructions this CPU "
                f"does not run); reinstall it portably: {reinstall_command(self.version)}"
            )
        return (
            f"local backend: {backend} failed in a child process: {self.detail or self.returncode}"
        )


def backend_version() -> str | None:
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        return None


def reinstall_command(version: str | None = None) -> str:
    """Rebuild llama-cpp-python for a portable instruction set, bypassing pip's wheel cache."""
    pin = f"=={version}" if version else ""
    return (
        f'CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}" pip install --force-reinstall --no-deps '
        f"--no-cache-dir 'llama-cpp-python{pin}'"
    )


AVX512_CMAKE_ARGS = PORTABLE_CMAKE_ARGS + " -DGGML_AVX512=ON"


def faster_build_tip(result: CheckResult, cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """For a backend built without AVX-512 on a CPU that has it: the rebuild that evaluates
    prompts about twice as fast (the portable build leaves it out: it faults on CPUs
    without it), else ""."""
    if not result.ok or result.avx512 is not False:
        return ""
    try:
        flags = cpuinfo.read_text(encoding="ascii", errors="replace").split()
    except OSError:
        return ""
    if "avx512f" not in flags:
        return ""
    pin = f"=={result.version}" if result.version else ""
    return (
        "local backend: this CPU has AVX-512 and llama.cpp was built without it; prompts "
        f'evaluate about twice as fast after CMAKE_ARGS="{AVX512_CMAKE_ARGS}" pip install '
        f"--force-reinstall --no-deps --no-cache-dir 'llama-cpp-python{pin}' (that build "
        "faults on CPUs without AVX-512)"
    )


def backend_fingerprint() -> str | None:
    """llama-cpp-python's version and its native libraries (name, size, mtime), without
    importing it: a rebuild with other flags changes it. None when it is not installed."""
    try:
        spec = importlib.util.find_spec("llama_cpp")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    libs = []
    for path in sorted(package.rglob("*")):
        if path.is_symlink():  # libllama.so -> libllama.so.0 -> libllama.so.0.5.0: once
            continue
        if path.suffix in (".so", ".dylib", ".dll") or ".so." in path.name:
            try:
                st = path.stat()
            except OSError:
                continue
            libs.append(f"{path.name}:{st.st_size}:{st.st_mtime_ns}")
    return f"llama-cpp-python {backend_version()} [{' '.join(libs)}]"


def run_check(
    model: Path,
    *,
    tokens: int = PROBE_TOKENS,
    python: str | None = None,
    code: str = CHILD_CODE,
    timeout: float = TIMEOUT_S,
    cancel: threading.Event | None = None,
    prompt: SystemPrompt | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> CheckResult:
    """Load ``model`` in a child process and evaluate ``tokens`` tokens; never raises for the
    child's failure (only ``Interrupted`` when ``cancel`` is set or the child got SIGINT).
    With ``prompt``, the child evaluates that system prompt instead and saves its state
    (``PROMPT_CHILD_CODE``), unless ``code`` names another child, and ``on_progress`` sees
    its tokens evaluated of total."""
    if prompt is None:
        return _run_child(model, tokens, python, code, timeout, cancel, ())
    if code == CHILD_CODE:
        code = PROMPT_CHILD_CODE
    try:
        cache = prompt.home / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".system-", suffix=".txt", dir=cache)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(prompt.text)
    except OSError:  # an unwritable home: the fixed check still says whether llama.cpp faults
        return _run_child(model, tokens, python, CHILD_CODE, timeout, cancel, ())
    try:
        extra = (str(prompt.home), str(prompt.n_ctx), name)
        return _run_child(model, tokens, python, code, timeout, cancel, extra, on_progress)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


@dataclass(frozen=True)
class SystemPrompt:
    """What a first ask will evaluate: its system prompt, the context size and the home whose
    prompt-state cache gets the result."""

    text: str
    n_ctx: int
    home: Path


def _run_child(
    model: Path,
    tokens: int,
    python: str | None,
    code: str,
    timeout: float,
    cancel: threading.Event | None,
    extra: Sequence[str],
    on_progress: Callable[[int, int], None] | None = None,
) -> CheckResult:
    version = backend_version()
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(
            [python or sys.executable, "-c", NO_CORE + code, str(model), str(tokens), *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    except OSError as exc:
        return CheckResult(False, 1, 0.0, detail=f"cannot start {python}: {exc}", version=version)
    try:
        out, err = _wait(proc, timeout, cancel, on_progress)
    except subprocess.TimeoutExpired:
        return CheckResult(False, None, time.perf_counter() - start, version=version)
    seconds = time.perf_counter() - start
    if proc.returncode == -signal.SIGINT:
        raise Interrupted("interrupted during the backend check")
    if proc.returncode != 0:
        lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
        detail = lines[-1][:300] if lines else ""
        return CheckResult(False, proc.returncode, seconds, detail=detail, version=version)
    facts = _facts(out)
    return CheckResult(
        True,
        0,
        seconds,
        tokens=int(facts.get("tokens", tokens)),
        eval_s=float(facts.get("eval_s", 0.0)),
        version=version,
        avx512=bool(facts["avx512"]) if "avx512" in facts else None,
    )


def _wait(
    proc: subprocess.Popen[str],
    timeout: float,
    cancel: threading.Event | None,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[str, str]:
    """Read the child's output until it exits, in short slices, so a set ``cancel`` (or
    Ctrl-C) stops it at once; a ``{"progress": [done, total]}`` line goes to ``on_progress``."""
    out: list[str] = []
    err: list[str] = []

    def read_out() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            done_total = _progress(line) if on_progress is not None else None
            if done_total is not None and on_progress is not None:
                on_progress(*done_total)

    def read_err() -> None:
        assert proc.stderr is not None
        err.append(proc.stderr.read())

    readers = [threading.Thread(target=f, daemon=True) for f in (read_out, read_err)]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            if cancel is not None and cancel.is_set():
                raise Interrupted("interrupted during the backend check")
            try:
                proc.wait(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    raise
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        for reader in readers:
            reader.join(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    return "".join(out), "".join(err)


def _progress(line: str) -> tuple[int, int] | None:
    if not line.startswith('{"progress"'):
        return None
    try:
        done, total = json.loads(line)["progress"]
        return int(done), int(total)
    except (ValueError, TypeError, KeyError):
        return None


def _facts(out: str) -> dict[str, float]:
    for line in reversed(out.splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if isinstance(v, (int, float))}
    return {}


# ---- once per backend -------------------------------------------------------------------------


def record_path(home: Path) -> Path:
    return home / "cache" / "backend-check.json"


def passed_before(home: Path, fingerprint: str) -> bool:
    """Whether the check passed for this exact backend (a missing or bad record: no)."""
    try:
        data = json.loads(record_path(home).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(data, dict) and data.get("fingerprint") == fingerprint and data.get("ok") is True
    )


def record_pass(home: Path, fingerprint: str, result: CheckResult) -> None:
    path = record_path(home)
    body = {
        "fingerprint": fingerprint,
        "ok": True,
        "tokens": result.tokens,
        "eval_s": result.eval_s,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(body) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only means checking again next time


def forget(home: Path) -> bool:
    """Remove the record (``watt model clear-cache``); whether there was one."""
    try:
        record_path(home).unlink()
    except FileNotFoundError:
        return False
    return True


Runner = Callable[..., CheckResult]


def ensure_checked(
    home: Path,
    model: Path,
    *,
    runner: Runner = run_check,
    cancel: threading.Event | None = None,
    on_start: Callable[[], None] | None = None,
    prompt: SystemPrompt | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> CheckResult | None:
    """Run the check unless it passed for this backend before; a crash or failure raises a
    one-line ``ConfigError``. None when nothing ran (passed before, or no backend to check).
    With ``prompt``, the check evaluates the first ask's system prompt and saves its state."""
    fingerprint = backend_fingerprint()
    if fingerprint is None or passed_before(home, fingerprint):
        return None
    if on_start is not None:
        on_start()
    extra = {"prompt": prompt, "on_progress": on_progress} if prompt else {}
    result = runner(model, cancel=cancel, **extra)
    if result.ok:
        record_pass(home, fingerprint, result)
    elif result.returncode is not None:  # a timeout is slowness, not a fault: try next time
        raise ConfigError(result.line())
    return result
