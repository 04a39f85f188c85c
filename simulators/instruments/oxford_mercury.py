"""Oxford Instruments Mercury iTC and Mercury iPS: the SCPI-like ``READ``/``SET``/``STAT``
grammar, LF framing, on the lab's cryostat and magnet physics.

Grammar (Mercury manuals §8.3/§10.3): ``READ:<noun>`` is answered ``STAT:<noun>:<value><unit>``;
``SET:<noun>:<value>`` is answered ``STAT:SET:<noun>:<value>:VALID`` (or ``:INVALID``): every
SET gets an answer. A noun that cannot be interpreted is answered with ``:INVALID`` after it, a
UID the system does not have with ``:NOT_FOUND``, an unknown verb with ``<VERB>:INVALID``.
Keywords are case-sensitive and at most four characters; ``*IDN?`` answers
``IDN:OXFORD INSTRUMENTS:MERCURY <type>:<serial>:<firmware>``.

iTC: sensor ``MB1.T1`` is the stage thermometer (it carries the control loop), ``DB6.T1`` the
sample's, ``MB0.H1`` the heater, ``DB4.G1`` the needle-valve (gas flow) board. The loop's PID
uses the Mercury's proportional band P (K), integral action time I and derivative action time D
(minutes); with ``RENA:ON`` the working set point moves to ``TSET`` at ``RSET`` K/min. The
heater output is ``HSET`` % of the voltage limit ``VLIM`` into ``RES`` ohm. The needle valve is
state only: the cryostat model is a heated stage on a fixed link to the bath, so gas flow does
not change the temperature (as with the ITC503 emulator's ``G``).

iPS: one axis ``GRPZ`` drives the lab's magnet; extra axes (``GRPX``, ``GRPY``: a vector
magnet, as QCoDeS's driver assumes) get magnet models of their own that the sample does not
see. From firmware 2.6 the supply node is ``SPSU`` instead of ``PSU``. ``READ:SYS:ALRM`` lists
active alarms (a quench as ``DEV:GRPZ:PSU:Magnet Quenched;``, text as modelled here).
"""

from __future__ import annotations

import abc
import math
import threading
from collections.abc import Callable

from simulators.clock import SimClock
from simulators.cryostat import Cryostat
from simulators.faults import FaultBoard
from simulators.magnet import MagnetModel

ITC_IDN = "IDN:OXFORD INSTRUMENTS:MERCURY ITC:ITC-SIM-0001:2.5.09.000"
IPS_MODEL = "MERCURY IPS"
IPS_SERIAL = "IPS-SIM-0001"
IPS_FIRMWARE = "2.5.09.000"
STAGE_UID, SAMPLE_UID, HEATER_UID, VALVE_UID = "MB1.T1", "DB6.T1", "MB0.H1", "DB4.G1"
ACTIONS = ("HOLD", "RTOS", "RTOZ", "CLMP")


class _Invalid(Exception):
    """The noun (or value) cannot be interpreted: ``...:INVALID``."""


class _NotFound(Exception):
    """The UID does not exist: ``...:NOT_FOUND``."""


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Invalid(text)
    return value


def _on_off(text: str) -> bool:
    if text not in ("ON", "OFF"):
        raise _Invalid(text)
    return text == "ON"


def fixed(value: float, decimals: int = 4) -> str:
    """Mercury numbers are fixed point (QCoDeS's parser keeps only digits, '.', and '-')."""
    return f"{value:.{decimals}f}"


class MercuryEmulator(abc.ABC):
    """The grammar both Mercury instruments share; subclasses answer the nouns."""

    reply_termination = "\n"
    role = ""

    def __init__(self, faults: FaultBoard) -> None:
        self.faults = faults
        self.lock = threading.RLock()

    def greeting(self) -> list[str]:
        return []

    @abc.abstractmethod
    def idn(self) -> str:
        """The ``*IDN?`` reply of this model."""

    @abc.abstractmethod
    def catalogue(self) -> str:
        """The ``READ:SYS:CAT`` reply: the boards this model has."""

    def input_overflow(self) -> list[str]:
        """The manual's 1024-byte line limit was overrun: an uninterpretable command."""
        return ["INVALID"]

    def handle(self, line: str) -> list[str]:
        text = line.strip()
        if not text:
            return []
        if text == "*IDN?":
            return [self.idn()]
        verb, _, rest = text.partition(":")
        with self.lock:
            if verb == "READ":
                noun = rest[:-1] if rest.endswith("?") else rest  # QCoDeS appends '?'
                return [f"STAT:{noun}:{self._read(noun)}"]
            if verb == "SET":
                noun, _, value = rest.rpartition(":")
                return [f"STAT:SET:{noun}:{value}:{self._set(noun, value)}"]
        return [f"{verb}:INVALID"]

    def _read(self, noun: str) -> str:
        if noun == "SYS:CAT":
            return self.catalogue()
        try:
            return self.read(noun.split(":"))
        except _NotFound:
            return "NOT_FOUND"
        except (_Invalid, ValueError, IndexError, KeyError):
            return "INVALID"

    def _set(self, noun: str, value: str) -> str:
        try:
            self.write(noun.split(":"), value)
        except _NotFound:
            return "NOT_FOUND"
        except (_Invalid, ValueError, IndexError, KeyError):
            return "INVALID"
        return "VALID"

    def read(self, path: list[str]) -> str:
        raise _Invalid(":".join(path))

    def write(self, path: list[str], value: str) -> None:
        raise _Invalid(":".join(path))


