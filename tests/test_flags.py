"""Bad flag and config values: exit 2 with the valid range, the same way in every command."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.config import RANGES, Settings, load_settings
from cli.main import app
from rt.errors import ConfigError

runner = CliRunner()
ENV = {"COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1"}


def invoke(*args: str):
    return runner.invoke(app, list(args), env=ENV)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["ask", "hi", "--max-tokens-total", "-1"], "--max-tokens-total must be between 1 and"),
        (["ask", "hi", "--max-tokens-total", "0"], "--max-tokens-total must be between 1 and"),
        (["ask", "hi", "--max-steps", "0"], "--max-steps must be between 1 and 1_000, got 0"),
        (["run", "upper", "x", "--timeout", "0"], "--timeout must be more than 0 and at most 3600"),
        (["run", "upper", "x", "--timeout", "-1"], "at most 3600 seconds, got -1"),
        (["run", "upper", "x", "--timeout", "nan"], "--timeout must be more than 0"),
        (["run", "upper", "x", "--timeout", "3601"], "at most 3600 seconds"),
        (["run", "upper", "x", "--fuel", "0"], "--fuel must be between 1 and"),
        (["run", "upper", "x", "--memory", "10"], "--memory must be between 65_536 and"),
        (["ask", "hi", "--session", ".."], "invalid session name '..'"),
        (["run", "upper", "x", "--session", "."], "invalid session name '.'"),
        (["ask", "hi", "--allow-domain", "localhost"], "explicit port"),
        (["chat", "--allow-domain", "*.example.com"], "wildcards are not supported"),
        (["caps", "--allow-domain", "0.0.0.0"], "unspecified address"),
        (["run", "upper", "x", "--allow-domain", "10.0.0.0/8"], "CIDR"),
        (["ask", "hi", "--allow-domain", "a b"], "--allow-domain"),
    ],
)
def test_bad_values_exit_2_with_the_range(args: list[str], fragment: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", [["ask", "hi"], ["chat"], ["run", "upper", "x"], ["caps"]])
def test_missing_fs_root_exits_2_in_every_command(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "nope"
    result = invoke(*command, "--fs-root", str(missing))
    assert result.exit_code == 2, result.output
    assert f"--fs-root: fs root {missing} does not exist" in result.output


@pytest.mark.parametrize(
    "command", [["ask", "hi"], ["run", "upper", "x"], ["catalog", "list"], ["catalog", "check"]]
)
def test_missing_or_file_catalog_is_named(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "nope"
    result = invoke(*command, "--catalog", str(missing))
    assert result.exit_code == 2, result.output
    assert f"catalog directory {missing} does not exist" in result.output
    afile = tmp_path / "f.wat"
    afile.write_text("(i32.const 0)\n")
    result = invoke(*command, "--catalog", str(afile))
    assert result.exit_code == 2, result.output
    assert f"catalog directory {afile} is not a directory" in result.output


@pytest.mark.parametrize(
    "command",
    [["log", "--session", "nosuch"], ["sessions", "show", "nosuch"], ["sessions", "rm", "nosuch"]],
)
def test_unknown_session_exits_2(command: list[str]) -> None:
    result = invoke(*command)
    assert result.exit_code == 2, result.output
    assert "no session named 'nosuch'" in result.output


def test_loopback_grant_is_accepted_with_a_note(tmp_path: Path) -> None:
    result = invoke("run", "upper", "x", "--allow-domain", "127.0.0.1:8080")
    assert result.exit_code == 0, result.output
    assert "note: allow-list entry 127.0.0.1:8080 is loopback" in result.stderr
    assert result.stdout == "X\n"


# ---- the library checks what the CLI checks -----------------------------------------------------
def test_settings_validate_on_construction(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_steps must be between 1 and 1_000, got 0"):
        Settings(home=tmp_path, max_steps=0)
    with pytest.raises(ConfigError, match="timeout must be more than 0"):
        Settings(home=tmp_path, timeout=math.inf)
    with pytest.raises(ConfigError, match="fs root"):
        Settings(home=tmp_path, fs_root=tmp_path / "missing")
    with pytest.raises(ConfigError, match="refused"):
        Settings(home=tmp_path, allow_domains=("127.0.0.1",))
    with pytest.raises(ConfigError, match="invalid session name"):
        Settings(home=tmp_path, session="a/b")
    assert Settings(home=tmp_path, fs_root=tmp_path, catalog=(tmp_path,)).fs_root == tmp_path


@pytest.mark.parametrize("name", sorted(RANGES))
def test_every_range_has_both_ends_checked(tmp_path: Path, name: str) -> None:
    low, high, _ = RANGES[name]
    Settings(home=tmp_path, **{name: int(low)})
    Settings(home=tmp_path, **{name: int(high)})
    for bad in (int(low) - 1, int(high) + 1):
        with pytest.raises(ConfigError, match=f"{name} must be between"):
            Settings(home=tmp_path, **{name: bad})


def test_config_file_values_are_named_by_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("max_retries = -1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"WATT_HOME": str(tmp_path)})
    assert str(info.value).startswith(f"{tmp_path / 'config.toml'}: max_retries must be between")


def test_config_file_allow_domains_are_vetted(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('allow_domains = ["example.com", "localhost"]\n')
    with pytest.raises(ConfigError, match="allow_domains: allow-list entry 'localhost' refused"):
        load_settings(environ={"WATT_HOME": str(tmp_path)})


def test_deep_config_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"WATT_HOME": str(tmp_path)})
    assert "nested deeper than 32 levels" in str(info.value)
    assert "\n" not in str(info.value)


def test_deep_config_file_from_the_cli_exits_2(_watt_home: Path) -> None:
    _watt_home.mkdir(parents=True, exist_ok=True)
    (_watt_home / "config.toml").write_text("[a]\nx = " + "{y = " * 3000 + "1" + "}" * 3000)
    result = invoke("config", "show")
    assert result.exit_code == 2, result.output
    assert "config.toml: nested deeper than 32 levels (line 2)" in result.output


def test_config_show_names_watt_home_from_the_environment(_watt_home: Path) -> None:
    result = invoke("config", "show")
    home_line = next(line for line in result.stdout.splitlines() if line.startswith("home "))
    assert home_line.endswith("[WATT_HOME]"), home_line


def test_limits_state_the_timeout_range_they_accept() -> None:
    from rt.limits import Limits

    with pytest.raises(ConfigError, match="more than 0 and at most 3600 seconds, got 0"):
        Limits(timeout_s=0).validated()
    assert Limits(timeout_s=3600).validated().timeout_s == 3600
