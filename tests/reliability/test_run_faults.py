"""Faults that corrupt data end the run: on the virtual lab, each injected fault (a source that
stops replying or stops applying its set point, a frozen voltmeter, compliance, a quench, an
open heater, a temperature that never settles) gives status "failed" with the cause named in
the result, the file's error text and its log, rows already taken kept, and never a hang."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest

from daqapp.runner import Run, events
from daqapp.runner.watchdogs import (
    ConditionTimeout,
    FaultWatch,
    RunFault,
    StuckReading,
    wait_until,
)
from daqapp.station import Station
from daqapp.storage import open_run
from procedures.dcon import DifferentialConductanceDcon
from procedures.iv import CriticalCurrentIV
from procedures.lockin_spectrum import DifferentialConductanceLockIn
from procedures.rt import ResistanceTemperature
from procedures.series import FieldSweep

pytestmark = pytest.mark.timeout(120)

SOURCE_BIAS = {"wiring": {"dc_bias_source": "current_source"},
               # a dead 6221 costs one short timeout per query, not the default 5 s
               "current_source": {"driver": "Keithley6221", "timeout_s": 0.5}}
AUX_READOUT = {"wiring": {"dc_voltage_reader": "lockin_aux_in"}}


def lockin(**kw):
    return DifferentialConductanceLockIn(points=61, directions="up", **kw)


def rt(**kw):
    kw.setdefault("hold_time", 5.0)
    return ResistanceTemperature(t_start=12.0, t_stop=8.0, **kw)


#: id -> (procedure factory, preset, station tables, role, fault, after rows (None: at
#: start), text the error must contain)
CASES = {
    "6221 bias stops replying": (lockin, "la3ni2o7-cell2", SOURCE_BIAS, "current_source",
                                 "no_reply", 5, "6221 did not"),
    "6221 bias stops applying": (lockin, "la3ni2o7-cell2", SOURCE_BIAS, "current_source",
                                 "frozen", 5, "the set point was not applied"),
    "2182A frozen under a 6221 bias": (lockin, "la3ni2o7-cell2", SOURCE_BIAS, "nanovoltmeter",
                                       "frozen", 5, "junction DC voltage stuck at"),
    "2182A frozen under an AUX bias": (lockin, "la3ni2o7-cell2", {}, "nanovoltmeter", "frozen",
                                       5, "junction DC voltage stuck at"),
    "lock-in frozen (AUX in and out)": (lockin, "la3ni2o7-cell2", AUX_READOUT, "lockin",
                                        "frozen", 5, "junction DC voltage stuck at"),
    "quench during a spectrum": (lockin, "la3ni2o7-cell2", AUX_READOUT, "magnet", "quench", 3,
                                 "magnet quenched at"),
    "quench during a field sweep": (
        lambda: FieldSweep(points=31, directions="up", fields="0.1", field_rate=0.5),
        "la3ni2o7-cell2", AUX_READOUT, "magnet", "quench", 3, "magnet quenched at"),
    "R-T compliance": (rt, "nb-foil", {}, "current_source", "compliance", 3,
                       "6221 in compliance at 0.2 mA (compliance 10 V)"),
    "R-T heater opens mid-ramp": (rt, "nb-foil", {}, "temperature", "heater_open", 3,
                                  "heater open"),
    "R-T heater open from the start": (rt, "nb-foil", {}, "temperature", "heater_open", None,
                                       "heater open"),
    "R-T quench in field": (lambda: rt(fields="0.2", field_rate=0.5), "nb-foil", {}, "magnet",
                            "quench", 3, "magnet quenched at"),
    "R-T 6221 frozen in delta mode": (rt, "nb-foil", {}, "current_source", "frozen", 3,
                                      "sample voltage stuck at"),
    "R-T temperature controller frozen": (rt, "nb-foil", {}, "temperature", "frozen", 3,
                                          "temperature reading stuck at"),
    "I-V compliance": (lambda: CriticalCurrentIV(points=41, directions="up"), "nb-foil", {},
                       "current_source", "compliance", 3, "6221 in compliance at"),
    "I-V voltmeter frozen": (
        lambda: CriticalCurrentIV(points=41, directions="up", voltmeter="nanovoltmeter"),
        "nb-foil", {}, "nanovoltmeter", "frozen", 3, "2182A voltage stuck at"),
    "DCON compliance": (DifferentialConductanceDcon, "la3ni2o7-cell2", {}, "current_source",
                        "compliance", None, "6221 in compliance at"),
}


@pytest.fixture
def faulty_run(tmp_path):
    opened = []

    def run(factory, preset, tables, role, kind, after):
        # a host stall of 10 ms is 10 s on a lab at 1000x: transport runs, whose bursts time
        # out in seconds of instrument time, go slower so a loaded machine is not a fault
        speed = 300.0 if preset == "nb-foil" else 1000.0
        conn = Station.simulated(preset=preset, speed=speed, seed=1, **tables).connect()
        opened.append(conn)
        procedure = factory()
        run = Run(procedure, station=conn, output_dir=tmp_path)
        if after is None:
            conn.lab.faults.set(role, kind)
        else:
            def inject(event):
                if event.kind == events.RECORD and run.rows == after:
                    conn.lab.faults.set(role, kind)

            run.subscribe(inject)
        result = run.execute()
        conn.lab.faults.clear_all()
        return conn, result

    yield run
    for conn in opened:
        conn.close()


@pytest.mark.parametrize("case", list(CASES))
def test_fault_fails_the_run_with_its_cause(faulty_run, case):
    factory, preset, tables, role, kind, after, cause = CASES[case]
    conn, result = faulty_run(factory, preset, tables, role, kind, after)
    assert result.status == "failed", (case, result)
    assert cause in result.error
    assert result.rows >= (after or 0)
    with open_run(result.path) as stored:
        assert stored.status == "failed"
        assert cause in stored.attrs["error"]
        assert any(cause in entry.message for entry in stored.log
                   if entry.level == "ERROR")
        assert stored.n_rows == result.rows
    if role != "current_source" and conn.current_source is not None:
        assert not conn.current_source.is_enabled()  # the bookend's safe state ran


def test_compliance_leaves_no_nan_rows(faulty_run):
    """An R-T whose 6221 went into compliance gave 84 % NaN rows and "finished"; now the
    first reading in compliance ends it, before its row is written."""
    factory, preset, tables, role, kind, after, _ = CASES["R-T compliance"]
    _, result = faulty_run(factory, preset, tables, role, kind, after)
    with open_run(result.path) as stored:
        assert np.isfinite(stored.columns["resistance"]).all()


def test_temperature_that_never_settles_times_out_naming_the_condition(faulty_run):
    def unreachable():
        # 1 s of stabilisation after the ramp time is far too little to settle at 12 K
        return rt(ramp_rate=20.0, hold_time=0.5, stabilize_timeout=1.0)

    _, result = faulty_run(unreachable, "nb-foil", {}, "lockin", "latency", 10_000)
    assert result.status == "failed"
    assert "temperature not within ±0.1 K of 12 K" in result.error
    assert " after " in result.error and "(now " in result.error


def test_healthy_runs_still_finish(faulty_run):
    """The watchdogs must not fire on good data: a superconductor's zero voltage below Ic
    and the flat normal-state background are not stuck readings."""
    _, iv = faulty_run(lambda: CriticalCurrentIV(points=61, directions="up_down"), "nb-foil",
                       {}, "lockin", "latency", 10_000)
    assert iv.status == "finished", iv.error
    _, spectrum = faulty_run(lambda: lockin(bias_start=-9e-4, bias_stop=9e-4), "nb-foil",
                             SOURCE_BIAS, "lockin", "latency", 10_000)
    assert spectrum.status == "finished", spectrum.error


# ---- the watchdog parts on their own ------------------------------------------------------
def test_stuck_reading_fires_only_on_a_flat_window_while_the_set_value_moves():
    rng = np.random.default_rng(0)
    stuck = StuckReading("V", count=8)
    for i in range(50):  # superconducting: noise around zero, never stuck
        stuck.feed(i * 1e-5, float(rng.normal(0, 5e-9)))
    stuck.reset()
    for i in range(50):  # a flat background with its noise (1e-4 relative): not stuck
        stuck.feed(i * 1e-5, 0.1 * (1 + float(rng.normal(0, 1e-4))))
    stuck.reset()
    for _ in range(50):  # nothing moves: a constant reading is fine
        stuck.feed(1e-3, 0.0474)
    stuck.reset()
    for i in range(7):
        stuck.feed(i * 1e-5, -0.0474472 + i * 1e-10)
    with pytest.raises(RunFault, match="V stuck at -0.0474472 for 8 readings"):
        stuck.feed(7e-5, -0.0474472)


def test_stuck_reading_names_the_cause_behind_it_first():
    def compliance():
        raise RunFault("6221 in compliance at 5 mA (compliance 10 V)")

    stuck = StuckReading("V", count=3, explain=compliance)
    stuck.feed(1e-3, 10.0)
    stuck.feed(2e-3, 10.0)
    with pytest.raises(RunFault, match="in compliance"):
        stuck.feed(3e-3, 10.0)


def test_stuck_reading_skips_nan_rows():
    stuck = StuckReading("V", count=3)
    for i in range(10):
        stuck.feed(i, 1.0 if i % 2 else math.nan)


class _Clock:
    """A station whose clock the test moves (the virtual lab's interface)."""

    def __init__(self) -> None:
        self.t = 0.0
        self.clock = types.SimpleNamespace(now=lambda: self.t, real_seconds=lambda s: 0.0)

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_wait_until_times_out_with_the_condition_named():
    station = _Clock()
    with pytest.raises(ConditionTimeout, match=r"temperature not within ±0.05 K of 20 K "
                                               r"after 600 s \(now 19.2 K\)"):
        wait_until(station, lambda: False, what="temperature not within ±0.05 K of 20 K",
                   timeout_s=600, poll_s=1.0, sleep=station.sleep, state=lambda: "now 19.2 K")
    assert 600 < station.t < 603


def test_wait_until_runs_fault_checks_first_and_honours_stop():
    station = _Clock()

    def heater():
        raise RunFault("heater open")

    with pytest.raises(RunFault, match="heater open"):
        wait_until(station, lambda: True, what="x", timeout_s=10, sleep=station.sleep,
                   checks=(heater,))
    assert wait_until(station, lambda: False, what="x", timeout_s=10, sleep=station.sleep,
                      checkpoint=lambda: False) is False
    polls = iter([False, False, True])
    assert wait_until(station, lambda: next(polls), what="x", timeout_s=10,
                      sleep=station.sleep) is True


def test_fault_watch_checks_each_condition_at_its_own_rate():
    station = _Clock()
    calls = {"fast": 0, "slow": 0}
    watch = FaultWatch(station)
    watch.add(lambda: calls.__setitem__("fast", calls["fast"] + 1))
    watch.add(lambda: calls.__setitem__("slow", calls["slow"] + 1), every_s=10.0)
    for _ in range(40):
        assert watch.check(station) is None  # a suspender that never suspends
        station.sleep(0.5)
    assert calls == {"fast": 40, "slow": 2}
    watch.run(force=True)
    assert calls == {"fast": 41, "slow": 3}
