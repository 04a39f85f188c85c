"""Spectra in series: one lock-in spectrum per temperature, per field, and the Nb calibration.

Temperature series (the seed paper's Fig. 3): for each temperature, ramp the controller there,
wait until the reading has stayed within the band for the hold time, then take the spectrum
with a temperature-band suspender active, so acquisition pauses while the temperature is out
of band and resumes once it is back and held. Each spectrum is one or two sweeps of the 2-D
sweep datasets, tagged with their temperature and field.
"""

from __future__ import annotations

from typing import Any

from daqapp.errors import ConfigError, LimitError, check_range
from daqapp.runner import MagnetHoldingSuspender, TemperatureBandSuspender
from daqapp.runner.procedure import FloatParameter
from daqapp.runner.roles import lab_seconds_to_real, lab_time
from procedures.common import (
    FloatListParameter,
    check_field,
    check_field_rate,
    check_heater_range,
    check_hold,
    check_temperature,
    check_temperature_rate,
    go_to_temperature,
    log,
    parse_list,
    ramp_time_s,
    wait_for_field,
    wait_for_temperature,
)
from procedures.lockin_spectrum import LockInSpectrumProcedure


def _real_timeout(procedure: Any, lab_seconds: float) -> float:
    """Suspender timeouts run on the wall clock; scale lab seconds for the virtual lab."""
    return max(lab_seconds_to_real(procedure.station, lab_seconds), 0.05)


def _band_guard(procedure: Any, band_k: float, target_k: float, timeout_s: float
                ) -> TemperatureBandSuspender:
    """Suspend while out of ``target ± band``; the hold after an excursion is timed on the
    station's clock (the instruments' seconds), like the hold before the spectrum."""
    station = procedure.station
    return TemperatureBandSuspender(band_k, target_k=target_k, hold_s=procedure.hold_time,
                                    timeout=_real_timeout(procedure, timeout_s),
                                    clock=lambda: lab_time(station))


class _SpectrumSeries(LockInSpectrumProcedure):
    """A spectrum at each setpoint of a list, each taken under a suspender (not queued itself)."""

    @staticmethod
    def setpoint_list(name: str, text: str, example: str) -> list[float]:
        values = parse_list(name, text)
        if not values:
            raise ConfigError(f"{name}: give at least one value (e.g. '{example}')")
        return values

    def spectrum_under(self, guard: Any, sweep: int, done: int, total: int,
                       **setpoint: float) -> tuple[int, int, bool]:
        """One spectrum with ``guard`` active; returns (sweep, done, completed)."""
        if self.control is not None:
            self.control.add_suspender(guard)
        try:
            return self.acquire_spectrum(sweep, done, total, **setpoint)
        finally:
            if self.control is not None:
                self.control.remove_suspender(guard)

    def shutdown(self) -> None:
        self.release_spectrum()


class TemperatureSeries(_SpectrumSeries):
    """A dI/dV spectrum at each temperature of a list, each taken once the temperature is stable."""

    SUMMARY = "dI/dV spectra at a list of temperatures (reach, stabilise, measure; suspend if out)"

    temperatures = FloatListParameter("Temperatures (list or start to stop by step)", units="K",
                                      default="3, 5, 7", minimum=0.0, maximum=1500.0)
    ramp_rate = FloatParameter("Temperature ramp rate", units="K/min", default=2.0,
                               minimum=0.01, maximum=100.0, zero_allowed=True)  # 0: a step
    band = FloatParameter("Stability band", units="K", default=0.05, minimum=1e-4, maximum=10.0)
    hold_time = FloatParameter("Stable time before measuring", units="s", default=60.0,
                               minimum=1e-3, maximum=36_000.0, zero_allowed=True)
    stabilize_timeout = FloatParameter("Stabilisation timeout", units="s", default=3600.0,
                                       minimum=1.0, maximum=86_400.0)
    suspend_timeout = FloatParameter("Longest suspension during a spectrum", units="s",
                                     default=1800.0, minimum=1.0, maximum=86_400.0)

    def temperature_list(self) -> list[float]:
        return self.setpoint_list("temperatures", self.temperatures, "3, 5, 7")

    def starting_point(self) -> dict[str, tuple[str, float]]:
        return {"temperature_K": ("temperatures", self.temperature_list()[0])}

    def check_limits(self, limits: Any) -> None:
        temps = self.temperature_list()
        for kelvin in temps:
            check_temperature("temperatures", kelvin, limits)
        check_heater_range("temperatures", max(temps), limits)
        check_hold(self.hold_time, self.stabilize_timeout)
        check_temperature_rate("ramp_rate", self.ramp_rate, limits)
        self.check_spectrum_limits(limits)

    def estimate_duration(self) -> float:
        temps = self.temperature_list()
        current = temps[0]
        controller = self.role("temperature", required=False) if self.station else None
        if controller is not None:
            try:
                current = float(controller.temperature())
            except Exception:  # noqa: BLE001 - estimate only
                pass
        total = 0.0
        for kelvin in temps:
            total += ramp_time_s(current, kelvin, self.ramp_rate) + self.hold_time
            current = kelvin
        return total + len(temps) * super().estimate_duration()

    def execute(self) -> None:
        temps = self.temperature_list()
        controller = self.role("temperature")
        self.prepare_spectrum()
        total = len(temps) * self.points_per_spectrum()
        sweep = done = 0
        for kelvin in temps:
            log.info("temperature series: going to %g K at %g K/min", kelvin, self.ramp_rate)
            go_to_temperature(self, kelvin, self.ramp_rate)
            wait_for_temperature(self, kelvin, self.band, self.hold_time,
                                 self.stabilize_timeout + ramp_time_s(
                                     controller.temperature(), kelvin, self.ramp_rate))
            if not self.checkpoint():
                return
            guard = _band_guard(self, self.band, kelvin, self.suspend_timeout)
            sweep, done, completed = self.spectrum_under(guard, sweep, done, total,
                                                         setpoint=kelvin)
            if not completed:
                return


