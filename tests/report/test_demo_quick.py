"""The main job, reduced: `daqapp demo --quick` end to end on the virtual lab.

The short campaign (examples/quick.toml: R–T at 0/4/8 T, I–V at three temperatures, spectra
at five) and the Nb calibration run on the virtual lab, the report refits everything, and the
summary must recover the simulated sample within bounds looser than the full demo's.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from daqapp.report.summary import REQUIRED_SUMMARY_KEYS

pytestmark = pytest.mark.slow


@pytest.mark.timeout(600)
def test_quick_demo_recovers_the_simulated_sample(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "daqapp.cli", "demo", "--quick", "--output",
                           str(out), "--no-progress"], capture_output=True, text=True,
                          timeout=580)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "report written to" in proc.stdout
    summary = json.loads((out / "report" / "summary.json").read_text())
    for key in REQUIRED_SUMMARY_KEYS:
        assert summary[key]["value"] is not None, key
        assert summary[key]["error"] is not None, key
    cold = summary["temperatures"][0]
    assert cold["temperature_K"] == pytest.approx(3.0, abs=0.3)
    assert cold["delta1_meV"] == pytest.approx(23.0, rel=0.05)
    assert cold["delta2_meV"] == pytest.approx(6.0, rel=0.10)
    assert summary["tc_gap_K"]["value"] == pytest.approx(72.0, abs=8.0)
    assert summary["hc2_0_T"]["value"] == pytest.approx(97.7, rel=0.5)
    assert summary["jc0_mA"]["value"] == pytest.approx(2.03, rel=0.25)
    assert summary["tc_onset_K"]["value"] == pytest.approx(70.0, abs=5.0)
    assert summary["calibration"]["parameters"]["delta1_meV"]["value"] == pytest.approx(
        1.5, rel=0.2)
    figures = {p.name for p in (out / "report").glob("*.png")}
    assert {"rt_fields.png", "hc2.png", "spectra.png", "gap_temperature.png",
            "iv_critical_current.png", "nb_calibration.png"} <= figures
    # each campaign folder: one run file per step, manifest says finished
    manifest = json.loads((out / "quick" / "manifest.json").read_text())
    assert manifest["status"] == "finished"
    assert sorted(p.name for p in (out / "quick").glob("*.h5")) == sorted(
        s["file"] for s in manifest["steps"])

    # replay headless: the same runs refitted into another report folder
    replay = subprocess.run([sys.executable, "-m", "daqapp.cli", "replay", str(out / "quick"),
                             "--headless", "--output", str(tmp_path / "replayed")],
                            capture_output=True, text=True, timeout=300)
    assert replay.returncode == 0, replay.stderr[-2000:]
    again = json.loads((tmp_path / "replayed" / "summary.json").read_text())
    assert again["delta1_0_meV"]["value"] == pytest.approx(summary["delta1_0_meV"]["value"],
                                                           rel=1e-6)
