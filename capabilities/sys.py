"""The core capability, program arguments and results (always granted), and ``debug``.

``debug``: lines the model sees in the observation and the event stream.

Neither function has an error result, so ``(call $debug.log x)`` needs no ``drop``. A bad
pointer or length (outside memory, or wrapped like 0xFFFFFFF0) is still refused: the run ends
with status ETRFM and says which call failed (``rt.engine`` does this for every host function
without an error result), and a line over ``MAX_LINE_BYTES`` is logged as a note, not read.
"""

from __future__ import annotations

from functools import partial

from capabilities.base import host
from rt.codes import Err
from rt.host import U32, GuestError, HostFunction, RunContext


def _argc(ctx: RunContext) -> int:
    return len(ctx.args)


def _argv(ctx: RunContext, idx: int) -> tuple[int, int]:
    i = idx & 0xFFFFFFFF
    if i >= len(ctx.args):
        raise GuestError(
            Err.EBOUND,
            f"argument {i} requested, {len(ctx.args)} given: put the value after the fence "
            'as ```, "value") or write it in the program as a "text" literal',
        )
    return ctx.alloc_str(ctx.args[i]), 0


def _resv(ctx: RunContext, ptr: int) -> int:
    ctx.add_result(ctx.read_str(ptr, ctx.max_result_bytes - ctx.result_bytes, "result"))
    return 0


def _answer(ctx: RunContext, ptr: int) -> int:
    text = ctx.read_str(ptr, ctx.max_result_bytes - ctx.result_bytes, "answer")
    ctx.add_result(text)
    ctx.answer = text
    return 0


class SysCapability:
    namespace = "sys"
    pure = True  # no side effects: a run may be repeated
    summary = "program arguments and results (always granted)"

    def functions(self) -> list[HostFunction]:
        fn = partial(host, self.namespace)
        return [
            fn("argc", "-> n", _argc, "number of arguments", fallible=False),
            fn("argv", "idx -> ptr err", _argv, "argument N as a string; EBOUND if absent"),
            fn("resv", "ptr -> err", _resv, "append a string to the results; ENOMEM past the cap"),
            fn("answer", "ptr -> err", _answer,
               "the string is the task's final answer (also a result); the (answer ...) macro returns after it"),
        ]  # fmt: skip


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
