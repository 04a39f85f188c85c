"""Differential conductance with the Keithley 6221 DCON mode: the fast dI/dV path.

The 6221 steps a current staircase with an alternating ±dI/2 modulation and the 2182A, slaved
over RS-232, converts once per step: dV_n = (X − 2Y + Z)/4·(−1)^n gives dV/dI = dV/dI_mod and the
average voltage AVOL gives the junction DC voltage. With ``FORM:ELEM READ,SOUR,AVOL,TST`` each
buffer entry is (dV, I, V_avg, t). A sweep takes N+2 conversions of a few ms each instead of
N lock-in settling times, at the price of a larger modulation.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from pymeasure.experiment import ListParameter

from daqapp.errors import ConfigError, InstrumentError, check_range
from daqapp.runner import ControlledProcedure
from daqapp.runner.procedure import FloatParameter
from drivers.keithley6221 import MAX_BUFFER_POINTS, DconSweep
from drivers.registry import require_capability
from procedures.common import (
    check_bias,
    check_compliance,
    log,
    read_field,
    read_temperature,
    start_fault_watch,
    stuck_watch,
    wait,
    wall_time,
)

#: Seconds per 2182A conversion on top of the DCON delay (NPLC 1 at 50 Hz plus overhead).
CONVERSION_S = 0.025


class DifferentialConductanceDcon(ControlledProcedure):
    """dI/dV spectrum from the 6221's differential-conductance (DCON) staircase."""

    #: delta mode / DC sweeps: no lock-in
    ROLES: ClassVar[tuple[str, ...] | None] = ("current_source", "nanovoltmeter", "temperature",
                                               "magnet")
    SUMMARY = "dI/dV spectrum, Keithley 6221 DCON mode with the 2182A (fast)"
    COLUMNS: ClassVar[dict[str, str]] = {
        "bias_current": "A", "dc_voltage": "V", "dv": "V", "dvdi": "Ohm", "didv": "S",
        "instrument_time": "s", "temperature": "K", "field": "T", "time": "s", "sweep": "",
        "direction": "",
    }
    SWEEP_AXIS: ClassVar[str | None] = "dc_voltage"

    bias_start = FloatParameter("Bias start", units="A", default=-6e-4,
                                minimum=-0.105, maximum=0.105)
    bias_stop = FloatParameter("Bias stop", units="A", default=6e-4,
                               minimum=-0.105, maximum=0.105)
    step = FloatParameter("Bias step", units="A", default=6e-6, minimum=1e-12, maximum=0.105)
    delta = FloatParameter("Modulation dI", units="A", default=4e-6, minimum=1e-12,
                           maximum=0.105)
    delay = FloatParameter("Delay before each conversion", units="s", default=0.002,
                           minimum=0.001, maximum=9999.999)
    compliance = FloatParameter("Compliance", units="V", default=2.0, minimum=0.1,
                                maximum=105.0)
    directions = ListParameter("Sweep directions", choices=["up", "down", "up_down"],
                               default="up_down")

    def sweeps(self) -> list[tuple[int, DconSweep]]:
        low, high = sorted((self.bias_start, self.bias_stop))
        up = DconSweep(low, high, self.step, self.delta, self.delay)
        down = DconSweep(high, low, self.step, self.delta, self.delay)
        plan = {"up": [(1, up)], "down": [(-1, down)], "up_down": [(1, up), (-1, down)]}
        if self.directions not in plan:
            raise ConfigError(f"directions = {self.directions!r}; allowed: up, down, up_down")
        return plan[self.directions]

    def check_limits(self, limits: Any) -> None:
        # before anything moves: a current source without DCON (a 6220) cannot run this
        require_capability(self.station, "current_source", "dcon",
                           "measure dI/dV with didv-lockin on this station")
        if self.bias_start == self.bias_stop:
            raise ConfigError("bias_start and bias_stop must differ")
        for _, sweep in self.sweeps():
            check_bias("DCON peak current (|bias| + step + delta)", sweep.peak_current_a, limits)
            check_range("points per sweep", sweep.points, 2, MAX_BUFFER_POINTS)
            sweep.validate()
        check_compliance("compliance", self.compliance, limits)

    def estimate_sweep(self, sweep: DconSweep) -> float:
        """Instrument seconds one staircase takes: N + 2 conversions."""
        return (sweep.points + 2) * (self.delay + CONVERSION_S)

    def estimate_duration(self) -> float:
        return sum(self.estimate_sweep(s) for _, s in self.sweeps())

    def execute(self) -> None:
        source = self.role("source")
        instrument = source.instrument
        if not instrument.dcon_nanovoltmeter_present:
            raise InstrumentError("6221 reports no 2182A on its RS-232 link "
                                  "(SOUR:DCON:NVPR? = 0): check the serial and trigger cables")
        source.set_compliance(self.compliance)
        instrument.delta_unit = "V"
        self._bias = 0.0
        start_fault_watch(self, source=source, amps=lambda: self._bias)
        self._stuck = stuck_watch("DCON average voltage", self)
        plan = self.sweeps()
        total = sum(s.points for _, s in plan)
        done = 0
        for index, (direction, sweep) in enumerate(plan):
            done, completed = self._run_sweep(source, sweep, index, direction, done, total)
            if not completed:
                return

    def _run_sweep(self, source: Any, sweep: DconSweep, index: int, direction: int,
                   done: int, total: int) -> tuple[int, bool]:
        instrument = source.instrument
        source.configure_dcon(sweep)
        instrument.dcon_arm()
        instrument.initiate()
        log.info("DCON sweep %d: %g to %g A in %g A steps, dI %g A (%d points)", index,
                 sweep.start_a, sweep.stop_a, sweep.step_a, sweep.delta_a, sweep.points)
        poll = max(0.05, 20 * (self.delay + CONVERSION_S))
        taken = {"rows": 0}
        self._stuck.reset()
        self._bias = sweep.start_a

        def drained() -> bool:
            stored = min(instrument.buffer_count(), sweep.points)
            if stored > taken["rows"]:
                taken["rows"] = self._emit_rows(instrument.buffer_readings(), taken["rows"],
                                                index, direction, sweep)
                self.progress(done + taken["rows"], total)
            return taken["rows"] >= sweep.points

        # a compliance abort (CAB) stops the staircase: the watch names it at the next poll;
        # a staircase that stops for any other reason ends at the timeout
        completed = wait(self, drained, f"DCON sweep {index}: {sweep.points} points not "
                         f"measured", 3 * self.estimate_sweep(sweep) + 30, poll,
                         (lambda: self.fault_watch.run(force=True),),
                         lambda: f"{taken['rows']} stored")
        if not completed:  # stopped: keep what the staircase has measured so far
            instrument.sweep_abort()
            taken["rows"] = self._emit_rows(instrument.buffer_readings(), taken["rows"], index,
                                            direction, sweep)
        taken = taken["rows"]
        instrument.sweep_abort()
        self.end_sweep(index, direction=direction, points=taken,
                       temperature=read_temperature(self), field=read_field(self))
        return done + taken, completed

    def _emit_rows(self, readings: dict[str, np.ndarray], taken: int, index: int,
                   direction: int, sweep: DconSweep) -> int:
        dv = readings["READ"]
        count = min(len(dv), sweep.points)
        if count <= taken:
            return taken
        temperature, field, now = read_temperature(self), read_field(self), wall_time()
        for i in range(taken, count):
            self._bias = float(readings["SOUR"][i])
            self._stuck.feed(self._bias, float(readings["AVOL"][i]))
            dvdi = float(dv[i]) / sweep.delta_a
            self.record(
                bias_current=float(readings["SOUR"][i]), dc_voltage=float(readings["AVOL"][i]),
                dv=float(dv[i]), dvdi=dvdi,
                didv=1.0 / dvdi if dvdi and math.isfinite(dvdi) else math.nan,
                instrument_time=float(readings["TST"][i]), temperature=temperature,
                field=field, time=now, sweep=index, direction=direction)
        return count

    def shutdown(self) -> None:
        source = self.role("source", required=False)
        if source is not None:
            source.instrument.sweep_abort()
            source.disable()
