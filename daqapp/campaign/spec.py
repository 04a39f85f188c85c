"""Campaign files: a TOML description of an unattended measurement, validated as a whole.

A campaign is read, checked and expanded into a flat list of :class:`PlannedStep` before any
instrument is touched, so a typo in the last block of an overnight file is reported at once
and not at 3 a.m. Every error names the file, the key path (``step[3].temperature_K``) and
what is allowed.

The file has these tables (see ``examples/*.toml``)::

    [campaign]   name, sample, cell, pressure_GPa, operator, output, series_resistance_ohm
    [station]    file = "station.toml"  |  simulated = true, preset, speed, seed
    [defaults]   field_ramp_T_per_min, temperature_ramp_K_per_min, stabilize, on_fault
    [[suspend]]  kind = "temperature" (band_K, timeout_s) | "magnet" (timeout_s)
    [[heater_zone]]  below_K, range, pid = [P, I, D]  (heater range/PID by target temperature)
    [[step]]     name, procedure, params, field_T, temperature_K, temperature_mode,
                 ramp_K_per_min, stabilize, on_fault, loop

``field_T`` and ``temperature_K`` take a number, a list, or ``{start, stop, step}`` /
``{start, stop, points}``; a block with lists expands to one step per combination. Parameter
values may be ``"$temperature_K"`` or ``"$field_T"`` to receive the loop value.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from daqapp.errors import ConfigError, LimitError, check_number

#: Hard limits a campaign is checked against when the station file gives none.
DEFAULT_TEMPERATURE_RAMP_LIMIT_K_PER_MIN = 20.0

FAULT_ACTIONS = ("skip", "stop")
TEMPERATURE_MODES = ("step", "ramp")
LOOP_ORDERS = ("field-outer", "temperature-outer")
SUSPEND_KINDS = ("temperature", "magnet")
LOOP_VARIABLES = ("temperature_K", "field_T")
#: Most steps a campaign may expand to (a month of 4-minute steps). Counted from the lengths of
#: the field and temperature lists before any combination is built: two lists of 3000 would
#: otherwise make nine million steps and take minutes and gigabytes just to dry-run.
MAX_STEPS = 10_000
#: PID gains a heater zone may set: a Lake Shore 336 takes P and I up to 1000, D up to 200 %.
PID_LIMITS = (("P", 1000.0), ("I", 1000.0), ("D", 200.0))
#: What a step's position and its procedure's own start may differ by (rounding of TOML floats).
POSITION_TOLERANCE = 1e-6


class ProcedureCatalog(Protocol):
    """What the campaign needs to know about procedures: names, checks and time estimates."""

    def names(self) -> list[str]: ...

    def check(self, name: str, params: Mapping[str, Any]) -> None:
        """Raise ``ConfigError``/``ValueError`` naming the bad parameter; touch nothing."""

    def estimate_s(self, name: str, params: Mapping[str, Any]) -> float:
        """Expected duration in (laboratory) seconds."""

    # Optional: ``starting_point(name, params) -> {"field_T": ("fields", 0.0), ...}``, where
    # the procedure itself puts the station first (see ControlledProcedure.starting_point).


@dataclass(frozen=True)
class Stabilize:
    """When a temperature counts as reached: within ``band_K`` for ``time_s`` in a row."""

    band_K: float = 0.1
    time_s: float = 30.0
    timeout_s: float = 1800.0


@dataclass(frozen=True)
class FaultPolicy:
    """What a failing step does: try again ``retries`` times, then skip it or stop everything."""

    retries: int = 1
    then: str = "skip"


@dataclass(frozen=True)
class SuspendRule:
    """Pause acquisition while a condition holds; fail the step if it lasts ``timeout_s``."""

    kind: str
    band_K: float | None = None
    timeout_s: float = 600.0


@dataclass(frozen=True)
class HeaterZone:
    """Heater range (and optionally PID) used for targets below ``below_K``.

    Like a Lake Shore zone table: the right range and gains depend on temperature (a range
    strong enough for 100 K makes a PID tuned there oscillate at 15 K).
    """

    below_K: float
    range: int
    pid: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class StationSpec:
    """Where the instruments come from: a station file, or the in-process virtual lab."""

    file: Path | None = None
    simulated: bool = False
    preset: str | None = None
    speed: float = 1.0
    seed: int | None = None
    #: Extra station tables for the virtual lab (``wiring``, ``limits``, ``safe_state``).
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    def describe(self) -> str:
        if self.file is not None:
            return f"station file {self.file}"
        seed = f", seed {self.seed}" if self.seed is not None else ""
        return f"virtual lab, preset {self.preset}, speed ×{self.speed:g}{seed}"


@dataclass(frozen=True)
class PlannedStep:
    """One unit of work: position field and temperature, then (optionally) run a procedure.

    ``key`` is stable across runs of the same file: it names the run file and the manifest
    entry, which is what lets ``resume`` recognise finished work.
    """

    index: int
    key: str
    block: str
    procedure: str | None
    params: dict[str, Any]
    field_T: float | None
    temperature_K: float | None
    temperature_mode: str
    ramp_K_per_min: float | None
    field_ramp_T_per_min: float
    stabilize: Stabilize
    on_fault: FaultPolicy
    estimate_s: float = 0.0

    def describe(self) -> str:
        parts = []
        if self.field_T is not None:
            parts.append(f"B = {self.field_T:g} T")
        if self.temperature_K is not None:
            how = (f"ramp {self.ramp_K_per_min:g} K/min" if self.temperature_mode == "ramp"
                   else "step")
            parts.append(f"T = {self.temperature_K:g} K ({how}, ±{self.stabilize.band_K:g} K "
                         f"for {self.stabilize.time_s:g} s)")
        parts.append(f"run {self.procedure}" if self.procedure else "position only")
        return ", ".join(parts)


@dataclass(frozen=True)
class Campaign:
    """A validated, expanded campaign file."""

    path: Path
    name: str
    station: StationSpec
    steps: tuple[PlannedStep, ...]
    suspend: tuple[SuspendRule, ...] = ()
    heater_zones: tuple[HeaterZone, ...] = ()
    output: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source_text: str = ""

    @property
    def total_estimate_s(self) -> float:
        return sum(step.estimate_s for step in self.steps)


# --------------------------------------------------------------------------- reading


#: ``limits`` that bound nothing: for reading a campaign's structure (which station it names)
#: before that station's own limits are known.
UNBOUNDED_LIMITS = {"field_T": math.inf, "temperature_min_K": 0.0,
                    "temperature_max_K": math.inf, "field_rate_T_per_min": math.inf}


def station_default_limits() -> dict[str, float]:
    """The field and temperature limits of a station file that sets none: one set of
    defaults (``daqapp.station.config.Limits``) for station and campaign alike."""
    from daqapp.station.config import Limits

    d = Limits()
    return {"field_T": d.max_field_t, "temperature_min_K": d.temperature_min_k,
            "temperature_max_K": d.temperature_max_k,
            "field_rate_T_per_min": d.max_field_ramp_t_per_min}


def load_campaign(path: str | Path, catalog: ProcedureCatalog | None = None,
                  limits: Mapping[str, Any] | None = None) -> Campaign:
    """Read, validate and expand a campaign file; raise ``ConfigError`` naming the key.

    ``catalog`` checks every procedure's parameters and supplies time estimates; without it
    only the campaign's own structure is checked. ``limits`` may override the field and
    temperature limits (keys ``field_T``, ``temperature_min_K``, ``temperature_max_K``,
    ``field_rate_T_per_min``) and give the heater ranges the station allows
    (``heater_ranges_allowed``, checked against every ``[[heater_zone]]``).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: campaign file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
    return parse_campaign(text, path, catalog=catalog, limits=limits)


