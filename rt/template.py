"""Assemble a complete module from a preprocessed body (DESIGN.md "Template")."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rt.host import PAGE, HostFunction
from rt.preprocess import DATA_BASE, SITE_GLOBAL, Preprocessed

MEMORY_EXPORT = "mem.tape"
SITE_EXPORT = "watt.site"  # the failed call's site, read back when a run returns an error


@dataclass(frozen=True)
class Assembled:
    wat: str
    body_line: int  # line of the assembled text where the user's body line 1 sits
    initial_top: int
    whole_module: bool = False
    sites: tuple[tuple[int, str], ...] = ()
    notes: tuple[str, ...] = ()


def _data_literal(data: bytes) -> str:
    out = []
    for b in data:
        if 0x20 <= b < 0x7F and b not in (0x22, 0x5C):
            out.append(chr(b))
        else:
            out.append(f"\\{b:02x}")
    return '"' + "".join(out) + '"'


def assemble(pre: Preprocessed, imports: Sequence[HostFunction]) -> Assembled:
    """The module: imports (in the order given: core first), memory, static data, $run."""
    pages = max(1, (pre.initial_top + 4096 + PAGE - 1) // PAGE)
    header = [
        "(module",
        *(f"  {f.import_decl()}" for f in imports),
        f'  (memory (export "{MEMORY_EXPORT}") {pages})',
    ]
    if pre.data:
        header.append(f"  (data (i32.const {DATA_BASE}) {_data_literal(pre.data)})")
    if pre.sites:
        header.append(f'  (global {SITE_GLOBAL} (export "{SITE_EXPORT}") (mut i32) (i32.const 0))')
    header.append(f'  (func $run (export "run") (result i32) {" ".join(pre.locals)}')
    body_line = len(header) + 1
    wat = "\n".join(header) + "\n" + pre.body + "\n  )\n)\n"
    return Assembled(wat, body_line, pre.initial_top, sites=pre.sites, notes=pre.notes)


_MODULE = re.compile(r"\A\s*(?:;;[^\n]*\n\s*)*\(\s*module\b")


def is_whole_module(source: str) -> bool:
    return bool(_MODULE.match(source))
