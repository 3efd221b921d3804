"""The ``fs`` capability: files under one jail directory that the user chose (``--fs-root``).

Every path is relative to the jail root and is walked one component at a time from a
directory file descriptor opened with ``O_NOFOLLOW`` (SECURITY.md rule 11). Refused with
EACCESS: ``..``, NUL, backslashes, drive letters (``C:``), empty components (``a//b``), and a
symlink anywhere on the path, even one pointing back inside the jail. ``.`` components are
dropped; ``list`` and ``exists`` also accept ``""``/``"."`` (the root), and they and ``del``
accept one trailing ``/`` (as ``list`` prints directory names).

An absolute path (as a task names a file) is accepted when it lies under the jail root, as
the user gave it or as its realpath: the check is lexical (repeated ``/`` and ``.`` are
dropped, ``..`` anywhere is EACCESS), the prefix is stripped and the remainder is walked as
above; a symlink on the way to the root is the user's, none below it is followed. Any other
absolute path is EACCESS, and the message names the jail root.

Types: ``read`` and ``append`` need a regular file; a directory, FIFO, socket or device is
EACCESS (a FIFO is never opened, so it cannot block the run). A path through something that
is not a directory is ENOENT for lookups, EACCESS for writes.

Writes go to a temp file in the target's directory (created through the directory fd),
are fsync'ed, then ``os.replace``d over the target: a failed write leaves the old content
intact and no temp file behind. ``write``/``append`` create missing parent directories.
``append`` is an atomic read-modify-write.

Names are Unicode NFC: every path is normalised before it is walked, so the NFC and NFD
spellings of ``café.txt`` are one file for every function; files are created under NFC
names and ``list`` shows NFC names. An entry made outside Watt in another form is found by
its NFC spelling when no entry has that exact name.

Quotas (ENOMEM): file size, bytes written per session, files and directories created per
session, calls per run. Sizes are checked from the guest buffer's length prefix (and an
appended file's stat) before anything is copied. Without a root every call is EACCESS.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from capabilities.base import host
from rt.codes import Err
from rt.errors import CapabilityError
from rt.host import GuestError, HostFunction, RunContext

NO_ROOT = "no fs root granted (use --fs-root DIR)"
TEMP_PREFIX = ".watt-tmp-"
MAX_PATH_BYTES = 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC
_READ_FLAGS = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
_NEEDS_DIR_FD = {os.open, os.mkdir, os.stat, os.unlink, os.rmdir, os.rename}


def _show(path: str) -> str:
    return repr(path if len(path) <= 80 else path[:77] + "...")


def split_path(
    path: str,
    *,
    allow_root: bool = False,
    dir_slash: bool = False,
    roots: Sequence[str] = (),
) -> list[str]:
    """The components of a jail-relative path; ``GuestError(EACCESS)`` for anything unsafe.

    ``allow_root``: ``""``/``"."`` mean the root (``[]``); ``dir_slash``: one trailing ``/``
    is accepted (as ``list`` prints directory names). ``roots``: the absolute spellings of the
    jail root (the first is named in messages); an absolute path under one of them stands for
    the relative remainder, any other absolute path is refused."""
    shown = _show(path)
    if "\x00" in path:
        raise GuestError(Err.EACCESS, f"path {shown} contains NUL")
    if "\\" in path:
        raise GuestError(Err.EACCESS, f"path {shown} contains a backslash; use /")
    if len(path.encode("utf-8")) > MAX_PATH_BYTES:
        raise GuestError(Err.EBOUND, f"path longer than {MAX_PATH_BYTES} bytes")
    if path.startswith("/"):
        return _split_absolute(path, shown, allow_root=allow_root, dir_slash=dir_slash, roots=roots)
    if _DRIVE.match(path):
        raise GuestError(Err.EACCESS, f"drive letter in path {shown}")
    return _split_relative(path, shown, allow_root=allow_root, dir_slash=dir_slash)


def _split_relative(path: str, shown: str, *, allow_root: bool, dir_slash: bool) -> list[str]:
    if dir_slash and path.endswith("/"):
        path = path[:-1]
    if path == "":
        if allow_root:
            return []
        raise GuestError(Err.EACCESS, "empty path: name a file")
    parts: list[str] = []
    for part in path.split("/"):
        if part == "":
            raise GuestError(Err.EACCESS, f"empty component in path {shown}")
        if part == "..":
            raise GuestError(Err.EACCESS, f"'..' in path {shown} is not allowed")
        if part != ".":
            parts.append(part)
    if not parts and not allow_root:
        raise GuestError(Err.EACCESS, f"path {shown} names the jail root, not a file")
    return parts


def lexical_parts(path: str) -> list[str] | None:
    """The components of an absolute path without empty and ``.`` ones; ``None`` if it has
    a ``..`` (which only the file system could resolve, through symlinks)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return None if ".." in parts else parts


