"""The sandboxed runtime: one hardened Engine per process, a fresh Store per run.

``Runtime(functions).run(body, args)`` preprocesses a WAT-plus body, assembles the module,
compiles it through the content-hash cache, instantiates it under fuel, memory and
wall-clock limits on a worker thread, and returns a ``RunResult``. Failures are typed
``rt.errors.RunError``s whose ``partial`` holds what the run produced before it stopped.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import wasmtime

from rt.cache import LRU, CacheSource, ModuleCache, cache_key
from rt.codes import Err, status_name
from rt.errors import (
    CompileError,
    FuelExhausted,
    Interrupted,
    LinkError,
    MemoryExhausted,
    RunError,
    SourceTooLarge,
    Timeout,
    Trap,
)
from rt.host import GuestError, HostFunction, RunContext
from rt.limits import Limits
from rt.preprocess import module_imports, preprocess
from rt.template import MEMORY_EXPORT, SITE_EXPORT, Assembled, assemble, is_whole_module
from rt.worker import Worker

MAX_WASM_STACK = 512 * 1024
CORE = "sys"


@dataclass(frozen=True)
class Timings:
    preprocess_ms: float = 0.0
    compile_ms: float = 0.0
    instantiate_ms: float = 0.0
    run_ms: float = 0.0


@dataclass(frozen=True)
class RunResult:
    status: int
    results: list[str]
    debug: list[str]
    fuel_used: int
    timings: Timings
    module_hash: str
    cache: CacheSource
    answer: str | None = None  # set by (answer ...): the task's final answer, byte-exact
    failure: str = ""  # which checked call ended the run: "line 3: http.get failed: EREMOTE (...)"
    notes: tuple[str, ...] = ()  # what the preprocessor rewrote, one line each

    @property
    def ok(self) -> bool:
        return self.status == 0

    @property
    def status_name(self) -> str:
        return status_name(self.status)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status_name"] = self.status_name
        return data


@functools.lru_cache(maxsize=1)
def get_engine() -> wasmtime.Engine:
    """The process's one Engine (SECURITY.md rule 1), hardened and with unused proposals off."""
    return wasmtime.Engine(_config())


def _config() -> wasmtime.Config:
    cfg = wasmtime.Config()
    cfg.consume_fuel = True
    cfg.epoch_interruption = True
    cfg.max_wasm_stack = MAX_WASM_STACK
    cfg.wasm_relaxed_simd = False
    cfg.wasm_simd = False
    cfg.wasm_threads = False
    cfg.shared_memory = False
    cfg.wasm_memory64 = False
    cfg.wasm_multi_memory = False
    cfg.wasm_exceptions = False
    cfg.wasm_gc = False
    cfg.wasm_function_references = False
    cfg.wasm_component_model = False
    cfg.wasm_tail_call = False
    cfg.wasm_stack_switching = False
    cfg.wasm_wide_arithmetic = False
    cfg.wasm_custom_page_sizes = False
    return cfg


@functools.lru_cache(maxsize=1)
def engine_fingerprint() -> str:
    """Identifies the compiler: the native wasmtime library (name, size, mtime) and our Config.

    Cheap on purpose (no package-metadata scan): it is computed in every new process.
    """
    native = Path(wasmtime.__file__).parent
    libs = sorted(p for p in native.rglob("*") if p.suffix in (".so", ".dylib", ".dll"))
    ident = ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in libs)
    return f"wasmtime[{ident}];stack={MAX_WASM_STACK};fuel;epoch;mvp+bulk+multivalue+reftypes"


@dataclass
class Prepared:
    """A program ready to instantiate: the assembled module and its pre-linked instance."""

    assembled: Assembled
    key: str
    pre: wasmtime.InstancePre
    cache: CacheSource
    preprocess_ms: float
    compile_ms: float
    line_offset: int = 0


class _Fault(Exception):
    """Raised through wasm by a host function without an error result: ``(code, qual, detail)``."""


_WASMTIME_POS = re.compile(r"--> <anon>:(\d+):(\d+)")


