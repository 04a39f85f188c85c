"""Oxford Instruments legacy-protocol controllers: ITC503 temperature, IPS120-10 magnet supply.

Framing shared by both: one letter plus value, CR terminated; the reply echoes the letter (plus
data for reads); ``$`` suppresses the reply; an ISOBUS ``@n`` prefix is accepted; an unknown or
refused command answers ``?`` plus the command. Setting commands are refused in LOCAL (C0/C2),
as on the instruments, so a driver must send ``C3`` (remote, unlocked) first.
"""

from __future__ import annotations

import re
import threading

from simulators.clock import SimClock
from simulators.cryostat import Cryostat
from simulators.faults import FaultBoard
from simulators.instruments.numbers import MALFORMED, nonfinite_number
from simulators.magnet import MagnetModel


class _Refused(Exception):
    """Answered with ``?`` + command."""


class OxfordEmulator:
    reply_termination = "\r"
    role = ""
    #: letters that only read (allowed in LOCAL)
    read_only = "RVX"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.control = 0          # C0 local locked (power-up)

    def greeting(self) -> list[str]:
        return []

    def handle(self, line: str) -> list[str]:
        text = line.strip()
        m = re.match(r"@\d+", text)
        if m:
            text = text[m.end():]
        silent = text.startswith("$")
        if silent:
            text = text[1:]
        if not text:
            return []
        with self.lock:
            letter, arg = text[0], text[1:].strip()
            try:
                if letter not in self.read_only + "Cxyrqtdm" and self.control in (0, 2):
                    raise _Refused(text)
                if nonfinite_number(arg):
                    raise _Refused(arg)
                reply = self.command(letter, arg)
            except (_Refused, *MALFORMED):
                reply = "?" + text
        return [] if silent else [reply]

    def command(self, letter: str, arg: str) -> str:
        raise _Refused(letter)

    def input_overflow(self) -> list[str]:
        """A line longer than the input buffer was discarded: answered ``?`` like any
        command the instrument cannot parse (the protocol has no error register)."""
        return ["?"]

    def _set_control(self, arg: str) -> str:
        n = int(arg)
        if n not in (0, 1, 2, 3):
            raise _Refused(arg)
        self.control = n
        return "C"


def _num(v: float, decimals: int = 3) -> str:
    return f"{v:+.{decimals}f}"


