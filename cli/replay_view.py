"""`watt replay`: a recorded turn run again offline, or exported as a script file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from cli.common import EXIT_FAILED, EXIT_OK, say

if TYPE_CHECKING:
    from agent.config import Settings


def _shown(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return " ".join(text.split())[:400]


def run_replay(settings: Settings, turn: int | None, *, export: Path | None) -> int:
    from agent.replay import export_turn, replay_turn

    if export is not None:
        lines = export_turn(settings, settings.session, turn, export)
        say(f"wrote {export} ({lines} lines): replay it with watt ask --model script:{export}")
        return EXIT_OK
    report = replay_turn(settings, settings.session, turn)
    if report.identical:
        say(f"identical: {report.steps} steps (turn {report.turn}){report.note}")
        return EXIT_OK
    say(f"turn {report.turn} differs at step {report.step}, in {report.field}:")
    say(f"  recorded: {_shown(report.recorded)}")
    say(f"  replayed: {_shown(report.replayed)}")
    return EXIT_FAILED
