"""Oxford Instruments legacy-protocol controllers: ITC503 temperature and IPS120-10 magnet supply.

Fixed in pymeasure 0.16.0's IPS120_10: ``current_measured`` read ``R1`` (the supply *voltage*)
and ``current_setpoint`` read ``R0`` (the demand current); the measured magnet current is ``R2``
and the target current ``R5``. Setpoints use strict validators instead of clipping. Added: the
quench/fault digit of the ``X`` status. The ITC503 has no native setpoint ramp, so a ramp is a
one-step sweep-table program (sweep to the target in |ΔT|/rate minutes, then hold).
"""

from __future__ import annotations

from typing import Any

from pymeasure.instruments import Instrument
from pymeasure.instruments.oxfordinstruments.ips120_10 import IPS120_10 as _PymeasureIPS120_10
from pymeasure.instruments.oxfordinstruments.itc503 import ITC503 as _PymeasureITC503
from pymeasure.instruments.validators import strict_range

from daqapp.errors import InstrumentError, LimitError, check_range
from drivers.base import MagnetAdapter, RoleAdapter, SafeStep, verify_heater
from drivers.locking import SerializedInstrument
from drivers.roles import HeaterStatus, MagnetState, Readback

ITC_SWEEP_MAX_MIN = 1339.9
# IPS120-10 "X" status: XmnAnCnHnMmnPmn (index 1 = system status m, 4 = activity,
# 8 = switch heater, 11 = sweep status).
IPS_ACTIVITY = {0: "hold", 1: "to setpoint", 2: "to zero", 4: "clamp"}


class ITC503(SerializedInstrument, _PymeasureITC503):
    """ITC503 on a serialised connection (legacy Oxford framing: CR, echo letter, ``?`` error)."""

    def __init__(self, adapter, name: str = "Oxford ITC503", clear_buffer: bool = False,
                 **kwargs):
        super().__init__(adapter, name, clear_buffer=clear_buffer, **kwargs)

    def identify(self) -> str:
        return str(self.version).strip()


class ITC503Temperature(RoleAdapter):
    """The temperature role on an ITC503 (sensor 1-3 as control sensor).

    The ITC503 has no heater ranges: range 0 means heater in manual at 0 %, 1 means heater
    under automatic PID control; open/short heater detection does not exist, so the heater
    status is always OK.
    """

    driver_class = ITC503

    def __init__(self, instrument: ITC503, resource: str = "", sensor: int = 1,
                 temperature_min_k: float = 0.0, temperature_max_k: float = 400.0,
                 heater_ranges_allowed: tuple[int, ...] = (0, 1),
                 safe_setpoint_k: float | None = None, safe_heater_range: int = 0) -> None:
        super().__init__(instrument, resource)
        if sensor not in (1, 2, 3):
            raise LimitError(f"sensor = {sensor!r}; allowed 1, 2, 3")
        self.sensor = sensor
        self.temperature_min_k = float(temperature_min_k)
        self.temperature_max_k = float(temperature_max_k)
        self.heater_ranges_allowed = tuple(int(r) for r in heater_ranges_allowed)
        self.safe_setpoint_k = safe_setpoint_k
        self.safe_heater_range = int(safe_heater_range)
        # Legacy Oxford controllers power up in LOCAL and refuse every set command there.
        instrument.control_mode = "RU"

    def identify(self) -> str:
        return self.instrument.identify()

    def temperature(self) -> float:
        return float(getattr(self.instrument, f"temperature_{self.sensor}"))

    def setpoint(self) -> float:
        return float(self.instrument.temperature_setpoint)

    def set_setpoint(self, kelvin: float, ramp_k_per_min: float | None = None) -> None:
        check_range("temperature setpoint", kelvin, self.temperature_min_k,
                    self.temperature_max_k, "K")
        with self.lock:
            if not ramp_k_per_min:
                self.instrument.sweep_status = 0
                self.instrument.temperature_setpoint = kelvin
                return
            check_range("temperature ramp rate", ramp_k_per_min, 1e-3, 100.0, "K/min")
            minutes = abs(kelvin - self.temperature()) / ramp_k_per_min
            if minutes > ITC_SWEEP_MAX_MIN:
                raise LimitError(f"ITC503 ramp would take {minutes:.0f} min; one sweep step "
                                 f"allows at most {ITC_SWEEP_MAX_MIN} min")
            self.instrument.program_sweep([kelvin], [minutes], [ITC_SWEEP_MAX_MIN])
            self.instrument.sweep_status = 1

    def is_ramping(self) -> bool:
        status = int(self.instrument.sweep_status)
        return status % 2 == 1  # odd: sweeping towards a set-point

    def heater_output(self) -> float:
        return float(self.instrument.heater)

    def heater_range(self) -> int:
        return 1 if self.instrument.heater_gas_mode in ("AM", "AUTO") else 0

    def set_heater_range(self, index: int) -> None:
        if int(index) not in self.heater_ranges_allowed:
            raise LimitError(f"heater range = {index!r}; the station allows "
                             f"{', '.join(str(r) for r in self.heater_ranges_allowed)}")
        with self.lock:
            if int(index) == 0:
                self.instrument.heater_gas_mode = "MANUAL"
                self.instrument.heater = 0
            else:
                self.instrument.heater_gas_mode = "AM"

    def heater_status(self) -> HeaterStatus:
        return HeaterStatus.OK

    def is_stable(self, target_k: float, band_k: float) -> bool:
        return abs(self.temperature() - target_k) <= band_k

    def snapshot(self) -> dict[str, Any]:
        inst = self.instrument
        with self.lock:
            return {
                "sensor": self.sensor,
                "temperature_k": self.temperature(),
                "setpoint_k": self.setpoint(),
                "sweep_status": int(inst.sweep_status),
                "heater_gas_mode": str(inst.heater_gas_mode),
                "heater_percent": self.heater_output(),
                "pid": [float(inst.proportional_band), float(inst.integral_action_time),
                        float(inst.derivative_action_time)],
                "auto_pid": bool(inst.auto_pid),
            }

    def state_line(self) -> str:
        with self.lock:
            return (f"T {self.temperature():.4f} K, setpoint {self.setpoint():.3f} K, "
                    f"heater {self.heater_output():.1f} %")

    def safe_state_steps(self) -> list[SafeStep]:
        """Stop any sweep, go to the safe setpoint; range 0 is the heater in manual at 0 %."""
        inst = self.instrument
        steps: list[SafeStep] = [("sweep off", lambda: setattr(inst, "sweep_status", 0))]
        if self.safe_setpoint_k is not None:
            safe_k = self.safe_setpoint_k
            steps.append((f"setpoint {safe_k:g} K",
                          lambda: setattr(inst, "temperature_setpoint", safe_k)))
        if self.safe_heater_range == 0:
            steps += [("heater manual", lambda: setattr(inst, "heater_gas_mode", "MANUAL")),
                      ("heater 0 %", lambda: setattr(inst, "heater", 0))]
        return steps

    def verify_safe_state(self) -> Readback:
        check = verify_heater(self, self.setpoint,
                              self.heater_range if self.safe_heater_range == 0 else None)
        sweeping = check.query("sweeping", "sweep status", self.is_ramping)
        if sweeping is not None:
            check.expect(not sweeping, "a setpoint sweep is still running")
        return check


