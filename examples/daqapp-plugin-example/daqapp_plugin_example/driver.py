"""Acme TC-1 temperature controller: a pymeasure driver and daqapp's temperature role.

The instrument (fictitious; LF-terminated SCPI-like text, port 5025): ``*IDN?``; ``TEMP?``
(K); ``SETP <K>``/``SETP?``; ``RAMP <K/min>``/``RAMP?`` (0 = step); ``RAMPING?`` (0/1);
``HEAT?`` (% of range); ``RANGE <0-3>``/``RANGE?``; ``HSTAT?`` (0 ok, 1 open, 2 short).
"""

from __future__ import annotations

from typing import Any

from pymeasure.instruments import Instrument
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from daqapp.errors import LimitError, check_range
from drivers.base import RoleAdapter, SafeStep, verify_heater
from drivers.locking import SerializedInstrument
from drivers.roles import HeaterStatus, Readback

HEATER_STATUS = {0: HeaterStatus.OK, 1: HeaterStatus.OPEN, 2: HeaterStatus.SHORT}


class AcmeTC1(SerializedInstrument, Instrument):
    """The driver: one pymeasure property per command, strict ranges. ``SerializedInstrument``
    gives it the connection lock the role adapter and the station hold across queries."""

    def __init__(self, adapter, name: str = "Acme TC-1", **kwargs):
        kwargs.setdefault("read_termination", "\n")
        super().__init__(adapter, name, includeSCPI=False, **kwargs)

    temperature = Instrument.measurement("TEMP?", """Get the sample temperature in K.""")
    setpoint = Instrument.control("SETP?", "SETP %g", """Control the setpoint in K (0-400).""",
                                  validator=strict_range, values=[0, 400])
    ramp_rate = Instrument.control("RAMP?", "RAMP %g",
                                   """Control the setpoint ramp in K/min (0 = step, to 50).""",
                                   validator=strict_range, values=[0, 50])
    ramping = Instrument.measurement("RAMPING?", """Get whether the setpoint ramps.""",
                                     cast=int, get_process=bool)
    heater_output = Instrument.measurement("HEAT?", """Get the heater output in %.""")
    heater_range = Instrument.control("RANGE?", "RANGE %d", """Control the heater range 0-3.""",
                                      validator=strict_discrete_set, values=(0, 1, 2, 3),
                                      cast=int)
    heater_status = Instrument.measurement("HSTAT?", """Get the heater status code.""",
                                           cast=int)


class AcmeTC1Temperature(RoleAdapter):
    """Acme TC-1 temperature controller (LAN port 5025, LF)."""

    # What the registry reads from the class (drivers.registry.spec_from_adapter).
    ROLES = ("temperature",)
    READ_TERMINATION = "\n"
    WRITE_TERMINATION = "\n"
    DESCRIPTION = "Acme TC-1 one-loop temperature controller (example plug-in, LAN port 5025)"

    driver_class = AcmeTC1

    # The station passes its limits and safe state as these keywords (drivers.registry.
    # ROLE_KWARGS["temperature"]); the registry refuses an adapter that does not take them.
    def __init__(self, instrument: AcmeTC1, resource: str = "", temperature_min_k: float = 0.0,
                 temperature_max_k: float = 400.0,
                 heater_ranges_allowed: tuple[int, ...] = (0, 1, 2, 3),
                 safe_setpoint_k: float | None = None, safe_heater_range: int = 0) -> None:
        super().__init__(instrument, resource)
        self.temperature_min_k = float(temperature_min_k)
        self.temperature_max_k = float(temperature_max_k)
        self.heater_ranges_allowed = tuple(int(r) for r in heater_ranges_allowed)
        self.safe_setpoint_k = safe_setpoint_k
        self.safe_heater_range = int(safe_heater_range)

    # --- the TemperatureController protocol (drivers/roles.py) ---------------------------
    def temperature(self) -> float:
        return float(self.instrument.temperature)

    def setpoint(self) -> float:
        return float(self.instrument.setpoint)

    def set_setpoint(self, kelvin: float, ramp_k_per_min: float | None = None) -> None:
        check_range("temperature setpoint", kelvin, self.temperature_min_k,
                    self.temperature_max_k, "K")
        if ramp_k_per_min:
            check_range("temperature ramp rate", ramp_k_per_min, 0.01, 50.0, "K/min")
        with self.lock:
            self.instrument.ramp_rate = float(ramp_k_per_min or 0.0)
            self.instrument.setpoint = kelvin

    def is_ramping(self) -> bool:
        return bool(self.instrument.ramping)

    def heater_output(self) -> float:
        return float(self.instrument.heater_output)

    def heater_range(self) -> int:
        return int(self.instrument.heater_range)

    def set_heater_range(self, index: int) -> None:
        if int(index) not in self.heater_ranges_allowed:
            raise LimitError(f"heater range = {index!r}; the station allows "
                             f"{', '.join(map(str, self.heater_ranges_allowed))}")
        self.instrument.heater_range = int(index)

    def heater_status(self) -> HeaterStatus:
        return HEATER_STATUS[int(self.instrument.heater_status)]

    def is_stable(self, target_k: float, band_k: float) -> bool:
        return abs(self.temperature() - target_k) <= band_k

    # --- every role: snapshot, one state line, safe state --------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"temperature_k": self.temperature(), "setpoint_k": self.setpoint(),
                    "ramp_k_per_min": float(self.instrument.ramp_rate),
                    "heater_range": self.heater_range(),
                    "heater_output_percent": self.heater_output()}

    def state_line(self) -> str:
        with self.lock:
            return (f"T {self.temperature():.4f} K, setpoint {self.setpoint():.3f} K, "
                    f"heater range {self.heater_range()}")

    def safe_state_steps(self) -> list[SafeStep]:
        steps: list[SafeStep] = []
        if self.safe_setpoint_k is not None:
            safe_k = self.safe_setpoint_k
            steps += [("ramp off", lambda: setattr(self.instrument, "ramp_rate", 0.0)),
                      (f"setpoint {safe_k:g} K",
                       lambda: setattr(self.instrument, "setpoint", safe_k))]
        steps.append((f"heater range {self.safe_heater_range}",
                       lambda: setattr(self.instrument, "heater_range",
                                       self.safe_heater_range)))
        return steps

    def verify_safe_state(self) -> Readback:
        return verify_heater(self, self.setpoint, self.heater_range)
