"""Keithley 6221 current source: pymeasure's driver plus differential conductance and pass-through.

Added to pymeasure 0.16.0: the differential-conductance subsystem (``SOUR:DCON:*``) that no
public driver offers, ``FORM:ELEM`` with parsing of the reading tuples into arrays, the RS-232
pass-through to a 2182A (``SYST:COMM:SER:SEND``/``ENT?``), ``SOUR:DELT:ARM?`` and ``TRAC:CLE``.
Fixed: source current and compliance use strict validators (pymeasure clips silently), the
buffer size is limited to the instrument's 65536 points, and a default LF read terminator
(pyvisa-py reads a socket to the timeout without one).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.keithley.keithley6221 import Keithley6221 as _PymeasureKeithley6221
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from daqapp.errors import InstrumentError, LimitError, check_range
from drivers.base import RoleAdapter, SafeStep
from drivers.locking import SerializedInstrument
from drivers.roles import Readback

MAX_CURRENT_A = 0.105
MAX_BUFFER_POINTS = 65536
OVERFLOW = 9.9e37
# Order in which the 6221 always sends the elements of one reading, whatever FORM:ELEM says.
ELEMENT_ORDER = ("READ", "TST", "SOUR", "AVOL", "COMP", "RNUM")
DCON_ELEMENTS = ("READ", "SOUR", "AVOL", "TST")
# Measurement condition register bit set while the output is in compliance.
MEAS_COMPLIANCE_BIT = 8


def _on_off(name: str, command: str, doc: str) -> property:
    return Instrument.control(
        f"{command}?", f"{command} %s", doc,
        validator=strict_discrete_set, values={True: "ON", False: "OFF"}, map_values=True,
        cast=str,
        get_process=lambda v: {"1": "ON", "0": "OFF"}.get(v.strip(), v.strip().upper()),
    )


def _format_elements(value: Any) -> str:
    elements = [value] if isinstance(value, str) else list(value)
    elements = [e.strip().upper() for e in elements]
    for element in elements:
        if element not in ELEMENT_ORDER:
            raise ValueError(f"FORM:ELEM element {element!r}; allowed {', '.join(ELEMENT_ORDER)}")
    return ",".join(elements)


def parse_readings(reply: str | list, elements: tuple[str, ...] | list[str]
                   ) -> dict[str, np.ndarray]:
    """Split a flat ``TRAC:DATA?`` reply into one array per ``FORM:ELEM`` element.

    The instrument orders each tuple as reading, timestamp, source, average voltage,
    compliance, reading number, regardless of the order given to ``FORM:ELEM``; overflow
    readings (+9.9E37) become NaN so they cannot be mistaken for data.
    """
    requested = {e.strip().upper() for e in elements}
    unknown = requested - set(ELEMENT_ORDER)
    if unknown:
        raise ValueError(f"unknown reading elements {sorted(unknown)}; allowed {ELEMENT_ORDER}")
    order = [e for e in ELEMENT_ORDER if e in requested]
    if isinstance(reply, str):
        fields = [f for f in reply.strip().split(",") if f.strip()]
    else:
        fields = list(reply)
    try:
        flat = np.array([float(f) for f in fields], dtype=float)
    except ValueError as exc:
        raise InstrumentError(f"6221 buffer reply is not numeric: {exc}") from None
    if flat.size % len(order):
        raise InstrumentError(f"6221 buffer holds {flat.size} values, not a multiple of the "
                              f"{len(order)} elements {','.join(order)}")
    table = flat.reshape(-1, len(order))
    columns = {name: table[:, i].copy() for i, name in enumerate(order)}
    for name in ("READ", "AVOL"):
        if name in columns:
            columns[name][np.abs(columns[name]) >= OVERFLOW * 0.999] = np.nan
    return columns


@dataclass(frozen=True)
class DconSweep:
    """A differential-conductance staircase: ``start``..``stop`` in ``step`` with ±``delta``/2."""

    start_a: float
    stop_a: float
    step_a: float
    delta_a: float
    delay_s: float = 0.002
    compliance_abort: bool = True

    @property
    def points(self) -> int:
        return int(round(abs(self.stop_a - self.start_a) / self.step_a)) + 1

    @property
    def peak_current_a(self) -> float:
        """Largest |current| the sweep drives: the extreme staircase level plus the full dI."""
        return max(abs(self.start_a), abs(self.stop_a)) + self.step_a + self.delta_a

    def validate(self, max_current_a: float = MAX_CURRENT_A) -> None:
        for name in ("start_a", "stop_a"):
            check_range(f"DCON {name}", getattr(self, name), -max_current_a, max_current_a, "A")
        check_range("DCON step_a", self.step_a, 1e-13, max_current_a, "A")
        check_range("DCON delta_a", self.delta_a, 1e-13, max_current_a, "A")
        check_range("DCON delay_s", self.delay_s, 1e-3, 9999.999, "s")
        # The staircase runs from start-step to stop+step and dI is added to alternate levels;
        # counting the whole dI keeps the check conservative whichever sign the unit starts with.
        peak = self.peak_current_a
        if peak > max_current_a:
            raise LimitError(f"DCON peak current {peak:g} A (|start|/|stop| + step + delta) "
                             f"exceeds the allowed {max_current_a:g} A")
        if self.points > MAX_BUFFER_POINTS:
            raise LimitError(f"DCON sweep has {self.points} points; the 6221 buffer holds "
                             f"at most {MAX_BUFFER_POINTS}")


class Keithley6221(SerializedInstrument, _PymeasureKeithley6221):
    """Keithley 6221 with DCON, reading formats and the 2182A RS-232 pass-through."""

    def __init__(self, adapter, name: str = "Keithley 6221", **kwargs):
        kwargs.setdefault("read_termination", "\n")
        super().__init__(adapter, name, **kwargs)

    source_current = Instrument.control(
        ":SOUR:CURR?", ":SOUR:CURR %g",
        """Control the DC source current in A (-0.105 to 0.105, strict).""",
        validator=strict_range, values=[-MAX_CURRENT_A, MAX_CURRENT_A],
    )
    source_compliance = Instrument.control(
        ":SOUR:CURR:COMP?", ":SOUR:CURR:COMP %g",
        """Control the compliance voltage in V (0.1 to 105, strict).""",
        validator=strict_range, values=[0.1, 105],
    )
    delta_buffer_points = Instrument.control(
        "TRAC:POIN?", "TRAC:POIN %d",
        """Control the buffer size in readings (1 to 65536, strict).""",
        validator=strict_range, values=[1, MAX_BUFFER_POINTS], cast=int,
    )
    trace_points = delta_buffer_points
    delta_armed = Instrument.measurement(
        "SOUR:DELT:ARM?", """Get whether delta mode is armed (bool).""", cast=bool,
    )
    measurement_condition = Instrument.measurement(
        ":STAT:MEAS:COND?", """Get the measurement condition register (int).""", cast=int,
    )
    measurement_event = Instrument.measurement(
        ":STAT:MEAS?", """Get and clear the latched measurement event register (int).""",
        cast=int,
    )
    @property
    def format_elements(self) -> tuple[str, ...]:
        """Control the elements of each buffer reading, e.g. ('READ', 'SOUR', 'AVOL', 'TST')."""
        reply = self.ask("FORM:ELEM?")
        return tuple(e.strip().upper() for e in reply.split(",") if e.strip())

    @format_elements.setter
    def format_elements(self, elements: Any) -> None:
        self.write(f"FORM:ELEM {_format_elements(elements)}")

    # Differential conductance (DCON)
    dcon_start = Instrument.control(
        "SOUR:DCON:STAR?", "SOUR:DCON:STAR %g",
        """Control the DCON start current in A (-0.105 to 0.105).""",
        validator=strict_range, values=[-MAX_CURRENT_A, MAX_CURRENT_A],
    )
    dcon_stop = Instrument.control(
        "SOUR:DCON:STOP?", "SOUR:DCON:STOP %g",
        """Control the DCON stop current in A (-0.105 to 0.105).""",
        validator=strict_range, values=[-MAX_CURRENT_A, MAX_CURRENT_A],
    )
    dcon_step = Instrument.control(
        "SOUR:DCON:STEP?", "SOUR:DCON:STEP %g",
        """Control the DCON staircase step in A (0 to 0.105).""",
        validator=strict_range, values=[0, MAX_CURRENT_A],
    )
    dcon_delta = Instrument.control(
        "SOUR:DCON:DELT?", "SOUR:DCON:DELT %g",
        """Control the DCON modulation dI in A (0 to 0.105); points alternate -dI/2, +dI/2.""",
        validator=strict_range, values=[0, MAX_CURRENT_A],
    )
    dcon_delay = Instrument.control(
        "SOUR:DCON:DEL?", "SOUR:DCON:DEL %g",
        """Control the DCON delay before each conversion in s (0.001 to 9999.999).""",
        validator=strict_range, values=[1e-3, 9999.999],
    )
    dcon_compliance_abort = _on_off(
        "dcon_compliance_abort", "SOUR:DCON:CAB",
        """Control whether DCON aborts when the source reaches compliance (bool).""",
    )
    dcon_nanovoltmeter_present = Instrument.measurement(
        "SOUR:DCON:NVPR?", """Get whether a 2182A answers on the RS-232 link (bool).""",
        cast=bool,
    )
    dcon_voltage_zero = Instrument.measurement(
        "SOUR:DCON:NVZ?", """Get the DCON V-zero reading of the 2182A in V.""",
    )
    dcon_armed = Instrument.measurement(
        "SOUR:DCON:ARM?", """Get whether DCON is armed (bool).""", cast=bool,
    )

    def dcon_arm(self) -> None:
        """Arm DCON; the 6221 configures the 2182A over RS-232 here."""
        self.write("SOUR:DCON:ARM")

    def initiate(self) -> None:
        """Start an armed delta, pulse-delta or DCON run (``INIT:IMM``)."""
        self.write("INIT:IMM")

    def sweep_abort(self) -> None:
        """Stop and disarm a running delta/DCON, returning the 2182A to local."""
        self.write("SOUR:SWE:ABOR")

    def trace_clear(self) -> None:
        self.write("TRAC:CLE")

    def start_delta_burst(self) -> None:
        """Clear the buffer, arm delta mode and start it, in one message: a burst per point
        is the R–T row's hot path, and three writes cost three bus transactions."""
        self.write("TRAC:CLE;:SOUR:DELT:ARM;:INIT:IMM")

    def configure_dcon(self, sweep: DconSweep) -> None:
        """Send a DCON sweep, size the buffer to its points and select READ,SOUR,AVOL,TST."""
        sweep.validate()
        with self.lock:
            self.dcon_start = sweep.start_a
            self.dcon_stop = sweep.stop_a
            self.dcon_step = sweep.step_a
            self.dcon_delta = sweep.delta_a
            self.dcon_delay = sweep.delay_s
            self.dcon_compliance_abort = sweep.compliance_abort
            self.trace_clear()
            self.trace_points = sweep.points
            self.format_elements = DCON_ELEMENTS

    def buffer_readings(self, elements: tuple[str, ...] = DCON_ELEMENTS) -> dict[str, np.ndarray]:
        """``TRAC:DATA?`` parsed into arrays, e.g. ``{'READ', 'TST', 'SOUR', 'AVOL'}``."""
        with self.lock:
            reply = self.ask("TRAC:DATA?")
        return parse_readings(reply, elements)

    def buffer_count(self) -> int:
        """Readings stored so far (``TRAC:POIN:ACT?``)."""
        return int(float(self.ask("TRAC:POIN:ACT?")))

    # RS-232 pass-through to a 2182A
    def serial_send(self, command: str) -> None:
        """Forward ``command`` to the instrument on the 6221's RS-232 port (the 2182A)."""
        if '"' in command:
            raise ValueError(f"pass-through command {command!r} must not contain '\"'")
        self.write(f'SYST:COMM:SER:SEND "{command}"')

    def serial_enter(self) -> str:
        """The last reply the 2182A sent over RS-232."""
        return self.ask("SYST:COMM:SER:ENT?").strip()

    def serial_query(self, command: str, delay_s: float = 0.05, timeout_s: float = 0.0,
                     poll_s: float = 0.01) -> str:
        """Send ``command`` to the 2182A and return its reply, holding the link throughout.

        ``delay_s`` covers the RS-232 transfer. The 6221 answers ``ENT?`` with an empty string
        until the 2182A has replied (a triggered reading comes after its integration), so with
        ``timeout_s`` > 0 the reply is polled for every ``poll_s`` seconds, up to about
        ``timeout_s``, instead of sleeping a worst-case time: the answer is used when it is
        there. An empty string means no reply in that time.
        """
        polls = math.ceil(timeout_s / poll_s) if timeout_s > 0 and poll_s > 0 else 0
        with self.lock:
            self.serial_send(command)
            if delay_s > 0:
                time.sleep(delay_s)
            reply = self.serial_enter()
            for _ in range(polls):
                if reply:
                    break
                time.sleep(poll_s)
                reply = self.serial_enter()
            return reply