class IPS120_10(SerializedInstrument, _PymeasureIPS120_10):
    """IPS120-10 with the current read-backs fixed and the quench digit exposed."""

    def __init__(self, adapter, name: str = "Oxford IPS120-10", clear_buffer: bool = False,
                 **kwargs):
        super().__init__(adapter, name, clear_buffer=clear_buffer, **kwargs)

    current_measured = Instrument.measurement(
        "R2", """Get the measured magnet current in A (``R2``; pymeasure read the voltage R1).""",
    )
    supply_voltage = Instrument.measurement(
        "R1", """Get the power-supply output voltage in V.""",
    )
    current_setpoint = Instrument.control(
        "R5", "I%f",
        """Control the target current in A (``R5`` read-back; -120 to 120, strict).""",
        validator=strict_range, values=[-120, 120],
    )
    system_status = Instrument.measurement(
        "X", """Get the system status digit: 0 normal, 1 quenched, 2 over-heated, else fault.""",
        preprocess_reply=lambda v: v[1], cast=int,
    )

    def identify(self) -> str:
        return str(self.version).strip()


class IPS120Magnet(MagnetAdapter):
    """The magnet role on an IPS120-10 (fields in T, rates in T/min)."""

    driver_class = IPS120_10

    def __init__(self, instrument: IPS120_10, resource: str = "", max_field_t: float = 9.0,
                 max_ramp_t_per_min: float = 0.5, safe_action: str = "hold") -> None:
        super().__init__(instrument, resource, max_field_t, max_ramp_t_per_min, safe_action)
        # Legacy Oxford supplies power up in LOCAL and refuse every set command there.
        instrument.control_mode = "RU"

    def identify(self) -> str:
        return self.instrument.identify()

    def _status(self) -> str:
        reply = self.instrument.ask("X")
        if len(reply) < 12 or not reply.startswith("X"):
            raise InstrumentError(f"IPS120-10 status reply {reply!r} is not XmnAnCnHnMmnPmn")
        return reply

    def field(self) -> float:
        return float(self.instrument.field)

    def target_field(self) -> float:
        return float(self.instrument.field_setpoint)

    def ramp_to(self, tesla: float, rate_t_per_min: float) -> None:
        self.check_ramp(tesla, rate_t_per_min)
        with self.lock:
            self.instrument.sweep_rate = rate_t_per_min
            self.instrument.field_setpoint = tesla
            self.instrument.activity = "to setpoint"

    def pause(self) -> None:
        self.instrument.activity = "hold"

    def ramp_to_zero(self) -> None:
        self.instrument.activity = "to zero"

    def state(self) -> MagnetState:
        status = self._status()
        system, activity = int(status[1]), int(status[4])
        heater, sweep = int(status[8]), int(status[11])
        if system == 1:
            return MagnetState.QUENCH
        if system != 0 or heater == 5:
            return MagnetState.FAULT
        if sweep in (1, 3):
            return MagnetState.ZEROING if activity == 2 else MagnetState.RAMPING
        if activity == 0:
            return MagnetState.PAUSED
        if activity == 2 or activity == 4:
            return MagnetState.AT_ZERO
        return MagnetState.HOLDING

    def is_holding(self) -> bool:
        return self.state() in (MagnetState.HOLDING, MagnetState.AT_ZERO)

    def is_quenched(self) -> bool:
        return int(self.instrument.system_status) == 1

    def persistent_switch_heated(self) -> bool | None:
        heater = int(self._status()[8])
        if heater == 8:
            return None
        return heater == 1

    def snapshot(self) -> dict[str, Any]:
        inst = self.instrument
        with self.lock:
            status = self._status()
            return {
                "status": status,
                "field_t": self.field(),
                "target_field_t": self.target_field(),
                "sweep_rate_t_per_min": float(inst.sweep_rate),
                "current_measured_a": float(inst.current_measured),
                "current_target_a": float(inst.current_setpoint),
                "activity": IPS_ACTIVITY.get(int(status[4]), status[4]),
                "switch_heater": int(status[8]),
                "limits": self.limits_snapshot(),
            }

