"""From run files to report numbers: classify runs, refit every spectrum, fit Δ(T), Tc, Hc2, Ic.

Everything is recomputed from the raw columns of the run files (the fits stored in the files
are not trusted blindly: a student refitting last month's data with a better model must get the
new numbers). Each analysis step is guarded: a missing kind of run leaves its part of the
report empty with a note, it never stops the rest.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from daqapp.report.results import (
    MISSING,
    CurveFit,
    IVCurve,
    ReportData,
    RTCurve,
    SpectrumResult,
    Value,
)

log = logging.getLogger(__name__)

RUN_SUFFIXES = (".h5", ".hdf5")
SKIP_DIRS = ("partial", "report")


@dataclass
class ReportOptions:
    """Choices a user may change; defaults follow the seed paper."""

    model: str = "s+s"
    dimension: int = 2
    background_degree: int = 2
    gap_form: str = "bcs"
    hc2_criterion: float = 0.9
    hc2_eta: float = 0.2
    jc_form: str = "dew_hughes_dtc"
    fit_max_bias_mV: float | None = None
    #: Lead/spreading resistance in series with the contact (Ω); None: from the run files'
    #: ``series_resistance_ohm`` metadata, else 0.
    series_resistance_ohm: float | None = None
    #: Spectra at or above this temperature are normal-state references for normalisation;
    #: None: above the R–T onset Tc + 3 K when R–T runs are present.
    normal_state_above_K: float | None = None
    reference_degree: int = 4


@dataclass
class Collected:
    """Run files sorted by kind."""

    spectra: list[Path] = field(default_factory=list)
    rt: list[Path] = field(default_factory=list)
    iv: list[Path] = field(default_factory=list)
    calibration: list[Path] = field(default_factory=list)
    other: list[Path] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    sample: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- collecting


def classify(procedure: str, columns: Iterable[str]) -> str:
    """Kind of a run from its procedure class (and columns, for runs from other tools)."""
    name = procedure.lower()
    cols = set(columns)
    if "calibration" in name:
        return "calibration"
    if "resistancetemperature" in name or name.endswith(".rt") or (
            "resistance" in cols and "temperature" in cols and "dc_voltage" not in cols
            and "direction" not in cols):
        return "rt"
    if "criticalcurrent" in name or "iv" == name.rsplit(".", 1)[-1].lower() or (
            "current" in cols and "voltage" in cols and "didv" not in cols):
        return "iv"
    if any(w in name for w in ("conductance", "spectrum", "series", "fieldsweep", "dcon")) or (
            "didv" in cols or "dvdi" in cols):
        return "spectra"
    return "other"


def find_run_files(paths: Iterable[Path]) -> list[Path]:
    """Run files under each path (a file, a campaign folder, or a folder of campaigns)."""
    out: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_file():
            out.append(path)
            continue
        for p in sorted(path.rglob("*")):
            if p.suffix.lower() in RUN_SUFFIXES and p.is_file() and not any(
                    part in SKIP_DIRS or part.startswith(".") for part in
                    p.relative_to(path).parts[:-1]):
                out.append(p)
    return out


def collect(paths: Iterable[Path]) -> Collected:
    from daqapp.errors import DataFileError
    from daqapp.storage import open_run

    found = Collected()
    for path in find_run_files(paths):
        try:
            with open_run(path) as run:
                kind = classify(run.procedure, run.column_names)
                status = run.status
                rows = run.n_rows
                meta = run.metadata
        except (DataFileError, OSError, KeyError) as exc:
            found.runs.append({"file": path.name, "kind": "unreadable", "status": str(exc)})
            continue
        found.runs.append({"file": str(path.name), "kind": kind, "status": status,
                           "rows": rows})
        if rows == 0:
            continue
        for key in ("sample", "cell", "pressure_GPa", "operator"):
            if kind != "calibration" and meta.get(key) not in (None, "") \
                    and key not in found.sample:
                found.sample[key] = meta[key]
        getattr(found, kind if kind != "other" else "other").append(path)
    return found


# --------------------------------------------------------------------------- spectra


@dataclass
class _Spectrum:
    temperature_K: float
    field_T: float
    bias_mV: np.ndarray
    conductance: np.ndarray
    normalized: bool
    source: str
    current_A: np.ndarray | None = None
    series_resistance_ohm: float = 0.0

    def corrected(self, r_series: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Bias axis and conductance with the series resistance removed (physics.md §4.6):
        V_c = V − I·R_s, G_c = G/(1 − R_s·G), sorted by bias."""
        rs = self.series_resistance_ohm if r_series is None else r_series
        v, g = self.bias_mV, self.conductance
        if rs and not self.normalized:
            if self.current_A is None:
                raise ValueError(f"{self.source}: no bias current column to subtract I·R_s")
            v = v - self.current_A * rs * 1e3
            g = g / (1.0 - rs * g)
        order = np.argsort(v, kind="stable")
        return v[order], g[order]


