"""Quantum Design PPMS / DynaCool / VersaLab through MultiPyVu: temperature and field roles.

One MultiVu server takes one client at a time, so both roles share one :class:`PPMSLink`
(the station opens it once for the roles that name the same resource, ``host:port``). The
link wraps ``MultiPyVu.Client`` unchanged and makes it fit a station that must survive a lost
instrument:

* every call holds the link's lock and has a deadline: a server that stops answering gets its
  socket shut after ``timeout_s`` (MultiPyVu waits for a completed reply without limit);
* a reply whose status is not one of MultiVu's own words is an error, because the client
  reports a lost link as a value: ``get_temperature()`` returns ``(0.0, 'Close client')``;
* ``sys.exit(0)``, which the client calls when a write to the server fails, is turned into an
  :class:`InstrumentError` (a run must end in the safe state, not end the process);
* ``Client.open()`` reconfigures logging process-wide (``dictConfig`` with
  ``disable_existing_loggers``): the host's handlers and loggers are restored around it and
  MultiPyVu's own loggers are routed into the host's. (It still creates ``QdMultiVu.log`` in
  the current directory, as it always does.)

MultiPyVu is an optional dependency (``pip install daqapp[ppms]``), imported on connect.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

from daqapp.errors import InstrumentError, LimitError, check_range
from drivers.base import MagnetAdapter, RoleAdapter, SafeStep
from drivers.roles import HeaterStatus, MagnetState, Readback

log = logging.getLogger(__name__)

DEFAULT_PORT = 27183
OE_PER_T = 1e4
#: MultiPyVu's own bounds on a temperature rate (CommandTemperature.prepare_query).
RATE_K_PER_MIN = (0.01, 20.0)
TEMPERATURE_APPROACHES = ("fast_settle", "no_overshoot")
FIELD_APPROACHES = ("linear", "no_overshoot", "oscillate")
FIELD_MODES = ("driven", "persistent")
#: MultiVu's status words (CommandTemperature/CommandField/CommandChamber STATE_DICTs).
TEMPERATURE_STATUS = ("Stable", "Tracking", "Near", "Chasing", "Pot Operation", "Standby",
                      "Diagnostic", "Impedance Control Error", "General Failure")
TEMPERATURE_MOVING = ("Tracking", "Near", "Chasing", "Pot Operation")
TEMPERATURE_FAILED = ("Diagnostic", "Impedance Control Error", "General Failure")
FIELD_STATE = {
    "Stable": MagnetState.HOLDING, "Holding (driven)": MagnetState.HOLDING,
    "Switch Warming": MagnetState.HEATING_SWITCH, "Switch Cooling": MagnetState.COOLING_SWITCH,
    "Iterate": MagnetState.RAMPING, "Ramping": MagnetState.RAMPING,
    "Resetting": MagnetState.RAMPING, "Quenching": MagnetState.QUENCH,
    "Unknown": MagnetState.FAULT, "Current Error": MagnetState.FAULT,
    "Switch Error": MagnetState.FAULT, "Charging Error": MagnetState.FAULT,
    "PSU Error": MagnetState.FAULT, "General Failure": MagnetState.FAULT,
}
CHAMBER_STATUS = ("Unknown", "Purged and Sealed", "Vented and Sealed",
                  "Sealed (condition unknown)", "Performing Purge/Seal",
                  "Performing Vent/Seal", "Pre-HiVac", "HiVac", "Pumping Continuously",
                  "Flooding Continuously", "HiVac Error", "General Failure")
CHAMBER_MODES = ("seal", "purge_seal", "vent_seal", "pump_continuous", "vent_continuous",
                 "high_vacuum")
MULTIPYVU_LOGGERS = ("MultiVuClient", "MultiVuServer", "UnitTest")  # its logging_config.yaml


def parse_resource(resource: str) -> tuple[str, int]:
    """``host[:port]`` of a MultiPyVu server (default port 27183)."""
    host, sep, port = resource.strip().rpartition(":")
    if not sep:
        host, port = resource.strip(), str(DEFAULT_PORT)
    try:
        number = int(port)
    except ValueError:
        raise InstrumentError(f"PPMS resource {resource!r}: expected host:port, e.g. "
                              "'127.0.0.1:27183'") from None
    if not host or not 0 < number < 65536:
        raise InstrumentError(f"PPMS resource {resource!r}: expected host:port, e.g. "
                              "'127.0.0.1:27183'")
    return host, number


@contextlib.contextmanager
def keep_host_logging() -> Iterator[None]:
    """Undo what MultiPyVu's ``setup_logging`` does to the process's logging.

    Its console handler is bound to ``sys.stdout`` when it is configured: stdout is
    redirected meanwhile, so what it prints is logged at DEBUG instead of mixed into the
    command's own output."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    manager = logging.Logger.manager
    disabled = {name: lg.disabled for name, lg in manager.loggerDict.items()
                if isinstance(lg, logging.Logger)}
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            yield
    finally:
        for line in printed.getvalue().splitlines():
            log.debug("MultiPyVu: %s", line)
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)
        for name, lg in manager.loggerDict.items():
            if isinstance(lg, logging.Logger):
                lg.disabled = disabled.get(name, False)
        for name in MULTIPYVU_LOGGERS:
            lg = logging.getLogger(name)
            for handler in list(lg.handlers):
                lg.removeHandler(handler)
                handler.close()
            lg.propagate = True
            lg.setLevel(logging.WARNING)     # its connect/close chatter stays out of logs


