"""I–V curve and critical current: 6221 DC current sweep, 2182A voltage (seed: ±5 mA).

Thermal EMFs of a few µV that drift by nV/s sit on top of every DC reading; over a sweep the
drift looks like a resistance and moves the point where V "leaves zero". ``offset`` removes
it: ``reversal`` reads V(+I) and V(−I) back to back and keeps (V(+I) − V(−I))/2 (the standard
DC-reversal technique; the curve is then odd in I by construction), ``zero`` subtracts a
reading at I = 0 taken just before each point (keeps any asymmetry, doubles the time),
``none`` records the raw voltage (fastest; what a plain 6221 + 2182A sweep gives).

Each sweep is one row of the 2-D sweep datasets; after each sweep the critical current (where
V leaves zero) is computed from that sweep's points and stored as a fit result, so an Ic(T) or
Ic(B) series can be read from the fits group without re-analysing.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from pymeasure.experiment import ListParameter

from daqapp.runner import ControlledProcedure
from daqapp.runner.procedure import FloatParameter, IntegerParameter
from procedures.common import (
    DIRECTIONS,
    VOLTMETERS,
    bias_values,
    check_compliance,
    check_current,
    log,
    read_field,
    read_temperature,
    set_source_current,
    start_fault_watch,
    stuck_watch,
    sweeps_for,
    transport_voltmeter,
    wall_time,
)


def find_critical_current(current: np.ndarray, voltage: np.ndarray,
                          threshold_v: float) -> dict[str, Any]:
    """Ic of one sweep by :func:`daqapp.analysis.critical.critical_current` (both polarities;
    ``threshold_v`` 0 = five times the voltage noise of the low-current part)."""
    from daqapp.analysis.critical import critical_current

    result = critical_current(current, voltage, threshold_V=threshold_v or None)
    return result.to_dict()


class CriticalCurrentIV(ControlledProcedure):
    """I–V sweep with the 6221 (DC) and the 2182A; Ic from where V leaves zero."""

    #: delta mode / DC sweeps: no lock-in
    ROLES: ClassVar[tuple[str, ...] | None] = ("current_source", "nanovoltmeter", "temperature",
                                               "magnet")
    SUMMARY = "I-V curve and critical current (6221 DC sweep, 2182A voltage)"
    COLUMNS: ClassVar[dict[str, str]] = {
        "current": "A", "voltage": "V", "voltage_raw": "V", "resistance": "Ohm",
        "temperature": "K",
        "field": "T", "time": "s", "sweep": "", "direction": "",
    }
    SWEEP_AXIS: ClassVar[str | None] = "current"

    current_max = FloatParameter("Maximum current", units="A", default=5e-3,
                                 minimum=1e-9, maximum=0.105)
    points = IntegerParameter("Points per sweep", default=201, minimum=3, maximum=100_000)
    directions = ListParameter("Sweep directions", choices=list(DIRECTIONS), default="up_down")
    settle = FloatParameter("Delay after each current step", units="s", default=0.02,
                            minimum=1e-4, maximum=60.0, zero_allowed=True)
    compliance = FloatParameter("Compliance", units="V", default=10.0, minimum=0.1,
                                maximum=105.0)
    voltmeter = ListParameter("Voltmeter", choices=list(VOLTMETERS), default="linked")
    nplc = FloatParameter("Integration (linked 2182A)", units="NPLC", default=1.0,
                          minimum=0.01, maximum=50.0)
    offset = ListParameter("Thermal-EMF offset removal", choices=["reversal", "zero", "none"],
                           default="reversal")
    criterion = FloatParameter("Ic voltage criterion (0 = 5 x noise)", units="V", default=0.0,
                               minimum=1e-9, maximum=1.0, zero_allowed=True)

    def currents(self) -> np.ndarray:
        return bias_values(-self.current_max, self.current_max, self.points, "symmetric")

    def check_limits(self, limits: Any) -> None:
        check_current("current_max", self.current_max, limits)
        check_compliance("compliance", self.compliance, limits)

    def estimate_duration(self) -> float:
        plan = sweeps_for(self.currents(), self.directions)
        reading = 2 * self.nplc / 50.0 + 0.05  # integration, pass-through pause
        per_point = 1 if self.offset == "none" else 2
        return sum(len(v) for _, v in plan) * per_point * (self.settle + reading)

    def execute(self) -> None:
        source = self.role("source")
        nvm = transport_voltmeter(self, self.voltmeter, self.nplc)
        source.set_current(0.0)
        source.set_compliance(self.compliance)
        source.enable()
        self._amps = 0.0
        start_fault_watch(self, source=source, amps=lambda: self._amps)
        stuck = stuck_watch("2182A voltage", self)
        plan = sweeps_for(self.currents(), self.directions)
        total = sum(len(v) for _, v in plan)
        done = 0
        for sweep, (direction, values) in enumerate(plan):
            currents, voltages = [], []
            stuck.reset()
            for amps in values:
                if not self.checkpoint():
                    break
                raw, volts = self._measure(source, nvm, float(amps))
                stuck.feed(float(amps), raw)
                currents.append(float(amps))
                voltages.append(volts)
                self.record(current=float(amps), voltage=volts, voltage_raw=raw,
                            resistance=volts / amps if amps else math.nan,
                            temperature=read_temperature(self), field=read_field(self),
                            time=wall_time(), sweep=sweep, direction=direction)
                done += 1
                self.progress(done, total)
            self.end_sweep(sweep, direction=direction, points=len(currents),
                           temperature=read_temperature(self), field=read_field(self))
            if len(currents) >= 8:
                result = find_critical_current(np.array(currents), np.array(voltages),
                                               self.criterion)
                result.update(model="critical_current", sweep=sweep, direction=direction,
                              temperature=read_temperature(self), field=read_field(self))
                self.emit("fit", {"name": f"critical_current_sweep{sweep}", "result": result})
                ic = result.get("ic_mean")
                log.info("sweep %d: Ic = %s", sweep, f"{ic:.4g} A" if ic is not None else
                         "beyond the sweep range")
            if self.should_stop():
                break
        source.set_current(0.0)

    def _measure(self, source: Any, nvm: Any, amps: float) -> tuple[float, float]:
        """(raw V at ``amps``, offset-corrected V)."""
        if self.offset == "zero":
            self._set(source, 0.0)
            self.sleep(self.settle)
            zero = float(nvm.voltage())
        self._set(source, amps)
        self.sleep(self.settle)
        raw = float(nvm.voltage())
        if self.offset == "none":
            return raw, raw
        if self.offset == "zero":
            return raw, raw - zero
        self._set(source, -amps)
        self.sleep(self.settle)
        reverse = float(nvm.voltage())
        self._set(source, amps)
        return raw, (raw - reverse) / 2

    def _set(self, source: Any, amps: float) -> None:
        set_source_current(source, amps)
        self._amps = amps

    def shutdown(self) -> None:
        source = self.role("source", required=False)
        if source is not None:
            source.set_current(0.0)
            source.disable()
