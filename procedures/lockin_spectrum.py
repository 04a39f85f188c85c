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
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
from pymeasure.experiment import ListParameter

from daqapp.errors import LimitError, check_range
from daqapp.runner import ControlledProcedure
from daqapp.runner.procedure import FloatParameter, IntegerParameter
from procedures.common import (
    DIRECTIONS,
    SPACINGS,
    bias_values,
    check_bias,
    log,
    read_field,
    read_temperature,
    set_source_current,
    start_fault_watch,
    station_limit,
    stuck_watch,
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
MIN_SENSITIVITY_V = 2e-9
AUTORANGE_HEADROOM = 3.0
#: 99 % settling in time constants for each filter slope (dB/oct), as the SR830 manual gives.
SETTLE_TAUS = {6: 5.0, 12: 7.0, 18: 9.0, 24: 10.0}
#: The bias network of DESIGN.md, for procedures run without a station file.
DEFAULT_WIRING = SimpleNamespace(bias_resistor_ohm=48e3, dc_bias_source="lockin_aux",
                                 bias_aux_channel=1, bias_divider=1.0,
                                 dc_voltage_reader="nanovoltmeter", dc_voltage_aux_channel=1,
                                 dc_voltage_gain=1.0)
#: Settling assumed for estimates when no lock-in is connected: 7τ at τ = 30 ms (12 dB/oct).
NOMINAL_SETTLE_S = 0.21
#: SR830 AUX input resolution (1/3 mV): AUX readings closer than this are the same reading.
AUX_IN_RESOLUTION_V = 1.0 / 3000.0


class LockInSpectrumProcedure(ControlledProcedure):
    """Shared parameters and acquisition of a lock-in dI/dV spectrum (one or two sweeps)."""

    COLUMNS: ClassVar[dict[str, str]] = SPECTRUM_COLUMNS
    SWEEP_AXIS: ClassVar[str | None] = "dc_voltage"

    # ±0.2 mA: ±70 mV on the seed's 350 Ω La3Ni2O7 contacts, and within what an SR830 AUX
    # output (10.5 V) can drive through the 48 kΩ bias resistor.
    bias_start = FloatParameter("Bias start", units="A", default=-2e-4,
                                minimum=-0.105, maximum=0.105)
    bias_stop = FloatParameter("Bias stop", units="A", default=2e-4,
                               minimum=-0.105, maximum=0.105)
    points = IntegerParameter("Points per sweep", default=201, minimum=2, maximum=100_000)
    spacing = ListParameter("Bias spacing", choices=list(SPACINGS), default="dense_zero")
    directions = ListParameter("Sweep directions", choices=list(DIRECTIONS), default="up_down")
    excitation = FloatParameter("Lock-in excitation", units="V", default=0.1,
                                minimum=0.004, maximum=5.0)
    frequency = FloatParameter("Lock-in frequency", units="Hz", default=1013.0,
                               minimum=0.001, maximum=102_000.0)
    bias_resistor = FloatParameter("Bias resistor (0 = from the station wiring)", units="Ohm",
                                   default=0.0, minimum=1.0, maximum=1e9, zero_allowed=True)
    time_constant = FloatParameter("Lock-in time constant (0 = leave as set)", units="s",
                                   default=0.1, minimum=1e-5, maximum=30_000.0,
                                   zero_allowed=True)  # SR830: 10 us to 30 ks
    filter_slope = ListParameter("Lock-in filter slope (0 = leave as set)", units="dB/oct",
                                 choices=[0, 6, 12, 18, 24], default=12)
    settle_time = FloatParameter("Settle time (0 = from lock-in tau and slope)", units="s",
                                 default=0.0, minimum=1e-3, maximum=3600.0, zero_allowed=True)
    max_overload_steps = IntegerParameter("Sensitivity steps allowed per point", default=6,
                                          minimum=0, maximum=26)

    # ---- declarations ---------------------------------------------------------------------
    def bias_list(self) -> np.ndarray:
        return bias_values(self.bias_start, self.bias_stop, self.points, self.spacing)

    def sweep_plan(self) -> list[tuple[int, np.ndarray]]:
        return sweeps_for(self.bias_list(), self.directions)

    def points_per_spectrum(self) -> int:
        return sum(len(values) for _, values in self.sweep_plan())

    def wiring(self) -> Any:
        """The station's bias network (``station.wiring``), or the DESIGN.md defaults."""
        wiring = getattr(self.station, "wiring", None)
        return wiring if wiring is not None else DEFAULT_WIRING

    def resistor(self) -> float:
        return self.bias_resistor or float(self.wiring().bias_resistor_ohm)

    def uses_aux_bias(self) -> bool:
        """The DC bias comes from a lock-in AUX output (station wiring ``dc_bias_source``)."""
        return self.wiring().dc_bias_source == "lockin_aux"

    def aux_volts_per_amp(self) -> float:
        wiring = self.wiring()
        return self.resistor() / float(wiring.bias_divider)

    def check_spectrum_limits(self, limits: Any) -> None:
        if self.bias_start == self.bias_stop:
            raise LimitError(f"bias_start = bias_stop = {self.bias_start:g} A: a spectrum "
                             "needs two different ends")
        edge = max(abs(self.bias_start), abs(self.bias_stop))
        check_bias("bias_start", self.bias_start, limits)
        check_bias("bias_stop", self.bias_stop, limits)
        check_range("excitation", self.excitation, station_limit(limits, "min_excitation_v"),
                    station_limit(limits, "max_excitation_v"), "V")
        if self.uses_aux_bias():
            top = AUX_MAX_V / self.aux_volts_per_amp()
            if edge > top:
                raise LimitError(f"bias_start/bias_stop = {edge:g} A needs more than the "
                                 f"lock-in AUX output's {AUX_MAX_V} V through "
                                 f"{self.resistor():g} Ohm (allowed up to {top:g} A)")
        # the ac current adds to the DC bias at its peak
        peak = edge + math.sqrt(2) * self.excitation / self.resistor()
        check_bias("bias + excitation peak current", peak, limits)

    def check_limits(self, limits: Any) -> None:
        self.check_spectrum_limits(limits)

    def point_time(self) -> float:
        if self.settle_time > 0:
            return self.settle_time
        if self.time_constant and self.filter_slope:
            return self.time_constant * SETTLE_TAUS[int(self.filter_slope)]
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
        wiring = self.wiring()
        self._lockin = self.role("lockin")
        self._source = None if self.uses_aux_bias() else self.role("source")
        self._nvm = (self.role("nanovoltmeter") if wiring.dc_voltage_reader == "nanovoltmeter"
                     else None)
        self._aux_out = int(wiring.bias_aux_channel)
        self._aux_in = int(wiring.dc_voltage_aux_channel)
        self._aux_in_gain = float(wiring.dc_voltage_gain)
        self._resistor = self.resistor()
        self._lockin.set_excitation(self.excitation, self.frequency)
        self.set_filter()
        if self._source is not None:
            self._source.set_current(0.0)
            self._source.enable()
        else:
            self._lockin.set_aux_output(self._aux_out, 0.0)
        self._sensitivity = float(self._lockin.sensitivity())
        self._settle = self.settle_time if self.settle_time > 0 else float(
            self._lockin.settle_time())
        self._bias = 0.0
        start_fault_watch(self, source=self._source, amps=lambda: self._bias,
                          field_dependent=self.field_dependent())
        # the junction voltage must follow the bias: one that sits still is not measured
        aux_lsb = AUX_IN_RESOLUTION_V / self._aux_in_gain if self._nvm is None else 0.0
        self._stuck = stuck_watch("junction DC voltage", self, resolution=aux_lsb,
                                  floor=2 * aux_lsb)
        log.info("lock-in spectrum: %d points per spectrum, settle %.3g s per point, "
                 "DC bias from %s, junction voltage from %s", self.points_per_spectrum(),
                 self._settle,
                 "current source" if self._source is not None else f"AUX OUT {self._aux_out}",
                 "2182A" if self._nvm is not None else f"AUX IN {self._aux_in}")

    def field_dependent(self) -> bool:
        """True for procedures that move the field (their quench check runs at every point)."""
        return False

    def set_filter(self) -> None:
        """τ and slope on the lock-in (0 leaves the front-panel setting)."""
        if self.time_constant:
            self._lockin.set_time_constant(self.time_constant)
        if self.filter_slope:
            self._lockin.set_filter_slope(int(self.filter_slope))

    def set_bias(self, amps: float) -> None:
        if self._source is not None:
            set_source_current(self._source, amps)
        else:
            self._lockin.set_aux_output(self._aux_out, amps * self.aux_volts_per_amp())
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
        return float(self._lockin.aux_input(self._aux_in)) / self._aux_in_gain

    def autorange(self) -> None:
        """Pick the sensitivity for the signal now (start of a sweep): the smallest full scale
        above ``AUTORANGE_HEADROOM`` × |X, Y|, so the point-by-point overload stepping only
        has to follow the spectrum's growth, never start from a 1 V range."""
        lockin = self._lockin
        x, y = lockin.xy()
        target = max(AUTORANGE_HEADROOM * math.hypot(x, y), MIN_SENSITIVITY_V)
        lockin.set_sensitivity(min(target, MAX_SENSITIVITY_V))
        self._sensitivity = float(lockin.sensitivity())
        self.sleep(self._settle)
        lockin.is_overloaded()
        log.info("sensitivity set to %.3g V full scale for |X,Y| = %.3g V", self._sensitivity,
                 math.hypot(x, y))

    def read_lockin(self) -> tuple[float, float, int]:
        """X, Y and the number of sensitivity steps this point needed.

        The overload latch also catches the transient of the bias step, so a latched overload
        with an in-range reading is re-read once (latch now cleared) before stepping; a
        clean point costs one ``SNAP?`` and one ``LIAS?``.
        """
        steps = 0
        lockin = self._lockin
        x, y = lockin.xy()
        latched = lockin.is_overloaded()
        if latched and math.hypot(x, y) < self._sensitivity:
            x, y = lockin.xy()
            latched = lockin.is_overloaded()
        while latched or math.hypot(x, y) >= self._sensitivity:
            if steps >= self.max_overload_steps or self._sensitivity >= MAX_SENSITIVITY_V:
                log.warning("lock-in still overloaded at %.3g V full scale after %d steps "
                            "(bias %.4g A); point recorded as is", self._sensitivity, steps,
                            self._bias)
                break
            # one range up, or straight to the range the (unclipped part of the) reading needs
            wanted = max(self._sensitivity, math.hypot(x, y)) * SENSITIVITY_STEP
            lockin.set_sensitivity(min(wanted, MAX_SENSITIVITY_V))
            self._sensitivity = float(lockin.sensitivity())
            steps += 1
            log.info("overload at bias %.4g A: sensitivity stepped up to %.3g V", self._bias,
                     self._sensitivity)
            self.sleep(self._settle)
            lockin.is_overloaded()  # the range change itself may latch
            x, y = lockin.xy()
            latched = lockin.is_overloaded()
        return x, y, steps

    def measure_point(self, bias: float, sweep: int, direction: int) -> dict[str, float]:
        self.set_bias(bias)
        self.sleep(self._settle)
        x, y, steps = self.read_lockin()
        v_dc = self.junction_dc_voltage()
        self._stuck.feed(bias, v_dc)
        if self._source is None:  # AUX bias: the resistor's drop sets the current
            bias = (bias * self._resistor - v_dc) / self._resistor
        i_ac = (self.excitation - x) / self._resistor
        dvdi = x / i_ac if i_ac else math.nan
        didv = 1.0 / dvdi if dvdi and math.isfinite(dvdi) else math.nan
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
            self._stuck.reset()
            self.ramp_bias(float(values[0]))
            self.sleep(self._settle)
            self.autorange()
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
            lockin.set_aux_output(getattr(self, "_aux_out", 1), 0.0)


class DifferentialConductanceLockIn(LockInSpectrumProcedure):
    """dI/dV spectrum with the SR830 lock-in (the seed paper's PCAR measurement)."""

    SUMMARY = "dI/dV spectrum, SR830 lock-in excitation + DC bias sweep"

    def execute(self) -> None:
        self.prepare_spectrum()
        self.acquire_spectrum(0, 0, self.points_per_spectrum())

    def shutdown(self) -> None:
        self.release_spectrum()
