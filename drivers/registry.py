"""Driver names a station file may use, what role each can fill, and how to connect to it.

The station validator reads this table *before* any connection: the driver name, the role it
is put in, and the option keys it accepts are all checked here, so a typo in a station file is
reported with the allowed names instead of surfacing as a VISA error at 3 a.m.

The table is open: besides the built-in drivers below, another installed package may add
drivers through the ``daqapp.drivers`` entry-point group (and procedures through
``daqapp.procedures``), and a station file may name ``package.module:Class`` directly. A
plug-in is imported only when a station names it (or ``daqapp station drivers`` lists it), and
is checked against the role protocol of :mod:`drivers.roles` then, so a broken one is refused
with its name and the reason before any instrument is contacted.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import inspect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from daqapp.errors import ConfigError
from drivers import roles as _roles
from drivers.ami430 import AMI430Magnet
from drivers.base import RoleAdapter
from drivers.keithley2182 import Keithley2182Nanovoltmeter, Keithley2182Via6221
from drivers.keithley6220 import Keithley6220CurrentSource
from drivers.keithley6221 import Keithley6221CurrentSource
from drivers.lakeshore import (
    LakeShore335Temperature,
    LakeShore340Temperature,
    LakeShore350Temperature,
)
from drivers.lakeshore336 import LakeShore336Temperature
from drivers.lakeshore625 import LakeShore625Magnet
from drivers.oxford import IPS120Magnet, ITC503Temperature
from drivers.oxford_mercury import MercuryIPSMagnet, MercuryITCTemperature
from drivers.ppms import PPMSMagnet, PPMSTemperature
from drivers.sr830 import SR830LockIn
from drivers.sr860 import SR860LockIn, SR865LockIn

ROLES = ("lockin", "current_source", "nanovoltmeter", "temperature", "magnet")

#: The protocol (drivers/roles.py) an adapter must implement to fill each role.
ROLE_PROTOCOLS: dict[str, type] = {
    "lockin": _roles.LockIn, "current_source": _roles.CurrentSource,
    "nanovoltmeter": _roles.Nanovoltmeter, "temperature": _roles.TemperatureController,
    "magnet": _roles.MagnetSupply,
}
#: What the station hands every adapter of a role besides its options (see
#: daqapp.station.connected.role_kwargs): an adapter's constructor must accept these.
ROLE_KWARGS: dict[str, tuple[str, ...]] = {
    "current_source": ("max_current_a", "max_compliance_v"),
    "temperature": ("temperature_min_k", "temperature_max_k", "heater_ranges_allowed",
                    "safe_setpoint_k", "safe_heater_range"),
    "magnet": ("max_field_t", "max_ramp_t_per_min", "safe_action"),
}
#: What a station needs besides the role verbs: open, close, one state line, the safe state.
ADAPTER_PLUMBING = ("open", "close", "state_line", "apply_safe_state", "io_timeout")

DRIVER_GROUP = "daqapp.drivers"
PROCEDURE_GROUP = "daqapp.procedures"
BUILT_IN = "built-in"

# Connection options every driver accepts (station file keys under [<role>.options] or inline).
CONNECTION_OPTIONS = frozenset({"read_termination", "write_termination", "timeout_s",
                                "baud_rate"})

# Oxford legacy instruments fix their serial framing (9600 8N2) in the pymeasure base class.
OXFORD_CONNECTION_OPTIONS = CONNECTION_OPTIONS - {"baud_rate"}


class PluginError(ConfigError):
    """A plug-in driver or procedure that cannot be used: not found, not importable, or not
    an adapter of the role it claims."""


@dataclass(frozen=True)
class DriverSpec:
    """One entry of the registry: adapter class, roles, defaults and extra option keys."""

    name: str
    adapter: type[RoleAdapter]
    roles: tuple[str, ...]
    read_termination: str
    write_termination: str
    timeout_s: float
    description: str
    options: frozenset[str] = field(default_factory=frozenset)
    """Driver-specific option keys, passed to the adapter's constructor."""
    via_role: str | None = None
    """Set when the driver talks through another role's connection instead of a resource."""
    connection_options: frozenset[str] = CONNECTION_OPTIONS
    role_adapters: Mapping[str, type[RoleAdapter]] = field(default_factory=dict)
    """Adapter per role for a driver that fills several roles (default: ``adapter``). Roles
    of one such driver that name the same resource share one link (one instrument)."""

    def adapter_for(self, role: str) -> type[RoleAdapter]:
        return self.role_adapters.get(role, self.adapter)
    option_values: Mapping[str, tuple] = field(default_factory=dict)
    """Allowed values of an option on this driver (overrides the station's general rule)."""
    capabilities: frozenset[str] = field(default_factory=frozenset)
    """Modes beyond the role verbs that procedures may ask for, e.g. ``dcon``, ``delta``."""
    origin: str = BUILT_IN
    """Where the driver comes from: built-in, a distribution's entry point, a station file."""

    @property
    def allowed_options(self) -> frozenset[str]:
        if self.via_role is not None:
            return self.options
        return self.connection_options | self.options


