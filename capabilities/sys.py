"""The core capability: program arguments and results. Always granted."""

from __future__ import annotations

from functools import partial

from capabilities.base import host
from rt.codes import Err
from rt.host import GuestError, HostFunction, RunContext


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
