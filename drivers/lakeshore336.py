"""Lake Shore 336 temperature controller: pymeasure's LakeShore3xx completed, plus the role.

Added to pymeasure 0.16.0: ``RAMP``/``RAMP?``, ``RAMPST?``, ``PID``, ``OUTMODE``, ``HTRSET``,
``HTRST?`` on the outputs and ``RDGST?`` on the inputs. Fixed: SCPIMixin's ``SYST:ERR?`` is not
a Lake Shore command (it times out), so errors are read from the standard event register.
"""

from __future__ import annotations

from typing import Any

from pymeasure.instruments import Instrument
from pymeasure.instruments.lakeshore.lakeshore3xx import LakeShore3xx
from pymeasure.instruments.lakeshore.lakeshore_base import (
    LakeShoreHeaterChannel,
    LakeShoreTemperatureChannel,
)
from pymeasure.instruments.validators import strict_range
from pyvisa.constants import Parity, StopBits

from daqapp.errors import InstrumentError, LimitError, check_range
from drivers.base import RoleAdapter, SafeStep, finite, verify_heater
from drivers.locking import SerializedChannel, SerializedInstrument
from drivers.roles import HeaterStatus, Readback

RAMP_RATE_MIN = 0.1
RAMP_RATE_MAX = 100.0
INPUT_NUMBERS = {"A": 1, "B": 2, "C": 3, "D": 4}
# RDGST? bits: invalid reading, temperature under/over range, sensor units zero/over range.
READING_FLAGS = {1: "invalid reading", 16: "temperature under range",
                 32: "temperature over range", 64: "sensor units zero",
                 128: "sensor units over range"}
HEATER_STATUS = {0: HeaterStatus.OK, 1: HeaterStatus.OPEN, 2: HeaterStatus.SHORT}
# *ESR? bits that mean a command failed: 4 execution error, 5 command error.
ESR_ERROR_BITS = {16: "execution error", 32: "command error"}


def _ramp_validator(value: Any, values: Any) -> tuple[int, float]:
    enabled, rate = value
    rate = float(rate)
    if enabled and not (RAMP_RATE_MIN <= rate <= RAMP_RATE_MAX):
        raise ValueError(f"ramp rate {rate:g} K/min; allowed {RAMP_RATE_MIN:g} to "
                         f"{RAMP_RATE_MAX:g} K/min")
    if not enabled and not (0 <= rate <= RAMP_RATE_MAX):
        raise ValueError(f"ramp rate {rate:g} K/min; allowed 0 to {RAMP_RATE_MAX:g} K/min")
    return int(bool(enabled)), rate


def _pid_validator(value: Any, values: Any) -> tuple[float, float, float]:
    p, i, d = (float(v) for v in value)
    strict_range(p, (0.1, 1000))
    strict_range(i, (0.1, 1000))
    strict_range(d, (0, 200))
    return p, i, d


def _outmode_validator(value: Any, values: Any) -> tuple[int, int, int]:
    mode, control_input, powerup = (int(v) for v in value)
    strict_range(mode, (0, 5))
    strict_range(control_input, (0, 8))
    strict_range(powerup, (0, 1))
    return mode, control_input, powerup


def _htrset_validator(value: Any, values: Any) -> tuple[int, int, float, int]:
    resistance, max_current, user_current, display = value
    resistance, max_current, display = int(resistance), int(max_current), int(display)
    strict_range(resistance, (1, 2))
    strict_range(max_current, (0, 4))
    user_current = float(strict_range(float(user_current), (0, 2)))
    strict_range(display, (1, 2))
    return resistance, max_current, user_current, display


class LakeShore336Input(SerializedChannel, LakeShoreTemperatureChannel):
    reading_status = Instrument.measurement(
        "RDGST? {ch}",
        """Get the reading status bits (1 invalid, 16 T under, 32 T over, 64 sensor zero,
        128 sensor over range); 0 means the reading is valid.""",
        cast=int,
    )