def load_run_spectra(path: Path, series_resistance_ohm: float | None = None
                     ) -> list[_Spectrum]:
    """Spectra of a run, both sweep directions at one temperature merged into one curve."""
    from daqapp.storage import load_spectra, open_run

    path = Path(path)
    rs = 0.0
    rows: list[tuple[float, float, np.ndarray, np.ndarray, np.ndarray | None, bool]] = []
    with open_run(path) as run:
        meta = run.metadata
        units = run.units
        if series_resistance_ohm is not None:
            rs = float(series_resistance_ohm)
        elif isinstance(meta.get("series_resistance_ohm"), int | float):
            rs = float(meta["series_resistance_ohm"])
        use_columns = {"dc_voltage", "didv", "bias_current"} <= set(units)
        if use_columns:
            to_mV = 1e3 if units.get("dc_voltage", "V") == "V" else 1.0
            for sweep in run.sweeps():
                c = sweep.columns
                v = np.asarray(c["dc_voltage"], dtype=float) * to_mV
                g = np.asarray(c["didv"], dtype=float)
                i = np.asarray(c["bias_current"], dtype=float)
                ok = np.isfinite(v) & np.isfinite(g) & np.isfinite(i)
                rows.append((sweep.temperature, sweep.field, v[ok], g[ok], i[ok], False))
    if not rows:
        for s in load_spectra(path):
            rows.append((s.temperature_K if s.temperature_K is not None else math.nan,
                         s.field_T or 0.0, s.bias_mV, s.conductance, None, s.normalized))
    groups: dict[tuple[float, float], list] = {}
    for row in rows:
        groups.setdefault((round(float(row[0]), 1), round(float(row[1]), 3)), []).append(row)
    out = []
    for (t, b), items in groups.items():
        v = np.concatenate([r[2] for r in items])
        g = np.concatenate([r[3] for r in items])
        i = None if any(r[4] is None for r in items) else np.concatenate([r[4] for r in items])
        order = np.argsort(v, kind="stable")
        temps = [r[0] for r in items if math.isfinite(r[0])]
        out.append(_Spectrum(float(np.mean(temps)) if temps else t, b, v[order], g[order],
                             all(r[5] for r in items), path.name,
                             None if i is None else i[order], rs))
    return out


def _values_from_fit(fit: Any, n_gaps: int) -> dict[str, Value]:
    """Per-gap parameters of an analysis FitResult, under the summary's names."""
    values = dict(getattr(fit, "values", None) or getattr(fit, "params", None) or {})
    errors = dict(getattr(fit, "errors", None) or getattr(fit, "stderr", None) or {})
    out: dict[str, Value] = {}

    def pick(*names: str) -> tuple[float, float] | None:
        for name in names:
            if name in values:
                err = errors.get(name, math.nan)
                return float(values[name]), float(err if err is not None else math.nan)
        return None

    units = {"delta": "meV", "gamma": "meV", "z": "", "weight": ""}
    for i in range(1, n_gaps + 1):
        for stem in ("delta", "gamma", "z"):
            got = pick(f"{stem}{i}", f"{stem}_{i}", f"{stem}{i}_meV", f"gap{i}.{stem}",
                       *((stem,) if n_gaps == 1 else ()))
            if got is not None:
                key = f"{stem}{i}_meV" if units[stem] == "meV" else f"{stem}{i}"
                out[key] = Value(got[0], got[1], units[stem])
    got = pick("weight1", "w1", "w", "weight", "gap1.weight")
    if got is not None and n_gaps > 1:
        out["weight1"] = Value(got[0], got[1])
    elif n_gaps == 1:
        out["weight1"] = Value(1.0, 0.0)
    return out


def normalize_background(bias_mV: np.ndarray, conductance: np.ndarray, degree: int = 2,
                         wing_fraction: float = 0.35) -> np.ndarray:
    """G/G_N with G_N a polynomial fitted to the high-bias wings (no normal-state curve).

    Uses the analysis package's ``spectrum.normalize_polynomial`` when it is available.
    """
    try:
        from daqapp.analysis import spectrum as spectra
    except ImportError:
        spectra = None
    if spectra is not None and hasattr(spectra, "normalize_polynomial"):
        out = spectra.normalize_polynomial(bias_mV, conductance, degree=degree)
        return np.asarray(getattr(out, "conductance", out), dtype=float)
    edge = float(np.max(np.abs(bias_mV)))
    wings = np.abs(bias_mV) >= (1.0 - wing_fraction) * edge
    if wings.sum() < degree + 2:
        raise ValueError("too few high-bias points to fit the normal-state background")
    coeffs = np.polyfit(bias_mV[wings], conductance[wings], degree)
    return conductance / np.polyval(coeffs, bias_mV)


@dataclass
class Background:
    """Normal-state conductance G_N(V) as a polynomial, from a spectrum above Tc."""

    coeffs: np.ndarray
    temperature_K: float
    field_T: float
    source: str
    span_mV: float

    def __call__(self, bias_mV: np.ndarray) -> np.ndarray:
        return np.polyval(self.coeffs, bias_mV)


def background_from_reference(spec: _Spectrum, degree: int = 4) -> Background:
    """Polynomial G_N(V) through a normal-state spectrum (after the series correction)."""
    v, g = spec.corrected()
    coeffs = np.polyfit(v, g, degree)
    return Background(coeffs, spec.temperature_K, spec.field_T, spec.source,
                      float(np.max(np.abs(v))))