_LS_INPUTS = {"control_input": ("A", "B")}

BUILTIN_DRIVERS: dict[str, DriverSpec] = {
    spec.name: spec
    for spec in (
        DriverSpec("SR830", SR830LockIn, ("lockin",), "\n", "\n", 5.0,
                   "Stanford Research SR830 DSP lock-in (GPIB, RS-232 or socket bridge)",
                   frozenset({"output_interface"})),
        DriverSpec("SR860", SR860LockIn, ("lockin",), "\n", "\n", 5.0,
                   "Stanford Research SR860 500 kHz lock-in (GPIB, USB-TMC, LAN, RS-232)"),
        DriverSpec("SR865", SR865LockIn, ("lockin",), "\n", "\n", 5.0,
                   "Stanford Research SR865/SR865A 2-4 MHz lock-in (GPIB, USB-TMC, LAN)"),
        DriverSpec("Keithley6221", Keithley6221CurrentSource, ("current_source",), "\n", "\n",
                   5.0, "Keithley 6221 AC/DC current source (GPIB or LAN port 1394)",
                   capabilities=frozenset({"delta", "dcon"})),
        DriverSpec("Keithley6220", Keithley6220CurrentSource, ("current_source",), "\n", "\n",
                   5.0, "Keithley 6220 DC current source (GPIB or RS-232; delta with a 2182A, "
                   "no DCON)", capabilities=frozenset({"delta"})),
        DriverSpec("Keithley2182", Keithley2182Nanovoltmeter, ("nanovoltmeter",), "\n", "\n",
                   5.0, "Keithley 2182A nanovoltmeter on its own GPIB/RS-232 link",
                   frozenset({"nplc"})),
        DriverSpec("Keithley2182_via_6221", Keithley2182Via6221, ("nanovoltmeter",), "\n",
                   "\n", 5.0, "Keithley 2182A reached through the 6221's RS-232 pass-through",
                   frozenset({"query_delay_s", "line_frequency_hz"}), via_role="current_source"),
        DriverSpec("LakeShore335", LakeShore335Temperature, ("temperature",), "\r\n", "\n",
                   5.0, "Lake Shore 335 (USB 57600 7O1, GPIB; inputs A-B, 2 heaters, ranges 0-3)",
                   frozenset({"control_input", "output"}), option_values=_LS_INPUTS),
        DriverSpec("LakeShore336", LakeShore336Temperature, ("temperature",), "\r\n", "\n",
                   5.0, "Lake Shore 336 (USB 57600 7O1, LAN port 7777, GPIB)",
                   frozenset({"control_input", "output"})),
        DriverSpec("LakeShore340", LakeShore340Temperature, ("temperature",), "\r\n", "\n",
                   5.0, "Lake Shore 340 (RS-232 7O1 up to 19200, GPIB; loop 1 heater, "
                   "ranges 0-5, CSET/CMODE)", frozenset({"control_input", "output"}),
                   option_values={**_LS_INPUTS, "output": (1,)}),
        DriverSpec("LakeShore350", LakeShore350Temperature, ("temperature",), "\r\n", "\n",
                   5.0, "Lake Shore 350 (USB 57600 7O1, LAN port 7777, GPIB; ranges 0-5)",
                   frozenset({"control_input", "output"})),
        DriverSpec("ITC503", ITC503Temperature, ("temperature",), "\r", "\r", 5.0,
                   "Oxford ITC503 (RS-232 9600 8N2 or GPIB)", frozenset({"sensor"}),
                   connection_options=OXFORD_CONNECTION_OPTIONS),
        DriverSpec("AMI430", AMI430Magnet, ("magnet",), "\r\n", "\n", 5.0,
                   "American Magnetics 430 (LAN port 7180)"),
        DriverSpec("LakeShore625", LakeShore625Magnet, ("magnet",), "\r\n", "\n", 5.0,
                   "Lake Shore 625 (RS-232 9600 7O1, GPIB; 60 A, quench and switch heater)",
                   frozenset({"coil_constant_t_per_a"})),
        DriverSpec("IPS120_10", IPS120Magnet, ("magnet",), "\r", "\r", 5.0,
                   "Oxford IPS120-10 (RS-232 9600 8N2 or GPIB)",
                   connection_options=OXFORD_CONNECTION_OPTIONS),
        DriverSpec("MercuryiTC", MercuryITCTemperature, ("temperature",), "\n", "\n", 5.0,
                   "Oxford Mercury iTC (LAN port 7020, RS-232 9600 8N1, USB, GPIB)",
                   frozenset({"sensor_uid", "heater_uid", "valve_uid"})),
        DriverSpec("MercuryiPS", MercuryIPSMagnet, ("magnet",), "\n", "\n", 5.0,
                   "Oxford Mercury iPS (LAN port 7020, RS-232 9600 8N1, USB, GPIB)"),
        DriverSpec("PPMS", PPMSTemperature, ("temperature", "magnet"), "", "", 5.0,
                   "Quantum Design PPMS/DynaCool/VersaLab via MultiPyVu (resource host:port, "
                   "default port 27183; needs daqapp[ppms])",
                   frozenset({"temperature_approach", "step_rate_k_per_min", "field_approach",
                              "field_mode"}),
                   connection_options=frozenset({"timeout_s"}),
                   role_adapters={"magnet": PPMSMagnet}),
    )
}


