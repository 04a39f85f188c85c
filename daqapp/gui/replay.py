"""Replay viewer: play run files into the same plots and fits as a live run.

A file is read with the storage reader (``open_run``; SWMR, so a file another process is still
writing works too, and ``refresh()`` picks up its new rows). Its rows go, in order, into a
:class:`~daqapp.storage.RunBuffer` — the buffer type a live run fills — and the window's
:class:`~daqapp.gui.plotset.PlotSet` draws that buffer with the live window's code. The rows
also go, as record and sweep-end events, to a :class:`~daqapp.fitworker.FitWorker`, so spectra
are fitted as they "complete", with any model the operator picks. Playback runs at a chosen
multiple of the recorded pace (from the ``time`` column) or all at once.

``open_replay_window(paths, speed)`` is the entry point other commands use (``daqapp replay``);
a folder among ``paths`` stands for its run files (a campaign), played oldest first, with one
Δ(T) across all of them, and the R–T curve of every R–T file played so far kept on the R–T
plot (each file's run otherwise replaces the one before on the plots).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from qtpy import QtCore, QtWidgets

from daqapp.analysis.spectroscopy import RunFacts, facts_from_run
from daqapp.errors import DataFileError
from daqapp.fitworker import (
    FitUpdate,
    FitWorker,
    RunFitStore,
    Spectrum,
    SweepCollector,
)
from daqapp.gui.channels import PlotChannels
from daqapp.gui.fitpanel import FitPanel
from daqapp.gui.plots import PALETTE
from daqapp.gui.plotset import PlotSet
from daqapp.storage import RunBuffer, open_run

log = logging.getLogger(__name__)

#: playback speeds offered (multiples of the recorded pace); None = all at once
SPEEDS: tuple[float | None, ...] = (None, 1.0, 10.0, 100.0, 1000.0)
#: rows per second at speed 1 when a run has no time column
_ROWS_PER_SECOND = 10.0
_TICK_MS = 100


def spectra_from_columns(columns: Mapping[str, np.ndarray], units: Mapping[str, str],
                         source: str = "", facts: RunFacts | None = None) -> list[Spectrum]:
    """Every complete sweep of a run's columns, as the fit worker's spectra."""
    collector = SweepCollector(units, source, facts)
    names = list(columns)
    n = min((len(v) for v in columns.values()), default=0)
    out: list[Spectrum] = []
    blocks = [np.asarray(columns[k][:n]).tolist() for k in names]
    for row in zip(*blocks, strict=True):
        done = collector.add(dict(zip(names, row, strict=True)))
        if done is not None:
            out.append(done)
    last = collector.finish()
    if last is not None:
        out.append(last)
    return out


def expand_run_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given; a folder (a campaign) becomes its readable runs, oldest first."""
    from daqapp.storage import list_runs

    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out += [Path(r.path) for r in list_runs(path) if r.status != "unreadable"]
        else:
            out.append(path)
    return out


