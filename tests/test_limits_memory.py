"""Refuse before you copy (SECURITY.md rule 16): peak RSS of refused oversized inputs.

Each case runs in its own ``python -c`` child, which measures its peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``) twice: after an idle run holding the same input (the
100 MB source string, the 60 MB filled guest memory), and after the oversized operation.
The target is "within 100 MB of the idle peak"; the test asserts a growth under ``MARGIN_MB``,
tight enough that one copy of the 60 or 100 MB input fails it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")

REPO = Path(__file__).resolve().parents[1]
MARGIN_MB = 25
GUEST_BYTES = 60_000_000  # a realistic large string in a 64 MiB memory

PRELUDE = """
import resource, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

SOURCE = """
from capabilities.sys import SysCapability
from rt.engine import Runtime
from rt.limits import Limits
from rt.errors import SourceTooLarge
runtime = Runtime(SysCapability().functions())
source = ";;" * 50_000_000  # 100 MB of WAT-plus, built in one allocation (no transient copy)
assert runtime.run("(i32.const 0)").status == 0
idle = peak_mb()
try:
    runtime.run(source)
    outcome = "ran"
except SourceTooLarge as exc:
    outcome = str(exc)
print(idle, peak_mb(), outcome)
"""

CATALOG = """
from agent.programs.catalog import Catalog
from rt.errors import CatalogError
directory = Path(tempfile.mkdtemp())
with open(directory / "big.wat", "wb") as f:
    f.write(b';;; name = "big"\\n;;; description = "d"\\n(i32.const 0)\\n;; ')
    f.truncate(100_000_000)  # sparse: 100 MB by stat, nothing on disk
idle = peak_mb()
catalog, errors = Catalog.load([directory])
print(idle, peak_mb(), errors[0] if errors else "loaded")
"""

# A whole module that fills 60 MB of a 64 MiB memory behind a length prefix at 16 and then
# makes CALL with it; the idle run fills the same memory and makes no call.
GUEST = """
from capabilities.fs import FsCapability
from capabilities.jsonpath import JsonCapability
from capabilities.kv import KvCapability, MemoryKv
from capabilities.sys import SysCapability
from rt.engine import Limits, Runtime
N = GUEST_BYTES
MODULE = '''(module
  (import "fs" "write" (func $fs.write (param i32 i32) (result i32)))
  (import "fs" "append" (func $fs.append (param i32 i32) (result i32)))
  (import "kv" "set" (func $kv.set (param i32 i32) (result i32)))
  (import "json" "get" (func $json.get (param i32 i32) (result i32 i32)))
  (import "json" "quote" (func $json.quote (param i32) (result i32 i32)))
  (memory (export "memory") 1024)
  (data (i32.const 0) "\\\\05\\\\00\\\\00\\\\00a.txt")
  (func (export "run") (result i32) (local $e i32)
    (i32.store (i32.const 16) (i32.const %d))
    (memory.fill (i32.const 20) (i32.const 97) (i32.const %d))
    %s))'''
functions = [
    *SysCapability().functions(),
    *FsCapability(tempfile.mkdtemp()).functions(),
    *KvCapability(MemoryKv()).functions(),
    *JsonCapability().functions(),
]
runtime = Runtime(functions, limits=Limits(memory_bytes=64 * 1024 * 1024, fuel=10**9))
assert runtime.run(MODULE % (N, N, "(i32.const 0)")).status == 0
idle = peak_mb()
result = runtime.run(MODULE % (N, N, CALL))
print(idle, peak_mb(), result.debug[0] if result.debug else result.status)
"""

KEEP_ERR = " (local.set $e) (drop) (local.get $e)"  # (ptr err) -> err
GUEST_CALLS = {
    "fs.write": "(call $fs.write (i32.const 0) (i32.const 16))",
    "fs.append": "(call $fs.append (i32.const 0) (i32.const 16))",
    "kv.set": "(call $kv.set (i32.const 0) (i32.const 16))",
    "json.get": "(call $json.get (i32.const 16) (i32.const 12))" + KEEP_ERR,
    "json.quote": "(call $json.quote (i32.const 16))" + KEEP_ERR,
}


def measure(code: str) -> tuple[float, float, str]:
    """(idle peak MB, peak MB after the operation, what the operation reported)."""
    out = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code), str(REPO)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    idle, peak, what = out.stdout.strip().split(" ", 2)
    return float(idle), float(peak), what


def test_oversized_source_is_refused_without_a_copy() -> None:
    idle, peak, what = measure(SOURCE)
    assert what == "program is at least 100000000 bytes; the limit is 262144 bytes"
    assert peak - idle < MARGIN_MB, f"idle {idle:.0f} MB, refused source {peak:.0f} MB"


def test_oversized_catalog_file_is_refused_from_its_stat() -> None:
    idle, peak, what = measure(CATALOG)
    assert what.endswith(
        "big.wat:1: file is 100000000 bytes; a catalog file may have at most 1048576"
    )
    assert peak - idle < MARGIN_MB, f"idle {idle:.0f} MB, refused catalog file {peak:.0f} MB"


@pytest.mark.parametrize(
    ("call", "refusal"),
    [
        ("fs.write", "fs.write: ENOMEM: data is larger than 1000000 bytes"),
        ("fs.append", "fs.append: ENOMEM: data is larger than 1000000 bytes"),
        ("kv.set", f"kv.set: ENOMEM: value of {GUEST_BYTES} bytes exceeds the 65536-byte limit"),
        (
            "json.get",
            f"json.get: ENOMEM: JSON document of {GUEST_BYTES} bytes exceeds the 2000000-byte"
            " limit",
        ),
        (
            "json.quote",
            f"json.quote: ENOMEM: string of {GUEST_BYTES} bytes exceeds the 2000000-byte limit",
        ),
    ],
)
def test_oversized_guest_buffer_is_refused_from_its_length_prefix(call: str, refusal: str) -> None:
    code = GUEST.replace("CALL", repr(GUEST_CALLS[call])).replace("GUEST_BYTES", str(GUEST_BYTES))
    idle, peak, what = measure(code)
    assert what == refusal
    assert peak - idle < MARGIN_MB, f"idle {idle:.0f} MB, refused {call} {peak:.0f} MB"
