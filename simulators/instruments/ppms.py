"""Quantum Design PPMS / DynaCool / VersaLab as a MultiPyVu server, on the lab's physics.

The wire protocol is MultiPyVu 3.x's (read from its ``SocketMessage*.py``): each message is a
2-byte big-endian length, a JSON header (``byteorder``, ``message-type`` ``text/json``,
``message-encoding``, ``message-length``) and a JSON body ``{id, action, query, result}``.
The server answers every request twice, first the request itself with ``message_type:
confirmed``, then the result with ``message_type: completed``, which the client acknowledges
with ``confirmed``. ``START`` returns the server's MultiPyVu version (the client refuses any
other than its own) and ``Connected to <FLAVOR> MultiVuServer``; one read/write client at a
time, as MultiVu allows. Results are MultiVu's: ``TEMP?`` → ``300.0,K,Stable``, a set →
``TEMP Command Received``, a refusal → ``MultiPyVuError: ...``.

So the unmodified MultiPyVu ``Client`` runs against it. Behind it: the cryostat (its own PID
on the stage heater: ``fast_settle`` runs the working set point straight to the target,
``no_overshoot`` slows to a tenth of the rate for the last 2 %), the magnet (Oe and Oe/s
over the lab's solenoid; ``linear``, ``no_overshoot`` (last 1 % at a tenth of the rate) and
``oscillate`` (past the target by 10 % of the step, then back by half as much each time);
``persistent`` on the PPMS: heat the switch, ramp, cool it, run the supply down), and the
sample chamber (purge/seal, vent/seal, pumping, flooding, high vacuum, with their durations).

It differs from a real MultiPyVu server in two ways, both because the lab owns its lifetime:
it listens on 127.0.0.1 only, and ``EXIT`` (``Client.close_server()``) closes the client but
keeps serving.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import struct
import sys
import threading
import time
from typing import Any

from simulators.clock import SimClock
from simulators.cryostat import Cryostat
from simulators.faults import FaultBoard
from simulators.magnet import MagnetModel
from simulators.server import LoopbackServer

log = logging.getLogger(__name__)

#: The MultiPyVu version the emulated server reports (the client checks it equals its own).
DEFAULT_PROTOCOL_VERSION = "3.8.0"
FLAVORS = ("PPMS", "DYNACOOL", "VERSALAB")
TEMPERATURE_STATES = {1: "Stable", 2: "Tracking", 5: "Near", 6: "Chasing",
                      15: "General Failure"}
FIELD_STATES = {1: "Stable", 2: "Switch Warming", 3: "Switch Cooling", 4: "Holding (driven)",
                5: "Iterate", 6: "Ramping", 11: "Quenching"}
CHAMBER_STATES = {1: "Purged and Sealed", 2: "Vented and Sealed",
                  3: "Sealed (condition unknown)", 4: "Performing Purge/Seal",
                  5: "Performing Vent/Seal", 6: "Pre-HiVac", 7: "HiVac",
                  8: "Pumping Continuously", 9: "Flooding Continuously"}
#: chamber mode -> (state while it runs, state when done, seconds it takes)
CHAMBER_MODES = {0: (3, 3, 0.0), 1: (4, 1, 120.0), 2: (5, 2, 60.0), 3: (8, 8, 0.0),
                 4: (9, 9, 0.0), 5: (6, 7, 300.0)}
OE_PER_T = 1e4
MAX_FIELD_OE = 9e4
MAX_RATE_OE_S = 200.0
STABLE_HOLD_S = 30.0
RECV_BYTES = 4096
MAX_MESSAGE_BYTES = 1 << 20


def installed_multipyvu_version() -> str:
    """The installed MultiPyVu's version, so its client accepts this server (else 3.8.0)."""
    try:
        from importlib.metadata import version

        return version("MultiPyVu")
    except Exception:  # noqa: BLE001 - not installed: the protocol this was written from
        return DEFAULT_PROTOCOL_VERSION


class _Refused(Exception):
    """Answered ``MultiPyVuError: <message>``."""


