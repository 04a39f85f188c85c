"""Fault injection: per-role switches that the emulators and the server consult.

Kinds that apply to every instrument are handled by the TCP server (latency, no reply,
dropped connection, garbage, frozen); instrument-specific kinds are read by the emulator or the
physics (lock-in overload, 6221 compliance, magnet quench, heater open/short).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from daqapp.errors import ConfigError

#: Faults every served instrument understands. ``frozen``: the instrument still answers but
#: stopped updating, as a hung firmware does: each query gets the reply it got last time,
#: writes are ignored (a query never asked before gets no reply).
GENERIC_FAULTS = ("latency", "no_reply", "drop", "garbage", "frozen")
#: Faults that only make sense on one role: kind -> role.
ROLE_FAULTS = {
    "overload": "lockin",
    "compliance": "current_source",
    "quench": "magnet",
    "heater_open": "temperature",
    "heater_short": "temperature",
}
ROLES = ("lockin", "current_source", "nanovoltmeter", "temperature", "magnet")


@dataclass(frozen=True)
class Fault:
    """One active fault; ``value`` is the added latency in real seconds for ``latency``."""

    role: str
    kind: str
    value: float = 0.0


class FaultBoard:
    """Thread-safe table of active faults; listeners hear about every change (quench etc.)."""

    def __init__(self) -> None:
        self._active: dict[tuple[str, str], Fault] = {}
        self._lock = threading.Lock()
        self._listeners: list = []

    def add_listener(self, callback) -> None:
        """``callback(role, kind, active)`` is called after each set/clear."""
        self._listeners.append(callback)

    @staticmethod
    def validate(role: str, kind: str) -> None:
        if role not in ROLES:
            raise ConfigError(f"fault role {role!r} is unknown (allowed: {', '.join(ROLES)})")
        if kind in GENERIC_FAULTS:
            return
        if kind not in ROLE_FAULTS:
            allowed = ", ".join(GENERIC_FAULTS + tuple(ROLE_FAULTS))
            raise ConfigError(f"fault kind {kind!r} is unknown (allowed: {allowed})")
        if ROLE_FAULTS[kind] != role:
            raise ConfigError(f"fault {kind!r} applies to role {ROLE_FAULTS[kind]!r}, not {role!r}")

    def set(self, role: str, kind: str, value: float = 0.0) -> None:
        """Switch a fault on. ``latency`` takes ``value`` = added real seconds per reply."""
        self.validate(role, kind)
        if kind == "latency" and value <= 0:
            value = 0.5
        with self._lock:
            self._active[(role, kind)] = Fault(role, kind, float(value))
        for cb in list(self._listeners):
            cb(role, kind, True)

    def clear(self, role: str, kind: str | None = None) -> None:
        """Switch one fault (or every fault of ``role`` when ``kind`` is None) off."""
        with self._lock:
            keys = [k for k in self._active if k[0] == role and (kind is None or k[1] == kind)]
            for k in keys:
                del self._active[k]
        for _, k in keys:
            for cb in list(self._listeners):
                cb(role, k, False)

    def clear_all(self) -> None:
        for role in ROLES:
            self.clear(role)

    def active(self, role: str, kind: str) -> Fault | None:
        # lock-free read: a dict lookup is atomic, and the physics asks this every step
        return self._active.get((role, kind))

    def is_active(self, role: str, kind: str) -> bool:
        return self.active(role, kind) is not None

    def list(self) -> list[Fault]:
        with self._lock:
            return list(self._active.values())

    @staticmethod
    def parse(spec: str) -> tuple[str, str, float]:
        """Parse the CLI form ``ROLE=KIND`` or ``ROLE=latency:SECONDS``."""
        if "=" not in spec:
            raise ConfigError(f"--fault {spec!r} must look like ROLE=KIND (e.g. lockin=no_reply)")
        role, kind = spec.split("=", 1)
        value = 0.0
        if ":" in kind:
            kind, raw = kind.split(":", 1)
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"--fault {spec!r}: {raw!r} is not a number") from None
        role, kind = role.strip(), kind.strip()
        FaultBoard.validate(role, kind)
        return role, kind, value