# ---------------------------------------------------------------------------- checking
def protocol_methods(protocol: type) -> set[str]:
    """The public methods a role protocol asks for (its own and the ones it extends)."""
    names: set[str] = set()
    for klass in protocol.__mro__:
        if klass is object or not getattr(klass, "_is_protocol", False):
            continue
        names |= {n for n, v in vars(klass).items() if callable(v) and not n.startswith("_")}
    return names


def adapter_problems(adapter: Any, role_names: tuple[str, ...],
                     options: frozenset[str] = frozenset()) -> list[str]:
    """Why ``adapter`` cannot fill ``role_names`` (empty when it can), without instantiating it.

    The class must implement every method of each role's protocol, the plumbing the station
    uses (open, close, state line, safe state), and accept its options and the role's limits
    as constructor keywords."""
    if not inspect.isclass(adapter):
        return [f"{adapter!r} is not a class"]
    problems: list[str] = []
    unknown = [r for r in role_names if r not in ROLE_PROTOCOLS]
    if unknown or not role_names:
        problems.append(f"roles {list(role_names)!r}; allowed {', '.join(ROLES)}")
    for role in role_names:
        if role not in ROLE_PROTOCOLS:
            continue
        missing = sorted(m for m in protocol_methods(ROLE_PROTOCOLS[role]) | set(
            ADAPTER_PLUMBING) if not callable(getattr(adapter, m, None)))
        if missing:
            problems.append(f"{adapter.__qualname__} lacks {', '.join(missing)} of the "
                            f"{role} role (drivers/roles.py)")
    if (getattr(adapter, "open", None) is not None
            and getattr(adapter.open, "__func__", None) is RoleAdapter.open.__func__
            and not inspect.isclass(getattr(adapter, "driver_class", None))):
        problems.append(f"{adapter.__qualname__} has no driver_class (the pymeasure "
                        "Instrument that RoleAdapter.open connects)")
    try:
        params = inspect.signature(adapter.__init__).parameters
    except (TypeError, ValueError):
        return problems
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        wanted = set(options).union(*(ROLE_KWARGS.get(r, ()) for r in role_names))
        refused = sorted(wanted - set(params))
        if refused:
            problems.append(f"{adapter.__qualname__}.__init__ does not accept "
                            f"{', '.join(refused)}")
    return problems


