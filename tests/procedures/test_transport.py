"""R–T in delta mode and I–V/critical current on the virtual lab; limits and abort safety."""

from __future__ import annotations

import re

import numpy as np
import pytest

from daqapp.errors import ConfigError, LimitError
from daqapp.runner import Run, events
from procedures.iv import CriticalCurrentIV
from procedures.lockin_spectrum import DifferentialConductanceLockIn
from procedures.rt import ResistanceTemperature


def transition_temperature(temperature: np.ndarray, resistance: np.ndarray) -> float:
    """Highest temperature at which R is below half of its largest value."""
    half = 0.5 * np.nanmax(resistance)
    return float(np.max(temperature[resistance < half]))


def test_rt_delta_mode_drops_at_tc_and_field_lowers_it(lab_station, run_procedure):
    conn = lab_station(preset="nb-foil", speed=200)
    # nb-foil: Tc 9.2 K, Hc2(0) 0.4 T (two-band shape), so 0.2 T puts the onset near 5.8 K:
    # the ramp must go below that for the field sweep to contain its transition
    procedure = ResistanceTemperature(t_start=12.0, t_stop=4.5, ramp_rate=2.0, interval=2.0,
                                      fields="0, 0.2", hold_time=5.0, field_rate=0.5)
    result, run, _ = run_procedure(procedure, conn)
    assert result.status == "finished", result.error
    assert run.units["resistance"] == "ohm" and run.units["temperature"] == "K"
    sweeps = run.sweeps()
    assert len(sweeps) == 2
    assert [round(s.field, 2) for s in sweeps] == [0.0, 0.2]
    zero, field = sweeps[0].columns, sweeps[1].columns
    # nb-foil: R_N ≈ 2 mΩ + 0.2 mΩ/K · T above the transition, zero below it
    normal = zero["resistance"][zero["temperature"] > 10.0]
    assert np.allclose(normal, 0.002 + 2e-4 * zero["temperature"][zero["temperature"] > 10.0],
                       rtol=0.05)
    cold = zero["resistance"][zero["temperature"] < 8.5]
    assert np.all(np.abs(cold) < 0.02 * normal.min())
    tc0 = transition_temperature(zero["temperature"], zero["resistance"])
    tc_field = transition_temperature(field["temperature"], field["resistance"])
    assert 8.5 < tc0 < 9.9
    assert tc_field < tc0 - 1.0  # Hc2(0) = 0.4 T: 0.2 T moves Tc down by kelvins
    # ramp-paced rows, however long the readings took: the set point moves exactly one ramp
    # step (2 K/min × 2 s) between rows, the sample follows it within its tracking error
    step = procedure.ramp_step()
    for sweep in (zero, field):
        assert np.all(np.abs(np.diff(sweep["setpoint"])) <= step + 1e-4)
        assert np.max(np.abs(np.diff(sweep["temperature"]))) < 3 * step
    assert not conn.current_source.is_enabled()


def test_rt_ramp_rows_stay_one_step_apart_on_a_slow_bus(lab_station, run_procedure):
    """Every reply 5 ms late (a slow GPIB bus): at speed 200 a row costs ~15 s of lab time,
    far more than the 2 s interval. The ramp must wait for its readings rather than let the
    temperature run on between rows, so the transition is still sampled finely."""
    conn = lab_station(preset="nb-foil", speed=200)
    procedure = ResistanceTemperature(t_start=10.0, t_stop=8.0, ramp_rate=2.0, interval=2.0,
                                      fields="0", hold_time=5.0)
    step = procedure.ramp_step()  # 2 K/min × 2 s
    assert step == pytest.approx(2.0 / 60 * 2.0)

    def slow_bus(event):
        if event.kind == events.STATUS and event.payload["status"] == events.RUNNING:
            for role in ("temperature", "current_source"):
                conn.lab.faults.set(role, "latency", 0.005)

    result, run, _ = run_procedure(procedure, conn, listeners=[slow_bus])
    conn.lab.faults.clear_all()
    assert result.status == "finished", result.error
    data = run.columns
    setpoints, temperatures = data["setpoint"], data["temperature"]
    # one step of the set point per row, never more (rows after the last step: none)
    moves = np.abs(np.diff(setpoints))
    assert np.all(moves <= step + 1e-4)
    assert np.sum(np.isclose(moves, step, atol=1e-4)) >= round(2.0 / step) - 1
    # the sample follows it: no gap between rows beyond a step and its tracking error
    assert np.max(np.abs(np.diff(temperatures))) < 3 * step
    tc = transition_temperature(temperatures, data["resistance"])
    assert 8.5 < tc < 9.9
    assert any("waits for the readings" in entry.message for entry in run.log)
    # the sweep's closing line gives the rate the set point really moved at: the data's own
    # (set point span over the lab time the rows took, wall time x speed 200) to 15 %
    summary = [e.message for e in run.log if "on average" in e.message]
    assert len(summary) == 1 and "asked 2 K/min" in summary[0]
    said = float(re.search(r"moved at ([\d.]+) K/min", summary[0]).group(1))
    moved = np.flatnonzero(np.abs(np.diff(setpoints)) > 1e-6)
    span = abs(setpoints[moved[-1] + 1] - setpoints[moved[0]])
    lab_s = (data["time"][moved[-1] + 1] - data["time"][moved[0]]) * 200.0
    assert said == pytest.approx(span / lab_s * 60.0, rel=0.15)
    assert said < 0.9 * 2.0


