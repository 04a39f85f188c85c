"""Lock-in and DCON dI/dV spectra, Nb calibration, temperature and field series (virtual lab)."""

from __future__ import annotations

import numpy as np
import pytest

from daqapp.runner import events
from procedures.dcon import DifferentialConductanceDcon
from procedures.lockin_spectrum import DifferentialConductanceLockIn
from procedures.series import FieldSweep, NbCalibration, TemperatureSeries

AUX_READOUT = {"dc_voltage_reader": "lockin_aux_in"}


def peak_positions_mV(volts: np.ndarray, didv: np.ndarray) -> tuple[float, float]:
    """Bias (mV) of the conductance maximum on each side of zero."""
    mv = volts * 1e3
    pos, neg = mv > 0, mv < 0
    return float(mv[pos][np.argmax(didv[pos])]), float(mv[neg][np.argmax(didv[neg])])


def test_lockin_spectrum_shows_gap_of_la3ni2o7(lab_station, run_procedure):
    conn = lab_station(wiring=AUX_READOUT)
    procedure = DifferentialConductanceLockIn(points=41, directions="up_down")
    result, run, seen = run_procedure(procedure, conn)
    assert result.status == "finished" and result.rows == 82
    assert run.status == "finished"
    units = run.units
    assert units["didv"] == "S" and units["dc_voltage"] == "V" and units["bias_current"] == "A"
    snaps = run.snapshots
    assert snaps["start"]["roles"]["lockin"]["idn"].startswith("Stanford_Research_Systems")
    assert snaps["end"]["roles"]["lockin"]["settings"]  # taken after the safe state
    sweeps = run.sweeps()
    assert [s.n_points for s in sweeps] == [41, 41]
    up = sweeps[0].columns
    assert np.all(np.diff(up["bias_current"]) > 0)
    assert np.all(np.diff(sweeps[1].columns["bias_current"]) < 0)
    # preset gap 1: Δ = 23 meV, Z 0.58 (2D): G(0) below the normal state, coherence peaks
    # beyond Δ, the edge of the window (±70 mV) close to the normal state
    v, g = up["dc_voltage"], up["didv"]
    g_norm = g / np.mean(g[np.abs(v) > 0.06])
    plus, minus = peak_positions_mV(v, g)
    assert 15 < plus < 35 and -35 < minus < -15
    assert g_norm[np.argmin(np.abs(v))] < 0.95
    assert g_norm.max() > 1.05
    # both directions give the same spectrum (no drift or heating in the model)
    down = sweeps[1].columns
    order = np.argsort(down["bias_current"])
    assert np.allclose(down["didv"][order], g, rtol=0.02)
    # I_ac from the excitation through 48 kΩ, corrected for the junction's drop
    assert np.allclose(up["i_ac"], (0.1 - up["x"]) / 48e3)
    kinds = {e.kind for e in seen}
    assert {events.RECORD, events.PROGRESS, events.STATUS, events.SWEEP_END} <= kinds
    # the safe state after the run: excitation at its minimum, AUX bias at zero
    assert conn.lockin.excitation() == pytest.approx(0.004, abs=1e-3)
    assert abs(conn.lockin.aux_output(1)) < 1e-3


def test_nb_calibration_finds_gap_peaks(lab_station, run_procedure):
    conn = lab_station(preset="nb-foil",
                       wiring={"dc_bias_source": "current_source",
                               "dc_voltage_reader": "nanovoltmeter"})
    procedure = NbCalibration(points=61, directions="up", hold_time=5.0, excitation=0.02)
    result, run, _ = run_procedure(procedure, conn)
    assert result.status == "finished", result.error
    data = run.columns
    assert np.all(np.abs(data["temperature"] - 3.0) < 0.1)
    plus, minus = peak_positions_mV(data["dc_voltage"], data["didv"])
    # Nb (Δ 1.5 meV, Γ 1.42 meV, Z 0.43, 2D, 3 K): peak near 1.7 mV
    assert 1.0 < plus < 3.0 and -3.0 < minus < -1.0
    g = data["didv"]
    v = data["dc_voltage"]
    edge = np.mean(g[np.abs(v) > 5e-3])
    assert g.max() / edge > 1.03
    assert not conn.current_source.is_enabled()