def parse_campaign(text: str, path: str | Path = "<campaign>",
                   catalog: ProcedureCatalog | None = None,
                   limits: Mapping[str, Any] | None = None) -> Campaign:
    """Parse campaign TOML ``text``; ``path`` is used in messages and to resolve relative files."""
    path = Path(path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return _Reader(path, catalog, dict(limits or {})).read(doc, text)


class _Reader:
    def __init__(self, path: Path, catalog: ProcedureCatalog | None,
                 limits: dict[str, Any]) -> None:
        self.path = path
        self.catalog = catalog
        defaults = station_default_limits()
        self.field_limit = float(limits.get("field_T", defaults["field_T"]))
        self.t_min = float(limits.get("temperature_min_K", defaults["temperature_min_K"]))
        self.t_max = float(limits.get("temperature_max_K", defaults["temperature_max_K"]))
        self.field_rate_limit = float(limits.get("field_rate_T_per_min",
                                                 defaults["field_rate_T_per_min"]))
        self.heater_ranges = tuple(int(r) for r in limits.get("heater_ranges_allowed") or ())
        #: (procedure, params) -> its starting point, checked once per distinct parameter set
        self._checked: dict[tuple[str, str], dict[str, tuple[str, float]]] = {}

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {message}")

    # -- top level
    def read(self, doc: dict[str, Any], text: str) -> Campaign:
        self.keys(doc, "", {"campaign", "station", "defaults", "suspend", "step",
                            "heater_zone"})
        head = self.table(doc, "campaign", required=True)
        self.keys(head, "campaign", {"name", "sample", "cell", "pressure_GPa", "operator",
                                     "output", "description", "series_resistance_ohm"})
        name = self.string(head, "campaign", "name", required=True)
        metadata = {k: head[k] for k in ("sample", "cell", "pressure_GPa", "operator",
                                         "description") if k in head}
        for k in ("sample", "cell", "operator", "description"):
            if k in metadata and not isinstance(metadata[k], str):
                raise self.fail(f"campaign.{k}", "must be a string")
        if "pressure_GPa" in metadata:
            metadata["pressure_GPa"] = self.number(head, "campaign", "pressure_GPa", 0, 1000)
        if "series_resistance_ohm" in head:
            # lead/spreading resistance in series with the contact (3-terminal), measured
            # separately; stored with every run so the report can remove it (V_c = V − I·R_s)
            metadata["series_resistance_ohm"] = self.number(head, "campaign",
                                                            "series_resistance_ohm", 0, 1e6)
        output = None
        if "output" in head:
            output = self.resolve(self.string(head, "campaign", "output"))
        station = self.station(self.table(doc, "station", required=True))
        defaults = self.table(doc, "defaults")
        self.keys(defaults, "defaults", {"field_ramp_T_per_min", "temperature_ramp_K_per_min",
                                         "stabilize", "on_fault"})
        base = _BlockDefaults(
            field_rate=self.number(defaults, "defaults", "field_ramp_T_per_min",
                                   1e-4, self.field_rate_limit, default=0.5),
            t_ramp=self.number(defaults, "defaults", "temperature_ramp_K_per_min", 1e-3,
                               DEFAULT_TEMPERATURE_RAMP_LIMIT_K_PER_MIN, default=None),
            stabilize=self.stabilize(defaults.get("stabilize"), "defaults.stabilize",
                                     Stabilize()),
            on_fault=self.on_fault(defaults.get("on_fault"), "defaults.on_fault",
                                   FaultPolicy()),
        )
        suspend = tuple(self.suspend_rule(rule, f"suspend[{i}]")
                        for i, rule in enumerate(self.array(doc, "suspend")))
        zones = tuple(self.heater_zone(z, f"heater_zone[{i}]")
                      for i, z in enumerate(self.array(doc, "heater_zone")))
        bounds = [z.below_K for z in zones]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise self.fail("heater_zone", "zones must be listed by increasing below_K")
        blocks = self.array(doc, "step")
        if not blocks:
            raise self.fail("step", "a campaign needs at least one [[step]] block")
        steps: list[PlannedStep] = []
        seen_names: set[str] = set()
        for i, block in enumerate(blocks):
            steps.extend(self.block(block, i, base, seen_names, len(steps)))
        return Campaign(path=self.path, name=name, station=station, steps=tuple(steps),
                        suspend=suspend, heater_zones=zones, output=output, metadata=metadata,
                        source_text=text)

    # -- station
    def station(self, table: dict[str, Any]) -> StationSpec:
        self.keys(table, "station", {"file", "simulated", "preset", "speed", "seed", "wiring",
                                     "limits", "safe_state"})
        simulated = table.get("simulated", False)
        if not isinstance(simulated, bool):
            raise self.fail("station.simulated", "must be true or false")
        tables = {k: table[k] for k in ("wiring", "limits", "safe_state") if k in table}
        for key, value in tables.items():
            if not isinstance(value, dict):
                raise self.fail(f"station.{key}", "must be a table (as in a station file)")
        if "file" in table:
            if tables:
                raise self.fail(f"station.{next(iter(tables))}", "belongs in the station file "
                                "when one is given")
            if simulated or "preset" in table:
                raise self.fail("station", "give either file = \"...\" or simulated = true "
                                           "with a preset, not both")
            file = self.resolve(self.string(table, "station", "file"))
            if not file.is_file():
                raise self.fail("station.file", f"{file} does not exist")
            return StationSpec(file=file)
        if not simulated:
            raise self.fail("station", "needs file = \"station.toml\" or simulated = true")
        preset = self.string(table, "station", "preset", required=True)
        speed = self.number(table, "station", "speed", 0.01, 1e6, default=1.0)
        seed = table.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)
                                 or seed < 0):
            raise self.fail("station.seed", f"must be a non-negative integer, got {seed!r}")
        return StationSpec(simulated=True, preset=preset, speed=speed, seed=seed, tables=tables)

    # -- step blocks
    def block(self, block: Any, i: int, base: _BlockDefaults, seen: set[str],
              first_index: int) -> list[PlannedStep]:
        where = f"step[{i}]"
        if not isinstance(block, dict):
            raise self.fail(where, "must be a table ([[step]])")
        name = self.string(block, where, "name", required=True)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise self.fail(f"{where}.name", f"{name!r} may hold only letters, digits, "
                                             "'_', '.', '-' (it names the run files)")
        if name in seen:
            raise self.fail(f"{where}.name", f"{name!r} is used by an earlier step")
        seen.add(name)
        where = f"step[{i}] ({name})"
        self.keys(block, where, {"name", "procedure", "params", "field_T", "temperature_K",
                                 "temperature_mode", "ramp_K_per_min", "field_ramp_T_per_min",
                                 "stabilize", "on_fault", "loop"})
        procedure = block.get("procedure")
        if procedure is not None and not isinstance(procedure, str):
            raise self.fail(f"{where}.procedure", "must be a string")
        if procedure is not None and self.catalog is not None:
            names = self.catalog.names()
            if procedure not in names:
                why = getattr(self.catalog, "why_missing", None)  # a catalog may not say why
                raise self.fail(f"{where}.procedure", why(procedure) if callable(why) else
                                f"unknown procedure {procedure!r}; known: {', '.join(names)}")
        params = block.get("params", {})
        if not isinstance(params, dict):
            raise self.fail(f"{where}.params", "must be a table of parameter = value")
        if params and procedure is None:
            raise self.fail(f"{where}.params", "given without a procedure")
        fields = self.loop_values(block, where, "field_T", -self.field_limit, self.field_limit)
        temps = self.loop_values(block, where, "temperature_K", self.t_min, self.t_max)
        mode = block.get("temperature_mode", "step")
        if mode not in TEMPERATURE_MODES:
            raise self.fail(f"{where}.temperature_mode",
                            f"{mode!r} is not one of {', '.join(TEMPERATURE_MODES)}")
        ramp = self.number(block, where, "ramp_K_per_min", 1e-3,
                           DEFAULT_TEMPERATURE_RAMP_LIMIT_K_PER_MIN, default=base.t_ramp)
        if mode == "ramp" and ramp is None:
            raise self.fail(f"{where}.ramp_K_per_min", "temperature_mode = \"ramp\" needs a "
                                                       "ramp rate (here or in [defaults])")
        field_rate = self.number(block, where, "field_ramp_T_per_min", 1e-4,
                                 self.field_rate_limit, default=base.field_rate)
        stabilize = self.stabilize(block.get("stabilize"), f"{where}.stabilize",
                                   base.stabilize)
        on_fault = self.on_fault(block.get("on_fault"), f"{where}.on_fault", base.on_fault)
        loop = block.get("loop", "field-outer")
        if loop not in LOOP_ORDERS:
            raise self.fail(f"{where}.loop", f"{loop!r} is not one of {', '.join(LOOP_ORDERS)}")
        if procedure is None and fields == [None] and temps == [None]:
            raise self.fail(where, "does nothing: give a procedure, field_T or temperature_K")
        for key, value in params.items():
            if isinstance(value, str) and value.startswith("$"):
                var = value[1:]
                if var not in LOOP_VARIABLES:
                    raise self.fail(f"{where}.params.{key}",
                                    f"{value!r}: only $temperature_K and $field_T can be used")
                if (var == "temperature_K" and temps == [None]) or (
                        var == "field_T" and fields == [None]):
                    raise self.fail(f"{where}.params.{key}",
                                    f"{value!r} used but the step sets no {var}")

        if first_index + len(fields) * len(temps) > MAX_STEPS:
            before = f" after the {first_index} steps before it" if first_index else ""
            raise self.fail(where, f"field_T x temperature_K = {len(fields)} x {len(temps)} "
                                   f"steps{before}: a campaign has at most {MAX_STEPS} steps "
                                   "(split it into several campaigns)")
        combos = ([(b, t) for b in fields for t in temps] if loop == "field-outer"
                  else [(b, t) for t in temps for b in fields])
        steps = []
        for n, (b, t) in enumerate(combos):
            index = first_index + n
            concrete = {k: _substitute(v, t, b) for k, v in params.items()}
            if procedure is not None and self.catalog is not None:
                self.check_procedure(where, procedure, concrete, b, t)
            step = PlannedStep(
                index=index, key=_step_key(index, name, t, b, len(combos) > 1),
                block=name, procedure=procedure, params=concrete, field_T=b, temperature_K=t,
                temperature_mode=mode, ramp_K_per_min=ramp if mode == "ramp" else None,
                field_ramp_T_per_min=field_rate, stabilize=stabilize, on_fault=on_fault)
            steps.append(step)
        return steps

    def check_procedure(self, where: str, procedure: str, params: dict[str, Any],
                        field_t: float | None, temperature: float | None) -> None:
        """The step's parameters pass the procedure's validation, and the procedure starts
        where the step put the station: ``rt`` with ``field_T = 1`` but its default ``fields =
        0`` would ramp the magnet to 1 T and then measure at 0 T."""
        cache_key = (procedure, repr(sorted(params.items())))
        start = self._checked.get(cache_key)
        if start is None:
            try:
                self.catalog.check(procedure, params)
                starting_point = getattr(self.catalog, "starting_point", None)
                start = dict(starting_point(procedure, params)) if starting_point else {}
            except (ConfigError, ValueError, TypeError, ArithmeticError) as exc:
                raise self.fail(f"{where}.params", _strip_prefix(str(exc))) from None
            self._checked[cache_key] = start
        for name, value, unit in (("field_T", field_t, "T"), ("temperature_K", temperature,
                                                               "K")):
            if value is None or name not in start:
                continue
            key, first = start[name]
            if abs(first - value) > POSITION_TOLERANCE * max(1.0, abs(value)):
                raise self.fail(f"{where}.{name}",
                                f"{name} = {value:g} {unit} but {procedure} starts at "
                                f"{key} = {first:g} {unit} (it sets it itself, undoing the "
                                f"step's position); give params.{key} = \"${name}\" or "
                                f"{value:g}, or drop {name}")

    def loop_values(self, block: dict[str, Any], where: str, key: str, low: float,
                    high: float) -> list[float | None]:
        if key not in block:
            return [None]
        raw = block[key]
        unit = key.rsplit("_", 1)[1]
        name = f"{where}.{key}"
        if isinstance(raw, dict):
            self.keys(raw, name, {"start", "stop", "step", "points"})
            for k in ("start", "stop"):
                if k not in raw:
                    raise self.fail(name, "a range needs start and stop (and step or points)")
            start = self.number(raw, name, "start", low, high)
            stop = self.number(raw, name, "stop", low, high)
            if ("step" in raw) == ("points" in raw):
                raise self.fail(name, "give exactly one of step or points")
            if "points" in raw:
                points = raw["points"]
                if not isinstance(points, int) or isinstance(points, bool) or not 1 <= points \
                        <= 10000:
                    raise self.fail(f"{name}.points", "must be an integer from 1 to 10000")
                if points == 1:
                    return [start]
                values = [start + (stop - start) * i / (points - 1) for i in range(points)]
            else:
                step = self.number(raw, name, "step", 1e-6, high - low if high > low else 1e9)
                count = int(math.floor(abs(stop - start) / step + 1e-9)) + 1
                if count > 10000:
                    raise self.fail(name, f"expands to {count} values (at most 10000)")
                sign = 1.0 if stop >= start else -1.0
                values = [start + sign * step * i for i in range(count)]
            return [round(v, 9) for v in values]
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            raise self.fail(name, "is an empty list")
        if len(items) > MAX_STEPS:
            raise self.fail(name, f"{len(items)} values (a campaign has at most {MAX_STEPS} "
                                  "steps)")
        values = []
        for j, v in enumerate(items):
            if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v):
                raise self.fail(f"{name}[{j}]" if isinstance(raw, list) else name,
                                f"{v!r} is not a number in {unit}")
            try:
                check_number(f"{name}[{j}]" if isinstance(raw, list) else name, v, unit=unit)
            except LimitError as exc:  # inf or a denormal
                raise ConfigError(f"{self.path}: {exc}") from None
            if not low <= v <= high:
                raise self.fail(f"{name}[{j}]" if isinstance(raw, list) else name,
                                f"{v:g} {unit} is outside the allowed range {low:g} to "
                                f"{high:g} {unit}")
            values.append(float(v))
        return values

    # -- sub-tables
    def stabilize(self, raw: Any, where: str, base: Stabilize) -> Stabilize:
        if raw is None:
            return base
        if not isinstance(raw, dict):
            raise self.fail(where, "must be a table {band_K, time_s, timeout_s}")
        self.keys(raw, where, {"band_K", "time_s", "timeout_s"})
        result = replace(
            base,
            band_K=self.number(raw, where, "band_K", 1e-4, 50, default=base.band_K),
            time_s=self.number(raw, where, "time_s", 0, 86400, default=base.time_s),
            timeout_s=self.number(raw, where, "timeout_s", 1, 7 * 86400,
                                  default=base.timeout_s))
        if result.timeout_s <= result.time_s:
            raise self.fail(f"{where}.timeout_s", f"{result.timeout_s:g} s must exceed time_s "
                                                  f"= {result.time_s:g} s")
        return result

    def on_fault(self, raw: Any, where: str, base: FaultPolicy) -> FaultPolicy:
        if raw is None:
            return base
        if isinstance(raw, str):
            raw = {"then": raw, "retries": 0} if raw in FAULT_ACTIONS else {"then": raw}
        if not isinstance(raw, dict):
            raise self.fail(where, "must be \"skip\", \"stop\" or a table {retries, then}")
        self.keys(raw, where, {"retries", "then"})
        retries = raw.get("retries", base.retries)
        if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 20:
            raise self.fail(f"{where}.retries", f"{retries!r}: must be an integer 0 to 20")
        then = raw.get("then", base.then)
        if then not in FAULT_ACTIONS:
            raise self.fail(f"{where}.then", f"{then!r} is not one of {', '.join(FAULT_ACTIONS)}")
        return FaultPolicy(retries=retries, then=then)

    def suspend_rule(self, raw: Any, where: str) -> SuspendRule:
        if not isinstance(raw, dict):
            raise self.fail(where, "must be a table ([[suspend]])")
        kind = raw.get("kind")
        if kind not in SUSPEND_KINDS:
            raise self.fail(f"{where}.kind", f"{kind!r} is not one of {', '.join(SUSPEND_KINDS)}")
        if kind == "temperature":
            self.keys(raw, where, {"kind", "band_K", "timeout_s"})
            band = self.number(raw, where, "band_K", 1e-4, 50, default=None)
            if band is None:
                raise self.fail(f"{where}.band_K", "a temperature rule needs band_K")
        else:
            self.keys(raw, where, {"kind", "timeout_s"})
            band = None
        timeout = self.number(raw, where, "timeout_s", 1, 7 * 86400, default=600.0)
        return SuspendRule(kind=kind, band_K=band, timeout_s=timeout)

    def heater_zone(self, raw: Any, where: str) -> HeaterZone:
        if not isinstance(raw, dict):
            raise self.fail(where, "must be a table ([[heater_zone]])")
        self.keys(raw, where, {"below_K", "range", "pid"})
        below = self.number(raw, where, "below_K", 0.0, 1000.0)
        rng = raw.get("range")
        if not isinstance(rng, int) or isinstance(rng, bool) or not 0 <= rng <= 10:
            raise self.fail(f"{where}.range", f"{rng!r}: must be a heater range index 0 to 10")
        if self.heater_ranges and rng not in self.heater_ranges:
            raise self.fail(f"{where}.range", f"{rng}: the station allows heater ranges "
                                              f"{', '.join(map(str, self.heater_ranges))} "
                                              "(limits.heater_ranges_allowed)")
        pid = raw.get("pid")
        if pid is not None:
            if not isinstance(pid, list) or len(pid) != 3:
                raise self.fail(f"{where}.pid", f"{pid!r}: must be [P, I, D]")
            pid = tuple(self.number({gain: v}, f"{where}.pid", gain, 0.0, top)
                        for (gain, top), v in zip(PID_LIMITS, pid, strict=True))
        return HeaterZone(below_K=below, range=rng, pid=pid)

    # -- primitives
    def keys(self, table: dict[str, Any], where: str, allowed: set[str]) -> None:
        unknown = sorted(set(table) - allowed)
        if unknown:
            prefix = f"{where}." if where else ""
            raise self.fail(f"{prefix}{unknown[0]}",
                            f"unknown key; allowed: {', '.join(sorted(allowed))}")

    def table(self, doc: dict[str, Any], key: str, required: bool = False) -> dict[str, Any]:
        if key not in doc:
            if required:
                raise self.fail(f"[{key}]", "missing table")
            return {}
        if not isinstance(doc[key], dict):
            raise self.fail(key, "must be a table")
        return doc[key]

    def array(self, doc: dict[str, Any], key: str) -> list[Any]:
        value = doc.get(key, [])
        if isinstance(value, dict):
            raise self.fail(key, f"write [[{key}]] (an array of tables), not [{key}]")
        if not isinstance(value, list):
            raise self.fail(key, f"must be an array of tables ([[{key}]])")
        return value

    def string(self, table: dict[str, Any], where: str, key: str,
               required: bool = False) -> str:
        if key not in table:
            if required:
                raise self.fail(f"{where}.{key}", "missing (a string is required)")
            return ""
        value = table[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{where}.{key}", f"{value!r}: must be a non-empty string")
        return value

    def number(self, table: dict[str, Any], where: str, key: str, low: float, high: float,
               default: Any = ...) -> Any:
        if key not in table:
            if default is ...:
                raise self.fail(f"{where}.{key}", "missing (a number is required)")
            return default
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"{where}.{key}", f"{value!r} is not a number")
        try:  # finite, normal, in range: the rule of every number a user gives
            return check_number(f"{where}.{key}", value, low, high)
        except LimitError as exc:
            raise ConfigError(f"{self.path}: {exc}") from None

    def resolve(self, text: str) -> Path:
        p = Path(text).expanduser()
        return p if p.is_absolute() else (self.path.parent / p)


