"""Campaign bookkeeping after kills: no temporary manifest left forever, and the log and the
manifest count the same attempts of every step."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import campaign_fakes as fakes  # noqa: E402

from daqapp import cli  # noqa: E402
from daqapp.campaign import manifest as M  # noqa: E402
from daqapp.campaign.executor import LOG_NAME, resume_campaign, run_campaign  # noqa: E402
from daqapp.station import Station  # noqa: E402
from daqapp.station import lock as L  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent


def manifest(folder: Path) -> dict:
    return json.loads((folder / M.MANIFEST_NAME).read_text())


def logged_attempts(folder: Path) -> dict[str, list[int]]:
    """Step key -> attempt numbers in the order the log says they started."""
    out: dict[str, list[int]] = {}
    for match in re.finditer(r"step (\S+) attempt (\d+): ", (folder / LOG_NAME).read_text()):
        out.setdefault(match.group(1), []).append(int(match.group(2)))
    return out


def assert_log_matches_manifest(folder: Path) -> None:
    logged = logged_attempts(folder)
    for step in manifest(folder)["steps"]:
        numbers = [a["number"] for a in step["attempts"]]
        assert numbers == list(range(1, len(numbers) + 1))
        assert logged.get(step["key"], []) == numbers, step["key"]


def run_child(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, str(HERE), *args], timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True)


# A campaign process killed at the instant it saves a manifest with the first attempt of
# the second step: the temporary file is written, the replace never happens.
KILL_AT_REPLACE = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
import campaign_fakes as f
from daqapp.campaign import manifest as M
from daqapp.campaign.executor import run_campaign

real_replace = os.replace
def replace(src, dst):
    data = M.json.loads(open(src).read())
    steps = data.get("steps", [])
    if str(src).endswith(".tmp") and len(steps) > 1 and steps[1]["attempts"]:
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)
M.os.replace = replace
run_campaign(sys.argv[2], output=sys.argv[3], catalog=f.catalog(),
             connect=lambda c: f.FakeStation(), show_progress=False)
"""


def test_kill_between_temp_write_and_replace_is_cleaned_and_counted_once(tmp_path):
    path = fakes.write_campaign(tmp_path, points=3)
    folder = tmp_path / "killed"
    child = run_child(KILL_AT_REPLACE, str(path), str(folder))
    assert child.returncode == -signal.SIGKILL, child.stderr
    leftovers = list(folder.glob(".manifest.json.*.tmp"))
    assert len(leftovers) == 1
    # the kill came before the replace: the manifest on disk never saw that attempt,
    # and neither did the log
    second = manifest(folder)["steps"][1]
    assert second["attempts"] == [] and second["status"] == "pending"
    assert second["key"] not in logged_attempts(folder)

    out = resume_campaign(folder, catalog=fakes.catalog(), connect=lambda c: fakes.FakeStation(),
                          show_progress=False)
    assert out.status == "finished", out.message
    assert not list(folder.glob(".manifest.json.*.tmp"))
    assert "removed .manifest.json." in (folder / LOG_NAME).read_text()
    assert_log_matches_manifest(folder)
    assert [len(s["attempts"]) for s in manifest(folder)["steps"]] == [1, 1, 1, 1]


def test_temp_files_of_live_processes_are_kept(tmp_path):
    target = tmp_path / M.MANIFEST_NAME
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.1)
        live = M.temp_path(target, sleeper.pid)
        live.write_text("{}")  # written after the sleeper started: it may be its own
        own = M.temp_path(target)
        own.write_text("{}")
        dead = M.temp_path(target, int(Path("/proc/sys/kernel/pid_max").read_text()) + 1)
        dead.write_text("{}")
        older = tmp_path / f".{M.MANIFEST_NAME}.{os.getppid()}.tmp"
        older.write_text("{}")
        os.utime(older, (1.0, 1.0))  # written long before that pid's process started
        removed = M.remove_stale_temp_files(target)
        assert sorted(removed) == sorted([dead, older])
        assert live.exists() and own.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_retries_are_logged_as_the_manifest_counts_them(tmp_path):
    flag = tmp_path / "fail"
    flag.write_text("1")
    path = fakes.write_campaign(tmp_path, points=4, fail=str(flag))
    out = run_campaign(path, output=tmp_path / "out", catalog=fakes.catalog(),
                       connect=lambda c: fakes.FakeStation(), show_progress=False)
    assert out.status == "finished"
    log = (out.folder / LOG_NAME).read_text()
    first = manifest(out.folder)["steps"][0]
    assert [a["status"] for a in first["attempts"]] == ["failed", "finished"]
    assert f"step {first['key']} attempt 1 failed: " in log
    assert f"step {first['key']} attempt 2 finished" in log
    assert_log_matches_manifest(out.folder)


