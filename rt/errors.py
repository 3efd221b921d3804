"""Watt's one exception tree.

Every failure that leaves a Watt library call is a ``WattError``; foreign exceptions
(wasmtime, httpx, sqlite3) are translated at the seam with ``raise Ours(...) from exc``.
Each error's ``str()`` is one line, fit to show a user or to send the model as an observation.

    WattError
    ├── ConfigError              bad flag, config file, missing key (CLI exit code 2)
    ├── ModelAPIError            the model endpoint failed: HTTP error, cut stream, deadline (exit 1)
    │   └── ModelSetupError      the endpoint is unreachable, or refused the key, URL or model (exit 2)
    ├── RunError                 a WAT program could not run to completion
    │   ├── CompileError         preprocessing, size cap or wasmtime validation (line, column)
    │   │   └── SourceTooLarge   refused before compiling
    │   ├── LinkError            an import that is unknown or not granted
    │   ├── Trap                 the guest trapped (unreachable, out of bounds, stack, ...)
    │   ├── FuelExhausted        the fuel budget ran out
    │   ├── Timeout              the wall-clock budget ran out
    │   ├── Interrupted          the user pressed Ctrl-C
    │   └── MemoryExhausted      the memory limit stopped the program
    ├── CapabilityError          a capability could not be set up (bad grant, bad jail root)
    ├── CatalogError             a catalog program's file is malformed (file:line)
    ├── WeightsError             local model weights could not be obtained or verified
    └── SessionError             session storage failed
        ├── SessionInUse         another process holds the session
        └── UnknownSession       no session by that name (a command that reads one; exit 2)
"""

from __future__ import annotations

from typing import Any


class WattError(Exception):
    """Base of every error Watt raises on purpose."""

    def one_line(self) -> str:
        text = " ".join(str(self).split())
        return text or type(self).__name__


class ConfigError(WattError):
    """Configuration is missing or invalid; the message names the fix."""


class ModelAPIError(WattError):
    """The model endpoint failed after retries."""


class ModelSetupError(ModelAPIError):
    """The endpoint cannot be used as configured: unreachable, or it refused the key, the URL
    or the model name; the message names the setting to fix."""


class RunError(WattError):
    """A program did not run to completion.

    ``partial`` is the ``rt.engine.RunResult`` of what ran before the stop (results, debug
    lines, fuel, timings), or None when nothing ran. ``remedy`` says, for a person, which
    setting raises the limit that stopped it ("" when no setting does).
    """

    partial: Any = None
    remedy: str = ""


class CompileError(RunError):
    """The program's text is invalid. ``line``/``column`` are 1-based in the user's body.

    ``fix`` names the change that repairs the commonest mistakes (``known_fix``): it is part of
    the message, so the person running ``watt run``, the live view and the model's observation
    all read it, once.
    """

    def __init__(
        self,
        message: str,
        line: int | None = None,
        column: int | None = None,
        source_line: str | None = None,
        *,
        fix: str | None = None,
    ) -> None:
        self.message = message
        self.line = line
        self.column = column
        self.source_line = source_line
        self.fix = known_fix(message, line, source_line) if fix is None else fix
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.line is not None:
            where = f"line {self.line}"
            if self.column is not None:
                where += f", column {self.column}"
            where += ": "
        text = f"{where}{self.message}"
        if self.source_line is not None and self.source_line.strip():
            text += f" | {self.source_line.strip()[:120]}"
        if self.fix:
            text += f" (fix: {self.fix})"
        return text


def known_fix(message: str, line: int | None, source_line: str | None) -> str:
    """The fix for a compile error a person or a small model makes most, or "".

    - the function ends with nothing on the stack (wasmtime names no line): the i32 status is
      missing. The preprocessor adds it to a body that leaves nothing; a whole ``(module ...)``
      or a body that ends inside a block still meets this.
    - ``(func $run ...)`` sent as the body: the body is what goes inside it.
    """
    if "nothing on stack" in message and line is None:
        return "end the function with its i32 status: (i32.const 0) as the last instruction"
    head = (source_line or "").lstrip()
    if "unknown operator" in message and line == 1 and head.startswith("(func"):
        return (
            "send only the body: it runs inside (func $run (result i32) ...); drop the (func ...)"
            " line and its closing parenthesis, or send a whole (module ...) exporting run"
        )
    return ""


class SourceTooLarge(CompileError):
    """The source exceeds the size cap and was refused before compiling."""


class LinkError(RunError):
    """An import that is unknown or not granted."""


class Trap(RunError):
    """The guest trapped."""


class FuelExhausted(RunError):
    """The fuel budget ran out."""

    remedy = "to allow more, pass --fuel N to watt run or set fuel = N in config.toml"


class Timeout(RunError):
    """The wall-clock budget ran out."""

    remedy = "to allow more, pass --timeout SECONDS to watt run or set timeout in config.toml"


class Interrupted(RunError):
    """The run was interrupted by the user."""


class MemoryExhausted(RunError):
    """The memory limit stopped the program."""

    remedy = "to allow more, pass --memory BYTES to watt run or set memory in config.toml"


def remedy_for(error_type: str) -> str:
    """The ``remedy`` of a RunError subclass named ``error_type`` (as events carry it), or ""."""
    for cls in (FuelExhausted, Timeout, MemoryExhausted):
        if cls.__name__ == error_type:
            return cls.remedy
    return ""


class CapabilityError(WattError):
    """A capability could not be configured."""


class CatalogError(WattError):
    """A catalog file is malformed; the message starts with file:line."""


class WeightsError(WattError):
    """Local model weights could not be downloaded, reassembled or verified."""


class SessionError(WattError):
    """Session storage failed."""


class SessionInUse(SessionError):
    """Another process holds this session."""


class UnknownSession(SessionError):
    """A command that reads a session was given a name that has none."""
