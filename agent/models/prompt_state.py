"""Saved prompt state: a local model's evaluated system prompt, kept on disk between processes.

A new ``watt ask`` would otherwise evaluate the ~2,400-token system prompt from scratch (tens of
seconds on 2 cores). ``LocalModel`` evaluates it once, saves llama.cpp's state after exactly
those tokens, and a later process restores it and evaluates only what follows.

The key is sha256 over the model file's sha256, the exact prompt tokens, ``n_ctx`` and the
backend's fingerprint (llama-cpp-python's version and its native library, see
``agent.models.probe.backend_fingerprint``). A file is ``MAGIC + key + sha256(payload) +
payload``, the payload ``u32 n_tokens + n_tokens x i32 (little-endian) + llama.cpp's state``,
under ``$WATT_HOME/cache/prompt-state/<key>.kvstate``. The same rules as the compile cache:
anything that does not check out (truncated, corrupt, foreign, another key, other tokens) is
ignored and rewritten, never handed to llama.cpp. At most ``MAX_FILES`` are kept (the most
recently used); ``clear`` removes them all.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from collections.abc import Sequence
from pathlib import Path

MAGIC = b"WATTKV01"
SUFFIX = ".kvstate"
MAX_FILES = 4
_HEAD = len(MAGIC) + 64 + 32


def state_dir(home: Path) -> Path:
    return home / "cache" / "prompt-state"


def state_key(model_sha256: str, tokens: Sequence[int], n_ctx: int, backend: str) -> str:
    """The hex key of a state: what it depends on, hashed."""
    h = hashlib.sha256()
    for part in (model_sha256, str(n_ctx), backend, str(len(tokens))):
        h.update(part.encode() + b"\0")
    h.update(_pack_tokens(tokens))
    return h.hexdigest()


def state_path(directory: Path, key: str) -> Path:
    return directory / f"{key}{SUFFIX}"


def read_state(directory: Path, key: str, tokens: Sequence[int]) -> bytes | None:
    """llama.cpp's state saved under ``key`` for exactly ``tokens``, or None (missing, bad)."""
    path = state_path(directory, key)
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    if (
        len(blob) < _HEAD + 4
        or not blob.startswith(MAGIC)
        or blob[len(MAGIC) : len(MAGIC) + 64] != key.encode()
        or hashlib.sha256(memoryview(blob)[_HEAD:]).digest() != blob[len(MAGIC) + 64 : _HEAD]
    ):
        return None
    (count,) = struct.unpack_from("<I", blob, _HEAD)
    start = _HEAD + 4 + 4 * count
    if count != len(tokens) or len(blob) <= start:
        return None
    if blob[_HEAD + 4 : start] != _pack_tokens(tokens):
        return None
    try:
        os.utime(path)  # most recently used: kept by ``prune``
    except OSError:
        pass
    return blob[start:]


def write_state(directory: Path, key: str, tokens: Sequence[int], data: bytes) -> Path | None:
    """Save ``data`` (llama.cpp's state after ``tokens``) atomically; None if it cannot be."""
    payload = struct.pack("<I", len(tokens)) + _pack_tokens(tokens) + data
    path = state_path(directory, key)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(MAGIC + key.encode() + hashlib.sha256(payload).digest())
                fh.write(payload)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        return None  # a read-only or full cache directory only costs speed
    prune(directory)
    return path


def prune(directory: Path, keep: int = MAX_FILES) -> None:
    """Remove all but the ``keep`` most recently used state files."""
    files = sorted(_files(directory), key=_mtime, reverse=True)
    for path in files[keep:]:
        try:
            path.unlink()
        except OSError:
            pass


def size(directory: Path) -> tuple[int, int]:
    """(number of state files, their total bytes)."""
    files = _files(directory)
    return len(files), sum(_size(p) for p in files)


def clear(directory: Path) -> tuple[int, int]:
    """Remove every state file (and leftover temporary files); (files, bytes) removed."""
    removed = _files(directory) + (sorted(directory.glob(".tmp-*")) if directory.is_dir() else [])
    count, total = 0, 0
    for path in removed:
        n = _size(path)
        try:
            path.unlink()
        except OSError:
            continue
        count, total = count + (path.suffix == SUFFIX), total + n
    return count, total


def _pack_tokens(tokens: Sequence[int]) -> bytes:
    return struct.pack(f"<{len(tokens)}i", *tokens)


def _files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob(f"*{SUFFIX}") if p.is_file())


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