class PPMSEmulator:
    """The instrument: temperature, field and chamber on the lab's models."""

    role = "temperature"

    def __init__(self, cryostat: Cryostat, magnet: MagnetModel, clock: SimClock,
                 faults: FaultBoard, noise, flavor: str = "PPMS") -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"flavor = {flavor!r}; allowed {', '.join(FLAVORS)}")
        self.flavor = flavor
        self.cryostat, self.magnet, self.clock = cryostat, magnet, clock
        self.faults, self.noise = faults, noise
        self.lock = threading.RLock()
        # temperature
        self.t_target = round(cryostat.stage_temperature, 3)
        self.t_working = self.t_target
        self.t_rate = 10.0                         # K/min
        self.t_approach = 0                        # 0 fast_settle, 1 no_overshoot
        self.pb, self.ti = 5.0, 1.0                # K, min: the controller's own gains
        self.integral = 0.0
        self.prev_error: float | None = None
        self.loop_gain = 0.0
        self._in_band_since: float | None = None
        cryostat.controller = self
        # field
        self.h_target = 0.0                        # Oe
        self.h_rate = 100.0                        # Oe/s
        self.h_approach = 0
        self.h_driven = 1
        self._plan: list[float] = []               # Oe, the approach of the last set
        self._waypoints: list[float] = []          # Oe, the part of it still to run
        self._persistent_phase = ""                # heating, ramping, cooling, discharging
        # chamber
        self.chamber_state = 1
        self._chamber_done = (1, 0.0)

    # -------------------------------------------------------------- temperature loop
    def heater_power(self, sim_time: float, stage_K: float, sample_K: float,
                     dt: float) -> float:
        step = self.t_rate / 60.0 * dt
        diff = self.t_target - self.t_working
        if diff:
            if self.t_approach == 1 and abs(diff) < 0.02 * max(self.t_target, 1.0):
                step *= 0.1
            self.t_working = self.t_target if abs(diff) <= step else (
                self.t_working + math.copysign(step, diff))
        error = self.t_working - stage_K
        deriv = 0.0 if self.prev_error is None else (error - self.prev_error) / dt
        self.prev_error = error
        gain = 100.0 / self.pb
        ti = self.ti * 60.0
        pid = gain * (error + self.integral / ti) + 0.0 * deriv
        if (0 < pid < 100) or (pid >= 100 and error < 0) or (pid <= 0 and error > 0):
            self.integral += error * dt
        percent = min(100.0, max(0.0, pid))
        full_power = 40.0
        self.loop_gain = 2.0 * max(percent, 1.0) / 100.0 * full_power * gain / 100.0
        band = max(0.05, 0.002 * self.t_target)
        if self.t_working == self.t_target and abs(stage_K - self.t_target) <= band:
            if self._in_band_since is None:
                self._in_band_since = sim_time
        else:
            self._in_band_since = None
        if self.faults.is_active("temperature", "heater_open") or self.faults.is_active(
                "temperature", "heater_short"):
            return 0.0
        return (percent / 100.0) ** 2 * full_power

    def temperature_state(self) -> int:
        self.cryostat.advance()
        if (self.faults.is_active("temperature", "heater_open")
                or self.faults.is_active("temperature", "heater_short")):
            return 15
        if self.t_working != self.t_target:
            return 2
        since = self._in_band_since
        if since is not None and self.clock.now() - since >= STABLE_HOLD_S:
            return 1
        if abs(self.cryostat.stage_temperature - self.t_target) <= 0.02 * self.t_target + 0.5:
            return 5
        return 6

    # -------------------------------------------------------------- field
    def _advance_field(self) -> None:
        m = self.magnet
        m.advance()
        if m.quenched or m.mode not in ("holding", "at_zero", "paused"):
            return
        if self._persistent_phase == "heating" and m.switch == "on":
            self._persistent_phase = "ramping"
            self._next_waypoint()
        elif self._persistent_phase == "ramping" and not self._waypoints:
            m.set_switch_heater(False)
            self._persistent_phase = "cooling"
        elif self._persistent_phase == "cooling" and m.switch == "off":
            m.set_target(0.0)
            m.zero()
            self._persistent_phase = "discharging"
        elif self._persistent_phase == "discharging":
            self._persistent_phase = ""
        elif self._waypoints and self._persistent_phase in ("", "ramping"):
            self._next_waypoint()

    def _next_waypoint(self) -> None:
        oe = self._waypoints.pop(0)
        m = self.magnet
        rate = self.h_rate
        if self.h_approach == 1 and not self._waypoints and len(self._plan) > 1:
            rate *= 0.1                           # no overshoot: the last 1 % slowly
        m.set_rate(rate / OE_PER_T / m.coil_constant)
        m.set_target(oe / OE_PER_T / m.coil_constant)
        m.ramp()

    def field_oe(self) -> float:
        self._advance_field()
        return self.magnet.field * OE_PER_T

    def field_state(self) -> int:
        self._advance_field()
        m = self.magnet
        if m.quenched:
            return 11
        if m.switch == "heating":
            return 2
        if m.switch == "cooling":
            return 3
        if m.mode in ("ramping", "zeroing") or self._waypoints:
            return 5 if self.h_approach == 2 and self._waypoints else 6
        if self._persistent_phase:
            return 6
        if self.h_driven == 0 and m.switch == "off":
            return 1
        return 4

    def set_field(self, oe: float, rate: float, approach: int, driven: int) -> None:
        if abs(oe) > MAX_FIELD_OE:
            raise _Refused(f"field {oe:g} Oe is beyond the magnet's ±{MAX_FIELD_OE:g} Oe")
        if not 0 < rate <= MAX_RATE_OE_S:
            raise _Refused(f"rate {rate:g} Oe/s is outside 0 to {MAX_RATE_OE_S:g} Oe/s")
        m = self.magnet
        if m.quenched:
            if self.faults.is_active("magnet", "quench"):
                raise _Refused("the magnet is quenched")
            m.reset_quench()
        start = m.supply_field * OE_PER_T
        step = oe - start
        plan = [oe]
        if approach == 1 and abs(step) > 0:
            plan = [oe - 0.01 * step, oe]
        elif approach == 2 and abs(step) > 0:
            plan, amplitude = [], 0.1 * step
            while abs(amplitude) >= 1.0:
                plan.append(oe + amplitude)
                amplitude *= -0.5
            plan.append(oe)
        self.h_target, self.h_rate, self.h_approach, self.h_driven = oe, rate, approach, driven
        self._plan = list(plan)
        self._waypoints = list(plan)
        if driven == 0 and m.switch_installed:
            self._persistent_phase = "heating"
            m.set_switch_heater(True)
            if m.switch == "on":
                self._persistent_phase = "ramping"
                self._next_waypoint()
        else:
            self._persistent_phase = ""
            if m.switch_installed and m.switch in ("off", "cooling"):
                m.set_switch_heater(True)
            self._next_waypoint()

    # -------------------------------------------------------------- chamber
    def set_chamber(self, mode: int) -> None:
        running, done, duration = CHAMBER_MODES[mode]
        self.chamber_state = running
        self._chamber_done = (done, self.clock.now() + duration)

    def chamber(self) -> int:
        done, at = self._chamber_done
        if self.clock.now() >= at:
            self.chamber_state = done
        return self.chamber_state

    def stable(self, bitmask: int) -> bool:
        ok = True
        if bitmask & 1:
            ok &= self.temperature_state() not in (0, 2, 5, 6)
        if bitmask & 2:
            ok &= self.field_state() in (1, 4)
        if bitmask & 8:
            ok &= self.chamber() in (1, 2, 3, 7, 8, 9)
        return ok

    # -------------------------------------------------------------- the commands
    def command(self, action: str, query: str) -> str:
        """One MultiVu request; returns the result string (raises _Refused)."""
        with self.lock:
            if action == "TEMP?":
                t = self.cryostat.stage_temperature
                t += self.noise(5e-4 + 2e-5 * t)
                return f"{round(t, 4)},K,{TEMPERATURE_STATES[self.temperature_state()]}"
            if action == "TEMP_SETPOINTS?":
                return (f"({float(self.t_target)}, {float(self.t_rate)}, {self.t_approach}),"
                        "K,Call was successful")
            if action == "TEMP":
                t, rate, approach = self._args(query, 3, "Set Point (K), rate (K/min), "
                                               "approach")
                if t < 0:
                    raise _Refused(f"Error when setting the TEMP {query}: Temperature must "
                                   "be a positive number.")
                if int(approach) not in (0, 1):
                    raise _Refused(f"Error when setting the TEMP {query}: approach "
                                   f"{int(approach)} is out of bounds")
                self.cryostat.advance()
                self.t_target, self.t_rate, self.t_approach = t, rate, int(approach)
                self._in_band_since = None
                return "TEMP Command Received"
            if action == "FIELD?":
                oe = self.field_oe()
                return f"{round(oe, 3)},Oe,{FIELD_STATES[self.field_state()]}"
            if action == "FIELD_SETPOINTS?":
                return (f"({float(self.h_target)}, {float(self.h_rate)}, {self.h_approach}, "
                        f"{self.h_driven}),Oe,Call was successful")
            if action == "FIELD":
                oe, rate, approach, driven = self._args(query, 4, "Set Point (Oe), rate "
                                                        "(Oe/sec), approach, magnetic state")
                approach, driven = int(approach), int(driven)
                if approach not in (0, 1, 2):
                    raise _Refused(f"The approach, {approach}, is out of bounds.")
                if self.flavor == "VERSALAB" and approach == 1:
                    raise _Refused("VERSALAB does not support the no_overshoot approach mode.")
                if driven not in (0, 1):
                    raise _Refused(f"The driven mode, {driven}, is out of bounds.")
                if self.flavor != "PPMS" and driven == 0:
                    raise _Refused(f"{self.flavor} can only drive the magnet in driven mode.")
                self.set_field(oe, rate, approach, driven)
                return "FIELD Command Received"
            if action == "CHAMBER?":
                state = self.chamber()
                return f"{float(state)},,{CHAMBER_STATES[state]}"
            if action == "CHAMBER":
                (mode,) = self._args(query, 1, "mode")
                if int(mode) not in CHAMBER_MODES:
                    raise _Refused(f"The selected mode, {int(mode)}, is out of bounds.")
                self.set_chamber(int(mode))
                return "CHAMBER Command Received"
            if action == "WAITFOR?":
                return f"{int(self.stable(int(query or 0)))},,Call was successful"
        if action == "WAITFOR":
            delay, timeout, bitmask = self._args(query, 3, "delay, timeout, bitmask")
            return f"WAITFOR Command Received,{self._wait(delay, timeout, int(bitmask))}"
        raise _Refused(f'Unknown command: "{action.rstrip("?")}".')

    @staticmethod
    def _args(query: str, count: int, what: str) -> list[float]:
        parts = query.split(",")
        if len(parts) != count:
            raise _Refused(f"requires {count} inputs separated by a comma: {what}")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise _Refused(f"inputs must be numbers: {query!r}") from None
        if not all(math.isfinite(v) for v in values):
            raise _Refused(f"inputs must be finite: {query!r}")
        return values

    def _wait(self, delay_s: float, timeout_s: float, bitmask: int) -> int:
        """MultiVu's WaitFor on the lab clock: 0 settled (then ``delay_s``), 258 timed out."""
        start = self.clock.now()
        while not self.stable(bitmask):
            if timeout_s and self.clock.now() - start > timeout_s:
                return 258
            self.clock.sleep(1.0)
        self.clock.sleep(delay_s)
        return 0


