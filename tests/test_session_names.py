"""Session names are file names: dots alone, separators and controls are refused."""

from __future__ import annotations

import pytest

from agent.store.sessions import check_name
from rt.errors import ConfigError


@pytest.mark.parametrize(
    "name", [".", "..", "a/b", "../x", "a\\b", "a\x00b", "a\nb", "a\x1bb", "", "x" * 65]
)
def test_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="invalid session name"):
        check_name(name)


@pytest.mark.parametrize("name", ["default", "a.b", ".hidden", "...", "x-1_2", "x" * 64])
def test_accepted(name: str) -> None:
    assert check_name(name) == name
