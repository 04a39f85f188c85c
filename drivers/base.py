"""What every role adapter shares: the driver it wraps, the connection lock, and opening a link.

Role adapters *wrap* a pymeasure driver instead of inheriting from it because the role verbs
(``field()``, ``sensitivity()``, ``time_constant()``) would collide with the drivers' own
properties of the same names. The wrapped driver stays available as ``adapter.instrument`` for
anything a role does not cover; it is a :class:`drivers.locking.SerializedInstrument`, so raw
property access from another thread is serialised too.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from daqapp.errors import InstrumentError, LimitError, check_range
from drivers.roles import MagnetState, Readback

#: One write of a safe state: what it does (for the report) and the call that does it.
SafeStep = tuple[str, Callable[[], Any]]


def visa_kwargs(
    read_termination: str | None,
    write_termination: str | None,
    timeout_s: float | None,
    baud_rate: int | None = None,
) -> dict[str, Any]:
    """Keyword arguments for pymeasure's VISAAdapter from a station file's options."""
    kwargs: dict[str, Any] = {}
    if read_termination is not None:
        kwargs["read_termination"] = read_termination
    if write_termination is not None:
        kwargs["write_termination"] = write_termination
    if timeout_s is not None:
        kwargs["timeout"] = int(round(timeout_s * 1000))
    if baud_rate is not None:
        kwargs["asrl"] = {"baud_rate": int(baud_rate)}
    return kwargs


class RoleAdapter:
    """Base of the role adapters: keeps the driver, its lock and where it is connected."""

    driver_class: ClassVar[type]
    """The pymeasure driver subclass this adapter opens."""

    def __init__(self, instrument: Any, resource: str = "") -> None:
        self.instrument = instrument
        self.resource = resource or _resource_name(instrument)
        self.idn: str | None = None
        """Identity read when the station connected (``None`` until then)."""

    @property
    def lock(self) -> threading.RLock:
        return self.instrument.lock

    @classmethod
    def open(cls, resource: str, *, options: dict[str, Any] | None = None,
             **visa: Any) -> RoleAdapter:
        """Connect to ``resource`` with pymeasure's VISA adapter and wrap the driver."""
        options = dict(options or {})
        try:
            instrument = cls.driver_class(resource, **visa)
        except Exception as exc:  # pyvisa raises many types; the station names the role
            raise InstrumentError(f"cannot open {resource}: {type(exc).__name__}: {exc}") from exc
        disable_nagle(instrument)
        try:
            return cls(instrument, resource=resource, **options)
        except Exception as exc:  # set-up messages on connect failed: do not leak the link
            try:
                instrument.adapter.close()
            except Exception:  # noqa: BLE001
                pass
            raise InstrumentError(f"{resource} answered badly during set-up: "
                                  f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Close the connection (never raises: used on every way out of a run)."""
        try:
            self.instrument.adapter.close()
        except Exception:  # noqa: BLE001 - closing a dead link must not mask the real error
            pass

    def identify(self) -> str:
        with self.lock:
            return self.instrument.ask("*IDN?").strip()

    # ---- safe state -------------------------------------------------------------------
    def safe_state_steps(self) -> list[SafeStep]:
        """The writes of this instrument's safe state, in order (none: nothing to make safe)."""
        return []

    def apply_safe_state(self) -> tuple[list[str], list[str]]:
        """Send every safe-state write, each on its own: a failed one never skips the rest.

        Returns (what was sent, what failed with its error)."""
        done: list[str] = []
        failed: list[str] = []
        for label, write in self.safe_state_steps():
            try:
                write()
            except Exception as exc:  # noqa: BLE001 - the next write may still get through
                failed.append(f"{label}: {type(exc).__name__}: {exc}")
            else:
                done.append(label)
        return done, failed

    def to_safe_state(self) -> None:
        """Send the safe-state writes; raises InstrumentError naming those that failed."""
        _, failed = self.apply_safe_state()
        if failed:
            raise InstrumentError("safe state: " + "; ".join(failed))

    def verify_safe_state(self) -> Readback:
        """Read back the safe state; an instrument that sources nothing has nothing to check
        (its to_safe_state sends nothing: a voltmeter is left alone)."""
        return Readback("sources nothing, left alone")

    @contextlib.contextmanager
    def io_timeout(self, seconds: float) -> Iterator[None]:
        """Use a VISA timeout of at most ``seconds`` inside the block (the safe state must not
        wait out a 5 s timeout per message on a dead link), then restore the old one."""
        connection = getattr(getattr(self.instrument, "adapter", None), "connection", None)
        changed, old = False, None
        try:
            old = connection.timeout
            if isinstance(old, (int, float)):
                connection.timeout = min(float(old), seconds * 1000.0)
                changed = True
        except Exception:  # noqa: BLE001 - no connection or a closed session: the writes say so
            pass
        try:
            yield
        finally:
            if changed:
                try:
                    connection.timeout = old
                except Exception:  # noqa: BLE001
                    pass


def _resource_name(instrument: Any) -> str:
    connection = getattr(getattr(instrument, "adapter", None), "connection", None)
    return str(getattr(connection, "resource_name", "") or "")


def finite(value: float, what: str) -> float:
    """Reject the 9.9E37 overflow marker and NaN that instruments return for invalid readings."""
    v = float(value)
    if not (abs(v) < 9.0e37):
        raise InstrumentError(f"{what}: instrument returned an invalid reading ({v:g})")
    return v



class MagnetAdapter(RoleAdapter):
    """What every magnet-supply role shares: the station's field limits and safe-state policy.

    Subclasses talk to their supply; the checks and the hold/zero choice live here once, so an
    AMI 430 and an IPS120-10 refuse the same ramp with the same message.
    """

    def __init__(self, instrument: Any, resource: str = "", max_field_t: float = 9.0,
                 max_ramp_t_per_min: float = 0.5, safe_action: str = "hold") -> None:
        super().__init__(instrument, resource)
        self.max_field_t = float(max_field_t)
        self.max_ramp_t_per_min = float(max_ramp_t_per_min)
        if safe_action not in ("hold", "zero"):
            raise LimitError(f"magnet safe_action = {safe_action!r}; allowed 'hold', 'zero'")
        self.safe_action = safe_action

    def check_ramp(self, tesla: float, rate_t_per_min: float) -> None:
        """Raise before anything is sent if the target or the rate breaks the station limits."""
        check_range("magnet field", tesla, -self.max_field_t, self.max_field_t, "T")
        check_range("magnet ramp rate", rate_t_per_min, 1e-4, self.max_ramp_t_per_min, "T/min")

    def limits_snapshot(self) -> dict[str, float]:
        return {"max_field_t": self.max_field_t, "max_ramp_t_per_min": self.max_ramp_t_per_min}

    def state_line(self) -> str:
        with self.lock:
            return f"B {self.field():.4f} T, {self.state().value}"

    def safe_state_steps(self) -> list[SafeStep]:
        """Hold where it is, or ramp to zero, per the station's ``[safe_state] magnet``."""
        if self.safe_action == "zero":
            return [("ramp to zero", self.ramp_to_zero)]
        return [("pause (hold the field)", self.pause)]

    def verify_safe_state(self) -> Readback:
        """Holding (or paused, at zero) for "hold"; zeroing or at zero for "zero"."""
        allowed = ((MagnetState.ZEROING, MagnetState.AT_ZERO) if self.safe_action == "zero"
                   else (MagnetState.PAUSED, MagnetState.HOLDING, MagnetState.AT_ZERO))
        check = Readback("")
        field_t = check.query("field_t", "field", self.field)
        state = check.query("state", "state", self.state)
        if state is MagnetState.QUENCH:  # the supply no longer obeys hold/zero
            check.expect(False, "the magnet QUENCHED: field decaying, supply in quench state")
        elif state is not None:
            check.expect(state in allowed, f"magnet is {state.value}, expected "
                         f"{' or '.join(s.value for s in allowed)}")
        if state is not None:
            check.values["state"] = state.value
        where = f" at {field_t:.4f} T" if field_t is not None else ""
        verb = "ramping to zero" if state is MagnetState.ZEROING else (
            state.value if state is not None else "")
        check.summary = f"{verb}{where}"
        return check


def verify_heater(role: Any, read_setpoint: Callable[[], float],
                  read_range: Callable[[], int] | None) -> Readback:
    """The heater read-back both temperature controllers share: range, then setpoint
    (``read_range`` None: the safe state leaves the range alone, so it is not checked)."""
    safe_k = role.safe_setpoint_k
    parts = [f"heater range {role.safe_heater_range}"] if read_range is not None else []
    if safe_k is not None:
        parts.append(f"setpoint {safe_k:g} K")
    check = Readback(", ".join(parts) or "nothing to set")
    heater_range = (check.query("heater_range", "heater range", read_range)
                    if read_range is not None else None)
    if heater_range is not None:
        check.expect(int(heater_range) == role.safe_heater_range,
                     f"heater range reads {heater_range}, not {role.safe_heater_range}")
    if safe_k is not None:
        setpoint = check.query("setpoint_k", "setpoint", read_setpoint)
        if setpoint is not None:
            check.expect(abs(float(setpoint) - safe_k) <= 1e-3 * max(1.0, safe_k),
                         f"setpoint reads {setpoint:g} K, not {safe_k:g} K")
    return check


def disable_nagle(instrument: Any, disable: bool = True) -> bool:
    """Send small SCPI messages at once on raw TCP sockets; True if the option was set
    (``disable=False`` turns Nagle's algorithm back on, for measuring what it costs).

    With Nagle's algorithm on, a query written right after a command waits for the peer's
    delayed ACK (~20-40 ms), which made a lock-in spectrum ~7x slower. pyvisa-py refuses
    ``VI_ATTR_TCPIP_NODELAY`` on SOCKET sessions, so the option is set on its socket directly.
    """
    connection = getattr(getattr(instrument, "adapter", None), "connection", None)
    visalib = getattr(connection, "visalib", None)
    sessions = getattr(visalib, "sessions", None)
    if not isinstance(sessions, dict):
        return False
    sock = getattr(sessions.get(connection.session), "interface", None)
    if not isinstance(sock, socket.socket) or sock.type != socket.SOCK_STREAM:
        return False
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(disable))
    return True