class MercuryITCEmulator(MercuryEmulator):
    """Mercury iTC with one control loop on the stage sensor and a needle valve."""

    role = "temperature"

    def __init__(self, cryostat: Cryostat, clock: SimClock, faults: FaultBoard,
                 noise: Callable[[float], float]) -> None:
        super().__init__(faults)
        self.cryostat = cryostat
        self.clock = clock
        self.noise = noise
        self.loop_enabled = False
        self.p, self.i, self.d = 5.0, 1.0, 0.0   # K, min, min
        self.target = round(cryostat.stage_temperature, 3)   # TSET
        self.working = self.target                           # the ramped set point
        self.ramp_enabled = False
        self.ramp_rate = 1.0                      # K/min
        self.manual_percent = 0.0                 # HSET
        self.percent = 0.0                        # heater output now
        self.voltage_limit = 40.0                 # VLIM, V
        self.resistance = 40.0                    # RES, ohm
        self.flow_auto = False                    # FAUT
        self.flow_percent = 0.0                   # FSET
        self.gas_min = 5.0                        # GMIN, % the valve keeps open in auto
        self.integral = 0.0
        self.prev_error: float | None = None
        self.loop_gain = 0.0
        cryostat.controller = self

    def idn(self) -> str:
        return ITC_IDN

    def catalogue(self) -> str:
        return (f"DEV:{STAGE_UID}:TEMP:DEV:{SAMPLE_UID}:TEMP:DEV:{HEATER_UID}:HTR"
                f":DEV:{VALVE_UID}:AUX")

    # ------------------------------------------------------------------ the loop
    def heater_power(self, sim_time: float, stage_K: float, sample_K: float,
                     dt: float) -> float:
        if self.ramp_enabled and self.working != self.target:
            step = self.ramp_rate / 60.0 * dt
            diff = self.target - self.working
            self.working = self.target if abs(diff) <= step else (
                self.working + math.copysign(step, diff))
        elif not self.ramp_enabled:
            self.working = self.target
        full_power = self.voltage_limit ** 2 / self.resistance
        self.loop_gain = 0.0
        if self.loop_enabled:
            error = self.working - stage_K
            deriv = 0.0 if self.prev_error is None else (error - self.prev_error) / dt
            self.prev_error = error
            gain = 100.0 / max(self.p, 1e-3)      # % per K across the proportional band
            ti = self.i * 60.0
            pid = gain * (error + (self.integral / ti if ti > 0 else 0.0)
                          + self.d * 60.0 * deriv)
            if (0 < pid < 100) or (pid >= 100 and error < 0) or (pid <= 0 and error > 0):
                self.integral += error * dt
            self.percent = min(100.0, max(0.0, pid))
            self.loop_gain = 2.0 * max(self.percent, 1.0) / 100.0 * full_power * gain / 100.0
        else:
            self.percent = self.manual_percent
        if self._heater_fault():
            return 0.0
        return (self.percent / 100.0) ** 2 * full_power

    def _heater_fault(self) -> str | None:
        for kind in ("heater_open", "heater_short"):
            if self.faults.is_active(self.role, kind):
                return kind
        return None

    def _heater_signals(self) -> tuple[float, float]:
        """(volts, amps) at the heater terminals: an open heater passes no current, a short
        shows no voltage while the output runs into its current limit."""
        volts = self.percent / 100.0 * self.voltage_limit
        fault = self._heater_fault()
        if fault == "heater_open":
            return volts, 0.0
        if fault == "heater_short":
            return 0.0, self.voltage_limit / self.resistance
        return volts, volts / self.resistance

    def _valve_percent(self) -> float:
        if not self.flow_auto:
            return self.flow_percent
        # auto flow: open in proportion to the cooling the loop asks for, never below GMIN
        return min(100.0, max(self.gas_min, 100.0 - self.percent))

    # ------------------------------------------------------------------ nouns
    def read(self, path: list[str]) -> str:
        self.cryostat.advance()
        if path[0] != "DEV" or len(path) < 4:
            raise _Invalid(":".join(path))
        uid, kind, key = path[1], path[2], path[3:]
        if uid in (STAGE_UID, SAMPLE_UID):
            if kind != "TEMP":
                raise _Invalid(kind)
            if key == ["SIG", "TEMP"]:
                t = (self.cryostat.stage_temperature if uid == STAGE_UID
                     else self.cryostat.temperature)
                return fixed(t + self.noise(5e-4 + 2e-5 * t)) + "K"
            if key[0] == "LOOP" and len(key) == 2:
                if uid != STAGE_UID:
                    return "N/A"
                return self._read_loop(key[1])
            raise _Invalid(":".join(key))
        if uid == HEATER_UID:
            if kind != "HTR":
                raise _Invalid(kind)
            volts, amps = self._heater_signals()
            table = {("SIG", "VOLT"): fixed(volts) + "V", ("SIG", "CURR"): fixed(amps) + "A",
                     ("SIG", "POWR"): fixed(volts * amps) + "W",
                     ("VLIM",): fixed(self.voltage_limit), ("RES",): fixed(self.resistance),
                     ("PMAX",): fixed(self.voltage_limit ** 2 / self.resistance)}
            return table[tuple(key)]
        if uid == VALVE_UID:
            if kind != "AUX":
                raise _Invalid(kind)
            table = {("SIG", "PERC"): fixed(self._valve_percent(), 3) + "%",
                     ("GMIN",): fixed(self.gas_min, 3)}
            return table[tuple(key)]
        raise _NotFound(uid)

    def _read_loop(self, key: str) -> str:
        values = {
            "ENAB": "ON" if self.loop_enabled else "OFF", "P": fixed(self.p),
            "I": fixed(self.i), "D": fixed(self.d), "TSET": fixed(self.target) + "K",
            "HSET": fixed(self.percent, 3), "RSET": fixed(self.ramp_rate) + "K/m",
            "RENA": "ON" if self.ramp_enabled else "OFF", "HTR": HEATER_UID, "AUX": VALVE_UID,
            "FSET": fixed(self.flow_percent, 3), "FAUT": "ON" if self.flow_auto else "OFF",
        }
        return values[key]

    def write(self, path: list[str], value: str) -> None:
        self.cryostat.advance()
        if path[0] != "DEV" or len(path) < 4:
            raise _Invalid(":".join(path))
        uid, kind, key = path[1], path[2], path[3:]
        if uid in (STAGE_UID, SAMPLE_UID) and kind == "TEMP" and key[0] == "LOOP":
            if uid != STAGE_UID or len(key) != 2:
                raise _Invalid(":".join(key))
            self._write_loop(key[1], value)
        elif uid == HEATER_UID and kind == "HTR":
            v = _number(value)
            if key == ["VLIM"] and 0 <= v <= 40:
                self.voltage_limit = v
            elif key == ["RES"] and 10 <= v <= 2000:
                self.resistance = v
            else:
                raise _Invalid(value)
        elif uid == VALVE_UID and kind == "AUX" and key == ["GMIN"]:
            v = _number(value)
            if not 0 <= v <= 20:
                raise _Invalid(value)
            self.gas_min = v
        elif uid not in (STAGE_UID, SAMPLE_UID, HEATER_UID, VALVE_UID):
            raise _NotFound(uid)
        else:
            raise _Invalid(":".join(path))

    def _write_loop(self, key: str, value: str) -> None:
        if key in ("ENAB", "RENA", "FAUT"):
            on = _on_off(value)
            if key == "ENAB":
                if on and not self.loop_enabled:
                    self.integral, self.prev_error = 0.0, None
                self.loop_enabled = on
            elif key == "RENA":
                self.ramp_enabled = on
                self.working = self.cryostat.stage_temperature if on else self.target
            else:
                self.flow_auto = on
            return
        v = _number(value)
        limits = {"P": (0, 199.9), "I": (0, 199.9), "D": (0, 299.9), "TSET": (0, 2000),
                  "HSET": (0, 100), "RSET": (0, 100000), "FSET": (0, 100)}
        if key not in limits:
            raise _Invalid(key)
        low, high = limits[key]
        if not low <= v <= high:
            raise _Invalid(value)
        if key == "TSET":
            self.target = v
            if not self.ramp_enabled:
                self.working = v
        elif key == "HSET":
            self.manual_percent = v
            if not self.loop_enabled:
                self.percent = v
        elif key == "RSET":
            self.ramp_rate = v
        elif key == "FSET":
            self.flow_percent = v
        else:
            setattr(self, key.lower(), v)


