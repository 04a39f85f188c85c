"""The one spectrum analysis: prepare → mask → normal-state background → fit → rank → Δ(T).

Every consumer — ``daqapp fit``, the on-line fit worker (window, campaigns, replay) and the
report — calls these functions, so one spectrum gives one set of numbers wherever it is shown.
Why one path: three copies that prepared, masked and normalised each in their own way gave
Δ1 = 24.8 and 23.0 meV for the same file (an uncorrected 25 Ω lead alone adds 26 % to Δ1 at
χ²_red = 1.00, physics.md §2.9).

The steps:

* :func:`prepare` — junction voltage and conductance from what was recorded (dI/dV or dV/dI
  against voltage, dV/dI or V against current), series (lead) resistance removed from the
  spectrum *and* from a measured normal-state reference, bias offset V0 (fitted by default),
  critical-current dips masked and reported, divided by a normal-state divisor (the reference,
  else the constant edge level), noise σ estimated.
* :func:`analyse_spectrum` — each model fitted with the normal-state background
  (``BTKModel.background``: scale·(1 + slope·V + curvature·V²)) free *jointly* with the BTK
  conductance, so the result does not depend on the divisor; lock-in modulation broadening
  in the model; the models ranked by AIC (:class:`~daqapp.analysis.fit.ModelComparison`);
  a spectrum with no gap (above Tc, a normal-state reference) recognised by comparing with a
  gap-free background.
* :func:`analyse_series` — Δ(T) of the spectra that have a gap, BCS fits, and Tc only when the
  data determine it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from daqapp.analysis.fit import (
    BTKModel,
    FitResult,
    ModelComparison,
    estimate_noise,
    fit_spectrum,
    parse_model,
    profile_interval,
    verdict,
)
from daqapp.analysis.spectrum import (
    PreparedSpectrum,
    correct_series_resistance,
    critical_current_dips,
    dip_positions,
    junction_from_current,
    offset_from_symmetry,
)
from daqapp.errors import ConfigError

#: What a recorded spectrum holds: x axis and signal.
#: "didv": dI/dV (S, or G/G_N) against bias voltage (mV); "dvdi": dV/dI (Ω) against bias
#: voltage; "dvdi_i": dV/dI (Ω) against current (mA); "v_i": voltage (mV) against current (mA).
KINDS = ("didv", "dvdi", "dvdi_i", "v_i")
#: A conductance whose outer edges sit within this band around 1 is taken as normalised.
NORMALIZED_EDGE_BAND = (0.8, 1.25)
#: ΔAIC a BTK model must win by over a gap-free normal-state background to count as a gap.
NO_GAP_DELTA_AIC = 10.0
#: ... and must explain most of the structure: χ²(gap-free) above this multiple of χ²(BTK) ...
NO_GAP_CHI2_RATIO = 3.0
#: ... and the largest |G_BTK − 1| of the fitted gaps, in noise σ, below which there is none.
NO_GAP_AMPLITUDE_SIGMAS = 5.0
#: A Δ2 below this fraction of its low-temperature value is not resolved (lost in smearing).
DELTA2_RESOLVED_FRACTION = 0.3
#: Sweeps at one temperature that differ by more than this many noise σ (rms) are flagged.
HEATING_SIGMAS = 3.0
#: Evaluations of the final polish: the joint background and V0 make 11 free parameters for
#: s+s, and a smeared spectrum's shallow valley needs more than the fit's default 100.
MAX_NFEV = 300
#: Spectra this close in temperature count as "not warmer" along a series.
SERIES_T_TOLERANCE_K = 0.5
#: A spectrum whose χ²_red exceeds this multiple of the series' median does not constrain.
SERIES_OUTLIER_CHI2 = 3.0
#: Tc counts as determined when its error is below this fraction of it ...
TC_MAX_RELATIVE_ERROR = 0.2
#: ... and the warmest spectrum with a gap reaches this fraction of it (Δ has visibly fallen).
TC_MIN_REACH = 0.7


# --------------------------------------------------------------------------- options, facts


@dataclass(frozen=True)
class AnalysisOptions:
    """The choices of one analysis; every consumer builds one of these (see ``options_from_run``).

    ``series_resistance_ohm``: lead/spreading resistance in series with the junction (None:
    none known). ``v0_mV``: bias offset — a number is subtracted, "auto" fits it (starting
    from the spectrum's symmetry), None leaves the axis alone. ``modulation_mV_rms``: lock-in
    ac voltage across the junction (None: from the spectrum or run, else 0). ``normalized``:
    True for G/G_N input (background held at 1), False for raw, None to detect (outer edges
    ≈ 1). ``sigma``: noise of one point of the normalised conductance (None: estimated).
    ``max_bias_mV``/``bias_window_mV``: the junction-bias range fitted. ``profile``: add
    profile-likelihood intervals of the gaps. ``normal_fraction``: fit the parallel
    normal-conductance fraction ``p_normal`` (held at 0 otherwise).
    """

    models: tuple[str, ...] = ("s+s",)
    dimension: int = 2
    series_resistance_ohm: float | None = None
    v0_mV: float | str | None = "auto"
    modulation_mV_rms: float | None = None
    normalized: bool | None = None
    mask_dips: bool = True
    max_bias_mV: float | None = None
    sigma: float | None = None
    temperature_K: float | None = None
    gap_form: str = "bcs"
    bias_window_mV: tuple[float, float] | None = None
    profile: bool = False
    normal_fraction: bool = False

    def __post_init__(self) -> None:
        models = (self.models,) if isinstance(self.models, str) else tuple(self.models)
        if not models:
            raise ConfigError("models: give at least one model (e.g. 's+s')")
        for m in models:
            try:
                parse_model(m)
            except ValueError as exc:
                raise ConfigError(f"models: {exc}") from None
        object.__setattr__(self, "models", tuple(dict.fromkeys(models)))
        if self.dimension not in (1, 2, 3):
            raise ConfigError(f"dimension = {self.dimension!r} is not allowed (allowed: 1, 2, 3)")
        _check_nonnegative("series_resistance_ohm", self.series_resistance_ohm, "Ω")
        _check_nonnegative("modulation_mV_rms", self.modulation_mV_rms, "mV")
        if isinstance(self.v0_mV, str) and self.v0_mV != "auto":
            raise ConfigError(f"v0_mV = {self.v0_mV!r} is not allowed (allowed: a number in "
                              "mV, 'auto' or None)")
        if isinstance(self.v0_mV, int | float) and not math.isfinite(self.v0_mV):
            raise ConfigError(f"v0_mV = {self.v0_mV!r}: allowed is a finite number of mV")
        if self.sigma is not None and not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ConfigError(f"sigma = {self.sigma:g} is outside the allowed range > 0 "
                              "(the noise of one point)")
        if self.max_bias_mV is not None and not (math.isfinite(self.max_bias_mV)
                                                 and self.max_bias_mV > 0):
            raise ConfigError(f"max_bias_mV = {self.max_bias_mV:g} is outside the allowed "
                              "range > 0 mV")
        if self.bias_window_mV is not None and not (
                len(self.bias_window_mV) == 2 and self.bias_window_mV[0] < self.bias_window_mV[1]):
            raise ConfigError(f"bias_window_mV = {self.bias_window_mV!r}: allowed is (min, max) "
                              "with min < max, in mV")
        if self.temperature_K is not None and not (math.isfinite(self.temperature_K)
                                                   and self.temperature_K >= 0):
            raise ConfigError(f"temperature_K = {self.temperature_K:g} is outside the allowed "
                              "range 0 to inf K")

    def with_facts(self, facts: RunFacts) -> AnalysisOptions:
        """These options with the run's own facts filled in where nothing was chosen."""
        return replace(self, series_resistance_ohm=(
            self.series_resistance_ohm if self.series_resistance_ohm is not None
            else facts.series_resistance_ohm))


def _check_nonnegative(name: str, value: float | None, unit: str) -> None:
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{name} = {value:g} {unit} is outside the allowed range 0 to inf "
                          f"{unit}")