class Keithley6221CurrentSource(RoleAdapter):
    """The current-source role on a 6221; ``max_current_a`` and ``max_compliance_v`` come from
    the station limits and are checked before anything is sent."""

    driver_class = Keithley6221

    def __init__(self, instrument: Keithley6221, resource: str = "",
                 max_current_a: float = MAX_CURRENT_A, max_compliance_v: float = 105.0) -> None:
        super().__init__(instrument, resource)
        self.max_current_a = float(max_current_a)
        self.max_compliance_v = float(max_compliance_v)

    def set_current(self, amps: float) -> None:
        check_range("current_source current", amps, -self.max_current_a, self.max_current_a, "A")
        self.instrument.source_current = amps

    def current(self) -> float:
        return float(self.instrument.source_current)

    def set_compliance(self, volts: float) -> None:
        check_range("current_source compliance", volts, 0.1, self.max_compliance_v, "V")
        self.instrument.source_compliance = volts

    def compliance(self) -> float:
        return float(self.instrument.source_compliance)

    def enable(self) -> None:
        self.instrument.source_enabled = True

    def disable(self) -> None:
        self.instrument.source_enabled = False

    def is_enabled(self) -> bool:
        return bool(self.instrument.source_enabled)

    def in_compliance(self) -> bool:
        return bool(self.instrument.measurement_condition & MEAS_COMPLIANCE_BIT)

    def compliance_latched(self) -> bool:
        """In compliance now or at any time since the last call (the latched event register,
        cleared by reading): a delta or DCON run that hit compliance and ended still shows."""
        return bool(self.instrument.measurement_event & MEAS_COMPLIANCE_BIT)

    def configure_dcon(self, sweep: DconSweep) -> None:
        """Configure a differential-conductance sweep within the station's current limit."""
        sweep.validate(self.max_current_a)
        self.instrument.configure_dcon(sweep)

    def snapshot(self) -> dict[str, Any]:
        inst = self.instrument
        with self.lock:
            return {
                "output_enabled": self.is_enabled(),
                "current_a": self.current(),
                "compliance_v": self.compliance(),
                "auto_range": bool(inst.source_auto_range),
                "limits": {"max_current_a": self.max_current_a,
                           "max_compliance_v": self.max_compliance_v},
            }

    def state_line(self) -> str:
        with self.lock:
            on = "ON" if self.is_enabled() else "off"
            return f"output {on}, I {self.current():.4g} A, compliance {self.compliance():g} V"

    def safe_state_steps(self) -> list[SafeStep]:
        """Stop any delta/DCON run, output off, current 0."""
        inst = self.instrument
        return [("abort delta/DCON (SOUR:SWE:ABOR)", inst.sweep_abort),
                ("output off", lambda: setattr(inst, "source_enabled", False)),
                ("current 0 A", lambda: setattr(inst, "source_current", 0.0))]

    def verify_safe_state(self) -> Readback:
        check = Readback("output OFF, 0 A")
        enabled = check.query("output_enabled", "OUTP?", self.is_enabled)
        current = check.query("current_a", ":SOUR:CURR?", self.current)
        if enabled is not None:
            check.expect(enabled is False, "output is still ON")
        if current is not None:
            check.expect(abs(current) <= 1e-12, f"source current reads {current:g} A, not 0")
        return check
