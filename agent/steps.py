"""What a step is: the one ``ActionKind`` and the one step record.

The loop hands each step to its recorder as a ``Step``; the session store keeps that record
as it came (adding the turn, its number and the time) and gives the same type back, and
``watt log`` shows it (``Step.to_dict`` is its JSON).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class ActionKind(str, enum.Enum):
    """What a reply asked for: run WAT, run a catalog program, or answer."""

    WAT = "wat"
    CATALOG = "catalog"
    RESPONSE = "response"


@dataclass(frozen=True)
class Step:
    """One recorded step of a turn.

    ``program`` is the WAT body of a wat step and the program's name of a catalog step;
    ``status`` is the program's return value, None when nothing ran. ``step`` numbers the
    turn's records from 1 (a compile-repair attempt is a record of its own); ``turn`` and
    ``created`` (Unix seconds) are set by the session store.
    """

    action: ActionKind
    reply: str = ""
    program: str | None = None
    args: tuple[str, ...] = ()
    observation: str = ""
    status: int | None = None
    fuel: int | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    program_hash: str | None = None
    step: int = 0
    turn: int = 0
    created: float = 0.0
    cost: float | None = None  # dollars, when a price is configured for the model

    def to_dict(self) -> dict[str, Any]:
        """The step as ``watt log --json`` prints it."""
        return {
            "turn": self.turn, "step": self.step, "action": self.action.value,
            "program": self.program, "program_hash": self.program_hash, "args": list(self.args),
            "status": self.status, "fuel": self.fuel, "timings": dict(self.timings),
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "cost": self.cost, "observation": self.observation, "reply": self.reply,
        }  # fmt: skip
