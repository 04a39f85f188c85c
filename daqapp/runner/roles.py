"""How run control finds a role, a limit and the clock on a connected station.

The station (``daqapp.station``) owns the mapping of roles to instruments; this module is the one
place the runner and the procedures ask it, so they never depend on its internals. A simulated
station runs on the virtual lab's clock (simulated seconds = speed × real seconds): settling
times are given in instrument seconds and converted here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from daqapp.errors import ConfigError

#: Role name -> names a station may use for it (first match wins).
ROLE_ALIASES: dict[str, tuple[str, ...]] = {
    "temperature": ("temperature", "temperature_controller", "cryostat"),
    "magnet": ("magnet", "magnet_supply"),
    "lockin": ("lockin", "lock_in"),
    "source": ("source", "current_source"),
    "nanovoltmeter": ("nanovoltmeter", "voltmeter", "nvm"),
}


def station_role(station: Any, role: str, required: bool = True) -> Any:
    """The instrument filling ``role`` on ``station`` (None if absent and not ``required``)."""
    names = ROLE_ALIASES.get(role, (role,))
    for name in names:
        found = _lookup(station, name)
        if found is not None:
            return found
    if required:
        raise ConfigError(f"station has no '{role}' instrument (this procedure needs one; "
                          f"add a '{role}' entry to the station file)")
    return None


def _lookup(station: Any, name: str) -> Any:
    getter = getattr(station, "role", None)
    if callable(getter):
        try:
            found = getter(name)
        except (KeyError, LookupError, ConfigError):
            found = None
        if found is not None:
            return found
    roles = getattr(station, "roles", None)
    if isinstance(roles, Mapping) and roles.get(name) is not None:
        return roles[name]
    if isinstance(station, Mapping):
        return station.get(name)
    value = getattr(station, name, None)
    return None if callable(value) and not hasattr(value, "identify") else value


def station_limits(station: Any) -> Any:
    """The station's limits object (``conn.limits``), or None if it declares none."""
    return getattr(station, "limits", None)


def limit_value(limits: Any, name: str, default: float | None = None) -> float | None:
    """A named limit from ``limits`` (mapping or attributes), else ``default``."""
    if limits is None:
        return default
    if isinstance(limits, Mapping):
        value = limits.get(name, default)
    else:
        value = getattr(limits, name, default)
    return default if value is None else float(value)


def station_clock(station: Any) -> Any:
    """The virtual lab's clock of a simulated station (``station.clock`` or
    ``station.lab.clock``), None for a real one."""
    clock = getattr(station, "clock", None)
    if clock is None:
        clock = getattr(getattr(station, "lab", None), "clock", None)
    return clock


def lab_seconds_to_real(station: Any, seconds: float) -> float:
    """Real seconds that ``seconds`` of instrument time take (the virtual lab runs faster)."""
    clock = station_clock(station)
    converter = getattr(clock, "real_seconds", None)
    if callable(converter):
        return float(converter(seconds))
    speed = getattr(station, "speed", None)
    if isinstance(speed, (int, float)) and speed > 0:
        return max(0.0, seconds) / float(speed)
    return max(0.0, seconds)


def lab_time(station: Any) -> float:
    """Seconds on the station's clock (the virtual lab's, or the monotonic wall clock)."""
    clock = station_clock(station)
    now = getattr(clock, "now", None)
    if callable(now):
        return float(now())
    return time.monotonic()
