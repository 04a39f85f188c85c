"""American Magnetics 430 magnet supply: pymeasure's AMI430 fixed and extended, plus the role.

Fixed in pymeasure 0.16.0: ``STATE?`` is an integer code (returned as :class:`AMI430State`, not
a float), ``has_persistent_switch_enabled`` returned ``bool("0") == True``; the connect greeting
(``American Magnetics Model 430 IP Interface`` / ``Hello.``) is read only when it is there, so a
GPIB/serial link or a reconnect does not hang for two timeouts. Added: quench detection and
reset (``QU?``/``QU 0``), switch-installed query, field and ramp-rate units, persistent mode.
"""

from __future__ import annotations

import enum
from typing import Any

from pymeasure.instruments import Instrument
from pymeasure.instruments.ami.ami430 import AMI430 as _PymeasureAMI430
from pymeasure.instruments.validators import strict_discrete_set

from drivers.base import MagnetAdapter
from drivers.locking import SerializedInstrument
from drivers.roles import MagnetState

GREETING = ("American Magnetics Model 430 IP Interface", "Hello.")


class AMI430State(enum.IntEnum):
    RAMPING = 1
    HOLDING = 2
    PAUSED = 3
    MANUAL_UP = 4
    MANUAL_DOWN = 5
    ZEROING = 6
    QUENCH = 7
    AT_ZERO = 8
    HEATING_SWITCH = 9
    COOLING_SWITCH = 10


ROLE_STATE = {
    AMI430State.RAMPING: MagnetState.RAMPING,
    AMI430State.HOLDING: MagnetState.HOLDING,
    AMI430State.PAUSED: MagnetState.PAUSED,
    AMI430State.MANUAL_UP: MagnetState.MANUAL,
    AMI430State.MANUAL_DOWN: MagnetState.MANUAL,
    AMI430State.ZEROING: MagnetState.ZEROING,
    AMI430State.QUENCH: MagnetState.QUENCH,
    AMI430State.AT_ZERO: MagnetState.AT_ZERO,
    AMI430State.HEATING_SWITCH: MagnetState.HEATING_SWITCH,
    AMI430State.COOLING_SWITCH: MagnetState.COOLING_SWITCH,
}


class AMI430(SerializedInstrument, _PymeasureAMI430):
    """AMI 430 whose greeting is consumed only when present (``expect_greeting``)."""

    def __init__(self, adapter, name: str = "AMI 430", expect_greeting: bool | None = None,
                 **kwargs):
        kwargs.setdefault("read_termination", "\r\n")
        # pymeasure's __init__ reads the two greeting lines unconditionally; skip its body.
        Instrument.__init__(self, adapter, name, includeSCPI=False, **kwargs)
        if expect_greeting is None:
            expect_greeting = "SOCKET" in str(getattr(adapter, "resource_name", adapter)).upper()
        self.greeting: list[str] = []
        if expect_greeting:
            self.greeting = [self.read().strip() for _ in GREETING]

    state = Instrument.measurement(
        "STATE?", """Get the supply state as an :class:`AMI430State`.""",
        cast=int, get_process=AMI430State,
    )
    quenched = Instrument.measurement(
        "QU?", """Get whether a quench is detected (bool).""", cast=int, get_process=bool,
    )
    persistent_switch_heated = Instrument.measurement(
        "PSwitch?", """Get whether the persistent switch heater is on (bool).""",
        cast=int, get_process=bool,
    )
    persistent_switch_installed = Instrument.measurement(
        "PSwitch:INSTalled?", """Get whether a persistent switch is installed (bool).""",
        cast=int, get_process=bool,
    )
    persistent = Instrument.measurement(
        "PERS?", """Get whether the magnet is in persistent mode (bool).""",
        cast=int, get_process=bool,
    )
    field_units = Instrument.control(
        "FIELD:UNITS?", "CONF:FIELD:UNITS %d",
        """Control the field unit: 'kG' or 'T'.""",
        validator=strict_discrete_set, values={"kG": 0, "T": 1}, map_values=True, cast=int,
    )
    ramp_rate_units = Instrument.control(
        "RAMP:RATE:UNITS?", "CONF:RAMP:RATE:UNITS %d",
        """Control the ramp-rate time unit: 's' (per second) or 'min' (per minute).""",
        validator=strict_discrete_set, values={"s": 0, "min": 1}, map_values=True, cast=int,
    )
    ramp_rate_field = Instrument.control(
        "RAMP:RATE:FIELD:1?", "CONF:RAMP:RATE:FIELD 1,%g,%g",
        """Control segment 1 as (rate, upper field bound) in the configured units.""",
        get_process_list=lambda v: (float(v[0]), float(v[1])),
    )

    def has_persistent_switch_enabled(self) -> bool:
        return bool(self.persistent_switch_heated)

    def reset_quench(self) -> None:
        self.write("QU 0")


class AMI430Magnet(MagnetAdapter):
    """The magnet role on an AMI 430, in tesla and tesla per minute (set on connect)."""

    driver_class = AMI430

    def __init__(self, instrument: AMI430, resource: str = "", max_field_t: float = 9.0,
                 max_ramp_t_per_min: float = 0.5, safe_action: str = "hold") -> None:
        super().__init__(instrument, resource, max_field_t, max_ramp_t_per_min, safe_action)
        with self.lock:
            instrument.field_units = "T"
            instrument.ramp_rate_units = "min"

    def field(self) -> float:
        return float(self.instrument.field)

    def target_field(self) -> float:
        return float(self.instrument.target_field)

    def ramp_to(self, tesla: float, rate_t_per_min: float) -> None:
        self.check_ramp(tesla, rate_t_per_min)
        with self.lock:
            self.instrument.ramp_rate_field = (rate_t_per_min, self.max_field_t)
            self.instrument.target_field = tesla
            self.instrument.ramp()

    def pause(self) -> None:
        self.instrument.pause()

    def ramp_to_zero(self) -> None:
        self.instrument.zero()

    def supply_state(self) -> AMI430State:
        return self.instrument.state

    def state(self) -> MagnetState:
        return ROLE_STATE[self.supply_state()]

    def is_holding(self) -> bool:
        return self.state() in (MagnetState.HOLDING, MagnetState.AT_ZERO)

    def is_quenched(self) -> bool:
        with self.lock:
            return bool(self.instrument.quenched) or self.supply_state() == AMI430State.QUENCH

    def persistent_switch_heated(self) -> bool | None:
        with self.lock:
            if not self.instrument.persistent_switch_installed:
                return None
            return bool(self.instrument.persistent_switch_heated)

    def snapshot(self) -> dict[str, Any]:
        inst = self.instrument
        with self.lock:
            rate, upper = inst.ramp_rate_field
            return {
                "state": self.supply_state().name.lower(),
                "field_t": self.field(),
                "target_field_t": self.target_field(),
                "ramp_rate_t_per_min": rate,
                "ramp_segment_upper_t": upper,
                "magnet_current_a": float(inst.magnet_current),
                "coil_constant_t_per_a": float(inst.coilconst),
                "quenched": bool(inst.quenched),
                "persistent_switch_heated": self.persistent_switch_heated(),
                "limits": self.limits_snapshot(),
            }

