"""Building blocks of the window: decimation, parameter fields, monitor polling."""

import math
import threading

import numpy as np
import pytest
from pymeasure.experiment import BooleanParameter, FloatParameter, IntegerParameter, Procedure

from daqapp.errors import LimitError
from daqapp.gui.decimate import decimate, minmax_indices
from daqapp.gui.monitor import InstrumentPoller, poll_once


def test_minmax_keeps_every_spike_and_bounds_the_count():
    rng = np.random.default_rng(1)
    y = rng.normal(size=1_000_003)
    spikes = [17, 250_001, 999_999]
    y[spikes] = [50.0, -60.0, 70.0]
    idx = minmax_indices(y, 4000)
    assert len(idx) <= 4002
    assert np.all(np.diff(idx) > 0)
    for s in spikes:
        assert s in idx
    # the envelope of every chunk is exact
    assert y[idx].max() == y.max() and y[idx].min() == y.min()


def test_decimate_zoomed_range_keeps_detail_for_non_monotonic_x():
    # a spectrum swept up and back 500 times: x is not monotonic
    one = np.concatenate([np.linspace(-60, 60, 1000), np.linspace(60, -60, 1000)])
    x = np.tile(one, 500)
    y = np.exp(-(x**2) / 50)
    xd, yd = decimate(x, y, 2000)
    assert len(xd) <= 2002
    xz, yz = decimate(x, y, 2000, x_range=(-1.0, 1.0))
    assert len(xz) <= 2002
    step = 120 / 999
    assert np.all(np.abs(xz) <= 1 + step + 1e-9)  # only in-view samples and their neighbours
    assert np.isclose(yz.max(), y.max())


class _Spectrum(Procedure):
    bias_max = FloatParameter("Bias max", units="mA", minimum=0, maximum=10, default=1.0)
    points = IntegerParameter("Points", minimum=3, maximum=10001, default=201)
    both = BooleanParameter("Both directions", default=True)


def test_parameter_form_refuses_out_of_range_at_the_field(qtbot):
    from daqapp.gui.params import ParameterForm

    form = ParameterForm(_Spectrum)
    qtbot.addWidget(form)
    assert form.values() == {"bias_max": 1.0, "points": 201, "both": True}
    field = form.fields["bias_max"]
    assert "0 to 10" in field.hint.text()
    with qtbot.waitSignal(form.validity_changed) as blocker:
        field.editor.setText("12")
    assert blocker.args == [False]
    assert not field.error.isHidden()
    assert "bias_max = 12 mA is outside the allowed range 0 to 10 mA" in field.error.text()
    with pytest.raises(LimitError, match="bias_max"):
        form.values()
    form.fields["points"].editor.setText("20.5")
    assert "whole number" in (form.fields["points"].validate() or "")
    field.editor.setText("2.5 mA")
    form.fields["points"].editor.setText("11")
    assert form.is_valid() and form.values()["bias_max"] == 2.5


def test_the_form_shows_the_range_valid_on_the_station_as_the_command_line_does(qtbot):
    """The window once showed bias_start [-0.105 to 0.105] A (the procedure's own) beside a
    station allowing ±1 mA; the form's range is now the one the run enforces."""
    from daqapp.commands.run import list_text
    from daqapp.gui.params import ParameterForm
    from daqapp.station import Station
    from procedures.lockin_spectrum import DifferentialConductanceLockIn

    station = Station.simulated(limits={"max_bias_current_a": 5e-4})
    form = ParameterForm(DifferentialConductanceLockIn, station=station)
    qtbot.addWidget(form)
    field = form.fields["bias_start"]
    assert (field.lo, field.hi) == (-5e-4, 5e-4)
    assert "-0.0005 to 0.0005" in field.hint.text()
    listed = next(line for line in list_text(station).splitlines()
                  if line.split()[:1] == ["bias_start"])
    assert "[-0.0005 .. 0.0005]" in listed               # one range, window and CLI alike
    field.editor.setText("-8e-4")
    assert "outside the allowed range -0.0005 to 0.0005" in (field.validate() or "")
    bare = ParameterForm(DifferentialConductanceLockIn)  # no station: the procedure's own
    qtbot.addWidget(bare)
    assert (bare.fields["bias_start"].lo, bare.fields["bias_start"].hi) == (-0.105, 0.105)


class _FakeLockIn:
    def __init__(self):
        self.overload_reads = 0

    def excitation(self):
        return 0.1

    def is_overloaded(self):
        self.overload_reads += 1
        return False


class _FakeController:
    def temperature(self):
        return 3.02

    def setpoint(self):
        return 3.0

    def heater_output(self):
        return 12.5

    def heater_range(self):
        return 2

    def is_ramping(self):
        return False


class _BrokenMagnet:
    def field(self):
        raise TimeoutError("VI_ERROR_TMO")

    def state(self):
        raise TimeoutError("VI_ERROR_TMO")


class _Conn:
    def __init__(self):
        self.lockin = _FakeLockIn()
        self.temperature = _FakeController()
        self.magnet = _BrokenMagnet()
        self.current_source = None


def test_poll_survives_faults_and_leaves_the_overload_latch_to_the_run():
    conn = _Conn()
    r = poll_once(conn)
    assert r.temperature_K == 3.02 and r.heater_range == 2
    assert math.isnan(r.field_T) and "field" in r.errors
    assert r.lockin_overload is False and conn.lockin.overload_reads == 1
    r = poll_once(conn, run_active=True)
    assert r.lockin_overload is None and conn.lockin.overload_reads == 1
    assert math.isnan(r.source_current_A)

    got = threading.Event()
    poller = InstrumentPoller(conn, lambda reading: got.set(), interval_s=0.05)
    poller.start()
    assert got.wait(5)
    poller.stop()
    assert not poller.is_running()


def test_a_million_point_trace_is_drawn_decimated_but_kept_whole(qtbot, tmp_path):
    from daqapp.gui.plots import LivePlot

    plot = LivePlot("Time", "s", "Temperature", "K")
    qtbot.addWidget(plot)
    plot.resize(800, 400)
    n = 1_000_000
    t = np.arange(n, dtype=float)
    temperature = 3 + 1e-5 * t + np.random.default_rng(2).normal(0, 0.01, n)
    temperature[123_457] = 400.0  # a glitch the operator must see
    plot.set_trace("T", t, temperature)
    x_all, _ = plot.trace_data("T")
    x_drawn, y_drawn = plot.drawn_data("T")
    assert len(x_all) == n
    assert len(x_drawn) <= plot.budget() + 2 < n // 100
    assert y_drawn.max() == 400.0
    # zoomed in, the budget is spent on what is in view
    plot.getViewBox().setXRange(1000, 2000, padding=0)
    plot.redraw()
    x_zoom, _ = plot.drawn_data("T")
    assert len(x_zoom) == 1003  # every sample in view, plus one neighbour each side
    assert plot.export(tmp_path / "t.svg").stat().st_size > 0
    assert plot.export(tmp_path / "t.png").stat().st_size > 0
