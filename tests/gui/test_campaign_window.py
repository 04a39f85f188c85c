"""Campaigns from the window, on the CLI's engine: run, pause, resume, abort, resume after a
kill, one driver per station, and the queue saved as a campaign the CLI accepts.

A tiny campaign (three lock-in spectra) runs on the virtual lab at a high speed-up; every check
is made on what the campaign folder holds afterwards (manifest, run files) and on what the
window showed while it ran.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from daqapp import cli
from daqapp.campaign import manifest as M
from daqapp.campaign.catalog import ProcedureCatalog
from daqapp.campaign.executor import load_for_run
from daqapp.errors import DataFileError
from daqapp.gui.main_window import MainWindow
from daqapp.station import Station
from daqapp.station import lock as L
from daqapp.storage import open_run

ROOT = Path(__file__).resolve().parents[2]
SPEED = 1000.0


def campaign_file(tmp_path: Path, name: str = "tiny", preset: str = "la3ni2o7-cell2",
                  points: int = 81, speed: float = SPEED) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(f"""
[campaign]
name = "{name} (window test)"
sample = "La3Ni2O7 (virtual)"

[station]
simulated = true
preset = "{preset}"
speed = {speed}
seed = 5

[defaults]
stabilize = {{ band_K = 0.3, time_s = 5, timeout_s = 1800 }}
on_fault = {{ retries = 0, then = "stop" }}