class LakeShore336Output(SerializedChannel, LakeShoreHeaterChannel):
    ramp = Instrument.control(
        "RAMP? {ch}", "RAMP {ch},%d,%g",
        """Control the setpoint ramp as (enabled, rate in K/min); rate 0.1 to 100 when on.""",
        validator=_ramp_validator, values=None,
        get_process_list=lambda v: (bool(int(v[0])), float(v[1])),
    )
    ramping = Instrument.measurement(
        "RAMPST? {ch}", """Get whether the setpoint is ramping (bool).""", cast=int,
        get_process=bool,
    )
    pid = Instrument.control(
        "PID? {ch}", "PID {ch},%g,%g,%g",
        """Control (P, I, D): P 0.1-1000, I 0.1-1000, D 0-200 %.""",
        validator=_pid_validator, values=None,
        get_process_list=lambda v: tuple(float(x) for x in v),
    )
    output_mode = Instrument.control(
        "OUTMODE? {ch}", "OUTMODE {ch},%d,%d,%d",
        """Control (mode, input, power-up enable): mode 0 off, 1 closed-loop PID, 2 zone,
        3 open loop, 4 monitor out, 5 warm-up; input 0 none, 1-4 = A-D, 5-8 = D2-D5.""",
        validator=_outmode_validator, values=None,
        get_process_list=lambda v: tuple(int(float(x)) for x in v),
    )
    heater_setup = Instrument.control(
        "HTRSET? {ch}", "HTRSET {ch},%d,%d,%g,%d",
        """Control (resistance 1=25/2=50 ohm, max current 0 user/1 0.707/2 1/3 1.141/4 2 A,
        user max current in A, display 1 current/2 power).""",
        validator=_htrset_validator, values=None,
        get_process_list=lambda v: (int(float(v[0])), int(float(v[1])), float(v[2]),
                               int(float(v[3]))),
    )
    heater_status = Instrument.measurement(
        "HTRST? {ch}", """Get the heater status: 0 OK, 1 open load, 2 short.""", cast=int,
    )
    range_index = Instrument.control(
        "RANGE? {ch}", "RANGE {ch},%d",
        """Control the heater range index (outputs 1-2: 0 off, 1 low, 2 medium, 3 high).""",
        validator=strict_range, values=[0, 3], cast=int,
    )


class LakeShore336(SerializedInstrument, LakeShore3xx):
    """Lake Shore 336 with ramp, PID, output mode, heater set-up and reading status."""

    input_A = Instrument.ChannelCreator(LakeShore336Input, "A")
    input_B = Instrument.ChannelCreator(LakeShore336Input, "B")
    input_C = Instrument.ChannelCreator(LakeShore336Input, "C")
    input_D = Instrument.ChannelCreator(LakeShore336Input, "D")
    output_1 = Instrument.ChannelCreator(LakeShore336Output, 1)
    output_2 = Instrument.ChannelCreator(LakeShore336Output, 2)
    output_3 = Instrument.ChannelCreator(LakeShore336Output, 3)
    output_4 = Instrument.ChannelCreator(LakeShore336Output, 4)

    def __init__(self, adapter, name: str = "Lake Shore 336", **kwargs):
        if isinstance(adapter, str) and adapter.upper().startswith("ASRL"):
            # USB virtual COM port: 57600 baud, 7 data bits, odd parity, 1 stop bit.
            asrl = {"baud_rate": 57600, "data_bits": 7, "parity": Parity.odd,
                    "stop_bits": StopBits.one}
            asrl.update(kwargs.pop("asrl", {}))
            kwargs["asrl"] = asrl
        super().__init__(adapter, name, **kwargs)

    def check_errors(self) -> list:
        """Errors from the standard event register (a Lake Shore has no ``SYST:ERR?``)."""
        esr = int(self.ask("*ESR?"))
        return [(bit, text) for bit, text in ESR_ERROR_BITS.items() if esr & bit]