class PPMSLink:
    """One MultiPyVu client connection, shared by the roles of one instrument."""

    def __init__(self, resource: str, timeout_s: float = 5.0) -> None:
        try:
            import MultiPyVu
        except ImportError:
            raise InstrumentError("the PPMS driver needs MultiPyVu: pip install "
                                  "'daqapp[ppms]'") from None
        self.resource = resource
        self.timeout_s = float(timeout_s)
        self.lock = threading.RLock()
        self.closed = False          # no further calls (closed, or the link failed)
        self._released = False       # close() has run
        host, port = parse_resource(resource)
        self.client = MultiPyVu.Client(host=host, port=port)
        with keep_host_logging():
            try:
                self._guarded(self.client.open, "connect")
            except InstrumentError:
                self.close()
                raise
        self._no_delay()
        self.flavor = str(self.client.instrument_name)
        self.server_version = str(self.client.get_version())
        self.multivu_version = str(self.client.get_multivu_version())

    # the link stands where the other roles keep a pymeasure driver
    @property
    def adapter(self) -> PPMSLink:
        return self

    def close(self) -> None:
        """Close the client (never raises; the second call does nothing). A healthy link says
        CLOSE to the server; a failed one only has its socket shut."""
        with self.lock:
            if self._released:
                return
            self._released = True
            failed, self.closed = self.closed, True
            try:
                if failed:
                    self._abort()
                    sock = getattr(getattr(self.client, "_message", None), "sock", None)
                    if sock is not None:
                        sock.close()
                else:
                    with keep_host_logging():
                        self.client.close_client()
            except BaseException:  # noqa: BLE001 - sys.exit included: closing must not raise
                pass

    def _no_delay(self) -> None:
        """Send each message at once: with Nagle's algorithm a request written right after the
        previous reply's acknowledgement waits for the server's delayed ACK (~40 ms a call,
        as ``drivers.base.disable_nagle`` explains for the VISA links)."""
        sock = getattr(getattr(self.client, "_message", None), "sock", None)
        if sock is not None:
            import socket

            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _abort(self) -> None:
        """Shut the socket under a call that waits past its deadline."""
        message = getattr(self.client, "_message", None)
        sock = getattr(message, "sock", None)
        if sock is not None:
            try:
                import socket

                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _guarded(self, call: Callable[..., Any], what: str, *args: Any) -> Any:
        if self.closed:
            raise InstrumentError(f"PPMS at {self.resource}: the link is closed ({what})")
        timer = threading.Timer(self.timeout_s, self._abort)
        timer.daemon = True
        timer.start()
        try:
            return call(*args)
        except SystemExit:
            self.closed = True
            raise InstrumentError(f"PPMS at {self.resource}: the link failed during {what} "
                                  "(MultiPyVu gave up on the socket)") from None
        except InstrumentError:
            raise
        except Exception as exc:  # MultiPyVu raises socket, value and its own errors
            raise InstrumentError(f"PPMS at {self.resource}: {what}: "
                                  f"{type(exc).__name__}: {exc}") from exc
        finally:
            timer.cancel()

    def call(self, what: str, name: str, *args: Any) -> Any:
        """``client.<name>(*args)`` under the lock and deadline."""
        with self.lock:
            return self._guarded(getattr(self.client, name), what, *args)

    def reading(self, what: str, name: str, allowed: tuple[str, ...]) -> tuple[float, str]:
        """A (value, status) query whose status must be one of MultiVu's words."""
        value, status = self.call(what, name)
        if status not in allowed:
            with self.lock:
                self.closed = True   # the client reports a dead link as a status
            raise InstrumentError(f"PPMS at {self.resource}: {what}: no valid reply "
                                  f"({status!r})")
        return float(value), str(status)

    def identify(self) -> str:
        return (f"Quantum Design {self.flavor} via MultiPyVu {self.server_version} at "
                f"{self.resource}" + (f" (MultiVu {self.multivu_version})"
                                      if self.multivu_version else ""))

    def set_timeout(self, seconds: float) -> None:
        self.timeout_s = float(seconds)

    @classmethod
    def enums(cls) -> Any:
        import MultiPyVu

        return MultiPyVu.Client