@dataclass(frozen=True)
class _BlockDefaults:
    field_rate: float
    t_ramp: float | None
    stabilize: Stabilize
    on_fault: FaultPolicy


def zone_for(zones: tuple[HeaterZone, ...], kelvin: float) -> HeaterZone | None:
    """The first zone whose ``below_K`` exceeds ``kelvin`` (None: no zones, or above all)."""
    for zone in zones:
        if kelvin < zone.below_K:
            return zone
    return None


def _substitute(value: Any, temperature: float | None, field_t: float | None) -> Any:
    if value == "$temperature_K":
        return temperature
    if value == "$field_T":
        return field_t
    return value


def _strip_prefix(message: str) -> str:
    return message.strip()


def _fmt(value: float) -> str:
    text = f"{value:g}"
    return text.replace("-", "m").replace(".", "p")


def _step_key(index: int, name: str, temperature: float | None, field_t: float | None,
              looped: bool) -> str:
    parts = [f"{index + 1:03d}", name]
    if looped or temperature is not None:
        if field_t is not None:
            parts.append(f"{_fmt(field_t)}T")
        if temperature is not None:
            parts.append(f"{_fmt(temperature)}K")
    return "-".join(parts)


def with_estimates(campaign: Campaign, catalog: ProcedureCatalog | None) -> Campaign:
    """Return ``campaign`` with each step's estimate: positioning, settling and procedure."""
    steps = []
    field_now = 0.0
    temp_now: float | None = None
    procedure_s: dict[tuple[str, str], float] = {}  # one estimate per distinct parameter set
    for step in campaign.steps:
        seconds = 0.0
        if step.field_T is not None:
            seconds += abs(step.field_T - field_now) / step.field_ramp_T_per_min * 60.0
            field_now = step.field_T
        if step.temperature_K is not None:
            delta = abs(step.temperature_K - temp_now) if temp_now is not None else 10.0
            if step.temperature_mode == "ramp" and step.ramp_K_per_min:
                seconds += delta / step.ramp_K_per_min * 60.0
            else:
                seconds += min(600.0, 30.0 + 10.0 * delta)
            seconds += step.stabilize.time_s
            temp_now = step.temperature_K
        if step.procedure is not None and catalog is not None:
            key = (step.procedure, repr(sorted(step.params.items())))
            if key not in procedure_s:
                procedure_s[key] = max(0.0, float(catalog.estimate_s(step.procedure,
                                                                     step.params)))
            seconds += procedure_s[key]
        steps.append(replace(step, estimate_s=seconds))
    return replace(campaign, steps=tuple(steps))


def iter_step_lines(campaign: Campaign, speed: float = 1.0) -> Iterable[str]:
    """Human-readable expanded steps with estimates (``speed`` divides laboratory time)."""
    for step in campaign.steps:
        yield (f"{step.key:<28} {step.describe()}  ~{format_duration(step.estimate_s / speed)}")


def format_duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