@dataclass
class _Outcome:
    status: int | None = None
    error: BaseException | None = None
    instantiate_ms: float = 0.0
    run_ms: float = 0.0
    fuel_used: int = 0
    stop_reason: str = ""  # "timeout" or "interrupt" when the epoch was bumped on purpose
    extra: dict[str, Any] = field(default_factory=dict)


class Runtime:
    """Runs WAT-plus programs with a fixed set of host functions (a caller-built registry)."""

    def __init__(
        self,
        functions: Sequence[HostFunction],
        *,
        limits: Limits | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.engine = get_engine()
        self._fingerprint = engine_fingerprint()
        self.limits = (limits or Limits()).validated()
        self.functions = {f.qualname: f for f in functions}
        self.namespaces: dict[str, list[HostFunction]] = {}
        for f in functions:
            self.namespaces.setdefault(f.namespace, []).append(f)
        self.modules = ModuleCache(self.engine, cache_dir)
        self._prepared: LRU[Prepared] = LRU(256)
        self._linker = wasmtime.Linker(self.engine)
        self._ctx: RunContext | None = None
        self._outcome: _Outcome | None = None
        self._worker = Worker()
        for f in functions:
            self._linker.define_func(f.namespace, f.name, _functype(f), self._callback(f))

    # ---- host calls ------------------------------------------------------------------------
    def _callback(self, f: HostFunction) -> Any:
        impl, fail, qual = f.impl, f.failure_value, f.qualname
        # A function with no error result cannot answer a bad pointer with a code: the run
        # ends with the code as its status instead (a bad pointer never passes for success).
        silent = not f.fallible or not f.results

        def call(*args: int) -> Any:
            ctx = self._ctx
            try:
                return impl(ctx, *args)
            except GuestError as exc:
                if exc.detail and ctx is not None:
                    ctx.log(f"{qual}: {exc.code.name}: {exc.detail}")
                if silent:
                    raise _Fault(exc.code, qual, exc.detail) from None
                return fail(exc.code)
            except Exception as exc:  # a host bug must not crash the process or the run
                if ctx is not None:
                    ctx.log(f"{qual}: internal error: {type(exc).__name__}: {exc}")
                if silent:
                    raise _Fault(Err.ETRFM, qual, "internal error") from None
                return fail(Err.ETRFM)

        return call

    # ---- preparing ---------------------------------------------------------------------------
    def granted_namespaces(self, granted: Collection[str] | None) -> list[str]:
        if granted is None:
            names = list(self.namespaces)
        else:
            names = [n for n in self.namespaces if n in granted or n == CORE]
        names.sort(key=lambda n: (n != CORE, list(self.namespaces).index(n)))
        return names

    def prepare(
        self, source: str, granted: Collection[str] | None = None, *, line_offset: int = 0
    ) -> Prepared:
        """Preprocess, assemble and compile (through the caches) without running."""
        # Refuse before copying (SECURITY.md rule 16): a character is 1 to 4 UTF-8 bytes, so
        # only a source of at most `limit` characters is encoded to measure it (<= 4 * limit).
        limit = self.limits.max_source_bytes
        if len(source) > limit:
            raise SourceTooLarge(
                f"program is at least {len(source)} bytes; the limit is {limit} bytes"
            )
        if len(source) * 4 > limit:
            size = len(source.encode("utf-8", errors="replace"))
            if size > limit:
                raise SourceTooLarge(f"program is {size} bytes; the limit is {limit} bytes")
        grant_list = self.granted_namespaces(granted)
        memo_key = (source, tuple(grant_list), line_offset)
        hit = self._prepared.get(memo_key)
        if hit is not None:
            return hit
        t0 = time.perf_counter()
        assembled = self._assemble(source, grant_list, line_offset)
        t1 = time.perf_counter()
        key = cache_key(self._fingerprint, assembled.wat)
        module, where = self.modules.get_or_compile(
            key, lambda: self._compile(assembled, source, line_offset)
        )
        try:
            pre = self._linker.instantiate_pre(module)
        except wasmtime.WasmtimeError as exc:
            raise LinkError(_first_line(str(exc))) from exc
        t2 = time.perf_counter()
        prepared = Prepared(
            assembled, key, pre, where, (t1 - t0) * 1000, (t2 - t1) * 1000, line_offset
        )
        self._prepared.put(
            memo_key, replace(prepared, cache=CacheSource.MEMORY, preprocess_ms=0.0, compile_ms=0.0)
        )
        return prepared

    def _assemble(self, source: str, grants: list[str], line_offset: int) -> Assembled:
        if is_whole_module(source):
            self._check_module_imports(source, grants)
            return Assembled(source, 1, 0, whole_module=True)
        try:
            pre = preprocess(source, self.functions)
        except CompileError as exc:
            raise _shift(exc, line_offset) from None
        for qual, pos in pre.calls:
            self._check_import(qual, grants, source, pos, line_offset)
        imports = [f for ns in grants for f in self.namespaces[ns]]
        return assemble(pre, imports)

    def _check_import(
        self, qual: str, grants: list[str], source: str, pos: int, line_offset: int
    ) -> None:
        ns, _, name = qual.partition(".")
        if qual in self.functions and ns in grants:
            return
        line = source.count("\n", 0, pos) + 1 + line_offset
        if ns in self.namespaces and ns not in grants:
            raise LinkError(
                f"line {line}: ${qual} needs capability {ns!r}, which was not granted; granted: {', '.join(grants)}"
            )
        if ns in self.namespaces:
            offered = ", ".join(f.name for f in self.namespaces[ns])
            raise LinkError(f"line {line}: unknown import ${qual}; {ns} offers: {offered}")
        raise LinkError(
            f"line {line}: unknown import ${qual}; capabilities granted: {', '.join(grants)}"
        )

    def _check_module_imports(self, source: str, grants: list[str]) -> None:
        for ns, name, pos in module_imports(source):
            qual = f"{ns}.{name}"
            if qual not in self.functions or ns not in grants:
                self._check_import(qual, grants, source, pos, 0)

    def _compile(self, assembled: Assembled, source: str, line_offset: int) -> wasmtime.Module:
        try:
            return wasmtime.Module(self.engine, assembled.wat)
        except wasmtime.WasmtimeError as exc:
            raise _compile_error(str(exc), assembled, source, line_offset) from exc

    # ---- running -----------------------------------------------------------------------------
    def run(
        self,
        source: str,
        args: Sequence[str] = (),
        *,
        granted: Collection[str] | None = None,
        limits: Limits | None = None,
        cancel: threading.Event | None = None,
        line_offset: int = 0,
    ) -> RunResult:
        """Run a WAT-plus body (or a whole module) and return its result.

        Raises CompileError/LinkError before anything runs, and Trap, FuelExhausted, Timeout,
        Interrupted or MemoryExhausted (each with ``partial``) when the run stops early.

        ``cancel`` is the caller's stop event (the task's): setting it interrupts the run. The
        run's own deadline and Ctrl-C set only the run's event (``RunContext.cancel``, which
        host calls in flight watch), so a timed-out run leaves the caller's event clear.
        """
        lim = (limits or self.limits).validated()
        prepared = self.prepare(source, granted, line_offset=line_offset)
        # The run's own stop event: its deadline and Ctrl-C set it (host calls in flight watch
        # it), never the caller's ``cancel``, which stays the task's: a run that timed out
        # must not make the next model call report an interruption.
        ctx = RunContext(
            args=[str(a) for a in args],
            max_result_bytes=lim.max_result_bytes,
            max_debug_lines=lim.max_debug_lines,
            deadline=time.monotonic() + lim.timeout_s,
            cancel=threading.Event(),
        )
        outcome = _Outcome()
        fault = ""
        with self._worker.exclusive():
            self._ctx, self._outcome = ctx, outcome
            try:
                ctrl_c = self._worker.call(
                    lambda: self._execute(prepared, ctx, lim, outcome),
                    deadline=ctx.deadline,
                    on_stop=self._stop,
                    cancel=cancel or ctx.cancel,
                )
            finally:
                self._ctx = self._outcome = None
        if isinstance(outcome.error, _Fault):
            code, qual, detail = outcome.error.args
            outcome.error, outcome.status = None, int(code)
            fault = f"{qual} failed: {code.name}" + (f" ({detail})" if detail else "")
        result = RunResult(
            status=outcome.status if outcome.status is not None else -1,
            results=ctx.results,
            debug=ctx.debug
            + ([f"({ctx.debug_dropped} more debug lines dropped)"] if ctx.debug_dropped else []),
            fuel_used=outcome.fuel_used,
            timings=Timings(
                prepared.preprocess_ms, prepared.compile_ms, outcome.instantiate_ms, outcome.run_ms
            ),
            module_hash=prepared.key,
            cache=prepared.cache,
            answer=ctx.answer,
            failure=fault or _failure(prepared, outcome, ctx),
            notes=tuple(_shift_note(n, line_offset) for n in prepared.assembled.notes),
        )
        if outcome.error is None and (ctrl_c or outcome.stop_reason == "interrupt"):
            outcome.error = Interrupted("interrupted by the user")
        elif outcome.error is None and outcome.stop_reason == "timeout":
            # the deadline passed while a host call was in flight: the call gave up and the
            # program returned before reaching an epoch check; it still did not finish in time
            outcome.error = Timeout(f"timed out after {lim.timeout_s:g} s of wall-clock time")
        if outcome.error is not None:
            err = _runtime_error(outcome.error, outcome.stop_reason, lim)
            err.partial = result
            raise err from outcome.error
        return result

    def _stop(self, reason: str) -> None:
        """Stop the running program through the epoch (called from the waiting thread)."""
        outcome = self._outcome
        if outcome is not None and not outcome.stop_reason:
            outcome.stop_reason = reason
        if self._ctx is not None:
            self._ctx.cancel.set()
        self.engine.increment_epoch()

    def interrupt(self) -> None:
        """Stop the current run, if any, as if the user pressed Ctrl-C (thread-safe)."""
        self._stop("interrupt")

    def close(self) -> None:
        """End the runtime's wasm thread; the runtime is not run again (a child agent's)."""
        self._worker.close()

    def _execute(self, prepared: Prepared, ctx: RunContext, lim: Limits, out: _Outcome) -> None:
        store = wasmtime.Store(self.engine)
        store.set_limits(
            memory_size=lim.memory_bytes,
            table_elements=lim.table_elements,
            instances=1,
            tables=1,
            memories=1,
        )
        store.set_fuel(lim.fuel)
        store.set_epoch_deadline(1)
        ctx.store = store
        t0 = t1 = time.perf_counter()
        try:
            instance = prepared.pre.instantiate(store)
            t1 = time.perf_counter()
            out.instantiate_ms = (t1 - t0) * 1000
            exports = instance.exports(store)
            ctx.memory = _find_memory(exports)
            if prepared.assembled.whole_module:
                ctx.top = ctx.memory.data_len(store) if ctx.memory is not None else 0
            else:
                ctx.top = prepared.assembled.initial_top
            run = exports.get("run")
            if not isinstance(run, wasmtime.Func):
                raise LinkError('the module must export a function "run" returning i32')
            status = run(store)
            if not isinstance(status, int):
                raise LinkError('"run" must return exactly one i32')
            out.status = status
            site = exports.get(SITE_EXPORT) if status else None
            if isinstance(site, wasmtime.Global):
                out.extra["site"] = site.value(store)
        except BaseException as exc:
            out.error = exc
        finally:
            if out.instantiate_ms:
                out.run_ms = (time.perf_counter() - t1) * 1000
            try:
                out.fuel_used = lim.fuel - store.get_fuel()
            except wasmtime.WasmtimeError:
                out.fuel_used = lim.fuel


def _failure(prepared: Prepared, out: _Outcome, ctx: RunContext) -> str:
    """ "line 3: http.get failed: EREMOTE (HTTP 404)" when a checked call ended the run."""
    site = out.extra.get("site", 0)
    sites = prepared.assembled.sites
    if not isinstance(site, int) or not 0 < site <= len(sites) or out.status is None:
        return ""
    line, qual = sites[site - 1]
    name = status_name(out.status)
    detail = next(
        (d.split(": ", 2)[2] for d in reversed(ctx.debug) if d.startswith(f"{qual}: {name}: ")), ""
    )
    text = f"line {line + prepared.line_offset}: {qual} failed: {name}"
    return text + (f" ({detail})" if detail else "")


def _shift_note(note: str, line_offset: int) -> str:
    if not line_offset:
        return note
    head, _, rest = note.partition(":")
    return f"line {int(head.removeprefix('line ')) + line_offset}:{rest}"


def _functype(f: HostFunction) -> wasmtime.FuncType:
    types = {"i32": wasmtime.ValType.i32(), "i64": wasmtime.ValType.i64()}
    return wasmtime.FuncType([types[p] for p in f.params], [types[r] for r in f.results])


def _find_memory(exports: Any) -> Any:
    mem = exports.get(MEMORY_EXPORT)
    if isinstance(mem, wasmtime.Memory):
        return mem
    for value in exports.values():
        if isinstance(value, wasmtime.Memory):
            return value
    return None


_CAUSE_LINE = re.compile(r"\d+: ")
_BINARY_OFFSET = re.compile(r"^Invalid input WebAssembly code at offset \d+: ")


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return "unknown error"
    # wasmtime's "Caused by" chain is numbered "0: ...", "1: ..."; its source echo is "46 | ...".
    caused = [ln for ln in lines if _CAUSE_LINE.match(ln) or ln.startswith("wasm trap:")]
    message = caused[-1].split(": ", 1)[1] if caused else lines[0]
    # Offsets point into the assembled binary, which the author never sees.
    return _BINARY_OFFSET.sub("", message)


def _shift(exc: CompileError, line_offset: int) -> CompileError:
    if not line_offset or exc.line is None:
        return exc
    return type(exc)(exc.message, exc.line + line_offset, exc.column, exc.source_line)


def _compile_error(text: str, assembled: Assembled, source: str, line_offset: int) -> CompileError:
    message = _first_line(text)
    m = _WASMTIME_POS.search(text)
    if m is None:
        return CompileError(message)
    line, col = int(m.group(1)), int(m.group(2))
    if assembled.whole_module:
        src_lines = source.splitlines()
        shown = src_lines[line - 1] if 0 < line <= len(src_lines) else None
        return CompileError(message, line + line_offset, col, shown)
    user_line = line - assembled.body_line + 1
    src_lines = source.splitlines()
    if 1 <= user_line <= len(src_lines):
        asm_lines = assembled.wat.splitlines()
        same = asm_lines[line - 1] == src_lines[user_line - 1]
        return CompileError(
            message, user_line + line_offset, col if same else None, src_lines[user_line - 1]
        )
    if user_line < 1:
        return CompileError(f"{message} (in the declared locals)")
    return CompileError(
        f"{message} (at the end of the body: check the parentheses and the final i32 status)"
    )


def _runtime_error(exc: BaseException, reason: str, lim: Limits) -> RunError:
    if isinstance(exc, RunError):
        return exc
    if isinstance(exc, wasmtime.Trap):
        code = exc.trap_code
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            return FuelExhausted(
                f"fuel exhausted: the program used all {lim.fuel} units (an endless loop?)"
            )
        if code == wasmtime.TrapCode.INTERRUPT:
            if reason == "interrupt":
                return Interrupted("interrupted by the user")
            return Timeout(f"timed out after {lim.timeout_s:g} s of wall-clock time")
        if code == wasmtime.TrapCode.STACK_OVERFLOW:
            return Trap("stack overflow: recursion too deep")
        return Trap(f"trap: {_first_line(str(exc))}")
    if isinstance(exc, wasmtime.WasmtimeError):
        text = str(exc)
        if re.search(r"memory|limit|resource", text, re.I) and re.search(
            r"exceed|limit|minimum", text, re.I
        ):
            return MemoryExhausted(
                f"memory limit of {lim.memory_bytes} bytes reached: {_first_line(text)}"
            )
        return LinkError(_first_line(text))
    return Trap(f"host failure: {type(exc).__name__}: {exc}")