def _other_role_options(options: dict[str, Any], role: str) -> None:
    """The PPMS driver's options are split by role: say where a misplaced one belongs."""
    belongs = {"magnet": ("field_approach", "field_mode"),
               "temperature": ("temperature_approach", "step_rate_k_per_min")}[role]
    for key in options:
        if key in belongs:
            raise LimitError(f"PPMS option {key} belongs in the [{role}] table")
        raise TypeError(f"unexpected PPMS option {key!r}")


class _PPMSRole:
    """What both PPMS roles share: the link, its identity, and closing it once."""

    instrument: PPMSLink

    @classmethod
    def open(cls, resource: str, *, options: dict[str, Any] | None = None,
             **visa: Any) -> RoleAdapter:
        timeout_ms = visa.get("timeout")
        link = PPMSLink(resource, timeout_s=timeout_ms / 1000.0 if timeout_ms else 5.0)
        try:
            return cls(link, resource=resource, **dict(options or {}))
        except Exception:
            link.close()
            raise

    def identify(self) -> str:
        return self.instrument.identify()

    def close(self) -> None:
        self.instrument.close()

    @contextlib.contextmanager
    def io_timeout(self, seconds: float) -> Iterator[None]:
        link = self.instrument
        old = link.timeout_s
        link.set_timeout(min(old, seconds * 4))   # one MultiPyVu round trip is slower
        try:
            yield
        finally:
            link.set_timeout(old)

    def chamber(self) -> str:
        """The sample chamber's state, in MultiVu's words."""
        return str(self.instrument.call("chamber query", "get_chamber"))

    def set_chamber(self, mode: str) -> None:
        if mode not in CHAMBER_MODES:
            raise LimitError(f"chamber mode = {mode!r}; allowed {', '.join(CHAMBER_MODES)}")
        enums = PPMSLink.enums()
        self.instrument.call("chamber set", "set_chamber", getattr(enums.chamber.mode, mode))


