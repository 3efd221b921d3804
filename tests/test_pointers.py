"""Every host function checks every pointer and length (SECURITY.md rule 6, DESIGN.md "Wire
format and memory"): a table test over every registered import, each called from WAT with bad
pointers and bad length prefixes. A function with an error result answers ETRFM or EBOUND;
one without (``debug.log``) ends the run with status ETRFM. None succeeds on a bad one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from capabilities import standard_registry
from capabilities.kv import MemoryKv
from rt.codes import Err
from rt.engine import Runtime
from rt.host import HostFunction

# Parameters that are not pointers: what a bad value of each must give (or None: any value is
# meaningful, like the number str.from_i32 formats).
NOT_POINTERS: dict[str, frozenset[Err] | None] = {
    "idx": frozenset({Err.EBOUND}),
    "start": frozenset({Err.EBOUND}),
    "end": frozenset({Err.EBOUND}),
    "max_bytes": frozenset({Err.EBOUND}),
    "flags": frozenset({Err.EBOUND}),
    "arr": frozenset({Err.EBOUND}),
}
NUMBERS = {("str.from_i32", "n"), ("debug.i32", "n")}  # plain i32 values, never pointers
REFUSED = frozenset({Err.ETRFM, Err.EBOUND})

# How a bad pointer is made inside the run (memory is 1 page or more; its end moves as the
# host allocates, so each is computed from memory.size at the call).
END = "(i32.mul (memory.size) (i32.const 65536))"
LAST8 = f"(i32.sub {END} (i32.const 8))"
BAD_POINTERS = {  # label: (a statement run first, the operand)
    "wrapped 0xFFFFFFF0": ("", "(i32.const -16)"),
    "0x80000000": ("", "(i32.const -2147483648)"),
    "far past the end": ("", "(i32.const 0x7FFFFFF0)"),
    "at the end of memory": ("", END),
    "prefix crossing the end": ("", f"(i32.sub {END} (i32.const 2))"),
    # a length prefix 8 bytes before the end that claims more than is left
    "length past the end": (f"(i32.store {LAST8} (i32.const 100))", LAST8),
    "length wrapped": (f"(i32.store {LAST8} (i32.const -16))", LAST8),
}
BAD_NUMBERS = {
    "wrapped 0xFFFFFFF0": ("", "(i32.const -16)"),
    "0x7FFFFFFF": ("", "(i32.const 0x7FFFFFFF)"),
}


def _assistant(
    instruction: str, text: str, *, single_line: bool, cancel: threading.Event | None = None
) -> str:
    return "assisted"


def _child(task: str, grants: list[str], *, cancel: threading.Event, seconds: float) -> str:
    return "child answer"


def _runtime(root: Path) -> Runtime:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, stream=httpx.ByteStream(b"page"))
    )
    registry = standard_registry(
        kv=MemoryKv(),
        fs_root=root,
        allow_domains=["example.com"],
        assistant=_assistant,
        http_transport=transport,
        agent_runner=_child,
    )
    return Runtime(registry.functions())


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    yield _runtime(tmp_path_factory.mktemp("jail"))


FUNCTIONS = standard_registry(assistant=_assistant).functions()


def _good(f: HostFunction, name: str) -> str:
    """A valid operand for parameter ``name`` of ``f``."""
    if (f.qualname, name) in NUMBERS or name in ("idx", "start", "end", "flags"):
        return "(i32.const 0)"
    if name == "max_bytes":
        return "(i32.const 10)"
    if name == "arr":
        return "(local.get $arr)"
    return {"url": '"https://example.com/"', "doc": '"{\\"a\\": 1}"', "path": '"a"'}.get(
        name, '"1"'
    )


def _program(f: HostFunction, operands: list[str], setup: str) -> str:
    """Make an array (handle in $arr), run ``setup``, call ``f`` and return its error (or 0)."""
    call = f"(call ${f.qualname} {' '.join(operands)})"
    n = len(f.results)
    if f.fallible and n == 2:
        tail = f"{call} (local.set $e) (drop) (local.get $e)"
    elif f.fallible and n == 1:
        tail = call
    else:
        tail = f"{call} {'(drop) ' * n}(i32.const 0)"
    return (
        "(local $arr i32) (local $e i32)\n"
        "(call $arr.new) (local.set $e) (local.set $arr)\n"
        '(call $arr.push (local.get $arr) "x") (drop)\n'
        f"{setup}\n{tail}\n"
    )


CASES = [
    (f, i, label, expr)
    for f in FUNCTIONS
    for i, name in enumerate(f.param_names)
    if (f.qualname, name) not in NUMBERS and name not in NOT_POINTERS
    for label, expr in BAD_POINTERS.items()
]
NUMBER_CASES = [
    (f, i, label, expr)
    for f in FUNCTIONS
    for i, name in enumerate(f.param_names)
    if name in NOT_POINTERS
    for label, expr in BAD_NUMBERS.items()
]


Case = tuple[HostFunction, int, str, tuple[str, str]]


def _id(case: Case) -> str:
    f, i, label, _ = case
    return f"{f.qualname}:{f.param_names[i]}:{label}"


def _run(
    runtime: Runtime, f: HostFunction, index: int, bad: tuple[str, str]
) -> tuple[int, list[str]]:
    setup, operand = bad
    operands = [_good(f, name) for name in f.param_names]
    operands[index] = operand
    result = runtime.run(_program(f, operands, setup), ["arg"])
    return result.status, result.debug


def test_every_registered_function_is_in_the_table() -> None:
    covered = {c[0].qualname for c in CASES + NUMBER_CASES}
    no_operands = {f.qualname for f in FUNCTIONS if not f.param_names}
    plain = {q for q, _ in NUMBERS}
    assert covered | no_operands | plain == {f.qualname for f in FUNCTIONS}
    assert len(CASES) >= 7 * 60


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_a_bad_pointer_is_refused(runtime: Runtime, case: Case) -> None:
    f, index, label, expr = case
    status, debug = _run(runtime, f, index, expr)
    assert status in REFUSED, (f.qualname, label, status, debug)


@pytest.mark.parametrize("case", NUMBER_CASES, ids=_id)
def test_a_bad_index_handle_or_flag_is_refused(runtime: Runtime, case: Case) -> None:
    f, index, label, expr = case
    expected = NOT_POINTERS[f.param_names[index]]
    status, debug = _run(runtime, f, index, expr)
    if f.qualname == "str.slice" and f.param_names[index] == "end" and label == "0x7FFFFFFF":
        assert status == 0  # an end past the string is clamped to it, like Python's slices
        return
    if f.qualname == "str.chunk" and label == "0x7FFFFFFF":
        assert status == 0  # a piece size larger than the string is one piece
        return
    assert expected is not None and status in expected, (f.qualname, label, status, debug)


def test_the_good_operands_succeed(runtime: Runtime) -> None:
    """The table's valid operands are valid, so each refusal above is the bad operand's."""
    failed = {}
    for f in FUNCTIONS:
        operands = [_good(f, name) for name in f.param_names]
        status = runtime.run(_program(f, operands, ""), ["arg"]).status
        if status != 0:
            failed[f.qualname] = status
    # reading a file, a directory or a key that does not exist
    assert failed == {"fs.read": Err.ENOENT, "fs.list": Err.ENOENT, "kv.get": Err.ENOENT}, failed


def test_debug_log_with_a_bad_pointer_ends_the_run_with_etrfm(runtime: Runtime) -> None:
    result = runtime.run('(call $debug.log (i32.const -16)) (resv "after") (i32.const 0)')
    assert result.status == Err.ETRFM and result.results == []
    assert result.failure.startswith("debug.log failed: ETRFM"), result.failure
    ok = runtime.run('(call $debug.log "fine") (i32.const 0)')
    assert ok.status == 0 and ok.debug == ["fine"]
