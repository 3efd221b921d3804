"""Run a catalog program's ``[[examples]]`` offline: canned http and ai, a temporary fs jail."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from agent.programs.catalog import Example, Program, apply_defaults
from capabilities import standard_registry
from capabilities.kv import MemoryKv
from rt.codes import status_text
from rt.engine import Runtime
from rt.errors import ModelAPIError, WattError
from rt.limits import Limits


@dataclass(frozen=True)
class ExampleOutcome:
    program: str
    index: int
    location: str  # file:line of the example
    ok: bool
    message: str


class _Body(httpx.SyncByteStream):
    """A response body delivered as a stream, as a real server's would be."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self):  # type: ignore[no-untyped-def]
        yield self.data


def _transport(canned: Mapping[str, object]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        reply = canned.get(str(request.url))
        if reply is None:
            return httpx.Response(
                404, stream=_Body(f"no canned response for {request.url}".encode())
            )
        body = str(getattr(reply, "body", "")).encode("utf-8")
        return httpx.Response(getattr(reply, "status", 200), stream=_Body(body))

    return httpx.MockTransport(handle)


def _hosts(urls: Mapping[str, object]) -> list[str]:
    hosts = []
    for url in urls:
        parts = urlsplit(url)
        if parts.hostname:
            hosts.append(parts.hostname + (f":{parts.port}" if parts.port else ""))
    return hosts


class _CannedAssistant:
    def __init__(self, answers: Mapping[str, str]) -> None:
        self.answers = answers

    def __call__(
        self,
        instruction: str,
        text: str,
        *,
        single_line: bool,
        cancel: threading.Event | None = None,
    ) -> str:
        if instruction not in self.answers:
            raise ModelAPIError(f"no canned ai answer for instruction {instruction!r}")
        return self.answers[instruction]


def _read_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): p.read_text(encoding="utf-8", errors="replace")
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def run_example(
    program: Program,
    index: int,
    example: Example,
    *,
    limits: Limits | None = None,
    cache_dir: Path | None = None,
) -> ExampleOutcome:
    where = f"{program.path}:{example.line}"

    def outcome(ok: bool, message: str) -> ExampleOutcome:
        return ExampleOutcome(program.name, index, where, ok, message)

    with tempfile.TemporaryDirectory(prefix="watt-example-") as tmp:
        root = Path(tmp)
        for name, content in example.files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        kv = MemoryKv()
        for key, value in example.kv.items():
            kv.set(key, value)
        registry = standard_registry(
            kv=kv,
            fs_root=root,
            allow_domains=_hosts(example.http),
            assistant=_CannedAssistant(example.ai),
            http_transport=_transport(example.http),
        )
        runtime = Runtime(registry.functions(), limits=limits, cache_dir=cache_dir)
        try:
            args = apply_defaults(program, example.args)
            result = runtime.run(program.body, args, line_offset=program.body_line - 1)
        except WattError as exc:
            return outcome(False, f"{type(exc).__name__}: {exc.one_line()}")
        expected_status = example.status if example.status is not None else 0
        if result.status != expected_status:
            detail = "; ".join(result.debug[-3:])
            return outcome(
                False,
                f"{status_text(result.status)}, expected {expected_status}"
                + (f" ({detail})" if detail else ""),
            )
        if example.results is not None and tuple(result.results) != tuple(example.results):
            return outcome(
                False, f"results {list(result.results)!r}, expected {list(example.results)!r}"
            )
        if example.fs_after is not None:
            tree = _read_tree(root)
            for name, content in example.fs_after.items():
                if tree.get(name) != content:
                    return outcome(
                        False, f"file {name!r} holds {tree.get(name)!r}, expected {content!r}"
                    )
        if example.kv_after is not None:
            for key, value in example.kv_after.items():
                if kv.get(key) != value:
                    return outcome(False, f"kv {key!r} holds {kv.get(key)!r}, expected {value!r}")
        return outcome(True, f"ok ({result.fuel_used} fuel)")


def run_examples(
    program: Program, *, limits: Limits | None = None, cache_dir: Path | None = None
) -> list[ExampleOutcome]:
    if not program.examples:
        return [
            ExampleOutcome(
                program.name, 0, f"{program.path}:1", False, "no [[examples]]: add at least one"
            )
        ]
    return [
        run_example(program, i, ex, limits=limits, cache_dir=cache_dir)
        for i, ex in enumerate(program.examples)
    ]
