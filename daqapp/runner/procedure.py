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
from pymeasure.experiment import parameters as pymeasure_parameters

from daqapp.errors import ConfigError, DaqappError, LimitError, check_number, shown_value
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
    #: The station roles the procedure may use; a headless run opens only these (None: all).
    ROLES: ClassVar[tuple[str, ...] | None] = None
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
        """:func:`validate_parameters` on this procedure's station."""
        validate_parameters(self, self.station)

    def starting_point(self) -> dict[str, tuple[str, float]]:
        """Where this procedure itself puts the station before its first point, by quantity:
        ``{"field_T": ("fields", 0.0), "temperature_K": ("t_start", 100.0)}`` (the parameter
        that sets it, and its value). A campaign step that positions the station elsewhere
        would be undone by the procedure, so the campaign refuses the mismatch. Empty (the
        default): the procedure measures wherever the station is."""
        return {}

    def estimate_duration(self) -> float:
        """Expected duration in seconds of instrument time (settling and integration)."""
        return float("nan")

    def get_estimates(self) -> list[tuple[str, str]]:
        """pymeasure's EstimatorWidget hook, from :meth:`estimate_duration`."""
        return [("Duration", format_duration(self.estimate_duration()))]


# ---- parameters that refuse what pymeasure's let through -----------------------------------
class FloatParameter(pymeasure_parameters.FloatParameter):
    """pymeasure's FloatParameter that refuses NaN, ±inf, denormals and booleans.

    pymeasure checks ``value < minimum`` and ``value > maximum``, both False for NaN, so
    ``settle_time = nan`` used to run with no settling at all. ``zero_allowed``: 0 is accepted
    below ``minimum`` where it means "off" or "automatic" (a lock-in time constant of 0 =
    leave as set); any other value below the physical floor ``minimum`` is refused. Being a
    subclass, pymeasure's own windows and Worker refuse the same values.
    """

    def __init__(self, name: str, units: str | None = None, minimum: float = -1e9,
                 maximum: float = 1e9, zero_allowed: bool = False, **kwargs: Any) -> None:
        self.zero_allowed = zero_allowed  # before super().__init__ converts the default
        super().__init__(name, units=units, minimum=minimum, maximum=maximum, **kwargs)

    def convert(self, value: Any) -> float:
        return check_number(self.name, _strip_units(value, self.units), self.minimum,
                            self.maximum, self.units or "", zero_allowed=self.zero_allowed)


class IntegerParameter(pymeasure_parameters.IntegerParameter):
    """pymeasure's IntegerParameter that refuses 2.5 (pymeasure's ``int()`` truncates it),
    NaN, ±inf (an OverflowError there) and booleans; ``"5"`` and ``5.0`` are 5."""

    def convert(self, value: Any) -> int:
        return int(check_number(self.name, _strip_units(value, self.units), self.minimum,
                                self.maximum, self.units or "", integral=True))


def _strip_units(value: Any, units: str | None) -> Any:
    """``"5 s"`` -> ``"5"`` when the unit is the parameter's (pymeasure's string form)."""
    if isinstance(value, str) and units:
        text = value.strip()
        if text.endswith(" " + units):
            return text[: -len(units)].strip()
    return value


def parameter_rule(parameter: Any) -> dict[str, Any]:
    """The keyword arguments of :func:`daqapp.errors.check_number` a numeric Parameter means
    (empty for non-numeric ones): its range, unit, integrality and whether 0 means "off"."""
    if isinstance(parameter, pymeasure_parameters.IntegerParameter):
        integral = True
    elif isinstance(parameter, pymeasure_parameters.FloatParameter):
        integral = False
    else:
        return {}
    return {"low": parameter.minimum, "high": parameter.maximum,
            "unit": getattr(parameter, "units", None) or "", "integral": integral,
            "zero_allowed": bool(getattr(parameter, "zero_allowed", False))}


def check_parameter(key: str, parameter: Any, value: Any) -> Any:
    """``value`` converted by ``parameter``, with the finite/normal/integral rule applied even
    to a plain pymeasure Parameter; raises ConfigError/LimitError naming ``key``."""
    if value is None:
        raise ConfigError(f"{key} ({parameter.name}) is not set")
    rule = parameter_rule(parameter)
    if rule:  # the same rule, by key, whatever Parameter class declared it
        value = check_number(key, _strip_units(value, rule["unit"]), **rule)
    try:
        parameter.value = value
    except DaqappError as exc:
        raise type(exc)(_rename(str(exc), parameter.name, key)) from None
    except (ValueError, TypeError, OverflowError):
        # pymeasure's own text ("IntegerParameter given non-integer value of type ...")
        # names neither the parameter nor what it accepts: say both instead.
        choices = getattr(parameter, "choices", None)
        allowed = (f"one of {', '.join(map(str, choices))}" if choices else
                   f"a valid {type(parameter).__name__.removesuffix('Parameter').lower()} "
                   "value")
        raise ConfigError(f"{key} = {value!r}: must be {allowed}") from None
    return parameter.value