[[step]]
name = "spectrum"
procedure = "didv-lockin"
field_T = 0
temperature_K = [4, 8, 12]
params = {{ bias_start = -2.1e-4, bias_stop = 2.1e-4, points = {points}, directions = "up" }}
""", encoding="utf-8")
    return path


def manifest(folder: Path) -> dict:
    return json.loads((folder / M.MANIFEST_NAME).read_text())


def open_window(qtbot, station, tmp_path) -> MainWindow:
    window = MainWindow(station, output_dir=tmp_path / "runs", monitor_interval_s=0.2)
    qtbot.addWidget(window, before_close_func=lambda w: w.shutdown())  # even after a failure
    window.show()
    return window


def table_column(window: MainWindow, column: int) -> list[str]:
    table = window.campaign_panel.table
    return [table.item(r, column).text() for r in range(table.rowCount())]


def assert_folder_complete(folder: Path, points: int) -> dict:
    """Every step finished, one run file each, complete and closed."""
    data = manifest(folder)
    assert [s["status"] for s in data["steps"]] == [M.FINISHED] * 3
    files = sorted(p.name for p in folder.glob("*.h5"))
    assert files == sorted(f"{s['key']}.h5" for s in data["steps"])
    for step in data["steps"]:
        assert step["file"] == f"{step['key']}.h5"
        with open_run(folder / step["file"]) as run:
            assert run.status == "finished"
            assert run.n_rows == points
            assert run.metadata.get("campaign_step") == step["key"]
    return data


def _has_rows(item, n: int) -> bool:
    return item is not None and item.buffer is not None and len(item.buffer) >= n


@pytest.fixture
def lab():
    with Station.simulated("la3ni2o7-cell2", speed=SPEED, seed=5).connect() as conn:
        yield conn


def test_campaign_runs_pauses_resumes_aborts_and_finishes_in_the_window(qtbot, lab, tmp_path):
    window = open_window(qtbot, lab, tmp_path)
    path = campaign_file(tmp_path)
    assert window.open_campaign(path), window.campaign_panel.message
    # the plan, before anything moves: one row per step with T, B and the estimate
    assert table_column(window, 0) == ["1 spectrum", "2 spectrum", "3 spectrum"]
    assert window.campaign_panel.table.item(1, 0).toolTip() == "002-spectrum-0T-8K"
    assert table_column(window, 2) == ["4", "8", "12"]
    assert table_column(window, 4) == ["pending"] * 3
    assert all(text.startswith("≈") for text in table_column(window, 5))

    folder = tmp_path / "night"
    assert window.start_campaign(folder), window.campaign_panel.message
    assert window.campaign.borrowed  # the window's own station: its connection, its lock
    panel = window.campaign_panel
    # pause in the second step: the measurement holds, the instruments stay where they are
    qtbot.waitUntil(lambda: window.shown is not None and window.shown.label.startswith("002")
                    and _has_rows(window.shown, 10), timeout=60_000)
    step2 = window.shown
    window.pause_button.click()  # the tool bar's verb acts on the campaign
    assert panel.pause_button.isChecked()
    qtbot.waitUntil(lambda: step2.status == "paused", timeout=20_000)
    held = len(step2.buffer)
    qtbot.wait(300)
    assert len(step2.buffer) == held
    assert "PAUSED" in panel.status_text()
    window.pause_button.click()
    qtbot.waitUntil(lambda: len(step2.buffer) > held, timeout=20_000)

    # abort: the step's run is aborted into the safe state, the folder left for resume
    window.abort_button.click()
    qtbot.waitUntil(lambda: not window.campaign.running, timeout=60_000)
    data = manifest(folder)
    assert data["status"] == "interrupted"
    assert data["steps"][0]["status"] == M.FINISHED
    assert data["steps"][1]["attempts"][-1]["status"] == "interrupted"
    assert "interrupted" in table_column(window, 4)
    assert lab.lab.emulators["current_source"].output is False
    assert panel.start_button.text() == "▶ Resume" and panel.start_button.isEnabled()

    panel.start_button.click()  # resume: the finished step is not repeated
    assert window.campaign.running
    qtbot.waitUntil(lambda: not window.campaign.running, timeout=120_000)
    data = assert_folder_complete(folder, points=81)
    assert len(data["steps"][0]["attempts"]) == 1
    assert [a["status"] for a in data["steps"][1]["attempts"]] == ["interrupted", "finished"]
    assert (folder / data["steps"][1]["attempts"][0]["partial_file"]).is_file()
    assert table_column(window, 4) == ["finished"] * 3
    assert "campaign finished" in panel.state_label.text()

    # progress as shown: never backwards within a session, complete at the end
    shown = panel.shown_fractions
    assert shown and all(b >= a for a, b in zip(shown, shown[1:], strict=False))
    assert shown[-1] == pytest.approx(1.0)
    # each step was plotted and fitted like a queued run: the last one's data, on-line fit
    qtbot.waitUntil(lambda: window.last_fit is not None, timeout=60_000)
    window._redraw(force=True)  # noqa: SLF001 - the timer's redraw, now
    with open_run(folder / data["steps"][2]["file"]) as run:
        stored = run.columns
    x, _ = window.plots.didv.trace_data("sweep current")
    np.testing.assert_array_equal(x, stored["dc_voltage"] * 1e3)
    # each log line once: the run's copy of a record the panel already showed is dropped
    lines = window.log_panel.lines()
    assert sum("lock-in spectrum: 81 points" in line for line in lines) == 4  # 3 + 1 retry
    window.shutdown()


CLI_RUN = [sys.executable, "-m", "daqapp.cli", "campaign", "run"]


def _held(station) -> bool:
    from daqapp.station.lock import StationInUse, check_free

    try:
        check_free(station)
    except StationInUse:
        return True
    return False


def test_a_station_the_cli_holds_is_refused_and_a_killed_campaign_resumes_in_the_window(
        qtbot, tmp_path):
    path = campaign_file(tmp_path, "killed", points=161, speed=500)
    folder = tmp_path / "killed-run"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([*CLI_RUN, str(path), "--output", str(folder), "--no-progress",
                             "--no-report"], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # the window drives another station (its own virtual lab) and has the campaign open
    with Station.simulated("nb-foil", speed=SPEED, seed=1).connect() as other:
        window = open_window(qtbot, other, tmp_path)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                steps = manifest(folder)["steps"] if (folder / M.MANIFEST_NAME).exists() \
                    else []
                if steps and steps[0]["status"] == M.FINISHED and \
                        steps[1]["status"] == M.RUNNING:
                    try:
                        with open_run(folder / f"{steps[1]['key']}.h5") as reader:
                            if reader.n_rows >= 3:
                                break
                    except DataFileError:  # created, not yet readable
                        pass
                assert proc.poll() is None, "the CLI campaign ended before it could be killed"
                qtbot.wait(50)
            else:
                pytest.fail("the CLI campaign never reached its second step")

            # the window tries the station the CLI drives: one line naming the CLI process
            assert window.open_campaign(path)
            assert not window.start_campaign(tmp_path / "second")
            message = window.campaign_panel.message
            assert f"in use by pid {proc.pid} (daqapp campaign run" in message, message
            assert "\n" not in message and "Traceback" not in message
            assert not (tmp_path / "second").exists()
            assert not window.resume_campaign_folder(folder)  # nor its folder
            assert f"in use by pid {proc.pid}" in window.campaign_panel.message
            assert window.statusBar().currentMessage() == window.campaign_panel.message

            os.kill(proc.pid, signal.SIGKILL)  # as a power cut or kill -9 would
        finally:
            proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
        first = folder / manifest(folder)["steps"][0]["file"]
        first_bytes = first.read_bytes()

        # resumed in the window: the station recovered from the dead CLI, then driven
        assert window.resume_campaign_folder(folder), window.campaign_panel.message
        assert not window.campaign.borrowed
        # ... and now the CLI is the one refused, naming the window's process (once the
        # window's engine thread holds the station: it takes the lock as it connects)
        from daqapp.campaign.executor import unconnected_station
        from daqapp.campaign.spec import load_campaign

        station = unconnected_station(load_campaign(path))
        qtbot.waitUntil(lambda: _held(station), timeout=60_000)
        assert cli.main(["campaign", "resume", str(folder)]) == 2
        qtbot.waitUntil(lambda: not window.campaign.running, timeout=120_000)
        data = assert_folder_complete(folder, points=161)
        assert first.read_bytes() == first_bytes  # the finished step was not repeated
        second = data["steps"][1]
        assert [a["status"] for a in second["attempts"]] == ["interrupted", "finished"]
        with open_run(folder / second["attempts"][0]["partial_file"]) as partial:
            assert partial.n_rows >= 3
        assert len(data["sessions"]) == 2
        log = (folder / "campaign.log").read_text()
        assert "STATION RECOVERY" in log
        station = Station.simulated("la3ni2o7-cell2")
        assert not L.lock_path(station).exists()  # released when the window's session ended
        window.shutdown()


def test_cli_refusal_names_the_window(capsys, qtbot, tmp_path):
    """The other way round: a station the window drives is refused to the CLI in one line."""
    station = Station.simulated("nb-foil", speed=SPEED)
    with L.connect_for_driving(station, "gui") as conn:
        window = open_window(qtbot, conn, tmp_path)
        rc = cli.main(["campaign", "run", str(campaign_file(tmp_path, preset="nb-foil")),
                       "--output", str(tmp_path / "o")])
        window.shutdown()
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and f"in use by pid {os.getpid()}" in err[0], err


def test_save_queue_as_campaign_round_trips(qtbot, lab, tmp_path, capsys):
    window = open_window(qtbot, lab, tmp_path)
    window.hold_box.setChecked(True)  # build tonight's queue without running it
    queued = []
    for points, start in ((41, "-0.0002"), (61, "-0.0001")):
        form = window.select_procedure("didv-lockin")
        form.fields["points"].editor.setText(str(points))
        form.fields["bias_start"].editor.setText(start)
        item = window.queue_current()
        assert item is not None and item.status == "queued"
        queued.append(item)
    path = window.save_queue_as_campaign(tmp_path / "tonight.toml")

    # the CLI's loader accepts it, with the queued values as each step's parameters
    campaign = load_for_run(path, ProcedureCatalog())
    assert [s.procedure for s in campaign.steps] == ["didv-lockin"] * 2
    assert [s.params for s in campaign.steps] == [item.values for item in queued]
    assert campaign.station.simulated and campaign.station.preset == "la3ni2o7-cell2"
    assert cli.main(["campaign", "run", str(path), "--dry-run"]) == 0
    assert "valid: nothing was moved" in capsys.readouterr().out
    # and the window opens it back
    assert window.open_campaign(path), window.campaign_panel.message
    assert table_column(window, 1) == ["didv-lockin"] * 2
    assert window.campaign_panel.start_button.isEnabled()
    # an empty queue is refused, naming why, and writes nothing
    window.queue.items.clear()
    with pytest.raises(Exception, match="queue is empty"):
        window.save_queue_as_campaign(tmp_path / "empty.toml")
    assert not (tmp_path / "empty.toml").exists()
    window.shutdown()


def test_campaign_dock_is_in_the_view_menu(qtbot, lab, tmp_path):
    window = open_window(qtbot, lab, tmp_path)
    menu = window.menuBar().actions()[0].menu()
    texts = [a.text() for a in menu.actions()]
    for wanted in ("Open campaign…", "Resume campaign folder…", "Save queue as campaign…"):
        assert wanted in texts
    window.shutdown()
