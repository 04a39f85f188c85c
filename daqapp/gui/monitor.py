"""Instrument monitor: a polling thread and the panel that shows what it read.

The poller runs in its own thread and reads each role through its adapter, whose per-connection
lock keeps a query from interleaving with a procedure's (drivers/locking.py). It only *reads*:
nothing it does changes a setting. The one read that is not side-effect free — the SR830's
latched overload status (reading LIAS? clears it) — is skipped while a run owns the lock-in,
because the procedure steps the sensitivity on that latch; during a run the panel shows the
overload state the run reports instead.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qtpy import QtCore, QtWidgets

log = logging.getLogger(__name__)


@dataclass
class MonitorReading:
    """One poll of every role; NaN/None where a role is absent or a read failed."""

    time: float
    temperature_K: float = math.nan
    setpoint_K: float = math.nan
    heater_percent: float = math.nan
    heater_range: int | None = None
    ramping: bool | None = None
    field_T: float = math.nan
    magnet_state: str | None = None
    lockin_overload: bool | None = None
    lockin_excitation_V: float = math.nan
    source_enabled: bool | None = None
    source_current_A: float = math.nan
    source_compliance: bool | None = None
    errors: dict[str, str] = field(default_factory=dict)


def _role(connection: Any, name: str) -> Any:
    return getattr(connection, name, None) if connection is not None else None


def poll_once(connection: Any, *, run_active: bool = False) -> MonitorReading:
    """Read every available role once; a failing read is recorded, never raised."""
    reading = MonitorReading(time=time.time())

    def read(label: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - a monitor must survive any instrument fault
            reading.errors[label] = f"{type(exc).__name__}: {exc}"
            return None

    tc = _role(connection, "temperature")
    if tc is not None:
        reading.temperature_K = _num(read("temperature", tc.temperature))
        reading.setpoint_K = _num(read("setpoint", tc.setpoint))
        reading.heater_percent = _num(read("heater", tc.heater_output))
        reading.heater_range = read("heater range", tc.heater_range)
        reading.ramping = read("ramping", tc.is_ramping)
    magnet = _role(connection, "magnet")
    if magnet is not None:
        reading.field_T = _num(read("field", magnet.field))
        state = read("magnet state", magnet.state)
        reading.magnet_state = getattr(state, "value", None if state is None else str(state))
    lockin = _role(connection, "lockin")
    if lockin is not None:
        reading.lockin_excitation_V = _num(read("excitation", lockin.excitation))
        if not run_active:
            reading.lockin_overload = read("overload", lockin.is_overloaded)
    source = _role(connection, "current_source")
    if source is not None:
        reading.source_enabled = read("source output", source.is_enabled)
        reading.source_current_A = _num(read("source current", source.current))
        reading.source_compliance = read("compliance", source.in_compliance)
    return reading


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


class InstrumentPoller:
    """Polls a station connection every ``interval_s`` in a daemon thread (Qt-free).

    ``on_reading`` is called from the poller thread; the GUI wraps it in a queued signal.
    """

    def __init__(self, connection: Any, on_reading: Callable[[MonitorReading], None],
                 interval_s: float = 1.0) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s = {interval_s} must be > 0")
        self.connection = connection
        self.on_reading = on_reading
        self.interval_s = interval_s
        self.run_active = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="instrument-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            reading = poll_once(self.connection, run_active=self.run_active.is_set())
            try:
                self.on_reading(reading)
            except Exception:  # noqa: BLE001 - a broken listener must not kill the monitor
                log.exception("monitor listener failed")
            self._stop.wait(max(0.05, self.interval_s - (time.monotonic() - started)))


def _yes_no(value: bool | None, yes: str, no: str) -> str:
    return "—" if value is None else (yes if value else no)


class MonitorPanel(QtWidgets.QWidget):
    """A compact read-out of the last :class:`MonitorReading`, with read errors as tooltips."""

    ROWS = (
        ("temperature", "Temperature"),
        ("setpoint", "Setpoint"),
        ("heater", "Heater"),
        ("field", "Field"),
        ("magnet", "Magnet"),
        ("excitation", "Lock-in output"),
        ("overload", "Lock-in overload"),
        ("source", "Current source"),
        ("updated", "Updated"),
    )

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QFormLayout(self)
        layout.setLabelAlignment(QtCore.Qt.AlignmentFlag.AlignRight)
        layout.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.values: dict[str, QtWidgets.QLabel] = {}
        for key, label in self.ROWS:
            value = QtWidgets.QLabel("—")
            value.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
            if key in ("temperature", "field"):
                font = value.font()
                font.setPointSizeF(font.pointSizeF() * 1.3)
                font.setBold(True)
                value.setFont(font)
            layout.addRow(label + ":", value)
            self.values[key] = value
        self.last: MonitorReading | None = None
        self.run_overload: bool | None = None

    def show_run_overload(self, overloaded: bool | None) -> None:
        """Overload state reported by the running procedure (the monitor does not read it)."""
        self.run_overload = overloaded

    def show_reading(self, r: MonitorReading) -> None:
        self.last = r
        v = self.values
        v["temperature"].setText(_q(r.temperature_K, "K", 4))
        ramp = " (ramping)" if r.ramping else ""
        v["setpoint"].setText(_q(r.setpoint_K, "K", 4) + ramp)
        rng = "" if r.heater_range is None else f"  range {r.heater_range}"
        v["heater"].setText(_q(r.heater_percent, "%", 3) + rng)
        v["field"].setText(_q(r.field_T, "T", 4))
        v["magnet"].setText(r.magnet_state or "—")
        v["excitation"].setText(_q(r.lockin_excitation_V * 1e3, "mV rms", 4))
        from_run = r.lockin_overload is None and self.run_overload is not None
        overload = r.lockin_overload if r.lockin_overload is not None else self.run_overload
        text = _yes_no(overload, "OVERLOAD", "ok") + (" (last point of the run)" if from_run
                                                      else "")
        v["overload"].setText(text)
        v["overload"].setStyleSheet("color: #C00000; font-weight: bold;" if overload else "")
        if r.source_enabled is None:
            v["source"].setText("—")
        else:
            state = "ON" if r.source_enabled else "off"
            current = _q(r.source_current_A * 1e6, "µA", 4)
            comp = "  COMPLIANCE" if r.source_compliance else ""
            v["source"].setText(f"{state}  {current}{comp}")
            v["source"].setStyleSheet("color: #C00000;" if r.source_enabled else "")
        v["updated"].setText(time.strftime("%H:%M:%S", time.localtime(r.time))
                             + (f"  ({len(r.errors)} read errors)" if r.errors else ""))
        for key, label in v.items():
            related = [f"{k}: {m}" for k, m in r.errors.items() if k.split()[0] in key]
            label.setToolTip("\n".join(related))
        v["updated"].setToolTip("\n".join(f"{k}: {m}" for k, m in r.errors.items()))


def _q(value: float, unit: str, digits: int) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}g} {unit}"
