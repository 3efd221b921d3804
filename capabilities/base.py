"""What every capability provides, and the registry the caller builds.

A capability is an object with a ``namespace`` (the import module name the WAT sees), a
one-line ``summary``, ``pure`` (true when its functions have no effect outside the run, so
a program using only pure capabilities may be run again: ``/save`` records its results),
and ``functions()``: the ``rt.host.HostFunction``s it offers, each declared with ``host``. The
object itself holds per-session state and quotas (it is built once per session by the
caller); per-run state lives in ``RunContext.state(namespace, factory)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

from rt.errors import CapabilityError
from rt.host import HostFunction, HostImpl


@runtime_checkable
class Capability(Protocol):
    namespace: str
    summary: str
    pure: bool

    def functions(self) -> list[HostFunction]: ...


def host(
    namespace: str, name: str, shape: str, impl: HostImpl, doc: str, *, fallible: bool = True
) -> HostFunction:
    """One host function, declared by its shape: ``"s start end -> ptr err"`` names the
    parameters and results the prompt shows, and each is an i32 (every capability declares
    its functions this way: ``fn = partial(host, self.namespace)``, then one line each)."""
    params, _, results = shape.partition("->")
    p, r = tuple(params.split()), tuple(results.split())
    return HostFunction(
        namespace, name, ("i32",) * len(p), ("i32",) * len(r), impl, doc, fallible, p, r
    )


def describe(cap: Capability) -> str:
    """The prompt text of one capability: a summary line, then one line per function."""
    lines = [f"{cap.namespace}: {cap.summary}"]
    for f in cap.functions():
        lines.append(f"  {f.signature()}: {f.doc}")
    return "\n".join(lines)


class Registry:
    """An explicit, caller-built set of capabilities (no module-level singletons)."""

    def __init__(self, caps: Iterable[Capability] = ()) -> None:
        self._caps: dict[str, Capability] = {}
        for cap in caps:
            self.register(cap)

    def register(self, cap: Capability) -> None:
        if cap.namespace in self._caps:
            raise CapabilityError(f"capability {cap.namespace!r} is registered twice")
        self._caps[cap.namespace] = cap

    def __contains__(self, namespace: object) -> bool:
        return namespace in self._caps

    def __iter__(self) -> Iterator[Capability]:
        return iter(self._caps.values())

    def get(self, namespace: str) -> Capability:
        try:
            return self._caps[namespace]
        except KeyError:
            raise CapabilityError(
                f"unknown capability {namespace!r}; known: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return list(self._caps)

    def pure_names(self) -> frozenset[str]:
        """The namespaces whose functions have no effect outside a run."""
        return frozenset(ns for ns, cap in self._caps.items() if cap.pure)

    def functions(self) -> list[HostFunction]:
        return [f for cap in self._caps.values() for f in cap.functions()]

    def describe(self) -> str:
        return "\n".join(describe(cap) for cap in self._caps.values())
