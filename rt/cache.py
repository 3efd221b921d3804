"""Content-hash compile cache: an in-memory LRU plus serialized modules on disk.

The key is sha256 of the engine fingerprint (wasmtime version and configuration) and the
assembled WAT. A disk entry is ``MAGIC + key + sha256(payload) + payload``; anything that
does not check out (truncated, corrupt, foreign, another key) is ignored and rewritten.
"""

from __future__ import annotations

import enum
import hashlib
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:  # the module is imported for CacheSource by code that never compiles
    import wasmtime

MAGIC = b"WATTMOD1"
V = TypeVar("V")


class CacheSource(str, enum.Enum):
    """Where a run's compiled module came from."""

    MEMORY = "memory"  # this process compiled or loaded it before
    DISK = "disk"  # a serialized module from the cache directory
    COMPILED = "compiled"  # compiled now (and stored on disk, when there is a directory)


def cache_key(fingerprint: str, wat: str) -> str:
    h = hashlib.sha256()
    h.update(fingerprint.encode())
    h.update(b"\0")
    h.update(wat.encode("utf-8"))
    return h.hexdigest()


class LRU(Generic[V]):
    """A small bounded mapping that forgets the least recently used entry."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[object, V] = OrderedDict()

    def get(self, key: object) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: object, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class ModuleCache:
    """Compiled modules by key: memory first, then disk (if a directory is given)."""

    def __init__(
        self, engine: wasmtime.Engine, directory: Path | None, capacity: int = 256
    ) -> None:
        self.engine = engine
        self.directory = directory
        self.memory: LRU[wasmtime.Module] = LRU(capacity)
        self.rejected = 0  # disk entries found invalid and ignored

    def get_or_compile(
        self, key: str, compile_: Callable[[], wasmtime.Module]
    ) -> tuple[wasmtime.Module, CacheSource]:
        """The module for ``key`` and where it came from."""
        module = self.memory.get(key)
        if module is not None:
            return module, CacheSource.MEMORY
        module = self._load(key)
        source = CacheSource.DISK
        if module is None:
            module = compile_()
            source = CacheSource.COMPILED
            self._store(key, module)
        self.memory.put(key, module)
        return module, source

    def _path(self, key: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{key}.cwasm"

    def _load(self, key: str) -> wasmtime.Module | None:
        path = self._path(key)
        if path is None:
            return None
        try:
            blob = path.read_bytes()
        except OSError:
            return None
        head = len(MAGIC) + 64 + 32
        if (
            len(blob) < head
            or not blob.startswith(MAGIC)
            or blob[len(MAGIC) : len(MAGIC) + 64] != key.encode()
            or hashlib.sha256(blob[head:]).digest() != blob[len(MAGIC) + 64 : head]
        ):
            self.rejected += 1
            return None
        from wasmtime import Module

        try:
            return Module.deserialize(self.engine, blob[head:])
        except Exception:  # wasmtime refuses artifacts of another version or configuration
            self.rejected += 1
            return None

    def _store(self, key: str, module: wasmtime.Module) -> None:
        path = self._path(key)
        if path is None:
            return
        try:
            payload = module.serialize()
            blob = MAGIC + key.encode() + hashlib.sha256(payload).digest() + bytes(payload)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(blob)
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError:
            pass  # a read-only or full cache directory only costs speed
