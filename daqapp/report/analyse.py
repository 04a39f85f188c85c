"""From run files to report numbers: classify runs, refit every spectrum, fit Δ(T), Tc, Hc2, Ic.

Everything is recomputed from the raw columns of the run files (the fits stored in the files
are not trusted blindly: a student refitting last month's data with a better model must get the
new numbers). Each analysis step is guarded: a missing kind of run leaves its part of the
report empty with a note, it never stops the rest.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from daqapp.analysis.batch import SeriesItem

log = logging.getLogger(__name__)


@dataclass
class ReportOptions:
    """Choices a user may change; defaults follow the seed paper."""

    model: str = "s+s"
    dimension: int = 2
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
    #: Divide the spectra by that normal-state spectrum before the joint background fit.
    #: Off by default: the window, replay and ``daqapp fit`` have no reference, and the
    #: report should show their numbers (the contact also changes between Tc and base).
    normal_state_reference: bool = False
    #: Profile-likelihood intervals of the gaps (in the notes); slower.
    profile: bool = False


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
    #: campaign names from the run files (the campaign file's [campaign] name), in order
    campaigns: list[str] = field(default_factory=list)


def _recorded(value: Any) -> bool:
    """A metadata value that says something: not absent, empty, or the writer's NaN for a
    number nobody gave (``pressure_GPa: nan`` in a report reads like a measurement)."""
    if value is None or value == "":
        return False
    return not (isinstance(value, float) and math.isnan(value))


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


def collect(paths: Iterable[Path]) -> Collected:
    from daqapp.analysis.batch import find_run_files
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
        if kind != "calibration":  # the Nb foil is not the sample
            for key in ("sample", "cell", "pressure_GPa", "operator"):
                if _recorded(meta.get(key)) and key not in found.sample:
                    found.sample[key] = meta[key]
            name = meta.get("campaign")
            if _recorded(name) and str(name) not in found.campaigns:
                found.campaigns.append(str(name))
        getattr(found, kind if kind != "other" else "other").append(path)
    return found


# --------------------------------------------------------------------------- spectra


def analysis_options(options: ReportOptions, model: str | None = None) -> Any:
    """The one spectrum analysis's options for the report's choices."""
    from daqapp.analysis.spectroscopy import AnalysisOptions

    return AnalysisOptions(models=(model or options.model,), dimension=options.dimension,
                           series_resistance_ohm=options.series_resistance_ohm,
                           max_bias_mV=options.fit_max_bias_mV, gap_form=options.gap_form,
                           profile=options.profile)


def load_run_spectra(path: Path, options: ReportOptions | None = None,
                     model: str | None = None) -> list[SeriesItem]:
    """Spectra of a run (sweep directions merged), each with the run's facts, as the batch
    fits them (:func:`daqapp.analysis.batch.run_file_spectra`)."""
    from daqapp.analysis.batch import run_file_spectra

    return run_file_spectra(path, analysis_options(options or ReportOptions(), model))


def spectrum_result(analysis: Any, source: str) -> SpectrumResult:
    """The report's view of one analysed spectrum: normalised data, the BTK curve, values."""
    p = analysis.prepared
    keep = p.mask
    bias = p.bias_mV[keep]
    params: dict[str, Value] = {}
    result = analysis.result()
    warnings = [n for n in analysis.notes if n.startswith(("no gap", "not determined",
                                                           "at a bound"))]
    warnings += [s for s in p.steps if "dips" in s or "sweep directions" in s]
    if result is None:
        return SpectrumResult(analysis.temperature_K, analysis.field_T, bias,
                              p.conductance[keep], p.conductance[keep], None, {}, math.nan,
                              "", source, warnings)
    n = len(result.to_model().components)
    for name, value in result.values.items():
        stem = name.rstrip("0123456789")
        err = result.stderr.get(name)
        error = math.nan if err is None else float(err)
        if stem in ("delta", "gamma") and analysis.has_gap:
            params[f"{name}_meV"] = Value(float(value), error, "meV")
        elif stem in ("z", "weight") and analysis.has_gap:
            held = not result.params[name]["vary"]
            params[name] = Value(float(value), math.nan if held else error)
    if n == 1 and analysis.has_gap:
        params["weight1"] = Value(1.0, 0.0)
    odd, even = residual_symmetry(analysis)
    fine = np.linspace(float(bias.min()), float(bias.max()), 801) if bias.size else bias
    return SpectrumResult(
        temperature_K=analysis.temperature_K, field_T=analysis.field_T, bias_mV=bias,
        conductance_raw=p.conductance[keep] * p.divisor(bias),
        conductance_norm=analysis.normalised()[keep], fit_curve=analysis.btk_curve(bias),
        parameters=params, chi2_red=float(result.chi2_red), model=result.model,
        source=source, warnings=warnings, residual_odd=odd, residual_even=even,
        fit_bias_mV=fine, fit_curve_fine=analysis.btk_curve(fine),
        masked_bias_mV=p.bias_mV[~keep], masked_conductance_norm=analysis.normalised()[~keep])


