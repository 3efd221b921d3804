"""The per-session lock: an exclusive, non-blocking ``flock`` that the OS drops when its holder
dies (even by ``kill -9``), so a lock is never stale (see ``agent.store.sessions``)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from rt.errors import SessionError, SessionInUse

# --- the lock -----------------------------------------------------------------------------


class SessionLock:
    """An exclusive, non-blocking ``flock`` on ``<name>.lock`` holding our pid."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd = fd
        self.path = path

    @classmethod
    def acquire(cls, path: Path, name: str) -> SessionLock:
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise SessionError(f"cannot lock session {name!r}: {exc.strerror}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                os.close(fd)
                holder = f" (pid {pid})" if pid else ""
                raise SessionInUse(
                    f"session {name!r} is in use by another watt process{holder}; "
                    f"`watt log --follow --session {name}` can watch it"
                ) from None
            except OSError as exc:
                os.close(fd)
                raise SessionError(f"cannot lock session {name!r}: {exc.strerror}") from exc
            # remove() may have unlinked the file between our open and our flock: retry.
            try:
                same = os.path.samestat(os.stat(path), os.fstat(fd))
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            except OSError as exc:
                os.close(fd)
                raise SessionError(f"cannot lock session {name!r}: {exc.strerror}") from exc
            return cls(fd, path)

    def release(self, *, unlink: bool = False) -> None:
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        try:
            if unlink:
                os.unlink(self.path)
            else:
                os.ftruncate(fd, 0)
        except OSError:
            pass  # the lock itself goes with the fd; a leftover pid is harmless
        finally:
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