class ITC503Emulator(OxfordEmulator):
    """ITC503: three sensors, heater with PID (proportional band K, I and D in minutes),
    auto/manual modes, and the 16-step sweep table driving the setpoint."""

    role = "temperature"
    heater_max_V = 40.0
    heater_ohm = 40.0

    def __init__(self, cryostat: Cryostat, clock: SimClock, faults: FaultBoard,
                 noise) -> None:
        super().__init__()
        self.cryostat = cryostat
        self.clock = clock
        self.faults = faults
        self.noise = noise
        self.setpoint = round(cryostat.stage_temperature, 2)
        self.mode = 0             # A: 0 heater+gas manual, 1 heater auto, 2 gas auto, 3 both
        self.heater_sensor = 1
        self.auto_pid = 0
        self.pb, self.ti, self.td = 5.0, 1.0, 0.0     # K, min, min
        self.manual_heater = 0.0
        self.gas = 0.0
        self.percent = 0.0
        self.integral = 0.0
        self.prev_error: float | None = None
        self.display = 1
        self.x = 0
        self.y = 0
        self.table = {(s, c): 0.0 for s in range(1, 17) for c in (1, 2, 3)}
        self.sweep = 0            # 0 off, 2P-1 sweeping to P, 2P holding at P
        self._sweep_t = 0.0       # time spent in the current sweep segment (s)
        self._sweep_from = self.setpoint
        cryostat.controller = self

    # ----------------------------------------------------------------- control loop
    def _temperature(self, sensor: int, stage: float, sample: float) -> float:
        return {1: stage, 2: sample}.get(sensor, 0.0)

    def heater_power(self, sim_time: float, stage_K: float, sample_K: float,
                     dt: float) -> float:
        self._advance_sweep(dt)
        if self.mode in (1, 3):
            measured = self._temperature(self.heater_sensor, stage_K, sample_K)
            error = self.setpoint - measured
            deriv = 0.0 if self.prev_error is None else (error - self.prev_error) / dt
            self.prev_error = error
            gain = 100.0 / max(self.pb, 1e-3)
            ti = self.ti * 60.0
            pid = gain * (error + (self.integral / ti if ti > 0 else 0.0)
                          + self.td * 60.0 * deriv)
            if (0 < pid < 99.9) or (pid >= 99.9 and error < 0) or (pid <= 0 and error > 0):
                self.integral += error * dt
            self.percent = min(99.9, max(0.0, pid))
        else:
            self.percent = self.manual_heater
        if self.faults.is_active(self.role, "heater_open") or self.faults.is_active(
                self.role, "heater_short"):
            return 0.0
        return (self.percent / 100.0 * self.heater_max_V) ** 2 / self.heater_ohm

    def _advance_sweep(self, dt: float) -> None:
        if self.sweep == 0:
            return
        step = (self.sweep + 1) // 2
        target = self.table[(step, 1)]
        self._sweep_t += dt
        if self.sweep % 2 == 1:
            duration = self.table[(step, 2)] * 60.0
            if duration <= 0 or self._sweep_t >= duration:
                self.setpoint = target
                self.sweep += 1
                self._sweep_t = 0.0
            else:
                frac = self._sweep_t / duration
                self.setpoint = self._sweep_from + (target - self._sweep_from) * frac
        else:
            hold = self.table[(step, 3)] * 60.0
            if self._sweep_t >= hold:
                if step >= 16 or (self.table[(step + 1, 2)] == 0
                                  and self.table[(step + 1, 3)] == 0):
                    self.sweep = 0
                else:
                    self.sweep += 1
                    self._sweep_from = self.setpoint
                self._sweep_t = 0.0

    # ------------------------------------------------------------------ commands
    def _reading(self, n: int) -> float:
        self.cryostat.advance()
        stage = self.cryostat.stage_temperature
        sample = self.cryostat.temperature
        if n == 0:
            return self.setpoint
        if n in (1, 2):
            t = self._temperature(n, stage, sample)
            return t + self.noise(5e-4 + 2e-5 * t)
        if n == 3:
            return 0.0
        if n == 4:
            return self.setpoint - self._temperature(self.heater_sensor, stage, sample)
        if n == 5:
            return self.percent
        if n == 6:
            if self.faults.is_active(self.role, "heater_short"):
                return 0.0
            return self.percent / 100.0 * self.heater_max_V
        if n == 7:
            return self.gas
        if n == 8:
            return self.pb
        if n == 9:
            return self.ti
        if n == 10:
            return self.td
        raise _Refused(str(n))

    def status(self) -> str:
        return (f"X0A{self.mode}C{self.control}S{self.sweep:02d}H{self.heater_sensor}"
                f"L{self.auto_pid}")

    def command(self, letter: str, arg: str) -> str:
        self.cryostat.advance()
        if letter == "V":
            return "ITC503 Version 1.10 (c) OXFORD 1997"
        if letter == "X":
            return self.status()
        if letter == "R":
            n = int(arg)
            decimals = 3 if n in (0, 1, 2, 3, 4) else 1
            return "R" + _num(self._reading(n), decimals)
        if letter == "C":
            return self._set_control(arg)
        if letter == "A":
            n = int(arg)
            if n not in (0, 1, 2, 3):
                raise _Refused(arg)
            if n in (1, 3) and self.mode not in (1, 3):
                self.integral = 0.0
                self.prev_error = None
            self.mode = n
            return "A"
        if letter == "T":
            v = float(arg)
            if not 0 <= v <= 1677.7:
                raise _Refused(arg)
            self.setpoint = v
            return "T"
        if letter == "O":
            v = float(arg)
            if self.mode in (1, 3) or not 0 <= v <= 99.9:
                raise _Refused(arg)
            self.manual_heater = v
            return "O"
        if letter == "G":
            v = float(arg)
            if not 0 <= v <= 99.9:
                raise _Refused(arg)
            self.gas = v
            return "G"
        if letter in "PID":
            v = float(arg)
            if v < 0 or self.auto_pid:
                raise _Refused(arg)
            setattr(self, {"P": "pb", "I": "ti", "D": "td"}[letter], v)
            return letter
        if letter == "H":
            n = int(arg)
            if n not in (1, 2, 3):
                raise _Refused(arg)
            self.heater_sensor = n
            return "H"
        if letter == "L":
            self.auto_pid = int(arg) & 1
            return "L"
        if letter == "S":
            n = int(arg)
            if not 0 <= n <= 32:
                raise _Refused(arg)
            self.sweep = n
            self._sweep_t = 0.0
            self._sweep_from = self.setpoint
            return "S"
        if letter == "F":
            self.display = int(arg)
            return "F"
        if letter in "xy":
            v = int(arg)
            if not 0 <= v <= 128:
                raise _Refused(arg)
            setattr(self, letter, v)
            return letter
        if letter == "r":
            return "r" + _num(self.table.get((self.x, self.y), 0.0), 2)
        if letter == "s":
            if (self.x, self.y) not in self.table:
                raise _Refused(arg)
            self.table[(self.x, self.y)] = float(arg)
            return "s"
        if letter == "w":
            for k in self.table:
                self.table[k] = 0.0
            return "w"
        if letter == "m":
            return "m" + str(self.gas_flow_status())
        if letter in "Qk":
            return letter
        raise _Refused(letter)

    def gas_flow_status(self) -> int:
        """``m``: the gas-flow control status bits (pymeasure's FLOW_CONTROL_STATUS).

        Bit 3 is the sign of the temperature error (set: the sensor is above the setpoint)
        and bit 4 that of the heater error (heater voltage above the target voltage); bits
        0–2 (fast cool-down, cool-down termination, slow valve action) stay clear because
        the needle valve is not modelled beyond the ``G`` setting, and no target-voltage
        table is, so the heater error is only negative when the heater is on with a target of
        zero.
        """
        stage, sample = self.cryostat.stage_temperature, self.cryostat.temperature
        bits = 0
        if self.setpoint - self._temperature(self.heater_sensor, stage, sample) < 0:
            bits |= 8
        if self.mode in (2, 3) and self.percent > 0:
            bits |= 16
        return bits