@dataclass
class JointFit:
    """BTK conductance × polynomial normal-state background, fitted together.

    Why together: with the seed's polynomial normalisation done first, the background
    polynomial swallows the slow Δ²/2E² tail of the large gap (G(60 mV) = 1.05 for Δ = 23 meV,
    physics.md §4.4) and biases Z, Γ and the weights; fitting G_meas = G_N(V)·G_BTK(V) with
    G_N(V) = c0 (1 + c1 V + c2 V²) removes that bias.
    """

    names: tuple[str, ...]
    values: np.ndarray
    errors: np.ndarray
    chi2_red: float
    n_gaps: int
    temperature_K: float
    dimension: int
    sigma: float
    nfev: int
    model: str = "s+s"

    def gaps(self, p: np.ndarray | None = None) -> list:

        p = self.values if p is None else p
        return _gaps_from(p, self.n_gaps)

    def background(self, bias_mV: np.ndarray, p: np.ndarray | None = None) -> np.ndarray:
        p = self.values if p is None else p
        c0, c1, c2 = p[-3:]
        return c0 * (1.0 + c1 * bias_mV + c2 * bias_mV * bias_mV)

    def btk(self, bias_mV: np.ndarray) -> np.ndarray:
        from daqapp.analysis.btk import conductance

        return conductance(bias_mV, self.temperature_K, self.gaps(), dimension=self.dimension)


def _gaps_from(p: np.ndarray, n_gaps: int) -> list:
    from daqapp.analysis.btk import Gap

    if n_gaps == 1:
        return [Gap(delta=p[0], gamma=p[1], z=p[2], weight=1.0)]
    w = float(p[6])
    return [Gap(delta=p[0], gamma=p[1], z=p[2], weight=w),
            Gap(delta=p[3], gamma=p[4], z=p[5], weight=1.0 - w)]


def joint_fit(bias_mV: np.ndarray, g: np.ndarray, temperature_K: float, n_gaps: int = 2,
              dimension: int = 2, start: JointFit | None = None) -> JointFit:
    """Least-squares fit of G = G_N(V)·G_BTK(V) (s-wave gaps); errors from the Jacobian.

    With ``start`` from a colder spectrum of the same series, the gaps may not grow by more
    than 5 % (+0.3 meV): Δ(T) does not increase with T, and the bound keeps a fit from jumping
    to a degenerate solution (physics.md §3). The channel weight w is shared along the series
    (fixed at the coldest spectrum's value), which breaks the w–Z2–Γ2 degeneracy that grows
    with thermal smearing. If the warm start fits badly, the spectrum's own guess is tried too.
    """
    if start is None or start.n_gaps != n_gaps:
        return _joint_fit_once(bias_mV, g, temperature_K, n_gaps, dimension, None)
    weight = float(start.values[6]) if n_gaps == 2 else None
    warm = _joint_fit_once(bias_mV, g, temperature_K, n_gaps, dimension, start, weight)
    if warm.chi2_red <= 3.0 * max(start.chi2_red, 1.0):
        return warm
    fresh = _joint_fit_once(bias_mV, g, temperature_K, n_gaps, dimension, None, weight)
    if not _deltas_below(fresh, start):
        return warm
    return warm if warm.chi2_red <= fresh.chi2_red else fresh


def _deltas_below(fit: JointFit, colder: JointFit) -> bool:
    idx = [0, 3] if fit.n_gaps == 2 else [0]
    return all(fit.values[i] <= 1.05 * colder.values[i] + 0.3 for i in idx)


def _joint_fit_once(bias_mV: np.ndarray, g: np.ndarray, temperature_K: float, n_gaps: int,
                    dimension: int, start: JointFit | None,
                    fixed_weight: float | None = None) -> JointFit:
    from scipy.optimize import least_squares

    from daqapp.analysis.btk import conductance
    from daqapp.analysis.fit import estimate_noise

    v = np.asarray(bias_mV, dtype=float)
    g = np.asarray(g, dtype=float)
    edge = float(np.max(np.abs(v)))
    wing = np.abs(v) >= 0.7 * edge
    c = np.polyfit(v[wing], g[wing], 2)
    c0 = float(c[2])
    g_wing = g / np.polyval(c, v)
    if n_gaps == 2:
        names = ("delta1", "gamma1", "z1", "delta2", "gamma2", "z2", "weight1")
        lo = [0.2, 0.01, 0.0, 0.1, 0.01, 0.0, 0.02]
        hi = [300.0, 150.0, 5.0, 150.0, 100.0, 5.0, 0.98]
    else:
        names = ("delta1", "gamma1", "z1")
        lo, hi = [0.05, 0.005, 0.0], [300.0, 150.0, 5.0]
    names = (*names, "scale", "slope", "curvature")
    lo = [*lo, 0.0, -0.05, -0.01]
    hi = [*hi, np.inf, 0.05, 0.01]
    if start is not None and start.n_gaps == n_gaps:
        p0 = np.array(start.values, dtype=float)
        for i in ([0, 3] if n_gaps == 2 else [0]):
            hi[i] = 1.05 * float(start.values[i]) + 0.3
            lo[i] = min(lo[i], 0.5 * hi[i])
    else:
        positive = v > 0.02 * edge
        peak = float(v[positive][np.argmax(g_wing[positive])]) if positive.any() else edge / 4
        d1 = max(0.85 * peak, 0.3)
        gaps0 = ([d1, 0.28 * d1, 0.5, 0.26 * d1, 0.17 * d1, 0.4, 0.6] if n_gaps == 2
                 else [d1, 0.5 * d1, 0.4])
        p0 = np.array([*gaps0, c0, float(c[1]) / c0, float(c[0]) / c0])
    p0 = np.clip(p0, np.array(lo) + 1e-9, np.array(hi) - 1e-9)
    free = np.ones(p0.size, dtype=bool)
    if fixed_weight is not None and n_gaps == 2:
        p0[6] = fixed_weight
        free[6] = False
    lo_free, hi_free = np.array(lo)[free], np.array(hi)[free]
    sigma = estimate_noise(v, g_wing) * c0
    if not (np.isfinite(sigma) and sigma > 0):
        sigma = 1e-3 * float(np.mean(np.abs(g)))

    def predict(p: np.ndarray) -> np.ndarray:
        gaps = _gaps_from(p, n_gaps)
        return conductance(v, temperature_K, gaps, dimension=dimension) * p[-3] * (
            1.0 + p[-2] * v + p[-1] * v * v)

    base = p0.copy()

    def full(x: np.ndarray) -> np.ndarray:
        p = base.copy()
        p[free] = x
        return p

    def residual(x: np.ndarray) -> np.ndarray:
        return (predict(full(x)) - g) / sigma

    result = least_squares(residual, p0[free], bounds=(lo_free, hi_free), x_scale="jac",
                           method="trf", max_nfev=200)
    p = full(result.x)
    if n_gaps == 2 and p[3] > p[0] and free[6]:  # label switching: keep Δ1 > Δ2
        p = np.array([p[3], p[4], p[5], p[0], p[1], p[2], 1.0 - p[6], *p[7:]])
        result = least_squares(residual, np.clip(p, lo_free + 1e-9, hi_free - 1e-9),
                               bounds=(lo_free, hi_free), x_scale="jac", method="trf",
                               max_nfev=150)
        p = full(result.x)
    dof = max(1, v.size - int(free.sum()))
    chi2_red = float(np.sum(result.fun ** 2) / dof)
    jac = np.asarray(result.jac, dtype=float)
    errors = np.zeros(p.size)
    try:
        cov = np.linalg.pinv(jac.T @ jac) * max(chi2_red, 1.0)
        errors[free] = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    except np.linalg.LinAlgError:
        errors[free] = np.nan
    return JointFit(names, p, errors, chi2_red, n_gaps, float(temperature_K), dimension,
                    float(sigma), int(result.nfev), "s+s" if n_gaps == 2 else "s")


