"""The ``debug`` capability: lines the model sees in the observation and the event stream.

Neither function has an error result, so ``(call $debug.log x)`` needs no ``drop``. A bad
pointer or length (outside memory, or wrapped like 0xFFFFFFF0) is still refused: the run ends
with status ETRFM and says which call failed (``rt.engine`` does this for every host function
without an error result), and a line over ``MAX_LINE_BYTES`` is logged as a note, not read.
"""

from __future__ import annotations

from functools import partial

from capabilities.base import host
from rt.host import U32, HostFunction, RunContext

MAX_LINE_BYTES = 64 * 1024  # a longer line is not read; ctx.log keeps the first characters anyway


class DebugCapability:
    """Host functions of the ``debug`` namespace."""

    namespace = "debug"
    pure = True  # no side effects: a run may be repeated
    summary = "debug lines shown with the result; a bad pointer ends the run (ETRFM)"

    def log(self, ctx: RunContext, ptr: int) -> None:
        n = ctx.buffer_len(ptr)  # ETRFM for a pointer or length outside memory
        line = (
            ctx.read_str(ptr)
            if n <= MAX_LINE_BYTES
            else f"<a {n}-byte line, over the {MAX_LINE_BYTES}-byte cap>"
        )
        ctx.log(line)

    def i32(self, ctx: RunContext, n: int) -> None:
        ctx.log(str(((n & U32) ^ 0x80000000) - 0x80000000))

    def functions(self) -> list[HostFunction]:
        fn = partial(host, self.namespace)
        return [
            fn("log", "s ->", self.log, "log the string as a debug line", fallible=False),
            fn("i32", "n ->", self.i32, "log the number as a debug line", fallible=False),
        ]  # fmt: skip
