"""Lake Shore 625 superconducting magnet supply: a pymeasure driver and the magnet role.

pymeasure 0.16 has no 625 driver; this one follows the manual's command set (checked against
QCoDeS-contrib's ``Lakeshore625``): output current ``SETI``/``RDGI?``, compliance ``SETV``/
``RDGV?``, ramp ``RATE`` (A/s), ``LIMIT I,V,rate`` (≤ 60.1 A, 5 V, 99.999 A/s), the computed
field ``FLDS units,const``/``SETF``/``RDGF?``, the persistent switch heater ``PSH``/``PSHS``/
``PSHIS?``, quench detection ``QNCH``, ``OPST?`` (bit 1: ramp done) and ``ERST?`` (hardware,
operational and PSH error registers; operational bit 5 = quench detected), ``STOP``.

The role adds what a cryostat needs before any command goes out: the station's field and ramp
limits, the supply's own current and rate limits for the magnet's coil constant, and the
persistent-switch logic: no ramp while the switch heater warms or cools, none with the heater
off (the supply would ramp its leads while the magnet stays persistent), none after a quench,
and the heater is turned on only when the supply current equals the current it was turned off
at (``PSHIS?``), which is the 625's own rule.
"""

from __future__ import annotations

import enum
from typing import Any

from pymeasure.instruments import Instrument
from pymeasure.instruments.validators import strict_discrete_set, strict_range
from pyvisa.constants import Parity, StopBits

from daqapp.errors import InstrumentError, LimitError, check_range
from drivers.base import MagnetAdapter
from drivers.locking import SerializedInstrument
from drivers.roles import MagnetState

MAX_CURRENT_A = 60.1
MAX_VOLTAGE_V = 5.0
MAX_RATE_A_PER_S = 99.999
#: ``OPST?`` bit: the output current has reached its setpoint.
OPST_RAMP_DONE = 2
#: ``ERST?`` operational error register bit: quench detected.
OPERR_QUENCH = 32
#: ``PSHIS?`` value meaning "current at heater-off unknown".
PSHIS_UNKNOWN = 99.9999
#: Supply and magnet currents closer than this count as equal for turning the heater on.
SWITCH_MATCH_A = 0.01


class SwitchHeater(enum.IntEnum):
    OFF = 0
    ON = 1
    WARMING = 2
    COOLING = 3


def _triple(v: list) -> tuple[float, float, float]:
    return float(v[0]), float(v[1]), float(v[2])


class LakeShore625(SerializedInstrument, Instrument):
    """Lake Shore 625 (GPIB, RS-232 9600 7O1); replies end CR LF."""

    def __init__(self, adapter, name: str = "Lake Shore 625", **kwargs):
        kwargs.setdefault("read_termination", "\r\n")
        if isinstance(adapter, str) and adapter.upper().startswith("ASRL"):
            asrl = {"baud_rate": 9600, "data_bits": 7, "parity": Parity.odd,
                    "stop_bits": StopBits.one}
            asrl.update(kwargs.pop("asrl", {}))
            kwargs["asrl"] = asrl
        super().__init__(adapter, name, includeSCPI=False, **kwargs)

    current_setpoint = Instrument.control(
        "SETI?", "SETI %g", """Control the output current setpoint in A (±60.1); the supply
        ramps to it at ``ramp_rate`` at once.""",
        validator=strict_range, values=[-MAX_CURRENT_A, MAX_CURRENT_A],
    )
    current = Instrument.measurement("RDGI?", """Get the output current in A.""")
    voltage = Instrument.measurement("RDGV?", """Get the output voltage in V.""")
    compliance_voltage = Instrument.control(
        "SETV?", "SETV %g", """Control the compliance voltage in V (0.1 to 5).""",
        validator=strict_range, values=[0.1, MAX_VOLTAGE_V],
    )
    ramp_rate = Instrument.control(
        "RATE?", "RATE %g", """Control the current ramp rate in A/s (0.0001 to 99.999).""",
        validator=strict_range, values=[1e-4, MAX_RATE_A_PER_S],
    )
    limits = Instrument.control(
        "LIMIT?", "LIMIT %g,%g,%g",
        """Control the output limits (max current A, max voltage V, max rate A/s).""",
        get_process_list=_triple,
    )
    field_setup = Instrument.control(
        "FLDS?", "FLDS %d,%g",
        """Control the computed-field set-up (units 0 T/A, 1 kG/A; coil constant).""",
        get_process_list=lambda v: (int(float(v[0])), float(v[1])),
    )
    field_setpoint = Instrument.control(
        "SETF?", "SETF %g", """Control the field setpoint in the FLDS units (T with units 0).""",
    )
    field = Instrument.measurement("RDGF?", """Get the computed field in the FLDS units.""")
    switch_heater = Instrument.control(
        "PSH?", "PSH %d", """Control the persistent switch heater: set 0 off / 1 on; reads
        0 off, 1 on, 2 warming, 3 cooling (a :class:`SwitchHeater`).""",
        validator=strict_discrete_set, values=(0, 1), cast=int, get_process=SwitchHeater,
    )
    switch_setup = Instrument.control(
        "PSHS?", "PSHS %d,%g,%g",
        """Control the switch heater set-up (installed 0/1, heater current mA, delay s).""",
        get_process_list=lambda v: (bool(int(float(v[0]))), float(v[1]), float(v[2])),
    )
    switch_off_current = Instrument.measurement(
        "PSHIS?", """Get the output current (A) when the switch heater was last turned off;
        99.9999 when unknown.""",
    )
    quench_setup = Instrument.control(
        "QNCH?", "QNCH %d,%g",
        """Control quench detection (enabled 0/1, current step limit in A/s).""",
        get_process_list=lambda v: (bool(int(float(v[0]))), float(v[1])),
    )
    operation_status = Instrument.measurement(
        "OPST?", """Get the operational status register (bit 1, value 2: ramp done).""",
        cast=int,
    )
    error_status = Instrument.measurement(
        "ERST?", """Get the (hardware, operational, PSH) error status registers.""",
        get_process_list=lambda v: tuple(int(float(x)) for x in v),
    )

    def stop_ramp(self) -> None:
        """``STOP``: hold the output at the present current."""
        self.write("STOP")

    def check_errors(self) -> list:
        """Nonzero error registers as (register, value) pairs (no ``SYST:ERR?`` here)."""
        names = ("hardware", "operational", "switch heater")
        return [(n, v) for n, v in zip(names, self.error_status, strict=False) if v]


