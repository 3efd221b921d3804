"""The ``kv`` capability: a key-value store of byte values scoped to the session.

Persistence comes from the injected ``KvBackend`` (``MemoryKv`` here; the session store
provides a SQLite one). Values are bytes: every byte 0-255 round-trips, in one run and
across sessions. Keys are text and must be valid UTF-8 (ETRFM otherwise); an empty key is
EBOUND. Quotas are ENOMEM: key size, value size (both refused from the length prefix, before
the guest's buffer is copied), number of keys (overwriting an existing key is always
allowed) and calls per run. A backend that fails with a ``WattError`` (the session database,
say) is EREMOTE for the guest, with the error's class as the debug detail.

Backends also offer ``get``/``set`` on text for people and catalog examples: ``set`` stores
the UTF-8 of the text, ``get`` shows a value that is not UTF-8 with ``\\xNN`` escapes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Protocol, TypeVar, runtime_checkable

from capabilities.base import host
from rt.codes import Err
from rt.errors import WattError
from rt.host import GuestError, HostFunction, RunContext

T = TypeVar("T")


@runtime_checkable
class KvBackend(Protocol):
    """Where the values live. Implementations raise ``WattError`` subclasses on failure."""

    def get_bytes(self, key: str) -> bytes | None: ...

    def set_bytes(self, key: str, value: bytes) -> None: ...

    def delete(self, key: str) -> bool: ...

    def keys(self) -> list[str]: ...


def text_value(value: bytes) -> str:
    """A stored value as text: UTF-8 as is, any other byte as a visible ``\\xNN`` escape."""
    return value.decode("utf-8", errors="backslashreplace")


class MemoryKv:
    """A ``KvBackend`` held in a dict: lives as long as the object (tests, one-shot runs)."""

    def __init__(self, initial: Mapping[str, str | bytes] | None = None) -> None:
        self._data: dict[str, bytes] = {
            k: v if isinstance(v, bytes) else v.encode("utf-8") for k, v in (initial or {}).items()
        }

    def get_bytes(self, key: str) -> bytes | None:
        return self._data.get(key)

    def set_bytes(self, key: str, value: bytes) -> None:
        self._data[key] = bytes(value)

    def get(self, key: str) -> str | None:
        value = self.get_bytes(key)
        return None if value is None else text_value(value)

    def set(self, key: str, value: str) -> None:
        self.set_bytes(key, value.encode("utf-8"))

    def delete(self, key: str) -> bool:
        return self._data.pop(key, None) is not None

    def keys(self) -> list[str]:
        return list(self._data)


@dataclass
class _RunCalls:
    n: int = 0


class KvCapability:
    """Host functions of the ``kv`` namespace over one backend (one object per session)."""

    namespace = "kv"
    pure = False  # side effects outside the run
    summary = "text key-value store kept for the whole session"

    def __init__(
        self,
        backend: KvBackend,
        *,
        max_key_bytes: int = 256,
        max_value_bytes: int = 65536,
        max_keys: int = 1000,
        max_calls_per_run: int = 1000,
    ) -> None:
        self.backend = backend
        self.max_key_bytes = max_key_bytes
        self.max_value_bytes = max_value_bytes
        self.max_keys = max_keys
        self.max_calls_per_run = max_calls_per_run

    # ---- plumbing ------------------------------------------------------------------------
    def _count(self, ctx: RunContext) -> None:
        calls = ctx.state(self.namespace, _RunCalls)
        calls.n += 1
        if calls.n > self.max_calls_per_run:
            raise GuestError(Err.ENOMEM, f"more than {self.max_calls_per_run} kv calls in one run")

    def _key(self, ctx: RunContext, ptr: int) -> str:
        data = ctx.read_bytes(ptr, self.max_key_bytes, "key")
        if not data:
            raise GuestError(Err.EBOUND, "empty key")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise GuestError(Err.ETRFM, "key is not valid UTF-8") from None

    @staticmethod
    def _backend(call: Callable[[], T]) -> T:
        try:
            return call()
        except WattError as exc:
            raise GuestError(Err.EREMOTE, f"kv storage failed ({type(exc).__name__})") from exc

    # ---- host functions --------------------------------------------------------------------
    def get(self, ctx: RunContext, key_ptr: int) -> tuple[int, int]:
        self._count(ctx)
        key = self._key(ctx, key_ptr)
        value = self._backend(lambda: self.backend.get_bytes(key))
        if value is None:
            raise GuestError(Err.ENOENT, f"no key {key[:80]!r}")
        return ctx.alloc_bytes(value), 0

    def set(self, ctx: RunContext, key_ptr: int, value_ptr: int) -> int:
        self._count(ctx)
        key = self._key(ctx, key_ptr)
        value = ctx.read_bytes(value_ptr, self.max_value_bytes, "value")
        if self._backend(lambda: self.backend.get_bytes(key)) is None:
            if len(self._backend(self.backend.keys)) >= self.max_keys:
                raise GuestError(Err.ENOMEM, f"the store already holds {self.max_keys} keys")
        self._backend(lambda: self.backend.set_bytes(key, value))
        return 0

    def delete(self, ctx: RunContext, key_ptr: int) -> int:
        self._count(ctx)
        key = self._key(ctx, key_ptr)
        if not self._backend(lambda: self.backend.delete(key)):
            raise GuestError(Err.ENOENT, f"no key {key[:80]!r}")
        return 0

    def keys(self, ctx: RunContext) -> tuple[int, int]:
        self._count(ctx)
        names = sorted(self._backend(self.backend.keys))
        return ctx.new_array([k.encode("utf-8") for k in names]), 0

    def functions(self) -> list[HostFunction]:
        fn = partial(host, self.namespace)
        return [
            fn("get", "key -> ptr err", self.get, "value stored under key; ENOENT if absent"),
            fn("set", "key value -> err", self.set, "store value under key; ENOMEM if key, value or key count too big"),
            fn("del", "key -> err", self.delete, "remove key; ENOENT if absent"),
            fn("keys", "-> arr err", self.keys, "array of all keys, sorted"),
        ]  # fmt: skip
