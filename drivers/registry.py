"""Driver names a station file may use, what role each can fill, and how to connect to it.

The station validator reads this table *before* any connection: the driver name, the role it
is put in, and the option keys it accepts are all checked here, so a typo in a station file is
reported with the allowed names instead of surfacing as a VISA error at 3 a.m.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from drivers.ami430 import AMI430Magnet
from drivers.base import RoleAdapter
from drivers.keithley2182 import Keithley2182Nanovoltmeter, Keithley2182Via6221
from drivers.keithley6221 import Keithley6221CurrentSource
from drivers.lakeshore336 import LakeShore336Temperature
from drivers.oxford import IPS120Magnet, ITC503Temperature
from drivers.oxford_mercury import MercuryIPSMagnet, MercuryITCTemperature
from drivers.ppms import PPMSMagnet, PPMSTemperature
from drivers.sr830 import SR830LockIn

ROLES = ("lockin", "current_source", "nanovoltmeter", "temperature", "magnet")

# Connection options every driver accepts (station file keys under [<role>.options] or inline).
CONNECTION_OPTIONS = frozenset({"read_termination", "write_termination", "timeout_s",
                                "baud_rate"})

# Oxford legacy instruments fix their serial framing (9600 8N2) in the pymeasure base class.
OXFORD_CONNECTION_OPTIONS = CONNECTION_OPTIONS - {"baud_rate"}


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

    @property
    def allowed_options(self) -> frozenset[str]:
        if self.via_role is not None:
            return self.options
        return self.connection_options | self.options


DRIVERS: dict[str, DriverSpec] = {
    spec.name: spec
    for spec in (
        DriverSpec("SR830", SR830LockIn, ("lockin",), "\n", "\n", 5.0,
                   "Stanford Research SR830 DSP lock-in (GPIB, RS-232 or socket bridge)",
                   frozenset({"output_interface"})),
        DriverSpec("Keithley6221", Keithley6221CurrentSource, ("current_source",), "\n", "\n",
                   5.0, "Keithley 6221 AC/DC current source (GPIB or LAN port 1394)"),
        DriverSpec("Keithley2182", Keithley2182Nanovoltmeter, ("nanovoltmeter",), "\n", "\n",
                   5.0, "Keithley 2182A nanovoltmeter on its own GPIB/RS-232 link",
                   frozenset({"nplc"})),
        DriverSpec("Keithley2182_via_6221", Keithley2182Via6221, ("nanovoltmeter",), "\n",
                   "\n", 5.0, "Keithley 2182A reached through the 6221's RS-232 pass-through",
                   frozenset({"query_delay_s", "line_frequency_hz"}), via_role="current_source"),
        DriverSpec("LakeShore336", LakeShore336Temperature, ("temperature",), "\r\n", "\n",
                   5.0, "Lake Shore 336 (USB 57600 7O1, LAN port 7777, GPIB)",
                   frozenset({"control_input", "output"})),
        DriverSpec("ITC503", ITC503Temperature, ("temperature",), "\r", "\r", 5.0,
                   "Oxford ITC503 (RS-232 9600 8N2 or GPIB)", frozenset({"sensor"}),
                   connection_options=OXFORD_CONNECTION_OPTIONS),
        DriverSpec("AMI430", AMI430Magnet, ("magnet",), "\r\n", "\n", 5.0,
                   "American Magnetics 430 (LAN port 7180)"),
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


def drivers_for_role(role: str) -> list[str]:
    """Names of the drivers that can fill ``role``, for error messages and ``--help``."""
    return sorted(name for name, spec in DRIVERS.items() if role in spec.roles)