class LakeShore625Magnet(MagnetAdapter):
    """The magnet role on a Lake Shore 625, in tesla and tesla per minute.

    ``coil_constant_t_per_a`` (station option) is written with ``FLDS 0,…`` on connect;
    without it the supply's own constant is read, so the field and the limits below use
    what the supply computes with.
    """

    driver_class = LakeShore625

    def __init__(self, instrument: LakeShore625, resource: str = "", max_field_t: float = 9.0,
                 max_ramp_t_per_min: float = 0.5, safe_action: str = "hold",
                 coil_constant_t_per_a: float | None = None) -> None:
        super().__init__(instrument, resource, max_field_t, max_ramp_t_per_min, safe_action)
        with self.lock:
            if coil_constant_t_per_a is not None:
                check_range("coil_constant_t_per_a", coil_constant_t_per_a, 1e-4, 100.0, "T/A")
                instrument.field_setup = (0, float(coil_constant_t_per_a))
            units, constant = instrument.field_setup
            # FLDS in kG/A: switch to T/A keeping the same physical constant
            if units != 0:
                instrument.field_setup = (0, constant / 10.0)
                constant /= 10.0
            self.coil_constant = float(constant)
            self.current_limit_a, _, self.rate_limit_a_per_s = instrument.limits

    def field(self) -> float:
        """Field at the sample. The 625 computes ``RDGF?`` from its output current, which a
        persistent magnet no longer carries: with the switch heater not on, the field is
        the current it was switched off at (``PSHIS?``) times the coil constant."""
        inst = self.instrument
        with self.lock:
            if self.switch_installed() and inst.switch_heater is not SwitchHeater.ON:
                off_at = float(inst.switch_off_current)
                if abs(off_at - PSHIS_UNKNOWN) > 1e-3:
                    return off_at * self.coil_constant
            return float(inst.field)

    def target_field(self) -> float:
        return float(self.instrument.field_setpoint)

    def check_ramp(self, tesla: float, rate_t_per_min: float) -> None:
        """The station's limits, then the supply's: the current the field needs and the
        current rate, each against ``LIMIT?`` as read on connect."""
        super().check_ramp(tesla, rate_t_per_min)
        amps = abs(tesla) / self.coil_constant
        if amps > self.current_limit_a:
            raise LimitError(f"magnet field {tesla:g} T needs {amps:.4g} A; the 625's current "
                             f"limit is {self.current_limit_a:g} A "
                             f"({self.current_limit_a * self.coil_constant:.4g} T)")
        rate = rate_t_per_min / 60.0 / self.coil_constant
        if rate > self.rate_limit_a_per_s:
            raise LimitError(f"magnet ramp rate {rate_t_per_min:g} T/min is {rate:.4g} A/s; the "
                             f"625's rate limit is {self.rate_limit_a_per_s:g} A/s")

    def switch_installed(self) -> bool:
        return bool(self.instrument.switch_setup[0])

    def _ready_to_ramp(self) -> None:
        """Refuse a ramp the magnet would not follow (quench, switch off or changing)."""
        if self.is_quenched():
            raise InstrumentError("Lake Shore 625: quench detected (ERST? operational bit 5); "
                                  "clear it at the supply before ramping again")
        if not self.switch_installed():
            return
        heater = self.instrument.switch_heater
        if heater in (SwitchHeater.WARMING, SwitchHeater.COOLING):
            raise InstrumentError(f"Lake Shore 625: persistent switch heater is "
                                  f"{heater.name.lower()}; wait until it is on")
        if heater is SwitchHeater.OFF:
            raise InstrumentError("Lake Shore 625: persistent switch heater is off (magnet "
                                  "persistent): a ramp would move only the leads; turn the "
                                  "heater on first (set_switch_heater(True))")

    def ramp_to(self, tesla: float, rate_t_per_min: float) -> None:
        self.check_ramp(tesla, rate_t_per_min)
        with self.lock:
            self._ready_to_ramp()
            self.instrument.ramp_rate = rate_t_per_min / 60.0 / self.coil_constant
            self.instrument.field_setpoint = tesla

    def set_switch_heater(self, on: bool) -> None:
        """Heater on only with the supply at the current it was turned off at (``PSHIS?``),
        else the magnet would see a current step; off any time."""
        with self.lock:
            if not self.switch_installed():
                raise InstrumentError("Lake Shore 625: no persistent switch (PSHS enable 0)")
            if on:
                off_at = float(self.instrument.switch_off_current)
                now = float(self.instrument.current)
                if abs(off_at - PSHIS_UNKNOWN) > 1e-3 and abs(now - off_at) > SWITCH_MATCH_A:
                    raise LimitError(f"switch heater on: supply at {now:g} A, magnet "
                                     f"persistent at {off_at:g} A; ramp the supply to "
                                     f"{off_at:g} A first")
            self.instrument.switch_heater = int(bool(on))

    def pause(self) -> None:
        self.instrument.stop_ramp()

    def ramp_to_zero(self) -> None:
        """Output to 0 A at the present rate (the leads follow; a persistent magnet keeps
        its field)."""
        self.instrument.current_setpoint = 0.0

    def is_quenched(self) -> bool:
        _, operational, _ = self.instrument.error_status
        return bool(operational & OPERR_QUENCH)

    def state(self) -> MagnetState:
        inst = self.instrument
        with self.lock:
            if self.is_quenched():
                return MagnetState.QUENCH
            if self.switch_installed():
                heater = inst.switch_heater
                if heater is SwitchHeater.WARMING:
                    return MagnetState.HEATING_SWITCH
                if heater is SwitchHeater.COOLING:
                    return MagnetState.COOLING_SWITCH
            target = float(inst.current_setpoint)
            if not inst.operation_status & OPST_RAMP_DONE:
                return MagnetState.ZEROING if target == 0.0 else MagnetState.RAMPING
            if target == 0.0 and abs(float(inst.current)) < 1e-3:
                return MagnetState.AT_ZERO
            return MagnetState.HOLDING

    def is_holding(self) -> bool:
        return self.state() in (MagnetState.HOLDING, MagnetState.AT_ZERO)

    def persistent_switch_heated(self) -> bool | None:
        with self.lock:
            if not self.switch_installed():
                return None
            return self.instrument.switch_heater in (SwitchHeater.ON, SwitchHeater.WARMING)

    def snapshot(self) -> dict[str, Any]:
        inst = self.instrument
        with self.lock:
            current_limit, voltage_limit, rate_limit = inst.limits
            enabled, step = inst.quench_setup
            return {
                "state": self.state().value,
                "field_t": self.field(),
                "target_field_t": self.target_field(),
                "current_a": float(inst.current),
                "voltage_v": float(inst.voltage),
                "ramp_rate_a_per_s": float(inst.ramp_rate),
                "coil_constant_t_per_a": self.coil_constant,
                "supply_limits": {"current_a": current_limit, "voltage_v": voltage_limit,
                                  "rate_a_per_s": rate_limit},
                "quench_detection": {"enabled": enabled, "step_a_per_s": step},
                "quenched": self.is_quenched(),
                "persistent_switch_heated": self.persistent_switch_heated(),
                "limits": self.limits_snapshot(),
            }
