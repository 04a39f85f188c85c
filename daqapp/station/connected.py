"""A connected station: one role adapter per role, a snapshot for run files, and the safe state.

Opening order matters only for the 2182A reached through the 6221 (it needs the 6221's
connection), so the current source is opened before the nanovoltmeter. With
``[simulation] simulated = true`` the in-process virtual lab is started first and every role
is pointed at its loopback endpoint; nothing else differs from a real station.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import logging
from dataclasses import replace
from typing import Any

from daqapp.errors import ConfigError, InstrumentError
from daqapp.station.config import (
    MAGNET_MODELS,
    TEMPERATURE_MODELS,
    RoleConfig,
    Station,
)
from drivers.base import RoleAdapter, visa_kwargs
from drivers.registry import DRIVERS, ROLES

log = logging.getLogger(__name__)

OPEN_ORDER = ("current_source", "lockin", "nanovoltmeter", "temperature", "magnet")
# Safe-state order: stop driving the sample first, then the slow systems.
SAFE_ORDER = ("current_source", "lockin", "magnet", "temperature", "nanovoltmeter")


def role_kwargs(station: Station, cfg: RoleConfig) -> dict[str, Any]:
    """Constructor arguments of a role adapter: its options plus the station's limits."""
    kwargs = dict(cfg.options)
    limits, safe = station.limits, station.safe_state
    if cfg.role == "current_source":
        kwargs.update(max_current_a=limits.max_current_a, max_compliance_v=limits.compliance_v)
    elif cfg.role == "temperature":
        kwargs.update(temperature_min_k=limits.temperature_min_k,
                      temperature_max_k=limits.temperature_max_k,
                      heater_ranges_allowed=limits.heater_ranges_allowed,
                      safe_setpoint_k=safe.heater_setpoint_k, safe_heater_range=safe.heater_range)
    elif cfg.role == "magnet":
        kwargs.update(max_field_t=limits.max_field_t,
                      max_ramp_t_per_min=limits.max_field_ramp_t_per_min,
                      safe_action=safe.magnet)
    return kwargs


def open_role(station: Station, cfg: RoleConfig,
              opened: dict[str, RoleAdapter]) -> RoleAdapter:
    """Connect one role and ask its identity; ``opened`` holds roles already open.

    The identity query proves the link works: pyvisa-py may "open" a socket nobody listens
    on without complaint, and a station that connects but cannot talk is worse than an error.
    """
    spec = DRIVERS[cfg.driver]
    kwargs = role_kwargs(station, cfg)
    where = f"{cfg.role} ({cfg.driver} at {cfg.resource or 'via ' + str(spec.via_role)})"
    if spec.via_role is not None:
        host = opened.get(spec.via_role)
        if host is None:
            raise InstrumentError(f"{where}: the {spec.via_role} role it talks through is not "
                                  "connected")
        try:
            adapter = spec.adapter(host.instrument, resource=f"via {host.resource}", **kwargs)
        except Exception as exc:
            raise InstrumentError(f"{where}: {type(exc).__name__}: {exc}") from exc
    else:
        visa = visa_kwargs(
            cfg.read_termination if cfg.read_termination is not None else spec.read_termination,
            cfg.write_termination if cfg.write_termination is not None
            else spec.write_termination,
            cfg.timeout_s if cfg.timeout_s is not None else spec.timeout_s,
            cfg.baud_rate,
        )
        try:
            adapter = spec.adapter.open(cfg.resource, options=kwargs, **visa)
        except Exception as exc:
            raise InstrumentError(f"{where}: {exc}") from exc
    try:
        adapter.idn = adapter.identify()
    except Exception as exc:
        adapter.close()
        raise InstrumentError(f"{where}: no identification reply: {type(exc).__name__}: "
                              f"{exc}") from exc
    return adapter


