"""What the model is told after each action: delimited, truncated data (SECURITY.md rule 12).

Everything a program produced goes between ``<data>`` and ``</data>``. A ``<data>`` or
``</data>`` tag inside it is written ``&lt;data>`` / ``&lt;/data>``, so text a program
fetched cannot close the block early and pose as an instruction.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from agent.hints import GENERIC_STATUS_HINT
from rt.codes import Err, status_name, status_text
from rt.engine import RunResult

TRUNCATED = "[... truncated: {dropped} more characters not shown; print less or slice the text]"
_TAG = re.compile(r"<(?=\s*/?\s*data\s*>)", re.IGNORECASE)


def fence(text: str) -> str:
    """``text`` between data delimiters, with any delimiter inside it defused."""
    return f"<data>\n{_TAG.sub('&lt;', text)}\n</data>"


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, saying how much was dropped."""
    if len(text) <= limit:
        return text
    return text[:limit] + "\n" + TRUNCATED.format(dropped=len(text) - limit)


def _block(title: str, lines: Sequence[str]) -> str:
    if not lines:
        return f"{title}: (none)"
    return f"{title} ({len(lines)}):\n" + "\n".join(f"[{i}] {line}" for i, line in enumerate(lines))


def success(step: int, result: RunResult, limit: int) -> str:
    """A run that finished: its results, or (status not 0) the failure in plain words first."""
    body = (
        f"{status_text(result.status)}; fuel {result.fuel_used}\n"
        + _block("results", result.results)
        + ("\n" + _block("debug", result.debug) if result.debug else "")
    )
    notes = _notes(result.notes)
    if result.ok:
        return (
            f"[Observation (step {step})] Execution result:\n{fence(truncate(body, limit))}{notes}"
        )
    why = result.failure or f"the program returned {status_text(result.status)}"
    meaning = _meaning(result.status)
    hint = ""
    if not result.failure and not status_name(result.status):  # not an error code: a pointer?
        hint = "\n" + GENERIC_STATUS_HINT.format(status=result.status)
    return (
        f"[Observation (step {step})] Execution FAILED: {why}{meaning}. Nothing below is an answer.\n"
        f"{fence(truncate(body, limit))}{notes}{hint}"
    )


def _meaning(status: int) -> str:
    try:
        return f" ({Err(status).meaning})" if status else ""
    except ValueError:
        return ""


def _notes(notes: Sequence[str]) -> str:
    """What the preprocessor rewrote, one line each (at most five, then a count)."""
    if not notes:
        return ""
    shown = list(notes[:5]) + ([f"({len(notes) - 5} more)"] if len(notes) > 5 else [])
    return "\nRewritten: " + "; ".join(shown)


def failure(
    step: int, error: str, limit: int, partial: RunResult | None = None, hint: str = ""
) -> str:
    body = error
    if partial is not None and (partial.results or partial.debug):
        body += "\n" + _block("results before the stop", partial.results)
        if partial.debug:
            body += "\n" + _block("debug", partial.debug)
    text = f"[Observation (step {step})] Execution FAILED:\n{fence(truncate(body, limit))}"
    return text + (f"\n{hint}" if hint else "")


def compile_failure(
    step: int, error: str, attempt: int, retries: int, hint: str = "", *, repeated: bool = False
) -> str:
    """A repair request: the error, a hint when one applies, and a warning on a resent program."""
    again = "You sent a program that already failed this way: change it. " if repeated else ""
    return (
        f"[Observation (step {step})] Execution FAILED: the program did not compile "
        f"(repair {attempt} of {retries}):\n{fence(error)}\n"
        + (f"{hint}\n" if hint else "")
        + f"{again}Reply with the corrected ToolCall."
    )
