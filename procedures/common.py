"""What the measurement procedures share: bias lists, station limits, waits and readings.

Kept apart from the procedures so each of them reads as the measurement it is; everything here
only talks to instruments through the role interfaces of ``drivers/roles.py``.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
from pymeasure.experiment import Parameter

from daqapp.errors import ConfigError, LimitError, check_number, check_range
from daqapp.runner.roles import lab_seconds_to_real, lab_time, limit_value
from daqapp.runner.watchdogs import (
    FaultWatch,
    StuckReading,
    check_heater,
    check_quench,
    check_source_applied,
    check_source_compliance,
    wait_until,
)

log = logging.getLogger("procedures")

SPACINGS = ("linear", "symmetric", "dense_zero")
DIRECTIONS = ("up", "down", "up_down", "down_up")

#: Hardware ranges used when the station file declares no tighter limit.
HARDWARE = {
    "max_current_a": 0.105,          # Keithley 6221 DC output
    "max_bias_current_a": 0.105,     # spectroscopy bias through the contact
    "compliance_v": 105.0,
    "max_excitation_v": 5.0,         # SR830 sine output, V rms
    "min_excitation_v": 0.004,
    "max_field_t": 9.0,
    "max_field_rate_t_per_min": 1.0,
    "min_temperature_k": 1.5,
    "max_temperature_k": 325.0,
    "max_temperature_rate_k_per_min": 20.0,
}

#: Names a station's limits may use for each quantity (the station file's vocabulary).
LIMIT_NAMES: dict[str, tuple[str, ...]] = {
    "max_current_a": ("max_current_a",),
    "max_bias_current_a": ("max_bias_current_a", "max_current_a"),
    "compliance_v": ("compliance_v", "max_compliance_v"),
    "max_excitation_v": ("max_excitation_v", "excitation_max_v", "max_lockin_amplitude_v"),
    "min_excitation_v": ("min_excitation_v",),
    "max_field_t": ("max_field_t", "field_max_t", "max_field"),
    "max_field_rate_t_per_min": ("max_field_ramp_t_per_min", "max_field_rate_t_per_min"),
    "min_temperature_k": ("temperature_min_k", "min_temperature_k"),
    "max_temperature_k": ("temperature_max_k", "max_temperature_k"),
    "max_temperature_rate_k_per_min": ("max_temperature_rate_k_per_min",
                                       "temperature_rate_max_k_per_min",
                                       "max_ramp_rate_k_per_min"),
}


def station_limit(limits: Any, key: str) -> float:
    """The station's limit ``key`` (see :data:`LIMIT_NAMES`), else the hardware range."""
    for name in LIMIT_NAMES.get(key, (key,)):
        value = limit_value(limits, name)
        if value is not None:
            return value
    return HARDWARE[key]


def check_current(name: str, amps: float, limits: Any, key: str = "max_current_a") -> float:
    """|amps| within the station's ``key`` limit (``max_bias_current_a`` for a current through
    the point contact, ``max_current_a`` for transport)."""
    top = station_limit(limits, key)
    if not abs(amps) <= top:
        error = LimitError(f"{name} = {amps:g} A is outside the allowed range {-top:g} to "
                           f"{top:g} A (station limit {key})")
        error.allowed = (name, -top, top)  # as check_range: for the effective range
        raise error
    return amps


def check_bias(name: str, amps: float, limits: Any) -> float:
    return check_current(name, amps, limits, "max_bias_current_a")


def check_compliance(name: str, volts: float, limits: Any) -> float:
    return check_range(name, volts, 0.1, station_limit(limits, "compliance_v"), "V")


def check_temperature(name: str, kelvin: float, limits: Any) -> float:
    return check_range(name, kelvin, station_limit(limits, "min_temperature_k"),
                       station_limit(limits, "max_temperature_k"), "K")


def check_field(name: str, tesla: float, limits: Any) -> float:
    top = station_limit(limits, "max_field_t")
    return check_range(name, tesla, -top, top, "T")


def check_field_rate(name: str, rate: float, limits: Any) -> float:
    return check_range(name, rate, 1e-6, station_limit(limits, "max_field_rate_t_per_min"),
                       "T/min")


