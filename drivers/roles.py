"""Role interfaces: what procedures, the monitor and campaigns may ask of an instrument.

A station file names a driver for each role; any driver that implements the role's protocol
can fill it, so swapping a Lake Shore 336 for an ITC503 (or an AMI 430 for an IPS120-10) is an
edit of the station file, not of a procedure. These are structural ``Protocol``s in the style
of Bluesky's ``Readable``/``Movable``: no base class is required. The adapters in ``drivers/``
*wrap* subclasses of the pymeasure drivers (``adapter.instrument``) rather than inherit from them,
because role verbs such as ``field()`` or ``sensitivity()`` collide with the drivers' properties.
Each adapter also offers ``lock`` (the connection's re-entrant lock: hold it to make several
calls one transaction), ``state_line()`` (one human-readable line) and ``close()``.

Units are SI-ish lab units, fixed here once: kelvin, kelvin per minute, tesla, tesla per
minute, ampere, volt, ohm, second.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class MagnetState(enum.Enum):
    """Magnet supply state, common to AMI 430 (``STATE?``) and IPS120-10 (``X`` status)."""

    RAMPING = "ramping"
    HOLDING = "holding"
    PAUSED = "paused"
    ZEROING = "zeroing"
    AT_ZERO = "at_zero"
    QUENCH = "quench"
    HEATING_SWITCH = "heating_switch"
    COOLING_SWITCH = "cooling_switch"
    MANUAL = "manual"
    FAULT = "fault"


class HeaterStatus(enum.Enum):
    OK = "ok"
    OPEN = "open"
    SHORT = "short"


@runtime_checkable
class Instrumented(Protocol):
    """Every role: identity, a JSON-serialisable settings snapshot, and a safe state."""

    def identify(self) -> str:
        """The instrument's identification string (``*IDN?`` or equivalent)."""

    def snapshot(self) -> dict[str, Any]:
        """Current settings as a JSON-serialisable dict (stored at run start and end)."""

    def to_safe_state(self) -> None:
        """Put the instrument in the safe state of DESIGN.md; must not raise on a healthy link."""

    def verify_safe_state(self) -> Readback:
        """Read back what :meth:`to_safe_state` set; never raises (failures are problems)."""


@dataclass
class Readback:
    """What an instrument reports after its safe state: values read, and what is not safe.

    ``unanswered`` holds queries that failed (timeout, dropped link: the station reconnects
    once and retries); ``wrong`` holds values that came back but are not the safe ones.
    ``summary`` is the short text of a confirmed state, e.g. "output OFF, 0 A".
    """

    summary: str
    values: dict[str, Any] = field(default_factory=dict)
    unanswered: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unanswered and not self.wrong

    @property
    def problems(self) -> list[str]:
        return self.unanswered + self.wrong

    def query(self, key: str, label: str, read: Any) -> Any:
        """``read()`` into ``values[key]``; a failure is recorded as unanswered (None).

        After one unanswered query the rest are skipped: the link is not answering, and
        each further query would only wait out another timeout."""
        if self.unanswered:
            self.values[key] = None
            return None
        try:
            value = read()
        except Exception as exc:  # noqa: BLE001 - any failure to read is "not confirmed"
            self.unanswered.append(f"no reply to {label} ({type(exc).__name__}: {exc})")
            value = None
        self.values[key] = value
        return value

    def expect(self, condition: bool, text: str) -> None:
        """Record ``text`` as a wrong value unless ``condition`` holds."""
        if not condition:
            self.wrong.append(text)


@dataclass
class RoleVerdict:
    """The outcome of one role's safe state, as the run file, log, CLI and window show it."""

    role: str
    instrument: str
    confirmed: bool
    actions: list[str] = field(default_factory=list)
    readback: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None
    summary: str = ""

    def line(self) -> str:
        head = f"{self.role} ({self.instrument})"
        if self.confirmed:  # "confirmed" only where something was read back
            return f"{head}: {self.summary}{' confirmed' if self.readback else ''}"
        return f"{head}: NOT CONFIRMED: {self.problem} — check by hand"

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "instrument": self.instrument, "confirmed": self.confirmed,
                "actions": list(self.actions), "readback": dict(self.readback),
                "problem": self.problem, "line": self.line()}