def residual_symmetry(analysis: Any) -> tuple[float, float]:
    """Mean squared odd and even parts (about the fitted V0) of the fit's residual in σ.

    White noise puts 0.5 in each; a χ²_red above 1 carried by the odd part is an asymmetric
    spectrum (e.g. the thermovoltage of a Joule-heated lead), which no BTK model has, not a
    wrong noise estimate (measured on the demo's 3 K spectrum: 5.5 odd, 0.4 even)."""
    p = analysis.prepared
    keep = p.mask
    x, y = p.bias_mV[keep], p.conductance[keep]
    if not (math.isfinite(p.sigma) and p.sigma > 0) or x.size < 10:
        return math.nan, math.nan
    r = (y - analysis.curve(x) / p.divisor(x)) / p.sigma
    u = x - float(analysis.result().values.get("v0", 0.0))
    inside = np.abs(u) <= min(-float(u.min()), float(u.max()))
    if inside.sum() < 10:
        return math.nan, math.nan
    mirror = np.interp(-u[inside], u, r)
    odd = 0.5 * (r[inside] - mirror)
    even = 0.5 * (r[inside] + mirror)
    return float(np.mean(odd * odd)), float(np.mean(even * even))


def note_asymmetric_misfit(data: ReportData) -> None:
    """Say what a χ²_red ≫ 1 is made of when the residual is odd in V."""
    odd = [s for s in data.spectra if s.chi2_red > 2.0 and s.residual_odd > 2.0 * max(
        s.residual_even, 0.5)]
    if not odd:
        return
    lo = min(s.chi2_red for s in odd)
    hi = max(s.chi2_red for s in odd)
    worst = max(odd, key=lambda s: s.residual_odd)
    data.notes.append(
        f"χ²_red {lo:.1f}–{hi:.1f} in {len(odd)} spectra comes from a residual odd in V "
        f"(at {worst.temperature_K:.1f} K: odd part {worst.residual_odd:.1f} σ², even "
        f"{worst.residual_even:.1f} σ²; white noise gives 0.5 each): the spectra are "
        "asymmetric, which BTK is not (a Joule-heated lead's thermovoltage, or a "
        "thermoelectric bias offset drifting during the sweep); the noise σ holds")


def _reference_for(references: list[SeriesItem], field_T: float) -> SeriesItem | None:
    if not references:
        return None
    return min(references, key=lambda r: (abs(r.field_T - field_T), r.temperature_K))