def fit_spectrum(spec: _Spectrum, options: ReportOptions, warm: Any = None,
                 model: str | None = None, background: Background | None = None,
                 max_nfev: int | None = None) -> tuple[SpectrumResult, Any]:
    """Remove the series resistance, fit BTK × polynomial background, normalise by the latter.

    ``model`` "s+s" (default) or "s"; other models go through the analysis package's fit of
    the spectrum normalised by the high-bias wings.
    """
    model = model or options.model
    bias, g = spec.corrected(options.series_resistance_ohm)
    window = options.fit_max_bias_mV
    if window:
        keep = np.abs(bias) <= window
        bias, g = bias[keep], g[keep]
    dips = critical_current_dips(bias, g)
    if dips.any():
        bias, g = bias[~dips], g[~dips]
    if spec.normalized or model not in ("s", "s+s"):
        return _fit_normalised(spec, bias, g, options, model, background, max_nfev)
    n_gaps = 2 if model == "s+s" else 1
    fit = joint_fit(bias, g, spec.temperature_K, n_gaps, options.dimension,
                    start=warm if isinstance(warm, JointFit) else None)
    norm = g / fit.background(bias)
    params: dict[str, Value] = {}
    for name, value, err in zip(fit.names, fit.values, fit.errors, strict=True):
        stem = name.rstrip("0123456789")
        idx = name[len(stem):]
        if stem in ("delta", "gamma"):
            params[f"{stem}{idx}_meV"] = Value(float(value), float(err), "meV")
        elif stem in ("z", "weight"):
            params[name] = Value(float(value), float(err))
    if n_gaps == 1:
        params["weight1"] = Value(1.0, 0.0)
    warnings = []
    if dips.any():
        warnings.append(f"{int(dips.sum())} points in critical-current dips excluded")
    return SpectrumResult(
        temperature_K=spec.temperature_K, field_T=spec.field_T, bias_mV=bias,
        conductance_raw=g, conductance_norm=norm, fit_curve=fit.btk(bias), parameters=params,
        chi2_red=fit.chi2_red, model=model, source=spec.source, warnings=warnings), fit


def critical_current_dips(bias_mV: np.ndarray, g: np.ndarray, width: int = 15,
                          threshold: float = 6.0, min_depth: float = 0.05) -> np.ndarray:
    """Mask of the sharp conductance dips where the current reaches the contact's Ic.

    They track Jc(T, B), not Δ (physics.md §4.7, Sheet et al. 2004), so they are left out of
    the fit: points more than ``threshold`` noise widths below a running median of ``width``
    points and at least ``min_depth`` (relative) below it — far sharper and deeper than any
    BTK feature, which Γ and k_BT keep smooth — widened by two points on each side.
    """
    from scipy.ndimage import median_filter

    n = g.size
    if n < width + 5:
        return np.zeros(n, dtype=bool)
    smooth = median_filter(g, size=width, mode="nearest")
    resid = g - smooth
    noise = 1.4826 * float(np.median(np.abs(np.diff(g)))) / math.sqrt(2) or 1e-12
    low = (resid < -threshold * max(noise, 1e-3 * float(np.median(np.abs(g))))) & (
        resid < -min_depth * np.abs(smooth))
    if not low.any():
        return low
    grown = low.copy()
    for shift in (1, 2):
        grown[shift:] |= low[:-shift]
        grown[:-shift] |= low[shift:]
    return grown


