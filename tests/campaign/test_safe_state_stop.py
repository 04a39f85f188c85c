"""A campaign never goes on past a safe state it could not confirm."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import campaign_fakes as fakes  # noqa: E402

from daqapp.campaign.executor import run_campaign  # noqa: E402
from drivers.roles import RoleVerdict, SafeStateReport  # noqa: E402


class UnconfirmedStation(fakes.FakeStation):
    """The temperature controller stops answering its read-back from the second call on."""

    def to_safe_state(self) -> SafeStateReport:
        super().to_safe_state()
        ok = self.safe_calls < 2
        return SafeStateReport([RoleVerdict("temperature", "FAKE", ok, ["range 0"], {},
                                            None if ok else "no reply to RANGE?",
                                            "heater range 0")])


def test_unconfirmed_safe_state_stops_the_campaign_loudly(tmp_path):
    station = UnconfirmedStation()
    path = fakes.write_campaign(tmp_path, points=3)
    out = run_campaign(path, output=tmp_path / "out", catalog=fakes.catalog(),
                       connect=lambda c: station, show_progress=False, quiet_console=False)
    assert out.status == "stopped"
    assert "temperature (FAKE): NOT CONFIRMED: no reply to RANGE? — check by hand" in \
        out.message
    assert out.safe_state.startswith("safe state NOT CONFIRMED")
    counts = out.counts
    # the second step's run ended in an unconfirmed safe state: failed, no retry, no next step
    assert counts["finished"] == 1 and counts["failed"] == 1 and counts["pending"] == 2
    assert out.message.count("NOT CONFIRMED: no reply") == 1
    log_text = (out.folder / "campaign.log").read_text()
    assert "NOT CONFIRMED" in log_text
