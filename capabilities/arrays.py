"""The ``arr`` capability: run-scoped arrays of byte strings held by the host.

Arrays live in ``RunContext.arrays`` and are shared with every capability that returns a
handle (``str.split``, ``kv.keys``, ``fs.list``). Handles and indexes are checked: an unknown
handle or an index outside ``[0, len)`` (a negative i32 included) is EBOUND; every pushed item
is charged against the run's item quota (ENOMEM beyond it).
"""

from __future__ import annotations

from functools import partial

from capabilities.base import host
from rt.codes import Err
from rt.host import GuestError, HostFunction, RunContext


def check_index(items: list[bytes], idx: int) -> int:
    """``idx`` (a signed i32) if it addresses an item of ``items``; ``GuestError(EBOUND)`` otherwise."""
    if not 0 <= idx < len(items):
        raise GuestError(Err.EBOUND, f"index {idx} outside array of length {len(items)}")
    return idx


class ArrCapability:
    """Host functions of the ``arr`` namespace."""

    namespace = "arr"
    pure = True  # no side effects: a run may be repeated
    summary = "arrays of strings (handles live for one run); bad handle or index EBOUND"

    def new(self, ctx: RunContext) -> tuple[int, int]:
        return ctx.new_array(), 0

    def push(self, ctx: RunContext, handle: int, ptr: int) -> int:
        items = ctx.array(handle)
        data = ctx.read_bytes(ptr)
        ctx.count_items(1)
        items.append(data)
        return 0

    def get(self, ctx: RunContext, handle: int, idx: int) -> tuple[int, int]:
        items = ctx.array(handle)
        return ctx.alloc_bytes(items[check_index(items, idx)]), 0

    def set(self, ctx: RunContext, handle: int, idx: int, ptr: int) -> int:
        items = ctx.array(handle)
        i = check_index(items, idx)
        items[i] = ctx.read_bytes(ptr)
        return 0

    def length(self, ctx: RunContext, handle: int) -> tuple[int, int]:
        return len(ctx.array(handle)), 0

    def functions(self) -> list[HostFunction]:
        fn = partial(host, self.namespace)
        return [
            fn("new", "-> arr err", self.new, "new empty array handle; ENOMEM past the array quota"),
            fn("push", "arr s -> err", self.push, "append a copy of the string; ENOMEM past the item quota"),
            fn("get", "arr idx -> ptr err", self.get, "item at index (from 0); EBOUND out of range"),
            fn("set", "arr idx s -> err", self.set, "replace item at index; EBOUND out of range"),
            fn("len", "arr -> n err", self.length, "number of items"),
        ]  # fmt: skip