class PPMSTemperature(_PPMSRole, RoleAdapter):
    """The temperature role: MultiVu's set point, rate and approach (no heater ranges: the
    PPMS runs its own heaters; the role reports range 1, 'under MultiVu control')."""

    driver_class = PPMSLink

    def __init__(self, instrument: PPMSLink, resource: str = "",
                 temperature_approach: str = "fast_settle", step_rate_k_per_min: float = 10.0,
                 temperature_min_k: float = 1.8, temperature_max_k: float = 400.0,
                 heater_ranges_allowed: tuple[int, ...] = (1,),
                 safe_setpoint_k: float | None = None, safe_heater_range: int = 0,
                 **magnet_options: Any) -> None:
        super().__init__(instrument, resource)
        _other_role_options(magnet_options, "magnet")
        if temperature_approach not in TEMPERATURE_APPROACHES:
            raise LimitError(f"temperature_approach = {temperature_approach!r}; allowed "
                             f"{', '.join(TEMPERATURE_APPROACHES)}")
        check_range("step_rate_k_per_min", step_rate_k_per_min, *RATE_K_PER_MIN, "K/min")
        self.approach = temperature_approach
        self.step_rate = float(step_rate_k_per_min)
        self.temperature_min_k = float(temperature_min_k)
        self.temperature_max_k = float(temperature_max_k)
        self.heater_ranges_allowed = tuple(int(r) for r in heater_ranges_allowed)
        self.safe_setpoint_k = safe_setpoint_k
        self.safe_heater_range = int(safe_heater_range)

    def _reading(self) -> tuple[float, str]:
        value, status = self.instrument.reading("temperature query", "get_temperature",
                                                TEMPERATURE_STATUS)
        if status in TEMPERATURE_FAILED:
            raise InstrumentError(f"PPMS temperature system reports {status!r}")
        return value, status

    def temperature(self) -> float:
        return self._reading()[0]

    def setpoints(self) -> tuple[float, float, str]:
        """(set point K, rate K/min, approach) as MultiVu holds them."""
        t, rate, approach = self.instrument.call("set-point query",
                                                 "get_temperature_setpoints")
        if not isinstance(approach, str) or approach not in TEMPERATURE_APPROACHES:
            raise InstrumentError(f"PPMS set-point query: no valid reply ({approach!r})")
        return float(t), float(rate), approach

    def setpoint(self) -> float:
        return self.setpoints()[0]

    def set_setpoint(self, kelvin: float, ramp_k_per_min: float | None = None) -> None:
        check_range("temperature setpoint", kelvin, self.temperature_min_k,
                    self.temperature_max_k, "K")
        rate = float(ramp_k_per_min) if ramp_k_per_min else self.step_rate
        check_range("temperature ramp rate", rate, *RATE_K_PER_MIN, "K/min")
        mode = getattr(PPMSLink.enums().temperature.approach_mode, self.approach)
        self.instrument.call("temperature set", "set_temperature", float(kelvin), rate, mode)

    def status(self) -> str:
        """MultiVu's word for the temperature (Stable, Tracking, Near, Chasing, ...)."""
        return self._reading()[1]

    def is_ramping(self) -> bool:
        return self.status() in TEMPERATURE_MOVING

    def heater_output(self) -> float:
        """MultiVu does not report the heater output: NaN (never saturated, never boosted)."""
        return math.nan

    def heater_range(self) -> int:
        return 1

    def set_heater_range(self, index: int) -> None:
        """Nothing to switch: any allowed range above 0 is 'under MultiVu control'."""
        if int(index) == 0 or int(index) not in self.heater_ranges_allowed:
            raise LimitError(f"heater range = {index!r}; the PPMS has no heater ranges (its "
                             "heaters are MultiVu's, never off): give a range above 0 the "
                             "station allows")

    def heater_status(self) -> HeaterStatus:
        self._reading()   # a failed temperature system raises
        return HeaterStatus.OK

    def is_stable(self, target_k: float, band_k: float) -> bool:
        value, status = self._reading()
        return abs(value - target_k) <= band_k

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            value, status = self._reading()
            setpoint, rate, approach = self.setpoints()
            return {"flavor": self.instrument.flavor, "temperature_k": value,
                    "status": status, "setpoint_k": setpoint, "rate_k_per_min": rate,
                    "approach": approach, "chamber": self.chamber()}

    def state_line(self) -> str:
        with self.lock:
            value, status = self._reading()
            return f"T {value:.4f} K ({status}), setpoint {self.setpoint():.3f} K"

    def safe_state_steps(self) -> list[SafeStep]:
        """The safe set point (MultiVu keeps controlling: there is no heater off)."""
        if self.safe_setpoint_k is None:
            return []
        safe_k = self.safe_setpoint_k
        return [(f"setpoint {safe_k:g} K", lambda: self.set_setpoint(safe_k))]

    def verify_safe_state(self) -> Readback:
        safe_k = self.safe_setpoint_k
        if safe_k is None:
            check = Readback("MultiVu in control, no safe set point given")
            check.query("temperature_k", "temperature", self.temperature)
            return check
        check = Readback(f"setpoint {safe_k:g} K (MultiVu in control)")
        setpoint = check.query("setpoint_k", "setpoint", self.setpoint)
        if setpoint is not None:
            check.expect(abs(setpoint - safe_k) <= 1e-3 * max(1.0, safe_k),
                         f"setpoint reads {setpoint:g} K, not {safe_k:g} K")
        return check


