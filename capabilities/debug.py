"""The ``debug`` capability: lines the model sees in the observation and the event stream.

Both functions are infallible (no error result): a bad pointer is logged as
``<bad pointer N>`` instead of failing, so a debugging call never changes a program's flow.
"""

from __future__ import annotations

from functools import partial

from capabilities.base import host
from rt.host import U32, GuestError, HostFunction, RunContext

MAX_LINE_BYTES = 64 * 1024  # a longer line is not read; ctx.log keeps the first characters anyway


class DebugCapability:
    """Host functions of the ``debug`` namespace."""

    namespace = "debug"
    pure = True  # no side effects: a run may be repeated
    summary = "debug lines shown with the result; never fail"

    def log(self, ctx: RunContext, ptr: int) -> None:
        try:
            n = ctx.buffer_len(ptr)
            line = (
                ctx.read_str(ptr)
                if n <= MAX_LINE_BYTES
                else f"<a {n}-byte line, over the {MAX_LINE_BYTES}-byte cap>"
            )
        except GuestError:
            line = f"<bad pointer {ptr & U32}>"
        ctx.log(line)

    def i32(self, ctx: RunContext, n: int) -> None:
        ctx.log(str(((n & U32) ^ 0x80000000) - 0x80000000))

    def functions(self) -> list[HostFunction]:
        fn = partial(host, self.namespace)
        return [
            fn("log", "s ->", self.log, "log the string as a debug line", fallible=False),
            fn("i32", "n ->", self.i32, "log the number as a debug line", fallible=False),
        ]  # fmt: skip