def check_temperature_rate(name: str, rate: float, limits: Any) -> float:
    return check_range(name, rate, 0.0, station_limit(limits, "max_temperature_rate_k_per_min"),
                       "K/min")


#: Most values a list parameter (fields, temperatures) may expand to.
MAX_LIST_VALUES = 100_000


def check_count(name: str, count: float, most: int, what: str = "points") -> int:
    """A planned number of points/steps/rows, counted (as a float) before anything is built:
    at least 1 and at most ``most``."""
    if not 1 <= count <= most:
        raise LimitError(f"{name} gives {count:.6g} {what} (allowed 1 to {most})")
    return int(count)


def check_hold(hold_s: float, timeout_s: float, hold: str = "hold_time",
               timeout: str = "stabilize_timeout") -> None:
    """A stability wait can succeed: the in-band time it needs fits in its timeout."""
    if not hold_s < timeout_s:
        raise LimitError(f"{hold} = {hold_s:g} s must be shorter than {timeout} = "
                         f"{timeout_s:g} s (the wait would always time out)")


def check_heater_range(name: str, kelvin: float, limits: Any) -> int:
    """The station allows a heater range that can hold ``kelvin`` (see :func:`heater_range_for`)."""
    allowed = getattr(limits, "heater_ranges_allowed", None) or (0, 1, 2, 3)
    try:
        return heater_range_for(kelvin, allowed)
    except LimitError as exc:
        raise LimitError(f"{name} = {kelvin:g} K: {exc}") from None


def parse_list(name: str, text: Any, low: float | None = None, high: float | None = None,
               unit: str = "") -> list[float]:
    """``"3, 5, 7.5"`` or ``"2:10:2"`` (start:stop:step, stop included) -> floats.

    Every number is finite and normal (``check_number``) and within ``[low, high]``; a range
    is counted before it is expanded, so ``"0:9:1e-300"`` is refused, not materialised.
    """
    def number(item: Any) -> float:
        return check_number(name, item, low, high, unit)

    if isinstance(text, (list, tuple, np.ndarray)):
        values = [number(v) for v in text]
    else:
        text = str(text).strip()
        if not text:
            return []
        if ":" in text:
            return _parse_range(name, text, number)
        values = [number(item.strip()) for item in text.replace(";", ",").split(",")
                  if item.strip()]
    if len(values) > MAX_LIST_VALUES:
        raise ConfigError(f"{name}: {len(values)} values (at most {MAX_LIST_VALUES})")
    return values


def _parse_range(name: str, text: str, number: Any) -> list[float]:
    parts = text.split(":")
    if len(parts) != 3:
        raise ConfigError(f"{name} = {text!r}: a range is start:stop:step")
    start, stop = number(parts[0].strip()), number(parts[1].strip())
    step = check_number(f"{name} step", parts[2].strip())
    if step == 0 or (stop - start) / step < 0:
        raise ConfigError(f"{name} = {text!r}: step must move from start towards stop")
    count = math.floor((stop - start) / step + 1e-9) + 1  # a float: no int(inf) on the way
    if count > MAX_LIST_VALUES:
        raise ConfigError(f"{name} = {text!r} gives {count:g} values (at most "
                          f"{MAX_LIST_VALUES})")
    return [start + i * step for i in range(int(count))]