class _Player:
    """One file being replayed: its reader, the rows already played, its buffer."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.reader = open_run(self.path)
        self.units = self.reader.units
        #: what the file says about its measurement (series resistance, excitation)
        self.facts = facts_from_run(self.reader)
        self.buffer = RunBuffer(self.units)
        self.played = 0
        self.t0_file: float | None = None
        self.start_epoch = _start_epoch(self.reader)
        self.done = False
        self._columns: dict[str, np.ndarray] = {}

    def available(self) -> int:
        return self.reader.n_rows

    def refresh(self) -> int:
        """New rows written since (the file may still be growing)."""
        try:
            return self.reader.refresh()
        except (OSError, DataFileError, KeyError) as exc:
            log.warning("%s: refresh failed: %s", self.path.name, exc)
            return self.reader.n_rows

    def rows(self, stop: int) -> dict[str, np.ndarray]:
        """Columns of rows ``played:stop``."""
        return {name: np.asarray(self.reader.column(name)[self.played:stop])
                for name in self.reader.column_names}

    @property
    def live(self) -> bool:
        return self.reader.raw_status == "running" and self.reader.is_live


def _start_epoch(reader: Any) -> float | None:
    from datetime import datetime

    text = reader.start_time
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


class ReplayWindow(QtWidgets.QMainWindow):
    """Plays run files into the standard plots and fits; see the module docstring."""

    fit_ready = QtCore.Signal(object)

    def __init__(self, paths: Sequence[str | Path], speed: float | None = None,
                 models: Sequence[str] = ("s+s",), fit: bool = True, autoplay: bool = True,
                 fitter: Any = None, dimension: int = 2,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.paths = expand_run_paths(paths)
        if not self.paths:
            raise DataFileError("replay: no run file given (or the folders hold none)")
        self.players = [_Player(p) for p in self.paths]  # opens (and checks) every file first
        self.index = 0
        self.speed = speed
        self.fit_enabled = fit
        self.playing = False
        self._clock_origin: float | None = None
        self._file_origin: float | None = None
        self.setWindowTitle("Replay — " + ", ".join(p.name for p in self.paths[:3])
                            + (" …" if len(self.paths) > 3 else ""))
        self.plots = PlotSet(self)
        self.fitworker = FitWorker(models=models, dimension=dimension, fitter=fitter)
        self.fitworker.add_listener(self.fit_ready.emit)
        self.fit_ready.connect(self._on_fit)
        self.collector_events: list[str] = []
        self.last_fit: FitUpdate | None = None
        #: R–T curves of the files played so far: (trace key, legend, T, R) in display units
        self.rt_history: list[tuple[str, str, np.ndarray, np.ndarray]] = []
        self.skipped_exports: list[str] = []
        self._build(models)
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(_TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.resize(1400, 900)
        self._start_file(0)
        if autoplay:
            self.play()

    # -- layout ----------------------------------------------------------------------------
    def _build(self, models: Sequence[str]) -> None:
        bar = self.addToolBar("Replay")
        bar.setMovable(False)
        self.file_label = QtWidgets.QLabel()
        bar.addWidget(self.file_label)
        bar.addSeparator()
        bar.addWidget(QtWidgets.QLabel("Speed: "))
        self.speed_combo = QtWidgets.QComboBox()
        for s in SPEEDS:
            self.speed_combo.addItem("all at once" if s is None else f"{s:g}×", s)
        self.speed_combo.setCurrentIndex(SPEEDS.index(self.speed) if self.speed in SPEEDS else 0)
        if self.speed not in SPEEDS:
            self.speed_combo.addItem(f"{self.speed:g}×", self.speed)
            self.speed_combo.setCurrentIndex(self.speed_combo.count() - 1)
        self.speed_combo.currentIndexChanged.connect(self._speed_changed)
        bar.addWidget(self.speed_combo)
        self.play_button = QtWidgets.QPushButton("❚❚ Pause")
        self.play_button.clicked.connect(self._toggle_play)
        bar.addWidget(self.play_button)
        restart = QtWidgets.QPushButton("⟲ Restart")
        restart.clicked.connect(self.restart)
        bar.addWidget(restart)
        self.fit_box = QtWidgets.QCheckBox("Fit spectra")
        self.fit_box.setChecked(self.fit_enabled)
        self.fit_box.toggled.connect(lambda on: setattr(self, "fit_enabled", on))
        bar.addWidget(self.fit_box)
        self.store_box = QtWidgets.QCheckBox("Store refits in the file")
        self.store_box.setToolTip("Append the refit results to the run file's fits group "
                                  "(only for files no longer being written)")
        bar.addWidget(self.store_box)
        export = QtWidgets.QPushButton("Export figures…")
        export.clicked.connect(self._export_dialog)
        bar.addWidget(export)
        bar.addSeparator()
        self.position_label = QtWidgets.QLabel()
        bar.addWidget(self.position_label)

        self.setCentralWidget(self.plots.didv)
        self.fit_panel = FitPanel(models)
        self.fit_panel.refit_requested.connect(self.refit)
        self.fit_panel.models_changed.connect(
            lambda ms: self.fitworker.set_models(ms) if ms else None)
        docks = {}
        right, bottom = (QtCore.Qt.DockWidgetArea.RightDockWidgetArea,
                         QtCore.Qt.DockWidgetArea.BottomDockWidgetArea)
        for key, title, widget, area in (
                ("fits", "Fits", self.fit_panel, right),
                ("gap", "Δ(T) and BCS fit", self.plots.gap, right),
                ("iv", "I–V", self.plots.iv, bottom),
                ("rt", "R–T", self.plots.rt, bottom),
                ("tb", "Temperature and field", self.plots.tb, bottom),
                ("custom", "X–Y", self.plots.custom, bottom)):
            dock = QtWidgets.QDockWidget(title, self)
            dock.setObjectName(key)
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            docks[key] = dock
        self.tabifyDockWidget(docks["iv"], docks["rt"])
        self.tabifyDockWidget(docks["rt"], docks["custom"])
        docks["iv"].raise_()
        self.splitDockWidget(docks["iv"], docks["tb"], QtCore.Qt.Orientation.Horizontal)
        self.resizeDocks([docks["fits"]], [440], QtCore.Qt.Orientation.Horizontal)
        self.resizeDocks([docks["iv"]], [260], QtCore.Qt.Orientation.Vertical)
        self.docks = docks

    # -- playback --------------------------------------------------------------------------
    @property
    def player(self) -> _Player:
        return self.players[self.index]

    def _start_file(self, index: int) -> None:
        self.index = index
        player = self.players[index]
        player.played = 0
        player.buffer.clear()
        player.done = False
        self._collector = SweepCollector(player.units, source=player.path.name,
                                         facts=player.facts)
        self._clock_origin = None
        self._file_origin = None
        if index == 0:
            self.fitworker.reset()
            self.rt_history.clear()
        self.fitworker.store = self._store_for(player)
        self.plots.clear_run()
        self.plots.show_buffer(player.buffer, player.start_epoch, force=True)
        self._draw_rt_history()  # after show_buffer: a new buffer clears the plots
        self._update_labels()

    def _keep_rt(self, player: _Player) -> None:
        """A played file's R–T curve stays on the R–T plot while the next files play."""
        ch = PlotChannels.find(player.units)
        if ch.temperature is None or ch.resistance is None:
            return
        columns = player.buffer.snapshot()
        t, r = columns.get(ch.temperature.column), columns.get(ch.resistance.column)
        if t is None or r is None or not len(t):
            return
        key = f"file {player.path.name}"
        if any(entry[0] == key for entry in self.rt_history):
            return
        label = player.path.stem
        if ch.field is not None and ch.field.column in columns:
            field = columns[ch.field.column][np.isfinite(columns[ch.field.column])]
            if field.size:
                label += f" ({float(np.median(field)) * ch.field.factor:.3g} {ch.field.unit})"
        self.rt_history.append((key, label, np.asarray(t) * ch.temperature.factor,
                                np.asarray(r) * ch.resistance.factor))
        self._draw_rt_history()

    def _draw_rt_history(self) -> None:
        for i, (key, label, t, r) in enumerate(self.rt_history):
            self.plots.rt.set_trace(key, t, r, pen=pg.mkPen(PALETTE[(i + 1) % len(PALETTE)],
                                                            width=1.5), name=label, z=-1)

    def _store_for(self, player: _Player) -> Any:
        def store(name: str, fit: Mapping[str, Any]) -> None:
            if self.store_box.isChecked() and not player.live:
                RunFitStore(None, lambda: player.path)(name, fit)
        return store

    def play(self) -> None:
        self.playing = True
        self.play_button.setText("❚❚ Pause")
        self._clock_origin = None
        self.timer.start()
        self._tick()

    def pause(self) -> None:
        self.playing = False
        self.play_button.setText("▶ Play")
        self.timer.stop()

    def _toggle_play(self) -> None:
        if self.playing:
            self.pause()
        else:
            self.play()

    def restart(self) -> None:
        self._start_file(0)
        self.play()

    def _speed_changed(self, _index: int) -> None:
        self.speed = self.speed_combo.currentData()
        self._clock_origin = None

    def _target_row(self, player: _Player, available: int) -> int:
        """How many rows should have been played by now at the chosen speed."""
        if self.speed is None:
            return available
        now = time.monotonic()
        if self._clock_origin is None:
            self._clock_origin = now
            self._file_origin = None
        elapsed = (now - self._clock_origin) * self.speed
        if "time" in player.reader.column_names and available > 0:
            times = player.reader.column("time")
            if self._file_origin is None:
                start = player.played
                self._file_origin = float(times[start]) if start < available else float(
                    times[available - 1])
                self._played_at_origin = player.played
            return int(np.searchsorted(times[:available], self._file_origin + elapsed,
                                       side="right"))
        if self._file_origin is None:
            self._file_origin = 0.0
            self._played_at_origin = player.played
        return min(available, self._played_at_origin + int(elapsed * _ROWS_PER_SECOND))

    def _tick(self) -> None:
        player = self.player
        if player.played >= player.available():
            player.refresh()
        available = player.available()
        target = max(player.played, min(available, self._target_row(player, available)))
        if target > player.played:
            self._feed(player, target)
        if player.played >= player.available() and not player.live:
            player.refresh()
            if player.played >= player.available():
                self._finish_file(player)
        self.plots.show_buffer(player.buffer, player.start_epoch)
        self._update_labels()

    def run_to_end(self) -> None:
        """Play everything now (all files), as "all at once" does; for scripts and tests."""
        for i in range(self.index, len(self.players)):
            if i != self.index:
                self._start_file(i)
            player = self.player
            player.refresh()
            self._feed(player, player.available())
            self._finish_file(player, advance=False)
            self.plots.show_buffer(player.buffer, player.start_epoch)
        self.pause()
        self._update_labels()

    def _feed(self, player: _Player, stop: int) -> None:
        """Rows ``played:stop`` into the buffer (plots) and, as events, the fit worker."""
        block = player.rows(stop)
        player.buffer.extend_columns(block)
        if self.fit_enabled:
            names = list(block)
            rows = [np.asarray(block[k]).tolist() for k in names]
            for values in zip(*rows, strict=True):
                record = dict(zip(names, values, strict=True))
                spectrum = self._collector.add(record)
                if spectrum is not None:
                    self.fitworker.submit(spectrum)
        player.played = stop

    def _finish_file(self, player: _Player, advance: bool = True) -> None:
        if player.done:
            return
        player.done = True
        if len(self.players) > 1:
            self._keep_rt(player)
        if self.fit_enabled:
            spectrum = self._collector.finish()
            if spectrum is not None:
                self.fitworker.submit(spectrum)
        if advance and self.index + 1 < len(self.players):
            self._start_file(self.index + 1)
        elif advance:
            self.pause()

    def _update_labels(self) -> None:
        player = self.player
        state = "live, following" if player.live else player.reader.status
        self.file_label.setText(f"{self.index + 1}/{len(self.players)} {player.path.name} "
                                f"({state})")
        self.position_label.setText(f"row {player.played} of {player.available()}")

    # -- fits ------------------------------------------------------------------------------
    def _on_fit(self, update: FitUpdate) -> None:
        self.last_fit = update
        self.fit_panel.show_fit(update.parameters, update.comparison, update.status)
        self.plots.show_fit(update)

    def refit(self, models: Sequence[str]) -> None:
        """Fit every played spectrum of every file again with ``models``."""
        if not models:
            return
        spectra: list[Spectrum] = []
        for player in self.players[: self.index + 1]:
            spectra += spectra_from_columns(player.buffer.snapshot(), player.units,
                                            player.path.name, player.facts)
        self.fitworker.refit(spectra, models, self._store_for(self.player))

    def wait_fits(self, timeout: float = 120.0) -> bool:
        """Block (processing Qt events) until the fit worker is idle."""
        deadline = time.monotonic() + timeout
        app = QtCore.QCoreApplication.instance()
        while time.monotonic() < deadline:
            idle = self.fitworker.wait_idle(0.05)
            if app is not None:
                app.processEvents()
            if idle:
                if app is not None:
                    app.processEvents()
                return True
        return False

    # -- export ----------------------------------------------------------------------------
    def plots_with_data(self) -> tuple[dict[str, Any], list[str]]:
        """(plots that hold data, names of those that do not) — a spectrum file has no R–T,
        an R–T file no dI/dV."""
        holding, empty = {}, []
        for name, plot in self.plots.plots().items():
            if any(len(plot.trace_data(key)[0]) for key in plot.trace_keys()):
                holding[name] = plot
            else:
                empty.append(name)
        return holding, empty

    def export_plots(self, folder: str | Path, suffix: str = ".png") -> list[Path]:
        """Every plot holding data as ``<folder>/<file stem>_<plot><suffix>``; the empty ones
        are not written (:attr:`skipped_exports` names them)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        stem = self.player.path.stem
        holding, self.skipped_exports = self.plots_with_data()
        return [plot.export(folder / f"{stem}_{name}{suffix}") for name, plot in holding.items()]

    def _export_dialog(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Export figures to folder",
                                                            str(self.player.path.parent))
        if folder:
            self.statusBar().showMessage(self.export_figures(folder), 15000)

    def export_figures(self, folder: str | Path) -> str:
        """PNG and SVG of the plots holding data, and the fit table; returns what was done."""
        written = self.export_plots(folder, ".png") + self.export_plots(folder, ".svg")
        text = f"Wrote {len(written)} figures to {folder}"
        if self.fit_panel.parameter_rows():
            self.fit_panel.export_csv(Path(folder) / f"{self.player.path.stem}_fits.csv")
            text += " and the fit table"
        if self.skipped_exports:
            text += (f"; skipped (no data in {self.player.path.name}): "
                     + ", ".join(self.skipped_exports))
        log.info("%s", text)
        return text

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self.timer.stop()
        self.fitworker.stop()
        for player in self.players:
            player.reader.close()
        event.accept()


def open_replay_window(paths: Sequence[str | Path], speed: float | None = None,
                       models: Sequence[str] = ("s+s",), fit: bool = True,
                       block: bool = True) -> ReplayWindow:
    """Open run files in a replay window (creating the Qt application if needed).

    ``speed``: multiple of the recorded pace, or None for all at once. With ``block`` (the
    default, for command-line use) this runs the Qt event loop until the window is closed.
    Raises DataFileError naming the file if one cannot be read.
    """
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["daqapp replay"])
    window = ReplayWindow(paths, speed=speed, models=models, fit=fit)
    window.show()
    if block:
        from daqapp.commands.gui import quit_on_interrupt

        quit_on_interrupt(app, window.close)
        app.exec()
    return window

