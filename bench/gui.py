"""Live-window redraw cost against run length, beside pyqtgraph's own peak downsampling + clip.

A run of N rows (a temperature series of 1001-point spectra: bias, dI/dV, current,
resistance, temperature, field, time, sweep) sits in a RunBuffer; every redraw first appends
``--new-rows`` rows (what a 10 Hz window timer sees at 1 kHz acquisition), then draws. Timed:

* daqapp: ``PlotSet.show_buffer`` (all six plots: dI/dV with 7 sweeps, I–V, R–T, T and B
  against time, Δ(T), custom) plus the Qt paint of the window (``processEvents``);
* baseline: the same traces in plain pyqtgraph ``PlotDataItem``s (in the window's own plot
  widgets), with the window's pens,
  ``setDownsampling(auto=True, method="peak")`` and ``setClipToView(True)``, handed the
  buffer's full column views (no unit scaling, the sweep slices given for free), same paint.

Medians of interleaved repeats; the figures are printed as ratios to the baseline measured in
the same run, and the per-new-point cost (redraw / new rows) as a ratio to its value at the
smallest N. Targets (issue 12): redraw ≤ 30 ms at 10⁷ points, per-new-point cost flat within
2× from 10³ to 10⁷. Run offscreen: ``QT_QPA_PLATFORM=offscreen python bench/gui.py``
(``--sizes 1000,1000000,10000000 --repeats 9 --new-rows 100``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from pyqtgraph.Qt import QtWidgets  # noqa: E402

from daqapp.gui.plots import PALETTE  # noqa: E402
from daqapp.gui.plotset import HISTORY_SWEEPS, PlotSet  # noqa: E402
from daqapp.storage import RunBuffer  # noqa: E402

UNITS = {"dc_voltage": "V", "didv": "S", "bias_current": "A", "resistance": "ohm",
         "temperature": "K", "field": "T", "time": "s", "sweep": ""}
POINTS_PER_SWEEP = 1001
TARGET_REDRAW_MS = 30.0
TARGET_FLAT = 2.0
SIZE = (1600, 900)
#: (plot, x column, y column) of every run trace the window draws besides the dI/dV sweeps
#: and the width of its line (as the window draws it; wide lines cost Qt more to paint)
TRACES = [("iv", "bias_current", "dc_voltage", 1.5), ("rt", "temperature", "resistance", 1.5),
          ("tb", "time", "temperature", 1.0), ("tb", "time", "field", 1.0),
          ("custom", "dc_voltage", "didv", 1.0)]


def rows(start: int, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    k = np.arange(start, start + n)
    v = (k % POINTS_PER_SWEEP - 500) * 1e-5
    return {"dc_voltage": v, "didv": 1 / (50 + 1e3 * v**2) + rng.normal(0, 1e-5, n),
            "bias_current": v / 48e3, "resistance": 50 + rng.normal(0, 1, n),
            "temperature": 2 + 1e-6 * k + rng.normal(0, 1e-3, n), "field": 1e-7 * k,
            "time": 1e-3 * k, "sweep": (k // POINTS_PER_SWEEP).astype(float)}


def filled_buffer(n: int, headroom: int, rng: np.random.Generator) -> RunBuffer:
    buffer = RunBuffer(UNITS, capacity=n + headroom)
    for start in range(0, n, 1_000_000):
        buffer.extend_columns(rows(start, min(1_000_000, n - start), rng))
    return buffer


def window(widgets: list[QtWidgets.QWidget]) -> QtWidgets.QWidget:
    top = QtWidgets.QWidget()
    grid = QtWidgets.QGridLayout(top)
    for i, widget in enumerate(widgets):
        grid.addWidget(widget, i // 3, i % 3)
    top.resize(*SIZE)
    top.show()
    return top


class Baseline:
    """The window's traces in plain pyqtgraph with its own peak downsampling and clipping,
    in the window's own plot widgets (same size, axes, grid and legends)."""

    def __init__(self) -> None:
        self.plot_set = PlotSet()
        self.plots = self.plot_set.plots()
        self.top = window(list(self.plots.values())[:5] + [self.plot_set.custom])
        self.items = [self._item(self.plots[key], width) for key, _, _, width in TRACES]
        self.sweeps = [self._item(self.plots["didv"], 2.0 if rank == 0 else 1.0)
                       for rank in range(HISTORY_SWEEPS + 1)]

    @staticmethod
    def _item(plot: pg.PlotWidget, width: float) -> pg.PlotDataItem:
        item = pg.PlotDataItem(connect="finite", pen=pg.mkPen(PALETTE[0], width=width))
        item.setDownsampling(auto=True, method="peak")
        item.setClipToView(True)
        plot.plotItem.addItem(item)
        return item

    def draw(self, buffer: RunBuffer) -> None:
        cols = buffer.snapshot()
        for item, (_, x, y, _) in zip(self.items, TRACES, strict=True):
            item.setData(cols[x], cols[y])
        n = len(buffer)
        last = (n - 1) // POINTS_PER_SWEEP
        for rank, item in enumerate(self.sweeps):
            s = last - rank
            if s >= 0:
                rows_ = slice(s * POINTS_PER_SWEEP, min(n, (s + 1) * POINTS_PER_SWEEP))
                item.setData(cols["dc_voltage"][rows_], cols["didv"][rows_])


