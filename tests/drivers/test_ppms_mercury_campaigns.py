"""The Mercury and the PPMS station files on the virtual lab, end to end.

``examples/station-mercury.toml`` (Mercury iTC + iPS, both over pseudo-terminals) and
``examples/station-ppms.toml`` (one PPMS for temperature and field, through MultiPyVu) each
pass ``daqapp station check`` and run a short campaign (the zero-field R–T, an I–V and a
spectrum at 3 K), whose report recovers the simulated sample's gaps and transition.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
CAMPAIGN = """
[campaign]
name = "short look through the {name} station"
series_resistance_ohm = 25

[station]
file = "{station}"

[defaults]
field_ramp_T_per_min = 0.5
stabilize = {{ band_K = 0.2, time_s = 30, timeout_s = 1800 }}
on_fault = {{ retries = 1, then = "skip" }}

[[step]]
name = "rt-zero-field"
procedure = "rt"
field_T = 0
[step.params]
fields = "$field_T"
t_start = 85
t_stop = 40
ramp_rate = 3
interval = 3
current = 2e-4

[[step]]
name = "iv"
procedure = "iv"
field_T = 0
temperature_K = 3
params = {{ current_max = 5e-3, points = 121, directions = "up" }}

[[step]]
name = "spectrum"
procedure = "didv-lockin"
field_T = 0
temperature_K = 3
params = {{ bias_start = -2.1e-4, bias_stop = 2.1e-4, points = 121, directions = "up" }}
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "daqapp.cli", *args], capture_output=True,
                          text=True, timeout=170, cwd=cwd,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", ["mercury", "ppms"])
def test_station_file_checks_and_a_short_campaign_recovers_the_sample(name, tmp_path):
    if name == "ppms":
        pytest.importorskip("MultiPyVu")
    example = ROOT / "examples" / f"station-{name}.toml"
    check = cli("station", "check", str(example), cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    for role in ("temperature", "magnet"):
        assert re.search(rf"^  {role} +OK", check.stdout, re.M), check.stdout
    station = tmp_path / "station.toml"
    station.write_text(example.read_text().replace("speed = 100.0", "speed = 1000.0"))
    campaign = tmp_path / "short.toml"
    campaign.write_text(CAMPAIGN.format(name=name, station=station))
    run = cli("campaign", "run", str(campaign), "-o", str(tmp_path / "out"), "--no-progress",
              cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "safe state confirmed" in run.stdout
    summary = json.loads((tmp_path / "out" / "report" / "summary.json").read_text())
    cold = summary["temperatures"][0]
    assert cold["temperature_K"] == pytest.approx(3.0, abs=0.3)
    assert cold["delta1_meV"] == pytest.approx(23.0, rel=0.05)
    assert cold["delta2_meV"] == pytest.approx(6.0, rel=0.10)
    assert summary["tc_onset_K"]["value"] == pytest.approx(70.0, abs=5.0)
