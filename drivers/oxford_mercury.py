"""Oxford Instruments Mercury iTC (temperature) and Mercury iPS (magnet): drivers and roles.

The iTC driver extends pymeasure 0.16's ``MercuryiTC``. Fixed: its ``check_set_errors`` read
the answer to every ``SET`` and dropped it, so a set the controller refused (``...:INVALID``,
``NOT_FOUND``, ``N/A``, ``DENIED``) passed silently; here such an answer raises. Added: the
needle valve (the loop's ``FSET``/``FAUT`` and the gas board's ``SIG:PERC``), serial framing
for ``ASRL`` resources, and the sample sensor. pymeasure has no Mercury iPS; this one follows
the same grammar (QCoDeS's ``OxfordMercuryiPS`` was the reference for the nouns, including
``SPSU`` replacing ``PSU`` from firmware 2.6).

The Mercury has no heater ranges: as for the ITC503, range 0 is the loop off with the heater
at 0 %, any other range the PID loop on (read back as 1). Its SCPI loop keys have no
ramp-in-progress flag, so the role reports a ramp as running while ``RENA`` is on and the
stage is not yet at ``TSET``.
"""

from __future__ import annotations

from typing import Any

from pymeasure.instruments import Channel, Instrument
from pymeasure.instruments.oxfordinstruments.mercuryitc import Heater as _PymeasureHeater
from pymeasure.instruments.oxfordinstruments.mercuryitc import MercuryiTC as _PymeasureITC
from pymeasure.instruments.oxfordinstruments.mercuryitc import (
    TemperatureSensor as _PymeasureSensor,
)
from pymeasure.instruments.validators import strict_discrete_set, strict_range
from pyvisa.constants import Parity, StopBits

from daqapp.errors import InstrumentError, LimitError, check_range
from drivers.base import MagnetAdapter, RoleAdapter, SafeStep, verify_heater
from drivers.locking import SerializedChannel, SerializedInstrument
from drivers.roles import HeaterStatus, MagnetState

#: Answers that end a Mercury reply when the command was not carried out (manual §8.3.6).
REFUSALS = ("INVALID", "NOT_FOUND", "N/A", "DENIED")
#: RS-232 defaults of the Mercury range: 9600 baud, 8 data bits, no parity, 1 stop bit, LF.
SERIAL_FRAMING = {"baud_rate": 9600, "data_bits": 8, "parity": Parity.none,
                  "stop_bits": StopBits.one}
ITC_RAMP_RATE_MAX = 100.0
#: The role's heater-fault thresholds: a driven heater with no current is open; current with
#: (almost) no voltage across it is a short.
OPEN_VOLTS, OPEN_AMPS, SHORT_VOLTS, SHORT_AMPS = 0.5, 1e-3, 0.05, 1e-2


def value_of(reply: str) -> str:
    """The value field of a ``STAT:...:<value>`` reply (a refusal raises)."""
    value = reply.strip().rsplit(":", 1)[-1]
    if value in REFUSALS:
        raise InstrumentError(f"Mercury refused the query: {reply.strip()!r}")
    return value


def number_of(reply: str, unit: str = "") -> float:
    """The number in a reply such as ``STAT:DEV:GRPZ:PSU:SIG:FLD:1.2345T``."""
    value = value_of(reply)
    if unit and value.endswith(unit):
        value = value[: -len(unit)]
    try:
        return float(value)
    except ValueError:
        raise InstrumentError(f"Mercury reply {reply.strip()!r} has no number") from None


def _check_set_reply(reply: str, command: str) -> None:
    if not reply.startswith("STAT:") or reply.rstrip().endswith(REFUSALS):
        raise InstrumentError(f"Mercury refused {command!r}: {reply.strip()!r}")


