"""The virtual lab: one clock, the sample/cryostat/magnet physics, and every instrument
emulator served on its own 127.0.0.1 port, with fault injection.

>>> with VirtualLab(preset="la3ni2o7-cell2", speed=100.0, seed=1) as lab:
...     print(lab.endpoints["lockin"].resource)      # doctest: +SKIP
TCPIP::127.0.0.1::40123::SOCKET
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from daqapp.errors import ConfigError
from simulators.bench import Bench
from simulators.clock import SimClock
from simulators.cryostat import BATH_K, Cryostat
from simulators.faults import FaultBoard
from simulators.instruments.ami430 import AMI430Emulator
from simulators.instruments.keithley2182 import Keithley2182Emulator
from simulators.instruments.keithley6221 import Keithley6221Emulator
from simulators.instruments.lakeshore336 import LakeShore336Emulator
from simulators.instruments.sr830 import SR830Emulator
from simulators.magnet import MagnetModel
from simulators.presets import SamplePreset, load_preset
from simulators.sample import SampleModel
from simulators.serial_link import PtyServer
from simulators.server import InstrumentServer

if TYPE_CHECKING:
    from simulators.instruments.ppms import MultiVuServer

#: ``ports="standard"``: the instruments' own LAN ports where they have one (6221 1394,
#: Lake Shore 336 7777, AMI 430 7180), fixed documented ports for the GPIB/serial-only ones.
STANDARD_PORTS = {
    ("lockin", "SR830"): 18830,
    ("current_source", "6221"): 1394,
    ("nanovoltmeter", "2182A"): 12182,
    ("temperature", "LS336"): 7777,
    ("temperature", "ITC503"): 15003,
    ("magnet", "AMI430"): 7180,
    ("magnet", "IPS120-10"): 15120,
    # The Mercury iTC and iPS both listen on 7020 on their own hosts; here they share one.
    ("temperature", "MercuryiTC"): 7020,
    ("magnet", "MercuryiPS"): 7021,
    # MultiPyVu's default port; the PPMS serves both roles from one server.
    ("temperature", "PPMS"): 27183,
    ("magnet", "PPMS"): 27183,
    ("lockin", "SR860"): 18860,
    ("lockin", "SR865"): 18865,
    ("current_source", "6220"): 16220,
    ("temperature", "LS335"): 7335,
    ("temperature", "LS340"): 7340,
    ("temperature", "LS350"): 7350,
    ("magnet", "LS625"): 7625,
}
SERVED_ROLES = ("lockin", "current_source", "nanovoltmeter", "temperature", "magnet")
TEMPERATURE_MODELS = ("ls336", "itc503", "ls335", "ls340", "ls350", "mercury_itc", "ppms")
MAGNET_MODELS = ("ami430", "ips120", "ls625", "mercury_ips", "ppms")
LOCKIN_MODELS = ("sr830", "sr860", "sr865")
CURRENT_SOURCE_MODELS = ("6221", "6220")
#: The models that are one instrument for both the temperature and the magnet role.
BOTH_ROLES_MODELS = ("ppms",)
#: Lake Shore temperature models served on the 336's framing: model -> (emulator, name).
_LAKESHORE_TEMPERATURE = {"ls335": ("LakeShore335Emulator", "LS335"),
                          "ls340": ("LakeShore340Emulator", "LS340"),
                          "ls350": ("LakeShore350Emulator", "LS350")}
#: The magnet on a Lake Shore 625 (60.1 A at most): 0.15 T/A reaches the cryostat's 9 T.
LS625_COIL_T_PER_A = 0.15


@dataclass(frozen=True)
class Endpoint:
    """Where one emulated instrument listens and how to talk to it."""

    role: str
    model: str
    host: str
    port: int
    resource: str
    read_termination: str
    write_termination: str

    def line(self) -> str:
        """The one-line form ``daqapp simulate`` prints."""
        return f"{self.role} {self.model} {self.resource}"


class VirtualLab:
    """Everything of the lab in one process. Start with :meth:`start` or as a context manager."""

    def __init__(self, preset: str | Path | SamplePreset = "la3ni2o7-cell2",
                 speed: float = 1.0, seed: int | None = 0,
                 temperature_model: str = "ls336", magnet_model: str = "ami430",
                 ports: str | dict | None = None, *, lockin_model: str = "sr830",
                 current_source_model: str = "6221", bias_resistor_ohm: float = 48e3,
                 current_source_circuit: str | None = None, aux_bias_channel: int = 1,
                 bias_divider: float = 1.0, dc_bias_source: str = "lockin_aux",
                 dc_voltage_aux_channel: int = 1, dc_voltage_gain: float = 1.0,
                 initial_temperature_K: float | None = None,
                 magnet_switch_installed: bool = True, conductance_model=None,
                 host: str = "127.0.0.1", serial_roles: tuple[str, ...] = ()) -> None:
        if temperature_model not in TEMPERATURE_MODELS:
            raise ConfigError(f"temperature_model = {temperature_model!r} "
                              f"(allowed: {', '.join(TEMPERATURE_MODELS)})")
        if magnet_model not in MAGNET_MODELS:
            raise ConfigError(f"magnet_model = {magnet_model!r} "
                              f"(allowed: {', '.join(MAGNET_MODELS)})")
        if temperature_model in BOTH_ROLES_MODELS or magnet_model in BOTH_ROLES_MODELS:
            both = temperature_model if temperature_model in BOTH_ROLES_MODELS else magnet_model
            others = {temperature_model, magnet_model} - {both, "ls336", "ami430"}
            if others:
                raise ConfigError(f"{both} serves the temperature and the magnet role itself; "
                                  f"it cannot be combined with {sorted(others)[0]}")
            temperature_model = magnet_model = both
        if lockin_model not in LOCKIN_MODELS:
            raise ConfigError(f"lockin_model = {lockin_model!r} "
                              f"(allowed: {', '.join(LOCKIN_MODELS)})")
        if current_source_model not in CURRENT_SOURCE_MODELS:
            raise ConfigError(f"current_source_model = {current_source_model!r} "
                              f"(allowed: {', '.join(CURRENT_SOURCE_MODELS)})")
        if ports not in (None, "standard", "ephemeral") and not isinstance(ports, dict):
            raise ConfigError(f"ports = {ports!r} (allowed: None/'ephemeral', 'standard', "
                              "or a dict role -> port)")
        if not 1e3 <= bias_resistor_ohm <= 1e8:
            raise ConfigError(f"bias_resistor_ohm = {bias_resistor_ohm:g} is outside the "
                              "allowed range 1e3 to 1e8 Ω")
        if dc_bias_source not in ("lockin_aux", "current_source"):
            raise ConfigError(f"dc_bias_source = {dc_bias_source!r} "
                              "(allowed: 'lockin_aux', 'current_source')")
        if current_source_circuit is None:
            # a station that biases the junction from the 6221 has it wired to the contact
            current_source_circuit = ("junction" if dc_bias_source == "current_source"
                                      else "sample")
        if not 0 < bias_divider <= 1:
            raise ConfigError(f"bias_divider = {bias_divider:g} is outside the allowed range "
                              "(0, 1]")
        if aux_bias_channel not in (1, 2, 3, 4) or dc_voltage_aux_channel not in (1, 2, 3, 4):
            raise ConfigError("aux_bias_channel and dc_voltage_aux_channel must be 1 to 4")
        if not 1e-3 <= dc_voltage_gain <= 1e6:
            raise ConfigError(f"dc_voltage_gain = {dc_voltage_gain:g} is outside the allowed "
                              "range 1e-3 to 1e6")
        if current_source_circuit not in ("sample", "junction"):
            raise ConfigError(f"current_source_circuit = {current_source_circuit!r} "
                              "(allowed: 'sample', 'junction')")
        if host != "127.0.0.1":
            raise ConfigError(f"host = {host!r}: the virtual lab binds 127.0.0.1 only")
        serial_roles = tuple(serial_roles)
        unknown = sorted(set(serial_roles) - set(SERVED_ROLES))
        if unknown:
            raise ConfigError(f"serial_roles: {unknown[0]!r} is not a role the lab serves "
                              f"(allowed: {', '.join(SERVED_ROLES)})")
        if set(serial_roles) & {"temperature", "magnet"} and "ppms" in (temperature_model,
                                                                       magnet_model):
            raise ConfigError("serial_roles: a PPMS is reached through MultiPyVu over TCP, "
                              "not over a serial line")
        self.serial_roles = serial_roles
        self.preset = preset if isinstance(preset, SamplePreset) else load_preset(preset)
        self.speed = speed
        self.seed = seed
        self.host = host
        self.clock = SimClock(speed)
        self.rng = np.random.default_rng(seed)
        self.faults = FaultBoard()
        self.sample = SampleModel(self.preset, conductance_model=conductance_model)
        self.cryostat = Cryostat(self.clock, initial_K=initial_temperature_K or BATH_K)
        coil = {"coil_constant_T_per_A": LS625_COIL_T_PER_A,
                "max_current_A": 60.0} if magnet_model == "ls625" else {}
        self.magnet = MagnetModel(self.clock, switch_installed=magnet_switch_installed, **coil)
        if magnet_switch_installed:
            # driven mode at power-up: switch heater on, so a plain RAMP moves the field
            self.magnet.switch = "on"
        self.bench = Bench(self.clock, self.sample, self.cryostat, self.magnet, self.rng,
                           bias_resistor_ohm=bias_resistor_ohm,
                           aux_bias_channel=aux_bias_channel,
                           current_source_circuit=current_source_circuit,
                           bias_divider=bias_divider,
                           dc_voltage_aux_channel=dc_voltage_aux_channel,
                           dc_voltage_gain=dc_voltage_gain)
        self.temperature_model = temperature_model
        self.magnet_model = magnet_model
        self.lockin_model = lockin_model
        self.current_source_model = current_source_model
        self._ports_spec = ports
        self._servers: dict[str, Any] = {}
        self._models: dict[str, tuple[str, str, str]] = {}
        self.emulators: dict[str, object] = {}
        self._build_emulators()
        self.faults.add_listener(self._on_fault)
        self._started = False

    # ------------------------------------------------------------------ assembly
    def _noise(self, sigma: float) -> float:
        return float(self.bench.noise(sigma))

    def _build_emulators(self) -> None:
        bench = self.bench
        if self.lockin_model == "sr830":
            self.emulators["lockin"] = SR830Emulator(bench, self.clock, self.faults)
        else:
            from simulators.instruments.sr860 import SR860Emulator

            self.emulators["lockin"] = SR860Emulator(bench, self.clock, self.faults,
                                                     model=self.lockin_model.upper())
        self._models["lockin"] = (self.lockin_model.upper(), "\n", "\n")

        def junction_source(ch: int) -> float:
            if ch != 1:
                return 0.0
            _, v = bench.junction_dc()
            return v + bench.thermal_emf()

        def linked_source(ch: int) -> float:
            if ch != 1:
                return 0.0
            return bench.sample_voltage_mean(linked.integration_time()) + bench.thermal_emf()

        linked = Keithley2182Emulator(self.clock, linked_source, self._noise)
        source_class = Keithley6221Emulator
        if self.current_source_model == "6220":
            from simulators.instruments.keithley6220 import Keithley6220Emulator

            source_class = Keithley6220Emulator
        self.emulators["current_source"] = source_class(bench, self.clock, self.faults, linked)
        self.linked_nanovoltmeter = linked
        self._models["current_source"] = (self.current_source_model, "\n", "\n")
        self.emulators["nanovoltmeter"] = Keithley2182Emulator(self.clock, junction_source,
                                                               self._noise)
        self._models["nanovoltmeter"] = ("2182A", "\n", "\n")
        if self.temperature_model == "ppms":
            from simulators.instruments.ppms import PPMSEmulator

            ppms = PPMSEmulator(self.cryostat, self.magnet, self.clock, self.faults,
                                self._noise)
            self.emulators["temperature"] = self.emulators["magnet"] = ppms
            self._models["temperature"] = self._models["magnet"] = ("PPMS", "", "")
            return
        if self.temperature_model == "ls336":
            self.emulators["temperature"] = LakeShore336Emulator(self.cryostat, self.clock,
                                                                 self.faults, self._noise)
            self._models["temperature"] = ("LS336", "\r\n", "\n")
        elif self.temperature_model == "mercury_itc":
            from simulators.instruments.oxford_mercury import MercuryITCEmulator

            self.emulators["temperature"] = MercuryITCEmulator(self.cryostat, self.clock,
                                                               self.faults, self._noise)
            self._models["temperature"] = ("MercuryiTC", "\n", "\n")
        elif self.temperature_model in _LAKESHORE_TEMPERATURE:
            from simulators.instruments import lakeshore

            class_name, name = _LAKESHORE_TEMPERATURE[self.temperature_model]
            self.emulators["temperature"] = getattr(lakeshore, class_name)(
                self.cryostat, self.clock, self.faults, self._noise)
            self._models["temperature"] = (name, "\r\n", "\n")
        else:
            from simulators.instruments.oxford import ITC503Emulator

            self.emulators["temperature"] = ITC503Emulator(self.cryostat, self.clock,
                                                           self.faults, self._noise)
            self._models["temperature"] = ("ITC503", "\r", "\r")
        if self.magnet_model == "ami430":
            self.emulators["magnet"] = AMI430Emulator(self.magnet, self.faults)
            self._models["magnet"] = ("AMI430", "\r\n", "\r\n")
        elif self.magnet_model == "mercury_ips":
            from simulators.instruments.oxford_mercury import MercuryIPSEmulator

            self.emulators["magnet"] = MercuryIPSEmulator(self.magnet, self.faults)
            self._models["magnet"] = ("MercuryiPS", "\n", "\n")
        elif self.magnet_model == "ls625":
            from simulators.instruments.lakeshore625 import LakeShore625Emulator

            self.emulators["magnet"] = LakeShore625Emulator(self.magnet, self.faults)
            self._models["magnet"] = ("LS625", "\r\n", "\n")
        else:
            from simulators.instruments.oxford import IPS120Emulator

            self.emulators["magnet"] = IPS120Emulator(self.magnet, self.faults)
            self._models["magnet"] = ("IPS120-10", "\r", "\r")

    def _port_for(self, role: str, model: str) -> int:
        spec = self._ports_spec
        if spec in (None, "ephemeral"):
            return 0
        if spec == "standard":
            return STANDARD_PORTS[(role, model)]
        return int(spec.get(role, 0))

    def _on_fault(self, role: str, kind: str, active: bool) -> None:
        if kind == "quench" and active:
            self.magnet.quench()
            on_quench = getattr(self.emulators.get("magnet"), "on_quench", None)
            if on_quench is not None:
                on_quench()
        if kind == "drop" and active and role in self._servers:
            self._servers[role].drop_clients()
        if kind in ("heater_open", "heater_short"):
            self.cryostat.advance()

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> VirtualLab:
        """Open every port (127.0.0.1). Raises ConfigError if a fixed port is taken."""
        if self._started:
            return self
        try:
            served: dict[int, object] = {}
            for role, emulator in self.emulators.items():
                model = self._models[role][0]
                if id(emulator) in served:  # one instrument filling two roles: one server
                    self._servers[role] = served[id(emulator)]
                    continue
                server: InstrumentServer | PtyServer | MultiVuServer
                if model == "PPMS":
                    from simulators.instruments.ppms import MultiVuServer

                    server = MultiVuServer(emulator, self.faults,
                                           port=self._port_for(role, model), host=self.host,
                                           roles=("temperature", "magnet"))
                elif role in self.serial_roles:
                    server = PtyServer(emulator, role, self.faults)
                else:
                    server = InstrumentServer(emulator, role, self.faults,
                                              port=self._port_for(role, model),
                                              host=self.host)
                server.start()
                self._servers[role] = server
                served[id(emulator)] = server
        except OSError as exc:
            self.stop()
            raise ConfigError(f"virtual lab: cannot listen on 127.0.0.1 ({exc}); "
                              "use ephemeral ports or stop the other lab") from None
        self._started = True
        return self

    def stop(self) -> None:
        """Close every port and client connection; idempotent."""
        servers = list({id(s): s for s in self._servers.values()}.values())
        for server in servers:
            server.stop(wait=False)
        for server in servers:
            server.join()
        self._servers.clear()
        self._started = False

    def __enter__(self) -> VirtualLab:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ endpoints
    @property
    def endpoints(self) -> dict[str, Endpoint]:
        """role -> :class:`Endpoint` (ports are known once started)."""
        out = {}
        for role, server in self._servers.items():
            model, read_term, write_term = self._models[role]
            if isinstance(server, PtyServer):
                out[role] = Endpoint(role, model, "", 0, server.resource, read_term,
                                     write_term)
                continue
            if model == "PPMS":  # a MultiPyVu server: host:port, not a VISA resource
                out[role] = Endpoint(role, model, self.host, server.port,
                                     f"{self.host}:{server.port}", read_term, write_term)
                continue
            out[role] = Endpoint(role, model, self.host, server.port,
                                 f"TCPIP::{self.host}::{server.port}::SOCKET", read_term,
                                 write_term)
        return out

    def serial_link(self, role: str) -> PtyServer:
        """The pseudo-terminal serving ``role`` (one of ``serial_roles``), to unplug it or
        put noise on it."""
        server = self._servers.get(role)
        if not isinstance(server, PtyServer):
            raise ConfigError(f"role {role!r} is not served over a serial link "
                              f"(serial_roles = {self.serial_roles!r})")
        return server

    def describe(self) -> list[str]:
        """One line per instrument: ``role model resource``."""
        return [e.line() for e in self.endpoints.values()]
