"""Guest-visible error codes: the second result of every fallible host call."""

from __future__ import annotations

from enum import IntEnum


class Err(IntEnum):
    SUCCESS = 0
    ETRFM = 1
    ENOMEM = 2
    EACCESS = 3
    ENOENT = 4
    EBOUND = 5
    EREMOTE = 6
    EPARSE = 7

    @property
    def meaning(self) -> str:
        return MEANINGS[self]


MEANINGS: dict[Err, str] = {
    Err.SUCCESS: "ok",
    Err.ETRFM: "bad pointer or malformed wire data",
    Err.ENOMEM: "memory or size limit reached",
    Err.EACCESS: "not granted: domain, path, or capability",
    Err.ENOENT: "not found (key, file)",
    Err.EBOUND: "index, argument or handle out of range",
    Err.EREMOTE: "remote failure: network, timeout, HTTP status >= 400, model error",
    Err.EPARSE: "cannot parse (number, JSON, URL)",
}


def status_name(status: int) -> str:
    """The table name of a run status (``ENOENT``); ``""`` for a status outside the table (a
    program may return any i32), so the name never repeats the number."""
    try:
        return Err(status).name
    except ValueError:
        return ""


def status_text(status: int) -> str:
    """A run status for a person: ``status 4 ENOENT``, or ``status 42`` outside the table."""
    name = status_name(status)
    return f"status {status} {name}" if name else f"status {status}"
