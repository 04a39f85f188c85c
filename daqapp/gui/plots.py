"""Plot widgets that hold full traces and draw decimated ones.

A :class:`LivePlot` keeps a reference to each trace's full arrays (views of the in-memory
run buffers, never copies of the file) and hands pyqtgraph only what the screen can show:
min/max decimation to about two samples per horizontal pixel, recomputed for the visible x
range when the operator zooms. Redrawing is driven by the window's capped-rate timer, not by
each new point, so a fast acquisition cannot starve the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from qtpy import QtCore, QtWidgets

from daqapp.gui.decimate import Envelope, decimate_indices

pg.setConfigOptions(antialias=False, background="w", foreground="k")

#: Colours of successive traces (colour-blind-safe Okabe–Ito order).
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
FIT_PEN = pg.mkPen("#D00000", width=2)


@dataclass
class _Trace:
    """A trace's stored columns; shown as ``x * x_factor + x_offset`` against ``y * y_factor``
    — the display units are applied to the few drawn samples, never to whole columns."""

    item: pg.PlotDataItem
    x: np.ndarray
    y: np.ndarray
    view: pg.ViewBox
    name: str | None = None
    x_factor: float = 1.0
    x_offset: float = 0.0
    y_factor: float = 1.0
    envelope: Envelope | None = None
    x_ascending: bool = False
    pen: object = None
    symbol: str | None = None
    dense_pen: object = None
    dense: bool = False  # drawn as a line for now (too many samples in view for symbols)


class LivePlot(pg.PlotWidget):
    """A labelled plot of named traces with decimated drawing and figure export."""

    #: drawn samples per horizontal pixel (min and max of each pixel column)
    SAMPLES_PER_PIXEL = 2
    MIN_DRAWN = 2000
    #: symbols are drawn only while at most this many samples of a trace are in view; denser
    #: traces are drawn as lines (a scatter of thousands of symbols reads as a line anyway)
    SYMBOL_MAX_POINTS = 500

    def __init__(self, x_label: str, x_unit: str, y_label: str, y_unit: str, *,
                 time_axis: bool = False, legend: bool = True,
                 parent: QtWidgets.QWidget | None = None) -> None:
        axis_items = {"bottom": pg.DateAxisItem(orientation="bottom")} if time_axis else None
        super().__init__(parent=parent, axisItems=axis_items)
        self.plotItem.setLabel("bottom", x_label, units=None if time_axis else x_unit)
        self.plotItem.setLabel("left", f"{y_label} ({y_unit})" if y_unit else y_label)
        if not time_axis:
            self.plotItem.setLabel("bottom", f"{x_label} ({x_unit})" if x_unit else x_label)
        for side in ("bottom", "left"):
            self.plotItem.getAxis(side).enableAutoSIPrefix(False)
        self.plotItem.showGrid(x=True, y=True, alpha=0.25)
        # an opaque box, so a legend over data is still readable (and the data behind it
        # visibly hidden rather than mistaken for legend marks)
        self.legend = (self.plotItem.addLegend(offset=(-8, 8), labelTextSize="8pt",
                                               brush=pg.mkBrush(255, 255, 255, 230),
                                               pen=pg.mkPen(190, 190, 190))
                       if legend else None)
        self._traces: dict[str, _Trace] = {}
        self._error_bars: dict[str, pg.ErrorBarItem] = {}
        self.right_view: pg.ViewBox | None = None
        self.setMinimumSize(220, 160)
        view = self.plotItem.getViewBox()
        view.sigXRangeChanged.connect(self._on_range_changed)
        self._rezoom = QtCore.QTimer(self)
        self._rezoom.setSingleShot(True)
        self._rezoom.setInterval(50)
        self._rezoom.timeout.connect(self.redraw)

    # -- traces ----------------------------------------------------------------------------
    def set_trace(self, key: str, x: np.ndarray, y: np.ndarray, *, pen=None,
                  symbol: str | None = None, symbol_size: int = 4, name: str | None = None,
                  z: int = 0, right: bool = False, brush=None, x_factor: float = 1.0,
                  x_offset: float = 0.0, y_factor: float = 1.0,
                  envelope: Envelope | None = None, x_ascending: bool = False) -> None:
        """Show ``y * y_factor`` against ``x * x_factor + x_offset`` as trace ``key`` (created
        on first use) and draw it.

        ``envelope`` (an :class:`Envelope` of ``y``, updated to ``len(y)`` rows) makes the
        unzoomed redraw cost O(pixels) instead of O(len(y)); with ``x_ascending`` (x never
        decreases, e.g. time) a zoomed redraw does too. ``right=True`` puts the trace on
        the right-hand axis (see :meth:`add_right_axis`).
        """
        trace = self._traces.get(key)
        if trace is None:
            colour = PALETTE[len(self._traces) % len(PALETTE)]
            if pen is None and symbol is None:
                pen = pg.mkPen(colour, width=1.5)
            if brush is None:
                brush = pen.color() if pen is not None else colour
            item = pg.PlotDataItem(pen=pen, symbol=symbol, symbolSize=symbol_size,
                                   symbolPen=None, symbolBrush=brush, name=name,
                                   connect="finite")
            item.setZValue(z)
            if right:
                if self.right_view is None:
                    raise ValueError(f"trace {key!r}: this plot has no right-hand axis")
                view = self.right_view
                view.addItem(item)
                if self.legend is not None and name:
                    self.legend.addItem(item, name)
            else:
                view = self.plotItem.getViewBox()
                self.plotItem.addItem(item)
            trace = _Trace(item, x, y, view, name, pen=pen, symbol=symbol,
                           dense_pen=pen if pen is not None else pg.mkPen(brush, width=1))
            self._traces[key] = trace
        elif name != trace.name and self.legend is not None:
            self.legend.removeItem(trace.item)
            trace.item.opts["name"] = name
            if name:
                self.legend.addItem(trace.item, name)
            trace.name = name
        trace.x = np.asarray(x)
        trace.y = np.asarray(y)
        trace.x_factor, trace.x_offset, trace.y_factor = x_factor, x_offset, y_factor
        trace.envelope = envelope
        trace.x_ascending = x_ascending
        self._draw(trace)
        self._show_legend_if_named()

    def _show_legend_if_named(self) -> None:
        """An empty legend would still draw its box."""
        if self.legend is not None:
            self.legend.setVisible(bool(self.legend.items))

    def remove_trace(self, key: str) -> None:
        trace = self._traces.pop(key, None)
        if trace is not None:
            if trace.view is self.right_view:
                trace.view.removeItem(trace.item)
            else:
                self.plotItem.removeItem(trace.item)
            if self.legend is not None:
                self.legend.removeItem(trace.item)
                self._show_legend_if_named()
        bars = self._error_bars.pop(key, None)
        if bars is not None:
            self.plotItem.removeItem(bars)

    def clear_traces(self) -> None:
        for key in list(self._traces):
            self.remove_trace(key)

    def set_error_bars(self, key: str, x: np.ndarray, y: np.ndarray, err: np.ndarray,
                       colour: str | None = None) -> None:
        """Vertical ±``err`` bars at (x, y) for trace ``key`` (few points: not decimated)."""
        x, y, err = (np.asarray(a, dtype=float) for a in (x, y, err))
        good = np.isfinite(x) & np.isfinite(y)
        err = np.where(np.isfinite(err), err, 0.0)
        bars = self._error_bars.get(key)
        if bars is None:
            bars = pg.ErrorBarItem(beam=0.0, pen=pg.mkPen(colour or "#444444", width=1))
            self.plotItem.addItem(bars)
            self._error_bars[key] = bars
        bars.setData(x=x[good], y=y[good], height=2 * err[good])

    def legend_above(self, columns: int) -> None:
        """The legend as one row above the plot area, outside the data (a plot whose traces
        fill the whole view, e.g. temperature and field against time)."""
        if self.legend is None:
            return
        self.legend.setColumnCount(columns)
        self.legend.layout.setContentsMargins(2, 0, 2, 0)
        self.legend.layout.setVerticalSpacing(-6)
        self.legend.layout.setHorizontalSpacing(4)
        self.legend.setParentItem(self.plotItem)
        self.legend.anchor(itemPos=(0.5, 0.0), parentPos=(0.5, 0.0), offset=(0, 0))
        self.plotItem.layout.setRowFixedHeight(0, 22)  # the title row holds it

    def add_right_axis(self, label: str, unit: str, colour: str = "#D55E00") -> pg.ViewBox:
        """A second y axis on the right with its own view, sharing x (e.g. field vs time)."""
        if self.right_view is not None:
            return self.right_view
        view = pg.ViewBox()
        self.plotItem.showAxis("right")
        self.plotItem.scene().addItem(view)
        axis = self.plotItem.getAxis("right")
        axis.linkToView(view)
        axis.setGrid(False)
        axis.enableAutoSIPrefix(False)
        axis.setLabel(f"{label} ({unit})" if unit else label, color=colour)
        axis.setPen(pg.mkPen(colour))
        axis.setTextPen(pg.mkPen(colour))
        view.setXLink(self.plotItem)
        main = self.plotItem.getViewBox()

        def sync() -> None:
            view.setGeometry(main.sceneBoundingRect())
            view.linkedViewChanged(main, view.XAxis)

        main.sigResized.connect(sync)
        sync()
        self.right_view = view
        return view

    def trace_keys(self) -> list[str]:
        return list(self._traces)

    def trace_data(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """The full (undecimated) data of a trace in display units (computed on request)."""
        trace = self._traces[key]
        return _shown(trace, slice(None))

    def drawn_data(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """What pyqtgraph was given to draw for ``key`` (after decimation)."""
        x, y = self._traces[key].item.getData()
        return (np.asarray(x) if x is not None else np.empty(0),
                np.asarray(y) if y is not None else np.empty(0))

    # -- drawing ---------------------------------------------------------------------------
    def budget(self) -> int:
        """How many samples one trace may hand to pyqtgraph at the current width."""
        return max(self.MIN_DRAWN, self.SAMPLES_PER_PIXEL * 2 * max(self.width(), 1))

    def redraw(self) -> None:
        if self.plotItem is None:  # closed (pyqtgraph drops its items) while a rezoom was due
            return
        for trace in self._traces.values():
            self._draw(trace)

    def _visible_x(self) -> tuple[float, float] | None:
        view = self.plotItem.getViewBox()
        if view.autoRangeEnabled()[0]:
            return None
        lo, hi = view.viewRange()[0]
        return lo, hi

    def _draw(self, trace: _Trace) -> None:
        budget, visible = self.budget(), self._visible_x()
        n = min(len(trace.x), len(trace.y))
        envelope = trace.envelope
        if visible is not None and (trace.x_factor != 1.0 or trace.x_offset != 0.0):
            lo, hi = ((v - trace.x_offset) / trace.x_factor for v in visible)
            visible = (min(lo, hi), max(lo, hi))  # in stored units
        usable = envelope is not None and envelope.n == len(trace.y) and n > budget
        if usable and visible is None:
            keep = envelope.indices(trace.y, budget, 0, n)
        elif usable and trace.x_ascending:
            # sorted x (time): the in-view rows are one range, found by bisection, and each
            # neighbour outside it is kept so lines run to the edge of the view
            x = trace.x[:n]
            a, b = np.searchsorted(x, visible[0], "left"), np.searchsorted(x, visible[1], "right")
            keep = (envelope.indices(trace.y, budget, max(a - 1, 0), min(b + 1, n)) if b > a
                    else np.empty(0, dtype=np.int64))
        else:
            keep = decimate_indices(trace.x, trace.y, budget, visible)
        x, y = _shown(trace, keep)
        if trace.symbol is not None:
            dense = len(x) > self.SYMBOL_MAX_POINTS
            if dense != trace.dense:
                trace.item.setSymbol(None if dense else trace.symbol)
                trace.item.setPen(trace.dense_pen if dense else trace.pen)
                trace.dense = dense
        trace.item.setData(x, y)

    def _on_range_changed(self, *_args) -> None:
        if not self.plotItem.getViewBox().autoRangeEnabled()[0]:
            self._rezoom.start()

    # -- export ----------------------------------------------------------------------------
    def export(self, path: str | Path) -> Path:
        """Write the plot as PNG or SVG (by suffix), as the operator sees it."""
        from pyqtgraph import exporters

        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".svg":
            exporter = exporters.SVGExporter(self.plotItem)
        elif suffix in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"):
            exporter = exporters.ImageExporter(self.plotItem)
            exporter.parameters()["width"] = max(800, self.width())
        else:
            raise ValueError(f"figure file {path.name}: suffix must be .png or .svg")
        exporter.export(str(path))
        return path


def _shown(trace: _Trace, rows: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a trace in display units (only these rows are scaled)."""
    n = min(len(trace.x), len(trace.y))
    x, y = trace.x[:n][rows], trace.y[:n][rows]
    if trace.x_factor != 1.0 or trace.x_offset != 0.0:
        x = x * trace.x_factor + trace.x_offset
    if trace.y_factor != 1.0:
        y = y * trace.y_factor
    return x, y
