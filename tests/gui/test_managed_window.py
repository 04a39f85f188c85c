"""A pymeasure-style ManagedWindow script (examples/pymeasure_window.py) on the virtual lab.

The example's window is driven as a pymeasure user drives it: set the inputs, press Queue,
press Abort. What is checked is what pymeasure's own Manager lost: the run file (rows,
columns, units, status), the live plot, and the instruments left in their safe state, read
back from the emulators.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from pymeasure.experiment import Procedure, Worker
from pymeasure.experiment import Results as PymeasureResults

from daqapp.errors import ConfigError
from daqapp.gui.managed import Results
from daqapp.station import Station
from daqapp.storage import open_run
from procedures.iv import CriticalCurrentIV

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pymeasure_window.py"
TIMEOUT_MS = 30_000


def load_example():
    spec = importlib.util.spec_from_file_location("pymeasure_window_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def lab():
    with Station.simulated(speed=1000.0, seed=5).connect() as conn:
        yield conn


def safe_state(conn) -> dict:
    lockin = conn.lab.emulators["lockin"]
    return {"source_output": conn.lab.emulators["current_source"].output,
            "slvl": lockin.slvl, "aux": list(lockin.aux_out)}


SAFE = {"source_output": False, "slvl": 0.004, "aux": [0.0, 0.0, 0.0, 0.0]}


def open_window(qtbot, lab, folder, **inputs):
    window = load_example().IVWindow(lab, folder)
    qtbot.addWidget(window)
    window.show()
    window.set_parameters(CriticalCurrentIV(**inputs).parameter_objects())
    return window


def test_queued_run_is_recorded_plotted_and_ends_safe(qtbot, lab, tmp_path):
    window = open_window(qtbot, lab, tmp_path, points=21, directions="up", current_max=1e-3)
    with qtbot.waitSignal(window.manager.finished, timeout=TIMEOUT_MS) as finished:
        window.queue_button.click()
    experiment = finished.args[0]
    path = Path(experiment.data_filename)
    assert path.parent == tmp_path and path.suffix == ".h5"
    with open_run(path) as run:
        assert run.status == "finished"
        assert run.n_rows == 21
        assert run.column_names == list(CriticalCurrentIV.COLUMNS)
        assert run.units["current"] == "A" and run.units["voltage"] == "V"
        current = run.column("current")
        assert current[-1] == pytest.approx(1e-3)
        assert run.metadata["operator"] == "pymeasure window"
        end = run.snapshots["end"]
        assert end["safe_state_report"]["confirmed"] is True
    assert safe_state(lab) == SAFE
    # the plot shows the file's rows: pymeasure's curve reads the in-memory table
    curve = experiment.curve_list[0]
    curve.update_data()
    x, y = curve.getData()
    np.testing.assert_allclose(x, current)
    assert len(y) == 21 and np.isfinite(y).all()
    assert experiment.browser_item.progressbar.value() == 100


def test_abort_ends_the_run_aborted_with_the_station_safe(qtbot, lab, tmp_path):
    window = open_window(qtbot, lab, tmp_path, points=20_000, directions="up",
                         current_max=1e-3, settle=0.05)
    window.queue_button.click()
    results = window.manager.running_experiment().results
    qtbot.waitUntil(lambda: results.rows >= 5, timeout=TIMEOUT_MS)
    assert lab.lab.emulators["current_source"].output is True  # driving the sample now
    with qtbot.waitSignal(window.manager.abort_returned, timeout=TIMEOUT_MS):
        window.abort_button.click()
    with open_run(results.data_filename) as run:
        assert run.status == "aborted"
        assert run.attrs["error"] == "aborted by operator"
        assert 5 <= run.n_rows < 20_000
        assert run.n_rows == len(results.data)
        assert json.dumps(run.snapshots["end"]["safe_state_report"]["confirmed"]) == "true"
    assert safe_state(lab) == SAFE
    assert window.abort_button.text() == "Resume"


def test_refused_before_anything_is_queued(qtbot, tmp_path):
    # a station config, never connected: a refused run must not need (or move) instruments
    tight = Station.simulated(limits={"max_current_a": 1e-3})
    window = open_window(qtbot, tight, tmp_path, points=21, directions="up", current_max=0.05)
    window.queue_button.click()  # within the procedure's range, beyond the station's 1 mA
    assert "current_max = 0.05 A is outside" in window.statusBar().currentMessage()
    procedure = window.make_procedure()
    csv = PymeasureResults(procedure, str(tmp_path / "pymeasure.csv"))
    with pytest.raises(ConfigError, match="pymeasure's CSV Results"):
        window.manager.queue(window.new_experiment(csv))
    with pytest.raises(ConfigError, match="give a name ending in .h5"):
        Results(procedure, tmp_path / "run.csv")
    procedure.current_max = 1e-3
    Results(procedure, tmp_path / "run.h5", station=tight)  # the same run within the limit
    assert not window.manager.is_running() and list(window.manager.experiments) == []
    assert list(tmp_path.glob("*.h5")) == []


def test_an_instrument_fault_fails_the_run_with_the_station_safe(qtbot, tmp_path):
    with Station.simulated(speed=1000.0, seed=6).connect() as lab:
        window = open_window(qtbot, lab, tmp_path, points=20_000, directions="up",
                             current_max=1e-3, settle=0.05)
        window.queue_button.click()
        results = window.manager.running_experiment().results
        qtbot.waitUntil(lambda: results.rows >= 5, timeout=TIMEOUT_MS)
        with qtbot.waitSignal(window.manager.failed, timeout=TIMEOUT_MS):
            lab.lab.faults.set("current_source", "compliance")
        with open_run(results.data_filename) as run:
            assert run.status == "failed"
            assert "compliance" in run.attrs["error"]
            assert run.n_rows >= 5
        lab.lab.faults.clear_all()
        assert safe_state(lab) == SAFE
        assert not window.abort_button.isEnabled()  # nothing left running or queued


def test_a_past_run_file_opens_in_the_browser_and_plot(qtbot, lab, tmp_path):
    window = open_window(qtbot, lab, tmp_path, points=11, directions="up", current_max=5e-4)
    with qtbot.waitSignal(window.manager.finished, timeout=TIMEOUT_MS) as finished:
        window.queue_button.click()
    path = finished.args[0].data_filename
    other = open_window(qtbot, lab, tmp_path / "other")
    experiment = other.load_run(path)
    assert experiment.procedure.points == 11 and experiment.procedure.current_max == 5e-4
    assert experiment.procedure.status == Procedure.FINISHED
    x, _ = experiment.curve_list[0].getData()
    with open_run(path) as run:
        np.testing.assert_array_equal(x, run.column("current"))
    assert other.browser.topLevelItemCount() == 1


def test_pymeasures_own_worker_is_stopped_before_anything_moves(lab, tmp_path):
    """What pymeasure's own Manager did with these results: ran every point, recorded none."""
    path = tmp_path / "lost.h5"
    results = Results(CriticalCurrentIV(points=21, directions="up", current_max=1e-3), path,
                      station=lab)
    worker = Worker(results)
    with pytest.raises(RuntimeError, match="record only under daqapp's StorageWorker"):
        worker.run()  # in this thread: the Worker's own thread would die the same way
    assert results.procedure.status == Procedure.QUEUED  # startup() never ran
    assert not path.exists() and safe_state(lab) == SAFE


def test_closing_the_window_mid_run_returns_with_the_station_safe(qtbot, lab, tmp_path):
    window = open_window(qtbot, lab, tmp_path, points=20_000, directions="up",
                         current_max=1e-3, settle=0.05)
    window.queue_button.click()
    results = window.manager.running_experiment().results
    qtbot.waitUntil(lambda: results.rows >= 5, timeout=TIMEOUT_MS)
    window.close()  # what quitting does; the script closes the station right after
    assert safe_state(lab) == SAFE  # no wait: close() returned after the safe state
    with open_run(results.data_filename) as run:
        assert run.status == "aborted" and run.n_rows == results.rows