@dataclass(frozen=True)
class RunFacts:
    """What a run file (or a live run) says about its own measurement.

    ``series_resistance_ohm`` from the campaign (run metadata) or the station wiring;
    ``excitation_V_rms`` and ``bias_resistor_ohm`` from the lock-in procedure's parameters
    and wiring, which give the ac voltage across the junction (:meth:`modulation_mV`).
    """

    series_resistance_ohm: float | None = None
    series_resistance_source: str = ""
    excitation_V_rms: float | None = None
    bias_resistor_ohm: float | None = None
    #: the 6221 DCON procedure's current step dI between its alternating readings (A)
    dcon_delta_A: float | None = None

    def modulation_mV(self, junction_ohm: float) -> float | None:
        """rms ac voltage (mV) across a junction of ``junction_ohm``: the excitation through
        R_b, the lead and the junction in series."""
        if not (self.excitation_V_rms and self.bias_resistor_ohm and junction_ohm > 0):
            return None
        total = self.bias_resistor_ohm + (self.series_resistance_ohm or 0.0) + junction_ohm
        return 1e3 * self.excitation_V_rms * junction_ohm / total


def _number(value: Any) -> float | None:
    if isinstance(value, Mapping):
        value = value.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def run_facts(metadata: Mapping[str, Any] | None = None,
              parameters: Mapping[str, Any] | None = None,
              wiring: Any = None) -> RunFacts:
    """Facts from a run's metadata, procedure parameters ({name: value or {"value": …}}) and
    station wiring (a ``Wiring`` or its dict): campaign R_s first, then the wiring's."""
    metadata = metadata or {}
    parameters = parameters or {}
    if wiring is not None and not isinstance(wiring, Mapping):
        wiring = {k: getattr(wiring, k) for k in ("series_resistance_ohm", "bias_resistor_ohm")
                  if hasattr(wiring, k)}
    wiring = wiring or {}
    rs, source = _number(metadata.get("series_resistance_ohm")), "campaign"
    if rs is None:
        rs, source = _number(wiring.get("series_resistance_ohm")), "station wiring"
    resistor = _number(parameters.get("bias_resistor")) or _number(
        wiring.get("bias_resistor_ohm"))
    excitation = _number(parameters.get("excitation"))
    if excitation is not None and resistor is None:
        resistor = 48e3  # DESIGN.md's bias network, as the procedures assume without a station
    delta = _number(parameters.get("delta")) if "excitation" not in parameters else None
    return RunFacts(rs, source if rs is not None else "", excitation, resistor, delta)


def facts_from_run(run: Any) -> RunFacts:
    """:func:`run_facts` of a run file reader (``open_run``) or a live ``daqapp.runner.Run``."""
    metadata = dict(getattr(run, "metadata", None) or {})
    parameters = getattr(run, "parameters", None)
    wiring = None
    procedure = getattr(run, "procedure", None)
    if parameters is None and procedure is not None and not isinstance(procedure, str):
        parameters = {k: getattr(procedure, k) for k in ("excitation", "bias_resistor", "delta")
                      if isinstance(getattr(procedure, k, None), int | float)}
    station = getattr(run, "station", None)
    if station is not None:
        wiring = getattr(getattr(station, "config", station), "wiring", None)
    if wiring is None:
        snapshots = getattr(run, "snapshots", None) or {}
        start = snapshots.get("start", {}) if isinstance(snapshots, Mapping) else {}
        wiring = start.get("wiring") if isinstance(start, Mapping) else None
    return run_facts(metadata, dict(parameters or {}), wiring)


def options_from_run(run: Any, base: AnalysisOptions | None = None) -> AnalysisOptions:
    """``base`` (default options) completed with the run's own facts (:func:`facts_from_run`)."""
    return (base or AnalysisOptions()).with_facts(facts_from_run(run))


# --------------------------------------------------------------------------- raw spectra


@dataclass(eq=False)  # holds arrays: identity, not element-wise ==
class RawSpectrum:
    """One recorded spectrum as it came from the instrument, before any correction.

    ``x``: bias voltage (mV) for kinds "didv"/"dvdi", current (mA) for "dvdi_i"/"v_i" (see
    :data:`KINDS`). ``current_mA``: the measured bias current, if any (the series correction
    then uses it instead of ∫G dV). ``modulation_mV``: rms ac voltage across the junction the
    lock-in measured with, if known.
    """

    x: np.ndarray
    y: np.ndarray
    kind: str = "didv"
    current_mA: np.ndarray | None = None
    temperature_K: float = math.nan
    field_T: float = 0.0
    label: str = ""
    sweep: int = -1
    modulation_mV: float | None = None
    normalized: bool | None = None
    #: what was noticed while reading it (e.g. sweep directions that disagree: heating)
    notes: list[str] = field(default_factory=list)
    #: the sweeps a merged spectrum was made of: its noise σ is pooled from each alone
    parts: list[RawSpectrum] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"kind = {self.kind!r} is not allowed (allowed: "
                              f"{', '.join(KINDS)})")
        self.x = np.asarray(self.x, dtype=float).ravel()
        self.y = np.asarray(self.y, dtype=float).ravel()
        if self.x.shape != self.y.shape:
            raise ConfigError(f"{self.label or 'spectrum'}: axis and signal lengths differ "
                              f"({self.x.size} and {self.y.size})")
        if self.current_mA is not None:
            self.current_mA = np.asarray(self.current_mA, dtype=float).ravel()


