"""Lake Shore 335, 336, 340 and 350 temperature controllers: one family, one role adapter.

pymeasure 0.16's ``LakeShore3xx`` covers the readings, setpoint, manual output and the three-step
heater range of this family; the commands it lacks (``RAMP``/``RAMPST?``, ``PID``, ``OUTMODE``,
``HTRSET``, ``HTRST?``, ``RDGST?``, ``ZONE``) are added on its channels here once. The models
differ in what this module states as data, not in code paths:

=====  ======  ==============  ===============  ==========================================
model  inputs  heater outputs  ranges (1 and 2)  set-up commands
=====  ======  ==============  ===============  ==========================================
335    A, B    1, 2            0-3 (Off..High)   OUTMODE; HTRSET with an output-type field
336    A-D     1, 2            0-3 (Off..High)   OUTMODE; HTRSET
340    A, B    loop 1          0-5, one heater   CSET / CMODE; ``RANGE n`` and ``HTR?`` take
                                                 no output; ZONE without input and rate
350    A-D     1, 2            0-5 (Range 1..5)  OUTMODE; HTRSET
=====  ======  ==============  ===============  ==========================================

Every step of the range is a factor 10 in heater power on all four, so the highest range is
full power and the top three of a 340/350 are the Low/Medium/High of a 335/336.
SCPIMixin's ``SYST:ERR?`` is not a Lake Shore command (it times out): errors are read from the
standard event register instead.
"""

from __future__ import annotations

from typing import Any, ClassVar

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
# RDGST? bits: invalid reading, (340: old reading), temperature under/over range, sensor
# units zero/over range.
READING_FLAGS = {1: "invalid reading", 2: "old reading", 16: "temperature under range",
                 32: "temperature over range", 64: "sensor units zero",
                 128: "sensor units over range"}
HEATER_STATUS = {0: HeaterStatus.OK, 1: HeaterStatus.OPEN, 2: HeaterStatus.SHORT}
# *ESR? bits that mean a command failed: 4 execution error, 5 command error.
ESR_ERROR_BITS = {16: "execution error", 32: "command error"}
# CMODE (340) codes: 1 manual PID, 2 zone, 3 open loop, 4-6 AutoTune PID/PI/P.
CMODE_CODES = (1, 2, 3, 4, 5, 6)


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
    """(mode, input, power-up); ``values`` is the highest input number the model has."""
    mode, control_input, powerup = (int(v) for v in value)
    strict_range(mode, (0, 5))
    strict_range(control_input, (0, values or 8))
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


def _htrset335_validator(value: Any, values: Any) -> tuple[int, int, int, float, int]:
    output_type, *rest = value
    output_type = int(output_type)
    strict_range(output_type, (0, 1))
    return (output_type, *_htrset_validator(tuple(rest), values))


def _ints(v: list) -> tuple[int, ...]:
    return tuple(int(float(x)) for x in v)


def _floats(v: list) -> tuple[float, ...]:
    return tuple(float(x) for x in v)


def _zone_values(p: float, i: float, d: float, heater_range: int, top_range: int
                 ) -> tuple[float, float, float, int]:
    p, i, d = _pid_validator((p, i, d), None)
    strict_range(int(heater_range), (0, top_range))
    return p, i, d, int(heater_range)


class LakeShoreInput(SerializedChannel, LakeShoreTemperatureChannel):
    reading_status = Instrument.measurement(
        "RDGST? {ch}",
        """Get the reading status bits (1 invalid, 2 old (340), 16 T under, 32 T over,
        64 sensor zero, 128 sensor over range); 0 means the reading is valid.""",
        cast=int,
    )