def _fit_normalised(spec: _Spectrum, bias: np.ndarray, g: np.ndarray, options: ReportOptions,
                    model: str, background: Background | None,
                    max_nfev: int | None) -> tuple[SpectrumResult, Any]:
    """Other models (d-wave, anisotropic): normalise first, then the analysis package's fit."""
    from daqapp.analysis.fit import BTKModel
    from daqapp.analysis.fit import fit_spectrum as btk_fit

    btk = BTKModel(model, spec.temperature_K, options.dimension)
    if spec.normalized:
        g_norm = g
    elif background is not None:
        inside = np.abs(bias) <= background.span_mV
        bias, g = bias[inside], g[inside]
        g_norm = g / background(bias)
    else:
        g_norm = normalize_background(bias, g, options.background_degree)
        btk.set("scale", vary=True)
        btk.set("slope", vary=True)
    result = btk_fit(bias, g_norm, btk, temperature_K=spec.temperature_K, max_nfev=max_nfev)
    curve = np.asarray(result.eval(bias), dtype=float)
    return SpectrumResult(
        temperature_K=spec.temperature_K, field_T=spec.field_T, bias_mV=bias,
        conductance_raw=g, conductance_norm=np.asarray(g_norm, dtype=float), fit_curve=curve,
        parameters=_values_from_fit(result, len(btk.components)),
        chi2_red=float(getattr(result, "chi2_red", math.nan)), model=btk.name,
        source=spec.source), result


def _pick_background(references: list[_Spectrum], field_T: float,
                     degree: int) -> Background | None:
    if not references:
        return None
    best = min(references, key=lambda r: (abs(r.field_T - field_T), r.temperature_K))
    return background_from_reference(best, degree)


def analyse_spectra(paths: list[Path], options: ReportOptions, data: ReportData,
                    progress: Callable[[str], None] | None = None) -> None:
    spectra: list[_Spectrum] = []
    for path in paths:
        try:
            spectra.extend(load_run_spectra(path, options.series_resistance_ohm))
        except Exception as exc:  # noqa: BLE001 - one bad file must not sink the report
            data.notes.append(f"{Path(path).name}: spectra not read ({exc})")
    spectra = [s for s in spectra if math.isfinite(s.temperature_K)]
    spectra.sort(key=lambda s: s.temperature_K)
    above = options.normal_state_above_K
    if above is None and "tc_onset_K" in data.summary:
        above = data.summary["tc_onset_K"].value + 3.0
    references = [s for s in spectra if above is not None and s.temperature_K >= above]
    spectra = [s for s in spectra if s not in references]
    if options.model in ("s", "s+s"):
        data.notes.append(
            "spectra normalised by a quadratic normal-state background G_N(V) fitted together "
            f"with the {options.model} BTK model (2D, thermal smearing at the measured T)")
    elif references:
        ref = min(references, key=lambda r: r.temperature_K)
        data.notes.append(
            f"spectra normalised by a degree-{options.reference_degree} polynomial through the "
            f"normal-state spectrum at {ref.temperature_K:.1f} K ({ref.source})")
    else:
        data.notes.append(
            f"spectra normalised by a degree-{options.background_degree} polynomial through "
            "the high-bias wings, with free scale and slope in the fit")
    rs_values = sorted({s.series_resistance_ohm for s in spectra + references})
    if any(rs_values):
        data.notes.append("series resistance removed before normalising: R_s = "
                          + ", ".join(f"{r:g} Ω" for r in rs_values))
    warm = None
    for spec in spectra:
        try:
            background = _pick_background(references, spec.field_T, options.reference_degree)
            result, fit = fit_spectrum(spec, options, warm, background=background)
        except Exception as exc:  # noqa: BLE001
            data.notes.append(f"{spec.source} at {spec.temperature_K:.1f} K: fit failed ({exc})")
            continue
        warm = fit
        data.spectra.append(result)
        for warning in result.warnings:
            data.notes.append(f"{spec.source} at {spec.temperature_K:.1f} K: {warning}")
        if progress:
            d1 = result.parameters.get("delta1_meV", MISSING)
            d2 = result.parameters.get("delta2_meV", MISSING)
            progress(f"spectrum {spec.temperature_K:5.1f} K: Δ1 = {d1.text()}, "
                     f"Δ2 = {d2.text()}, χ²_red = {result.chi2_red:.2f}")
    if len(data.spectra) < 2:
        if data.spectra:
            data.notes.append("only one spectrum: no Δ(T) fit")
        return
    temps = np.array([s.temperature_K for s in data.spectra])
    from daqapp.analysis.gaps import fit_gap_temperature

    tc1: float | None = None
    for key in ("delta1", "delta2"):
        vals = np.array([s.parameters.get(f"{key}_meV", MISSING).value for s in data.spectra])
        ok = np.isfinite(vals)
        if key == "delta2" and ok.any():
            # Both gaps close at the same Tc (physics.md §2.6); near Tc the small gap is lost
            # in the smearing and its fit collapses: keep the points where it is resolved.
            resolved = vals >= 0.3 * float(np.nanmax(vals[:3] if vals.size >= 3 else vals))
            dropped = int(np.count_nonzero(ok & ~resolved))
            ok &= resolved
            if dropped:
                data.notes.append(f"Δ₂(T): {dropped} spectra near Tc where Δ₂ is not resolved "
                                  "(< 30 % of its low-T value) left out; Tc shared with Δ₁")
        if ok.sum() < (3 if key == "delta1" or tc1 is None else 2):
            continue
        try:
            gfit = fit_gap_temperature(temps[ok], vals[ok], None, form=options.gap_form,
                                       tc_K=tc1 if key == "delta2" else None)
        except Exception as exc:  # noqa: BLE001
            data.notes.append(f"{key}(T) fit failed: {exc}")
            continue
        t_grid = np.linspace(0.0, gfit.tc_K, 300)
        tc = Value(gfit.tc_K, gfit.tc_err_K, "K")
        d0 = Value(gfit.delta0_meV, gfit.delta0_err_meV, "meV")
        label = f"{options.gap_form.upper()} fit" + (" (Tc of Δ₁)" if key == "delta2" else "")
        data.gap_fits[key] = CurveFit(label, t_grid, gfit.curve(t_grid),
                                      {"tc_K": tc, "delta0_meV": d0}, gfit.chi2_red)
        data.summary[f"{key}_0_meV"] = d0
        if key == "delta1":
            tc1 = gfit.tc_K
            data.summary["tc_gap_K"] = tc
            data.summary["ratio_2delta1_kTc"] = Value(gfit.ratio_2delta_kTc, gfit.ratio_err)