def junction_modulation_mV(i_ac_A, dvdi_ohm, series_resistance_ohm: float = 0.0
                           ) -> float | None:
    """rms ac voltage across the junction from a lock-in run's own columns: I_ac·(dV/dI − R_s)
    (medians; X itself also holds the lead's drop)."""
    i_ac = np.asarray(i_ac_A, dtype=float)
    r = np.asarray(dvdi_ohm, dtype=float)
    ok = np.isfinite(i_ac) & np.isfinite(r)
    if ok.sum() < 3:
        return None
    value = 1e3 * float(np.median(np.abs(i_ac[ok]))) * (float(np.median(r[ok]))
                                                       - series_resistance_ohm)
    return value if value > 0 else None


def modulation_from_columns(columns: Mapping[str, np.ndarray], facts: RunFacts
                            ) -> float | None:
    """rms modulation (mV) across the junction of one sweep: from the lock-in's own I_ac and
    dV/dI, else from the DCON current step, else from the excitation through R_b."""
    rs = facts.series_resistance_ohm or 0.0
    dvdi = columns.get("dvdi")
    if dvdi is None:
        return None
    if columns.get("i_ac") is not None:
        return junction_modulation_mV(columns["i_ac"], dvdi, rs)
    r = np.asarray(dvdi, dtype=float)
    r = r[np.isfinite(r)]
    if r.size < 3:
        return None
    junction = float(np.median(r)) - rs
    if facts.dcon_delta_A:
        # DCON: dV/dI is a difference over a current step dI, a box of width dI·R_j in
        # voltage; in the model it is the semicircle of the same variance (V_rms = w/√6)
        width = 1e3 * facts.dcon_delta_A * junction
        return width / math.sqrt(6.0) if width > 0 else None
    return facts.modulation_mV(junction) if facts.excitation_V_rms else None


def _to_mV(unit: str) -> float:
    return {"v": 1e3, "mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3}.get(
        (unit or "V").strip().lower(), 1e3)


def _to_mA(unit: str) -> float:
    return {"a": 1e3, "ma": 1.0, "ua": 1e-3, "µa": 1e-3, "μa": 1e-3}.get(
        (unit or "A").strip().lower(), 1e3)


def raw_spectra_from_columns(columns: Mapping[str, np.ndarray], units: Mapping[str, str],
                             temperature_K: float = math.nan, field_T: float = 0.0,
                             label: str = "", sweep: int = -1,
                             facts: RunFacts | None = None) -> RawSpectrum | None:
    """The spectrum in one sweep's columns (a daqapp run's names: dc_voltage, didv or dvdi,
    bias_current, i_ac), or None if they hold none."""
    facts = facts or RunFacts()
    cols = {k: np.asarray(v, dtype=float) for k, v in columns.items()
            if k in ("dc_voltage", "didv", "dvdi", "bias_current", "i_ac", "temperature",
                     "field")}
    if "dc_voltage" not in cols or not ({"didv", "dvdi"} & set(cols)):
        return None
    v = cols["dc_voltage"] * _to_mV(units.get("dc_voltage", "V"))
    if "didv" in cols:
        y, kind = cols["didv"], "didv"
    else:
        y, kind = cols["dvdi"], "dvdi"
    current = (cols["bias_current"] * _to_mA(units.get("bias_current", "A"))
               if "bias_current" in cols else None)
    ok = np.isfinite(v) & np.isfinite(y)
    if current is not None:
        ok &= np.isfinite(current)
    if ok.sum() < 8:
        return None
    if not math.isfinite(temperature_K) and "temperature" in cols:
        t = cols["temperature"][np.isfinite(cols["temperature"])]
        temperature_K = float(t.mean()) if t.size else math.nan
    if "field" in cols and not math.isfinite(field_T):
        b = cols["field"][np.isfinite(cols["field"])]
        field_T = float(b.mean()) if b.size else 0.0
    modulation = modulation_from_columns({k: c[ok] for k, c in cols.items()}, facts)
    return RawSpectrum(v[ok], y[ok], kind, None if current is None else current[ok],
                       float(temperature_K), float(field_T if math.isfinite(field_T) else 0.0),
                       label, int(sweep), modulation,
                       False if units.get("didv", units.get("dvdi", "")) else None)


def raw_spectra_from_run(reader: Any, merge_directions: bool = False) -> list[RawSpectrum]:
    """Every spectrum of an open run file (``daqapp.storage.open_run``), one per sweep, or
    with ``merge_directions`` one per (temperature, field): both sweep directions together."""
    facts = facts_from_run(reader)
    units = dict(reader.units)
    path = getattr(reader, "path", None)
    name = Path(path).name if path else ""
    out: list[RawSpectrum] = []
    sweeps = reader.sweeps() if getattr(reader, "has_sweeps", True) else []
    if sweeps:
        for s in sweeps:
            raw = raw_spectra_from_columns(s.columns, units, s.temperature, s.field,
                                           f"{name} sweep {s.index}", int(s.index), facts)
            if raw is not None:
                out.append(raw)
    else:
        raw = raw_spectra_from_columns(reader.columns, units, label=name, facts=facts)
        if raw is not None:
            out.append(raw)
    if not merge_directions:
        return out
    groups: dict[tuple[float, float], list[RawSpectrum]] = {}
    for raw in out:
        t = raw.temperature_K
        key = (round(t, 1) if math.isfinite(t) else math.nan, round(raw.field_T, 3))
        groups.setdefault(key, []).append(raw)
    merged = []
    for items in groups.values():
        first = items[0]
        if len(items) == 1:
            merged.append(first)
            continue
        note = sweep_disagreement(items)
        current = (None if any(r.current_mA is None for r in items)
                   else np.concatenate([r.current_mA for r in items]))
        temps = [r.temperature_K for r in items if math.isfinite(r.temperature_K)]
        mods = [r.modulation_mV for r in items if r.modulation_mV]
        merged.append(RawSpectrum(
            np.concatenate([r.x for r in items]), np.concatenate([r.y for r in items]),
            first.kind, current, float(np.mean(temps)) if temps else math.nan, first.field_T,
            f"{name} sweeps " + ", ".join(str(r.sweep) for r in items), first.sweep,
            float(np.mean(mods)) if mods else None, first.normalized,
            [note] if note else [], list(items)))
    return merged


