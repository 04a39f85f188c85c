"""The standard plots of a run, drawn from an in-memory buffer — the same for live and replay.

:class:`PlotSet` owns the plot widgets (dI/dV with its fit, I–V, R–T, temperature and field
against time, Δ(T) with its BCS fit, and a free X/Y plot) and one method that draws a
:class:`~daqapp.storage.RunBuffer` into them. The live window and the replay viewer both call
it, so a replayed file is drawn by exactly the code that drew the live run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyqtgraph as pg
from qtpy import QtCore, QtWidgets

from daqapp.fitworker import sweep_label
from daqapp.gui.channels import Channel, PlotChannels, display
from daqapp.gui.decimate import Ascending, Envelope
from daqapp.gui.plots import FIT_PEN, PALETTE, LivePlot

#: earlier sweeps kept on the dI/dV plot, faded, behind the current one
HISTORY_SWEEPS = 6
_EPOCH_2001 = 978307200.0  # times below this are relative seconds, not unix time


def _values(columns: Mapping[str, np.ndarray], channel: Channel | None) -> np.ndarray | None:
    """A channel's stored column, unscaled (plots apply ``channel.factor`` to drawn rows)."""
    if channel is None or channel.column not in columns:
        return None
    return columns[channel.column]


class ColumnEnvelopes:
    """Min/max envelopes of a growing buffer's columns, made on first use and extended by the
    rows that arrived since the last redraw (a RunBuffer's rows never change once written)."""

    def __init__(self) -> None:
        self._columns: Mapping[str, np.ndarray] = {}
        self._envelopes: dict[str, Envelope] = {}
        self._ascending: dict[str, Ascending] = {}

    def refresh(self, columns: Mapping[str, np.ndarray]) -> None:
        """This redraw's columns (views of the same buffer, possibly longer than before)."""
        self._columns = columns

    def get(self, channel: Channel | None) -> Envelope | None:
        if channel is None or channel.column not in self._columns:
            return None
        envelope = self._envelopes.setdefault(channel.column, Envelope())
        envelope.update(self._columns[channel.column])
        return envelope

    def ascending(self, channel: Channel | None) -> bool:
        """True while the column has never decreased (an x axis to bisect when zoomed)."""
        if channel is None or channel.column not in self._columns:
            return False
        check = self._ascending.setdefault(channel.column, Ascending())
        return check.update(self._columns[channel.column])


class SweepIndex:
    """Where each run of equal sweep numbers starts, extended by the new rows only."""

    def __init__(self) -> None:
        self.n = 0
        self._starts: list[int] = []
        self._sweeps: list[int] = []

    def update(self, sweep: np.ndarray) -> None:
        n = len(sweep)
        if n <= self.n:
            return
        base = max(self.n - 1, 0)
        s = np.asarray(sweep[base:n], dtype=float)
        s = np.where(np.isfinite(s), s, -1.0)
        if self.n == 0:
            self._starts.append(0)
            self._sweeps.append(int(s[0]))
        for edge in np.flatnonzero(np.diff(s)) + 1:
            self._starts.append(base + int(edge))
            self._sweeps.append(int(s[edge]))
        self.n = n

    def slices(self, last: int | None = None) -> list[tuple[int, slice]]:
        """(sweep index, row slice) of the last ``last`` runs (all if None), in order."""
        k = len(self._starts) if last is None else min(last, len(self._starts))
        first = len(self._starts) - k
        stops = self._starts[first + 1:] + [self.n]
        return [(self._sweeps[first + i], slice(self._starts[first + i], stops[i]))
                for i in range(k)]


def sweep_slices(sweep: np.ndarray) -> list[tuple[int, slice]]:
    """(sweep index, row slice) of each run of equal sweep numbers, in order."""
    index = SweepIndex()
    index.update(sweep)
    return index.slices()


