"""The incremental min/max envelope draws exactly what a brute-force pass over all rows would."""

import numpy as np
import pytest

from daqapp.gui.decimate import Envelope, bucket_size, minmax_indices


def brute_force(y, max_points, start, stop):
    """Min and max (first on ties, NaN/inf skipped) of every bucket, over the full rows."""
    if stop - start <= max_points:
        return np.arange(start, stop)
    size = bucket_size(stop - start, max_points)
    edges = sorted({start, stop, *range(-(-start // size) * size, stop, size)})
    keep = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        seg = y[lo:hi]
        finite = np.isfinite(seg)
        keep += [lo + int(np.argmin(np.where(finite, seg, np.inf))),
                 lo + int(np.argmax(np.where(finite, seg, -np.inf)))]
    return np.unique(keep)


def random_trace(rng, n):
    y = rng.normal(size=n)
    y[rng.random(n) < 0.1] = np.nan
    gap = int(rng.integers(0, n - 3000))
    y[gap:gap + 3000] = np.nan  # a stretch of buckets with no finite sample
    y[rng.integers(0, n, 5)] = np.inf  # not drawable: skipped like NaN
    y[rng.integers(0, n, 50)] = np.round(y[rng.integers(0, n, 50)], 0)  # ties
    return y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_envelope_built_in_small_batches_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    y = random_trace(rng, 120_001)
    envelope, n, checked = Envelope(), 0, 0
    while n < len(y):
        n = min(len(y), n + int(rng.integers(1, 2500)))
        envelope.update(y[:n])
        if rng.random() < 0.1 or n == len(y):
            for max_points in (2, 3, 500, 2000):
                expected = brute_force(y[:n], max_points, 0, n)
                np.testing.assert_array_equal(envelope.indices(y[:n], max_points), expected)
                a = int(rng.integers(0, n))
                b = int(rng.integers(a, n + 1))
                np.testing.assert_array_equal(envelope.indices(y[:n], max_points, a, b),
                                              brute_force(y[:n], max_points, a, b))
                checked += 1
    assert checked > 10
    drawn = envelope.indices(y, 2000)
    assert len(drawn) <= 2000 + 4


def test_one_spike_among_a_million_is_always_drawn():
    rng = np.random.default_rng(5)
    n = 1_000_000
    y = rng.normal(0, 0.01, n)
    spike = 654_321
    y[spike] = 40.0
    y[spike + 1] = np.nan
    envelope = Envelope()
    for stop in range(0, n + 1, 50_000):
        envelope.update(y[:stop])
        if stop > spike:
            assert spike in envelope.indices(y[:stop], 2000)
            assert spike in envelope.indices(y[:stop], 2000, spike - 7, stop)
    assert spike in minmax_indices(y, 4000)


def test_envelope_refuses_a_shrunk_column_and_stays_small():
    y = np.arange(1_000_000, dtype=float)
    envelope = Envelope()
    envelope.update(y)
    assert envelope.nbytes <= 2 * y.nbytes
    with pytest.raises(ValueError, match="shrank"):
        envelope.update(y[:10])


# -- the live window: PlotSet drawing a growing RunBuffer -----------------------------------
UNITS = {"dc_voltage": "V", "didv": "S", "bias_current": "A", "resistance": "ohm",
         "temperature": "K", "field": "T", "time": "s", "sweep": ""}
POINTS_PER_SWEEP = 1001


def run_rows(rng, start, n):
    """Rows of a temperature series of spectra, with NaN readings here and there."""
    k = np.arange(start, start + n)
    v = (k % POINTS_PER_SWEEP - 500) * 1e-5
    rows = {"dc_voltage": v, "didv": 1 / (50 + 1e3 * v**2) + rng.normal(0, 1e-5, n),
            "bias_current": v / 48e3, "resistance": 50 + rng.normal(0, 1, n),
            "temperature": 2 + 1e-5 * k + rng.normal(0, 1e-3, n), "field": 1e-6 * k,
            "time": 0.01 * k, "sweep": (k // POINTS_PER_SWEEP).astype(float)}
    for name in ("didv", "resistance", "temperature"):
        rows[name][rng.random(n) < 0.02] = np.nan
    return rows


def expected_drawn(plot, x, y, x_factor=1.0, y_factor=1.0, x_offset=0.0):
    keep = brute_force(y, plot.budget(), 0, len(y))
    return x[keep] * x_factor + x_offset, y[keep] * y_factor


def test_live_window_draws_the_brute_force_envelope_as_rows_arrive(qtbot):
    from daqapp.gui.plotset import PlotSet, sweep_slices
    from daqapp.storage import RunBuffer

    rng = np.random.default_rng(7)
    plots = PlotSet()
    for plot in plots.plots().values():
        qtbot.addWidget(plot)
    buffer = RunBuffer(UNITS)
    n, spike = 0, 70_123
    start_epoch = 1.7e9
    while n < 120_000:
        batch = int(rng.integers(1, 9000))
        rows = run_rows(rng, n, batch)
        if n <= spike < n + batch:
            rows["resistance"][spike - n] = 1e4  # one glitch the operator must see
        buffer.extend_columns(rows)
        n += batch
        assert plots.show_buffer(buffer, start_epoch)
    cols = buffer.snapshot()
    x, y = plots.rt.drawn_data("run")
    ex, ey = expected_drawn(plots.rt, cols["temperature"], cols["resistance"])
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(y, ey)
    assert y.max() == 1e4
    x, y = plots.iv.drawn_data("run")
    ex, ey = expected_drawn(plots.iv, cols["bias_current"], cols["dc_voltage"], 1e3, 1e3)
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(y, ey)
    x, y = plots.tb.drawn_data("run T")
    ex, ey = expected_drawn(plots.tb, cols["time"], cols["temperature"], x_offset=start_epoch)
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(y, ey)
    # full data in display units on request; the last 7 sweeps on the dI/dV plot
    tx, ty = plots.iv.trace_data("run")
    np.testing.assert_array_equal(ty, cols["dc_voltage"] * 1e3)
    last = sweep_slices(cols["sweep"])[-1][1]
    x, y = plots.didv.trace_data("sweep current")
    np.testing.assert_array_equal(x, cols["dc_voltage"][last] * 1e3)
    np.testing.assert_array_equal(y, cols["didv"][last] * 1e3)
    assert len([k for k in plots.didv.trace_keys() if k.startswith("sweep")]) == 7
    # dense traces are lines; symbols only while few samples are drawn
    assert plots.rt._traces["run"].item.opts["symbol"] is None  # noqa: SLF001

    # a cleared and refilled buffer (replay restarting a file) is drawn afresh
    buffer.clear()
    small = run_rows(rng, 0, 300)
    buffer.extend_columns(small)
    assert plots.show_buffer(buffer, start_epoch)
    x, y = plots.rt.drawn_data("run")
    np.testing.assert_array_equal(y, small["resistance"])
    assert plots.rt._traces["run"].item.opts["symbol"] == "o"  # noqa: SLF001


def test_sweep_offsets_extended_in_batches_match_a_full_scan():
    from daqapp.gui.plotset import SweepIndex, sweep_slices

    rng = np.random.default_rng(3)
    sweep = np.repeat(np.arange(60.0), rng.integers(1, 40, 60))
    sweep[rng.random(len(sweep)) < 0.05] = np.nan
    index, n = SweepIndex(), 0
    while n < len(sweep):
        n = min(len(sweep), n + int(rng.integers(1, 30)))
        index.update(sweep[:n])
        s = np.where(np.isfinite(sweep[:n]), sweep[:n], -1.0)
        edges = [0, *(np.flatnonzero(np.diff(s)) + 1), n]
        full = [(int(s[a]), slice(int(a), int(b))) for a, b in zip(edges[:-1], edges[1:],
                                                                    strict=True)]
        assert index.slices() == full
        assert index.slices(7) == full[-7:]
    assert sweep_slices(sweep) == index.slices()


def test_zoomed_time_plot_bisects_sorted_time_and_keeps_the_envelope(qtbot):
    from daqapp.gui.decimate import Ascending, decimate_indices
    from daqapp.gui.plotset import PlotSet
    from daqapp.storage import RunBuffer

    rng = np.random.default_rng(11)
    plots = PlotSet()
    qtbot.addWidget(plots.tb)
    buffer = RunBuffer(UNITS)
    for start in range(0, 200_000, 50_000):
        rows = run_rows(rng, start, 50_000)
        if start == 100_000:
            rows["temperature"][23_456] = 300.0  # a glitch at row 123 456
        buffer.extend_columns(rows)
        plots.show_buffer(buffer, 1.7e9)
    cols = buffer.snapshot()
    t, temperature = cols["time"], cols["temperature"]
    spike = 123_456
    assert plots.tb._traces["run T"].x_ascending  # noqa: SLF001
    for lo, hi in ((1000.0, 1010.0), (100.0, 1900.0), (-5.0, 0.0), (3000.0, 4000.0)):
        plots.tb.getViewBox().setXRange(1.7e9 + lo, 1.7e9 + hi, padding=0)
        plots.tb.redraw()
        x, y = plots.tb.drawn_data("run T")
        view = plots.tb.getViewBox().viewRange()[0]
        a, b = np.searchsorted(t, view[0] - 1.7e9), np.searchsorted(t, view[1] - 1.7e9, "right")
        budget = plots.tb.budget()
        if b - a + 2 <= budget:  # few rows in view: all of them, as the unsorted path draws
            np.testing.assert_array_equal(
                y, temperature[decimate_indices(t + 1.7e9, temperature, budget, tuple(view))])
        else:
            keep = brute_force(temperature, budget, max(a - 1, 0), min(b + 1, len(t)))
            np.testing.assert_array_equal(y, temperature[keep])
            np.testing.assert_array_equal(x, t[keep] + 1.7e9)
            if a <= spike < b:
                assert y.max() == 300.0
    check = Ascending()
    assert check.update(np.array([0.0, 1.0, 1.0]))
    assert not check.update(np.array([0.0, 1.0, 1.0, np.nan, 5.0]))