def sweep_disagreement(sweeps: Sequence[RawSpectrum], limit_sigmas: float = HEATING_SIGMAS
                       ) -> str | None:
    """A note when sweeps at one temperature (up and down) differ by more than their noise:
    heating of the contact, drift or hysteresis (physics.md §4.5, §4.8) — the merged spectrum
    is then not one state of the junction."""
    first = sweeps[0]
    x0 = np.sort(first.x)
    y0 = first.y[np.argsort(first.x)]
    noise = estimate_noise(x0, y0)
    if not (math.isfinite(noise) and noise > 0):
        return None
    worst = 0.0
    for other in sweeps[1:]:
        order = np.argsort(other.x)
        x1, y1 = other.x[order], other.y[order]
        lo, hi = max(x0[0], x1[0]), min(x0[-1], x1[-1])
        inside = (x0 >= lo) & (x0 <= hi)
        if inside.sum() < 8:
            continue
        d = y0[inside] - np.interp(x0[inside], x1, y1)
        worst = max(worst, float(np.sqrt(np.mean(d * d))) / (math.sqrt(2.0) * noise))
    if worst <= limit_sigmas:
        return None
    return (f"sweep directions differ by {worst:.1f} σ rms at {first.temperature_K:.1f} K: "
            "heating, drift or hysteresis of the contact (merged anyway)")


# --------------------------------------------------------------------------- prepare


def _edge_level(bias: np.ndarray, g: np.ndarray) -> float:
    edge = np.abs(bias) >= 0.9 * float(np.max(np.abs(bias)))
    level = float(np.mean(g[edge])) if edge.any() else math.nan
    if not (math.isfinite(level) and level > 0):
        raise ConfigError("cannot normalise: no positive conductance at the sweep's edges")
    return level


def looks_normalized(bias_mV, conductance) -> bool:
    """True when the outer edges of a conductance sit near 1 (an already normalised G/G_N)."""
    b = np.asarray(bias_mV, dtype=float)
    g = np.asarray(conductance, dtype=float)
    ok = np.isfinite(b) & np.isfinite(g)
    if ok.sum() < 8:
        return False
    try:
        level = _edge_level(b[ok], g[ok])
    except ConfigError:
        return False
    return NORMALIZED_EDGE_BAND[0] <= level <= NORMALIZED_EDGE_BAND[1]


