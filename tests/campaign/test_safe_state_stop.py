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


def test_sigterm_aborts_the_step_and_leaves_the_campaign_resumable(tmp_path):
    import json
    import os
    import signal
    import subprocess
    import time

    from daqapp.campaign import manifest as M
    from daqapp.storage import open_run

    path = fakes.write_campaign(tmp_path, points=200, delay=0.02)
    folder = tmp_path / "terminated"
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import campaign_fakes as f\n"
        "from daqapp.campaign.executor import run_campaign\n"
        "from daqapp.runner.signals import exit_code\n"
        "station = f.FakeStation()\n"
        "out = run_campaign(sys.argv[2], output=sys.argv[3], catalog=f.catalog(),\n"
        "                   connect=lambda c: station, show_progress=False)\n"
        "print(out.status, '|', out.message, '|', out.safe_state, '|', station.safe_calls)\n"
        "sys.exit(exit_code(1))\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(Path(__file__).parent),
                             str(path), str(folder)], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2])))
    try:
        deadline = time.monotonic() + 60
        step_file = None
        while time.monotonic() < deadline and proc.poll() is None:
            if (folder / M.MANIFEST_NAME).exists():
                step = json.loads((folder / M.MANIFEST_NAME).read_text())["steps"][0]
                step_file = folder / f"{step['key']}.h5"
                if step["status"] == "running" and step_file.exists():
                    try:
                        with open_run(step_file) as reader:
                            if reader.n_rows >= 3:
                                break
                    except Exception:  # noqa: BLE001 - not yet in SWMR mode
                        pass
            time.sleep(0.05)
        assert proc.poll() is None, "campaign ended before SIGTERM"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    status, message, verdict, safe_calls = (part.strip() for part in out.split("|"))
    assert status == "interrupted" and message == "terminated by SIGTERM (resume to continue)"
    assert verdict == "safe state applied (not read back)" and int(safe_calls) >= 2
    data = json.loads((folder / M.MANIFEST_NAME).read_text())
    first = data["steps"][0]
    assert first["status"] == "pending"
    (attempt,) = first["attempts"]
    assert attempt["status"] == "interrupted"
    with open_run(folder / attempt["partial_file"]) as reader:
        assert reader.status == "aborted"
        assert str(reader.attrs["error"]) == "terminated by SIGTERM"
