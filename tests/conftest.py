"""Every test gets its own station-lock folder, so no test sees another's locks (or the
user's) and a test that opens a station never leaves a lock behind in ~/.local/state."""

import pytest


@pytest.fixture(autouse=True)
def _station_lock_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DAQAPP_STATE_DIR", str(tmp_path_factory.mktemp("station-locks")))