def measure(n: int, repeats: int, new_rows: int, app: QtWidgets.QApplication,
            rng: np.random.Generator) -> dict[str, float]:
    buffer = filled_buffer(n, 2 * repeats * new_rows, rng)
    ours = PlotSet()
    top = window(list(ours.plots().values())[:5] + [ours.custom])
    base = Baseline()
    t0 = time.perf_counter()
    ours.show_buffer(buffer, 0.0)
    app.processEvents()
    first = time.perf_counter() - t0
    base.draw(buffer)
    app.processEvents()
    times: dict[str, list[float]] = {"ours": [], "base": []}
    for _ in range(repeats):
        for who in ("ours", "base"):
            buffer.extend_columns(rows(len(buffer), new_rows, rng))
            t0 = time.perf_counter()
            if who == "ours":
                ours.show_buffer(buffer, 0.0)
            else:
                base.draw(buffer)
            app.processEvents()
            times[who].append(time.perf_counter() - t0)
    envelopes = ours._envelopes._envelopes  # noqa: SLF001 - the bench reports their size
    column_bytes = 8 * len(buffer) * max(1, len(envelopes))
    result = {"n": n, "ours_ms": 1e3 * statistics.median(times["ours"]),
              "base_ms": 1e3 * statistics.median(times["base"]), "first_ms": 1e3 * first,
              "envelope_per_column": sum(e.nbytes for e in envelopes.values()) / column_bytes}
    top.close()
    base.top.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,1000000,10000000")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--new-rows", type=int, default=100)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.repeats < 1 or args.new_rows < 1 or min(sizes) < 1:
        parser.error("--repeats, --new-rows and every size must be at least 1")
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    rng = np.random.default_rng(0)
    results = [measure(n, args.repeats, args.new_rows, app, rng) for n in sizes]
    print(f"live window redraw after {args.new_rows} new rows, all six plots + paint, "
          f"{SIZE[0]}x{SIZE[1]} px, median of {args.repeats} interleaved repeats")
    print(f"{'points':>11} {'daqapp ms':>10} {'pg peak+clip ms':>16} {'ratio':>6} "
          f"{'µs/new point':>13} {'vs smallest':>11} {'first draw ms':>14} "
          f"{'envelope/column':>15}")
    per_point0 = results[0]["ours_ms"] / args.new_rows
    for r in results:
        per_point = r["ours_ms"] / args.new_rows
        print(f"{r['n']:>11,} {r['ours_ms']:>10.1f} {r['base_ms']:>16.1f} "
              f"{r['ours_ms'] / r['base_ms']:>6.3g} {1e3 * per_point:>13.1f} "
              f"{per_point / per_point0:>11.2f} {r['first_ms']:>14.0f} "
              f"{r['envelope_per_column']:>15.2f}")
    big, small = results[-1], results[0]
    flat = big["ours_ms"] / small["ours_ms"]
    print(f"target: redraw at {big['n']:,} points ≤ {TARGET_REDRAW_MS:g} ms: "
          f"{big['ours_ms']:.1f} ms ({'met' if big['ours_ms'] <= TARGET_REDRAW_MS else 'MISSED'})")
    print(f"target: per-new-point cost {small['n']:,} → {big['n']:,} flat within "
          f"{TARGET_FLAT:g}×: {flat:.2f}× ({'met' if flat <= TARGET_FLAT else 'MISSED'}); "
          f"pyqtgraph peak+clip: {big['base_ms'] / small['base_ms']:.1f}×")


if __name__ == "__main__":
    main()
