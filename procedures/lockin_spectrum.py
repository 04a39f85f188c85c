"""Differential conductance with the lock-in: the PCAR spectrum of the seed paper.

Circuit (DESIGN.md): the SR830 sine output drives an ac current through the bias resistor
R_b (48 kΩ) into the junction; the lock-in reads the ac voltage X across the junction. With the
junction's own differential resistance in series, I_ac = V_osc/(R_b + R_j) and X = I_ac·R_j, so
I_ac = (V_osc − X)/R_b exactly, with no need to know R_j in advance. Then dV/dI = X/I_ac and
dI/dV = 1/(dV/dI). The DC bias comes from the station's current source (or, without one, an
SR830 AUX output through the same resistor); the junction DC voltage, the spectrum's axis, from
the 2182A (or an SR830 AUX input).

Each point: set the bias, wait the lock-in's 99 % settling time (from τ and the filter slope),
clear the overload latch, read X and Y together, and if the lock-in overloaded (latched or
|X,Y| at full scale) step the sensitivity up, wait again and re-read; the column
``overload_steps`` records how many steps that point needed.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from pymeasure.experiment import FloatParameter, IntegerParameter, ListParameter

from daqapp.errors import LimitError, check_range
from daqapp.runner import ControlledProcedure
from procedures.common import (
    DIRECTIONS,
    SPACINGS,
    bias_values,
    check_current,
    log,
    read_field,
    read_temperature,
    station_limit,
    sweeps_for,
    wall_time,
)

#: Columns of every lock-in spectrum, with the units stored in the run file.
SPECTRUM_COLUMNS: dict[str, str] = {
    "bias_current": "A",
    "dc_voltage": "V",
    "x": "V",
    "y": "V",
    "i_ac": "A",
    "dvdi": "Ohm",
    "didv": "S",
    "sensitivity": "V",
    "overload_steps": "",
    "temperature": "K",
    "field": "T",
    "time": "s",
    "sweep": "",
    "direction": "",
}

AUX_MAX_V = 10.5          # SR830 AUX output range
SENSITIVITY_STEP = 1.5    # ×1.5 then "smallest full scale ≥" = the next 1-2-5 range
MAX_SENSITIVITY_V = 1.0
#: Settling assumed for estimates when no lock-in is connected: 7τ at τ = 30 ms (12 dB/oct).
NOMINAL_SETTLE_S = 0.21


class LockInSpectrumProcedure(ControlledProcedure):
    """Shared parameters and acquisition of a lock-in dI/dV spectrum (one or two sweeps)."""

    COLUMNS: ClassVar[dict[str, str]] = SPECTRUM_COLUMNS
    SWEEP_AXIS: ClassVar[str | None] = "dc_voltage"

    bias_start = FloatParameter("Bias start", units="A", default=-6e-4,
                                minimum=-0.105, maximum=0.105)
    bias_stop = FloatParameter("Bias stop", units="A", default=6e-4,
                               minimum=-0.105, maximum=0.105)
    points = IntegerParameter("Points per sweep", default=201, minimum=2, maximum=100_000)
    spacing = ListParameter("Bias spacing", choices=list(SPACINGS), default="dense_zero")
    directions = ListParameter("Sweep directions", choices=list(DIRECTIONS), default="up_down")
    excitation = FloatParameter("Lock-in excitation", units="V", default=0.1,
                                minimum=0.004, maximum=5.0)
    frequency = FloatParameter("Lock-in frequency", units="Hz", default=1013.0,
                               minimum=0.001, maximum=102_000.0)
    bias_resistor = FloatParameter("Bias resistor", units="Ohm", default=48e3,
                                   minimum=1.0, maximum=1e9)
    settle_time = FloatParameter("Settle time (0 = from lock-in tau and slope)", units="s",
                                 default=0.0, minimum=0.0, maximum=3600.0)
    max_overload_steps = IntegerParameter("Sensitivity steps allowed per point", default=6,
                                          minimum=0, maximum=26)

    # ---- declarations ---------------------------------------------------------------------
    def bias_list(self) -> np.ndarray:
        return bias_values(self.bias_start, self.bias_stop, self.points, self.spacing)

    def sweep_plan(self) -> list[tuple[int, np.ndarray]]:
        return sweeps_for(self.bias_list(), self.directions)

    def points_per_spectrum(self) -> int:
        return sum(len(values) for _, values in self.sweep_plan())

    def uses_aux_bias(self) -> bool:
        """No current source on the station: the DC bias comes from lock-in AUX OUT 1."""
        return self.role("source", required=False) is None

    def check_spectrum_limits(self, limits: Any) -> None:
        edge = max(abs(self.bias_start), abs(self.bias_stop))
        check_current("bias_start", self.bias_start, limits)
        check_current("bias_stop", self.bias_stop, limits)
        check_range("excitation", self.excitation, station_limit(limits, "min_excitation_v"),
                    station_limit(limits, "max_excitation_v"), "V")
        if self.station is not None and self.uses_aux_bias():
            top = AUX_MAX_V / self.bias_resistor
            if edge > top:
                raise LimitError(f"bias_start/bias_stop = {edge:g} A needs more than the "
                                 f"lock-in AUX output's {AUX_MAX_V} V through "
                                 f"{self.bias_resistor:g} Ohm (allowed up to {top:g} A)")
        # the ac current adds to the DC bias at its peak
        peak = edge + math.sqrt(2) * self.excitation / self.bias_resistor
        check_current("bias + excitation peak", peak, limits)

    def check_limits(self, limits: Any) -> None:
        self.check_spectrum_limits(limits)

    def point_time(self) -> float:
        if self.settle_time > 0:
            return self.settle_time
        lockin = self.role("lockin", required=False) if self.station is not None else None
        if lockin is not None:
            try:
                return float(lockin.settle_time())
            except Exception:  # noqa: BLE001 - an estimate must not fail on a busy link
                return NOMINAL_SETTLE_S
        return NOMINAL_SETTLE_S

    def estimate_duration(self) -> float:
        return self.points_per_spectrum() * self.point_time()

    # ---- acquisition ----------------------------------------------------------------------
    def prepare_spectrum(self) -> None:
        """Excitation on, DC source on at zero. Call once before the first spectrum."""
        self._lockin = self.role("lockin")
        self._source = self.role("source", required=False)
        self._nvm = self.role("nanovoltmeter", required=False)
        self._lockin.set_excitation(self.excitation, self.frequency)
        if self._source is not None:
            self._source.set_current(0.0)
            self._source.enable()
        else:
            self._lockin.set_aux_output(1, 0.0)
        self._sensitivity = float(self._lockin.sensitivity())
        self._settle = self.settle_time if self.settle_time > 0 else float(
            self._lockin.settle_time())
        self._bias = 0.0
        log.info("lock-in spectrum: %d points per spectrum, settle %.3g s per point, "
                 "DC bias from %s, junction voltage from %s", self.points_per_spectrum(),
                 self._settle, "current source" if self._source is not None else "AUX OUT 1",
                 "2182A" if self._nvm is not None else "AUX IN 1")

    def set_bias(self, amps: float) -> None:
        if self._source is not None:
            self._source.set_current(amps)
        else:
            self._lockin.set_aux_output(1, amps * self.bias_resistor)
        self._bias = amps

    def ramp_bias(self, target: float, steps: int = 10) -> None:
        """Move the DC bias to ``target`` in small steps (no current spike in the contact)."""
        start = self._bias
        for value in np.linspace(start, target, steps + 1)[1:]:
            self.set_bias(float(value))
            self.sleep(self._settle / steps)

    def junction_dc_voltage(self) -> float:
        if self._nvm is not None:
            return float(self._nvm.voltage())
        return float(self._lockin.aux_input(1))

    def read_lockin(self) -> tuple[float, float, int]:
        """X, Y and the number of sensitivity steps this point needed."""
        steps = 0
        lockin = self._lockin
        lockin.is_overloaded()  # clear the latch left by the bias step
        while True:
            x, y = lockin.xy()
            overloaded = lockin.is_overloaded() or math.hypot(x, y) >= self._sensitivity
            if not overloaded:
                return x, y, steps
            if steps >= self.max_overload_steps or self._sensitivity >= MAX_SENSITIVITY_V:
                log.warning("lock-in still overloaded at %.3g V full scale after %d steps "
                            "(bias %.4g A); point recorded as is", self._sensitivity, steps,
                            self._bias)
                return x, y, steps
            lockin.set_sensitivity(min(self._sensitivity * SENSITIVITY_STEP, MAX_SENSITIVITY_V))
            self._sensitivity = float(lockin.sensitivity())
            steps += 1
            log.info("overload at bias %.4g A: sensitivity stepped up to %.3g V", self._bias,
                     self._sensitivity)
            self.sleep(self._settle)
            lockin.is_overloaded()

    def measure_point(self, bias: float, sweep: int, direction: int) -> dict[str, float]:
        self.set_bias(bias)
        self.sleep(self._settle)
        x, y, steps = self.read_lockin()
        v_dc = self.junction_dc_voltage()
        if self._source is None:  # AUX bias: the resistor's drop sets the current
            bias = (bias * self.bias_resistor - v_dc) / self.bias_resistor
        i_ac = (self.excitation - x) / self.bias_resistor
        dvdi = x / i_ac if i_ac != 0 else math.nan
        didv = 1.0 / dvdi if dvdi not in (0.0,) and math.isfinite(dvdi) else math.nan
        return {
            "bias_current": bias, "dc_voltage": v_dc, "x": x, "y": y, "i_ac": i_ac,
            "dvdi": dvdi, "didv": didv, "sensitivity": self._sensitivity,
            "overload_steps": steps, "temperature": read_temperature(self),
            "field": read_field(self), "time": wall_time(), "sweep": sweep,
            "direction": direction,
        }

    def acquire_spectrum(self, first_sweep: int, done: int, total: int,
                         **sweep_info: Any) -> tuple[int, int, bool]:
        """Measure one spectrum (the planned sweeps). Returns (next sweep index, points done,
        completed); ``completed`` is False if the operator stopped the run."""
        sweep = first_sweep
        for direction, values in self.sweep_plan():
            self.ramp_bias(float(values[0]))
            taken = 0
            for bias in values:
                if not self.checkpoint():
                    self._end_sweep(sweep, direction, taken, sweep_info)
                    return sweep + 1, done, False
                self.record(**self.measure_point(float(bias), sweep, direction))
                taken += 1
                done += 1
                self.progress(done, total)
            self._end_sweep(sweep, direction, taken, sweep_info)
            sweep += 1
        self.ramp_bias(0.0)
        return sweep, done, True

    def _end_sweep(self, sweep: int, direction: int, taken: int, info: dict[str, Any]) -> None:
        if taken:
            self.end_sweep(sweep, direction=direction, points=taken,
                           temperature=read_temperature(self), field=read_field(self), **info)

    def release_spectrum(self) -> None:
        """Bias to zero and the DC source off; the station's safe state follows anyway."""
        source = getattr(self, "_source", None)
        lockin = getattr(self, "_lockin", None)
        if source is not None:
            source.set_current(0.0)
            source.disable()
        elif lockin is not None:
            lockin.set_aux_output(1, 0.0)


class DifferentialConductanceLockIn(LockInSpectrumProcedure):
    """dI/dV spectrum with the SR830 lock-in (the seed paper's PCAR measurement)."""

    SUMMARY = "dI/dV spectrum, SR830 lock-in excitation + DC bias sweep"

    def execute(self) -> None:
        self.prepare_spectrum()
        self.acquire_spectrum(0, 0, self.points_per_spectrum())

    def shutdown(self) -> None:
        self.release_spectrum()
