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
import threading
import time
from collections.abc import Collection
from dataclasses import replace
from typing import Any

from daqapp.errors import ConfigError, InstrumentError
from daqapp.station.config import (
    CURRENT_SOURCE_MODELS,
    LOCKIN_MODELS,
    MAGNET_MODELS,
    TEMPERATURE_MODELS,
    RoleConfig,
    Station,
)
from drivers.base import RoleAdapter, visa_kwargs
from drivers.registry import DRIVERS, ROLES
from drivers.roles import Readback, RoleVerdict, SafeStateReport

log = logging.getLogger(__name__)

OPEN_ORDER = ("current_source", "lockin", "nanovoltmeter", "temperature", "magnet")
# Safe-state order, by harm: the current through the sample first, then the lock-in's
# excitation and AUX (DC bias) outputs, the heater, the magnet, and what sources nothing.
SAFE_ORDER = ("current_source", "lockin", "temperature", "magnet", "nanovoltmeter")
#: VISA timeout (s) of every message of the safe state: a dead link costs this, not 5 s.
#: Real instruments answer in milliseconds (the ITC503 at 9600 baud in ~20 ms).
SAFE_IO_TIMEOUT_S = 0.5
#: Longest one role's safe state may take (writes, read-back, one reconnect and a retry);
#: a role still busy then (a hung instrument, a link held elsewhere) is reported unconfirmed
#: and the next role goes on.
SAFE_ROLE_DEADLINE_S = 10.0


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


def shares_link(station: Station, role: str, other: str) -> bool:
    """True when ``role`` and ``other`` are one instrument: the same multi-role driver (a
    PPMS serving temperature and field) at the same resource, so they use one link."""
    a, b = station.roles.get(role), station.roles.get(other)
    return (a is not None and b is not None and role != other and a.driver == b.driver
            and a.resource == b.resource and len(DRIVERS[a.driver].roles) > 1)


def open_role(station: Station, cfg: RoleConfig,
              opened: dict[str, RoleAdapter], timeout_s: float | None = None) -> RoleAdapter:
    """Connect one role and ask its identity; ``opened`` holds roles already open.

    ``timeout_s`` caps the VISA timeout while connecting (the safe state's reconnect); the
    connection keeps the station's own timeout afterwards.
    The identity query proves the link works: pyvisa-py may "open" a socket nobody listens
    on without complaint, and a station that connects but cannot talk is worse than an error.
    """
    spec = DRIVERS[cfg.driver]
    adapter_class = spec.adapter_for(cfg.role)
    kwargs = role_kwargs(station, cfg)
    where = f"{cfg.role} ({cfg.driver} at {cfg.resource or 'via ' + str(spec.via_role)})"
    peer = next((opened[r] for r in opened if shares_link(station, cfg.role, r)), None)
    if peer is not None:  # the same instrument already open for another role
        try:
            adapter = adapter_class(peer.instrument, resource=peer.resource, **kwargs)
        except Exception as exc:
            raise InstrumentError(f"{where}: {type(exc).__name__}: {exc}") from exc
    elif spec.via_role is not None:
        host = opened.get(spec.via_role)
        if host is None:
            raise InstrumentError(f"{where}: the {spec.via_role} role it talks through is not "
                                  "connected")
        try:
            adapter = adapter_class(host.instrument, resource=f"via {host.resource}", **kwargs)
        except Exception as exc:
            raise InstrumentError(f"{where}: {type(exc).__name__}: {exc}") from exc
    else:
        timeout = cfg.timeout_s if cfg.timeout_s is not None else spec.timeout_s
        visa = visa_kwargs(
            cfg.read_termination if cfg.read_termination is not None else spec.read_termination,
            cfg.write_termination if cfg.write_termination is not None
            else spec.write_termination,
            min(timeout, timeout_s) if timeout_s is not None else timeout,
            cfg.baud_rate,
        )
        try:
            adapter = adapter_class.open(cfg.resource, options=kwargs, **visa)
        except Exception as exc:
            raise InstrumentError(f"{where}: {exc}") from exc
    try:
        adapter.idn = adapter.identify()
    except Exception as exc:
        adapter.close()
        raise InstrumentError(f"{where}: no identification reply: {type(exc).__name__}: "
                              f"{exc}") from exc
    if timeout_s is not None and spec.via_role is None and peer is None:
        connection = getattr(adapter.instrument.adapter, "connection", None)
        if connection is not None:
            connection.timeout = int(round(timeout * 1000))
    return adapter


