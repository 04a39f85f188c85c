"""The operator window against the virtual lab: live spectrum and fit, replay, safe stop/abort.

Each test drives the window as an operator would (pick a procedure, edit fields, queue, press
stop/pause/abort) and checks what the window shows against the run's own data, and what the
emulated instruments were left doing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qtpy import QtCore, QtWidgets

from daqapp.gui.main_window import DEFAULT_SIZE, MainWindow
from daqapp.gui.replay import ReplayWindow
from daqapp.station import Station
from daqapp.storage import open_run

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SPEED = 1000.0


@pytest.fixture(scope="module")
def aux_station():
    """Virtual lab with the DC bias from the SR830 AUX output (the seed's wiring)."""
    with Station.simulated(speed=SPEED, seed=3).connect() as conn:
        yield conn


@pytest.fixture(scope="module")
def source_station():
    """Virtual lab with the DC bias from the Keithley 6221."""
    config = Station.simulated(speed=SPEED, seed=4, wiring={"dc_bias_source": "current_source"})
    with config.connect() as conn:
        yield conn


def open_window(qtbot, station, tmp_path, settings=None) -> MainWindow:
    window = MainWindow(station, output_dir=tmp_path, monitor_interval_s=0.2,
                        settings=settings)
    qtbot.addWidget(window)
    window.show()
    return window


def set_fields(window: MainWindow, procedure: str, **values: str) -> None:
    form = window.select_procedure(procedure)
    for key, text in values.items():
        editor = form.fields[key].editor
        if isinstance(editor, QtWidgets.QComboBox):
            editor.setCurrentText(text)
        else:
            editor.setText(text)
    assert form.is_valid(), form.errors()


def safe_state(conn) -> dict:
    lockin = conn.lab.emulators["lockin"]
    return {"source_output": conn.lab.emulators["current_source"].output,
            "slvl": lockin.slvl, "aux": list(lockin.aux_out)}


SAFE = {"source_output": False, "slvl": 0.004, "aux": [0.0, 0.0, 0.0, 0.0]}


def clipped_widgets(window: QtWidgets.QWidget) -> list[str]:
    """Visible text widgets smaller than Qt says they need (i.e. drawn clipped)."""
    kinds = (QtWidgets.QLabel, QtWidgets.QAbstractButton, QtWidgets.QLineEdit,
             QtWidgets.QComboBox, QtWidgets.QProgressBar)
    bad = []
    for widget in window.findChildren(QtWidgets.QWidget):
        if not isinstance(widget, kinds) or not widget.isVisible():
            continue
        if widget.visibleRegion().isEmpty():
            continue  # in a dock tab that is not in front
        if widget.metaObject().className().startswith("QDockWidgetTitle"):
            continue  # Qt's own float/close glyphs in dock title bars
        if isinstance(widget, QtWidgets.QLabel) and widget.wordWrap():
            continue
        need = widget.minimumSizeHint()
        if widget.width() < need.width() or widget.height() < need.height():
            text = getattr(widget, "text", lambda: "")()
            bad.append(f"{widget.metaObject().className()} {text!r}: {widget.width()}x"
                       f"{widget.height()} < {need.width()}x{need.height()}")
    return bad


def _has_fit(path, name: str) -> bool:
    """Poll the file closing it each time: a reader left open until garbage collection
    keeps the fit worker's append (same process, read-write) out of the file."""
    with open_run(path) as run:
        return name in run.fits


def test_live_spectrum_is_plotted_fitted_stored_and_replayed_identically(qtbot, aux_station,
                                                                         tmp_path):
    settings = QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.Format.IniFormat)
    window = open_window(qtbot, aux_station, tmp_path, settings)
    set_fields(window, "didv-lockin", bias_start="-0.0002", bias_stop="0.0002", points="81",
               directions="up")
    item = window.queue_current()
    assert item is not None
    # the next session offers the values last queued
    later = open_window(qtbot, aux_station, tmp_path, settings)
    form = later.select_procedure("didv-lockin")
    assert form.values()["points"] == 81 and form.values()["directions"] == "up"
    later.shutdown()
    qtbot.waitUntil(lambda: item.finished, timeout=120_000)
    assert item.status == "finished", item.error
    qtbot.waitUntil(lambda: window.last_fit is not None, timeout=120_000)
    window._redraw(force=True)  # noqa: SLF001 - the timer's redraw, now

    # the plot holds exactly the run's data, in display units
    with open_run(item.path) as run:
        stored = run.columns
        fits = run.fits
    x, y = window.plots.didv.trace_data("sweep current")
    np.testing.assert_array_equal(x, stored["dc_voltage"] * 1e3)
    np.testing.assert_array_equal(y, stored["didv"] * 1e3)
    assert len(x) == 81
    # the fit table shows Δ with an error, the comparison ranks the model, the file has it
    rows = {r.name: r for r in window.fit_panel.parameter_rows()}
    assert {"Δ1", "Δ2", "Γ1", "Z1"} <= set(rows)
    assert np.isfinite(rows["Δ1"].value) and rows["Δ1"].error > 0
    assert window.fit_panel.param_table.rowCount() == len(rows)
    assert window.fit_panel.compare_table.item(0, 0).text() == "s+s"
    qtbot.waitUntil(lambda: _has_fit(item.path, "sweep0000_s+s"), timeout=30_000)
    fx, fy = window.plots.didv.trace_data("fit")
    assert fx.min() == pytest.approx(x.min()) and np.all(np.isfinite(fy))
    assert fits is not None
    assert safe_state(aux_station) == SAFE

    # the window at its default size, nothing clipped; kept as a test artifact
    assert (window.width(), window.height()) == DEFAULT_SIZE
    assert clipped_widgets(window) == []
    ARTIFACTS.mkdir(exist_ok=True)
    assert window.grab().save(str(ARTIFACTS / "main-window.png"))

    # replay of the file draws the same curves and refits to the same gaps
    replay = ReplayWindow([item.path], autoplay=False)
    qtbot.addWidget(replay)
    replay.run_to_end()
    assert replay.wait_fits(120)
    for plot in ("didv", "iv"):
        live, again = window.plots.plots()[plot], replay.plots.plots()[plot]
        assert again.trace_keys() and set(live.trace_keys()) >= set(again.trace_keys())
        for key in again.trace_keys():
            if key == "fit":
                continue
            for a, b in zip(live.trace_data(key), again.trace_data(key), strict=True):
                np.testing.assert_array_equal(a, b)
    replayed = {r.name: r for r in replay.fit_panel.parameter_rows()}
    assert replayed["Δ1"].value == pytest.approx(rows["Δ1"].value, rel=1e-6)
    written = replay.export_plots(tmp_path / "figures", ".svg")
    assert all(p.stat().st_size > 0 for p in written)
    csv = replay.fit_panel.export_csv(tmp_path / "fits.csv").read_text()
    assert "Δ1" in csv and "chi2_red" in csv
    replay.close()
    window.shutdown()