def _split_absolute(
    path: str, shown: str, *, allow_root: bool, dir_slash: bool, roots: Sequence[str]
) -> list[str]:
    parts = lexical_parts(path)
    if parts is None:
        raise GuestError(Err.EACCESS, f"'..' in path {shown} is not allowed")
    if not roots:
        raise GuestError(Err.EACCESS, f"absolute path {shown}; paths are relative to the jail root")
    for root in roots:
        prefix = lexical_parts(root)
        if prefix is None or parts[: len(prefix)] != prefix:
            continue
        rest = parts[len(prefix) :]
        if not rest:
            if allow_root:
                return []
            raise GuestError(Err.EACCESS, f"path {shown} names the jail root, not a file")
        # the remainder goes through the relative rules; a trailing "/" keeps its meaning
        relative = "/".join(rest) + ("/" if path.endswith("/") else "")
        if _DRIVE.match(relative):
            raise GuestError(Err.EACCESS, f"drive letter in path {shown}")
        return _split_relative(relative, shown, allow_root=allow_root, dir_slash=dir_slash)
    raise GuestError(
        Err.EACCESS,
        f"absolute path {shown} is outside the fs jail {_show(roots[0])}; "
        "use a path relative to it",
    )


def validate_root(root: Path | str, protected: Iterable[Path | str] = ()) -> Path:
    """The resolved jail root; ``CapabilityError`` if it is missing or overlaps a protected path."""
    try:
        real = Path(root).expanduser().resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise CapabilityError(f"fs root {root} does not exist") from exc
    if not real.is_dir():
        raise CapabilityError(f"fs root {root} is not a directory")
    for p in protected:
        prot = Path(p).expanduser().resolve()
        if real == prot or real in prot.parents or prot in real.parents:
            raise CapabilityError(
                f"fs root {real} overlaps Watt's own files at {prot}; choose a separate directory"
            )
    return real


def _given_root(root: Path | str | None, real: Path | None) -> Path | None:
    """The jail root as the user wrote it, made absolute and lexically normalised (tasks name
    files that way); the realpath when that spelling has a ``..`` or there is no root."""
    if root is None or real is None:
        return real
    parts = lexical_parts(os.path.join(os.getcwd(), os.path.expanduser(str(root))))
    return real if parts is None else Path("/", *parts)


def os_error(exc: OSError, shown: str) -> GuestError:
    """The guest error for an OS failure on ``shown`` (errno names the code; no host paths)."""
    code = {
        errno.ENOENT: Err.ENOENT,
        errno.ENOTDIR: Err.ENOENT,
        errno.ENAMETOOLONG: Err.EBOUND,
        errno.ENOSPC: Err.ENOMEM,
        errno.EFBIG: Err.ENOMEM,
        getattr(errno, "EDQUOT", errno.ENOSPC): Err.ENOMEM,
    }.get(exc.errno or 0, Err.EACCESS)
    reason = "symlinks are not followed" if exc.errno == errno.ELOOP else exc.strerror
    return GuestError(code, f"{shown}: {reason or type(exc).__name__}")