def roles_to_open(station: Station, roles: Collection[str] | None) -> set[str]:
    """The station's roles a job needs: ``roles`` (None: every role) and the roles their
    drivers talk through (a 2182A read via the 6221's serial port needs the 6221 open).

    Only these must open: an instrument the job does not use (a lock-in on a GPIB bus this
    computer cannot reach) does not stop it. The others are still opened when they answer,
    so the job's safe state covers them too (an R–T run leaves no lock-in sine on the
    sample)."""
    if roles is None:
        return set(station.roles)
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ConfigError(f"roles {unknown}: unknown; allowed: {', '.join(ROLES)}")
    wanted = {r for r in roles if r in station.roles}
    pending = list(wanted)
    while pending:
        cfg = station.roles[pending.pop()]
        via = getattr(DRIVERS.get(cfg.driver), "via_role", None)
        if via is not None and via in station.roles and via not in wanted:
            wanted.add(via)
            pending.append(via)
    return wanted


class ConnectedStation:
    """Role adapters of a station (``None`` for a role the station does not have)."""

    def __init__(self, station: Station, strict: bool = True,
                 roles: Collection[str] | None = None) -> None:
        self.station = station
        self.wiring = station.wiring
        self.limits = station.limits
        self.lab: Any = None
        self.roles: dict[str, RoleAdapter] = {}
        self.failures: dict[str, str] = {}
        self.unanswering: set[str] = set()
        """Roles the last safe state could not confirm: the end snapshot does not query them
        (each query would wait out a full timeout on a silent instrument)."""
        self.resolved = station
        # Station lock hook: daqapp.station.lock.connect_for_driving sets this; close()
        # releases it last, after every link is closed.
        self.lock: Any = None
        #: roles the job does not use and that could not be opened (why), never touched
        self.not_opened: dict[str, str] = {}
        try:
            if station.simulation.simulated:
                self.resolved = self._start_lab(station)
            needed = roles_to_open(self.resolved, roles)
            for role in OPEN_ORDER:
                cfg = self.resolved.roles.get(role)
                if cfg is None:
                    continue
                try:
                    self.roles[role] = open_role(self.resolved, cfg, self.roles)
                except InstrumentError as exc:
                    if role not in needed:  # a job's other instruments are opened to be put
                        self.not_opened[role] = str(exc)  # safe at its end, if they answer
                        log.info("%s not opened (not used by this job): %s", role, exc)
                        continue
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
        # The emulated bench is wired as the station says (resistor, divider, AUX channels),
        # with the lock-in and current source models the station names.
        accepted = inspect.signature(VirtualLab).parameters
        for role, key, models in (("lockin", "lockin_model", LOCKIN_MODELS),
                                  ("current_source", "current_source_model",
                                   CURRENT_SOURCE_MODELS)):
            if role in roles and key in accepted:
                lab_kwargs[key] = models.get(roles[role].driver)
        w = station.wiring
        wiring = {"bias_resistor_ohm": w.bias_resistor_ohm, "aux_bias_channel": w.bias_aux_channel,
                  "bias_divider": w.bias_divider, "dc_bias_source": w.dc_bias_source,
                  "dc_voltage_aux_channel": w.dc_voltage_aux_channel,
                  "dc_voltage_gain": w.dc_voltage_gain}
        lab_kwargs.update({k: v for k, v in wiring.items() if k in accepted})
        sim = station.simulation
        if sim.serial_roles:
            lab_kwargs["serial_roles"] = sim.serial_roles
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
            if role in self.not_opened:
                entry["not_opened"] = f"not used by this job: {self.not_opened[role]}"
            elif adapter is None:
                entry["error"] = self.failures.get(role, "not connected")
            else:
                entry["resource"] = adapter.resource
                if role in self.unanswering:  # it just timed out: do not wait again
                    entry["error"] = "not queried: no reply during the safe state"
                    roles[role] = entry
                    continue
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

    def to_safe_state(self) -> SafeStateReport:
        """Put every role in its safe state, read it back, and return the verdict per role.

        Never raises. Roles go in :data:`SAFE_ORDER`; within a role every write is sent even
        when an earlier one failed; a role whose link failed is reconnected once and its safe
        state sent again; each role is bounded by :data:`SAFE_ROLE_DEADLINE_S` so a hung
        instrument cannot hold up the others. Unconfirmed roles are logged as errors.
        """
        started = time.monotonic()
        report = SafeStateReport()
        for role in SAFE_ORDER:
            if role not in self.resolved.roles or role in self.not_opened:
                continue
            verdict = self._bounded_role_safe_state(role)
            report.verdicts.append(verdict)
            if verdict.confirmed:
                self.unanswering.discard(role)
                log.info("safe state: %s", verdict.line())
            else:
                self.unanswering.add(role)
                log.error("safe state: %s", verdict.line())
        report.duration_s = time.monotonic() - started
        return report

    def _bounded_role_safe_state(self, role: str) -> RoleVerdict:
        """One role's safe state in a helper thread, abandoned after the deadline."""
        box: list[RoleVerdict] = []

        def work() -> None:
            try:
                box.append(self._role_safe_state(role))
            except Exception as exc:  # noqa: BLE001 - a verdict, never an escape
                box.append(RoleVerdict(role, self._driver(role), False,
                                       problem=f"{type(exc).__name__}: {exc}"))

        worker = threading.Thread(target=work, name=f"safe-state-{role}", daemon=True)
        worker.start()
        worker.join(SAFE_ROLE_DEADLINE_S)
        if box:
            return box[0]
        return RoleVerdict(role, self._driver(role), False,
                           problem=f"no answer within {SAFE_ROLE_DEADLINE_S:g} s "
                                   "(instrument or its link hung)")

    def _driver(self, role: str) -> str:
        cfg = self.resolved.roles.get(role)
        return cfg.driver if cfg is not None else "?"

    def _role_safe_state(self, role: str) -> RoleVerdict:
        actions: list[str] = []
        failed: list[str] = []
        notes: list[str] = []
        adapter = self.roles.get(role)
        if adapter is None:  # never connected: one try now, it may be back
            adapter = self._reconnect(role, notes)
        if adapter is None:
            check = Readback("", unanswered=[f"not connected ({self.failures.get(role, '?')})"])
        else:
            actions, failed, check = self._apply_and_verify(adapter)
            if failed or check.unanswered:
                # a dropped or silent link: re-open it once and send everything again
                adapter = self._reconnect(role, notes)
                if adapter is not None:
                    again, failed, check = self._apply_and_verify(adapter)
                    actions += [f"{a} (after reconnect)" for a in again]
            elif check.wrong:
                again, failed, check = self._apply_and_verify(adapter)  # once more, same link
                actions += [f"{a} (again)" for a in again]
        confirmed = adapter is not None and not failed and check.ok
        problem = None
        if not confirmed:
            writes = ([f"{len(failed)} write(s) failed, first {failed[0]}"] if failed else [])
            problem = "; ".join(check.problems + writes + notes) or "not confirmed"
        return RoleVerdict(role, self._driver(role), confirmed, actions, dict(check.values),
                           problem, check.summary)

    @staticmethod
    def _apply_and_verify(adapter: RoleAdapter) -> tuple[list[str], list[str], Readback]:
        with adapter.io_timeout(SAFE_IO_TIMEOUT_S):
            done, failed = adapter.apply_safe_state()
            return done, failed, adapter.verify_safe_state()

    def _reconnect(self, role: str, notes: list[str]) -> RoleAdapter | None:
        """Re-open ``role`` with the station's VISA settings; None (and a note) if it fails.

        Whoever holds the role adapter keeps it: the new link is moved into it, and a role
        that talks through this one (the 2182A behind the 6221) follows it. A role reached
        through another is re-made on its host's current link.
        """
        cfg = self.resolved.roles[role]
        spec = DRIVERS[cfg.driver]
        old = self.roles.get(role)
        if old is not None and spec.via_role is None:
            old.close()
        peers = [r for r in self.roles if shares_link(self.resolved, role, r)]
        try:  # a fresh link of its own: the peers' link is the one that failed
            fresh = open_role(self.resolved, cfg,
                              {r: a for r, a in self.roles.items() if r not in peers},
                              timeout_s=SAFE_IO_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - the verdict says so
            notes.append(f"reconnect failed: {exc}")
            return None
        notes.append("reconnected")
        log.warning("safe state: %s reconnected to %s", role, fresh.resource)
        if old is None:
            self.roles[role] = fresh
            self.failures.pop(role, None)
            adapter = fresh
        else:
            old.instrument, old.idn = fresh.instrument, fresh.idn
            adapter = old
        for other, other_cfg in self.resolved.roles.items():
            if other in self.roles and (DRIVERS[other_cfg.driver].via_role == role
                                        or other in peers):
                self.roles[other].instrument = adapter.instrument
        return adapter

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
