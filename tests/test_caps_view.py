"""`watt caps` shows the quotas and limits the README says it documents; WAT-plus highlighting."""

from __future__ import annotations

from pathlib import Path

import pytest
from pygments.token import Error, Keyword, Name
from typer.testing import CliRunner

from capabilities.http import HttpCapability
from cli.main import app
from cli.render import WattLexer
from cli.views import quotas

runner = CliRunner()
ENV = {"COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1"}


def test_caps_shows_quotas_and_run_limits() -> None:
    result = runner.invoke(app, ["caps"], env=ENV)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert (
        "  quotas: body bytes 1,000,000, request timeout (s) 10, redirects 5, calls per run 20"
        in text
    )
    assert "calls per session 50" in text  # ai
    assert "fuel 10,000,000 (--fuel, fuel)" in text and "timeout 10 s (--timeout, timeout)" in text


def test_caps_follows_the_configuration(_watt_home: Path) -> None:
    _watt_home.mkdir(parents=True, exist_ok=True)
    (_watt_home / "config.toml").write_text("fuel = 123456\n")
    result = runner.invoke(app, ["caps", "--allow-domain", "localhost:9000"], env=ENV)
    assert "fuel 123,456 (--fuel, fuel)" in result.stdout
    assert "http allow-list: localhost:9000" in result.stdout
    assert "note: allow-list entry localhost:9000 is loopback" in result.stdout


def test_quotas_read_a_capabilitys_limits() -> None:
    found = dict(quotas(HttpCapability(max_calls_per_run=3)))
    assert found["calls per run"] == 3 and found["request timeout (s)"] == 10.0


@pytest.mark.parametrize(
    ("source", "word", "kind"),
    [
        ("(argv 0 $t)", "argv", Keyword),
        ("(check $e)", "check", Keyword),
        ("(resv $u)", "resv", Keyword),
        ("(answer (arg 0))", "arg", Keyword),
        ("(answer (str.upper (arg 0)))", "str.upper", Name.Function),
        ("(local.get $t)", "local.get", Name.Builtin),
    ],
)
def test_wat_plus_highlighting(source: str, word: str, kind: object) -> None:
    tokens = list(WattLexer().get_tokens(source))
    assert (kind, word) in tokens
    assert not any(t in Error for t, _ in tokens)


def test_raw_strings_and_unknown_words_are_not_errors() -> None:
    tokens = list(WattLexer().get_tokens('(resv """raw\ntext""") (whatever 1)'))
    assert not any(t in Error for t, _ in tokens)