def _junction(raw: RawSpectrum, r_series: float, normalized: bool,
              steps: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Junction voltage (mV), conductance and the recorded bias (mV), sorted by the junction
    voltage, series resistance removed."""
    if raw.kind in ("dvdi_i", "v_i"):
        v, g = junction_from_current(raw.x, raw.y, raw.kind, r_series)
        measured = v + np.sort(raw.x) * r_series
        steps.append(("dV/dI" if raw.kind == "dvdi_i" else "V") + " against current: "
                     "junction voltage V_j = " + ("∫(dV/dI − R_s) dI" if raw.kind == "dvdi_i"
                                                  else "V − I·R_s"))
        if r_series:
            steps.append(f"series resistance {r_series:g} Ω removed")
    else:
        v = measured = raw.x
        with np.errstate(divide="ignore", invalid="ignore"):
            g = 1.0 / raw.y if raw.kind == "dvdi" else raw.y
        if r_series:
            if normalized:
                raise ConfigError(f"series_resistance_ohm = {r_series:g} Ω needs the absolute "
                                  "conductance (S); this spectrum is normalised (G/G_N)")
            v, g = correct_series_resistance(v, g, r_series, raw.current_mA)
            steps.append(f"series resistance {r_series:g} Ω removed (V_j = V − I·R_s with "
                         + ("the measured current" if raw.current_mA is not None
                            else "I = ∫G dV") + ", G_j = G/(1 − R_s·G))")
    ok = np.isfinite(v) & np.isfinite(g)
    order = np.argsort(v[ok], kind="stable")
    return v[ok][order], g[ok][order], measured[ok][order]


def prepare(raw: RawSpectrum, options: AnalysisOptions | None = None,
            reference: RawSpectrum | None = None) -> PreparedSpectrum:
    """A recorded spectrum made ready for :func:`analyse_spectrum` (see the module docstring).

    ``reference``: a normal-state spectrum of the same contact (T > Tc or B > Hc2), corrected
    for the same series resistance and used as the divisor; the joint background then only
    takes up what changed between the two.
    """
    options = options or AnalysisOptions()
    steps: list[str] = list(raw.notes)
    rs = float(options.series_resistance_ohm or 0.0)
    normalized = options.normalized
    if normalized is None:
        normalized = raw.normalized if raw.normalized is not None else (
            raw.kind == "didv" and looks_normalized(raw.x, raw.y))
        if normalized:
            steps.append("input taken as normalised G/G_N (outer edges ≈ 1)")
    try:
        v, g, measured = _junction(raw, rs, bool(normalized), steps)
    except ValueError as exc:
        raise ConfigError(f"{raw.label or 'spectrum'}: {exc}") from None
    if options.max_bias_mV:
        inside = np.abs(v) <= options.max_bias_mV
        v, g, measured = v[inside], g[inside], measured[inside]
    if options.bias_window_mV:
        lo, hi = options.bias_window_mV
        inside = (v >= lo) & (v <= hi)
        v, g, measured = v[inside], g[inside], measured[inside]
    if v.size < 20:
        raise ConfigError(f"{raw.label or 'spectrum'}: {v.size} usable points; need at least 20")
    t = options.temperature_K if options.temperature_K is not None else raw.temperature_K
    if not (t is not None and math.isfinite(t) and t >= 0):
        raise ConfigError(f"{raw.label or 'spectrum'}: temperature unknown; give "
                          "temperature_K (a BTK fit needs the thermal smearing)")
    v0, v0_free, subtracted = 0.0, False, 0.0
    if isinstance(options.v0_mV, int | float):
        subtracted = float(options.v0_mV)
        v = v - subtracted
        steps.append(f"bias offset V0 = {subtracted:g} mV subtracted")
    elif options.v0_mV == "auto":
        try:
            v0 = offset_from_symmetry(v, g)
        except ValueError:
            v0 = 0.0
        v0_free = True
    keep = np.ones(v.size, dtype=bool)
    dips: list[float] = []
    if options.mask_dips:
        in_dips = critical_current_dips(v, g)
        if in_dips.any():
            dips = dip_positions(v, in_dips)
            # beyond the first dip the current exceeds the contact's Ic: a resistive region in
            # series stretches the voltage scale and lowers G (Sheet et al. 2004), so none of
            # it is the junction's spectrum, and fitted it drags the background and the gaps.
            # G starts to fall before the dip's sharp core (the transition to the resistive
            # state has a width, which the dip's own shows): the inner half-width again is
            # left out on the inside
            edge = float(np.min(np.abs(v[in_dips])))
            centre = min(abs(d) for d in dips)
            inner = max(edge - max(centre - edge, 0.0), 0.0)
            keep = ~in_dips & (np.abs(v) < inner)
            beyond = int((~keep).sum() - in_dips.sum())
            steps.append(f"{int(in_dips.sum())} points in critical-current dips masked at "
                         + ", ".join(f"{d:+.1f}" for d in dips) + " mV"
                         + (f", and the {beyond} beyond |V| = {inner:.1f} mV (above Ic)"
                            if beyond else ""))
            if int(keep.sum()) < 20:
                raise ConfigError(f"{raw.label or 'spectrum'}: {int(keep.sum())} points inside "
                                  f"the critical-current dips at ±{inner:.1f} mV; need at "
                                  "least 20 (or keep the dips: mask_dips = False)")
    if normalized:
        divisor = np.ones_like(g)
    elif reference is not None:
        try:
            rv, rg, _ = _junction(reference, rs, False, [])
        except ValueError as exc:
            raise ConfigError(f"{reference.label or 'reference'}: {exc}") from None
        rkeep = ~critical_current_dips(rv, rg)
        inside = (v >= rv[rkeep].min()) & (v <= rv[rkeep].max())
        v, g, keep, measured = v[inside], g[inside], keep[inside], measured[inside]
        divisor = np.interp(v, rv[rkeep], rg[rkeep])
        steps.append(f"divided by the normal-state reference {reference.label or ''} "
                     f"(T = {reference.temperature_K:.1f} K"
                     + (f", same {rs:g} Ω removed" if rs else "") + ")")
    else:
        level = _edge_level(v[keep], g[keep])
        divisor = np.full_like(g, level)
        steps.append(f"divided by the outer-edge level {level:.6g} (a constant)")
    gn = g / divisor
    sigma = options.sigma
    if sigma is None and len(raw.parts) > 1:
        sigma = _pooled_noise(raw.parts, options, reference, v, divisor)
    if sigma is None or not math.isfinite(sigma):
        sigma = estimate_noise(v[keep], gn[keep])
    modulation = options.modulation_mV_rms
    if modulation is None:
        modulation = raw.modulation_mV or 0.0
    if modulation:
        steps.append(f"modulation {modulation:.3g} mV rms across the junction, in the model")
    # a temperature is known to mK at best: rounded to µK (and the modulation to nV) so that
    # one spectrum read two ways (a sweep's recorded T, the mean of its column) fits alike
    return PreparedSpectrum(v, gn, steps, divisor, keep, round(float(t), 6),
                            float(raw.field_T), float(sigma), bool(normalized), float(v0),
                            v0_free, round(float(modulation), 6), dips, raw.label, rs,
                            subtracted, measured)


def _pooled_noise(parts: Sequence[RawSpectrum], options: AnalysisOptions,
                  reference: RawSpectrum | None, bias_mV: np.ndarray,
                  divisor: np.ndarray) -> float:
    """Noise σ of a merged spectrum (in its normalised units), pooled from each sweep alone.

    Sorted together, sweeps recorded at the same biases interleave: the point-to-point
    differences then measure the step between neighbours, not the noise (measured: σ 12×
    too large, χ²_red 0.03 on an up+down lock-in spectrum of the virtual lab).
    """
    num, den = 0.0, 0
    for part in parts:
        try:
            p = prepare(part, options, reference)
        except ConfigError:
            continue
        v = p.bias_mV[p.mask]
        if not (math.isfinite(p.sigma) and v.size):
            continue
        # each sweep was normalised by its own divisor: σ in the merged spectrum's units
        scale = float(np.median(p.divisor(v) / np.interp(v, bias_mV, divisor)))
        num += v.size * (p.sigma * scale) ** 2
        den += v.size
    return math.sqrt(num / den) if den else math.nan


# --------------------------------------------------------------------------- one spectrum


@dataclass(eq=False)  # holds arrays: identity, not element-wise ==
class SpectrumAnalysis:
    """Fits of one spectrum: per model, ranked, the best, the model Δ(T) uses, and notes."""

    prepared: PreparedSpectrum
    results: dict[str, FitResult]
    comparison: ModelComparison | None
    best: str
    primary: str
    has_gap: bool
    gap_significance: float
    notes: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def temperature_K(self) -> float:
        return self.prepared.temperature_K

    @property
    def field_T(self) -> float:
        return self.prepared.field_T

    @property
    def label(self) -> str:
        return self.prepared.label

    def result(self, model: str | None = None) -> FitResult | None:
        return self.results.get(model or self.primary)

    def gaps(self, model: str | None = None) -> tuple[float, float, float, float] | None:
        """(Δ1, σΔ1, Δ2, σΔ2) in meV (NaN where absent or undetermined)."""
        r = self.result(model)
        if r is None or "delta1" not in r.values:
            return None

        def err(name: str) -> float:
            e = r.stderr.get(name)
            return math.nan if e is None else float(e)

        return (float(r.values["delta1"]), err("delta1"),
                float(r.values.get("delta2", math.nan)), err("delta2"))

    def normal_state(self, bias_mV, model: str | None = None) -> np.ndarray:
        """Fitted normal-state conductance G_N(V) in the measured units: the divisor times
        the jointly fitted ``BTKModel.background``."""
        bias = np.asarray(bias_mV, dtype=float)
        r = self.result(model)
        factor = np.ones_like(bias)
        if r is not None:
            v = r.values
            factor = BTKModel.background(bias - v["v0"], v)
        return self.prepared.divisor(bias) * factor

    def normalised(self, model: str | None = None) -> np.ndarray:
        """G/G_N of the prepared points, by the fitted normal state (for plots and tables)."""
        p = self.prepared
        return p.conductance * p.divisor(p.bias_mV) / self.normal_state(p.bias_mV, model)

    def btk_curve(self, bias_mV, model: str | None = None) -> np.ndarray:
        """The fitted BTK conductance alone (normalised, background 1)."""
        return _btk_only(self.result(model), self.prepared, bias_mV)

    def curve(self, bias_mV, model: str | None = None) -> np.ndarray:
        """The fitted conductance in the measured units (the overlay on the data)."""
        r = self.result(model or self.best)
        m = _model_of(r, self.prepared)
        bias = np.asarray(bias_mV, dtype=float)
        return m.eval(bias) * self.prepared.divisor(bias)

    def overlay(self, n_points: int = 600, model: str | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """The fitted curve as recorded — against the measured bias, with the series
        resistance put back (V = V_j + I·R_s, G = G_j/(1 + R_s·G_j)) — to draw over the data."""
        p = self.prepared
        vj = np.linspace(float(p.bias_mV.min()), float(p.bias_mV.max()), n_points)
        gj = self.curve(vj, model)
        rs = p.series_resistance_ohm
        # the recorded bias of each junction bias, as the preparation mapped them
        bias = (np.interp(vj, p.bias_mV, p.measured_bias_mV) if p.measured_bias_mV is not None
                else vj + p.offset_subtracted_mV)
        return bias, (gj / (1.0 + rs * gj) if rs else gj)

    def to_dict(self, model: str | None = None) -> dict[str, Any]:
        """One model's result with the preparation, for the run file."""
        r = self.result(model)
        out = dict(r.to_dict()) if r is not None else {}
        p = self.prepared
        out.update({
            "preparation": list(p.steps), "notes": list(self.notes),
            "normalized_input": p.normalized, "modulation_mV_rms": p.modulation_mV,
            "excluded_bias_mV": [float(x) for x in p.bias_mV[~p.mask]],
            "has_gap": bool(self.has_gap), "gap_significance_delta_aic":
                float(self.gap_significance) if math.isfinite(self.gap_significance) else None,
            "best_model": self.best, "field_T": float(p.field_T),
        })
        return out


def _btk_only(result: FitResult | None, prepared: PreparedSpectrum, bias_mV) -> np.ndarray:
    """A fit's BTK conductance with its normal-state background set to 1."""
    m = _model_of(result, prepared)
    values = m.values()
    values.update(scale=1.0, slope=0.0, curvature=0.0)
    return m.eval(np.asarray(bias_mV, dtype=float), values)


def _model_of(result: FitResult | None, prepared: PreparedSpectrum) -> BTKModel:
    if result is None:
        raise ValueError("no fitted model")
    m = result.to_model()
    m.modulation_mV = prepared.modulation_mV
    return m


def primary_model(models: Sequence[str]) -> str:
    """The model Δ(T) is read from: s+s if chosen, else the first two-gap model, else the
    first (a one-gap model would fold the second gap into the background)."""
    two_gap = [m for m in models if len(parse_model(m)) == 2]
    if "s+s" in two_gap:
        return "s+s"
    return two_gap[0] if two_gap else models[0]


def build_model(name: str, prepared: PreparedSpectrum, options: AnalysisOptions) -> BTKModel:
    """The BTK model of one fit: background free unless the input was normalised, V0 free
    when "auto", the prepared modulation amplitude set."""
    m = BTKModel(name, prepared.temperature_K, options.dimension)
    if not prepared.normalized:
        m.free_background()
    if prepared.v0_free:
        m.set("v0", value=min(max(prepared.v0_mV, -4.9), 4.9), vary=True)
    m.modulation_mV = prepared.modulation_mV
    if options.normal_fraction and "p_normal" in m.params:
        m.set("p_normal", vary=True)
    return m


def _gap_free_chi2(prepared: PreparedSpectrum) -> tuple[float, int]:
    """χ² and parameter count of the best gap-free normal state: a quadratic (raw input) or
    1 (normalised), with the noise σ of the fit."""
    p = prepared
    keep = p.mask
    x, y = p.bias_mV[keep] - p.v0_mV, p.conductance[keep]
    if p.normalized:
        return float(np.sum(((y - 1.0) / p.sigma) ** 2)), 0
    coeffs = np.polynomial.polynomial.polyfit(x, y, 2)
    r = (np.polynomial.polynomial.polyval(x, coeffs) - y) / p.sigma
    return float(r @ r), 3


def _previous_results(warm_start: Any) -> dict[str, FitResult]:
    if warm_start is None:
        return {}
    if isinstance(warm_start, SpectrumAnalysis):
        return dict(warm_start.results) if warm_start.has_gap else {}
    return dict(warm_start)


def _hold_series(model: BTKModel, colder: FitResult, v_edge: float) -> None:
    """A colder spectrum of the same contact constrains this one: the channel weights are
    the contact's (held), and no gap grows with T by more than 5 % + 0.3 meV (Δ(T) does not
    increase; the bound keeps a smeared spectrum from jumping to a degenerate solution)."""
    for k, value in colder.values.items():
        if k.startswith("weight") and k in model.params:
            model.set(k, value=value, vary=False)
    for i in range(1, len(model.components) + 1):
        name = f"delta{i}"
        if name in colder.values and model[name].vary:
            cap = min(1.05 * colder.values[name] + 0.3, v_edge)
            p = model[name]
            p.max = max(cap, p.min * 1.01)
            p.value = min(max(p.value, p.min), p.max)


def fit_model(prepared: PreparedSpectrum, name: str, options: AnalysisOptions,
              colder: FitResult | None = None) -> FitResult:
    """One model fitted to ``prepared``: from the spectrum's own guess through the global
    stage, and with a ``colder`` result of the same series also from that one (held
    weights, capped gaps); the lower χ² wins."""
    p = prepared
    keep = p.mask
    b, g = p.bias_mV[keep], p.conductance[keep]
    model = build_model(name, p, options)
    fixed = {k: q.value for k, q in model.params.items() if not q.vary}
    model.guess(b, g)
    for k, value in fixed.items():  # a guess never moves what is held
        model.params[k].value = value
    if colder is not None and colder.model == model.name:
        _hold_series(model, colder, float(np.max(np.abs(b))))
    sigma = options.sigma if options.sigma is not None else p.sigma  # one σ: prepare's
    best = fit_spectrum(b, g, model, sigma=sigma, guess=False, max_nfev=MAX_NFEV)
    if colder is not None and colder.model == model.name:
        warm = fit_spectrum(b, g, model, sigma=sigma, warm_start=colder, max_nfev=MAX_NFEV)
        best = warm if warm.chi2 < best.chi2 else best
    if options.profile:
        for name in ("delta1", "delta2", "delta3"):
            if name in best.varying:
                profile_interval(b, g, best, name)
    return best


def analyse_spectrum(prepared: PreparedSpectrum, options: AnalysisOptions | None = None,
                     warm_start: SpectrumAnalysis | Mapping[str, FitResult] | None = None
                     ) -> SpectrumAnalysis:
    """Fit every model of ``options`` to ``prepared``, rank them, decide whether there is a gap.

    ``warm_start``: the analysis (or results per model) of the previous, colder spectrum of
    the same contact: see :func:`fit_model`. :class:`SeriesFit` passes it along a series.
    """
    options = options or AnalysisOptions()
    p = prepared
    keep = p.mask
    colder = _previous_results(warm_start)
    results: dict[str, FitResult] = {}
    errors: dict[str, str] = {}
    for name in options.models:
        try:
            results[name] = fit_model(p, name, options, colder.get(name))
        except ValueError as exc:
            errors[name] = str(exc)
    notes = list(p.steps)
    if not results:
        return SpectrumAnalysis(p, {}, None, "", "", False, math.nan,
                                [*notes, "no model could be fitted"], errors)
    ranked = sorted(results.values(), key=lambda r: r.aic)
    comparison = ModelComparison(ranked, verdict(ranked))
    best = ranked[0].model
    fitted = [m for m in options.models if m in results]
    primary = primary_model(fitted)
    # the verdict comes from the model Δ(T) is read from, so it does not depend on which
    # other models were chosen alongside it
    r = results[primary]
    chi2_gap_free, k_gap_free = _gap_free_chi2(p)
    significance = chi2_gap_free + 2.0 * k_gap_free - r.aic
    amplitude = float(np.max(np.abs(_btk_only(r, p, p.bias_mV[keep]) - 1.0))) / p.sigma
    explains = chi2_gap_free > NO_GAP_CHI2_RATIO * max(r.chi2, 1e-300)
    has_gap = (significance > NO_GAP_DELTA_AIC and amplitude > NO_GAP_AMPLITUDE_SIGMAS
               and explains)
    at_edge = r.values["delta1"] >= 0.98 * float(np.max(np.abs(p.bias_mV[keep])))
    if not has_gap:
        notes.append(f"no gap: normal state (a gap-free background does almost as well: "
                     f"ΔAIC = {significance:.1f}, χ² {chi2_gap_free:.0f} against "
                     f"{r.chi2:.0f}; gap features {amplitude:.1f} σ): left out of Δ(T)")
    elif at_edge:
        has_gap = False
        notes.append(f"gap not determined: Δ1 = {r.values['delta1']:.1f} meV sits at the edge "
                     "of the bias window (a broad channel, not a gap): left out of Δ(T)")
    if p.v0_free:
        v0, e = r.values["v0"], r.stderr.get("v0")
        notes.append(f"bias offset V0 = {v0:.3f}" + (f" ± {e:.2g}" if e else "")
                     + " mV fitted")
    notes.extend(n for n in getattr(r, "notes", []) if n not in notes)
    if "at a bound" in r.message:
        notes.append(r.message[r.message.index("at a bound"):].split(";")[0])
    for name, msg in errors.items():
        notes.append(f"{name} fit failed: {msg}")
    return SpectrumAnalysis(p, results, comparison, best, primary, has_gap, significance,
                            notes, errors)


def _trustworthy(result: FitResult | None) -> bool:
    """A converged fit whose Δ1 error is finite and below a fifth of Δ1."""
    if result is None or not result.success:
        return False
    err = result.stderr.get("delta1")
    return err is not None and math.isfinite(err) and err < 0.2 * result.values["delta1"]


class SeriesFit:
    """Spectra of one contact analysed in turn, each constrained by the warmest colder one
    with a gap (held channel weights, gaps that do not grow): what the window, replay,
    ``daqapp fit`` on several files and the report all do, so they agree spectrum by
    spectrum. Cold to warm is the natural order (the report and ``daqapp fit`` sort)."""

    def __init__(self, options: AnalysisOptions | None = None) -> None:
        self.options = options or AnalysisOptions()
        self.analyses: list[SpectrumAnalysis] = []
        self.previous: SpectrumAnalysis | None = None

    def reset(self) -> None:
        self.analyses, self.previous = [], None

    def colder(self, temperature_K: float) -> SpectrumAnalysis | None:
        """The warmest analysed spectrum with a well-determined gap not warmer than
        ``temperature_K`` (what constrains a spectrum at that temperature), whatever order
        they came in. A failed or undetermined fit, or one with χ²_red far above the
        series' median, constrains nothing."""
        trusted = [a for a in self.analyses if a.has_gap and _trustworthy(a.result())]
        if trusted:  # a spectrum fitted far worse than the rest (dips, a switching contact)
            typical = float(np.median([a.result().chi2_red for a in trusted]))
            trusted = [a for a in trusted
                       if a.result().chi2_red <= SERIES_OUTLIER_CHI2 * max(typical, 1.0)]
        below = [a for a in trusted if a.temperature_K <= temperature_K + SERIES_T_TOLERANCE_K]
        return max(below, key=lambda a: a.temperature_K) if below else None

    def add(self, prepared: PreparedSpectrum) -> SpectrumAnalysis:
        self.previous = self.colder(prepared.temperature_K)
        a = analyse_spectrum(prepared, self.options, self.previous)
        self.analyses.append(a)
        return a

    def series(self, sweeps: Sequence[int] | None = None) -> GapSeries:
        return analyse_series(self.analyses, self.options.gap_form, sweeps)


def analyse(raw: RawSpectrum, options: AnalysisOptions | None = None,
            reference: RawSpectrum | None = None,
            warm_start: Mapping[str, FitResult] | None = None) -> SpectrumAnalysis:
    """:func:`prepare` then :func:`analyse_spectrum`: the whole path for one spectrum."""
    options = options or AnalysisOptions()
    return analyse_spectrum(prepare(raw, options, reference), options, warm_start)


# --------------------------------------------------------------------------- series


@dataclass(eq=False)  # holds arrays: identity, not element-wise ==
class GapSeries:
    """Δ(T) of the spectra that have a gap, sorted by temperature, and its BCS fits.

    ``fits["delta1"]``/``fits["delta2"]``: ``GapTemperatureFit`` or None; ``tc_determined``
    says whether each fit's Tc is determined by the data (else show "not determined").
    """

    temperature_K: np.ndarray = field(default_factory=lambda: np.empty(0))
    delta1: np.ndarray = field(default_factory=lambda: np.empty(0))
    delta1_err: np.ndarray = field(default_factory=lambda: np.empty(0))
    delta2: np.ndarray | None = None
    delta2_err: np.ndarray | None = None
    sweeps: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=int))
    labels: list[str] = field(default_factory=list)
    fits: dict[str, Any] = field(default_factory=dict)
    tc_determined: dict[str, bool] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: per gap, the temperatures its Δ(T) fit used (a plot marks the points left out)
    fitted_K: dict[str, np.ndarray] = field(default_factory=dict)

    def tc_text(self, key: str = "delta1") -> str:
        fit = self.fits.get(key)
        if fit is None:
            return "Tc not determined (too few spectra with a gap)"
        if not self.tc_determined.get(key):
            return "Tc not determined (need spectra closer to Tc)"
        return f"Tc = {fit.tc_K:.1f} ± {fit.tc_err_K:.2g} K"