def test_overload_steps_sensitivity_and_records_it(lab_station, run_procedure):
    conn = lab_station(wiring=AUX_READOUT)
    procedure = DifferentialConductanceLockIn(points=15, directions="up", spacing="linear",
                                              bias_start=0.0, bias_stop=2e-4)
    procedure.autorange = lambda: None  # start on a range far too small for the signal
    conn.lockin.set_sensitivity(1e-6)
    result, run, _ = run_procedure(procedure, conn)
    assert result.status == "finished"
    data = run.columns
    assert data["overload_steps"][0] >= 3  # µV range -> mV signal: several steps at once
    assert data["sensitivity"][0] > np.hypot(data["x"][0], data["y"][0])
    assert any("overload" in entry.message for entry in run.log)


def test_dcon_spectrum_matches_lockin_gap(lab_station, run_procedure):
    conn = lab_station(wiring={"dc_bias_source": "current_source"})
    procedure = DifferentialConductanceDcon(bias_start=-2e-4, bias_stop=2e-4, step=5e-6,
                                            delta=2e-6, directions="up")
    result, run, _ = run_procedure(procedure, conn)
    assert result.status == "finished", result.error
    data = run.columns
    assert result.rows == 81
    assert run.units["dvdi"] == "ohm"  # stored in the units table's (pint) spelling
    plus, minus = peak_positions_mV(data["dc_voltage"], data["didv"])
    assert 15 < plus < 35 and -35 < minus < -15


def test_temperature_series_one_sweep_per_temperature(lab_station, run_procedure):
    conn = lab_station(speed=5000, wiring=AUX_READOUT)
    procedure = TemperatureSeries(temperatures="2, 4", points=21, directions="up",
                                  hold_time=10.0, band=0.05, ramp_rate=5.0)
    result, run, seen = run_procedure(procedure, conn)
    assert result.status == "finished", result.error
    sweeps = run.sweeps()
    assert len(sweeps) == 2
    assert sweeps[0].temperature == pytest.approx(2.0, abs=0.1)
    assert sweeps[1].temperature == pytest.approx(4.0, abs=0.1)
    ends = [e.payload for e in seen if e.kind == events.SWEEP_END]
    assert [e["setpoint"] for e in ends] == [2.0, 4.0]


def test_field_sweep_one_sweep_per_field(lab_station, run_procedure):
    conn = lab_station(speed=5000, wiring=AUX_READOUT)
    procedure = FieldSweep(fields="0, 0.5", points=21, directions="up", field_rate=0.5)
    result, run, _ = run_procedure(procedure, conn)
    assert result.status == "finished", result.error
    sweeps = run.sweeps()
    assert [round(s.field, 2) for s in sweeps] == [0.0, 0.5]


def test_temperature_series_suspends_while_out_of_band(lab_station, run_procedure):
    conn = lab_station(speed=1000, wiring=AUX_READOUT)
    procedure = TemperatureSeries(temperatures="4", points=41, directions="up",
                                  hold_time=5.0, band=0.05, ramp_rate=5.0,
                                  suspend_timeout=20_000.0)  # 20 s real: margin for slow CI
    faults = conn.lab.faults
    state = {"records": 0, "suspended": False, "records_at_suspension": None}

    def excursion(event):
        # Event-driven, no wall-clock timers: the heater fails at the 10th point and the
        # operator fixes it when the run reports the suspension (listeners run on the
        # acquisition thread, so the fix lands before the suspender checks again).
        if event.kind == events.RECORD:
            state["records"] += 1
            if state["records"] == 10:
                faults.set("temperature", "heater_open")  # the sample cools off the setpoint
        elif (event.kind == events.STATUS and event.payload["status"] == events.SUSPENDED
              and not state["suspended"]):
            state["suspended"] = True
            state["records_at_suspension"] = state["records"]
            faults.clear_all()  # the operator fixes the heater; the controller latched it
            conn.temperature.set_heater_range(1)  # off, so they switch it back on

    result, run, seen = run_procedure(procedure, conn, listeners=[excursion])
    assert result.status == "finished", result.error
    assert state["suspended"] and result.rows == 41
    # the cooling is seen within a few points of the fault (the spectrum had 31 to go)
    assert 10 <= state["records_at_suspension"] < 41
    reasons = [e.payload["reason"] for e in seen
               if e.kind == events.STATUS and e.payload["status"] == events.SUSPENDED]
    assert "outside 4 ± 0.05 K" in reasons[0]
    temperature = run.columns["temperature"]
    # no point was taken while out of band (the one in flight when it left may be off)
    assert np.sum(np.abs(temperature - 4.0) > 0.05) <= 1
    assert any("suspended" in entry.message for entry in run.log)
