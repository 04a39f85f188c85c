"""The contract between run control and a measurement: a pymeasure Procedure that checkpoints.

Procedures stay pymeasure ``Procedure`` classes (Parameters with units and limits, ``startup`` /
``execute`` / ``shutdown``, ``emit('results', ...)`` and ``emit('progress', ...)``) so pymeasure's
windows and Worker still drive them. What this base adds is what a lab needs and pymeasure lacks:
the connected ``station``, a ``control`` to pause/suspend/stop/abort at :meth:`checkpoint`,
interruptible settling waits on the instruments' clock, columns declared with units, station
limits checked before anything moves, and a time estimate.
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar

from pymeasure.experiment import Procedure

from daqapp.errors import ConfigError
from daqapp.runner.roles import lab_seconds_to_real, station_limits, station_role

_UNIT_IN_NAME = re.compile(r"^(?P<name>.*?)\s*\((?P<unit>[^()]*)\)\s*$")


def format_duration(seconds: float) -> str:
    """``3725`` -> ``'1 h 02 min'``; short, for estimates shown to operators."""
    if not math.isfinite(seconds):
        return "unknown"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    hours, rest = divmod(int(round(minutes)), 60)
    return f"{hours} h {rest:02d} min"


class ControlledProcedure(Procedure):
    """Base of daqapp's procedures.

    Subclasses declare ``COLUMNS = {"name": "unit", ...}`` (units as stored in the run file;
    ``""`` for dimensionless) and optionally ``SWEEP_AXIS`` (the column a sweep runs along, for
    2-D storage of sweeps of sweeps), and implement ``check_limits(limits)``,
    ``estimate_duration()`` and ``execute()``; ``shutdown()`` must leave their instruments off.
    """

    COLUMNS: ClassVar[dict[str, str]] = {}
    SWEEP_AXIS: ClassVar[str | None] = None
    #: One line for ``daqapp run --list`` and the GUI's procedure chooser.
    SUMMARY: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.COLUMNS:
            cls.DATA_COLUMNS = list(cls.COLUMNS)

    def __init__(self, station: Any = None, control: Any = None, **kwargs: Any) -> None:
        self.station = station
        self.control = control
        super().__init__(**kwargs)

    # ---- run-control verbs used inside execute() -----------------------------------------
    def checkpoint(self) -> bool:
        """Between points: block while paused/suspended, raise on abort, False on stop."""
        if self.control is None:
            return True
        return self.control.checkpoint()

    def should_stop(self) -> bool:  # pymeasure's name for "stop requested"
        return self.control.should_stop() if self.control is not None else False

    def sleep(self, lab_seconds: float) -> None:
        """Wait ``lab_seconds`` of instrument time (settling); abort interrupts it."""
        real = lab_seconds_to_real(self.station, lab_seconds)
        if self.control is not None:
            self.control.sleep(real)
        elif real > 0:
            import time

            time.sleep(real)

    def role(self, name: str, required: bool = True) -> Any:
        """The station's instrument for ``name`` (``lockin``, ``source``, ``nanovoltmeter``,
        ``temperature``, ``magnet``)."""
        return station_role(self.station, name, required=required)

    def record(self, **values: float) -> None:
        """Emit one point (pymeasure's ``emit('results', ...)``)."""
        self.emit("results", values)

    def progress(self, done: float, total: float) -> None:
        self.emit("progress", 100.0 * min(1.0, done / total) if total > 0 else 0.0)

    def end_sweep(self, sweep: int, **info: Any) -> None:
        """Tell listeners (plots, the fit worker) that sweep ``sweep`` is complete."""
        self.emit("sweep_end", {"sweep": sweep, **info})

    # ---- declarations used by run control -------------------------------------------------
    @classmethod
    def column_units(cls) -> dict[str, str]:
        """Column name -> unit, from ``COLUMNS`` or pymeasure's ``"Name (unit)"`` convention."""
        if cls.COLUMNS:
            return dict(cls.COLUMNS)
        return column_units_from_names(cls.DATA_COLUMNS)

    def parameter_table(self) -> dict[str, dict[str, Any]]:
        """``{name: {"value", "units", "label"}}`` for the run file and listings."""
        table = {}
        for name, parameter in self.parameter_objects().items():
            table[name] = {
                "value": _plain(parameter.value),
                "units": getattr(parameter, "units", None) or "",
                "label": parameter.name,
            }
        return table

    def check_limits(self, limits: Any) -> None:
        """Raise :class:`daqapp.errors.LimitError` naming the parameter if a value breaks a
        station limit or a physical range. Called before anything moves."""

    def validate(self) -> None:
        """Every parameter set, converted by its pymeasure Parameter (type, minimum, maximum,
        choices) and within the station's limits; errors name the parameter and the range."""
        for name, parameter in self._parameters.items():
            value = getattr(self, name)
            if value is None:
                raise ConfigError(f"{name} ({parameter.name}) is not set")
            try:
                parameter.value = value
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{name} = {value!r}: {exc}{_allowed(parameter)}") from None
            setattr(self, name, parameter.value)
        self.check_limits(station_limits(self.station))

    def estimate_duration(self) -> float:
        """Expected duration in seconds of instrument time (settling and integration)."""
        return float("nan")

    def get_estimates(self) -> list[tuple[str, str]]:
        """pymeasure's EstimatorWidget hook, from :meth:`estimate_duration`."""
        return [("Duration", format_duration(self.estimate_duration()))]


def _allowed(parameter: Any) -> str:
    low, high = getattr(parameter, "minimum", None), getattr(parameter, "maximum", None)
    units = getattr(parameter, "units", None) or ""
    if low is not None and high is not None:
        return f" (allowed {low:g} to {high:g}{' ' + units if units else ''})"
    choices = getattr(parameter, "choices", None)
    if choices:
        return f" (allowed: {', '.join(map(str, choices))})"
    return ""


def column_units_from_names(names: list[str]) -> dict[str, str]:
    """``["Bias (A)", "dIdV"]`` -> ``{"Bias (A)": "A", "dIdV": ""}``."""
    units = {}
    for name in names:
        match = _UNIT_IN_NAME.match(name)
        units[name] = match.group("unit") if match else ""
    return units


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