class LakeShoreLoop(SerializedChannel, LakeShoreHeaterChannel):
    """What every model's control output has: ramp, PID, heater status, range, zones."""

    TOP_RANGE: ClassVar[int] = 3

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
        validator=_pid_validator, values=None, get_process_list=_floats,
    )
    heater_status = Instrument.measurement(
        "HTRST? {ch}", """Get the heater status: 0 OK, 1 open load, 2 short.""", cast=int,
    )
    range_index = Instrument.control(
        "RANGE? {ch}", "RANGE {ch},%d",
        """Control the heater range index (outputs 1-2: 0 off, 1 low, 2 medium, 3 high).""",
        validator=strict_range, values=[0, TOP_RANGE], cast=int,
    )

    def set_zone(self, zone: int, upper_k: float, p: float, i: float, d: float,
                 heater_range: int, ramp_k_per_min: float = 0.0, manual_percent: float = 0.0,
                 control_input: int = 0) -> None:
        """One line of the zone table: below ``upper_k`` use this PID and heater range
        (``ZONE out,zone,upper,P,I,D,mout,range,input,rate``; input 0 = the output's own)."""
        strict_range(int(zone), (1, 10))
        p, i, d, heater_range = _zone_values(p, i, d, heater_range, self.TOP_RANGE)
        strict_range(float(manual_percent), (0, 100))
        strict_range(float(ramp_k_per_min), (0, RAMP_RATE_MAX))
        self.write(f"ZONE {{ch}},{int(zone)},{float(upper_k):g},{p:g},{i:g},{d:g},"
                   f"{float(manual_percent):g},{heater_range},{int(control_input)},"
                   f"{float(ramp_k_per_min):g}")

    def zone(self, zone: int) -> tuple[float, ...]:
        """``ZONE? out,zone`` as (upper K, P, I, D, manual %, range, input, rate)."""
        strict_range(int(zone), (1, 10))
        return _floats(self.values(f"ZONE? {{ch}},{int(zone)}"))


class LakeShoreOutput(LakeShoreLoop):
    """A 336/350 output: the loop, plus ``OUTMODE`` (mode and input) and ``HTRSET``."""

    INPUT_COUNT: ClassVar[int] = 8   # OUTMODE input: 0 none, 1-4 = A-D, 5-8 = D2-D5

    output_mode = Instrument.control(
        "OUTMODE? {ch}", "OUTMODE {ch},%d,%d,%d",
        """Control (mode, input, power-up enable): mode 0 off, 1 closed-loop PID, 2 zone,
        3 open loop, 4 monitor out, 5 warm-up; input 0 none, 1-4 = A-D, 5-8 = D2-D5.""",
        validator=_outmode_validator, values=INPUT_COUNT, get_process_list=_ints,
    )
    heater_setup = Instrument.control(
        "HTRSET? {ch}", "HTRSET {ch},%d,%d,%g,%d",
        """Control (resistance 1=25/2=50 ohm, max current 0 user/1 0.707/2 1/3 1.141/4 2 A,
        user max current in A, display 1 current/2 power).""",
        validator=_htrset_validator, values=None,
        get_process_list=lambda v: (int(float(v[0])), int(float(v[1])), float(v[2]),
                                    int(float(v[3]))),
    )


class LakeShore335Output(LakeShoreOutput):
    """335 output: inputs A/B only; ``HTRSET`` starts with the output type (0 current,
    1 voltage: output 2 only)."""

    INPUT_COUNT = 2
    output_mode = Instrument.control(
        "OUTMODE? {ch}", "OUTMODE {ch},%d,%d,%d",
        """Control (mode, input, power-up enable): mode 0 off, 1 closed-loop PID, 2 zone,
        3 open loop, 4 monitor out, 5 warm-up; input 0 none, 1 A, 2 B.""",
        validator=_outmode_validator, values=INPUT_COUNT, get_process_list=_ints,
    )
    heater_setup = Instrument.control(
        "HTRSET? {ch}", "HTRSET {ch},%d,%d,%d,%g,%d",
        """Control (output type 0 current/1 voltage, resistance 1=25/2=50 ohm, max current
        0 user/1 0.707/2 1/3 1.141/4 2 A, user max current in A, display 1 current/2 power).""",
        validator=_htrset335_validator, values=None,
        get_process_list=lambda v: (int(float(v[0])), int(float(v[1])), int(float(v[2])),
                                    float(v[3]), int(float(v[4]))),
    )


