"""Faults that corrupt data or never clear, caught while a run goes on, and the one wait that
every instrument condition goes through.

A run that "finishes" on a current source in compliance, a frozen voltmeter, a quenched magnet
or an open heater leaves a file that looks like data and is not. Each check here raises
:class:`RunFault` with the cause named; the :class:`~daqapp.runner.run.Run` bookend then puts
the station in its safe state and stores status "failed" with that text. Waiting on an
instrument (a temperature to settle, a magnet to hold, a buffer to fill) goes through
:func:`wait_until`, which bounds it in time, honours stop/abort, and runs the fault checks on
every poll, so no wait can outlast a fault or hang.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from daqapp.errors import InstrumentError
from daqapp.runner.roles import lab_seconds_to_real, lab_time


class RunFault(InstrumentError):
    """An instrument fault seen during a run: the run fails now, in the safe state."""


class ConditionTimeout(RunFault, TimeoutError):
    """A waited-for instrument condition did not come within its timeout."""


Check = Callable[[], None]
"""A fault check: returns if all is well, raises :class:`RunFault` naming the fault."""


# ---- the fault checks ---------------------------------------------------------------------
def _answer(who: str, what: str, query: Callable[[], Any]) -> Any:
    """``query()``, with an instrument that does not answer turned into a :class:`RunFault`
    that names it (a bare VISA timeout names neither the instrument nor the check)."""
    try:
        return query()
    except RunFault:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to answer is the fault
        raise RunFault(f"{who} did not answer {what}: {type(exc).__name__}: {exc}") from exc


def _source_name(source: Any) -> str:
    idn = str(getattr(source, "idn", "") or "")
    return "6221" if "6221" in idn or "6221" in type(source).__name__ else "current source"


def compliance_fault(source: Any, amps: float | None = None) -> str | None:
    """``"6221 in compliance at 0.2 mA (compliance 10 V)"`` if the source is (or, for a
    source that latches it, has been since the last check) in compliance, else None."""
    name = _source_name(source)
    latched = getattr(source, "compliance_latched", None)
    hit = _answer(name, "the compliance check",
                  latched if callable(latched) else source.in_compliance)
    if not hit:
        return None
    if amps is None:
        amps = float(_answer(name, "the current query", source.current))
    volts = getattr(source, "compliance", None)
    limit = (f" (compliance {float(_answer(name, 'the compliance query', volts)):g} V)"
             if callable(volts) else "")
    return f"{name} in compliance at {amps * 1e3:.4g} mA{limit}"


def check_source_compliance(source: Any, amps: float | None = None) -> None:
    """Raise :class:`RunFault` if the current source is in compliance: its current is not
    what the run records (an open lead, a contact that broke, too low a compliance)."""
    fault = compliance_fault(source, amps)
    if fault:
        raise RunFault(fault)


def check_quench(magnet: Any) -> None:
    """Raise :class:`RunFault` if the magnet quenched: the field is no longer what is set."""
    if _answer("magnet", "the quench check", magnet.is_quenched):
        field = float(_answer("magnet", "the field query", magnet.field))
        raise RunFault(f"magnet quenched at {field:.4g} T")


def check_heater(controller: Any) -> None:
    """Raise :class:`RunFault` if the heater is open or shorted: waiting cannot bring the
    temperature anywhere."""
    status = getattr(controller, "heater_status", None)
    if not callable(status):
        return
    state = _answer("temperature controller", "the heater status query", status)
    value = getattr(state, "value", str(state))
    if value != "ok":
        raise RunFault(f"heater {value} (temperature {float(controller.temperature()):.4g} K, "
                       f"set point {float(controller.setpoint()):.4g} K): the temperature "
                       "cannot be controlled")


def check_source_applied(source: Any, amps: float) -> None:
    """Read the current back after setting it: a source that stopped listening takes writes
    in silence, and the run would record a bias that was never applied."""
    try:
        actual = float(source.current())
    except Exception as exc:  # noqa: BLE001 - any failure to read back is the fault
        raise RunFault(f"{_source_name(source)} did not confirm the set current "
                       f"{amps * 1e3:.4g} mA: {type(exc).__name__}: {exc}") from exc
    if not math.isclose(actual, amps, rel_tol=1e-5, abs_tol=1e-12):
        raise RunFault(f"{_source_name(source)} reads {actual * 1e3:.6g} mA after being set to "
                       f"{amps * 1e3:.6g} mA: the set point was not applied")


# ---- a reading that stops following its sweep ---------------------------------------------
class StuckReading:
    """Fails when ``count`` consecutive readings stay put while the set value moves.

    "Put" means the readings spread by no more than ``resolution`` (the instrument's last
    digit, e.g. an SR830 AUX input's 1/3 mV) or ``rel`` × their size, whichever is larger;
    "moves" means the set values spread by more than ``set_resolution``. Readings smaller
    than ``floor`` never count as stuck: a superconductor's zero voltage below Ic or Tc stays
    at zero legitimately. Noise alone moves a live instrument's readings by far more than
    ``rel`` = 1e-5 of their size, so a window this flat is a reading that is no longer taken.
    """

    def __init__(self, name: str, count: int = 8, rel: float = 1e-5, resolution: float = 0.0,
                 floor: float = 0.0, set_resolution: float = 0.0,
                 explain: Check | None = None, unit: str = "") -> None:
        if count < 2:
            raise ValueError(f"StuckReading count = {count}: at least 2")
        self.name = name
        self.count = int(count)
        self.rel = float(rel)
        self.resolution = float(resolution)
        self.floor = float(floor)
        self.set_resolution = float(set_resolution)
        self.explain = explain
        self.unit = f" {unit}" if unit else ""
        self._sets: deque[float] = deque(maxlen=self.count)
        self._readings: deque[float] = deque(maxlen=self.count)

    def reset(self) -> None:
        """Forget the window (a new sweep starts)."""
        self._sets.clear()
        self._readings.clear()

    def feed(self, set_value: float, reading: float) -> None:
        """Add one point; raise :class:`RunFault` if the last ``count`` are stuck."""
        if not (math.isfinite(set_value) and math.isfinite(reading)):
            self.reset()  # NaN rows are another fault's business (and break a flat run)
            return
        self._sets.append(float(set_value))
        self._readings.append(float(reading))
        if len(self._readings) < self.count:
            return
        readings = self._readings
        size = sum(abs(r) for r in readings) / len(readings)
        spread = max(readings) - min(readings)
        moved = max(self._sets) - min(self._sets)
        if (size > self.floor and spread <= max(self.resolution, self.rel * size)
                and moved > self.set_resolution):
            if self.explain is not None:
                self.explain()  # a compliance or quench behind it is the cause to name
            raise RunFault(f"{self.name} stuck at {readings[-1]:.6g}{self.unit} for {self.count} "
                           f"readings while the set value moved from {self._sets[0]:.6g} to "
                           f"{self._sets[-1]:.6g}: the instrument is not measuring")


# ---- periodic checks at the run's checkpoints ---------------------------------------------
class FaultWatch:
    """Fault checks run at the procedure's checkpoints, each at most once per its interval of
    instrument seconds (the station's clock). Registered with the run control as a suspender
    (``check(station)``, ``timeout``) that never suspends: it raises.

    ``add(check, every_s)``: ``every_s`` 0 checks at every suspender evaluation (each half
    second of instrument time), a magnet's quench check is cheap to do every few seconds.
    """

    timeout = None

    def __init__(self, station: Any = None) -> None:
        self.station = station
        self._checks: list[list[Any]] = []  # [check, every_s, last_lab_time]

    def add(self, check: Check, every_s: float = 0.0) -> FaultWatch:
        self._checks.append([check, float(every_s), -math.inf])
        return self

    def run(self, force: bool = False) -> None:
        """Run the checks that are due (all of them with ``force``); raises on a fault."""
        now = lab_time(self.station)
        for entry in self._checks:
            check, every, last = entry
            if force or now - last >= every:
                entry[2] = now
                check()

    def check(self, station: Any) -> str | None:
        self.run()
        return None

    def __bool__(self) -> bool:
        return bool(self._checks)


# ---- the one wait -------------------------------------------------------------------------
def wait_until(station: Any, ready: Callable[[], bool], *, what: str, timeout_s: float,
               poll_s: float = 1.0, checkpoint: Callable[[], bool] | None = None,
               sleep: Callable[[float], None] | None = None, checks: Iterable[Check] = (),
               state: Callable[[], str] | None = None) -> bool:
    """Poll ``ready()`` every ``poll_s`` instrument seconds until it is true (returns True).

    ``what`` names the condition for the timeout message, which reads ``"{what} after
    {timeout_s} s (state())"``, e.g. "temperature not within ±0.05 K of 20 K after 600 s
    (now 19.2 K)"; it raises :class:`ConditionTimeout` once ``timeout_s`` instrument seconds
    have passed. ``checkpoint()`` (the procedure's) may block for pause, raises on abort and
    returns False on stop, which ends the wait with False. ``checks`` run on every poll
    before ``ready()``, so an open heater or a quench ends the wait at once with its cause.
    ``sleep`` waits instrument seconds (the procedure's interruptible sleep); by default the
    station's clock is converted to wall time.
    """
    if not timeout_s >= 0:  # also NaN
        raise ValueError(f"wait for {what}: timeout {timeout_s!r} s must be a number >= 0")
    checks = tuple(checks)
    started = lab_time(station)
    while True:
        if checkpoint is not None and not checkpoint():
            return False
        for check in checks:
            check()
        if ready():
            return True
        if lab_time(station) - started > timeout_s:
            detail = f" ({state()})" if state is not None else ""
            raise ConditionTimeout(f"{what} after {timeout_s:.4g} s{detail}")
        if sleep is not None:
            sleep(poll_s)
        else:
            time.sleep(max(0.001, lab_seconds_to_real(station, poll_s)))