def analyse_spectra(paths: list[Path], options: ReportOptions, data: ReportData,
                    progress: Callable[[str], None] | None = None) -> None:
    """Every spectrum through the one analysis (:mod:`daqapp.analysis.spectroscopy`), cold to
    warm as one series, then Δ(T) with Tc only where the data determine it."""
    spectra: list[SeriesItem] = []
    for path in paths:
        try:
            spectra.extend(load_run_spectra(path, options))
        except Exception as exc:  # noqa: BLE001 - one bad file must not sink the report
            data.notes.append(f"{Path(path).name}: spectra not read ({exc})")
    spectra = [s for s in spectra if math.isfinite(s.temperature_K)]
    spectra.sort(key=lambda s: s.temperature_K)
    above = options.normal_state_above_K
    if above is None and "tc_onset_K" in data.summary:
        above = data.summary["tc_onset_K"].value + 3.0
    references = [s for s in spectra if above is not None and s.temperature_K >= above]
    spectra = [s for s in spectra if s not in references]
    if references:
        ref = min(references, key=lambda r: r.temperature_K)
        data.notes.append(f"{len(references)} spectra at or above {above:.1f} K are normal "
                          "state: left out of Δ(T)")
    if references and options.normal_state_reference:
        data.notes.append(
            f"spectra divided by the normal-state spectrum at {ref.temperature_K:.1f} K "
            f"({ref.source}, same series resistance removed), then fitted with a quadratic "
            f"normal-state background jointly with the {options.model} BTK model")
    else:
        data.notes.append(
            "spectra fitted with a quadratic normal-state background G_N(V) jointly with the "
            f"{options.model} BTK model ({options.dimension}D, thermal smearing at the measured "
            "T, lock-in modulation, bias offset fitted)")
    rs_values = sorted({float(s.options.series_resistance_ohm or 0.0)
                        for s in spectra + references})
    if any(rs_values):
        data.notes.append("series resistance removed before normalising: R_s = "
                          + ", ".join(f"{r:g} Ω" for r in rs_values))
    if options.normal_state_reference:
        for spec in spectra:
            ref = _reference_for(references, spec.field_T)
            spec.reference = ref.raw if ref is not None else None

    def reported(spec: SeriesItem, analysis: Any, error: str) -> None:
        if analysis is None:
            data.notes.append(f"{spec.source} at {spec.temperature_K:.1f} K: fit failed "
                              f"({error})")
            return
        result = spectrum_result(analysis, spec.source)
        data.spectra.append(result)
        intervals = getattr(analysis.result(), "intervals", None) or {}
        if intervals:
            data.notes.append(f"{spec.source} at {spec.temperature_K:.1f} K: profile 68 % "
                              "intervals " + ", ".join(f"{k} [{lo:.4g}, {hi:.4g}] meV"
                                                       for k, (lo, hi) in intervals.items()))
        for warning in result.warnings:
            data.notes.append(f"{spec.source} at {spec.temperature_K:.1f} K: {warning}")
        if progress:
            d1 = result.parameters.get("delta1_meV", MISSING)
            d2 = result.parameters.get("delta2_meV", MISSING)
            progress(f"spectrum {spec.temperature_K:5.1f} K: Δ1 = {d1.text()}, "
                     f"Δ2 = {d2.text()}, χ²_red = {result.chi2_red:.2f}")

    # the report's spectra are one contact's series: one batch task, fitted here
    from daqapp.analysis.batch import SeriesTask, fit_series

    reused: list[SeriesItem] = []

    def previewed(item: SeriesItem, series: Any) -> Any:
        found = _previewed(item, series)
        if found is not None:
            reused.append(item)
        return found

    gaps = fit_series(SeriesTask("", spectra), on_fit=reported, reuse=previewed).gaps
    if reused:
        data.notes.append(f"{len(reused)} of {len(spectra)} spectra: the campaign's on-line fit "
                          "reused (same run, options and colder constraint as this report's)")
    data.notes.extend(gaps.notes)
    # why a spectrum with a gap is not in Δ(T) (normal-state ones are counted above)
    data.notes.extend(f"Δ(T) leaves out {e}" for e in gaps.excluded if "normal state" not in e)
    data.gap_fitted_K = dict(gaps.fitted_K)
    note_asymmetric_misfit(data)
    if len(gaps.temperature_K) < 2:
        if data.spectra:
            data.notes.append("fewer than two spectra with a gap: no Δ(T) fit")
        return
    for key in ("delta1", "delta2"):
        gfit = gaps.fits.get(key)
        if gfit is None:
            continue
        determined = gaps.tc_determined.get(key, False)
        t_grid = np.linspace(0.0, gfit.tc_K, 300)
        tc = Value(gfit.tc_K, gfit.tc_err_K, "K")
        d0 = Value(gfit.delta0_meV, gfit.delta0_err_meV, "meV")
        label = f"{options.gap_form.upper()} fit" + (" ($T_c$ of Δ₁)" if key == "delta2" else "")
        data.gap_fits[key] = CurveFit(label, t_grid, gfit.curve(t_grid),
                                      {"tc_K": tc if determined else MISSING,
                                       "delta0_meV": d0}, gfit.chi2_red)
        data.summary[f"{key}_0_meV"] = d0
        if key == "delta1":
            if determined:
                data.summary["tc_gap_K"] = tc
                data.summary["ratio_2delta1_kTc"] = Value(gfit.ratio_2delta_kTc,
                                                          gfit.ratio_err)
            else:
                data.notes.append("Δ₁(T): " + gaps.tc_text("delta1"))