# --------------------------------------------------------------------------- transport


def _rt_curves(path: Path) -> list[RTCurve]:
    from daqapp.storage import open_run

    with open_run(path) as run:
        cols = run.columns
    t = np.asarray(cols.get("temperature", []), dtype=float)
    r = np.asarray(cols.get("resistance", []), dtype=float)
    b = np.asarray(cols.get("field", np.zeros_like(t)), dtype=float)
    ok = np.isfinite(t) & np.isfinite(r) & np.isfinite(b)
    t, r, b = t[ok], r[ok], b[ok]
    out = []
    for value in np.unique(np.round(b, 2)):
        sel = np.abs(b - value) < 0.02
        if sel.sum() >= 5:
            out.append(RTCurve(float(abs(value)), t[sel], r[sel], Path(path).name))
    return out


def _grid_error(t: np.ndarray, at: float) -> float:
    """Temperature resolution of a curve near ``at``: half the local reading spacing."""
    ts = np.sort(t)
    near = np.abs(ts - at) < 2.0
    steps = np.diff(ts[near]) if near.sum() > 2 else np.diff(ts)
    steps = steps[steps > 0]
    return float(0.5 * np.median(steps)) if steps.size else math.nan


def analyse_rt(paths: list[Path], options: ReportOptions, data: ReportData) -> None:
    from daqapp.analysis.hc2 import fit_hc2
    from daqapp.analysis.transport import critical_temperatures, hc2_from_rt

    curves: dict[float, RTCurve] = {}
    for path in paths:
        try:
            for curve in _rt_curves(path):
                prev = curves.get(curve.field_T)
                if prev is None or len(curve.temperature_K) > len(prev.temperature_K):
                    curves[curve.field_T] = curve
        except Exception as exc:  # noqa: BLE001
            data.notes.append(f"{Path(path).name}: R–T not read ({exc})")
    data.rt_curves = sorted(curves.values(), key=lambda c: c.field_T)
    if not data.rt_curves:
        return
    zero = curves.get(0.0) or data.rt_curves[0]
    window: tuple[float, float] | None = None
    try:
        tc = critical_temperatures(zero.temperature_K, zero.resistance_ohm)
        t_top = min(float(np.max(c.temperature_K)) for c in data.rt_curves)
        if t_top - (tc.onset_K + 3.0) >= 5.0:
            # one normal-state window for every field, so R_N is extrapolated alike for
            # complete and partial curves
            window = (tc.onset_K + 3.0, t_top)
        data.summary["tc_onset_K"] = Value(tc.onset_K, _grid_error(zero.temperature_K,
                                                                    tc.onset_K), "K")
        data.summary["tc_mid_K"] = Value(tc.midpoint_K, _grid_error(zero.temperature_K,
                                                                     tc.midpoint_K), "K")
        if tc.zero_K is not None:
            data.summary["tc_zero_K"] = Value(tc.zero_K, _grid_error(zero.temperature_K,
                                                                      tc.zero_K), "K")
        else:
            data.notes.append("R–T at 0 T never reaches zero resistance in the measured range")
    except ValueError as exc:
        data.notes.append(f"Tc from R–T failed: {exc}")
    if len(data.rt_curves) < 3:
        data.notes.append("fewer than three fields: no Hc2(T) fit")
        return
    crit = options.hc2_criterion
    try:
        extra = {"normal_window_K": window} if window else {}
        pts = hc2_from_rt([(c.field_T, c.temperature_K, c.resistance_ohm)
                           for c in data.rt_curves], criterion=crit, **extra)
    except ValueError as exc:
        data.notes.append(f"Hc2 points failed: {exc}")
        return
    data.hc2_points = (pts.temperature_K, pts.field_T)
    data.hc2_criterion = f"R = {crit * 100:g} % of $R_N$"
    if len(pts.field_T) < 3:
        data.notes.append("fewer than three Hc2 points: no Hc2(T) fit")
        return
    t_grid = np.linspace(0.0, float(np.max(pts.temperature_K)) * 1.02, 240)
    # Each point's temperature is known to the curve's reading spacing; as a field error
    # (through the slope dB/dT) that is what weights the fits and sets their uncertainties.
    by_field = {c.field_T: c for c in data.rt_curves}
    t_err = np.array([_grid_error(by_field[b].temperature_K, t) if b in by_field else math.nan
                      for t, b in zip(pts.temperature_K, pts.field_T, strict=True)])
    slope = abs(float(np.polyfit(pts.temperature_K, pts.field_T, 1)[0]))
    sigma_b = np.sqrt((slope * np.nan_to_num(t_err, nan=0.1)) ** 2 + 0.01 ** 2)
    try:
        whh = fit_hc2(pts.temperature_K, pts.field_T, sigma_b, model="whh")
        data.hc2_fits["whh"] = CurveFit(
            "single band (WHH)", t_grid, whh.curve(t_grid),
            {"hc2_0_T": Value(whh.hc2_0_T, whh.hc2_0_err_T, "T")}, whh.chi2_red)
        data.summary["hc2_0_whh_T"] = Value(whh.hc2_0_T, whh.hc2_0_err_T, "T")
    except Exception as exc:  # noqa: BLE001
        data.notes.append(f"WHH fit failed: {exc}")
    try:
        two = fit_hc2(pts.temperature_K, pts.field_T, sigma_b, model="two_band",
                      eta=options.hc2_eta)
    except Exception as exc:  # noqa: BLE001
        data.notes.append(f"two-band Hc2 fit failed: {exc}")
        return
    data.hc2_fits["two_band"] = CurveFit(
        f"two band (Gurevich, η = {options.hc2_eta:g})", t_grid, two.curve(t_grid),
        {"hc2_0_T": Value(two.hc2_0_T, two.hc2_0_err_T, "T")}, two.chi2_red)
    data.summary["hc2_0_T"] = Value(two.hc2_0_T, two.hc2_0_err_T, "T")
    data.summary["coherence_length_nm"] = Value(two.coherence_length_nm,
                                                two.coherence_length_err_nm, "nm")
    # Near-Tc points cannot fix η = D2/D1; say how much Hc2(0) depends on that choice.
    spread = []
    for eta in (0.1, 0.5, 1.0):
        try:
            spread.append(fit_hc2(pts.temperature_K, pts.field_T, model="two_band",
                                  eta=eta).hc2_0_T)
        except Exception:  # noqa: BLE001
            continue
    if spread:
        data.notes.append(
            f"two-band Hc2(0) assumes η = D2/D1 = {options.hc2_eta:g} (fields up to "
            f"{float(np.max(pts.field_T)):g} T only probe T near Tc); η = 0.1, 0.5, 1 would give "
            + ", ".join(f"{v:.0f} T" for v in spread))