class IPS120Emulator(OxfordEmulator):
    """IPS120-10 superconducting magnet supply on the shared magnet model."""

    role = "magnet"

    def __init__(self, magnet: MagnetModel, faults: FaultBoard) -> None:
        super().__init__()
        self.magnet = magnet
        self.faults = faults
        self.activity = 4          # clamped at power-up
        self.sweep_mode = 0        # M first digit: 0 A fast, 1 T fast, 4 A slow, 5 T slow
        self.voltage_limit = 2.0
        self.persistent_current = 0.0
        self.trip_current = 0.0
        magnet.pause()

    # --------------------------------------------------------------------- status
    def _heater_code(self) -> int:
        m = self.magnet
        if not m.switch_installed:
            return 8
        if m.switch in ("on", "heating"):
            return 1
        return 2 if abs(m.magnet_current) > 1e-3 else 0

    def status(self) -> str:
        m = self.magnet
        m.advance()
        system = 1 if m.quenched else 0
        sweeping = 1 if m.mode in ("ramping", "zeroing") and m.ramping_direction else 0
        limiting = 2 if sweeping and m.rate * m.inductance > self.voltage_limit else 0
        activity = self.activity
        return (f"X{system}0A{activity}C{self.control}H{self._heater_code()}"
                f"M{self.sweep_mode}{sweeping | limiting}P00")

    def _reading(self, n: int) -> float:
        m = self.magnet
        m.advance()
        c = m.coil_constant
        values = {
            0: m.supply_current, 1: m.supply_voltage(), 2: m.supply_current,
            5: m.target_current, 6: m.rate * 60.0, 7: m.supply_current * c,
            8: m.target_current * c, 9: m.rate * 60.0 * c, 15: self.voltage_limit,
            16: m.magnet_current, 17: self.trip_current, 18: m.magnet_current * c,
            19: self.trip_current * c, 20: 20.0 if m.switch in ("on", "heating") else 0.0,
            21: m.max_current, 22: -m.max_current, 23: 0.01, 24: m.inductance,
        }
        if n not in values:
            raise _Refused(str(n))
        return values[n]

    def _apply_activity(self) -> None:
        m = self.magnet
        if self.activity == 1:
            m.ramp()
        elif self.activity == 2:
            m.zero()
        else:
            m.pause()

    def command(self, letter: str, arg: str) -> str:
        m = self.magnet
        if letter == "V":
            return "IPS120-10  Version 3.04  @ Oxford Instruments 1996"
        if letter == "X":
            return self.status()
        if letter == "R":
            n = int(arg)
            decimals = 4 if n in (7, 8, 18, 19) else 3
            return "R" + _num(self._reading(n), decimals)
        if letter == "C":
            return self._set_control(arg)
        if letter == "A":
            n = int(arg)
            if n not in (0, 1, 2, 4):
                raise _Refused(arg)
            if m.quenched:
                if self.faults.is_active(self.role, "quench"):
                    raise _Refused(arg)
                m.reset_quench()
                self.trip_current = 0.0
            self.activity = n
            self._apply_activity()
            return "A"
        if letter == "H":
            n = int(arg)
            if n not in (0, 1, 2):
                raise _Refused(arg)
            if not m.switch_installed:
                raise _Refused(arg)
            if n == 1 and abs(m.supply_current - m.magnet_current) > 0.01:
                return "H"          # refused silently: PSU current differs from the magnet's
            m.set_switch_heater(n in (1, 2))
            return "H"
        if letter in "IJ":
            v = float(arg)
            current = v if letter == "I" else v / m.coil_constant
            if abs(current) > m.max_current:
                raise _Refused(arg)
            m.set_target(current)
            if self.activity == 1:
                m.ramp()
            return letter
        if letter in "ST":
            v = float(arg)
            per_min_A = v if letter == "S" else v / m.coil_constant
            if not 0 < per_min_A <= 240.0:
                raise _Refused(arg)
            m.set_rate(per_min_A / 60.0)
            return letter
        if letter == "M":
            n = int(arg)
            if n not in (0, 1, 4, 5, 8, 9):
                raise _Refused(arg)
            self.sweep_mode = n
            return "M"
        if letter == "P":
            return "P"
        if letter == "Q":
            return "Q"
        raise _Refused(letter)

    def on_quench(self) -> None:
        """A quench trips the supply: record the trip current and clamp the output."""
        self.trip_current = self.magnet._quench_i0
        self.activity = 0