# --------------------------------------------------------------------------- transport


def _rt_curves(path: Path) -> list[RTCurve]:
    from daqapp.storage import open_run

    with open_run(path) as run:
        cols = run.columns
    t = np.asarray(cols.get("temperature", []), dtype=float)
    r = np.asarray(cols.get("resistance", []), dtype=float)
    b = np.asarray(cols.get("field", np.zeros_like(t)), dtype=float)
    i = np.asarray(cols.get("current", np.full_like(t, np.nan)), dtype=float)
    ok = np.isfinite(t) & np.isfinite(r) & np.isfinite(b)
    t, r, b, i = t[ok], r[ok], b[ok], i[ok]
    out = []
    for value in np.unique(np.round(b, 2)):
        sel = np.abs(b - value) < 0.02
        if sel.sum() >= 5:
            current = np.abs(i[sel][np.isfinite(i[sel])])
            out.append(RTCurve(float(abs(value)), t[sel], r[sel], Path(path).name,
                               float(np.median(current)) * 1e3 if current.size else math.nan))
    return out


#: An R–T current above this share of Ic(0) puts a visible flux-flow kink where Ic(T) < I.
CURRENT_SHARE_OF_IC0 = 0.05


def note_current_above_ic(data: ReportData) -> None:
    """Say where the R–T measuring current exceeds Ic(T) of the I–V runs: there the
    resistance includes flux flow, and R(T) shows a kink that is not the transition
    (the demo's 0.2 mA did this at 30–32 K)."""
    fit = data.jc_fit
    zero = [c for c in data.rt_curves if c.field_T == 0.0 and math.isfinite(c.current_mA)]
    if fit is None or not zero or fit.x.size < 2:
        return
    current = zero[0].current_mA
    # every current exceeds Ic right at its Tc; the flux-flow share of R grows with I/Ic(0)
    if not current > CURRENT_SHARE_OF_IC0 * float(np.max(fit.y)):
        return
    above = fit.x[(fit.y < current) & (fit.x > 0)]
    t_lo = float(np.min(zero[0].temperature_K))
    if above.size and float(above[0]) > t_lo:
        data.notes.append(
            f"the R–T measuring current {current:.3g} mA exceeds Ic(T) of the I–V runs above "
            f"{float(above[0]):.1f} K (up to the Ic fit's Tc {float(fit.x[-1]):.1f} K): R(T) "
            "there includes flux flow (a kink not due to the transition); measure R–T at a "
            "current below Ic")


#: R = 90 % of R_N: the summary's "onset" (and the Hc2 points' default criterion).
ONSET_FRACTION = 0.9


def analyse_rt(paths: list[Path], options: ReportOptions, data: ReportData) -> None:
    curves: dict[float, RTCurve] = {}
    for path in paths:
        try:
            for curve in _rt_curves(path):
                prev = curves.get(curve.field_T)
                if prev is None or len(curve.temperature_K) > len(prev.temperature_K):
                    curves[curve.field_T] = curve
        except Exception as exc:  # noqa: BLE001
            data.notes.append(f"{Path(path).name}: R–T not read ({exc})")
    analyse_rt_curves(list(curves.values()), options, data)


