"""Station file: which instrument fills each role, how it is wired, and the limits it obeys.

A station file is TOML (stdlib ``tomllib``). Everything is validated *before* any connection:
an unknown table, role, driver or key, a missing resource or a limit out of range raises
:class:`daqapp.errors.ConfigError` naming the file, the key and what is allowed. The parsed
result is a tree of frozen dataclasses, so procedures read ``station.limits.max_field_t`` rather
than dictionary keys that might be misspelt.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daqapp.errors import ConfigError
from drivers.registry import DRIVERS, ROLES, PluginError, drivers_for_role

if TYPE_CHECKING:
    from daqapp.station.connected import ConnectedStation

TOP_LEVEL = ("station", *ROLES, "wiring", "limits", "safe_state", "simulation")
DC_BIAS_SOURCES = ("lockin_aux", "current_source")
DC_VOLTAGE_READERS = ("nanovoltmeter", "lockin_aux_in")
MAGNET_SAFE_ACTIONS = ("hold", "zero")
# Drivers used for a simulated role when the station file does not name one.
SIMULATED_DRIVERS = {"lockin": "SR830", "current_source": "Keithley6221",
                     "nanovoltmeter": "Keithley2182", "temperature": "LakeShore336",
                     "magnet": "AMI430"}
# The VirtualLab model names that go with each driver of a role the lab can swap.
TEMPERATURE_MODELS = {"LakeShore336": "ls336", "ITC503": "itc503", "LakeShore335": "ls335",
                      "LakeShore340": "ls340", "LakeShore350": "ls350",
                      "MercuryiTC": "mercury_itc", "PPMS": "ppms"}
MAGNET_MODELS = {"AMI430": "ami430", "IPS120_10": "ips120", "LakeShore625": "ls625",
                 "MercuryiPS": "mercury_ips", "PPMS": "ppms"}
LOCKIN_MODELS = {"SR830": "sr830", "SR860": "sr860", "SR865": "sr865"}
CURRENT_SOURCE_MODELS = {"Keithley6221": "6221", "Keithley6220": "6220"}


@dataclass(frozen=True)
class RoleConfig:
    """One role: the driver that fills it, where it is connected and its options."""

    role: str
    driver: str
    resource: str = ""
    read_termination: str | None = None
    write_termination: str | None = None
    timeout_s: float | None = None
    baud_rate: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """Driver-specific options (e.g. ``control_input`` for a Lake Shore)."""


@dataclass(frozen=True)
class Wiring:
    """How the sample is connected: the bias network and who reads the junction DC voltage."""

    bias_resistor_ohm: float = 48e3
    dc_bias_source: str = "lockin_aux"
    bias_aux_channel: int = 1
    bias_divider: float = 1.0
    """Fraction of the AUX output voltage that reaches the bias resistor (1 = no divider)."""
    dc_voltage_reader: str = "nanovoltmeter"
    dc_voltage_aux_channel: int = 1
    dc_voltage_gain: float = 1.0
    """Gain of any preamplifier before the AUX input: V_junction = V_aux / gain."""
    series_resistance_ohm: float | None = None
    """Lead resistance in series with the contact (Ω), removed by the spectrum analysis."""


@dataclass(frozen=True)
class Limits:
    """Hard limits checked before any instrument action."""

    max_bias_current_a: float = 1e-3
    max_current_a: float = 0.105
    compliance_v: float = 10.0
    temperature_min_k: float = 1.5
    temperature_max_k: float = 320.0
    heater_ranges_allowed: tuple[int, ...] = (0, 1, 2, 3)
    max_field_t: float = 9.0
    max_field_ramp_t_per_min: float = 0.5


@dataclass(frozen=True)
class SafeStateConfig:
    """What 'safe' means for the magnet and heater on this cryostat."""

    magnet: str = "hold"
    heater_setpoint_k: float | None = None
    heater_range: int = 0


@dataclass(frozen=True)
class Simulation:
    simulated: bool = False
    preset: str = "la3ni2o7-cell2"
    speed: float = 1.0
    seed: int = 0
    serial_roles: tuple[str, ...] = ()
    """Roles the virtual lab serves on pseudo-terminals (RS-232) instead of sockets."""


@dataclass(frozen=True)
class Station:
    """A parsed, validated station file (see :func:`load_station`)."""

    path: str
    name: str
    roles: dict[str, RoleConfig]
    wiring: Wiring
    limits: Limits
    safe_state: SafeStateConfig
    simulation: Simulation

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, stored in run files and printed by ``station show``."""
        return {
            "path": self.path,
            "name": self.name,
            "roles": {role: asdict(cfg) for role, cfg in self.roles.items()},
            "wiring": asdict(self.wiring),
            "limits": {**asdict(self.limits),
                       "heater_ranges_allowed": list(self.limits.heater_ranges_allowed)},
            "safe_state": asdict(self.safe_state),
            "simulation": asdict(self.simulation),
        }

    def with_roles(self, roles: dict[str, RoleConfig]) -> Station:
        return replace(self, roles={**self.roles, **roles})

    def connect(self, strict: bool = True, roles: Collection[str] | None = None
                ) -> ConnectedStation:
        """Open every role, or only ``roles`` and what they talk through (starting the virtual
        lab first when simulated).

        ``strict=False`` keeps going past a role that fails, leaving it ``None`` and its error
        in ``failures`` (what ``daqapp station check`` needs); otherwise the first failure
        closes what was opened and raises :class:`daqapp.errors.InstrumentError`.
        """
        from daqapp.station.connected import ConnectedStation

        return ConnectedStation(self, strict=strict, roles=roles)

    @classmethod
    def simulated(cls, preset: str = "la3ni2o7-cell2", speed: float = 1.0, seed: int = 0,
                  temperature_driver: str = "LakeShore336", magnet_driver: str = "AMI430",
                  **tables: Any) -> Station:
        """A station for the in-process virtual lab, with default limits unless given.

        Extra keyword arguments are station tables, e.g. ``limits={"max_field_t": 5}``.
        """
        data: dict[str, Any] = {
            "station": {"name": f"virtual lab ({preset})"},
            "simulation": {"simulated": True, "preset": preset, "speed": float(speed),
                           "seed": int(seed)},
            **{role: {"driver": drv} for role, drv in SIMULATED_DRIVERS.items()},
            "temperature": {"driver": temperature_driver},
            "magnet": {"driver": magnet_driver},
            **tables,
        }
        return parse_station(data, f"<simulated {preset}>")