class PPMSMagnet(_PPMSRole, MagnetAdapter):
    """The field role: MultiVu's set point (Oe), rate (Oe/s), approach and driven mode.

    MultiVu has no pause: holding the field is setting the target to the present field.
    """

    driver_class = PPMSLink

    def __init__(self, instrument: PPMSLink, resource: str = "", field_approach: str = "linear",
                 field_mode: str = "driven", max_field_t: float = 9.0,
                 max_ramp_t_per_min: float = 0.5, safe_action: str = "hold",
                 **temperature_options: Any) -> None:
        super().__init__(instrument, resource, max_field_t, max_ramp_t_per_min, safe_action)
        _other_role_options(temperature_options, "temperature")
        if field_approach not in FIELD_APPROACHES:
            raise LimitError(f"field_approach = {field_approach!r}; allowed "
                             f"{', '.join(FIELD_APPROACHES)}")
        if field_mode not in FIELD_MODES:
            raise LimitError(f"field_mode = {field_mode!r}; allowed {', '.join(FIELD_MODES)}")
        if field_mode == "persistent" and instrument.flavor != "PPMS":
            raise LimitError(f"field_mode = 'persistent': a {instrument.flavor} drives its "
                             "magnet only (persistent mode is the PPMS's)")
        self.approach = field_approach
        self.mode = field_mode
        self._rate_t_per_min = min(0.1, self.max_ramp_t_per_min)

    def _reading(self) -> tuple[float, str]:
        return self.instrument.reading("field query", "get_field", tuple(FIELD_STATE))

    def field(self) -> float:
        return self._reading()[0] / OE_PER_T

    def setpoints(self) -> tuple[float, float, str, str]:
        """(target T, rate T/min, approach, driven mode)."""
        oe, rate, approach, driven = self.instrument.call("field set-point query",
                                                          "get_field_setpoints")
        if approach not in FIELD_APPROACHES or driven not in FIELD_MODES:
            raise InstrumentError(f"PPMS field set-point query: no valid reply "
                                  f"({approach!r}, {driven!r})")
        return float(oe) / OE_PER_T, float(rate) * 60.0 / OE_PER_T, approach, driven

    def target_field(self) -> float:
        return self.setpoints()[0]

    def _set_field(self, tesla: float, rate_t_per_min: float, approach: str) -> None:
        enums = PPMSLink.enums().field
        self.instrument.call("field set", "set_field", tesla * OE_PER_T,
                             rate_t_per_min * OE_PER_T / 60.0,
                             getattr(enums.approach_mode, approach),
                             getattr(enums.driven_mode, self.mode))

    def ramp_to(self, tesla: float, rate_t_per_min: float) -> None:
        self.check_ramp(tesla, rate_t_per_min)
        with self.lock:
            self._set_field(tesla, rate_t_per_min, self.approach)
            self._rate_t_per_min = rate_t_per_min

    def pause(self) -> None:
        """Hold where the field is now (a linear set to the present field)."""
        with self.lock:
            here = self.field()
            self._set_field(here, self._rate_t_per_min, "linear")

    def ramp_to_zero(self) -> None:
        self._set_field(0.0, self._rate_t_per_min, "linear")

    def state(self) -> MagnetState:
        with self.lock:
            oe, status = self._reading()
            state = FIELD_STATE[status]
            if state is MagnetState.HOLDING and abs(oe) < 1.0:
                return MagnetState.AT_ZERO
            if state is MagnetState.RAMPING and abs(self.target_field()) < 1e-4:
                return MagnetState.ZEROING
            return state

    def is_holding(self) -> bool:
        return self.state() in (MagnetState.HOLDING, MagnetState.AT_ZERO)

    def is_quenched(self) -> bool:
        return self._reading()[1] == "Quenching"

    def persistent_switch_heated(self) -> bool | None:
        if self.instrument.flavor != "PPMS":
            return None             # DynaCool and VersaLab have no persistent switch
        status = self._reading()[1]
        return status not in ("Stable", "Switch Cooling")

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            oe, status = self._reading()
            target, rate, approach, driven = self.setpoints()
            return {"flavor": self.instrument.flavor, "field_t": oe / OE_PER_T,
                    "status": status, "target_field_t": target, "rate_t_per_min": rate,
                    "approach": approach, "mode": driven, "limits": self.limits_snapshot()}