def analyse_rt_curves(curves: list[RTCurve], options: ReportOptions, data: ReportData) -> None:
    """Tc (onset, midpoint, zero) of the 0 T curve and the Hc2(T) points and fits, every
    crossing through one :func:`~daqapp.analysis.transport.critical_temperatures` with one
    normal-state window: the 0 T point of Hc2(T) at 90 % is the summary's onset."""
    from daqapp.analysis.hc2 import PAULI_T_PER_K, fit_hc2
    from daqapp.analysis.transport import critical_temperatures, hc2_from_rt

    data.rt_curves = sorted(curves, key=lambda c: c.field_T)
    if not data.rt_curves:
        return
    zero = next((c for c in data.rt_curves if c.field_T == 0.0), data.rt_curves[0])
    window: tuple[float, float] | None = None
    try:
        # one normal-state window for every field (from 1.1 × the 0 T onset to the top every
        # curve reaches), so R_N is extrapolated alike for complete and partial curves, and
        # the 0 T point of Hc2(T) is the summary's onset, computed the same way
        first = critical_temperatures(zero.temperature_K, zero.resistance_ohm,
                                      onset_fraction=ONSET_FRACTION)
        t_top = min(float(np.max(c.temperature_K)) for c in data.rt_curves)
        window = (first.normal_window_K[0], min(first.normal_window_K[1], t_top))
        tc = critical_temperatures(zero.temperature_K, zero.resistance_ohm,
                                   onset_fraction=ONSET_FRACTION, normal_window_K=window)
        data.rt_normal_state = (tc.normal_state_coeffs, tc.normal_window_K)
        for key, name in (("tc_onset_K", "onset"), ("tc_mid_K", "midpoint"),
                          ("tc_zero_K", "zero")):
            value = getattr(tc, f"{name}_K")
            if value is not None:
                data.summary[key] = Value(value, tc.errors_K.get(name, math.nan), "K")
        if tc.zero_K is None:
            data.notes.append("R–T at 0 T never reaches zero resistance in the measured range")
        n_window = int(np.count_nonzero((zero.temperature_K >= window[0])
                                        & (zero.temperature_K <= window[1])))
        data.notes.append(
            f"R_N(T): a line through {window[0]:.1f}–{window[1]:.1f} K ({n_window} readings, "
            "from 1.1 × the onset: above the fluctuation region); Tc errors carry its fit "
            "uncertainty and the noise of R through each crossing, with the shift when the "
            "window starts 5 % lower or higher")
    except ValueError as exc:
        data.notes.append(f"Tc from R–T failed: {exc}")
        window = None
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
    data.hc2_errors_K = pts.temperature_err_K
    data.hc2_criterion = f"R = {crit * 100:g} % of $R_N$"
    if len(pts.field_T) < 3:
        data.notes.append("fewer than three Hc2 points: no Hc2(T) fit")
        return
    t_grid = np.linspace(0.0, float(np.max(pts.temperature_K)) * 1.02, 240)
    # Each point's temperature error (the crossing's, as for Tc) becomes a field error
    # through the slope dB/dT: that weights the fits and sets their uncertainties.
    t_err = pts.temperature_err_K
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
    # Near-Tc points rarely fix η = D2/D1: the fit's own χ² profile in η gives the range of
    # Hc2(0) the data allow, the headline's systematic error (above the Pauli limit an
    # orbital-only upper end means nothing: capped there, and said so).
    low, high = two.hc2_0_range_T if two.hc2_0_range_T else (math.nan, math.nan)
    pauli = PAULI_T_PER_K * two.tc_K
    source = "η"
    capped = high
    if math.isfinite(high) and high > pauli:
        capped, source = pauli, "η, ≤ Pauli limit"
    headline = Value(two.hc2_0_T, two.hc2_0_err_T, "T",
                     max(two.hc2_0_T - low, 0.0), max(capped - two.hc2_0_T, 0.0), source)
    data.hc2_fits["two_band"] = CurveFit(
        f"two band (Gurevich, η = {options.hc2_eta:g})", t_grid, two.curve(t_grid),
        {"hc2_0_T": headline}, two.chi2_red)
    data.summary["hc2_0_T"] = headline
    data.summary["coherence_length_nm"] = Value(two.coherence_length_nm,
                                                two.coherence_length_err_nm, "nm")
    data.summary["hc2_0_low_T"] = Value(low, math.nan, "T")
    data.summary["hc2_0_high_T"] = Value(high, math.nan, "T")
    if math.isfinite(low) and math.isfinite(high):
        data.notes.append(
            f"two-band μ0Hc2(0) = {headline.text()} at η = D2/D1 = {options.hc2_eta:g}; the "
            f"data (fields up to {float(np.max(pts.field_T)):g} T) allow {low:.0f}–{high:.0f}"
            f" T over η" + (f" (capped at the Pauli limit {pauli:.0f} T in the headline)"
                            if capped != high else ""))
    data.notes.extend(f"Hc2: {note}" for note in two.notes)


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