def effective_range(procedure: Any, key: str, limits: Any = None
                    ) -> tuple[float, float, str] | None:
    """``(low, high, unit)`` a numeric parameter may take on this station: its own range
    intersected with the station limit the procedure's ``check_limits`` applies to it
    (found by asking ``check_limits`` about a value beyond every limit); None when the
    parameter has no numeric range."""
    parameter = procedure._parameters.get(key)
    rule = parameter_rule(parameter) if parameter is not None else {}
    if not rule or rule["low"] is None or rule["high"] is None:
        return None
    low, high = float(rule["low"]), float(rule["high"])
    check_limits = getattr(procedure, "check_limits", None)
    if limits is None or not callable(check_limits):
        return low, high, rule["unit"]
    kept = getattr(procedure, key)
    try:
        for probe in (math.inf, -math.inf):
            setattr(procedure, key, probe)
            try:
                check_limits(limits)
            except LimitError as exc:
                name, s_low, s_high = getattr(exc, "allowed", (None, 0.0, 0.0))
                if name == key:
                    low, high = max(low, s_low), min(high, s_high)
                    break
            except Exception:  # noqa: BLE001 - another check refused first: no station range
                continue
    finally:
        setattr(procedure, key, kept)
    return low, high, rule["unit"]


def _range_text(span: tuple[float, float, str]) -> str:
    low, high, unit = span
    return f"{low:g} to {high:g}{' ' + unit if unit else ''}"


def _with_effective_range(procedure: Any, key: str, error: DaqappError) -> str:
    """``error``'s text, its allowed range replaced by the effective one on this station."""
    span = effective_range(procedure, key, station_limits(procedure.station))
    text = str(error)
    if span is None:
        return text
    rule = parameter_rule(procedure._parameters[key])
    own = (float(rule["low"]), float(rule["high"]), rule["unit"])
    if span[:2] == own[:2]:
        return text
    value = getattr(procedure, key)
    try:
        number = float(_strip_units(value, span[2]))
    except (TypeError, ValueError):
        number = math.nan
    where = f"on this station (procedure {_range_text(own)})"
    if not math.isfinite(number):
        return f"{key} = {shown_value(value)}: must be a number {_range_text(span)} {where}"
    unit = f" {span[2]}" if span[2] else ""
    return (f"{key} = {number:g}{unit} is outside the allowed range {_range_text(span)} "
            f"{where}")


def _rename(message: str, label: str, key: str) -> str:
    return key + message[len(label):] if message.startswith(label) else f"{key}: {message}"


def validate_parameters(procedure: Any, station: Any = None, name: str | None = None) -> None:
    """The one check of a procedure's parameters, before anything moves.

    Every parameter is set, converted by its Parameter and a real, finite, normal number in
    its range (whole where integral); then the procedure's ``check_limits`` checks them
    against the station's limits (bias current, field, ramp rates, temperatures, heater
    ranges) and against each other (a non-empty, bounded number of points, a timeout longer
    than the hold...). Raises ConfigError/LimitError as one line ``"<name> parameter <key> =
    <value>: ..."``; touches no instrument. ``daqapp run --set``, the window's queue button,
    campaign files (load and dry run) and :meth:`daqapp.runner.Run.validate` all call it.
    ``station`` (connected or a station file's config) replaces ``procedure.station`` if given.
    """
    label = name or type(procedure).__name__
    if station is not None:
        procedure.station = station
    for key, parameter in procedure._parameters.items():
        try:
            setattr(procedure, key, check_parameter(key, parameter, getattr(procedure, key)))
        except LimitError as exc:  # out of its own range: say the range valid on the station
            message = _with_effective_range(procedure, key, exc) if procedure.station \
                is not None else str(exc)
            raise LimitError(f"{label} parameter {message}") from None
        except DaqappError as exc:
            raise type(exc)(f"{label} parameter {exc}") from None
    check_limits = getattr(procedure, "check_limits", None)
    if not callable(check_limits):
        return
    try:
        check_limits(station_limits(procedure.station))
    except LimitError as exc:  # the station's range is the effective one unless it is wider
        name, s_low, s_high = getattr(exc, "allowed", (None, 0.0, 0.0))
        message = str(exc)
        if name in procedure._parameters:
            span = effective_range(procedure, name, station_limits(procedure.station))
            if span is not None and span[:2] != (s_low, s_high):
                message = _with_effective_range(procedure, name, exc)
        raise LimitError(f"{label}: {message}") from None
    except DaqappError as exc:
        raise type(exc)(f"{label}: {exc}") from None
    except (ValueError, TypeError, ArithmeticError) as exc:  # a combination not foreseen
        raise LimitError(f"{label}: these parameters do not make a measurement "
                         f"({type(exc).__name__}: {exc})") from None


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
