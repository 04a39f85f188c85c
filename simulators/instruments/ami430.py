"""American Magnetics 430 magnet supply: greeting on connect, CR LF replies, field/current
targets, segmented ramp rates in the chosen units, persistent switch, quench and ``STATE?``.
"""

from __future__ import annotations

import time

from simulators.faults import FaultBoard
from simulators.instruments.scpi import ScpiEmulator, ScpiError, parse_bool, parse_float
from simulators.magnet import MagnetModel

IDN = "AMERICAN MAGNETICS INC.,MODEL 430,2.01"
GREETING = ["American Magnetics Model 430 IP Interface", "Hello."]
#: Real seconds between accepting a connection and sending the greeting. A raw socket has no
#: device-clear message: a client's "clear" only drops what has already arrived (pyvisa-py
#: drains until 0.1 s of silence), and the 430 greets once its interface session is up, so a
#: QCoDeS AMIModel430 with its default device_clear=True still reads the greeting.
GREETING_DELAY_S = 0.25


def _n(v: float) -> str:
    return f"{v:.9f}"


class AMI430Emulator(ScpiEmulator):
    reply_termination = "\r\n"
    idn = IDN
    role = "magnet"
    error_map = {
        -113: (-101, "Unrecognized command"),
        -102: (-101, "Unrecognized command"),
        -104: (-102, "Invalid argument"),
        -224: (-102, "Invalid argument"),
        -109: (-104, "Missing parameter"),
        -222: (-105, "Value out of range"),
        -221: (-106, "Not allowed in current state"),
    }

    def __init__(self, magnet: MagnetModel, faults: FaultBoard) -> None:
        super().__init__()
        self.magnet = magnet
        self.faults = faults
        self.reset()
        self._register()

    def reset(self) -> None:
        self.field_units = 0          # 0 kG, 1 T
        self.rate_units = 0           # 0 per second, 1 per minute
        self.voltage_limit = 2.0
        self.current_limit = self.magnet.max_current
        self.segments = [[self.magnet.rate, self.magnet.max_current]]
        self.ps_current = 20.0        # mA
        self.quench_detect = True
        self._apply_rate()

    def greeting(self) -> list[str]:
        """The two connect lines, sent after :data:`GREETING_DELAY_S` (this client's thread
        waits; the command lock is not held)."""
        time.sleep(GREETING_DELAY_S)
        return list(GREETING)

    # ------------------------------------------------------------------- units
    def _field_out(self, tesla: float) -> float:
        return tesla * 10.0 if self.field_units == 0 else tesla

    def _field_in(self, value: float) -> float:
        return value / 10.0 if self.field_units == 0 else value

    def _per_time_out(self, per_s: float) -> float:
        return per_s * 60.0 if self.rate_units == 1 else per_s

    def _per_time_in(self, value: float) -> float:
        return value / 60.0 if self.rate_units == 1 else value

    def _coil(self) -> float:
        return self._field_out(self.magnet.coil_constant)

    def _apply_rate(self) -> None:
        """Segment rate for the present current, limited by V_lim / L."""
        i = abs(self.magnet.supply_current)
        rate = self.segments[-1][0]
        for r, upper in self.segments:
            if i <= upper:
                rate = r
                break
        self.magnet.set_rate(min(rate, self.voltage_limit / self.magnet.inductance))

    # ------------------------------------------------------------------ state
    def state_code(self) -> int:
        m = self.magnet
        m.advance()
        if m.quenched:
            return 7
        if m.switch == "heating":
            return 9
        if m.switch == "cooling":
            return 10
        return {"ramping": 1, "holding": 2, "paused": 3, "zeroing": 6,
                "at_zero": 8}.get(m.mode, 2)

    def _ramp(self, a, s) -> None:
        if self.magnet.quenched:
            raise ScpiError(-221)
        if self.state_code() in (9, 10):
            raise ScpiError(-221)
        self._apply_rate()
        self.magnet.ramp()

    def _zero(self, a, s) -> None:
        if self.magnet.quenched:
            raise ScpiError(-221)
        self._apply_rate()
        self.magnet.zero()

    def _set_target_current(self, a, s) -> None:
        v = parse_float(a, -self.current_limit, self.current_limit)
        self.magnet.set_target(v)

    def _set_target_field(self, a, s) -> None:
        limit = self._field_out(self.current_limit * self.magnet.coil_constant)
        v = parse_float(a, -limit, limit)
        self.magnet.set_target(self._field_in(v) / self.magnet.coil_constant)

    def _set_rate(self, kind: str):
        def f(a, s):
            parts = [x.strip() for x in a.split(",")]
            if len(parts) not in (2, 3):
                raise ScpiError(-109)
            seg = int(parse_float(parts[0], 1, 10))
            rate = self._per_time_in(parse_float(parts[1], 1e-6, 1e6))
            if kind == "FIELD":
                rate = self._field_in(rate) / self.magnet.coil_constant
            if len(parts) == 3:
                upper = parse_float(parts[2], 0.0, 1e6)
                if kind == "FIELD":
                    upper = self._field_in(upper) / self.magnet.coil_constant
            else:
                upper = self.current_limit
            while len(self.segments) < seg:
                self.segments.append(list(self.segments[-1]))
            self.segments[seg - 1] = [rate, upper]
            self._apply_rate()
        return f

    def _get_rate(self, kind: str):
        def f(a, s):
            seg = s[0] if s else 1
            if not 1 <= seg <= len(self.segments):
                raise ScpiError(-222)
            rate, upper = self.segments[seg - 1]
            rate = self._per_time_out(rate)
            if kind == "FIELD":
                rate = self._field_out(rate * self.magnet.coil_constant)
                upper = self._field_out(upper * self.magnet.coil_constant)
            return f"{_n(rate)},{_n(upper)}"
        return f

    def _switch(self, a, s) -> None:
        if not self.magnet.switch_installed:
            raise ScpiError(-221)
        on = parse_bool(a)
        if on and abs(self.magnet.supply_current - self.magnet.magnet_current) > 0.05 * max(
                1.0, abs(self.magnet.magnet_current)) and not self.magnet.quenched:
            # the 430 refuses to heat the switch until the supply matches the coil
            raise ScpiError(-221)
        self.magnet.set_switch_heater(on)

    def _set_quench(self, a, s) -> None:
        if parse_bool(a):
            self.magnet.quench()
        elif not self.faults.is_active(self.role, "quench"):
            self.magnet.reset_quench()

    def _register(self) -> None:
        add = self.add
        m = self.magnet
        add("CONFigure:COIL", setter=lambda a, s: setattr(
            m, "coil_constant", self._field_in(parse_float(a, 1e-6, 1e3))),
            getter=lambda a, s: _n(self._coil()))
        add("COIL", getter=lambda a, s: _n(self._coil()))
        add("CONFigure:CURRent:LIMit", setter=lambda a, s: setattr(
            self, "current_limit", parse_float(a, 0.0, m.max_current)))
        add("CURRent:LIMit", getter=lambda a, s: _n(self.current_limit))
        add("CONFigure:VOLTage:LIMit", setter=lambda a, s: (setattr(
            self, "voltage_limit", parse_float(a, 0.001, 20.0)), self._apply_rate()))
        add("VOLTage:LIMit", getter=lambda a, s: _n(self.voltage_limit))
        add("CONFigure:CURRent:TARGet", setter=self._set_target_current)
        add("CURRent:TARGet", getter=lambda a, s: _n(m.target_current))
        add("CONFigure:FIELD:TARGet", setter=self._set_target_field)
        add("FIELD:TARGet", getter=lambda a, s: _n(self._field_out(
            m.target_current * m.coil_constant)))
        add("CONFigure:FIELD:UNITS", setter=lambda a, s: setattr(
            self, "field_units", int(parse_float(a, 0, 1))),
            getter=lambda a, s: str(self.field_units))
        add("FIELD:UNITS", getter=lambda a, s: str(self.field_units))
        add("CONFigure:RAMP:RATE:UNITS", setter=lambda a, s: setattr(
            self, "rate_units", int(parse_float(a, 0, 1))))
        add("RAMP:RATE:UNITS", getter=lambda a, s: str(self.rate_units))
        add("CONFigure:RAMP:RATE:SEGments", setter=lambda a, s: self._set_segments(a))
        add("RAMP:RATE:SEGments", getter=lambda a, s: str(len(self.segments)))
        add("CONFigure:RAMP:RATE:CURRent", setter=self._set_rate("CURR"))
        add("CONFigure:RAMP:RATE:FIELD", setter=self._set_rate("FIELD"))
        add("RAMP:RATE:CURRent:#N", getter=self._get_rate("CURR"))
        add("RAMP:RATE:FIELD:#N", getter=self._get_rate("FIELD"))
        add("FIELD:MAGnet", getter=lambda a, s: _n(self._field_out(m.field)))
        add("FIELD:SUPPly", getter=lambda a, s: _n(self._field_out(m.supply_field)))
        add("CURRent:MAGnet", getter=lambda a, s: _n(m.field / m.coil_constant))
        add("CURRent:SUPPly", getter=lambda a, s: _n(m.supply_field / m.coil_constant))
        add("VOLTage:MAGnet", getter=lambda a, s: _n(m.supply_voltage() * 0.98))
        add("VOLTage:SUPPly", getter=lambda a, s: _n(m.supply_voltage()))
        add("RAMP", setter=self._ramp)
        add("PAUSE", setter=lambda a, s: m.pause())
        add("ZERO", setter=self._zero)
        add("INCR", setter=lambda a, s: (m.set_target(m.supply_current + m.rate), m.ramp()))
        add("DECR", setter=lambda a, s: (m.set_target(m.supply_current - m.rate), m.ramp()))
        add("STATE", getter=lambda a, s: str(self.state_code()))
        add("QUench", setter=self._set_quench, getter=lambda a, s: str(int(m.quenched)))
        add("QUench:DETect", setter=lambda a, s: setattr(self, "quench_detect", parse_bool(a)),
            getter=lambda a, s: str(int(self.quench_detect)))
        add("PSwitch", setter=self._switch, getter=lambda a, s: self._switch_state())
        add("PSwitch:INSTalled", getter=lambda a, s: str(int(m.switch_installed)))
        add("CONFigure:PSwitch", setter=lambda a, s: setattr(m, "switch_installed",
                                                             parse_bool(a)))
        add("PERSistent", getter=lambda a, s: self._persistent())
        add("CONFigure:PSwitch:CURRent", setter=lambda a, s: setattr(
            self, "ps_current", parse_float(a, 0, 125)))
        add("PSwitch:CURRent", getter=lambda a, s: _n(self.ps_current))
        add("CONFigure:PSwitch:HeatTIME", setter=lambda a, s: setattr(
            m, "heat_time", parse_float(a, 5, 120)))
        add("PSwitch:HeatTIME", getter=lambda a, s: str(int(m.heat_time)))
        add("CONFigure:PSwitch:CoolTIME", setter=lambda a, s: setattr(
            m, "cool_time", parse_float(a, 5, 3600)))
        add("PSwitch:CoolTIME", getter=lambda a, s: str(int(m.cool_time)))
        add("SYSTem:LOCal", setter=lambda a, s: None)
        add("SYSTem:REMote", setter=lambda a, s: None)

    def _switch_state(self) -> str:
        m = self.magnet
        m.advance()
        return str(int(m.switch_installed and m.switch in ("on", "heating")))

    def _persistent(self) -> str:
        m = self.magnet
        m.advance()
        return str(int(m.switch_installed and m.switch == "off" and abs(m.magnet_current) > 1e-3))

    def _set_segments(self, a: str) -> None:
        n = int(parse_float(a, 1, 10))
        while len(self.segments) < n:
            self.segments.append(list(self.segments[-1]))
        del self.segments[n:]