# ------------------------------------------------------------------------ the server
def encode_message(content: dict[str, Any]) -> bytes:
    """One MultiPyVu frame: big-endian header length, JSON header, JSON content."""
    body = json.dumps(content, ensure_ascii=False).encode("utf-8")
    header = json.dumps({"byteorder": sys.byteorder, "message-type": "text/json",
                         "message-encoding": "utf-8", "message-length": len(body)},
                        ensure_ascii=False).encode("utf-8")
    return struct.pack(">H", len(header)) + header + body


def decode_messages(buffer: bytearray) -> list[dict[str, Any]]:
    """Take every complete frame out of ``buffer`` (what is left stays for the next read)."""
    out = []
    while len(buffer) >= 2:
        header_len = struct.unpack(">H", bytes(buffer[:2]))[0]
        if len(buffer) < 2 + header_len:
            break
        header = json.loads(bytes(buffer[2:2 + header_len]).decode("utf-8"))
        length = int(header["message-length"])
        if length > MAX_MESSAGE_BYTES:
            raise ValueError(f"message of {length} bytes")
        end = 2 + header_len + length
        if len(buffer) < end:
            break
        content = bytes(buffer[2 + header_len:end]).decode(header["message-encoding"])
        del buffer[:end]
        out.append(json.loads(content))
    return out


