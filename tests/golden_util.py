"""Golden files: compare with a checked-in expectation; WATT_UPDATE_GOLDEN=1 rewrites them."""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"


def assert_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("WATT_UPDATE_GOLDEN") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        if os.environ.get("WATT_UPDATE_GOLDEN") != "1":
            raise AssertionError(f"golden file {name} was missing and has been written; re-run")
        return
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, (
        f"{name} differs from its golden file (WATT_UPDATE_GOLDEN=1 to accept)"
    )
