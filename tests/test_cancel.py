"""Cancel and deadlines act on what is in flight (SECURITY.md rule 18).

A silent server on 127.0.0.1 accepts a request and never answers. Ctrl-C (a real SIGINT to a
``watt`` child process) while a program waits on it in ``http.get`` or ``ai.assist`` returns
at once with exit 130; a run whose wall-clock limit passes while it waits is a failed
observation and the task carries on to the model. Bounds on time are generous on purpose
(``pytest -s tests/test_cancel.py`` prints the measured figures).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.app import ask, open_parts
from agent.config import load_settings
from agent.events import ResponseEvent, ToolResult
from agent.models.scripted import ScriptedModel
from capabilities.http import HttpCapability
from capabilities.sys import SysCapability
from rt.codes import Err
from rt.engine import Runtime
from rt.errors import Interrupted, Timeout
from rt.limits import Limits

REPO = Path(__file__).resolve().parents[1]
GENEROUS_S = 3.0  # the goal is 0.5 s; this only catches "waited for the request's deadline"


class SilentServer:
    """Accepts connections, reads each request and never answers; ``requests`` counts them,
    ``hangups`` counts the connections the client closed."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port: int = self.listener.getsockname()[1]
        self.requests = threading.Semaphore(0)
        self.hangups = threading.Semaphore(0)
        self.conns: list[socket.socket] = []
        self.closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        try:
            if conn.recv(65536):
                self.requests.release()
            while conn.recv(65536):  # b"" once the client hangs up
                pass
            self.hangups.release()
        except OSError:
            return

    def close(self) -> None:
        self.closed.set()
        self.listener.close()
        for conn in self.conns:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def _http_get_source(port: int) -> str:
    return f'(resv (http.get "http://127.0.0.1:{port}/slow"))\n(i32.const 0)\n'


