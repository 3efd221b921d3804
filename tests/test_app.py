from __future__ import annotations

from pathlib import Path

import pytest

from agent.app import open_parts
from agent.config import load_settings
from agent.models.backends import make_model
from agent.models.scripted import ScriptedModel
from agent.programs.catalog import shipped_dir
from rt.errors import CapabilityError, ConfigError


def settings(home: Path, **flags):
    return load_settings(flags, environ={"WATT_HOME": str(home)})


@pytest.mark.parametrize("root", ["home", "home/cache", "shipped"])
def test_fs_root_may_not_overlap_state_or_catalog(tmp_path: Path, root: str) -> None:
    home = tmp_path / "home"
    (home / "cache").mkdir(parents=True)
    path = shipped_dir() if root == "shipped" else tmp_path / root
    with pytest.raises(CapabilityError):
        open_parts(settings(home, fs_root=path), use_session=False)


def test_no_ai_removes_the_grant_but_keeps_the_description(tmp_path: Path) -> None:
    parts = open_parts(settings(tmp_path, ai=False), model=ScriptedModel([]), use_session=False)
    assert "ai" not in parts.granted and "ai" in parts.registry
    assert "ai.assist" not in parts.system_prompt()


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({}, "WATT_BASE_URL"),
        ({"WATT_BASE_URL": "https://api.example.com/v1", "WATT_MODEL": "m"}, "WATT_API_KEY"),
        ({"WATT_BASE_URL": "http://127.0.0.1:1/v1"}, "WATT_MODEL"),
    ],
)
def test_model_configuration_errors_name_the_fix(tmp_path: Path, env: dict, fragment: str) -> None:
    s = load_settings({}, environ={"WATT_HOME": str(tmp_path), **env})
    with pytest.raises(ConfigError) as info:
        make_model(s)
    assert fragment in str(info.value)


def test_loopback_endpoint_needs_no_key(tmp_path: Path) -> None:
    s = load_settings(
        {},
        environ={
            "WATT_HOME": str(tmp_path),
            "WATT_BASE_URL": "http://127.0.0.1:1/v1",
            "WATT_MODEL": "m",
        },
    )
    assert make_model(s).name


def test_config_precedence_and_errors(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        'model = "from-file"\nfuel = 5\nallow_domains = ["a.example"]\n'
    )
    env = {"WATT_HOME": str(tmp_path), "WATT_MODEL": "from-env"}
    s = load_settings({}, environ=env)
    assert (s.model, s.fuel, s.allow_domains) == ("from-env", 5, ("a.example",))
    assert load_settings({"model": "from-flag"}, environ=env).model == "from-flag"
    (tmp_path / "config.toml").write_text("colour = 1\n")
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        load_settings({}, environ=env)
    (tmp_path / "config.toml").write_text("fuel = 'lots'\n")
    with pytest.raises(ConfigError, match="fuel must be int"):
        load_settings({}, environ=env)