class CustomPlot(QtWidgets.QWidget):
    """Any column against any other: what a procedure with unusual columns still gets."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("X:"))
        self.x_combo = QtWidgets.QComboBox()
        row.addWidget(self.x_combo, 1)
        row.addWidget(QtWidgets.QLabel("Y:"))
        self.y_combo = QtWidgets.QComboBox()
        row.addWidget(self.y_combo, 1)
        layout.addLayout(row)
        self.plot = LivePlot("X", "", "Y", "", legend=False)
        layout.addWidget(self.plot, 1)
        self.units: dict[str, str] = {}
        self.x_combo.currentIndexChanged.connect(self._axes_changed)
        self.y_combo.currentIndexChanged.connect(self._axes_changed)
        self._columns: Mapping[str, np.ndarray] = {}
        self._envelopes: ColumnEnvelopes | None = None

    def set_units(self, units: Mapping[str, str], x: str | None, y: str | None) -> None:
        if dict(units) == self.units:
            return
        self.units = dict(units)
        for combo, default in ((self.x_combo, x), (self.y_combo, y)):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(list(units))
            if default in units:
                combo.setCurrentText(default)
            combo.blockSignals(False)
        self._axes_changed()

    def _axes_changed(self) -> None:
        x, y = self.x_combo.currentText(), self.y_combo.currentText()
        if not x or not y:
            return
        cx, cy = display(x, self.units.get(x, "")), display(y, self.units.get(y, ""))
        self.plot.plotItem.setLabel("bottom", f"{x} ({cx.unit})" if cx.unit else x)
        self.plot.plotItem.setLabel("left", f"{y} ({cy.unit})" if cy.unit else y)
        self.plot.getViewBox().enableAutoRange()
        self.draw(self._columns, self._envelopes)

    def draw(self, columns: Mapping[str, np.ndarray],
             envelopes: ColumnEnvelopes | None = None) -> None:
        self._columns = columns
        self._envelopes = envelopes
        x, y = self.x_combo.currentText(), self.y_combo.currentText()
        if x in columns and y in columns:
            cx, cy = display(x, self.units.get(x, "")), display(y, self.units.get(y, ""))
            self.plot.set_trace("data", _values(columns, cx), _values(columns, cy),
                                pen=pg.mkPen(PALETTE[0], width=1), symbol="o", symbol_size=3,
                                x_factor=cx.factor, y_factor=cy.factor,
                                envelope=envelopes.get(cy) if envelopes else None)


class PlotSet(QtCore.QObject):
    """All plots of the window and how a run's buffer and fits are drawn into them."""

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.didv = LivePlot("Bias voltage", "mV", "dI/dV", "mS")
        self.iv = LivePlot("Current", "mA", "Voltage", "mV")
        self.rt = LivePlot("Temperature", "K", "Resistance", "Ω")
        self.tb = LivePlot("Time", "", "Temperature", "K", time_axis=True)
        self.tb.add_right_axis("Field", "T")
        self.tb.legend_above(4)  # its four traces fill the view: the legend goes above it
        self.gap = LivePlot("Temperature", "K", "Δ", "meV")
        if self.gap.legend is not None:
            self.gap.legend.setColumnCount(3)  # wide and short: stays above the points
        self.custom = CustomPlot()
        self.channels: PlotChannels | None = None
        self.run_start_epoch: float | None = None
        self._version = -1
        self._buffer: Any = None
        self._monitor_t: list[float] = []
        self._monitor_T: list[float] = []
        self._monitor_B: list[float] = []
        self.fit_sweep: int | None = None
        self._reset_caches()

    def _reset_caches(self) -> None:
        """Forget what was derived from the rows drawn so far (new or cleared buffer)."""
        self._envelopes = ColumnEnvelopes()
        self._sweeps = SweepIndex()
        self._time_offset: float | None = None
        self._generation = -1

    def plots(self) -> dict[str, LivePlot]:
        return {"didv": self.didv, "iv": self.iv, "rt": self.rt, "tb": self.tb,
                "gap": self.gap, "custom": self.custom.plot}

    # -- run data --------------------------------------------------------------------------
    def clear_run(self) -> None:
        for key, plot in self.plots().items():
            if key == "tb":
                for trace in plot.trace_keys():
                    if trace.startswith("run"):
                        plot.remove_trace(trace)
            else:
                plot.clear_traces()
        self._version = -1
        self._buffer = None
        self.channels = None
        self.fit_sweep = None
        self._reset_caches()

    def show_buffer(self, buffer: Any, start_epoch: float | None = None,
                    force: bool = False) -> bool:
        """Draw ``buffer`` (a RunBuffer) if it changed since the last call; True if drawn."""
        if buffer is not self._buffer:
            self.clear_run()
            self._buffer = buffer
            self.channels = PlotChannels.find(buffer.units)
            self.run_start_epoch = start_epoch
        if not force and buffer.version == self._version:
            return False
        self._version = buffer.version
        generation = getattr(buffer, "generation", 0)
        if generation != self._generation:
            self._reset_caches()  # cleared and refilled: the rows seen so far are gone
            self._generation = generation
        columns = buffer.snapshot()
        self._envelopes.refresh(columns)
        self.draw_columns(columns, buffer.units, growing=True)
        return True

    def draw_columns(self, columns: Mapping[str, np.ndarray], units: Mapping[str, str],
                     growing: bool = False) -> None:
        """Draw ``columns``; ``growing=True`` (from :meth:`show_buffer`) says they extend the
        columns of the last call, so envelopes and sweep offsets are extended, not rebuilt."""
        ch = self.channels or PlotChannels.find(units)
        self.channels = ch
        if not growing:
            self._reset_caches()
            self._envelopes.refresh(columns)
        env = self._envelopes
        self._draw_spectra(columns, ch)
        current, voltage = _values(columns, ch.current), _values(columns, ch.voltage)
        if current is not None and voltage is not None and ch.current != ch.voltage:
            self.iv.set_trace("run", current, voltage, pen=pg.mkPen(PALETTE[0], width=1.5),
                              symbol="o", symbol_size=3, x_factor=ch.current.factor,
                              y_factor=ch.voltage.factor, envelope=env.get(ch.voltage))
        temperature = _values(columns, ch.temperature)
        resistance = _values(columns, ch.resistance)
        if temperature is not None and resistance is not None:
            self.rt.set_trace("run", temperature, resistance, pen=pg.mkPen(PALETTE[0], width=1.5),
                              symbol="o", symbol_size=3, x_factor=ch.temperature.factor,
                              y_factor=ch.resistance.factor, envelope=env.get(ch.resistance))
        times = _values(columns, ch.time)
        if times is not None and len(times):
            offset = self._epoch_offset(times)
            if temperature is not None:
                self.tb.set_trace("run T", times, temperature, pen=None, symbol="o",
                                  symbol_size=4, name="T (run)", z=2, x_offset=offset,
                                  x_factor=ch.time.factor, y_factor=ch.temperature.factor,
                                  envelope=env.get(ch.temperature),
                                  x_ascending=env.ascending(ch.time))
            field = _values(columns, ch.field)
            if field is not None:
                self.tb.set_trace("run B", times, field, pen=None, symbol="t", symbol_size=5,
                                  name="B (run)", right=True, z=2, x_offset=offset,
                                  x_factor=ch.time.factor, y_factor=ch.field.factor,
                                  envelope=env.get(ch.field), x_ascending=env.ascending(ch.time))
        self.custom.set_units(units, ch.bias.column if ch.bias else None,
                              ch.didv.column if ch.didv else None)
        self.custom.draw(columns, env)

    def _epoch_offset(self, times: np.ndarray) -> float:
        """Seconds to add to the time column for the date axis: the run's start for relative
        times, 0 for unix times — decided once, from the first finite time of the run."""
        if self._time_offset is None:
            first = times[np.isfinite(times)][:1]
            if not first.size:
                return 0.0
            self._time_offset = (self.run_start_epoch or 0.0) if first[0] < _EPOCH_2001 else 0.0
        return self._time_offset

    def _draw_spectra(self, columns: Mapping[str, np.ndarray], ch: PlotChannels) -> None:
        bias, didv = _values(columns, ch.bias), _values(columns, ch.didv)
        if bias is None or didv is None:
            return
        if ch.didv is not None and ch.didv.label != self.didv.plotItem.getAxis("left").labelText:
            self.didv.plotItem.setLabel("left", f"{ch.didv.label} ({ch.didv.unit})")
        sweep = columns.get(ch.sweep.column) if ch.sweep else None
        if sweep is None:
            self.didv.set_trace("sweep current", bias, didv, pen=pg.mkPen(PALETTE[0], width=2),
                                name="data", z=1, x_factor=ch.bias.factor,
                                y_factor=ch.didv.factor, envelope=self._envelopes.get(ch.didv))
            return
        self._sweeps.update(sweep)
        shown = self._sweeps.slices(HISTORY_SWEEPS + 1)
        wanted = set()
        for rank, (index, rows) in enumerate(reversed(shown)):
            key = "sweep current" if rank == 0 else f"sweep -{rank}"
            wanted.add(key)
            if rank == 0:
                pen = pg.mkPen(PALETTE[0], width=2)
            else:
                grey = int(120 + 100 * rank / (HISTORY_SWEEPS + 1))
                pen = pg.mkPen((grey, grey, 255 if rank < 3 else grey), width=1)
            label = sweep_label(index) if rank == 0 else None
            temperature = _values(columns, ch.temperature)
            if rank == 0 and temperature is not None:
                t = temperature[rows]
                t = t[np.isfinite(t)]
                if t.size:
                    label = f"{sweep_label(index)}, {float(np.mean(t)):.3g} K"
            self.didv.set_trace(key, bias[rows], didv[rows], pen=pen, name=label, z=-rank,
                                x_factor=ch.bias.factor, y_factor=ch.didv.factor)
        for key in self.didv.trace_keys():
            if key.startswith("sweep") and key not in wanted:
                self.didv.remove_trace(key)

    # -- fits ------------------------------------------------------------------------------
    def show_fit(self, update: Any) -> None:
        """Overlay the latest spectrum fit and redraw Δ(T) with its BCS fit."""
        ch = self.channels
        if update.fit_bias_mV is not None and update.fit_didv is not None and ch is not None \
                and ch.didv is not None:
            factor = ch.didv.factor
            self.didv.set_trace("fit", update.fit_bias_mV, np.asarray(update.fit_didv) * factor,
                                pen=FIT_PEN,
                                name=f"fit {update.best_model} ({sweep_label(update.sweep)})",
                                z=5)
            self.fit_sweep = update.sweep
        self.show_gaps(update)

    def show_gaps(self, update: Any) -> None:
        series = update.gap_series
        if series is None or len(series.temperature_K) == 0:
            return
        tops = [np.nanmax(v + np.nan_to_num(e)) for v, e in
                ((series.delta1, series.delta1_err), (series.delta2, series.delta2_err))
                if v is not None and np.isfinite(v).any()]
        t_max = float(np.nanmax(series.temperature_K))
        fits = [f if plausible_gap_fit(f, t_max) else None for f in update.gap_fits]
        t_hi = max([t_max] + [f.tc_K for f in fits if f is not None])
        if tops:
            # headroom above the points for the legend; Δ = 0 and T = 0 always in view
            self.gap.plotItem.setYRange(0.0, 1.7 * max(tops), padding=0.02)
            self.gap.plotItem.setXRange(0.0, 1.08 * t_hi, padding=0.0)
        colours = (PALETTE[0], PALETTE[1])
        for i, (values, errors) in enumerate(((series.delta1, series.delta1_err),
                                               (series.delta2, series.delta2_err))):
            if values is None or not np.isfinite(values).any():
                continue
            key = f"Δ{i + 1}"
            self.gap.set_trace(key, series.temperature_K, values, pen=None, symbol="o",
                               symbol_size=7, name=key, brush=colours[i])
            self.gap.set_error_bars(key, series.temperature_K, values, errors, colours[i])
        for i, fit in enumerate(fits):
            if fit is None:
                self.gap.remove_trace(f"BCS Δ{i + 1}")
                continue
            tmax = max(float(np.nanmax(series.temperature_K)), fit.tc_K) * 1.05
            grid = np.linspace(0.0, tmax, 300)
            curve = np.nan_to_num(fit.curve(grid), nan=0.0)
            name = f"BCS Δ{i + 1}: Tc = {fit.tc_K:.1f} ± {_err(fit.tc_err_K)} K"
            self.gap.set_trace(f"BCS Δ{i + 1}", grid, curve,
                               pen=pg.mkPen(colours[i], width=1.5,
                                            style=QtCore.Qt.PenStyle.DashLine),
                               name=name)

    # -- monitor history -------------------------------------------------------------------
    MONITOR_HISTORY = 200_000

    def add_monitor(self, reading: Any) -> None:
        """Append a monitor reading to the temperature/field history (kept bounded)."""
        self._monitor_t.append(reading.time)
        self._monitor_T.append(reading.temperature_K)
        self._monitor_B.append(reading.field_T)
        if len(self._monitor_t) > self.MONITOR_HISTORY:
            drop = len(self._monitor_t) - self.MONITOR_HISTORY
            del self._monitor_t[:drop], self._monitor_T[:drop], self._monitor_B[:drop]

    def draw_monitor(self) -> None:
        if not self._monitor_t:
            return
        t = np.asarray(self._monitor_t)
        temperature = np.asarray(self._monitor_T)
        field = np.asarray(self._monitor_B)
        if np.isfinite(temperature).any():
            self.tb.set_trace("monitor T", t, temperature, pen=pg.mkPen(PALETTE[0], width=1.5),
                              name="T (monitor)")
        if np.isfinite(field).any():
            self.tb.set_trace("monitor B", t, field, pen=pg.mkPen(PALETTE[1], width=1.5),
                              name="B (monitor)", right=True)


def plausible_gap_fit(fit: Any, t_max_K: float) -> bool:
    """Worth drawing: see :func:`daqapp.fitworker.tc_determined`."""
    from daqapp.fitworker import tc_determined

    return tc_determined(fit, t_max_K)


def _err(value: float) -> str:
    return f"{value:.1g}" if math.isfinite(value) else "?"