@dataclass
class SafeStateReport:
    """Every role's verdict, in the order the safe state went; ``confirmed`` only if all are."""

    verdicts: list[RoleVerdict] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def confirmed(self) -> bool:
        return all(v.confirmed for v in self.verdicts)

    @property
    def unconfirmed(self) -> list[RoleVerdict]:
        return [v for v in self.verdicts if not v.confirmed]

    def verdict(self, role: str) -> RoleVerdict | None:
        return next((v for v in self.verdicts if v.role == role), None)

    def lines(self) -> list[str]:
        return [v.line() for v in self.verdicts]

    def summary(self) -> str:
        """One line: the CLI's last line and the window's status line."""
        if self.confirmed:
            roles = ", ".join(v.role for v in self.verdicts) or "no instruments"
            return f"safe state confirmed ({roles})"
        return "safe state NOT CONFIRMED: " + "; ".join(v.line() for v in self.unconfirmed)

    def to_dict(self) -> dict[str, Any]:
        return {"confirmed": self.confirmed, "duration_s": round(self.duration_s, 3),
                "summary": self.summary(), "roles": [v.to_dict() for v in self.verdicts]}


@runtime_checkable
class TemperatureController(Instrumented, Protocol):
    def temperature(self) -> float:
        """Sample (control input) temperature in K."""

    def setpoint(self) -> float:
        """Current setpoint in K."""

    def set_setpoint(self, kelvin: float, ramp_k_per_min: float | None = None) -> None:
        """Go to ``kelvin``; ramp at ``ramp_k_per_min`` if given (None or 0: step)."""

    def is_ramping(self) -> bool: ...

    def heater_output(self) -> float:
        """Heater output in percent of the range."""

    def heater_range(self) -> int:
        """Heater range index (0 = off)."""

    def set_heater_range(self, index: int) -> None: ...

    def heater_status(self) -> HeaterStatus: ...

    def is_stable(self, target_k: float, band_k: float) -> bool:
        """True when the temperature is within ``band_k`` of ``target_k`` (one reading)."""


@runtime_checkable
class MagnetSupply(Instrumented, Protocol):
    def field(self) -> float:
        """Field in T."""

    def target_field(self) -> float: ...

    def ramp_to(self, tesla: float, rate_t_per_min: float) -> None:
        """Start ramping to ``tesla`` at ``rate_t_per_min``; returns at once."""

    def pause(self) -> None: ...

    def state(self) -> MagnetState: ...

    def is_holding(self) -> bool:
        """At target and not ramping (HOLDING, or AT_ZERO for a zero target)."""

    def is_quenched(self) -> bool: ...

    def persistent_switch_heated(self) -> bool | None:
        """Switch heater on (True), off (False), or no switch installed (None)."""


@runtime_checkable
class LockIn(Instrumented, Protocol):
    def set_excitation(self, volts_rms: float, frequency_hz: float) -> None: ...

    def excitation(self) -> float:
        """Sine output amplitude in V rms."""

    def xy(self) -> tuple[float, float]:
        """X and Y taken at the same instant (``SNAP? 1,2``), in V."""

    def time_constant(self) -> float:
        """Output filter time constant in s."""

    def set_time_constant(self, seconds: float) -> None:
        """Set the smallest available time constant ≥ ``seconds``."""

    def filter_slope(self) -> int:
        """Output filter slope in dB/oct (6, 12, 18 or 24)."""

    def set_filter_slope(self, db_per_octave: int) -> None: ...

    def settle_time(self) -> float:
        """Seconds to wait after a step for 99 % settling (from τ and the filter slope)."""

    def sensitivity(self) -> float:
        """Full scale in V."""

    def set_sensitivity(self, volts: float) -> None:
        """Set the smallest full scale ≥ ``volts``."""

    def is_overloaded(self) -> bool:
        """True if an input/filter/output overload has latched since the last call."""

    def set_aux_output(self, channel: int, volts: float) -> None: ...

    def aux_input(self, channel: int) -> float: ...


@runtime_checkable
class CurrentSource(Instrumented, Protocol):
    def set_current(self, amps: float) -> None: ...

    def current(self) -> float: ...

    def set_compliance(self, volts: float) -> None: ...

    def enable(self) -> None: ...

    def disable(self) -> None: ...

    def is_enabled(self) -> bool: ...

    def in_compliance(self) -> bool: ...


@runtime_checkable
class Nanovoltmeter(Instrumented, Protocol):
    def voltage(self) -> float:
        """One triggered reading in V (blocks for the integration time)."""