#: Below Ic, dV/dI may rise by at most this share of the criterion's step (else: no knee).
KNEE_FLATNESS = 0.3


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
                # a critical current is a knee: dV/dI flat below it. A rise that starts at
                # zero current (flux flow above the Ic's Tc) crosses the level too; it
                # would put Ic = 0.44 mA at 35 K where the sample has none.
                below = slope[: max(j, 1)]
                half = max(1, below.size // 2)
                rise = float(np.median(below[half:])) - float(np.median(below[:half]))
                flat = rise <= KNEE_FLATNESS * (level - r_low)
                results.append(float(x[j]) if (j and flat) else 0.0)
                break
    if not results:
        return None
    return float(np.mean(results))


def analyse_iv(paths: list[Path], options: ReportOptions, data: ReportData) -> None:
    from daqapp.analysis.critical import JC_FORM_LABELS, fit_jc_forms, fit_jc_temperature

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
    jc0 = Value(jfit.jc0, jfit.jc0_err, "mA")
    data.jc_fit = CurveFit(f"{JC_FORM_LABELS.get(options.jc_form, options.jc_form)} fit", grid,
                           jfit.curve(grid), {"jc0_mA": jc0,
                                              "tc_K": Value(jfit.tc_K, jfit.tc_err_K, "K")},
                           jfit.chi2_red)
    data.summary["jc0_mA"] = jc0
    data.summary["ic_tc_K"] = Value(jfit.tc_K, jfit.tc_err_K, "K")
    # The pinning form is a choice: the spread of Ic(0) over the forms the data accept is
    # the headline's systematic error.
    try:
        forms = fit_jc_forms(t, ic, sigma)
    except Exception as exc:  # noqa: BLE001
        data.notes.append(f"Ic(T) form comparison failed: {exc}")
        return
    data.summary["jc0_systematic_mA"] = Value(forms.jc0_systematic, math.nan, "mA")
    data.notes.append(
        f"Ic(0) = {jc0.text()} (stat., {JC_FORM_LABELS.get(options.jc_form, options.jc_form)})"
        f" ± {forms.jc0_systematic:.2g} mA (spread over {len(forms.accepted_forms)} pinning "
        f"forms the data accept: {', '.join(forms.accepted_forms)})")
    data.notes.extend(f"Ic(T): {note}" for note in forms.notes)


def analyse_calibration(paths: list[Path], options: ReportOptions, data: ReportData) -> None:
    from daqapp.analysis.spectroscopy import analyse

    for path in paths:
        try:
            spectra = load_run_spectra(path, options, model="s")
        except Exception as exc:  # noqa: BLE001
            data.notes.append(f"{Path(path).name}: calibration not read ({exc})")
            continue
        for spec in spectra:
            try:
                result = spectrum_result(analyse(spec.raw, spec.options), spec.source)
            except Exception as exc:  # noqa: BLE001
                data.notes.append(f"Nb calibration fit failed: {exc}")
                continue
            data.calibration = result
            d = result.parameters.get("delta1_meV")
            if d is not None:
                data.summary["nb_delta_meV"] = d
            return


# --------------------------------------------------------------------------- entry points


def require_runs(found: Collected, paths: Sequence[Path]) -> None:
    """Refuse (one line) sources holding no readable run file: a report of only "n/a" would
    look like a result."""
    from daqapp.errors import DataFileError

    where = ", ".join(str(p) for p in paths)
    if not found.runs:
        raise DataFileError(f"no run files in {where}")
    if all(run["kind"] == "unreadable" for run in found.runs):
        first = found.runs[0]
        raise DataFileError(f"no readable run files in {where} ({len(found.runs)} unreadable, "
                            f"e.g. {first['file']}: {first['status']})")


def analyse(paths: Iterable[Path], options: ReportOptions | None = None,
            title: str | None = None,
            progress: Callable[[str], None] | None = None,
            require: bool = False) -> ReportData:
    """Read every run under ``paths`` and compute the report's figures' data and numbers;
    ``require`` refuses sources without a readable run file (:func:`require_runs`)."""
    options = options or ReportOptions()
    paths = [Path(p) for p in paths]
    found = collect(paths)
    if require:
        require_runs(found, paths)
    data = ReportData(title=title or _title(found, paths), sample=found.sample,
                      runs=found.runs)
    steps = (("R–T", analyse_rt, found.rt), ("I–V", analyse_iv, found.iv),
             ("calibration", analyse_calibration, found.calibration))
    for label, fn, items in steps:
        if items:
            if progress:
                progress(f"{label}: {len(items)} run(s)")
            fn(items, options, data)
    note_current_above_ic(data)
    # after R–T: its onset Tc tells which spectra are normal-state references
    analyse_spectra(found.spectra, options, data, progress)
    if not (found.spectra or found.rt or found.iv or found.calibration):
        data.notes.append("no run files with data found")
    return data


def _title(found: Collected, paths: list[Path]) -> str:
    """The campaign's own name (its file's ``[campaign] name``), else the sample's, else the
    folder's: a folder is named by the operator's shell, not for a figure."""
    if found.campaigns:
        return "; ".join(found.campaigns)
    sample = found.sample.get("sample")
    cell = found.sample.get("cell")
    if sample:
        return f"{sample}" + (f", {cell}" if cell else "")
    return paths[0].name if paths else "daqapp report"


#: The campaign's series so far, per (folder, model): the preview fits each new spectrum run
#: as the report will, constrained by the colder spectra of the same contact.
_PREVIEW_SERIES: dict[tuple[str, str], Any] = {}
#: Each preview fit by (run file, sweep): (its options, the colder analysis that constrained
#: it, the analysis). A report in the same process reuses it only when both match its own.
_PREVIEW_FITS: dict[tuple[str, int], tuple[Any, Any, Any]] = {}


def _previewed(item: SeriesItem, series: Any) -> Any:
    """The on-line fit of ``item`` if it is exactly what ``series`` would compute now: same
    spectrum, same options, no normal-state reference, constrained by the same colder fit."""
    if item.reference is not None or item.path is None:
        return None
    hit = _PREVIEW_FITS.get((str(Path(item.path).resolve()), item.raw.sweep))
    if hit is None:
        return None
    options, colder, analysis = hit
    if options != item.options or series.colder(analysis.temperature_K) is not colder:
        return None
    return analysis


def quick_fit_run(path: Path) -> tuple[dict[str, Any], str] | None:
    """Fit the first spectrum of a finished run (the campaign's 'latest fit' preview), as part
    of its folder's series, so the preview shows the number the report will."""
    from daqapp.analysis.spectroscopy import SeriesFit, prepare

    options = ReportOptions()
    path = Path(path)
    name = path.name.lower()
    model = "s" if "calibration" in name or "nb" in name else options.model
    spectra = load_run_spectra(path, options, model=model)
    if not spectra:
        return None
    spec = spectra[0]
    key = (str(path.resolve().parent), model)
    series = _PREVIEW_SERIES.setdefault(key, SeriesFit(spec.options))
    series.options = spec.options
    analysis = series.add(prepare(spec.raw, spec.options))
    _PREVIEW_FITS[(str(path.resolve()), spec.raw.sweep)] = (spec.options, series.previous,
                                                           analysis)
    result = spectrum_result(analysis, spec.source)
    values = {k: v.as_dict() for k, v in result.parameters.items()}
    values["temperature_K"] = spec.temperature_K
    values["chi2_red"] = result.chi2_red
    parts = [f"T={spec.temperature_K:.1f} K"]
    for key_name, label in (("delta1_meV", "Δ1"), ("delta2_meV", "Δ2")):
        if key_name in result.parameters:
            parts.append(f"{label}={result.parameters[key_name].text(3)}")
    if not result.parameters:
        parts.append("no gap")
    return values, " ".join(parts)