class FieldSweep(_SpectrumSeries):
    """A dI/dV spectrum at each field of a list (gap suppression, Hc2 of the contact)."""

    SUMMARY = "dI/dV spectra at a list of magnetic fields (ramp, hold, measure)"

    fields = FloatListParameter("Fields (list or start to stop by step)", units="T",
                                default="0, 1, 2", minimum=-20.0, maximum=20.0)
    field_rate = FloatParameter("Field ramp rate", units="T/min", default=0.2,
                                minimum=1e-4, maximum=10.0)
    field_timeout = FloatParameter("Ramp timeout (beyond the ramp time)", units="s",
                                   default=600.0, minimum=1.0, maximum=86_400.0)
    suspend_timeout = FloatParameter("Longest suspension during a spectrum", units="s",
                                     default=600.0, minimum=1.0, maximum=86_400.0)

    def field_list(self) -> list[float]:
        return self.setpoint_list("fields", self.fields, "0, 1, 2")

    def starting_point(self) -> dict[str, tuple[str, float]]:
        return {"field_T": ("fields", self.field_list()[0])}

    def field_dependent(self) -> bool:
        return True

    def check_limits(self, limits: Any) -> None:
        for tesla in self.field_list():
            check_field("fields", tesla, limits)
        check_field_rate("field_rate", self.field_rate, limits)
        self.check_spectrum_limits(limits)

    def estimate_duration(self) -> float:
        fields = self.field_list()
        current = 0.0
        total = 0.0
        for tesla in fields:
            total += ramp_time_s(current, tesla, self.field_rate)
            current = tesla
        return total + len(fields) * super().estimate_duration()

    def execute(self) -> None:
        fields = self.field_list()
        magnet = self.role("magnet")
        self.prepare_spectrum()
        total = len(fields) * self.points_per_spectrum()
        sweep = done = 0
        for tesla in fields:
            log.info("field sweep: ramping to %g T at %g T/min", tesla, self.field_rate)
            magnet.ramp_to(tesla, self.field_rate)
            wait_for_field(self, tesla, self.field_timeout + ramp_time_s(
                magnet.field(), tesla, self.field_rate))
            if not self.checkpoint():
                return
            guard = MagnetHoldingSuspender(timeout=_real_timeout(self, self.suspend_timeout))
            sweep, done, completed = self.spectrum_under(guard, sweep, done, total,
                                                         setpoint_field=tesla)
            if not completed:
                return


class NbCalibration(LockInSpectrumProcedure):
    """The seed's reference measurement: a dI/dV spectrum of Nb at 3 K, zero field.

    Checks the whole chain (bias resistor, I_ac correction, voltage axis) on a known s-wave
    gap (Δ ≈ 1.5 meV): the spectrum should show the Andreev peaks near ±1.7 mV and a flat
    background beyond ±5 mV. The defaults (±0.75 mA) span ±6 mV on an 8 Ω Nb contact; that
    needs the DC bias from the current source (station wiring ``dc_bias_source =
    "current_source"``), more than an AUX output drives through 48 kΩ.
    """

    SUMMARY = "Nb calibration: dI/dV at 3 K over about ±6 mV (known gap 1.5 meV)"

    bias_start = FloatParameter("Bias start", units="A", default=-7.5e-4,
                                minimum=-0.105, maximum=0.105)
    bias_stop = FloatParameter("Bias stop", units="A", default=7.5e-4,
                               minimum=-0.105, maximum=0.105)

    temperature = FloatParameter("Calibration temperature", units="K", default=3.0,
                                 minimum=1.5, maximum=9.0)
    band = FloatParameter("Stability band", units="K", default=0.05, minimum=1e-4, maximum=1.0)
    hold_time = FloatParameter("Stable time before measuring", units="s", default=60.0,
                               minimum=1e-3, maximum=36_000.0, zero_allowed=True)
    stabilize_timeout = FloatParameter("Stabilisation timeout", units="s", default=3600.0,
                                       minimum=1.0, maximum=86_400.0)

    def check_limits(self, limits: Any) -> None:
        check_temperature("temperature", self.temperature, limits)
        check_range("temperature", self.temperature, 1.5, 9.0, "K")  # below Nb's Tc
        check_heater_range("temperature", self.temperature, limits)
        check_hold(self.hold_time, self.stabilize_timeout)
        if self.bias_start >= 0 or self.bias_stop <= 0:
            raise LimitError("bias_start/bias_stop must span zero bias for a calibration "
                             f"(got {self.bias_start:g} to {self.bias_stop:g} A)")
        self.check_spectrum_limits(limits)

    def starting_point(self) -> dict[str, tuple[str, float]]:
        return {"temperature_K": ("temperature", self.temperature)}

    def estimate_duration(self) -> float:
        return self.hold_time + super().estimate_duration()

    def execute(self) -> None:
        self.prepare_spectrum()
        go_to_temperature(self, self.temperature, None)
        wait_for_temperature(self, self.temperature, self.band, self.hold_time,
                             self.stabilize_timeout)
        if not self.checkpoint():
            return
        guard = _band_guard(self, self.band, self.temperature, self.stabilize_timeout)
        if self.control is not None:
            self.control.add_suspender(guard)
        try:
            self.acquire_spectrum(0, 0, self.points_per_spectrum(), setpoint=self.temperature)
        finally:
            if self.control is not None:
                self.control.remove_suspender(guard)

    def shutdown(self) -> None:
        self.release_spectrum()
