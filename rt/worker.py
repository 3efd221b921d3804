"""One thread that runs wasm, so the calling thread stays free to notice Ctrl-C and time.

SECURITY.md rule 3: the caller waits on a lock (interruptible by signals, unlike a plain
``Thread.join`` on 3.11); Ctrl-C and the wall clock become an epoch bump through
``on_stop``. Rule 4: one wasm execution at a time per process (``exclusive``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

_EXCLUSIVE = (
    threading.Lock()
)  # process-wide: wasmtime-py passes host exceptions via a module global
_IN_JOB = threading.local()  # set on a worker thread while its job (a wasm run) is in progress


class Worker:
    def __init__(self) -> None:
        self._request = threading.Lock()
        self._request.acquire()
        self._job: tuple[Callable[[], None], threading.Lock] | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the process-wide wasm lock. A run started from a host function of a running
        program (``agent.run``) is nested: the outer program is suspended in that call on this
        very thread, so one wasm execution still runs at a time, and the lock it holds is not
        taken again (that would deadlock)."""
        if getattr(_IN_JOB, "active", False):
            yield
            return
        with _EXCLUSIVE:
            yield

    def _ensure(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="watt-wasm", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            self._request.acquire()
            if self._closed:
                return
            job = self._job
            if job is None:
                continue
            fn, done = job
            _IN_JOB.active = True
            try:
                fn()
            finally:
                _IN_JOB.active = False
                done.release()

    def close(self) -> None:
        """Let the thread end once it is idle; the worker is not called again."""
        self._closed = True
        if self._thread is not None and self._job is None:
            self._request.release()

    def call(
        self,
        fn: Callable[[], None],
        *,
        deadline: float,
        on_stop: Callable[[str], None],
        cancel: threading.Event,
    ) -> bool:
        """Run ``fn`` on the worker; stop it via ``on_stop`` at the deadline, on Ctrl-C or cancel.

        Returns True when Ctrl-C arrived while waiting (the caller reports the interruption).
        """
        self._ensure()
        done = threading.Lock()
        done.acquire()
        self._job = (fn, done)
        self._request.release()
        interrupted = False
        stopped = False
        while True:
            try:
                wait = 0.05 if stopped else min(0.1, max(0.0, deadline - time.monotonic()))
                if done.acquire(timeout=wait):
                    break
                if stopped:
                    continue
                if cancel.is_set():
                    on_stop("interrupt")
                    stopped = True
                elif time.monotonic() >= deadline:
                    on_stop("timeout")
                    stopped = True
            except KeyboardInterrupt:
                interrupted = True
                on_stop("interrupt")
                stopped = True
        self._job = None
        return interrupted