class LakeShore350Output(LakeShoreOutput):
    """350 output 1/2: five ranges (0 off, 1-5), each ×10 in power."""

    TOP_RANGE = 5
    range_index = Instrument.control(
        "RANGE? {ch}", "RANGE {ch},%d",
        """Control the heater range index (outputs 1-2: 0 off, 1-5 = Range 1..5).""",
        validator=strict_range, values=[0, TOP_RANGE], cast=int,
    )


class LakeShore340Loop(LakeShoreLoop):
    """340 control loop: ``CSET``/``CMODE`` instead of ``OUTMODE``; the one heater (loop 1)
    takes ``RANGE n`` / ``HTR?`` / ``HTRST?`` without an output number; ZONE has no input and
    no ramp rate."""

    TOP_RANGE = 5
    output = Instrument.measurement("HTR?", """Get the loop 1 heater output in percent.""")
    range_index = Instrument.control(
        "RANGE?", "RANGE %d",
        """Control the heater range (0 off, 1-5; loop 1 only).""",
        validator=strict_range, values=[0, TOP_RANGE], cast=int,
    )
    heater_status = Instrument.measurement(
        "HTRST?", """Get the heater status: 0 OK, 1 open load, 2 short.""", cast=int,
    )
    control_setup = Instrument.control(
        "CSET? {ch}", "CSET {ch},%s,%d,%d,%d",
        """Control (input 'A'/'B', units 1 K/2 °C/3 sensor, loop on 1/off 0, power-up on 1/
        off 0) of the loop.""",
        validator=lambda v, _: (str(v[0]).upper(), int(v[1]), int(v[2]), int(v[3])),
        values=None,
        get_process_list=lambda v: (str(v[0]).strip().upper(), int(float(v[1])),
                                    int(float(v[2])), int(float(v[3]))),
    )
    control_mode = Instrument.control(
        "CMODE? {ch}", "CMODE {ch},%d",
        """Control the loop mode: 1 manual PID, 2 zone, 3 open loop, 4-6 AutoTune.""",
        validator=lambda v, _: int(v) if int(v) in CMODE_CODES else strict_range(
            int(v), (1, 6)), values=None, cast=int,
    )

    def set_zone(self, zone: int, upper_k: float, p: float, i: float, d: float,
                 heater_range: int, ramp_k_per_min: float = 0.0, manual_percent: float = 0.0,
                 control_input: int = 0) -> None:
        """``ZONE loop,zone,top,P,I,D,mout,range`` (the 340 keeps no input or rate per zone:
        a rate or input is refused, not dropped)."""
        if ramp_k_per_min or control_input:
            raise LimitError("Lake Shore 340 zones hold no ramp rate or input")
        strict_range(int(zone), (1, 10))
        p, i, d, heater_range = _zone_values(p, i, d, heater_range, self.TOP_RANGE)
        strict_range(float(manual_percent), (0, 100))
        self.write(f"ZONE {{ch}},{int(zone)},{float(upper_k):g},{p:g},{i:g},{d:g},"
                   f"{float(manual_percent):g},{heater_range}")

    def zone(self, zone: int) -> tuple[float, ...]:
        """``ZONE? loop,zone`` as (top K, P, I, D, manual %, range)."""
        strict_range(int(zone), (1, 10))
        return _floats(self.values(f"ZONE? {{ch}},{int(zone)}"))


class LakeShoreFamily(SerializedInstrument, LakeShore3xx):
    """Common to the family: USB/serial framing (7 data bits, odd parity) and ``*ESR?``
    errors; subclasses name their inputs and outputs."""

    DEFAULT_BAUD: ClassVar[int] = 57600

    def __init__(self, adapter, name: str = "Lake Shore", **kwargs):
        if isinstance(adapter, str) and adapter.upper().startswith("ASRL"):
            asrl = {"baud_rate": self.DEFAULT_BAUD, "data_bits": 7, "parity": Parity.odd,
                    "stop_bits": StopBits.one}
            asrl.update(kwargs.pop("asrl", {}))
            kwargs["asrl"] = asrl
        super().__init__(adapter, name, **kwargs)

    def check_errors(self) -> list:
        """Errors from the standard event register (a Lake Shore has no ``SYST:ERR?``)."""
        esr = int(self.ask("*ESR?"))
        return [(bit, text) for bit, text in ESR_ERROR_BITS.items() if esr & bit]