def test_rt_ramp_refuses_fewer_than_two_rows(lab_station, tmp_path):
    conn = lab_station(preset="nb-foil")
    run = Run(ResistanceTemperature(t_start=10.0, t_stop=9.0, ramp_rate=20.0, interval=10.0),
              station=conn, output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"interval = 3.333 K between rows .* 1 K ramp"):
        run.start()
    assert list(tmp_path.iterdir()) == []


def test_rt_stepped_mode_waits_for_each_temperature(lab_station, run_procedure):
    conn = lab_station(preset="nb-foil", speed=1000)
    procedure = ResistanceTemperature(mode="step", t_start=10.0, t_stop=8.0, t_step=1.0,
                                      band=0.05, hold_time=5.0, readings=3, ramp_rate=5.0)
    result, run, _ = run_procedure(procedure, conn)
    assert result.status == "finished", result.error
    data = run.columns
    assert list(data["setpoint"]) == [10.0, 9.0, 8.0]
    assert np.allclose(data["temperature"], data["setpoint"], atol=0.05)
    assert data["resistance"][0] > 0.002 and abs(data["resistance"][2]) < 1e-4


def test_iv_critical_current_matches_sample(lab_station, run_procedure):
    conn = lab_station(speed=200)
    procedure = CriticalCurrentIV(current_max=5e-3, points=41, directions="up")
    result, run, seen = run_procedure(procedure, conn)
    assert result.status == "finished", result.error
    fit = run.fits["critical_current_sweep0"]
    temperature = float(np.mean(run.columns["temperature"]))
    expected = conn.lab.sample.critical_current(temperature)
    assert fit["ic_mean"] == pytest.approx(expected, rel=0.15)
    assert not fit["ohmic"]
    assert any(e.kind == events.FIT for e in seen)
    data = run.columns
    below = np.abs(data["current"]) < 0.8 * expected
    assert np.all(np.abs(data["voltage"][below]) < 1e-6)  # zero resistance below Ic
    assert not conn.current_source.is_enabled()


def test_limit_breach_stops_before_any_instrument_moves(lab_station, tmp_path):
    conn = lab_station(limits={"max_current_a": 1e-3})
    before = conn.current_source.current(), conn.temperature.setpoint()
    run = Run(ResistanceTemperature(current=2e-3), station=conn, output_dir=tmp_path)
    with pytest.raises(LimitError, match=r"current = 0.002 A is outside .*0.001 A"):
        run.start()
    assert (conn.current_source.current(), conn.temperature.setpoint()) == before
    assert not conn.current_source.is_enabled()
    assert list(tmp_path.iterdir()) == []


def test_abort_mid_spectrum_leaves_safe_state_and_keeps_rows(lab_station, tmp_path):
    conn = lab_station(wiring={"dc_voltage_reader": "lockin_aux_in"})
    run = Run(DifferentialConductanceLockIn(points=101, directions="up"), station=conn,
              output_dir=tmp_path)

    def abort_after_ten(event):
        if event.kind == events.RECORD and run.rows >= 10:
            run.control.abort()

    run.subscribe(abort_after_ten)
    result = run.execute()
    assert result.status == "aborted"
    assert 10 <= result.rows < 101
    from daqapp.storage import open_run

    with open_run(result.path) as stored:
        assert stored.status == "aborted"
        assert stored.n_rows == result.rows
        assert stored.snapshots["end"] is not None
    assert conn.lockin.excitation() == pytest.approx(0.004, abs=1e-3)
    assert abs(conn.lockin.aux_output(1)) < 1e-3


def _lab_seconds_to_first_row(conn, run_procedure, procedure) -> tuple[float, object]:
    started = conn.lab.clock.now()
    first: list[float] = []

    def on_record(event):
        if event.kind == events.RECORD and not first:
            first.append(conn.lab.clock.now())

    result, run, _ = run_procedure(procedure, conn, listeners=[on_record])
    assert result.status == "finished", result.error
    return first[0] - started, run


def test_rt_approach_rate_goes_to_t_start_faster_and_records_the_same_ramp(lab_station,
                                                                            run_procedure):
    """From the 1.5 K bath to t_start = 10 K nothing is recorded: at approach_rate = 10 K/min
    the set point gets there in 0.85 lab minutes, at the 2 K/min ramp rate in 4.25;
    the recorded ramp is paced by ramp_rate either way."""
    timings = {}
    for approach in (0.0, 10.0):
        conn = lab_station(preset="nb-foil", speed=400)
        procedure = ResistanceTemperature(t_start=10.0, t_stop=9.0, ramp_rate=2.0,
                                          interval=2.0, fields="0", hold_time=5.0,
                                          approach_rate=approach)
        assert procedure.start_rate() == (approach or 2.0)
        timings[approach], run = _lab_seconds_to_first_row(conn, run_procedure, procedure)
        data = run.columns
        assert abs(data["temperature"][0] - 10.0) < 0.1  # the hold at t_start came first
        moves = np.abs(np.diff(data["setpoint"]))
        assert np.all(moves <= procedure.ramp_step() + 1e-4)
    assert timings[0.0] > (10.0 - 1.5) / 2.0 * 60          # 4.25 min at the ramp rate
    # 0.85 min, then settling into the band (longer after the faster approach): about half
    assert timings[10.0] < 0.6 * timings[0.0]


def test_rt_approach_rate_is_checked_against_the_station(lab_station, tmp_path):
    conn = lab_station(preset="nb-foil")  # the controller's 20 K/min
    run = Run(ResistanceTemperature(t_start=10.0, t_stop=8.0, ramp_rate=2.0,
                                    approach_rate=30.0), station=conn, output_dir=tmp_path)
    with pytest.raises(LimitError, match=r"approach_rate = 30 .*20"):
        run.start()
    assert list(tmp_path.iterdir()) == []