def interrupt_child(
    args: list[str], server: SilentServer, home: Path, extra_env: dict[str, str] | None = None
) -> tuple[int, float, str]:
    """Start ``watt ARGS``, wait until the server holds its request, send SIGINT; returns
    (exit code, seconds from SIGINT to exit, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "WATT_HOME": str(home)}
    for key in ("WATT_BASE_URL", "WATT_MODEL", "WATT_API_KEY", "OPENAI_API_KEY"):
        env.pop(key, None)
    code = "import sys; from cli.main import main; sys.argv[0] = 'watt'; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env={**env, **(extra_env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        waited = time.monotonic() + 60
        while not server.requests.acquire(timeout=0.2):
            if proc.poll() is not None or time.monotonic() > waited:
                out, err = proc.communicate(timeout=30) if proc.poll() is not None else ("", "")
                pytest.fail(f"the child never reached the server (exit {proc.poll()}): {out}{err}")
        time.sleep(0.2)  # let it settle into the blocking read
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
        return proc.returncode, time.monotonic() - sent, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_in_http_get_returns_at_once_with_130(silent: SilentServer, tmp_path: Path) -> None:
    program = tmp_path / "slow.wat"
    program.write_text(_http_get_source(silent.port))
    args = ["run", str(program), "--allow-domain", f"127.0.0.1:{silent.port}", "--timeout", "60"]
    code, seconds, err = interrupt_child(args, silent, tmp_path / "home")
    print(f"http.get: exit {code} {seconds:.3f} s after SIGINT")
    assert code == 130, err
    assert seconds < GENEROUS_S, err
    assert "Traceback" not in err


def test_ctrl_c_in_ai_assist_returns_at_once_with_130(silent: SilentServer, tmp_path: Path) -> None:
    program = tmp_path / "assist.wat"
    program.write_text('(resv (ai.assist "some text" "summarise" 0))\n(i32.const 0)\n')
    endpoint = {"WATT_BASE_URL": f"http://127.0.0.1:{silent.port}/v1", "WATT_MODEL": "slow"}
    code, seconds, err = interrupt_child(
        ["run", str(program), "--timeout", "60"], silent, tmp_path / "home", endpoint
    )
    print(f"ai.assist: exit {code} {seconds:.3f} s after SIGINT")
    assert code == 130, err
    assert seconds < GENEROUS_S, err
    assert "Traceback" not in err


# ---- in process --------------------------------------------------------------------------------


def _runtime(port: int, timeout_s: float) -> Runtime:
    http = HttpCapability([f"127.0.0.1:{port}"], request_timeout_s=30.0)
    return Runtime(
        [*SysCapability().functions(), *http.functions()], limits=Limits(timeout_s=timeout_s)
    )


def test_the_run_deadline_stops_a_waiting_http_get_without_setting_the_callers_cancel(
    silent: SilentServer,
) -> None:
    cancel = threading.Event()
    started = time.monotonic()
    with pytest.raises(Timeout) as info:
        _runtime(silent.port, 0.5).run(_http_get_source(silent.port), cancel=cancel)
    assert time.monotonic() - started < GENEROUS_S
    assert not cancel.is_set(), "the run's deadline leaked into the task's cancel event"
    partial = info.value.partial
    assert partial is not None and partial.status == Err.EREMOTE
    assert any("deadline" in line or "cancelled" in line for line in partial.debug)


def test_setting_the_callers_cancel_interrupts_a_waiting_http_get(silent: SilentServer) -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(Interrupted):
        _runtime(silent.port, 60.0).run(_http_get_source(silent.port), cancel=cancel)
    assert time.monotonic() - started < GENEROUS_S
    assert silent.hangups.acquire(timeout=GENEROUS_S), "the connection was left open"


def test_a_run_timeout_while_waiting_on_http_is_an_observation_and_the_task_goes_on(
    silent: SilentServer, tmp_path: Path
) -> None:
    settings = load_settings(
        {"allow_domains": [f"127.0.0.1:{silent.port}"], "timeout": 0.5},
        environ={"WATT_HOME": str(tmp_path)},
    )
    program = _http_get_source(silent.port).replace("\n", " ")
    model = ScriptedModel(
        [f"ToolCall::Wat(```wat\n{program}\n```)", 'ToolCall::Response("""gave up""")']
    )
    cancel = threading.Event()
    with open_parts(settings, model=model) as parts:
        events = list(ask(parts, "fetch it", cancel=cancel))
    results = [e for e in events if isinstance(e, ToolResult)]
    assert len(results) == 1 and not results[0].ok
    assert results[0].error_type == "Timeout", results[0]
    assert "timed out" in results[0].observation
    final = events[-1]
    assert isinstance(final, ResponseEvent) and final.text == "gave up"
    assert len(model.requests) == 2 and not cancel.is_set()


def test_http_cancel_is_eremote_and_names_the_host(silent: SilentServer) -> None:
    from capabilities.httpfetch import Fetcher
    from capabilities.netguard import Deadline, Grants, system_resolver

    cancel = threading.Event()
    grants = Grants.parse([f"127.0.0.1:{silent.port}"])
    fetcher = Fetcher(grants, system_resolver, None, 1000, 0, lambda _line: None)
    threading.Timer(0.2, cancel.set).start()
    from rt.host import GuestError

    with pytest.raises(GuestError) as info:
        fetcher.fetch(
            "GET", f"http://127.0.0.1:{silent.port}/", None, {}, Deadline.after(30.0, cancel)
        )
    assert info.value.code == Err.EREMOTE and "cancelled" in info.value.detail
    assert f"127.0.0.1:{silent.port}" in info.value.detail
    assert silent.hangups.acquire(timeout=GENEROUS_S), "the connection was left open"


def test_ctrl_c_while_the_model_has_not_answered_returns_at_once_with_130(
    silent: SilentServer, tmp_path: Path
) -> None:
    endpoint = {
        "WATT_BASE_URL": f"http://127.0.0.1:{silent.port}/v1",
        "WATT_MODEL": "slow",
        "WATT_GRAMMAR": "off",
    }
    code, seconds, err = interrupt_child(["ask", "hello"], silent, tmp_path / "home", endpoint)
    print(f"model call: exit {code} {seconds:.3f} s after SIGINT")
    assert code == 130, err
    assert seconds < GENEROUS_S, err
    assert "Traceback" not in err