def spec_from_adapter(name: str, adapter: Any, origin: str) -> DriverSpec:
    """A registry entry for an adapter class that describes itself with class attributes:
    ``ROLES`` (else the roles whose protocol it implements), ``READ_TERMINATION``,
    ``WRITE_TERMINATION`` (default LF), ``TIMEOUT_S`` (5), ``OPTIONS``, ``CAPABILITIES``,
    ``DESCRIPTION`` (else the first line of its docstring)."""
    if not inspect.isclass(adapter):
        raise PluginError(f"{adapter!r} is neither a DriverSpec nor a role adapter class")
    declared = getattr(adapter, "ROLES", None)
    if declared is None:
        declared = tuple(r for r in ROLES if not adapter_problems(adapter, (r,)))
        if not declared:
            raise PluginError(f"{adapter.__qualname__} implements no role's protocol "
                              "(drivers/roles.py) and declares no ROLES")
    doc = (inspect.getdoc(adapter) or adapter.__qualname__).strip().splitlines()[0]
    return DriverSpec(
        name=name, adapter=adapter, roles=tuple(declared),
        read_termination=getattr(adapter, "READ_TERMINATION", "\n"),
        write_termination=getattr(adapter, "WRITE_TERMINATION", "\n"),
        timeout_s=float(getattr(adapter, "TIMEOUT_S", 5.0)),
        description=getattr(adapter, "DESCRIPTION", doc),
        options=frozenset(getattr(adapter, "OPTIONS", ())),
        capabilities=frozenset(getattr(adapter, "CAPABILITIES", ())),
        origin=origin,
    )


def _checked(spec: DriverSpec) -> DriverSpec:
    problems = adapter_problems(spec.adapter, spec.roles, spec.options)
    if spec.via_role is not None and spec.via_role not in ROLES:
        problems.append(f"via_role {spec.via_role!r}; allowed {', '.join(ROLES)}")
    if problems:
        raise PluginError("; ".join(problems))
    return spec


# ----------------------------------------------------------------------- entry points
def entry_points(group: str) -> dict[str, metadata.EntryPoint]:
    """Entry points of ``group`` in every installed distribution (and any ``*.dist-info`` on
    ``sys.path``), by name; read afresh each time so a package installed meanwhile counts."""
    return {ep.name: ep for ep in metadata.entry_points(group=group)}


