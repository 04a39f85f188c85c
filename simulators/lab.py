"""The virtual lab: one clock, the sample/cryostat/magnet physics, and every instrument
emulator served on its own 127.0.0.1 port, with fault injection.

>>> with VirtualLab(preset="la3ni2o7-cell2", speed=100.0, seed=1) as lab:
...     print(lab.endpoints["lockin"].resource)      # doctest: +SKIP
TCPIP::127.0.0.1::40123::SOCKET
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
from simulators.server import InstrumentServer

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
}
TEMPERATURE_MODELS = ("ls336", "itc503")
MAGNET_MODELS = ("ami430", "ips120")


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
                 ports: str | dict | None = None, *, bias_resistor_ohm: float = 48e3,
                 current_source_circuit: str | None = None, aux_bias_channel: int = 1,
                 bias_divider: float = 1.0, dc_bias_source: str = "lockin_aux",
                 dc_voltage_aux_channel: int = 1, dc_voltage_gain: float = 1.0,
                 initial_temperature_K: float | None = None,
                 magnet_switch_installed: bool = True, conductance_model=None,
                 host: str = "127.0.0.1") -> None:
        if temperature_model not in TEMPERATURE_MODELS:
            raise ConfigError(f"temperature_model = {temperature_model!r} "
                              f"(allowed: {', '.join(TEMPERATURE_MODELS)})")
        if magnet_model not in MAGNET_MODELS:
            raise ConfigError(f"magnet_model = {magnet_model!r} "
                              f"(allowed: {', '.join(MAGNET_MODELS)})")
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
        self.preset = preset if isinstance(preset, SamplePreset) else load_preset(preset)
        self.speed = speed
        self.seed = seed
        self.host = host
        self.clock = SimClock(speed)
        self.rng = np.random.default_rng(seed)
        self.faults = FaultBoard()
        self.sample = SampleModel(self.preset, conductance_model=conductance_model)
        self.cryostat = Cryostat(self.clock, initial_K=initial_temperature_K or BATH_K)
        self.magnet = MagnetModel(self.clock, switch_installed=magnet_switch_installed)
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
        self._ports_spec = ports
        self._servers: dict[str, InstrumentServer] = {}
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
        self.emulators["lockin"] = SR830Emulator(bench, self.clock, self.faults)
        self._models["lockin"] = ("SR830", "\n", "\n")

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
        self.emulators["current_source"] = Keithley6221Emulator(bench, self.clock, self.faults,
                                                                linked)
        self.linked_nanovoltmeter = linked
        self._models["current_source"] = ("6221", "\n", "\n")
        self.emulators["nanovoltmeter"] = Keithley2182Emulator(self.clock, junction_source,
                                                               self._noise)
        self._models["nanovoltmeter"] = ("2182A", "\n", "\n")
        if self.temperature_model == "ls336":
            self.emulators["temperature"] = LakeShore336Emulator(self.cryostat, self.clock,
                                                                 self.faults, self._noise)
            self._models["temperature"] = ("LS336", "\r\n", "\n")
        else:
            from simulators.instruments.oxford import ITC503Emulator

            self.emulators["temperature"] = ITC503Emulator(self.cryostat, self.clock,
                                                           self.faults, self._noise)
            self._models["temperature"] = ("ITC503", "\r", "\r")
        if self.magnet_model == "ami430":
            self.emulators["magnet"] = AMI430Emulator(self.magnet, self.faults)
            self._models["magnet"] = ("AMI430", "\r\n", "\r\n")
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
            for role, emulator in self.emulators.items():
                model = self._models[role][0]
                server = InstrumentServer(emulator, role, self.faults,
                                          port=self._port_for(role, model), host=self.host)
                server.start()
                self._servers[role] = server
        except OSError as exc:
            self.stop()
            raise ConfigError(f"virtual lab: cannot listen on 127.0.0.1 ({exc}); "
                              "use ephemeral ports or stop the other lab") from None
        self._started = True
        return self

    def stop(self) -> None:
        """Close every port and client connection; idempotent."""
        servers = list(self._servers.values())
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
            out[role] = Endpoint(role, model, self.host, server.port,
                                 f"TCPIP::{self.host}::{server.port}::SOCKET", read_term,
                                 write_term)
        return out

    def describe(self) -> list[str]:
        """One line per instrument: ``role model resource``."""
        return [e.line() for e in self.endpoints.values()]
