"""The contract between the runtime and host capabilities.

A capability offers ``HostFunction``s. Each ``impl`` is called as ``impl(ctx, *args)`` with
the raw i32 arguments (signed, as wasmtime passes them) and returns exactly what the wasm
signature returns: ``None``, an int, or a tuple of ints. A guest mistake is reported by
raising ``GuestError(code)``; the runtime turns it into the function's failure value
(zeros, with the code as the last result) and never lets it reach the guest as a trap.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rt.codes import Err

PAGE = 65536
U32 = 0xFFFFFFFF


class GuestError(Exception):
    """Raised inside a host function to return an error code to the guest.

    ``detail`` (optional) is added to the run's debug lines so that the model sees why.
    """

    def __init__(self, code: Err, detail: str = "") -> None:
        super().__init__(f"{code.name}: {detail}" if detail else code.name)
        self.code = code
        self.detail = detail


HostImpl = Callable[..., Any]
IDEMPOTENCY_KEY = "idempotency_key"
"""``RunContext.states`` key: the idempotency key of the side-effecting call in progress,
set by the journal (``agent.store.hostcalls``); http.post sends it as ``Idempotency-Key``."""


@dataclass(frozen=True)
class HostFunction:
    """One imported function: ``(import "<namespace>" "<name>" (func $<namespace>.<name> ...))``.

    ``fallible`` means the last result is an error code from ``rt.codes.Err``.
    ``doc`` is the one-line description the model reads (meaning and error codes).
    """

    namespace: str
    name: str
    params: tuple[str, ...]
    results: tuple[str, ...]
    impl: HostImpl
    doc: str
    fallible: bool = True
    param_names: tuple[str, ...] = ()
    result_names: tuple[str, ...] = ()

    @property
    def qualname(self) -> str:
        return f"{self.namespace}.{self.name}"

    def signature(self) -> str:
        """``str.slice (s start end) -> (ptr err)``: names when given, else the wasm types."""
        params = " ".join(
            self.param_names if len(self.param_names) == len(self.params) else self.params
        )
        names = self.result_names if len(self.result_names) == len(self.results) else self.results
        return f"{self.qualname} ({params}) -> ({' '.join(names)})"

    def import_decl(self) -> str:
        parts = [f'(import "{self.namespace}" "{self.name}" (func ${self.qualname}']
        if self.params:
            parts.append(f" (param {' '.join(self.params)})")
        if self.results:
            parts.append(f" (result {' '.join(self.results)})")
        parts.append("))")
        return "".join(parts)

    def failure_value(self, code: Err) -> Any:
        """What the function returns to the guest when it fails with ``code``."""
        n = len(self.results)
        if n == 0:
            return None
        if not self.fallible:
            return 0 if n == 1 else tuple([0] * n)
        if n == 1:
            return int(code)
        return tuple([0] * (n - 1) + [int(code)])


@dataclass
class RunContext:
    """Per-run state that host functions see: memory access, arguments, results, budgets."""

    args: list[str]
    max_result_bytes: int
    max_debug_lines: int
    deadline: float
    cancel: threading.Event
    store: Any = None
    memory: Any = None
    top: int = 0
    results: list[str] = field(default_factory=list)
    answer: str | None = None
    debug: list[str] = field(default_factory=list)
    result_bytes: int = 0
    debug_dropped: int = 0
    states: dict[str, Any] = field(default_factory=dict)
    arrays: list[list[bytes]] = field(default_factory=list)
    max_arrays: int = 1024
    max_array_items: int = 100_000
    array_items: int = 0

    # ---- budgets -------------------------------------------------------------------
    def remaining(self) -> float:
        """Seconds left of the run's wall-clock budget (never negative)."""
        return max(0.0, self.deadline - time.monotonic())

    def state(self, namespace: str, factory: Callable[[], Any]) -> Any:
        """The per-run state object of one capability, created on first use."""
        st = self.states.get(namespace)
        if st is None:
            st = self.states[namespace] = factory()
        return st

    # ---- guest memory ----------------------------------------------------------------
    def _mem(self) -> Any:
        if self.memory is None:
            raise GuestError(Err.ETRFM, "guest memory is not available yet")
        return self.memory

    def buffer_len(self, ptr: int) -> int:
        """The length prefix of the ``[u32 length][bytes]`` buffer at ``ptr``, read without
        copying the bytes; ETRFM if the prefix or the bytes it claims lie outside memory.

        A host function with a size cap checks this number before it reads the buffer
        (SECURITY.md rule 16: refuse before you copy)."""
        mem = self._mem()
        p = ptr & U32
        size = mem.data_len(self.store)
        if p + 4 > size:
            raise GuestError(Err.ETRFM, f"pointer {p} is outside memory ({size} bytes)")
        n = int.from_bytes(bytes(mem.get_buffer_ptr(self.store, 4, p)), "little")
        if p + 4 + n > size:
            raise GuestError(Err.ETRFM, f"buffer at {p} claims {n} bytes, past the end of memory")
        return n

    def read_bytes(self, ptr: int, limit: int | None = None, what: str = "buffer") -> bytes:
        """The ``[u32 length][bytes]`` buffer at ``ptr``; ETRFM if it is out of bounds.

        ``limit``: a buffer longer than this many bytes is ENOMEM ("<what> of N bytes exceeds
        the L-byte limit"), refused from its length prefix before anything is copied."""
        n = self.buffer_len(ptr)
        if limit is not None and n > limit:
            raise GuestError(Err.ENOMEM, f"{what} of {n} bytes exceeds the {limit}-byte limit")
        if n == 0:
            return b""
        # one copy, straight from guest memory (Memory.read would add a bytearray)
        return bytes(self._mem().get_buffer_ptr(self.store, n, (ptr & U32) + 4))

    def read_str(self, ptr: int, limit: int | None = None, what: str = "string") -> str:
        """The buffer at ``ptr`` decoded as UTF-8 (invalid bytes become U+FFFD); ``limit``
        caps its size in bytes as in ``read_bytes``."""
        return self.read_bytes(ptr, limit, what).decode("utf-8", errors="replace")

    def alloc_bytes(self, data: bytes) -> int:
        """Copy ``data`` into guest memory as ``[u32 length][bytes]``; returns the pointer."""
        mem = self._mem()
        start = (self.top + 3) & ~3
        end = start + 4 + len(data)
        if end > U32:
            raise GuestError(Err.ENOMEM, "allocation past 4 GiB")
        size = mem.data_len(self.store)
        if end > size:
            pages = (end - size + PAGE - 1) // PAGE
            try:
                grown = mem.grow(self.store, pages)
            except Exception as exc:  # wasmtime refuses growth past the store limit
                raise GuestError(
                    Err.ENOMEM, f"memory limit reached allocating {len(data)} bytes"
                ) from exc
            if grown is None or grown < 0:
                raise GuestError(Err.ENOMEM, f"memory limit reached allocating {len(data)} bytes")
        # written in place: Memory.write would first copy the bytes into a bytearray
        data = data if isinstance(data, bytes) else bytes(data)
        dest = mem.get_buffer_ptr(self.store, 4 + len(data), start)
        dest[0:4] = len(data).to_bytes(4, "little")
        ctypes.memmove(ctypes.addressof(dest) + 4, data, len(data))
        self.top = end
        return start

    def alloc_str(self, text: str) -> int:
        return self.alloc_bytes(text.encode("utf-8"))

    # ---- arrays (shared by every capability: str.split, kv.keys, fs.list, arr.*) -------
    def new_array(self, items: list[bytes] | None = None) -> int:
        """Create a host-side array of byte strings; returns its handle (valid for this run)."""
        items = list(items or [])
        if len(self.arrays) >= self.max_arrays:
            raise GuestError(Err.ENOMEM, f"more than {self.max_arrays} arrays in one run")
        self.count_items(len(items))
        self.arrays.append(items)
        return len(self.arrays) - 1

    def array(self, handle: int) -> list[bytes]:
        """The array behind ``handle``; EBOUND for a handle this run never made."""
        h = handle & U32
        if h >= len(self.arrays):
            raise GuestError(Err.EBOUND, f"no array with handle {h}")
        return self.arrays[h]

    def count_items(self, n: int) -> None:
        """Charge ``n`` new array items against the run's quota (ENOMEM beyond it)."""
        if self.array_items + n > self.max_array_items:
            raise GuestError(Err.ENOMEM, f"more than {self.max_array_items} array items in one run")
        self.array_items += n

    # ---- output ------------------------------------------------------------------------
    def add_result(self, text: str) -> None:
        """Append one result; ENOMEM once the run's total result size would pass the cap."""
        size = len(text.encode("utf-8"))
        if self.result_bytes + size > self.max_result_bytes:
            raise GuestError(Err.ENOMEM, f"results exceed {self.max_result_bytes} bytes")
        self.result_bytes += size
        self.results.append(text)

    def log(self, line: str) -> None:
        """Append a debug line; lines past the cap are counted, not kept."""
        if len(self.debug) >= self.max_debug_lines:
            self.debug_dropped += 1
            return
        self.debug.append(line[:2000])