def _iv_curves(path: Path, criterion_noise: float = 5.0) -> list[IVCurve]:
    from daqapp.analysis.critical import critical_current
    from daqapp.storage import open_run

    with open_run(path) as run:
        sweeps = run.sweeps()
        if not sweeps:
            cols = run.columns
            sweeps_data = [(cols.get("current"), cols.get("voltage"),
                            float(np.nanmean(cols.get("temperature", [math.nan]))))]
        else:
            sweeps_data = [(s.columns.get("current"), s.columns.get("voltage"), s.temperature)
                           for s in sweeps]
    currents, voltages, temps, ics = [], [], [], []
    for current, voltage, temperature in sweeps_data:
        if current is None or voltage is None:
            continue
        i = np.asarray(current, dtype=float) * 1e3
        v = np.asarray(voltage, dtype=float) * 1e3
        ok = np.isfinite(i) & np.isfinite(v)
        i, v = i[ok], v[ok]
        if i.size < 8:
            continue
        currents.append(i)
        voltages.append(v)
        temps.append(temperature)
        # A broad transition leaves an ohmic path in parallel (R(T) > 0 below the onset), so
        # "V leaves zero" becomes "dV/dI leaves its low-current value".
        ic = ic_from_differential_resistance(i, v)
        if ic is None:
            try:
                found = critical_current(i, v, noise_factor=criterion_noise)
            except ValueError:
                continue
            ic = 0.0 if found.ohmic else found.ic_mean
        if ic is not None:
            ics.append(float(ic))
    if not currents:
        return []
    # one curve per run for the plot (the first sweep); Ic averaged over sweeps and polarities
    t = float(np.nanmean(temps))
    # uncertainty: scatter between sweeps/polarities, at least half a current step
    step = float(np.median(np.abs(np.diff(currents[0])))) if currents[0].size > 1 else 0.0
    spread = float(np.std(ics) / math.sqrt(len(ics))) if len(ics) > 1 else 0.0
    ic_value = Value(float(np.mean(ics)), max(spread, 0.5 * step), "mA") if ics else MISSING
    order = np.argsort(currents[0], kind="stable")
    return [IVCurve(t, currents[0][order], voltages[0][order], ic_value, Path(path).name)]


