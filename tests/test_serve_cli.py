"""`watt serve` as a command: its help, the one line without the serve extra, the bind rule."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env or {})


def test_help_lists_the_server_options() -> None:
    result = invoke("serve", "--help")
    assert result.exit_code == 0
    for option in ("--host", "--port", "--model", "--allow-domain", "--fs-root", "--max-steps",
                   "--max-body", "--max-running", "--cors-origin", "--idle-close", "--agents",
                   "--max-cost"):  # fmt: skip
        assert option in result.output


def test_without_the_extra_it_says_which_install_adds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "starlette" else real(name, *a),
    )
    result = invoke("serve")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [
        "watt: watt serve needs the serve extra: pip install 'watt-agent[serve]' "
        "(starlette is missing)"
    ]


def test_a_public_address_without_an_explicit_token_refuses_to_start() -> None:
    result = invoke("serve", "--host", "0.0.0.0", "--port", "0")
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0" in result.output and "WATT_SERVE_TOKEN" in result.output
