"""The core capability: program arguments and results. Always granted."""

from __future__ import annotations

from capabilities.base import with_names
from rt.codes import Err
from rt.host import GuestError, HostFunction, RunContext


def _argc(ctx: RunContext) -> int:
    return len(ctx.args)


def _argv(ctx: RunContext, idx: int) -> tuple[int, int]:
    i = idx & 0xFFFFFFFF
    if i >= len(ctx.args):
        raise GuestError(Err.EBOUND, f"argument {i} requested, {len(ctx.args)} given")
    return ctx.alloc_str(ctx.args[i]), 0


def _resv(ctx: RunContext, ptr: int) -> int:
    ctx.add_result(ctx.read_str(ptr, ctx.max_result_bytes - ctx.result_bytes, "result"))
    return 0


def _answer(ctx: RunContext, ptr: int) -> int:
    text = ctx.read_str(ptr, ctx.max_result_bytes - ctx.result_bytes, "answer")
    ctx.add_result(text)
    ctx.answer = text
    return 0


SHAPES = {
    "argc": "-> n",
    "argv": "idx -> ptr err",
    "resv": "ptr -> err",
    "answer": "ptr -> err",
}


class SysCapability:
    namespace = "sys"
    pure = True  # no side effects: a run may be repeated
    summary = "program arguments and results (always granted)"

    def functions(self) -> list[HostFunction]:
        return with_names(self._functions(), SHAPES)

    def _functions(self) -> list[HostFunction]:
        return [
            HostFunction("sys", "argc", (), ("i32",), _argc, "number of arguments", fallible=False),
            HostFunction("sys", "argv", ("i32",), ("i32", "i32"), _argv, "argument N as a string; EBOUND if absent"),
            HostFunction("sys", "resv", ("i32",), ("i32",), _resv, "append a string to the results; ENOMEM past the cap"),
            HostFunction(
                "sys", "answer", ("i32",), ("i32",), _answer,
                "the string is the task's final answer (also a result); the (answer ...) macro returns after it",
            ),  # fmt: skip
        ]