def _distribution(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "an unnamed distribution"
    return f"{dist.metadata['Name']} {dist.version}"


def _import(target: str) -> Any:
    """``package.module:Attribute`` (dots allowed after the colon) imported; PluginError if not."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise PluginError(f"{target!r} is not of the form package.module:Class")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the plug-in's reason
        raise PluginError(f"cannot import {module_name} ({type(exc).__name__}: {exc})") from None
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginError(f"{module_name} has no {attribute}") from None
    return obj


def _from_object(name: str, obj: Any, origin: str) -> DriverSpec:
    if isinstance(obj, DriverSpec):
        return _checked(replace(obj, name=name, origin=origin))
    return _checked(spec_from_adapter(name, obj, origin))


class DriverTable(Mapping[str, DriverSpec]):
    """Built-in drivers, then plug-ins by entry point, then ``module:Class`` names.

    ``table[name]`` resolves a name (raising :class:`PluginError` with the reason for one that
    cannot be used); iterating gives the built-in and the usable plug-in names. Resolved
    plug-ins are kept, so a station's connect finds the class its validation checked.
    """

    def __init__(self, builtin: dict[str, DriverSpec]) -> None:
        self.builtin = builtin
        self._resolved: dict[str, DriverSpec] = {}

    def resolve(self, name: str) -> DriverSpec:
        if name in self.builtin:
            return self.builtin[name]
        if name in self._resolved:
            return self._resolved[name]
        if ":" in name:
            spec = _from_object(name, _import(name), f"station file ({name})")
        else:
            ep = entry_points(DRIVER_GROUP).get(name)
            if ep is None:
                raise KeyError(name)
            spec = _from_object(name, _import(ep.value),
                                f"{_distribution(ep)} (entry point {DRIVER_GROUP}: "
                                f"{ep.name} = {ep.value})")
        self._resolved[name] = spec
        return spec

    def refresh(self) -> None:
        """Forget resolved plug-ins (after installing or removing a package in-process)."""
        self._resolved.clear()

    def __getitem__(self, name: str) -> DriverSpec:
        return self.resolve(name)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.resolve(name)
        except (KeyError, PluginError):
            return False
        return True

    def plugin_status(self) -> list[tuple[str, DriverSpec | None, str]]:
        """Every entry point of ``daqapp.drivers``: (name, spec or None, origin or reason)."""
        out: list[tuple[str, DriverSpec | None, str]] = []
        for name, ep in sorted(entry_points(DRIVER_GROUP).items()):
            where = f"{_distribution(ep)} (entry point {ep.name} = {ep.value})"
            if name in self.builtin:
                out.append((name, None, f"{where}: shadows the built-in driver {name}"))
                continue
            try:
                out.append((name, self.resolve(name), where))
            except (KeyError, PluginError) as exc:
                out.append((name, None, f"{where}: {exc}"))
        return out

    def __iter__(self) -> Iterator[str]:
        yield from self.builtin
        for name, spec, _ in self.plugin_status():
            if spec is not None:
                yield name

    def __len__(self) -> int:
        return sum(1 for _ in self)


DRIVERS = DriverTable(BUILTIN_DRIVERS)


def resolve_driver(name: str) -> DriverSpec:
    """The driver ``name`` (built-in, plug-in or ``module:Class``); ConfigError saying why not."""
    try:
        return DRIVERS.resolve(name)
    except KeyError:
        raise ConfigError(f"unknown driver {name!r}") from None


def drivers_for_role(role: str) -> list[str]:
    """Names of the drivers that can fill ``role``, for error messages and ``--help``."""
    return sorted(name for name, spec in DRIVERS.items() if role in spec.roles)


def station_driver(station: Any, role: str) -> DriverSpec | None:
    """The registry entry of the driver a station (a station file's config or a connected
    station) puts in ``role``; None when it has no such role or names an unknown driver."""
    config = getattr(station, "resolved", station)
    roles = getattr(config, "roles", None)
    cfg = roles.get(role) if isinstance(roles, Mapping) else None
    name = getattr(cfg, "driver", None)
    if not isinstance(name, str):
        return None
    try:
        return DRIVERS.resolve(name)
    except (KeyError, PluginError):
        return None


def require_capability(station: Any, role: str, capability: str, instead: str = "",
                       what: str = "") -> None:
    """Refuse, before anything moves, a measurement the station's ``role`` driver cannot do
    (e.g. DCON on a Keithley 6220); ``what`` names it when the caller's message does not.
    A station whose driver is unknown here passes."""
    spec = station_driver(station, role)
    if spec is None or capability in spec.capabilities:
        return
    able = sorted(n for n, s in DRIVERS.items() if role in s.roles and capability in s.capabilities)
    raise ConfigError(f"{what + ' ' if what else ''}needs {capability.upper()}, which the "
                      f"{spec.name} in [{role}] does not have (drivers with it: "
                      f"{', '.join(able) or 'none'})" + (f"; {instead}" if instead else ""))


def plugin_procedures() -> dict[str, str]:
    """Command-line name -> ``module:Class`` of procedures other packages add by entry point."""
    return {name: ep.value for name, ep in entry_points(PROCEDURE_GROUP).items()}
