"""agent.models.prompt_state: the saved system-prompt state's key, file format and the rules
that a stale, corrupt or foreign file is ignored (and rewritten by the caller), never used."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.models import prompt_state
from agent.models.prompt_state import MAGIC, read_state, state_key, state_path, write_state

TOKENS = [151644, 8948, 198, 2610, 525, -1, 0, 2**31 - 1]
DATA = b"llama state \x00\xff" * 100
KEY = state_key("a" * 64, TOKENS, 8192, "llama-cpp-python 0.3.36 [libllama.so:1:2]")


def test_a_written_state_reads_back_for_the_same_key_and_tokens(tmp_path: Path) -> None:
    path = write_state(tmp_path, KEY, TOKENS, DATA)
    assert path == state_path(tmp_path, KEY) and path.name.endswith(".kvstate")
    assert path.read_bytes().startswith(MAGIC + KEY.encode())
    assert read_state(tmp_path, KEY, TOKENS) == DATA
    assert not list(tmp_path.glob(".tmp-*"))  # written through a temporary file


@pytest.mark.parametrize(
    "change",
    [
        {"model": "b" * 64},
        {"tokens": TOKENS[:-1]},
        {"tokens": [*TOKENS[:-1], 5]},
        {"n_ctx": 4096},
        {"backend": "llama-cpp-python 0.3.36 [libllama.so:1:3]"},  # rebuilt
    ],
)
def test_the_key_depends_on_everything_the_state_depends_on(change: dict[str, object]) -> None:
    args: dict[str, object] = {"model": "a" * 64, "tokens": TOKENS, "n_ctx": 8192}
    args["backend"] = "llama-cpp-python 0.3.36 [libllama.so:1:2]"
    args.update(change)
    key = state_key(args["model"], args["tokens"], args["n_ctx"], args["backend"])  # type: ignore[arg-type]
    assert key != KEY and len(key) == 64


def _corrupt(blob: bytes, how: str) -> bytes:
    head = len(MAGIC) + 64 + 32
    if how == "truncated":
        return blob[: len(blob) // 2]
    if how == "flipped":  # one bit of the saved state
        return blob[:-10] + bytes([blob[-10] ^ 1]) + blob[-9:]
    if how == "magic":
        return b"WATTKV00" + blob[len(MAGIC) :]
    if how == "empty":
        return b""
    if how == "header only":
        return blob[:head]
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["truncated", "flipped", "magic", "empty", "header only"])
def test_a_corrupt_file_is_ignored(tmp_path: Path, how: str) -> None:
    path = write_state(tmp_path, KEY, TOKENS, DATA)
    assert path is not None
    path.write_bytes(_corrupt(path.read_bytes(), how))
    assert read_state(tmp_path, KEY, TOKENS) is None
    assert write_state(tmp_path, KEY, TOKENS, DATA) == path  # and rewritten
    assert read_state(tmp_path, KEY, TOKENS) == DATA


def test_a_foreign_file_under_the_key_is_ignored(tmp_path: Path) -> None:
    other = state_key("b" * 64, TOKENS, 8192, "x")
    source = write_state(tmp_path, other, TOKENS, DATA)
    assert source is not None
    os.replace(source, state_path(tmp_path, KEY))  # another state, renamed into place
    assert read_state(tmp_path, KEY, TOKENS) is None


def test_a_file_for_other_tokens_is_ignored_even_under_the_right_key(tmp_path: Path) -> None:
    write_state(tmp_path, KEY, [1, 2, 3], DATA)  # a well-formed file whose tokens differ
    assert read_state(tmp_path, KEY, TOKENS) is None
    assert read_state(tmp_path, KEY, [1, 2, 4]) is None
    assert read_state(tmp_path, KEY, [1, 2, 3]) == DATA


def test_a_missing_file_or_directory_is_none(tmp_path: Path) -> None:
    assert read_state(tmp_path / "nowhere", KEY, TOKENS) is None


def test_an_unwritable_directory_only_costs_speed(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert write_state(blocker / "states", KEY, TOKENS, DATA) is None


def test_only_the_most_recently_used_files_are_kept(tmp_path: Path) -> None:
    keys = [state_key("a" * 64, [i], 8192, "x") for i in range(prompt_state.MAX_FILES + 2)]
    for i, key in enumerate(keys):
        path = write_state(tmp_path, key, [i], DATA)
        assert path is not None
        os.utime(path, ns=(i * 10**9, i * 10**9))
    write_state(tmp_path, keys[-1], [len(keys) - 1], DATA)  # prunes
    left = {p.name for p in tmp_path.glob("*.kvstate")}
    assert left == {f"{k}.kvstate" for k in keys[-prompt_state.MAX_FILES :]}
    assert read_state(tmp_path, keys[-prompt_state.MAX_FILES], [2]) == DATA  # touched: newest


def test_size_and_clear(tmp_path: Path) -> None:
    assert prompt_state.size(tmp_path / "none") == (0, 0)
    assert prompt_state.clear(tmp_path / "none") == (0, 0)
    a = write_state(tmp_path, KEY, TOKENS, DATA)
    b = write_state(tmp_path, state_key("c" * 64, TOKENS, 1, "x"), TOKENS, DATA)
    assert a is not None and b is not None
    total = a.stat().st_size + b.stat().st_size
    assert prompt_state.size(tmp_path) == (2, total)
    (tmp_path / ".tmp-leftover").write_bytes(b"12345")
    assert prompt_state.clear(tmp_path) == (2, total + 5)
    assert list(tmp_path.iterdir()) == []