class _Axis:
    """One supply of the iPS: a magnet model plus the settings the SCPI nouns hold."""

    def __init__(self, magnet: MagnetModel) -> None:
        self.magnet = magnet
        self.action = "HOLD"
        magnet.pause()


class MercuryIPSEmulator(MercuryEmulator):
    """Mercury iPS: ``GRPZ`` drives the lab's magnet; ``axes`` adds GRPX/GRPY (vector)."""

    role = "magnet"

    def __init__(self, magnet: MagnetModel, faults: FaultBoard,
                 axes: tuple[str, ...] = ("GRPZ",), firmware: str = IPS_FIRMWARE) -> None:
        super().__init__(faults)
        if "GRPZ" not in axes:
            raise ValueError("a Mercury iPS emulator needs the GRPZ axis")
        self.firmware = firmware
        major_minor = tuple(int(p) for p in firmware.split(".")[:2])
        self.node = "SPSU" if major_minor >= (2, 6) else "PSU"
        self.axes = {name: _Axis(magnet if name == "GRPZ" else MagnetModel(
            magnet.clock, coil_constant_T_per_A=magnet.coil_constant,
            max_current_A=magnet.max_current, switch_installed=False)) for name in axes}

    def idn(self) -> str:
        return f"IDN:OXFORD INSTRUMENTS:{IPS_MODEL}:{IPS_SERIAL}:{self.firmware}"

    def catalogue(self) -> str:
        return ":".join(f"DEV:{name}:{self.node}" for name in self.axes) + ":DEV:MB1.T1:TEMP"

    def on_quench(self) -> None:
        """A quench trips the supply: it clamps the output."""
        self.axes["GRPZ"].action = "CLMP"

    def _axis(self, path: list[str]) -> tuple[_Axis, list[str]]:
        if path[0] != "DEV" or len(path) < 4:
            raise _Invalid(":".join(path))
        if path[1] not in self.axes:
            raise _NotFound(path[1])
        if path[2] != self.node:
            raise _Invalid(path[2])
        return self.axes[path[1]], path[3:]

    def read(self, path: list[str]) -> str:
        if path == ["SYS", "ALRM"]:
            quenched = [n for n, a in self.axes.items() if a.magnet.quenched]
            return "".join(f"DEV:{n}:{self.node}:Magnet Quenched;" for n in quenched)
        if path[:3] == ["DEV", "MB1.T1", "TEMP"] and path[3:] == ["SIG", "TEMP"]:
            return fixed(4.2) + "K"          # magnet in its helium bath
        axis, key = self._axis(path)
        m = axis.magnet
        m.advance()
        c = m.coil_constant
        if axis.action in ("RTOS", "RTOZ") and m.mode in ("holding", "at_zero"):
            axis.action = "HOLD"                # the supply holds once the ramp is done
        if key == ["ACTN"]:
            return axis.action
        if key == ["ATOB"]:
            return fixed(1.0 / c) + "A/T"
        if len(key) != 2 or key[0] != "SIG":
            raise _Invalid(":".join(key))
        heated = m.switch in ("on", "heating") or not m.switch_installed
        signals = {
            "FLD": fixed(m.supply_current * c) + "T", "FSET": fixed(m.target_current * c) + "T",
            "RFST": fixed(m.rate * 60.0 * c) + "T/m", "CURR": fixed(m.supply_current) + "A",
            "CSET": fixed(m.target_current) + "A", "RCST": fixed(m.rate * 60.0) + "A/m",
            "PCUR": fixed(m.magnet_current) + "A", "PFLD": fixed(m.magnet_current * c) + "T",
            "VOLT": fixed(m.supply_voltage()) + "V", "SWHT": "ON" if heated else "OFF",
        }
        return signals[key[1]]

    def write(self, path: list[str], value: str) -> None:
        axis, key = self._axis(path)
        m = axis.magnet
        c = m.coil_constant
        if key == ["ACTN"]:
            if value not in ACTIONS:
                raise _Invalid(value)
            if m.quenched:
                if self.faults.is_active(self.role, "quench"):
                    raise _Invalid(value)       # still quenched: the supply stays clamped
                m.reset_quench()
            if axis.action == "CLMP" and value == "RTOS":
                raise _Invalid(value)           # unclamp (HOLD) before ramping, as QCoDeS does
            axis.action = value
            {"RTOS": m.ramp, "RTOZ": m.zero}.get(value, m.pause)()
            return
        if len(key) != 2 or key[0] != "SIG":
            raise _Invalid(":".join(key))
        name = key[1]
        if name == "SWHT":
            if not m.switch_installed:
                raise _Invalid(value)
            m.set_switch_heater(_on_off(value))
            return
        v = _number(value)
        if name in ("FSET", "CSET"):
            current = v / c if name == "FSET" else v
            if abs(current) > m.max_current:
                raise _Invalid(value)
            m.set_target(current)
            if axis.action == "RTOS":
                m.ramp()
        elif name in ("RFST", "RCST"):
            per_min_a = v / c if name == "RFST" else v
            if not 0 < per_min_a <= 240.0:
                raise _Invalid(value)
            m.set_rate(per_min_a / 60.0)
        else:
            raise _Invalid(name)