KILL_MID_STEP = """
import sys
sys.path.insert(0, sys.argv[1])
import campaign_fakes as f
from daqapp.campaign.executor import run_campaign
run_campaign(sys.argv[2], output=sys.argv[3], catalog=f.catalog(),
             connect=lambda c: f.FakeStation(), show_progress=False)
"""


def test_step_killed_mid_run_is_attempt_1_interrupted_then_attempt_2(tmp_path):
    path = fakes.write_campaign(tmp_path, points=20, delay=0.01)
    folder = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", KILL_MID_STEP, str(HERE), str(path),
                             str(folder)], env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, "campaign ended before it could be killed"
            if (folder / M.MANIFEST_NAME).exists() and (folder / LOG_NAME).exists():
                if manifest(folder)["steps"][0]["status"] == "running" and \
                        "attempt 1: " in (folder / LOG_NAME).read_text():
                    break
            time.sleep(0.02)
        else:
            pytest.fail("the first step never started")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    out = resume_campaign(folder, catalog=fakes.catalog(), connect=lambda c: fakes.FakeStation(),
                          show_progress=False)
    assert out.status == "finished", out.message
    first = manifest(folder)["steps"][0]
    assert [a["status"] for a in first["attempts"]] == ["interrupted", "finished"]
    assert f"resume: step {first['key']} attempt 1 interrupted" in (folder / LOG_NAME).read_text()
    assert_log_matches_manifest(folder)


def test_resume_does_not_overwrite_how_an_attempt_ended(tmp_path):
    """Killed between ending an attempt ("failed") and setting the step back to pending."""
    path = fakes.write_campaign(tmp_path, points=3)
    out = run_campaign(path, output=tmp_path / "out", catalog=fakes.catalog(),
                       connect=lambda c: fakes.FakeStation(), show_progress=False)
    data = manifest(out.folder)
    step = data["steps"][2]
    step["status"] = "running"
    step["attempts"][-1]["status"] = "failed"
    M.write_json_atomic(out.folder / M.MANIFEST_NAME, data)
    (out.folder / step["file"]).unlink()  # the failed attempt's file went to partial/
    resume_campaign(out.folder, catalog=fakes.catalog(), connect=lambda c: fakes.FakeStation(),
                    show_progress=False)
    attempts = manifest(out.folder)["steps"][2]["attempts"]
    assert [a["status"] for a in attempts] == ["failed", "finished"]


def test_campaign_on_a_station_in_use_is_refused_before_the_folder_exists(tmp_path, capsys):
    campaign = tmp_path / "busy.toml"
    campaign.write_text('[campaign]\nname = "busy"\n[station]\nsimulated = true\n'
                        'preset = "nb-foil"\nspeed = 200\n'
                        '[[step]]\nname = "cool"\ntemperature_K = [10]\n')
    st = Station.simulated("nb-foil", speed=200.0)
    with L.StationLock.acquire(st, "gui"):
        rc = cli.main(["campaign", "run", str(campaign), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    assert len(err) == 1 and f"in use by pid {os.getpid()}" in err[0]
    assert not (tmp_path / "o").exists()


def test_campaign_on_a_station_a_dead_process_drove_recovers_it_first(tmp_path):
    campaign = tmp_path / "busy.toml"
    campaign.write_text('[campaign]\nname = "after a kill"\n[station]\nsimulated = true\n'
                        'preset = "nb-foil"\nspeed = 500\n'
                        '[[step]]\nname = "cool"\ntemperature_K = [10]\n')
    st = Station.simulated("nb-foil")
    info = L.LockInfo.for_this_process(st, "campaign").to_dict()
    info.update(pid=int(Path("/proc/sys/kernel/pid_max").read_text()) + 1)
    L.lock_path(st).parent.mkdir(parents=True, exist_ok=True)
    L.lock_path(st).write_text(json.dumps(info))
    out = run_campaign(campaign, output=tmp_path / "o", show_progress=False)
    assert out.status == "finished", out.message
    log = (out.folder / LOG_NAME).read_text()
    recovery = log.index("STATION RECOVERY")
    assert "put in its safe state after its previous driver" in log
    assert recovery < log.index("attempt 1: ")  # before anything moved
    assert not L.lock_path(st).exists()