def _simulated_lead(simulation: Simulation) -> float | None:
    """The virtual lab's contact has a lead of its own (the preset's series resistance): a
    simulated station's wiring knows it, as a real station file states its own."""
    if not simulation.simulated:
        return None
    from simulators.presets import load_preset

    try:
        return float(load_preset(simulation.preset).series_resistance_ohm)
    except (ConfigError, OSError):
        return None


class _Reader:
    """Pulls typed values out of one TOML table, naming file/table/key in every error."""

    def __init__(self, path: str, table: str, data: Any, allowed: set[str] | frozenset[str]):
        self.path, self.table = path, table
        if not isinstance(data, dict):
            self.fail(None, f"must be a table, got {type(data).__name__}")
        self.data = data
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            self.fail(unknown[0], f"unknown key; allowed keys are {', '.join(sorted(allowed))}")

    def fail(self, key: str | None, message: str) -> None:
        where = f"[{self.table}]" + (f" {key}" if key else "")
        raise ConfigError(f"{self.path}: {where}: {message}")

    def has(self, key: str) -> bool:
        return key in self.data

    def number(self, key: str, default: float, low: float, high: float, unit: str = "",
               low_open: bool = False) -> float:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(key, f"{value!r} is not a number")
        v = float(value)
        lower_ok = v > low if low_open else v >= low
        if not (lower_ok and v <= high) or math.isnan(v):
            bracket = "(" if low_open else "["
            u = f" {unit}" if unit else ""
            self.fail(key, f"{v:g}{u} is out of range; allowed {bracket}{low:g}, {high:g}]{u}")
        return v

    def integer(self, key: str, default: int, allowed: tuple[int, ...]) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
            self.fail(key, f"{value!r} not allowed; allowed {', '.join(map(str, allowed))}")
        return int(value)

    def choice(self, key: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.data.get(key, default)
        if value not in allowed:
            self.fail(key, f"{value!r} not allowed; allowed {', '.join(map(repr, allowed))}")
        return str(value)

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self.data.get(key, default)
        if value is not None and not isinstance(value, str):
            self.fail(key, f"{value!r} must be a string")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self.fail(key, f"{value!r} must be true or false")
        return value


def _decode_terminator(value: str | None) -> str | None:
    """Accept real control characters or the escapes people type: ``"\\r\\n"``, ``"CRLF"``."""
    if value is None:
        return None
    named = {"LF": "\n", "CR": "\r", "CRLF": "\r\n", "NONE": ""}
    if value.upper() in named:
        return named[value.upper()]
    return value.replace("\\r", "\r").replace("\\n", "\n")


# Allowed values of the driver-specific options (a tuple: one of; a pair of floats: range).
OPTION_RULES: dict[str, tuple] = {
    "output_interface": ("gpib", "rs232"),
    "control_input": ("A", "B", "C", "D"),
    "output": (1, 2),
    "sensor": (1, 2, 3),
    "line_frequency_hz": (50, 60),
    "temperature_approach": ("fast_settle", "no_overshoot"),
    "field_approach": ("linear", "no_overshoot", "oscillate"),
    "field_mode": ("driven", "persistent"),
}
OPTION_RANGES: dict[str, tuple[float, float]] = {"nplc": (0.01, 60.0), "query_delay_s": (0.0, 10.0),
                                                 "step_rate_k_per_min": (0.01, 20.0)}


def _check_option(r: _Reader, key: str, value: Any,
                  driver_rules: Mapping[str, tuple] | None = None) -> None:
    rules = {**OPTION_RULES, **(driver_rules or {})}
    if key in rules and value not in rules[key]:
        r.fail(key, f"{value!r} not allowed; allowed {', '.join(map(repr, rules[key]))}")
    if key in OPTION_RANGES:
        low, high = OPTION_RANGES[key]
        r.number(key, low, low, high)


def _parse_role(path: str, role: str, data: Any, simulated: bool) -> RoleConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: [{role}]: must be a table")
    allowed_drivers = drivers_for_role(role)
    driver = data.get("driver")
    if driver is None:
        raise ConfigError(f"{path}: [{role}] driver: missing; allowed {', '.join(allowed_drivers)}")
    if not isinstance(driver, str):
        raise ConfigError(f"{path}: [{role}] driver: {driver!r} must be a string")
    try:
        spec = DRIVERS.resolve(driver)
    except KeyError:
        raise ConfigError(f"{path}: [{role}] driver: unknown driver {driver!r}; allowed for "
                          f"{role}: {', '.join(allowed_drivers)} (or a plug-in: an entry "
                          "point of daqapp.drivers, or 'package.module:Class')") from None
    except PluginError as exc:
        raise ConfigError(f"{path}: [{role}] driver: plug-in {driver!r} cannot be used: "
                          f"{exc}") from None
    if role not in spec.roles:
        raise ConfigError(f"{path}: [{role}] driver: {driver} cannot fill the {role} role; "
                          f"allowed for {role}: {', '.join(allowed_drivers)}")
    resource_keys = set() if spec.via_role else {"resource"}
    r = _Reader(path, role, data, {"driver"} | resource_keys | spec.allowed_options)
    resource = r.string("resource", "") or ""
    if spec.via_role is None and not resource and not simulated:
        r.fail("resource", "missing; give a VISA resource such as 'GPIB0::8::INSTR', "
                           "'ASRL/dev/ttyUSB0::INSTR' or 'TCPIP::192.168.1.20::7777::SOCKET'")
    timeout = r.number("timeout_s", 0.0, 0.05, 600.0, "s") if r.has("timeout_s") else None
    baud = r.integer("baud_rate", 9600, (300, 1200, 2400, 4800, 9600, 19200, 38400, 57600,
                                         115200)) if r.has("baud_rate") else None
    connection = {"driver", "resource", "read_termination", "write_termination", "timeout_s",
                  "baud_rate"}
    options = {k: v for k, v in data.items() if k not in connection}
    for key, value in options.items():
        _check_option(r, key, value, spec.option_values)
    return RoleConfig(
        role=role, driver=driver, resource=resource,
        read_termination=_decode_terminator(r.string("read_termination")),
        write_termination=_decode_terminator(r.string("write_termination")),
        timeout_s=timeout, baud_rate=baud, options=options,
    )


def parse_station(data: dict[str, Any], path: str = "<station>") -> Station:
    """Validate a station mapping (as read from TOML) into a :class:`Station`."""
    unknown = sorted(set(data) - set(TOP_LEVEL))
    if unknown:
        raise ConfigError(f"{path}: [{unknown[0]}]: unknown table or key; allowed tables are "
                          f"{', '.join(TOP_LEVEL)}")
    sim_r = _Reader(path, "simulation", data.get("simulation", {}),
                    {"simulated", "preset", "speed", "seed", "serial_roles"})
    serial_roles = sim_r.data.get("serial_roles", [])
    if (not isinstance(serial_roles, list)
            or not all(isinstance(r, str) and r in ROLES for r in serial_roles)):
        sim_r.fail("serial_roles", f"{serial_roles!r}; allowed a list of roles from "
                                   f"{', '.join(ROLES)}")
    seed = sim_r.data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        sim_r.fail("seed", f"{seed!r} must be an integer")
    simulation = Simulation(
        simulated=sim_r.boolean("simulated", False),
        preset=sim_r.string("preset", Simulation.preset) or Simulation.preset,
        speed=sim_r.number("speed", 1.0, 0.0, 1e5, low_open=True),
        seed=int(seed),
        serial_roles=tuple(serial_roles),
    )
    head = _Reader(path, "station", data.get("station", {}), {"name", "description"})
    name = head.string("name", Path(path).stem) or Path(path).stem

    roles = {role: _parse_role(path, role, data[role], simulation.simulated)
             for role in ROLES if role in data}
    if simulation.simulated and not roles:
        roles = {role: RoleConfig(role=role, driver=drv)
                 for role, drv in SIMULATED_DRIVERS.items()}
    if not roles:
        raise ConfigError(f"{path}: no roles; give at least one of the tables "
                          f"{', '.join(ROLES)} (or [simulation] simulated = true)")
    for role, cfg in roles.items():
        via = DRIVERS[cfg.driver].via_role
        if via and via not in roles:
            raise ConfigError(f"{path}: [{role}] driver: {cfg.driver} talks through the {via} "
                              f"role, but the station has no [{via}] table")

    lim = _Reader(path, "limits", data.get("limits", {}), {
        "max_bias_current_a", "max_current_a", "compliance_v", "temperature_min_k",
        "temperature_max_k", "heater_ranges_allowed", "max_field_t",
        "max_field_ramp_t_per_min"})
    ranges = lim.data.get("heater_ranges_allowed", list(Limits.heater_ranges_allowed))
    if (not isinstance(ranges, list) or not ranges
            or not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= 5
                       for x in ranges)):
        lim.fail("heater_ranges_allowed", f"{ranges!r}; allowed a non-empty list of integers "
                                          "0-5 (0 = heater off)")
    limits = Limits(
        max_bias_current_a=lim.number("max_bias_current_a", Limits.max_bias_current_a, 0.0,
                                      0.105, "A", low_open=True),
        max_current_a=lim.number("max_current_a", Limits.max_current_a, 0.0, 0.105, "A",
                                 low_open=True),
        compliance_v=lim.number("compliance_v", Limits.compliance_v, 0.1, 105.0, "V"),
        temperature_min_k=lim.number("temperature_min_k", Limits.temperature_min_k, 0.0,
                                     1500.0, "K"),
        temperature_max_k=lim.number("temperature_max_k", Limits.temperature_max_k, 0.0,
                                     1500.0, "K", low_open=True),
        heater_ranges_allowed=tuple(sorted(set(ranges))),
        max_field_t=lim.number("max_field_t", Limits.max_field_t, 0.0, 20.0, "T"),
        max_field_ramp_t_per_min=lim.number("max_field_ramp_t_per_min",
                                            Limits.max_field_ramp_t_per_min, 0.0, 5.0,
                                            "T/min", low_open=True),
    )
    if limits.temperature_min_k >= limits.temperature_max_k:
        lim.fail("temperature_min_k", f"{limits.temperature_min_k:g} K must be below "
                                      f"temperature_max_k = {limits.temperature_max_k:g} K")
    if limits.max_bias_current_a > limits.max_current_a:
        lim.fail("max_bias_current_a", f"{limits.max_bias_current_a:g} A exceeds "
                                       f"max_current_a = {limits.max_current_a:g} A")

    w = _Reader(path, "wiring", data.get("wiring", {}), {
        "bias_resistor_ohm", "dc_bias_source", "bias_aux_channel", "bias_divider",
        "dc_voltage_reader", "dc_voltage_aux_channel", "dc_voltage_gain",
        "series_resistance_ohm"})
    wiring = Wiring(
        bias_resistor_ohm=w.number("bias_resistor_ohm", Wiring.bias_resistor_ohm, 1.0, 1e10,
                                   "ohm"),
        dc_bias_source=w.choice("dc_bias_source", Wiring.dc_bias_source, DC_BIAS_SOURCES),
        bias_aux_channel=w.integer("bias_aux_channel", 1, (1, 2, 3, 4)),
        bias_divider=w.number("bias_divider", 1.0, 0.0, 1.0, low_open=True),
        dc_voltage_reader=w.choice("dc_voltage_reader", Wiring.dc_voltage_reader,
                                   DC_VOLTAGE_READERS),
        dc_voltage_aux_channel=w.integer("dc_voltage_aux_channel", 1, (1, 2, 3, 4)),
        dc_voltage_gain=w.number("dc_voltage_gain", 1.0, 0.0, 1e6, low_open=True),
        series_resistance_ohm=(w.number("series_resistance_ohm", 0.0, 0.0, 1e6, "ohm")
                               if "series_resistance_ohm" in data.get("wiring", {})
                               else _simulated_lead(simulation)),
    )
    needs = {"dc_bias_source": {"lockin_aux": "lockin", "current_source": "current_source"},
             "dc_voltage_reader": {"nanovoltmeter": "nanovoltmeter", "lockin_aux_in": "lockin"}}
    for key, role_for in needs.items():
        if w.has(key):
            needed = role_for[getattr(wiring, key)]
            if needed not in roles:
                w.fail(key, f"{getattr(wiring, key)!r} needs a [{needed}] table in the station")

    s = _Reader(path, "safe_state", data.get("safe_state", {}),
                {"magnet", "heater_setpoint_k", "heater_range"})
    setpoint = None
    if s.has("heater_setpoint_k"):
        setpoint = s.number("heater_setpoint_k", 0.0, limits.temperature_min_k,
                            limits.temperature_max_k, "K")
    safe = SafeStateConfig(
        magnet=s.choice("magnet", "hold", MAGNET_SAFE_ACTIONS),
        heater_setpoint_k=setpoint,
        heater_range=s.integer("heater_range", 0,
                               tuple(sorted({0, *limits.heater_ranges_allowed}))),
    )
    return Station(path=path, name=name, roles=roles, wiring=wiring, limits=limits,
                         safe_state=safe, simulation=simulation)


def load_station(path: str | Path) -> Station:
    """Read and validate a station file; no instrument is contacted."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: station file not found") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read station file: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return parse_station(data, str(p))
