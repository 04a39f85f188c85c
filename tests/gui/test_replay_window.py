"""The replay window and the panels it shares with the live window, as an operator reads them:
the R–T tab of a campaign folder, figure export, the Runs status column, the log, the
temperature-and-field legend and the sweep numbering."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from qtpy import QtWidgets

from daqapp.fitworker import sweep_label
from daqapp.gui.logpanel import LogPanel
from daqapp.gui.plotset import PlotSet
from daqapp.gui.replay import ReplayWindow
from daqapp.gui.runs_browser import RunsBrowser
from daqapp.storage import RunBuffer, RunWriter

RT_COLUMNS = {"temperature": "K", "resistance": "Ohm", "field": "T", "time": "s"}
SPECTRUM_COLUMNS = {"dc_voltage": "V", "didv": "S", "temperature": "K", "time": "s",
                    "sweep": ""}


def write_rt(path: Path, field_t: float, rows: int = 60, status: str = "finished") -> Path:
    writer = RunWriter(path, procedure="procedures.rt.ResistanceTemperature",
                       columns=RT_COLUMNS, flush_interval=0.05)
    writer.start({})
    for i in range(rows):
        t = 80.0 - i * 0.5
        writer.append({"temperature": t, "resistance": 10.0 / (1 + np.exp((62 - t) / 1.5)),
                       "field": field_t, "time": 1.7e9 + i})
    writer.finish(status)
    return path


def write_spectrum(path: Path, points: int = 41) -> Path:
    writer = RunWriter(path, procedure="procedures.lockin_spectrum.DifferentialConductanceLockIn",
                       columns=SPECTRUM_COLUMNS, sweep_axis="dc_voltage", flush_interval=0.05)
    writer.start({})
    for i in range(points):
        writer.append({"dc_voltage": (i - points // 2) * 1e-3, "didv": 2e-3 + 1e-6 * i,
                       "temperature": 4.2, "time": 1.7e9 + 100 + i, "sweep": 0})
    writer.finish("finished")
    return path


@pytest.fixture
def campaign_folder(tmp_path) -> Path:
    """Three R–T runs in field, then a spectrum (the last file played)."""
    folder = tmp_path / "campaign"
    folder.mkdir()
    for i, field_t in enumerate((0.0, 2.0, 4.0), start=1):
        write_rt(folder / f"00{i}-rt-{field_t:g}T.h5", field_t)
    write_spectrum(folder / "004-spectrum-0T-4K.h5")
    return folder


def replay(qtbot, paths) -> ReplayWindow:
    window = ReplayWindow(paths, autoplay=False, fit=False)
    qtbot.addWidget(window)
    window.show()
    window.run_to_end()
    return window


def test_rt_tab_of_a_folder_keeps_every_rt_run(qtbot, campaign_folder):
    window = replay(qtbot, [campaign_folder])
    assert window.player.path.name == "004-spectrum-0T-4K.h5"  # the last file played
    rt = window.plots.rt
    keys = [k for k in rt.trace_keys() if k.startswith("file ")]
    assert len(keys) == 3  # was empty: each file's run replaced the one before
    for key, field_t in zip(keys, (0, 2, 4), strict=True):
        temperature, resistance = rt.trace_data(key)
        assert len(temperature) == 60 and np.nanmax(resistance) > 9.0
        assert rt._traces[key].name.endswith(f"({field_t:g} T)")  # noqa: SLF001


def test_export_skips_plots_a_file_does_not_hold_and_says_which(qtbot, tmp_path):
    spectrum = write_spectrum(tmp_path / "spectrum.h5")
    window = replay(qtbot, [spectrum])
    out = tmp_path / "figures"
    text = window.export_figures(out)
    written = sorted(p.name for p in out.iterdir())
    assert "spectrum_didv.png" in written and "spectrum_didv.svg" in written
    assert "spectrum_rt.png" not in written and "spectrum_gap.png" not in written
    assert "skipped (no data in spectrum.h5)" in text and "rt" in text.split("skipped")[1]
    holding, empty = window.plots_with_data()
    assert set(empty) == set(window.skipped_exports) and "rt" in empty
    assert len(written) == 2 * len(holding)


def test_runs_status_column_is_never_cut(qtbot, tmp_path):
    for name, status in (("a.h5", "finished"), ("b.h5", "aborted"), ("c.h5", "failed")):
        write_rt(tmp_path / name, 0.0, rows=5, status=status)
    browser = RunsBrowser(tmp_path)
    qtbot.addWidget(browser)
    browser.resize(380, 300)  # a narrow dock
    browser.show()
    qtbot.waitExposed(browser)
    table = browser.table
    column = browser.STATUS_COLUMN
    statuses = sorted(table.item(r, column).text() for r in range(table.rowCount()))
    assert statuses == ["aborted", "failed", "finished"]
    need = max(table.fontMetrics().horizontalAdvance(s) for s in statuses)
    assert table.columnWidth(column) >= need
    # in view without scrolling (it was the third column, behind the class names)
    assert table.columnViewportPosition(column) + table.columnWidth(column) \
        <= table.viewport().width()
    assert table.item(0, 2).text() == "rt"  # the procedure's short name


def test_log_lines_wrap_and_a_runs_copy_of_a_record_is_shown_once(qtbot):
    panel = LogPanel()
    qtbot.addWidget(panel)
    panel.resize(300, 200)
    panel.show()
    try:
        message = "lock-in spectrum: " + "a long line " * 30
        # a record of the acquisition thread, then the run's copy of it (its log event)
        thread = threading.Thread(target=lambda: logging.getLogger("procedures").info(message))
        thread.start()
        thread.join()
        assert panel.log_run_event("#1", "INFO", message) is False
        assert panel.log_run_event("#1", "INFO", "run ended: finished") is True
        qtbot.waitUntil(lambda: "lock-in spectrum" in panel.toPlainText()
                        and "run ended" in panel.toPlainText())
        text = panel.toPlainText()
        assert text.count("lock-in spectrum") == 1
        assert "#1 run ended: finished" in text
        assert panel.horizontalScrollBar().maximum() == 0  # wrapped, nothing out of sight
    finally:
        panel.detach()


def test_temperature_and_field_legend_sits_outside_the_data(qtbot):
    plots = PlotSet()
    widget = plots.tb
    qtbot.addWidget(widget)
    t = 1.7e9 + np.arange(200.0)
    buffer = RunBuffer(RT_COLUMNS)
    for i in range(200):
        buffer.append({"temperature": 4 + 80 * np.sin(i / 20) ** 2, "resistance": 1.0,
                       "field": i / 25, "time": t[i]})
    plots.show_buffer(buffer, force=True)
    widget.resize(420, 260)
    widget.show()
    qtbot.waitExposed(widget)
    QtWidgets.QApplication.processEvents()
    view = widget.plotItem.getViewBox().sceneBoundingRect()
    legend = widget.legend.sceneBoundingRect()
    assert legend.height() > 0 and not view.intersects(legend)


def test_sweeps_are_numbered_from_one_on_screen(qtbot):
    plots = PlotSet()
    qtbot.addWidget(plots.didv)
    buffer = RunBuffer(SPECTRUM_COLUMNS)
    for i in range(21):
        buffer.append({"dc_voltage": (i - 10) * 1e-3, "didv": 2e-3, "temperature": 4.2,
                       "time": 1.7e9 + i, "sweep": 0})
    plots.show_buffer(buffer, force=True)
    update = SimpleNamespace(fit_bias_mV=np.linspace(-10, 10, 21), fit_didv=np.full(21, 2e-3),
                             best_model="s+s", sweep=0, gap_series=None)
    plots.show_fit(update)
    names = {key: plots.didv._traces[key].name for key in plots.didv.trace_keys()}  # noqa: SLF001
    assert names["sweep current"].startswith("sweep 1,")
    assert names["fit"] == "fit s+s (sweep 1)"  # the same sweep, the same number
    assert sweep_label(0) == "sweep 1"
