"""Done-when of the Lake Shore / SR860 work: a campaign on the LS350 + LS625 + SR860 station
(examples/) runs on the virtual lab and its report recovers the simulated sample.

The campaign is examples/campaign-ls350-ls625-sr860.toml (the quick demo on that station)
with fewer steps, so the test stays under a minute: R–T at 0, 4 and 8 T, I–V at 3, 15 and
25 K, spectra at 3, 35 and 65 K.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from daqapp.cli import main
from daqapp.report import write_report
from simulators.presets import load_preset

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_station_check_on_the_virtual_lab(capsys):
    assert main(["station", "check", str(EXAMPLES / "station-ls350-ls625-sr860.toml")]) == 0
    out = capsys.readouterr().out
    for role, driver, idn in (("lockin", "SR860", "SR860"), ("temperature", "LakeShore350",
                                                             "MODEL350"),
                              ("magnet", "LakeShore625", "MODEL625")):
        assert re.search(rf"{role}\s+OK\s+{driver} at TCPIP::127\.0\.0\.1::", out)
        assert idn in out


@pytest.mark.slow
def test_campaign_on_ls350_ls625_sr860_recovers_the_preset(tmp_path):
    from daqapp.campaign.executor import run_campaign

    shutil.copy(EXAMPLES / "station-ls350-ls625-sr860.toml", tmp_path)
    text = (EXAMPLES / "campaign-ls350-ls625-sr860.toml").read_text()
    for old, new in (("field_T = [2, 4, 6, 8]", "field_T = [4, 8]"),
                     ("temperature_K = [3, 20, 35, 50, 65]", "temperature_K = [3, 35, 65]")):
        assert old in text
        text = text.replace(old, new)
    campaign = tmp_path / "campaign.toml"
    campaign.write_text(text)
    outcome = run_campaign(campaign, output=tmp_path / "run", show_progress=False)
    assert outcome.ok, outcome.message
    assert outcome.counts["finished"] == 9
    assert "safe state confirmed" in outcome.safe_state
    summary = write_report([outcome.folder], output=tmp_path / "report").summary
    truth = load_preset("la3ni2o7-cell2")
    delta1, delta2 = truth.gap_rows[0].delta_meV
    assert summary["delta1_0_meV"]["value"] == pytest.approx(delta1, rel=0.05)
    assert summary["delta2_0_meV"]["value"] == pytest.approx(delta2, rel=0.25)
    assert summary["tc_gap_K"]["value"] == pytest.approx(truth.tc_K, rel=0.05)
    assert summary["jc0_mA"]["value"] == pytest.approx(truth.ic0_A * 1e3, rel=0.1)


def test_simulate_serves_the_models_it_is_asked_for():
    import os
    import signal
    import subprocess
    import sys

    command = [sys.executable, "-m", "daqapp.cli", "simulate", "--lockin", "sr860",
               "--current-source", "6220", "--temperature-controller", "ls350",
               "--magnet-supply", "ls625"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ})
    try:
        lines = [process.stdout.readline().split() for _ in range(5)]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    models = {line[0]: line[1] for line in lines}
    assert models == {"lockin": "SR860", "current_source": "6220", "nanovoltmeter": "2182A",
                      "temperature": "LS350", "magnet": "LS625"}
    assert all(line[2].startswith("TCPIP::127.0.0.1::") for line in lines)
    assert process.returncode == 0