def tc_determined(fit: Any, t_max_K: float) -> bool:
    """Whether a Δ(T) fit's Tc means something: finite, with an error below
    ``TC_MAX_RELATIVE_ERROR`` of it, and the warmest spectrum with a gap (``t_max_K``) at
    ``TC_MIN_REACH`` of Tc or beyond (from points far below Tc a BCS curve is flat: any Tc
    fits). When the fit carries its own verdict (``GapTemperatureFit.tc_determined``, from
    :mod:`daqapp.analysis.gaps`), that verdict decides."""
    if fit is None:
        return False
    flag = getattr(fit, "tc_determined", None)
    if isinstance(flag, bool | np.bool_):
        return bool(flag)
    tc, err = float(fit.tc_K), float(fit.tc_err_K)
    return (math.isfinite(tc) and math.isfinite(err) and 0 < err < TC_MAX_RELATIVE_ERROR * tc
            and t_max_K >= TC_MIN_REACH * tc)


def _fit_window_mV(analysis: SpectrumAnalysis) -> float:
    """Largest |V| the fit used, when critical-current dips cut the spectrum (else inf)."""
    p = analysis.prepared
    if not p.dips_mV or not p.mask.any():
        return math.inf
    return float(np.max(np.abs(p.bias_mV[p.mask])))