class LakeShore335(LakeShoreFamily):
    """Lake Shore 335: inputs A/B, two heater outputs with Off/Low/Medium/High."""

    input_A = Instrument.ChannelCreator(LakeShoreInput, "A")
    input_B = Instrument.ChannelCreator(LakeShoreInput, "B")
    output_1 = Instrument.ChannelCreator(LakeShore335Output, 1)
    output_2 = Instrument.ChannelCreator(LakeShore335Output, 2)

    def __init__(self, adapter, name: str = "Lake Shore 335", **kwargs):
        super().__init__(adapter, name, **kwargs)


class LakeShore340(LakeShoreFamily):
    """Lake Shore 340: inputs A/B, control loops 1 (heater, ranges 0-5) and 2 (analog),
    RS-232 7O1 at up to 19200 baud (9600 by default here)."""

    DEFAULT_BAUD = 9600
    input_A = Instrument.ChannelCreator(LakeShoreInput, "A")
    input_B = Instrument.ChannelCreator(LakeShoreInput, "B")
    output_1 = Instrument.ChannelCreator(LakeShore340Loop, 1)

    def __init__(self, adapter, name: str = "Lake Shore 340", **kwargs):
        super().__init__(adapter, name, **kwargs)


class LakeShore350(LakeShoreFamily):
    """Lake Shore 350: inputs A-D, heater outputs 1-2 with five ranges, analog 3-4."""

    input_A = Instrument.ChannelCreator(LakeShoreInput, "A")
    input_B = Instrument.ChannelCreator(LakeShoreInput, "B")
    input_C = Instrument.ChannelCreator(LakeShoreInput, "C")
    input_D = Instrument.ChannelCreator(LakeShoreInput, "D")
    output_1 = Instrument.ChannelCreator(LakeShore350Output, 1)
    output_2 = Instrument.ChannelCreator(LakeShore350Output, 2)
    output_3 = Instrument.ChannelCreator(LakeShoreOutput, 3)
    output_4 = Instrument.ChannelCreator(LakeShoreOutput, 4)

    def __init__(self, adapter, name: str = "Lake Shore 350", **kwargs):
        super().__init__(adapter, name, **kwargs)


