from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _watt_home(tmp_path, monkeypatch):
    """No test touches the real home or the caller's model configuration."""
    home = tmp_path / "watt-home"
    monkeypatch.setenv("WATT_HOME", str(home))
    for name in ("WATT_BASE_URL", "WATT_API_KEY", "OPENAI_API_KEY", "WATT_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return home