def _serial_kwargs(adapter: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The Mercury's RS-232 framing for an ASRL resource (a station ``baud_rate`` wins)."""
    if isinstance(adapter, str) and adapter.upper().startswith("ASRL"):
        asrl = dict(SERIAL_FRAMING)
        asrl.update(kwargs.pop("asrl", {}))
        kwargs["asrl"] = asrl
    return kwargs


class _CheckedSet:
    """Mixin for Mercury channels: the reply to a SET is read and a refusal raises."""

    def check_set_errors(self) -> list:
        reply = self.read()
        _check_set_reply(reply, "SET")
        return []


class MercuryTemperatureSensor(SerializedChannel, _CheckedSet, _PymeasureSensor):
    """A sensor with its control loop, plus the loop's gas-flow (needle valve) keys."""

    control_loop_flow_percent = Channel.control(
        "READ:DEV:{ch}:TEMP:LOOP:FSET", "SET:DEV:{ch}:TEMP:LOOP:FSET:%g",
        """Control the manual gas flow (needle valve) in percent, 0 to 100.""",
        check_set_errors=True, preprocess_reply=lambda v: v.split(":")[-1],
        validator=strict_range, values=[0, 100],
    )
    control_loop_flow_auto = Channel.control(
        "READ:DEV:{ch}:TEMP:LOOP:FAUT", "SET:DEV:{ch}:TEMP:LOOP:FAUT:%s",
        """Control whether the loop sets the gas flow (``True``) or it is manual.""",
        check_set_errors=True, preprocess_reply=lambda v: v.split(":")[-1],
        validator=strict_discrete_set, values={True: "ON", False: "OFF"}, map_values=True,
    )


class MercuryHeater(SerializedChannel, _CheckedSet, _PymeasureHeater):
    """The heater output; the voltage limit and resistance give its full-scale power."""


class MercuryGasValve(SerializedChannel, Channel):
    """The auxiliary (gas-flow) board that drives the needle valve."""

    percent = Channel.measurement(
        "READ:DEV:{ch}:AUX:SIG:PERC", """Get how far the needle valve is open, in percent.""",
        preprocess_reply=lambda v: v.split(":")[-1].replace("%", ""),
    )


class MercuryiTC(SerializedInstrument, _PymeasureITC):
    """Mercury iTC on a serialised connection, with refused sets raising."""

    TS_MB = Instrument.ChannelCreator(MercuryTemperatureSensor, "MB1.T1", prefix="TS",
                                      collection="TS")
    HTR_MB = Instrument.ChannelCreator(MercuryHeater, "MB0.H1", prefix="HTR", collection="HTR")

    def __init__(self, adapter, name: str = "Oxford Mercury iTC", **kwargs):
        # pymeasure's MercuryiTC fixes the LF framing itself
        kwargs.pop("read_termination", None)
        kwargs.pop("write_termination", None)
        super().__init__(adapter, name, **_serial_kwargs(adapter, kwargs))

    def sensor(self, uid: str) -> MercuryTemperatureSensor:
        """The sensor channel ``uid`` (added on first use: daughter boards vary)."""
        if uid not in self.TS:
            self.add_child(MercuryTemperatureSensor, uid, collection="TS", prefix="TS",
                           attr_name=f"TS_{uid.replace('.', '_')}")
        return self.TS[uid]

    def heater(self, uid: str) -> MercuryHeater:
        if uid not in self.HTR:
            self.add_child(MercuryHeater, uid, collection="HTR", prefix="HTR",
                           attr_name=f"HTR_{uid.replace('.', '_')}")
        return self.HTR[uid]

    def gas_valve(self, uid: str) -> MercuryGasValve:
        name = f"AUX_{uid.replace('.', '_')}"
        if not hasattr(self, name):
            self.add_child(MercuryGasValve, uid, collection="AUX", prefix="AUX",
                           attr_name=name)
        return getattr(self, name)

    def identify(self) -> str:
        return str(self.ask("*IDN?")).strip()


class MercuryITCTemperature(RoleAdapter):
    """The temperature role on a Mercury iTC: one sensor's loop driving one heater."""

    driver_class = MercuryiTC

    def __init__(self, instrument: MercuryiTC, resource: str = "", sensor_uid: str = "MB1.T1",
                 heater_uid: str = "MB0.H1", valve_uid: str = "DB4.G1",
                 temperature_min_k: float = 0.0, temperature_max_k: float = 400.0,
                 heater_ranges_allowed: tuple[int, ...] = (0, 1),
                 safe_setpoint_k: float | None = None, safe_heater_range: int = 0) -> None:
        super().__init__(instrument, resource)
        self.sensor_uid, self.heater_uid, self.valve_uid = sensor_uid, heater_uid, valve_uid
        self.temperature_min_k = float(temperature_min_k)
        self.temperature_max_k = float(temperature_max_k)
        self.heater_ranges_allowed = tuple(int(r) for r in heater_ranges_allowed)
        if int(safe_heater_range) not in (0, 1):
            raise LimitError(f"safe heater_range = {safe_heater_range!r}; the Mercury iTC "
                             "allows 0 (loop off) or 1 (loop on)")
        self.safe_setpoint_k = safe_setpoint_k
        self.safe_heater_range = int(safe_heater_range)

    @property
    def loop(self) -> MercuryTemperatureSensor:
        return self.instrument.sensor(self.sensor_uid)

    @property
    def heater(self) -> MercuryHeater:
        return self.instrument.heater(self.heater_uid)

    def temperature(self) -> float:
        return float(self.loop.temperature)

    def setpoint(self) -> float:
        return float(self.loop.control_loop_temperature_setpoint)

    def set_setpoint(self, kelvin: float, ramp_k_per_min: float | None = None) -> None:
        check_range("temperature setpoint", kelvin, self.temperature_min_k,
                    self.temperature_max_k, "K")
        if ramp_k_per_min:
            check_range("temperature ramp rate", ramp_k_per_min, 1e-3, ITC_RAMP_RATE_MAX,
                        "K/min")
        loop = self.loop
        with self.lock:
            if ramp_k_per_min:
                loop.control_loop_ramp_rate = float(ramp_k_per_min)
                loop.control_loop_ramp_enabled = True
            else:
                loop.control_loop_ramp_enabled = False
            loop.control_loop_temperature_setpoint = kelvin

    def is_ramping(self) -> bool:
        loop = self.loop
        with self.lock:
            if not loop.control_loop_ramp_enabled:
                return False
            return abs(self.temperature() - self.setpoint()) > 0.05

    def heater_output(self) -> float:
        heater = self.heater
        with self.lock:
            limit = float(heater.voltage_limit)
            return 100.0 * float(heater.voltage) / limit if limit > 0 else 0.0

    def heater_range(self) -> int:
        return 1 if self.loop.control_loop_PID_enabled else 0

    def set_heater_range(self, index: int) -> None:
        """0: loop off, heater 0 %; any other range the station allows: the PID loop on (as
        on the ITC503, so a station written for Lake Shore ranges still runs)."""
        if int(index) not in self.heater_ranges_allowed:
            raise LimitError(f"heater range = {index!r}; the station allows "
                             f"{', '.join(str(r) for r in self.heater_ranges_allowed)}")
        loop = self.loop
        with self.lock:
            if int(index) == 0:
                loop.control_loop_PID_enabled = False
                loop.control_loop_heater_percent = 0
            else:
                loop.control_loop_PID_enabled = True

    def set_pid(self, p: float, i: float, d: float) -> None:
        """Proportional band (K), integral and derivative action times (min)."""
        check_range("Mercury P", p, 0.0, 199.9)
        check_range("Mercury I", i, 0.0, 199.9)
        check_range("Mercury D", d, 0.0, 299.9)
        loop = self.loop
        with self.lock:
            loop.control_loop_P, loop.control_loop_I, loop.control_loop_D = p, i, d

    def heater_status(self) -> HeaterStatus:
        heater = self.heater
        with self.lock:
            volts, amps = float(heater.voltage), float(heater.current)
        if volts > OPEN_VOLTS and amps < OPEN_AMPS:
            return HeaterStatus.OPEN
        if amps > SHORT_AMPS and volts < SHORT_VOLTS:
            return HeaterStatus.SHORT
        return HeaterStatus.OK

    def is_stable(self, target_k: float, band_k: float) -> bool:
        return abs(self.temperature() - target_k) <= band_k

    # ---- needle valve -----------------------------------------------------------------
    def needle_valve(self) -> float:
        """How far the needle valve is open (%), as its gas-flow board reads it."""
        return float(self.instrument.gas_valve(self.valve_uid).percent)

    def set_needle_valve(self, percent: float | None) -> None:
        """Manual gas flow at ``percent``; None hands the flow to the loop (auto)."""
        loop = self.loop
        with self.lock:
            if percent is None:
                loop.control_loop_flow_auto = True
                return
            check_range("needle valve", percent, 0.0, 100.0, "%")
            loop.control_loop_flow_auto = False
            loop.control_loop_flow_percent = float(percent)

    def snapshot(self) -> dict[str, Any]:
        loop, heater = self.loop, self.heater
        with self.lock:
            return {
                "sensor": self.sensor_uid, "heater": self.heater_uid,
                "temperature_k": self.temperature(), "setpoint_k": self.setpoint(),
                "loop_enabled": bool(loop.control_loop_PID_enabled),
                "ramp_enabled": bool(loop.control_loop_ramp_enabled),
                "ramp_rate_k_per_min": float(loop.control_loop_ramp_rate),
                "pid": [float(loop.control_loop_P), float(loop.control_loop_I),
                        float(loop.control_loop_D)],
                "heater_percent": self.heater_output(),
                "heater_power_w": float(heater.power),
                "gas_flow_auto": bool(loop.control_loop_flow_auto),
                "needle_valve_percent": self.needle_valve(),
            }

    def state_line(self) -> str:
        with self.lock:
            return (f"T {self.temperature():.4f} K, setpoint {self.setpoint():.3f} K, "
                    f"heater {self.heater_output():.1f} %, valve {self.needle_valve():.1f} %")

    def safe_state_steps(self) -> list[SafeStep]:
        """Ramp off, the safe set point, and (range 0) the loop off with the heater at 0 %."""
        loop = self.loop
        steps: list[SafeStep] = [("ramp off",
                                  lambda: setattr(loop, "control_loop_ramp_enabled", False))]
        if self.safe_setpoint_k is not None:
            safe_k = self.safe_setpoint_k
            steps.append((f"setpoint {safe_k:g} K", lambda: setattr(
                loop, "control_loop_temperature_setpoint", safe_k)))
        if self.safe_heater_range == 0:
            steps += [("loop off", lambda: setattr(loop, "control_loop_PID_enabled", False)),
                      ("heater 0 %", lambda: setattr(loop, "control_loop_heater_percent", 0))]
        return steps

    def verify_safe_state(self):
        check = verify_heater(self, self.setpoint,
                              self.heater_range if self.safe_heater_range == 0 else None)
        ramp = check.query("ramp_enabled", "ramp enable",
                           lambda: bool(self.loop.control_loop_ramp_enabled))
        if ramp is not None:
            check.expect(not ramp, "the set-point ramp is still enabled")
        return check


class MercuryiPS(SerializedInstrument, Instrument):
    """Mercury iPS: one supply (``axis``, default ``GRPZ``) through the READ/SET grammar.

    Every SET is answered (``...:VALID``) and its answer checked; the supply node is ``PSU``
    or, from firmware 2.6, ``SPSU`` (read from ``*IDN?`` at connect).
    """

    def __init__(self, adapter, name: str = "Oxford Mercury iPS", axis: str = "GRPZ",
                 **kwargs):
        kwargs.setdefault("read_termination", "\n")
        kwargs.setdefault("write_termination", "\n")
        super().__init__(adapter, name, includeSCPI=False, **_serial_kwargs(adapter, kwargs))
        self.axis = axis
        self.firmware = self.identify().split(":")[-1]
        try:
            numbers = tuple(int(p) for p in self.firmware.split(".")[:2])
        except ValueError:
            raise InstrumentError(f"Mercury iPS firmware {self.firmware!r} is not a "
                                  "version number") from None
        self.node = "SPSU" if numbers >= (2, 6) else "PSU"

    def identify(self) -> str:
        return str(self.ask("*IDN?")).strip()

    def noun(self, key: str) -> str:
        return f"DEV:{self.axis}:{self.node}:{key}"

    def read_value(self, key: str) -> str:
        return value_of(self.ask(f"READ:{self.noun(key)}"))

    def read_number(self, key: str, unit: str) -> float:
        return number_of(self.ask(f"READ:{self.noun(key)}"), unit)

    def set_value(self, key: str, value: str) -> None:
        command = f"SET:{self.noun(key)}:{value}"
        _check_set_reply(self.ask(command), command)

    field = property(lambda self: self.read_number("SIG:FLD", "T"),
                     doc="Supply output field in T (``SIG:FLD``).")
    persistent_field = property(lambda self: self.read_number("SIG:PFLD", "T"),
                                doc="Field of the magnet itself in T (``SIG:PFLD``).")
    target_field = property(lambda self: self.read_number("SIG:FSET", "T"),
                            lambda self, t: self.set_value("SIG:FSET", f"{float(t):.4f}"),
                            doc="Target field in T (``SIG:FSET``).")
    field_rate = property(lambda self: self.read_number("SIG:RFST", "T/m"),
                          lambda self, r: self.set_value("SIG:RFST", f"{float(r):.4f}"),
                          doc="Field ramp rate in T/min (``SIG:RFST``).")
    current = property(lambda self: self.read_number("SIG:CURR", "A"),
                       doc="Supply output current in A (``SIG:CURR``).")
    action = property(lambda self: self.read_value("ACTN"),
                      lambda self, a: self.set_value("ACTN", a),
                      doc="HOLD, RTOS (to set point), RTOZ (to zero) or CLMP (clamped).")
    switch_heater = property(lambda self: self.read_value("SIG:SWHT") == "ON",
                             lambda self, on: self.set_value("SIG:SWHT", "ON" if on else "OFF"),
                             doc="Persistent-switch heater on (bool, ``SIG:SWHT``).")

    def alarms(self) -> str:
        return value_of(self.ask("READ:SYS:ALRM"))


class MercuryIPSMagnet(MagnetAdapter):
    """The magnet role on a Mercury iPS (fields in T, rates in T/min)."""

    driver_class = MercuryiPS

    def __init__(self, instrument: MercuryiPS, resource: str = "", max_field_t: float = 9.0,
                 max_ramp_t_per_min: float = 0.5, safe_action: str = "hold") -> None:
        super().__init__(instrument, resource, max_field_t, max_ramp_t_per_min, safe_action)

    def identify(self) -> str:
        return self.instrument.identify()

    def field(self) -> float:
        """The field at the sample: the supply's, or the magnet's own when persistent."""
        inst = self.instrument
        with self.lock:
            return float(inst.field if inst.switch_heater else inst.persistent_field)

    def target_field(self) -> float:
        return float(self.instrument.target_field)

    def ramp_to(self, tesla: float, rate_t_per_min: float) -> None:
        self.check_ramp(tesla, rate_t_per_min)
        inst = self.instrument
        with self.lock:
            if inst.action == "CLMP":
                inst.action = "HOLD"      # a clamped supply must be unclamped first
            inst.field_rate = rate_t_per_min
            inst.target_field = tesla
            inst.action = "RTOS"

    def pause(self) -> None:
        self.instrument.action = "HOLD"

    def ramp_to_zero(self) -> None:
        inst = self.instrument
        with self.lock:
            if inst.action == "CLMP":
                inst.action = "HOLD"
            inst.action = "RTOZ"

    def is_quenched(self) -> bool:
        return "QUENCH" in self.instrument.alarms().upper()

    def state(self) -> MagnetState:
        inst = self.instrument
        with self.lock:
            if self.is_quenched():
                return MagnetState.QUENCH
            action = inst.action
            if action == "RTOS":
                return MagnetState.RAMPING
            if action == "RTOZ":
                return MagnetState.ZEROING
            if action == "CLMP":
                return MagnetState.PAUSED
            field = self.field()
            if abs(field) < 1e-4:
                return MagnetState.AT_ZERO
            if abs(field - self.target_field()) < 1e-4:
                return MagnetState.HOLDING
            return MagnetState.PAUSED

    def is_holding(self) -> bool:
        return self.state() in (MagnetState.HOLDING, MagnetState.AT_ZERO)

    def persistent_switch_heated(self) -> bool | None:
        return bool(self.instrument.switch_heater)

    def snapshot(self) -> dict[str, Any]:
        inst = self.instrument
        with self.lock:
            return {
                "axis": inst.axis, "firmware": inst.firmware, "action": inst.action,
                "field_t": self.field(), "supply_field_t": float(inst.field),
                "target_field_t": self.target_field(),
                "ramp_rate_t_per_min": float(inst.field_rate),
                "current_a": float(inst.current),
                "switch_heater": bool(inst.switch_heater), "alarms": inst.alarms(),
                "limits": self.limits_snapshot(),
            }