class ConnectedStation:
    """Role adapters of a station (``None`` for a role the station does not have)."""

    def __init__(self, station: Station, strict: bool = True) -> None:
        self.station = station
        self.wiring = station.wiring
        self.limits = station.limits
        self.lab: Any = None
        self.roles: dict[str, RoleAdapter] = {}
        self.failures: dict[str, str] = {}
        self.resolved = station
        # Station lock hook: daqapp.station.lock.connect_for_driving sets this; close()
        # releases it last, after every link is closed.
        self.lock: Any = None
        try:
            if station.simulation.simulated:
                self.resolved = self._start_lab(station)
            for role in OPEN_ORDER:
                cfg = self.resolved.roles.get(role)
                if cfg is None:
                    continue
                try:
                    self.roles[role] = open_role(self.resolved, cfg, self.roles)
                except InstrumentError as exc:
                    if strict:
                        raise
                    self.failures[role] = str(exc)
        except BaseException:
            self.close()
            raise

    # Role attributes the procedures, GUI and campaigns use.
    @property
    def lockin(self) -> Any:
        return self.roles.get("lockin")

    @property
    def current_source(self) -> Any:
        return self.roles.get("current_source")

    @property
    def nanovoltmeter(self) -> Any:
        return self.roles.get("nanovoltmeter")

    @property
    def temperature(self) -> Any:
        return self.roles.get("temperature")

    @property
    def magnet(self) -> Any:
        return self.roles.get("magnet")

    def _start_lab(self, station: Station) -> Station:
        from simulators.lab import VirtualLab

        roles = station.roles
        temperature = roles.get("temperature")
        magnet = roles.get("magnet")
        lab_kwargs: dict[str, Any] = {}
        if temperature is not None:
            lab_kwargs["temperature_model"] = TEMPERATURE_MODELS.get(temperature.driver)
        if magnet is not None:
            lab_kwargs["magnet_model"] = MAGNET_MODELS.get(magnet.driver)
        # The emulated bench is wired as the station says (resistor, divider, AUX channels).
        accepted = inspect.signature(VirtualLab).parameters
        w = station.wiring
        wiring = {"bias_resistor_ohm": w.bias_resistor_ohm, "aux_bias_channel": w.bias_aux_channel,
                  "bias_divider": w.bias_divider, "dc_bias_source": w.dc_bias_source,
                  "dc_voltage_aux_channel": w.dc_voltage_aux_channel,
                  "dc_voltage_gain": w.dc_voltage_gain}
        lab_kwargs.update({k: v for k, v in wiring.items() if k in accepted})
        sim = station.simulation
        self.lab = VirtualLab(preset=sim.preset, speed=sim.speed, seed=sim.seed,
                              **{k: v for k, v in lab_kwargs.items() if v is not None})
        self.lab.start()
        endpoints = self.lab.endpoints
        resolved: dict[str, RoleConfig] = {}
        for role, cfg in roles.items():
            if DRIVERS[cfg.driver].via_role is not None:
                continue
            endpoint = endpoints.get(role)
            if endpoint is None and role == "nanovoltmeter" and "current_source" in endpoints:
                # The lab models the 2182A behind the 6221, as on the bench.
                resolved[role] = replace(cfg, driver="Keithley2182_via_6221", resource="",
                                         options={})
                continue
            if endpoint is None:
                raise ConfigError(f"{station.path}: [{role}]: the virtual lab serves no {role} "
                                  f"(it serves {', '.join(sorted(endpoints))})")
            resolved[role] = replace(cfg, resource=endpoint.resource,
                                     read_termination=endpoint.read_termination,
                                     write_termination=endpoint.write_termination)
        return station.with_roles(resolved)

    def snapshot(self) -> dict[str, Any]:
        """Every role's IDN, driver, resource and settings, JSON-serialisable, for run files.

        A role that cannot answer gets an ``error`` entry instead of failing the snapshot: the
        run file should still record what the other instruments were doing.
        """
        roles: dict[str, Any] = {}
        for role in ROLES:
            cfg = self.resolved.roles.get(role)
            if cfg is None:
                continue
            entry: dict[str, Any] = {"driver": cfg.driver, "resource": cfg.resource}
            adapter = self.roles.get(role)
            if adapter is None:
                entry["error"] = self.failures.get(role, "not connected")
            else:
                entry["resource"] = adapter.resource
                try:
                    entry["idn"] = adapter.identify()
                    entry["settings"] = adapter.snapshot()
                except Exception as exc:  # noqa: BLE001 - recorded, never fatal
                    entry["error"] = f"{type(exc).__name__}: {exc}"
            roles[role] = entry
        config = self.resolved.to_dict()
        return {
            "station": self.station.name,
            "path": self.station.path,
            "simulated": self.station.simulation.simulated,
            "taken_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "roles": roles,
            "wiring": config["wiring"],
            "limits": config["limits"],
            "safe_state": config["safe_state"],
            "simulation": config["simulation"],
        }

    def to_safe_state(self) -> list[str]:
        """Put every role in its safe state; never raises, returns the errors it met."""
        errors: list[str] = []
        for role in SAFE_ORDER:
            adapter = self.roles.get(role)
            if adapter is None:
                continue
            try:
                adapter.to_safe_state()
            except Exception as exc:  # noqa: BLE001 - one failing role must not stop the rest
                message = f"{role}: {type(exc).__name__}: {exc}"
                log.error("safe state: %s", message)
                errors.append(message)
        return errors

    def close(self) -> None:
        """Close every connection and stop the virtual lab; never raises."""
        for role in reversed(OPEN_ORDER):
            adapter = self.roles.pop(role, None)
            if adapter is not None:
                adapter.close()
        if self.lab is not None:
            try:
                self.lab.stop()
            except Exception as exc:  # noqa: BLE001
                log.warning("virtual lab did not stop cleanly: %s", exc)
            self.lab = None
        lock, self.lock = self.lock, None  # station lock hook (daqapp.station.lock)
        if lock is not None:
            lock.release()

    def __enter__(self) -> ConnectedStation:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Leaving on an exception applies the safe state first; a normal exit only closes."""
        if exc_type is not None:
            self.to_safe_state()
        self.close()