def _without_peaks_cut_by_dips(rows: list, excluded: list[str]) -> list:
    """Rows (sorted by T; the last field the fit window, :func:`_fit_window_mV`) without the
    spectra whose window, cut at a critical-current dip, ends inside the large gap of the
    colder spectra: its coherence peak is not in the data, so its Δ1 is not either. The Δ(T)
    fit is unweighted: one such point (a 30 K Δ1 of 6 ± 72 meV in the demo) can take Tc
    with it."""
    kept: list = []
    for row in rows:
        temperature, label, window = row[0], row[6], row[7]
        colder = [r[1] for r in kept if r[0] < temperature]
        if colder and window < max(colder):
            excluded.append(f"{label} at {temperature:.1f} K: Δ1 not in the data (the fit "
                            f"window ends at ±{window:.1f} mV, at a critical-current dip, "
                            f"inside the colder spectra's Δ1 of {max(colder):.1f} meV)")
            continue
        kept.append(row)
    return kept


def analyse_series(analyses: Sequence[SpectrumAnalysis], gap_form: str = "bcs",
                   sweeps: Sequence[int] | None = None) -> GapSeries:
    """Δ(T) and its fits from analysed spectra (any order); no-gap spectra are left out."""
    from daqapp.analysis.gaps import fit_gap_temperature

    rows = []
    excluded = []
    for k, a in enumerate(analyses):
        gaps = a.gaps()
        label = a.label or f"#{k}"
        if gaps is None or not math.isfinite(a.temperature_K):
            excluded.append(f"{label}: no fit")
        elif not a.has_gap:
            excluded.append(f"{label} at {a.temperature_K:.1f} K: no gap (normal state)")
        else:
            d1, e1, d2, e2 = gaps
            if not math.isfinite(e1):
                excluded.append(f"{label} at {a.temperature_K:.1f} K: Δ1 not determined "
                                "by the data (no error)")
                continue
            if math.isfinite(d2) and not math.isfinite(e2):
                d2, e2 = math.nan, math.nan  # Δ1 counts, Δ2 is not determined here
            rows.append((a.temperature_K, d1, e1, d2, e2,
                         sweeps[k] if sweeps is not None else k, label, _fit_window_mV(a)))
    rows.sort(key=lambda row: row[0])
    rows = _without_peaks_cut_by_dips(rows, excluded)
    series = GapSeries(excluded=excluded)
    if not rows:
        return series
    arr = np.array([row[:5] for row in rows], dtype=float)
    series.temperature_K, series.delta1, series.delta1_err = arr[:, 0], arr[:, 1], arr[:, 2]
    if np.isfinite(arr[:, 3]).any():
        series.delta2, series.delta2_err = arr[:, 3], arr[:, 4]
    series.sweeps = np.array([row[5] for row in rows], dtype=int)
    series.labels = [row[6] for row in rows]
    t = series.temperature_K
    tc1 = None
    for key, values in (("delta1", series.delta1), ("delta2", series.delta2)):
        series.fits[key], series.tc_determined[key] = None, False
        if values is None:
            continue
        ok = np.isfinite(values) & (values > 0)
        if key == "delta2" and ok.any():
            # both gaps close at one Tc (physics.md §2.6); near Tc the small gap is lost in
            # the smearing and its fit collapses: keep the points where it is resolved
            low_t = values[ok][:3]
            resolved = values >= DELTA2_RESOLVED_FRACTION * float(np.max(low_t))
            dropped = int(np.count_nonzero(ok & ~resolved))
            ok &= resolved
            if dropped:
                series.notes.append(f"Δ2(T): {dropped} spectra where Δ2 is not resolved (< "
                                    f"{DELTA2_RESOLVED_FRACTION:.0%} of its low-T value) "
                                    "left out")
        series.fitted_K[key] = t[ok]
        needed = 2 if (key == "delta2" and tc1 is not None) else 3
        if len(np.unique(t[ok])) < needed:
            continue
        # unweighted: a spectrum's statistical error (±0.01 meV at 3 K) leaves out the Δ–Γ–Z
        # degeneracy that dominates the real scatter, so weights would let one point decide
        try:
            fit = fit_gap_temperature(t[ok], values[ok], None, form=gap_form,
                                      tc_K=tc1 if key == "delta2" else None)
        except (ValueError, RuntimeError) as exc:
            series.notes.append(f"{key}(T) fit failed: {exc}")
            continue
        series.fits[key] = fit
        determined = tc_determined(fit, float(np.max(t[ok])))
        if key == "delta2" and tc1 is not None:
            determined = series.tc_determined["delta1"]
        series.tc_determined[key] = determined
        if key == "delta1" and determined:
            tc1 = fit.tc_K
    return series