def _lstat(dfd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _entry(dfd: int, name: str) -> str:
    """The directory entry that the NFC name ``name`` stands for: ``name`` itself, or else an
    entry spelled in another normalisation form (made outside Watt), first in sorted order;
    ``name`` when there is neither (a new file is created under its NFC name)."""
    if name.isascii() or _lstat(dfd, name) is not None:
        return name
    try:
        entries = sorted(os.listdir(dfd))
    except OSError:
        return name
    return next((e for e in entries if unicodedata.normalize("NFC", e) == name), name)


def _kind_error(st: os.stat_result, shown: str, *, want_dir: bool, wrong: Err) -> GuestError:
    if stat.S_ISLNK(st.st_mode):
        return GuestError(Err.EACCESS, f"{shown} is a symlink; symlinks are not followed")
    if want_dir:
        return GuestError(wrong, f"{shown} is not a directory")
    if stat.S_ISDIR(st.st_mode):
        return GuestError(Err.EACCESS, f"{shown} is a directory, not a file")
    return GuestError(Err.EACCESS, f"{shown} is not a regular file (FIFO, socket or device)")


def _require_file(st: os.stat_result, shown: str) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise _kind_error(st, shown, want_dir=False, wrong=Err.EACCESS)


def _atomic_write(dfd: int, name: str, data: bytes, mode: int | None) -> None:
    """Replace ``name`` in ``dfd`` by ``data``: temp file, fsync, ``os.replace``."""
    tmp = TEMP_PREFIX + secrets.token_hex(8)
    fd = os.open(tmp, _TEMP_FLAGS, 0o666, dir_fd=dfd)
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp, dir_fd=dfd)
        raise
    with suppress(OSError):
        os.fsync(dfd)  # make the rename itself durable


@dataclass
class _RunCalls:
    n: int = 0