class LakeShore336Temperature(RoleAdapter):
    """The temperature role on a Lake Shore 336: one control input and one heater output.

    Limits and the safe state come from the station file: the temperature range, the heater
    ranges an operator may select, and the setpoint/range applied by :meth:`to_safe_state`.
    """

    driver_class = LakeShore336

    def __init__(self, instrument: LakeShore336, resource: str = "", control_input: str = "A",
                 output: int = 1, temperature_min_k: float = 0.0,
                 temperature_max_k: float = 400.0,
                 heater_ranges_allowed: tuple[int, ...] = (0, 1, 2, 3),
                 safe_setpoint_k: float | None = None, safe_heater_range: int = 0) -> None:
        super().__init__(instrument, resource)
        if control_input not in INPUT_NUMBERS:
            raise LimitError(f"control_input = {control_input!r}; allowed A, B, C, D")
        if output not in (1, 2):
            raise LimitError(f"output = {output!r}; allowed 1, 2 (the current heaters)")
        self.control_input = control_input
        self.output_number = output
        self.temperature_min_k = float(temperature_min_k)
        self.temperature_max_k = float(temperature_max_k)
        self.heater_ranges_allowed = tuple(int(r) for r in heater_ranges_allowed)
        self.safe_setpoint_k = safe_setpoint_k
        self.safe_heater_range = int(safe_heater_range)

    @property
    def input(self) -> LakeShore336Input:
        return getattr(self.instrument, f"input_{self.control_input}")

    @property
    def output(self) -> LakeShore336Output:
        return getattr(self.instrument, f"output_{self.output_number}")

    def temperature(self) -> float:
        return finite(self.input.kelvin, f"KRDG? {self.control_input}")

    def reading_problems(self) -> list[str]:
        """What ``RDGST?`` flags on the control input (empty when the reading is valid)."""
        status = int(self.input.reading_status)
        return [text for bit, text in READING_FLAGS.items() if status & bit]

    def setpoint(self) -> float:
        return float(self.output.setpoint)

    def set_setpoint(self, kelvin: float, ramp_k_per_min: float | None = None) -> None:
        check_range("temperature setpoint", kelvin, self.temperature_min_k,
                    self.temperature_max_k, "K")
        if ramp_k_per_min:
            check_range("temperature ramp rate", ramp_k_per_min, RAMP_RATE_MIN, RAMP_RATE_MAX,
                        "K/min")
        with self.lock:
            if ramp_k_per_min:
                self.output.ramp = (True, float(ramp_k_per_min))
            else:
                self.output.ramp = (False, 0.0)
            self.output.setpoint = kelvin

    def is_ramping(self) -> bool:
        return bool(self.output.ramping)

    def heater_output(self) -> float:
        return float(self.output.output)

    def heater_range(self) -> int:
        return int(self.output.range_index)

    def set_heater_range(self, index: int) -> None:
        if int(index) not in self.heater_ranges_allowed:
            raise LimitError(f"heater range = {index!r}; the station allows "
                             f"{', '.join(str(r) for r in self.heater_ranges_allowed)}")
        self.output.range_index = int(index)

    def heater_status(self) -> HeaterStatus:
        code = int(self.output.heater_status)
        if code not in HEATER_STATUS:
            raise InstrumentError(f"HTRST? {self.output_number} returned {code}; expected 0-2")
        return HEATER_STATUS[code]

    def is_stable(self, target_k: float, band_k: float) -> bool:
        return abs(self.temperature() - target_k) <= band_k

    def snapshot(self) -> dict[str, Any]:
        out = self.output
        with self.lock:
            enabled, rate = out.ramp
            return {
                "control_input": self.control_input,
                "output": self.output_number,
                "temperature_k": self.temperature(),
                "reading_status": int(self.input.reading_status),
                "setpoint_k": self.setpoint(),
                "ramp_enabled": bool(enabled),
                "ramp_rate_k_per_min": float(rate),
                "ramping": self.is_ramping(),
                "heater_range": self.heater_range(),
                "heater_output_percent": self.heater_output(),
                "heater_status": self.heater_status().value,
                "pid": list(out.pid),
                "output_mode": list(out.output_mode),
                "heater_setup": list(out.heater_setup),
            }

    def state_line(self) -> str:
        with self.lock:
            return (f"T {self.temperature():.4f} K, setpoint {self.setpoint():.3f} K, "
                    f"heater range {self.heater_range()} at {self.heater_output():.1f} %")

    def safe_state_steps(self) -> list[SafeStep]:
        """Stop the ramp, go to the safe setpoint (if the station names one), safe range."""
        steps: list[SafeStep] = []
        if self.safe_setpoint_k is not None:
            safe_k = self.safe_setpoint_k
            steps += [("ramp off", lambda: setattr(self.output, "ramp", (False, 0.0))),
                      (f"setpoint {safe_k:g} K",
                       lambda: setattr(self.output, "setpoint", safe_k))]
        steps.append((f"heater range {self.safe_heater_range}",
                       lambda: setattr(self.output, "range_index", self.safe_heater_range)))
        return steps

    def verify_safe_state(self) -> Readback:
        return verify_heater(self, self.setpoint, self.heater_range)