class FloatListParameter(Parameter):
    """A list of numbers with a unit, typed as ``"3, 5, 7"`` or ``"2:10:2"`` (stop included).

    The value stays text (what the operator typed, shown back in the GUI and stored in the run
    file); :meth:`values` gives the floats. Bad text (a NaN, a value outside ``minimum`` to
    ``maximum``, a range of more than :data:`MAX_LIST_VALUES`) is refused when set.
    """

    def __init__(self, name: str, units: str | None = None, minimum: float | None = None,
                 maximum: float | None = None, **kwargs: Any) -> None:
        self.units = units
        self.minimum = minimum
        self.maximum = maximum
        super().__init__(name, **kwargs)
        self._help_fields.append("units")

    def convert(self, value: Any) -> str:
        if isinstance(value, (list, tuple, np.ndarray)):
            value = ", ".join(f"{check_number(self.name, v):g}" for v in value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = f"{check_number(self.name, value):.12g}"
        value = str(value).strip()
        self.parse(value)
        return value

    def parse(self, text: Any) -> list[float]:
        return parse_list(self.name, text, self.minimum, self.maximum, self.units or "")

    def values(self) -> list[float]:
        return self.parse(self.value)


def bias_values(start: float, stop: float, points: int, spacing: str,
                concentration: float = 2.5) -> np.ndarray:
    """Bias set points from ``start`` to ``stop``.

    ``linear``: evenly spaced. ``symmetric``: evenly spaced over ±max(|start|, |stop|) with an
    odd count so zero bias is measured. ``dense_zero``: symmetric, with steps shrinking towards
    zero bias (``sinh`` mapping, ``concentration`` ≈ ratio of edge to centre step), where the
    Andreev structure is; it keeps the total point count.
    """
    if points < 2:
        raise ConfigError(f"points = {points} is outside the allowed range 2 to 100000")
    if spacing not in SPACINGS:
        raise ConfigError(f"spacing = {spacing!r}; allowed: {', '.join(SPACINGS)}")
    if spacing == "linear":
        return np.linspace(start, stop, points)
    edge = max(abs(start), abs(stop))
    n = points if points % 2 else points + 1
    u = np.linspace(-1.0, 1.0, n)
    if spacing == "symmetric":
        values = edge * u
    else:
        k = math.acosh(max(concentration, 1.0 + 1e-9))
        values = edge * np.sinh(k * u) / math.sinh(k)
    values[n // 2] = 0.0
    return values if start <= stop else values[::-1]


def sweeps_for(values: np.ndarray, directions: str) -> list[tuple[int, np.ndarray]]:
    """``[(direction, values), ...]`` for one spectrum: +1 up, -1 down, in measuring order."""
    if directions not in DIRECTIONS:
        raise ConfigError(f"directions = {directions!r}; allowed: {', '.join(DIRECTIONS)}")
    up = np.sort(values)
    down = up[::-1]
    order = {"up": [(1, up)], "down": [(-1, down)], "up_down": [(1, up), (-1, down)],
             "down_up": [(-1, down), (1, up)]}
    return order[directions]


def read_temperature(procedure: Any) -> float:
    controller = procedure.role("temperature", required=False)
    return float(controller.temperature()) if controller is not None else math.nan


def read_field(procedure: Any) -> float:
    magnet = procedure.role("magnet", required=False)
    return float(magnet.field()) if magnet is not None else math.nan


def wait(procedure: Any, ready: Any, what: str, timeout_s: float, poll_s: float = 1.0,
         checks: Any = (), state: Any = None) -> bool:
    """:func:`daqapp.runner.watchdogs.wait_until` with the procedure's checkpoint (pause, stop,
    abort) and interruptible sleep; False if the operator stopped the run."""
    return wait_until(procedure.station, ready, what=what, timeout_s=timeout_s, poll_s=poll_s,
                      checkpoint=procedure.checkpoint, sleep=procedure.sleep, checks=checks,
                      state=state)


def temperature_checks(procedure: Any) -> tuple[Any, ...]:
    """Fault checks while waiting on the temperature: the heater, and a quench if the station
    has a magnet (its field no longer what the run records)."""
    controller = procedure.role("temperature")
    checks = [lambda: check_heater(controller)]
    magnet = procedure.role("magnet", required=False)
    if magnet is not None:
        checks.append(lambda: check_quench(magnet))
    return tuple(checks)


def wait_for_temperature(procedure: Any, target_k: float, band_k: float, hold_s: float,
                         timeout_s: float, poll_s: float = 1.0) -> float:
    """Block until the temperature has stayed within ``target ± band`` for ``hold_s`` (lab
    seconds). Honours pause/stop/abort; fails on an open heater or a quench, and with
    :class:`~daqapp.runner.watchdogs.ConditionTimeout` after ``timeout_s`` lab seconds.
    Returns the last reading."""
    controller = procedure.role("temperature")
    station = procedure.station
    last = {"kelvin": math.nan, "in_band_since": None}

    def settled() -> bool:
        kelvin = last["kelvin"] = float(controller.temperature())
        boost_heater_if_saturated(procedure, kelvin, target_k, band_k)
        if abs(kelvin - target_k) > band_k:
            last["in_band_since"] = None
            return False
        now = lab_time(station)
        if last["in_band_since"] is None:
            last["in_band_since"] = now
        return now - last["in_band_since"] >= hold_s

    wait(procedure, settled, f"temperature not within ±{band_k:g} K of {target_k:g} K "
         f"(held {hold_s:g} s)", timeout_s, poll_s, temperature_checks(procedure),
         lambda: f"now {last['kelvin']:.4g} K")
    return last["kelvin"] if math.isfinite(last["kelvin"]) else controller.temperature()


#: Starting heater range for a target temperature (upper bound in K -> range index, Lake
#: Shore 1 low / 2 medium / 3 high): too much power at a few kelvin risks overshoot, too little
#: cannot get there. :func:`boost_heater_if_saturated` steps up when a range proves too small.
HEATER_RANGE_BY_TEMPERATURE: tuple[tuple[float, int], ...] = ((6.0, 1), (45.0, 2),
                                                             (math.inf, 3))
#: Heater output (% of range) that counts as saturated.
HEATER_SATURATED_PERCENT = 98.0


VOLTMETERS = ("linked", "nanovoltmeter")


def transport_voltmeter(procedure: Any, choice: str, nplc: float | None = None) -> Any:
    """The 2182A on the sample's voltage leads.

    ``linked``: the 2182A slaved to the 6221 over RS-232 (the delta-mode wiring), reached
    through the 6221's pass-through, integrating ``nplc`` line cycles per reading;
    ``nanovoltmeter``: the station's nanovoltmeter role (a 2182A on its own GPIB address).
    On the virtual lab the standalone 2182A senses the point
    contact, and the linked one the sample, as on the seed's bench.
    """
    if choice not in VOLTMETERS:
        raise ConfigError(f"voltmeter = {choice!r}; allowed: {', '.join(VOLTMETERS)}")
    if choice == "nanovoltmeter":
        return procedure.role("nanovoltmeter")
    from drivers.keithley2182 import Keithley2182Via6221

    source = procedure.role("source")
    if nplc is not None:  # integration time per reading (before the adapter caches it)
        source.instrument.serial_send(f":SENS:VOLT:NPLC {nplc:g}")
    delay = lab_seconds_to_real(procedure.station, 0.05)
    return Keithley2182Via6221(source.instrument, resource=f"via {source.resource}",
                               query_delay_s=delay)


def heater_range_for(kelvin: float, allowed: Any = (0, 1, 2, 3)) -> int:
    """The heater range for ``kelvin``, limited to the station's allowed ranges."""
    wanted = next(r for top, r in HEATER_RANGE_BY_TEMPERATURE if kelvin <= top)
    usable = sorted(int(r) for r in allowed if int(r) > 0)
    # A station allowing ranges above 3 has a five-range controller (Lake Shore 340/350, ×10
    # per range): the table's low/medium/high are its top three ranges.
    wanted += max(0, max(usable, default=0) - 3)
    if not usable:
        raise LimitError("heater_ranges_allowed: the station allows no heater range above 0, "
                         "so no temperature can be controlled")
    below = [r for r in usable if r <= wanted]
    return below[-1] if below else usable[0]


def set_heater_for(procedure: Any, kelvin: float) -> int:
    """Put the heater on the range for ``kelvin`` (the safe state leaves it off)."""
    controller = procedure.role("temperature")
    limits = getattr(procedure.station, "limits", None)
    allowed = getattr(limits, "heater_ranges_allowed", None) or (0, 1, 2, 3)
    wanted = heater_range_for(kelvin, allowed)
    if int(controller.heater_range()) != wanted:
        controller.set_heater_range(wanted)
        log.info("heater range set to %d for %g K", wanted, kelvin)
    return wanted


def boost_heater_if_saturated(procedure: Any, kelvin: float, target_k: float,
                              band_k: float) -> None:
    """One range up when the heater is at full output and still below the target."""
    controller = procedure.role("temperature")
    if kelvin >= target_k - band_k or controller.heater_output() < HEATER_SATURATED_PERCENT:
        return
    limits = getattr(procedure.station, "limits", None)
    allowed = sorted(int(r) for r in (getattr(limits, "heater_ranges_allowed", None)
                                      or (0, 1, 2, 3)))
    current = int(controller.heater_range())
    higher = [r for r in allowed if r > current]
    if higher:
        controller.set_heater_range(higher[0])
        log.info("heater saturated at %.4g K (target %g K): range %d -> %d", kelvin, target_k,
                 current, higher[0])


def go_to_temperature(procedure: Any, kelvin: float, rate_k_per_min: float | None) -> None:
    """Heater range for the target, then the set point (ramped at ``rate_k_per_min``; None or
    0 steps)."""
    set_heater_for(procedure, kelvin)
    procedure.role("temperature").set_setpoint(kelvin, rate_k_per_min or None)


def wait_for_field(procedure: Any, target_t: float, timeout_s: float,
                   poll_s: float = 1.0) -> float:
    """Block until the magnet holds at ``target_t``; fails on a quench or after the timeout."""
    magnet = procedure.role("magnet")

    def holding() -> bool:
        return magnet.is_holding() and abs(magnet.target_field() - target_t) < 1e-4

    wait(procedure, holding, f"magnet not holding at {target_t:g} T", timeout_s, poll_s,
         (lambda: check_quench(magnet),),
         lambda: f"now {magnet.field():.4g} T, {magnet.state().value}")
    return magnet.field()


#: Instrument seconds between quench checks of a run that does not move the field.
QUENCH_CHECK_S = 10.0
#: Instrument seconds between compliance (and field-dependent quench) checks: as often as
#: the run control evaluates suspenders while running, not faster while suspended.
FAULT_CHECK_S = 0.5


def start_fault_watch(procedure: Any, source: Any = None, amps: Any = None,
                      field_dependent: bool = False) -> FaultWatch:
    """Watch the faults that corrupt this run's data at its checkpoints, until it ends.

    ``source``: the current source the run drives, checked for compliance every
    :data:`FAULT_CHECK_S` (``amps()`` gives the current it should be driving, for the
    message). A station magnet is checked for a quench as often if the run is
    ``field_dependent``, every :data:`QUENCH_CHECK_S` otherwise. Returns the watch
    (``watch.run(force=True)`` checks now).
    """
    watch = FaultWatch(procedure.station)
    if source is not None:
        watch.add(lambda: check_source_compliance(source, amps() if callable(amps) else amps),
                  FAULT_CHECK_S)
    magnet = procedure.role("magnet", required=False)
    if magnet is not None:
        watch.add(lambda: check_quench(magnet),
                  FAULT_CHECK_S if field_dependent else QUENCH_CHECK_S)
    control = getattr(procedure, "control", None)
    if watch and control is not None:
        control.add_suspender(watch)
    procedure.fault_watch = watch
    return watch


def set_source_current(source: Any, amps: float) -> None:
    """Set the current source and read it back (a dead source takes writes in silence)."""
    source.set_current(amps)
    check_source_applied(source, amps)


def stuck_watch(name: str, procedure: Any, resolution: float = 0.0,
                floor: float = 0.0, unit: str = "V", set_resolution: float = 0.0
                ) -> StuckReading:
    """A :class:`~daqapp.runner.watchdogs.StuckReading` for ``name`` that, when it fires,
    first runs the procedure's fault watch, so a compliance behind the flat readings is the
    cause named."""
    def explain() -> None:
        watch = getattr(procedure, "fault_watch", None)
        if watch is not None:
            watch.run(force=True)

    return StuckReading(name, count=STUCK_COUNT, resolution=resolution, floor=floor,
                        explain=explain, unit=unit, set_resolution=set_resolution)


#: Consecutive readings that may sit still while the set value moves.
STUCK_COUNT = 8


def ramp_time_s(start: float, stop: float, rate_per_min: float) -> float:
    """Seconds a ramp at ``rate_per_min`` takes (0 for a step)."""
    return abs(stop - start) / rate_per_min * 60.0 if rate_per_min > 0 else 0.0


def wall_time() -> float:
    """Epoch seconds for the ``time`` column (comparable across runs and with the log)."""
    return time.time()
