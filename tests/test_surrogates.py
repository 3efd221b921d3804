"""A lone surrogate in a provider's reply (a valid ``\\ud800`` JSON escape) never loses the turn:
it becomes U+FFFD at the model seam, so the answer is shown and the session keeps the turn.
Before, the session store refused the message ("surrogates not allowed") and the turn was lost.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from typer.testing import CliRunner

from agent.app import ask, open_parts
from agent.config import load_settings
from agent.events import ResponseEvent
from agent.models.client import OpenAIChatModel
from agent.store.sessions import SessionStore
from cli.main import app

ENV = {"COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1"}
REPLY = (
    'ToolCall::Response("""bad \ud800 char""")'  # a lone surrogate in a str, as json.loads gives
)


def test_watt_ask_with_a_scripted_reply_holding_a_lone_surrogate(tmp_path: Path) -> None:
    script = tmp_path / "script.jsonl"
    # json.dumps writes the surrogate as the escape \ud800, exactly as a provider would send it
    script.write_text(json.dumps(REPLY) + "\n" + json.dumps("again") + "\n", encoding="utf-8")
    assert "\\ud800" in script.read_text(encoding="utf-8")
    home = tmp_path / "home"
    env = {**ENV, "WATT_HOME": str(home)}
    args = ["ask", "--model", f"script:{script}", "--session", "s1", "say it"]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    assert "bad \ufffd char" in result.stdout
    assert "surrogates not allowed" not in result.output
    with SessionStore(home).open("s1") as session:
        contents = [m.content for m in session.history()]
    assert "say it" in contents
    assert any("bad \ufffd char" in c for c in contents), contents


def test_a_whole_ask_over_a_mock_transport_keeps_the_turn(tmp_path: Path) -> None:
    body = json.dumps(
        {"choices": [{"message": {"content": "X"}, "finish_reason": "stop"}]}
    ).replace('"X"', '"ToolCall::Response(\\"\\"\\"caf\\u00e9 \\udfff\\"\\"\\")"')

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=body.encode(), headers={"content-type": "application/json"}
        )

    model = OpenAIChatModel(
        "http://model.test/v1", "k", "m", transport=httpx.MockTransport(handler), stream=False
    )
    settings = load_settings({}, environ={"WATT_HOME": str(tmp_path)})
    with open_parts(settings, model=model, session="s2") as parts:
        events = list(ask(parts, "greet"))
    final = events[-1]
    assert isinstance(final, ResponseEvent) and final.text == "caf\u00e9 \ufffd"
    with SessionStore(tmp_path).open("s2") as session:
        contents = [m.content for m in session.history()]
    assert any("caf\u00e9 \ufffd" in c for c in contents), contents