def ic_from_differential_resistance(current: np.ndarray, voltage: np.ndarray,
                                    fraction: float = 0.1) -> float | None:
    """Ic where dV/dI rises ``fraction`` of the way from its low-current to its high-current
    value, averaged over both polarities; 0 for an ohmic curve; None if neither branch has
    enough points. Works with or without a parallel ohmic path below Ic."""
    order = np.argsort(current)
    i, v = current[order], voltage[order]
    results = []
    for sign in (1.0, -1.0):
        sel = (sign * i) > 0
        x, y = sign * i[sel], sign * v[sel]
        if x.size < 12:
            continue
        o = np.argsort(x)
        x, y = x[o], y[o]
        slope = np.gradient(y, x)
        k = max(3, x.size // 15)
        r_low = float(np.median(slope[:k]))
        r_high = float(np.median(slope[-k:]))
        if r_high - r_low < 0.2 * abs(r_high):
            results.append(0.0)  # no kink: resistive from the smallest current
            continue
        level = r_low + fraction * (r_high - r_low)
        above = slope > level
        for j in range(x.size - 2):
            if above[j] and above[j + 1] and above[j + 2]:
                results.append(float(x[j]) if j else 0.0)
                break
    if not results:
        return None
    return float(np.mean(results))


def analyse_iv(paths: list[Path], options: ReportOptions, data: ReportData) -> None:
    from daqapp.analysis.critical import fit_jc_temperature

    for path in paths:
        try:
            data.iv_curves.extend(_iv_curves(path))
        except Exception as exc:  # noqa: BLE001
            data.notes.append(f"{Path(path).name}: I–V not read ({exc})")
    data.iv_curves.sort(key=lambda c: c.temperature_K)
    pts = [(c.temperature_K, c.ic_mA.value, c.ic_mA.error) for c in data.iv_curves
           if math.isfinite(c.ic_mA.value) and c.ic_mA.value > 0]
    if len(pts) < 3:
        if data.iv_curves:
            data.notes.append("fewer than three temperatures with a critical current: "
                              "no Ic(T) fit")
        return
    t = np.array([p[0] for p in pts])
    ic = np.array([p[1] for p in pts])
    err = np.array([p[2] for p in pts])
    sigma = err if np.all(np.isfinite(err) & (err > 0)) else None
    try:
        jfit = fit_jc_temperature(t, ic, sigma, form=options.jc_form)
    except Exception as exc:  # noqa: BLE001
        data.notes.append(f"Ic(T) fit failed: {exc}")
        return
    grid = np.linspace(0.0, jfit.tc_K, 200)
    labels = {"dew_hughes_dtc": "δTc pinning", "dew_hughes_dl": "δl pinning",
              "gl": "GL depairing", "power": "(1 − t)ⁿ"}
    jc0 = Value(jfit.jc0, jfit.jc0_err, "mA")
    data.jc_fit = CurveFit(f"{labels.get(options.jc_form, options.jc_form)} fit", grid,
                           jfit.curve(grid), {"jc0_mA": jc0,
                                              "tc_K": Value(jfit.tc_K, jfit.tc_err_K, "K")},
                           jfit.chi2_red)
    data.summary["jc0_mA"] = jc0
    data.summary["ic_tc_K"] = Value(jfit.tc_K, jfit.tc_err_K, "K")


def analyse_calibration(paths: list[Path], options: ReportOptions, data: ReportData) -> None:
    for path in paths:
        try:
            spectra = load_run_spectra(path, options.series_resistance_ohm)
        except Exception as exc:  # noqa: BLE001
            data.notes.append(f"{Path(path).name}: calibration not read ({exc})")
            continue
        for spec in spectra:
            try:
                result, _ = fit_spectrum(spec, options, model="s")
            except Exception as exc:  # noqa: BLE001
                data.notes.append(f"Nb calibration fit failed: {exc}")
                continue
            data.calibration = result
            d = result.parameters.get("delta1_meV")
            if d is not None:
                data.summary["nb_delta_meV"] = d
            return


# --------------------------------------------------------------------------- entry points


def analyse(paths: Iterable[Path], options: ReportOptions | None = None,
            title: str | None = None,
            progress: Callable[[str], None] | None = None) -> ReportData:
    """Read every run under ``paths`` and compute the report's figures' data and numbers."""
    options = options or ReportOptions()
    paths = [Path(p) for p in paths]
    found = collect(paths)
    data = ReportData(title=title or _title(found, paths), sample=found.sample,
                      runs=found.runs)
    steps = (("R–T", analyse_rt, found.rt), ("I–V", analyse_iv, found.iv),
             ("calibration", analyse_calibration, found.calibration))
    for label, fn, items in steps:
        if items:
            if progress:
                progress(f"{label}: {len(items)} run(s)")
            fn(items, options, data)
    # after R–T: its onset Tc tells which spectra are normal-state references
    analyse_spectra(found.spectra, options, data, progress)
    if not (found.spectra or found.rt or found.iv or found.calibration):
        data.notes.append("no run files with data found")
    return data


def _title(found: Collected, paths: list[Path]) -> str:
    sample = found.sample.get("sample")
    cell = found.sample.get("cell")
    if sample:
        return f"{sample}" + (f", {cell}" if cell else "")
    return paths[0].name if paths else "daqapp report"


def quick_fit_run(path: Path, max_nfev: int = 300) -> tuple[dict[str, Any], str] | None:
    """Fit the first spectrum of a finished run (the campaign's 'latest fit' preview)."""
    options = ReportOptions()
    spectra = load_run_spectra(Path(path))
    if not spectra:
        return None
    spec = spectra[0]
    model = "s" if "calibration" in spec.source.lower() or "nb" in spec.source.lower() \
        else options.model
    result, _ = fit_spectrum(spec, options, model=model, max_nfev=max_nfev)
    values = {k: v.as_dict() for k, v in result.parameters.items()}
    values["temperature_K"] = spec.temperature_K
    values["chi2_red"] = result.chi2_red
    parts = [f"T={spec.temperature_K:.1f} K"]
    for key, name in (("delta1_meV", "Δ1"), ("delta2_meV", "Δ2")):
        if key in result.parameters:
            parts.append(f"{name}={result.parameters[key].text(3)}")
    return values, " ".join(parts)