class LakeShoreTemperature(RoleAdapter):
    """The temperature role on a Lake Shore controller: one control input and one heater.

    Limits and the safe state come from the station file: the temperature range, the heater
    ranges an operator may select, and the setpoint/range applied by :meth:`to_safe_state`.
    Subclasses give the model's inputs, heater outputs and ranges.
    """

    MODEL: ClassVar[str] = "3xx"
    INPUTS: ClassVar[tuple[str, ...]] = ("A", "B", "C", "D")
    HEATER_OUTPUTS: ClassVar[tuple[int, ...]] = (1, 2)
    HEATER_RANGES: ClassVar[tuple[int, ...]] = (0, 1, 2, 3)

    def __init__(self, instrument: Any, resource: str = "", control_input: str = "A",
                 output: int = 1, temperature_min_k: float = 0.0,
                 temperature_max_k: float = 400.0,
                 heater_ranges_allowed: tuple[int, ...] = (0, 1, 2, 3),
                 safe_setpoint_k: float | None = None, safe_heater_range: int = 0) -> None:
        super().__init__(instrument, resource)
        if control_input not in self.INPUTS:
            raise LimitError(f"control_input = {control_input!r}; the Lake Shore {self.MODEL} "
                             f"has inputs {', '.join(self.INPUTS)}")
        if output not in self.HEATER_OUTPUTS:
            raise LimitError(f"output = {output!r}; the Lake Shore {self.MODEL} heaters are "
                             f"{', '.join(map(str, self.HEATER_OUTPUTS))}")
        self.control_input = control_input
        self.output_number = output
        self.temperature_min_k = float(temperature_min_k)
        self.temperature_max_k = float(temperature_max_k)
        self.heater_ranges_allowed = tuple(int(r) for r in heater_ranges_allowed)
        self.safe_setpoint_k = safe_setpoint_k
        self.safe_heater_range = int(safe_heater_range)

    @property
    def input(self) -> LakeShoreInput:
        return getattr(self.instrument, f"input_{self.control_input}")

    @property
    def output(self) -> LakeShoreLoop:
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
        if int(index) not in self.HEATER_RANGES:
            raise LimitError(f"heater range = {index!r}; the Lake Shore {self.MODEL} has "
                             f"{', '.join(str(r) for r in self.HEATER_RANGES)}")
        if int(index) not in self.heater_ranges_allowed:
            raise LimitError(f"heater range = {index!r}; the station allows "
                             f"{', '.join(str(r) for r in self.heater_ranges_allowed)}")
        self.output.range_index = int(index)

    def set_pid(self, p: float, i: float, d: float) -> None:
        self.output.pid = (p, i, d)

    def set_zone(self, zone: int, upper_k: float, p: float, i: float, d: float,
                 heater_range: int, ramp_k_per_min: float = 0.0) -> None:
        """One line of the controller's zone table (range checked against the station)."""
        if int(heater_range) not in (0, *self.heater_ranges_allowed):
            raise LimitError(f"zone {zone} heater range = {heater_range!r}; the station "
                             f"allows {', '.join(str(r) for r in self.heater_ranges_allowed)}")
        self.output.set_zone(zone, upper_k, p, i, d, heater_range, ramp_k_per_min)

    def heater_status(self) -> HeaterStatus:
        code = int(self.output.heater_status)
        if code not in HEATER_STATUS:
            raise InstrumentError(f"HTRST? {self.output_number} returned {code}; expected 0-2")
        return HEATER_STATUS[code]

    def is_stable(self, target_k: float, band_k: float) -> bool:
        return abs(self.temperature() - target_k) <= band_k

    def control_settings(self) -> dict[str, Any]:
        """The model's own loop set-up for the snapshot (OUTMODE and HTRSET here)."""
        out = self.output
        return {"output_mode": list(out.output_mode), "heater_setup": list(out.heater_setup)}

    def snapshot(self) -> dict[str, Any]:
        out = self.output
        with self.lock:
            enabled, rate = out.ramp
            return {
                "model": self.MODEL,
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
                **self.control_settings(),
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


class LakeShore335Temperature(LakeShoreTemperature):
    driver_class = LakeShore335
    MODEL = "335"
    INPUTS = ("A", "B")


class LakeShore340Temperature(LakeShoreTemperature):
    driver_class = LakeShore340
    MODEL = "340"
    INPUTS = ("A", "B")
    HEATER_OUTPUTS = (1,)
    HEATER_RANGES = (0, 1, 2, 3, 4, 5)

    def __init__(self, instrument: Any, resource: str = "", control_input: str = "A",
                 output: int = 1, **limits: Any) -> None:
        super().__init__(instrument, resource, control_input, output, **limits)
        # The 340 loop follows CSET's input: point it at the control input, in kelvin.
        with self.lock:
            _, _, enabled, powerup = self.output.control_setup
            self.output.control_setup = (control_input, 1, enabled, powerup)

    def control_settings(self) -> dict[str, Any]:
        out = self.output
        return {"control_setup": list(out.control_setup), "control_mode": int(out.control_mode)}


class LakeShore350Temperature(LakeShoreTemperature):
    driver_class = LakeShore350
    MODEL = "350"
    HEATER_RANGES = (0, 1, 2, 3, 4, 5)