def test_pause_stop_and_abort_leave_the_instruments_safe(qtbot, aux_station, source_station,
                                                         tmp_path):
    window = open_window(qtbot, aux_station, tmp_path / "aux")
    # a value beyond a station limit is refused at its field, naming the limit
    form = window.select_procedure("didv-lockin")
    field = form.fields["bias_stop"]
    field.editor.setText("0.05")
    assert not field.error.isHidden()
    assert "bias_stop = 0.05 A is outside the allowed range" in field.error.text()
    # the range the station allows, worded as the command line words it
    assert "-0.001 to 0.001 A on this station (procedure -0.105 to 0.105 A)" in \
        field.error.text()
    assert not window.queue_button.isEnabled() and window.queue_current() is None
    assert window.queue.items == []
    field.editor.setText("0.0002")
    assert field.error.isHidden() and window.queue_button.isEnabled()
    set_fields(window, "didv-lockin", points="3001", directions="up")
    item = window.queue_current()
    qtbot.waitUntil(lambda: item.buffer is not None and len(item.buffer) >= 5, timeout=60_000)
    assert safe_state(aux_station)["aux"][0] != 0.0  # the bias is on while it runs
    window.pause_button.click()
    qtbot.waitUntil(lambda: item.status == "paused", timeout=30_000)
    rows_paused = len(item.buffer)
    qtbot.wait(300)
    assert len(item.buffer) <= rows_paused + 1  # at most the point in progress
    window.pause_button.click()
    qtbot.waitUntil(lambda: len(item.buffer) > rows_paused + 2, timeout=30_000)
    window.stop_button.click()
    qtbot.waitUntil(lambda: item.finished, timeout=60_000)
    assert item.status == "stopped"
    assert len(item.buffer) < 3001
    with open_run(item.path) as run:
        assert run.n_rows == len(item.buffer)  # the last point was finished and saved
    assert safe_state(aux_station) == SAFE
    assert "stopped" in window.run_label.text()
    window.shutdown()

    window = open_window(qtbot, source_station, tmp_path / "source")
    set_fields(window, "didv-lockin", points="3001", directions="up")
    first = window.queue_current()
    queued = window.queue_current()  # a second run waits in the queue
    qtbot.waitUntil(lambda: first.buffer is not None and len(first.buffer) >= 5,
                    timeout=60_000)
    assert safe_state(source_station)["source_output"] is True
    window.abort_button.click()
    qtbot.waitUntil(lambda: first.finished, timeout=60_000)
    assert first.status == "aborted"
    assert queued not in window.queue.items  # abort also drops what was queued
    assert safe_state(source_station) == SAFE
    assert "aborted" in window.run_label.text()
    log = "\n".join(window.log_panel.lines())
    assert "ABORT requested" in log and "aborted" in log
    window.shutdown()