class MultiVuServer(LoopbackServer):
    """Serve a :class:`PPMSEmulator` the way ``MultiPyVu.Server`` serves MultiVu."""

    thread_name = "sim-ppms"
    listen_backlog = 16
    recv_bytes = RECV_BYTES

    def __init__(self, emulator: PPMSEmulator, faults: FaultBoard, port: int = 0,
                 host: str = "127.0.0.1", version: str | None = None,
                 roles: tuple[str, ...] = ("temperature", "magnet")) -> None:
        super().__init__(port, host)
        self.emulator = emulator
        self.faults = faults
        self.version = version or installed_multipyvu_version()
        self.roles = roles
        self._rw_client: socket.socket | None = None
        self._lock = threading.Lock()

    def _fault(self, kind: str) -> bool:
        return any(self.faults.is_active(role, kind) for role in self.roles)

    def refuse(self) -> bool:
        return self._fault("drop")

    def _send(self, conn: socket.socket, content: dict[str, Any]) -> None:
        latency = next((f for f in (self.faults.active(r, "latency") for r in self.roles)
                        if f is not None), None)
        if latency is not None:
            time.sleep(latency.value)
        data = encode_message(content)
        if self._fault("garbage"):
            data = b"\x00\x07#$%&?@!"
        conn.sendall(data)

    def serve(self, conn: socket.socket) -> None:
        buffer = bytearray()
        try:
            for chunk in self.chunks(conn):
                buffer += chunk
                for message in decode_messages(buffer):
                    if message.get("message_type") == "confirmed":
                        continue           # the client acknowledging a completed reply
                    if self._fault("drop"):
                        return
                    if self._fault("no_reply"):
                        continue
                    if not self._request(conn, message):
                        return
        except (OSError, ValueError, KeyError) as exc:
            log.debug("ppms client ended: %s", exc)
        finally:
            with self._lock:
                if self._rw_client is conn:
                    self._rw_client = None

    def _request(self, conn: socket.socket, request: dict[str, Any]) -> bool:
        """Confirm, run and complete one request; False when the connection ends."""
        self._send(conn, {**request, "message_type": "confirmed"})
        action = str(request.get("action", ""))
        response = dict(request)
        keep = True
        address = conn.getpeername()[:2]
        if action == "START":
            with self._lock:
                busy = self._rw_client is not None and self._rw_client is not conn
                if not busy:
                    self._rw_client = conn
            if busy:
                response["result"] = (f"Connection attempt rejected from {address}: another "
                                      "client is connected.")
                keep = False
            else:
                response["query"] = f"{self.version};mv=daqapp-virtual-lab"
                response["result"] = (f"Connected to {self.emulator.flavor} MultiVuServer at "
                                      f"{address}")
        elif action == "ALIVE":
            response["query"] = "ALIVE"
            response["result"] = f"Connected to {self.emulator.flavor} MultiVuServer"
        elif action == "STATUS":
            response["query"] = "STATUS"
            response["result"] = "connected" if self._rw_client is not None else "idle"
        elif action in ("CLOSE", "EXIT"):
            response["query"] = action
            response["result"] = (f"Client {address} disconnected." if action == "CLOSE"
                                  else "Closing client and exiting server.")
            keep = False
        else:
            try:
                response["result"] = self.emulator.command(action, str(request.get("query",
                                                                                   "")))
            except _Refused as exc:
                response["result"] = f"MultiPyVuError: {exc}"
            except Exception as exc:  # noqa: BLE001 - an emulator bug must not kill the link
                log.exception("ppms emulator failed on %r", action)
                response["result"] = f"MultiPyVuError: {type(exc).__name__}: {exc}"
        response["message_type"] = "completed"
        self._send(conn, response)
        if not keep:
            # the client acknowledges before it closes; give it the chance to
            try:
                conn.recv(RECV_BYTES)
            except OSError:
                pass
        return keep

