"""Campaign execution: steps, faults and their policies, safe state, and resume after SIGKILL."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import campaign_fakes as fakes  # noqa: E402

from daqapp.campaign import manifest as M  # noqa: E402
from daqapp.campaign.executor import resume_campaign, run_campaign  # noqa: E402
from daqapp.errors import DataFileError  # noqa: E402
from daqapp.storage import open_run  # noqa: E402


def run(tmp_path, station=None, **kw):
    path = fakes.write_campaign(tmp_path, **kw)
    station = station or fakes.FakeStation()
    out = run_campaign(path, output=tmp_path / "out", catalog=fakes.catalog(),
                       connect=lambda c: station, show_progress=False, quiet_console=False)
    return out, station


def manifest(folder):
    return json.loads((folder / M.MANIFEST_NAME).read_text())


def test_campaign_runs_every_step_into_its_own_file(tmp_path):
    out, station = run(tmp_path, points=4)
    assert out.status == "finished", out.message
    data = manifest(out.folder)
    keys = [s["key"] for s in data["steps"]]
    assert keys == ["001-series-0T-10K", "002-series-0T-20K", "003-series-0p5T-10K",
                    "004-series-0p5T-20K"]
    for step in data["steps"]:
        assert step["status"] == "finished"
        with open_run(out.folder / step["file"]) as reader:
            assert reader.status == "finished"
            cols = reader.columns
            assert list(cols["index"]) == [0, 1, 2, 3]
            # positioned before measuring: temperature within the band, field at target
            assert abs(cols["temperature"].mean() - step["temperature_K"]) < 0.5
            assert cols["field"] == pytest.approx(step["field_T"])
            assert reader.metadata.get("campaign_step", step["key"]) == step["key"]
    assert station.temperature.setpoints == [10, 20, 10, 20]
    assert station.safe_calls >= 1 and station.closed
    assert (out.folder / "campaign.log").read_text().count("stable") >= 4
    assert (out.folder / "campaign.toml").is_file()


def test_fault_is_retried_and_partial_file_kept(tmp_path):
    flag = tmp_path / "fail"
    flag.write_text("1")
    out, station = run(tmp_path, points=6, fail=str(flag))
    assert out.status == "finished"
    first = manifest(out.folder)["steps"][0]
    assert [a["status"] for a in first["attempts"]] == ["failed", "finished"]
    assert "injected fault" in first["attempts"][0]["error"]
    kept = out.folder / first["attempts"][0]["partial_file"]
    assert kept.parent.name == "partial" and kept.is_file()
    with open_run(kept) as reader:
        assert reader.status == "failed" and reader.n_rows == 3
    assert station.safe_calls >= 2  # the failed run and the campaign end


def test_fault_policy_skip_and_stop(tmp_path):
    flag = tmp_path / "fail"
    flag.write_text("100")
    out, _ = run(tmp_path, points=4, fail=str(flag))
    data = manifest(out.folder)
    assert [s["status"] for s in data["steps"]] == ["skipped"] * 4
    assert out.status == "finished"

    text = fakes.write_campaign(tmp_path, points=4, fail=str(flag)).read_text()
    path = tmp_path / "stop.toml"
    path.write_text(text.replace('then = "skip"', 'then = "stop"'))
    station = fakes.FakeStation()
    out = run_campaign(path, output=tmp_path / "stop", catalog=fakes.catalog(),
                       connect=lambda c: station, show_progress=False)
    assert out.status == "stopped" and "on_fault = stop" in out.message
    statuses = [s["status"] for s in manifest(out.folder)["steps"]]
    assert statuses == ["failed", "pending", "pending", "pending"]
    assert station.safe_calls >= 3 and station.closed


def test_temperature_that_never_settles_fails_the_step_in_safe_state(tmp_path):
    station = fakes.FakeStation(speed=5000)
    station.temperature.offset = 3.0
    path = fakes.write_campaign(tmp_path)
    path.write_text(path.read_text().replace("timeout_s = 2000", "timeout_s = 300")
                    .replace('then = "skip"', 'then = "stop"').replace("retries = 1",
                                                                       "retries = 0"))
    out = run_campaign(path, output=tmp_path / "o", catalog=fakes.catalog(),
                       connect=lambda c: station, show_progress=False)
    assert out.status == "stopped"
    assert "temperature not stable at 10 K" in out.message
    assert station.safe_calls >= 1


def test_resume_of_finished_campaign_does_nothing(tmp_path):
    out, _ = run(tmp_path, points=2)
    before = {p.name: p.stat().st_mtime_ns for p in out.folder.glob("*.h5")}
    again = resume_campaign(out.folder, catalog=fakes.catalog(),
                            connect=lambda c: fakes.FakeStation(), show_progress=False)
    assert again.status == "finished" and "nothing to do" in again.message
    assert {p.name: p.stat().st_mtime_ns for p in out.folder.glob("*.h5")} == before


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_campaign_killed_mid_step_resumes_without_repeating_or_losing(tmp_path):
    path = fakes.write_campaign(tmp_path, points=30, delay=0.03)
    folder = tmp_path / "killed"
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import campaign_fakes as f\n"
        "from daqapp.campaign.executor import run_campaign\n"
        "run_campaign(sys.argv[2], output=sys.argv[3], catalog=f.catalog(),\n"
        "             connect=lambda c: f.FakeStation(), show_progress=False)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(Path(__file__).parent),
                             str(path), str(folder)])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (folder / M.MANIFEST_NAME).exists():
                steps = manifest(folder)["steps"]
                if steps[0]["status"] == "finished" and steps[1]["status"] == "running" \
                        and (folder / f"{steps[1]['key']}.h5").exists():
                    try:
                        with open_run(folder / f"{steps[1]['key']}.h5") as reader:
                            if reader.n_rows >= 3:
                                break
                    except DataFileError:  # created but not yet in SWMR mode
                        pass
            assert proc.poll() is None, "campaign ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("the second step never started")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    first = folder / f"{manifest(folder)['steps'][0]['key']}.h5"
    first_digest = _digest(first)

    out = resume_campaign(folder, catalog=fakes.catalog(), connect=lambda c: fakes.FakeStation(),
                          show_progress=False)
    assert out.status == "finished", out.message
    data = manifest(folder)
    assert [s["status"] for s in data["steps"]] == ["finished"] * 4
    # the finished step was not repeated: one attempt, identical file
    assert len(data["steps"][0]["attempts"]) == 1
    assert _digest(first) == first_digest
    # the interrupted step: kept partial file, then a complete re-run
    second = data["steps"][1]
    assert [a["status"] for a in second["attempts"]] == ["interrupted", "finished"]
    partial = folder / second["attempts"][0]["partial_file"]
    with open_run(partial) as reader:
        assert reader.status in ("interrupted", "running") and reader.n_rows >= 3
    files = sorted(p.name for p in folder.glob("*.h5"))
    assert files == sorted(f"{s['key']}.h5" for s in data["steps"])
    for name in files:
        with open_run(folder / name) as reader:
            assert reader.status == "finished" and reader.n_rows == 30
    assert len(data["sessions"]) == 2