class FsCapability:
    """Host functions of the ``fs`` namespace, jailed under ``root`` (one object per session)."""

    namespace = "fs"
    pure = False  # side effects outside the run
    summary = (
        "files under the user's jail dir; paths relative to it or absolute under it; "
        "no .. or symlinks (EACCESS)"
    )

    def __init__(
        self,
        root: Path | str | None,
        *,
        protected: Iterable[Path | str] = (),
        max_file_bytes: int = 1_000_000,
        max_total_write_bytes_per_session: int = 10_000_000,
        max_files: int = 1000,
        max_calls_per_run: int = 200,
    ) -> None:
        if root is not None and not _NEEDS_DIR_FD <= os.supports_dir_fd:
            raise CapabilityError("the fs capability needs dir_fd support (a POSIX system)")
        self.root = validate_root(root, protected) if root is not None else None
        self.given_root = _given_root(root, self.root)
        # the spellings an absolute guest path may start with; the first is named in messages
        # (NFC, as guest paths are compared in NFC)
        spellings = (str(r) for r in (self.given_root, self.root) if r)
        self._roots = tuple(dict.fromkeys(unicodedata.normalize("NFC", r) for r in spellings))
        self.max_file_bytes = max_file_bytes
        self.max_total_write_bytes = max_total_write_bytes_per_session
        self.max_files = max_files
        self.max_calls_per_run = max_calls_per_run
        self.bytes_written = 0
        self.files_created = 0

    # ---- plumbing ------------------------------------------------------------------------
    def _begin(
        self, ctx: RunContext, path_ptr: int, *, allow_root: bool = False, dir_slash: bool = False
    ) -> tuple[list[str], str]:
        if self.root is None:
            raise GuestError(Err.EACCESS, NO_ROOT)
        calls = ctx.state(self.namespace, _RunCalls)
        calls.n += 1
        if calls.n > self.max_calls_per_run:
            raise GuestError(Err.ENOMEM, f"more than {self.max_calls_per_run} fs calls in one run")
        if ctx.buffer_len(path_ptr) > MAX_PATH_BYTES:  # refused before it is copied
            raise GuestError(Err.EBOUND, f"path longer than {MAX_PATH_BYTES} bytes")
        try:
            path = ctx.read_bytes(path_ptr).decode("utf-8")
        except UnicodeDecodeError:
            raise GuestError(Err.ETRFM, "path is not valid UTF-8") from None
        path = unicodedata.normalize("NFC", path)
        parts = split_path(path, allow_root=allow_root, dir_slash=dir_slash, roots=self._roots)
        return parts, _show(path)

    def _charge_entry(self) -> None:
        if self.files_created >= self.max_files:
            raise GuestError(Err.ENOMEM, f"more than {self.max_files} files created this session")

    def _open_dir(self, fd: int, name: str, shown: str, *, create: bool, wrong: Err) -> int:
        name = _entry(fd, name)
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise GuestError(Err.ENOENT, f"{shown}: no directory {name!r}") from None
        except OSError as exc:
            st = _lstat(fd, name)
            if st is None or stat.S_ISDIR(st.st_mode):
                raise os_error(exc, shown) from exc
            raise _kind_error(st, shown, want_dir=True, wrong=wrong) from exc
        self._charge_entry()
        try:
            os.mkdir(name, 0o777, dir_fd=fd)
            self.files_created += 1
        except FileExistsError:
            pass  # created meanwhile, or a symlink: the open below decides
        return self._open_dir(fd, name, shown, create=False, wrong=wrong)

    @contextmanager
    def _dir(
        self, parts: list[str], shown: str, *, create: bool = False, last: Err = Err.ENOENT
    ) -> Iterator[int]:
        """An fd of the directory reached by ``parts``; ``last`` is the code if the final
        component is not a directory (intermediate ones are ENOENT, or EACCESS when creating)."""
        if self.root is None:
            raise GuestError(Err.EACCESS, NO_ROOT)
        try:
            fd = os.open(self.root, _DIR_FLAGS)
        except OSError as exc:
            raise GuestError(Err.EACCESS, "the fs root is no longer available") from exc
        try:
            for i, name in enumerate(parts):
                wrong = last if i == len(parts) - 1 else (Err.EACCESS if create else Err.ENOENT)
                nfd = self._open_dir(fd, name, shown, create=create, wrong=wrong)
                os.close(fd)
                fd = nfd
            yield fd
        finally:
            os.close(fd)

    def _read_file(self, dfd: int, name: str, shown: str) -> bytes:
        st = _lstat(dfd, name)
        if st is None:
            raise GuestError(Err.ENOENT, f"{shown}: no such file")
        _require_file(st, shown)
        fd = os.open(name, _READ_FLAGS, dir_fd=dfd)
        try:
            _require_file(os.fstat(fd), shown)
            chunks: list[bytes] = []
            size = 0
            while size <= self.max_file_bytes:
                chunk = os.read(fd, min(1 << 20, self.max_file_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
        if size > self.max_file_bytes:
            raise GuestError(Err.ENOMEM, f"{shown} is larger than {self.max_file_bytes} bytes")
        return b"".join(chunks)

    @staticmethod
    def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
        """Turn an OSError that escaped the checks into a guest error code."""

        def impl(ctx: RunContext, *args: int) -> Any:
            try:
                return fn(ctx, *args)
            except OSError as exc:
                raise os_error(exc, "fs") from exc

        return impl

    # ---- host functions --------------------------------------------------------------------
    def read(self, ctx: RunContext, path_ptr: int) -> tuple[int, int]:
        parts, shown = self._begin(ctx, path_ptr)
        with self._dir(parts[:-1], shown) as dfd:
            data = self._read_file(dfd, _entry(dfd, parts[-1]), shown)
        return ctx.alloc_bytes(data), 0

    def store(self, ctx: RunContext, path_ptr: int, data_ptr: int, *, append: bool) -> int:
        parts, shown = self._begin(ctx, path_ptr)
        added = ctx.buffer_len(data_ptr)  # the quotas see the length prefix, not a copy
        if added > self.max_file_bytes:
            raise GuestError(Err.ENOMEM, f"data is larger than {self.max_file_bytes} bytes")
        if self.bytes_written + added > self.max_total_write_bytes:
            raise GuestError(
                Err.ENOMEM, f"session write quota of {self.max_total_write_bytes} bytes reached"
            )
        with self._dir(parts[:-1], shown, create=True, last=Err.EACCESS) as dfd:
            name = _entry(dfd, parts[-1])
            st = _lstat(dfd, name)
            mode = None
            if st is None:
                self._charge_entry()
            else:
                _require_file(st, shown)
                mode = stat.S_IMODE(st.st_mode)
            if append and st is not None and st.st_size + added > self.max_file_bytes:
                raise GuestError(Err.ENOMEM, f"{shown} would grow past {self.max_file_bytes} bytes")
            data = ctx.read_bytes(data_ptr)
            if append and st is not None:
                old = self._read_file(dfd, name, shown)
                if len(old) + len(data) > self.max_file_bytes:
                    raise GuestError(
                        Err.ENOMEM, f"{shown} would grow past {self.max_file_bytes} bytes"
                    )
                data = old + data
            try:
                _atomic_write(dfd, name, data, mode)
            except OSError as exc:
                raise os_error(exc, f"writing {shown}") from exc
        self.bytes_written += added
        if st is None:
            self.files_created += 1
        return 0

    def list_dir(self, ctx: RunContext, dir_ptr: int) -> tuple[int, int]:
        parts, shown = self._begin(ctx, dir_ptr, allow_root=True, dir_slash=True)
        names: list[str] = []
        with self._dir(parts, shown, last=Err.EACCESS) as dfd:
            for name in os.listdir(dfd):
                st = _lstat(dfd, name)
                if st is None or name.startswith(TEMP_PREFIX):
                    continue
                shown_name = unicodedata.normalize("NFC", name)
                names.append(shown_name + "/" if stat.S_ISDIR(st.st_mode) else shown_name)
        names.sort()
        return ctx.new_array([n.encode("utf-8", "surrogateescape") for n in names]), 0

    def exists(self, ctx: RunContext, path_ptr: int) -> tuple[int, int]:
        parts, shown = self._begin(ctx, path_ptr, allow_root=True, dir_slash=True)
        if not parts:
            return 1, 0
        try:
            with self._dir(parts[:-1], shown) as dfd:
                st = _lstat(dfd, _entry(dfd, parts[-1]))
        except GuestError as exc:
            if exc.code == Err.ENOENT:
                return 0, 0
            raise
        if st is None:
            return 0, 0
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            raise _kind_error(st, shown, want_dir=False, wrong=Err.EACCESS)
        return 1, 0

    def delete(self, ctx: RunContext, path_ptr: int) -> int:
        parts, shown = self._begin(ctx, path_ptr, dir_slash=True)
        with self._dir(parts[:-1], shown) as dfd:
            name = _entry(dfd, parts[-1])
            st = _lstat(dfd, name)
            if st is None:
                raise GuestError(Err.ENOENT, f"{shown}: no such file")
            try:
                if stat.S_ISDIR(st.st_mode):
                    os.rmdir(name, dir_fd=dfd)
                else:
                    _require_file(st, shown)
                    os.unlink(name, dir_fd=dfd)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise GuestError(Err.EACCESS, f"{shown}: directory is not empty") from exc
                raise os_error(exc, shown) from exc
        return 0

    def functions(self) -> list[HostFunction]:
        fn = partial(host, self.namespace)
        return [
            fn("read", "path -> ptr err", self._guard(self.read),
               "file contents; ENOENT missing, EACCESS escape/symlink/not a file"),
            fn("write", "path data -> err", self._guard(partial(self.store, append=False)),
               "create or replace file (makes parent dirs); ENOMEM size quota"),
            fn("append", "path data -> err", self._guard(partial(self.store, append=True)),
               "add data at end of file (created if missing); ENOMEM quota"),
            fn("list", "dir -> arr err", self._guard(self.list_dir),
               'sorted names in dir ("" = root), dirs end with /; ENOENT'),
            fn("exists", "path -> bool err", self._guard(self.exists),
               "1 if file or directory exists, else 0; EACCESS escape"),
            fn("del", "path -> err", self._guard(self.delete), "delete file or empty directory; ENOENT missing"),
        ]  # fmt: skip
