"""The report's figures, drawn headless with matplotlib's Agg backend like the seed's panels.

One function per figure; each takes :class:`~daqapp.report.results.ReportData` and returns the
figure, or None when the data for it are absent (a campaign without I–V runs simply has no
I–V figure). :func:`write_all` writes each as PDF (vector, for the paper) and as a 300 dpi PNG
(for the README and slides).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap, Normalize  # noqa: E402

from daqapp.report.results import ReportData, SpectrumResult  # noqa: E402
from daqapp.storage.safe_write import open_output  # noqa: E402

#: PNG resolution: what a journal asks of a raster figure.
DPI = 300
#: Every figure in these formats (the PNG first: the summary shows it).
FORMATS = ("png", "pdf")
#: Series colours: cold/low to warm/high, every one at least 4.5:1 against white (no pale
#: yellow or grey curve, as the midpoints of turbo, viridis and coolwarm are).
SERIES_CMAP = LinearSegmentedColormap.from_list(
    "daqapp_series", ["#1f3b99", "#0f7f8c", "#6a3d9a", "#b2182b", "#c2550a"])
STYLE = {
    "font.size": 10,
    "axes.labelsize": 11,
    "axes.titlesize": 11,
    "legend.fontsize": 8.5,
    # a framed legend: its markers cannot be mistaken for data points
    "legend.frameon": True,
    "legend.framealpha": 1.0,
    "legend.edgecolor": "0.6",
    "legend.fancybox": False,
    "xtick.direction": "in",
    "ytick.direction": "in",
    "xtick.top": True,
    "ytick.right": True,
    "axes.linewidth": 1.0,
    "savefig.bbox": "tight",
}


def _colors(values: list[float]) -> list:
    if not values:
        return []
    lo, hi = min(values), max(values)
    norm = Normalize(lo, hi if hi > lo else lo + 1)
    return [SERIES_CMAP(float(norm(v))) for v in values]


def _panel_label(ax, letter: str) -> None:
    ax.set_title(f"({letter})", loc="left", fontweight="bold")


def _kelvin(t: float) -> str:
    """Temperatures as an operator writes them: 3 K, 14 K, 4.2 K (not 2.99695 K)."""
    return f"{round(float(t), 1):g} K"


def _save(fig, path: Path) -> list[Path]:
    """Write ``fig`` as ``path`` (PNG, 300 dpi) and beside it in the other :data:`FORMATS`."""
    written = []
    try:
        for fmt in FORMATS:
            out = path if fmt == "png" else path.with_suffix(f".{fmt}")
            with open_output(out, "wb") as fh:  # never through a symlink planted at path
                fig.savefig(fh, dpi=DPI, format=fmt)
            written.append(out)
    finally:
        plt.close(fig)
    return written


def write_all(data: ReportData, folder: Path) -> list[Path]:
    """Write every figure the data allow (PNG and PDF each); return the written paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with plt.rc_context(STYLE):
        for fn, name in ((rt_figure, "rt_fields"), (hc2_figure, "hc2"),
                         (spectra_figure, "spectra"), (gap_figure, "gap_temperature"),
                         (iv_figure, "iv_critical_current"),
                         (calibration_figure, "nb_calibration")):
            fig = fn(data)
            if fig is not None:
                written.extend(_save(fig, folder / f"{name}.png"))
    return written


def _mark_temperatures(ax, data: ReportData) -> None:
    """The 0 T Tc criteria as vertical lines, each only where the axis shows it."""
    lo, hi = ax.get_xlim()
    for key, style, name in (("tc_onset_K", "-.", "$T_c^{onset}$"),
                             ("tc_zero_K", ":", "$T_c^{zero}$")):
        v = data.summary.get(key)
        if v is not None and math.isfinite(v.value) and lo <= v.value <= hi:
            ax.axvline(v.value, color="0.35", ls=style, lw=1,
                       label=f"{name} = {v.text(3)} (0 T)")


# --------------------------------------------------------------------------- R–T


def rt_figure(data: ReportData):
    """R–T at each field (seed Fig. 1c): full range and the transition region."""
    curves = sorted(data.rt_curves, key=lambda c: c.field_T)
    if not curves:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    colors = _colors(list(range(len(curves))))  # by rank: 0 T and 1 T must differ too
    for curve, color in zip(curves, colors, strict=True):
        order = np.argsort(curve.temperature_K)
        t, r = curve.temperature_K[order], curve.resistance_ohm[order]
        ax1.plot(t, r, "-", color=color, lw=1.4, label=f"{curve.field_T:g} T")
        ax2.plot(t, r, "-", color=color, lw=1.4, label=f"{curve.field_T:g} T")
    ax1.set_xlabel("Temperature (K)")
    ax1.set_ylabel("Resistance (Ω)")
    ax1.set_xlim(left=0)
    _mark_temperatures(ax1, data)
    ax1.legend(title="μ₀H", loc="upper left", fontsize=7.5)
    _panel_label(ax1, "a")
    # Zoom on the onset, where the field shifts the transition (Hc2 is read there).
    onset = data.summary.get("tc_onset_K")
    if onset is not None and math.isfinite(onset.value):
        t_lo, t_hi = onset.value - 20.0, onset.value + 8.0
    else:
        t_all = np.concatenate([c.temperature_K for c in curves])
        t_lo, t_hi = float(np.nanmin(t_all)), float(np.nanmax(t_all))
    ax2.set_xlim(t_lo, t_hi)
    in_zoom = np.concatenate([c.resistance_ohm[(c.temperature_K >= t_lo)
                                               & (c.temperature_K <= t_hi)] for c in curves])
    if in_zoom.size:
        lo, hi = float(np.nanmin(in_zoom)), float(np.nanmax(in_zoom))
        ax2.set_ylim(lo - 0.05 * (hi - lo), hi + 0.25 * (hi - lo))
    if data.rt_normal_state is not None:
        # the line the criteria are fractions of, so a reader can check the onset
        coeffs, (w_lo, w_hi) = data.rt_normal_state
        grid = np.linspace(t_lo, t_hi, 200)
        ax2.plot(grid, np.polyval(coeffs, grid), "--", color="0.35", lw=0.9,
                 label=f"$R_N$ (0 T, fitted {w_lo:.0f}–{w_hi:.0f} K)")
    _mark_temperatures(ax2, data)
    ax2.set_xlabel("Temperature (K)")
    ax2.set_ylabel("Resistance (Ω)")
    ax2.legend(loc="upper left", ncol=3, fontsize=7.5)
    _panel_label(ax2, "b")
    fig.suptitle(f"{data.title}: R–T under magnetic field")
    fig.tight_layout()
    return fig


def hc2_figure(data: ReportData):
    """Upper critical field with single-band (WHH) and two-band fits (seed Fig. 1d), with an
    inset on the measured points: near Tc they fill a corner of the extrapolated range."""
    if data.hc2_points is None or len(data.hc2_points[0]) == 0:
        return None
    t_pts, b_pts = data.hc2_points
    t_err = data.hc2_errors_K if data.hc2_errors_K is not None else np.full(len(t_pts), np.nan)
    t_err = np.where(np.isfinite(t_err), t_err, 0.0)
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    inset = ax.inset_axes([0.1, 0.08, 0.42, 0.3])
    styles = {"whh": ("--", "tab:blue"), "two_band": ("-", "tab:red")}
    label = f"data ({data.hc2_criterion})" if data.hc2_criterion else "data"
    for axis in (ax, inset):
        for key, fit in data.hc2_fits.items():
            ls, color = styles.get(key, ("-.", "tab:green"))
            h0 = fit.values.get("hc2_0_T")
            extra = f"\n$\\mu_0H_{{c2}}(0)$ = {h0.text(3)}" if h0 is not None else ""
            axis.plot(fit.x, fit.y, ls, color=color, lw=1.6,
                      label=f"{fit.label}{extra}" if axis is ax else None)
        # not clipped: the 0 T points sit on the axis
        axis.errorbar(t_pts, b_pts, xerr=t_err, fmt="o", color="k", mfc="white",
                      ms=6 if axis is ax else 5, mew=1.3, capsize=2, zorder=5, clip_on=False,
                      label=label if axis is ax else None)
    ax.set_xlabel("Temperature (K)")
    ax.set_ylabel("$\\mu_0H_{c2}$ (T)")
    ax.set_xlim(left=0)
    top = max([float(np.max(f.y)) for f in data.hc2_fits.values()] + [float(np.max(b_pts))])
    ax.set_ylim(0, 1.25 * top)  # room above the curves for the legend
    ax.legend(loc="upper right", fontsize=7.5)
    # the inset: the measured range, the fits through it
    t_lo, t_hi = float(np.min(t_pts - t_err)), float(np.max(t_pts + t_err))
    pad_t = 0.15 * max(t_hi - t_lo, 1.0)
    b_hi = float(np.max(b_pts))
    inset.set_xlim(t_lo - pad_t, t_hi + pad_t)
    inset.set_ylim(-0.06 * max(b_hi, 1.0), 1.15 * max(b_hi, 1.0))
    inset.tick_params(labelsize=7)
    inset.text(0.96, 0.93, "measured range", transform=inset.transAxes, fontsize=7,
               va="top", ha="right")
    ax.indicate_inset_zoom(inset, edgecolor="0.5")
    ax.set_title("Upper critical field")
    fig.suptitle(data.title, fontsize=9, y=0.995)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- spectra


def spectra_figure(data: ReportData):
    """Normalised spectra with their fits, offset by temperature (seed Fig. 3a)."""
    spectra = sorted(data.spectra, key=lambda s: s.temperature_K)
    if not spectra:
        return None
    offset = 0.25
    fig, ax = plt.subplots(figsize=(5.6, 1.6 + 0.62 * len(spectra)))
    colors = _colors([s.temperature_K for s in spectra])
    masked = False
    for i, (spec, color) in enumerate(zip(spectra, colors, strict=True)):
        shift = i * offset
        step = max(1, len(spec.bias_mV) // 160)
        ax.plot(spec.bias_mV[::step], spec.conductance_norm[::step] + shift, "o", ms=2.6,
                color=color, mfc="none", mew=0.8)
        if spec.masked_bias_mV is not None and spec.masked_bias_mV.size:
            masked = True
            # beyond Ic the fitted background is extrapolated: show what stays near the curve
            lo = float(np.min(spec.conductance_norm)) - 0.3
            hi = float(np.max(spec.conductance_norm)) + 0.3
            near = (spec.masked_conductance_norm > lo) & (spec.masked_conductance_norm < hi)
            ax.plot(spec.masked_bias_mV[near], spec.masked_conductance_norm[near] + shift, "x",
                    ms=3, color="0.4", mew=0.8)
        if spec.fit_curve_fine is not None:
            ax.plot(spec.fit_bias_mV, spec.fit_curve_fine + shift, "-", color="k", lw=1.0)
        elif spec.fit_curve is not None:
            ax.plot(spec.bias_mV, spec.fit_curve + shift, "-", color="k", lw=1.0)
        ax.text(float(np.max(spec.bias_mV)) * 1.02, float(spec.conductance_norm[-1]) + shift,
                _kelvin(spec.temperature_K), color=color, va="center", fontsize=8.5)
    ax.plot([], [], "o", color="0.4", mfc="none", label="data")
    if masked:
        ax.plot([], [], "x", color="0.4", label="left out (Ic dips, beyond)")
    ax.plot([], [], "-", color="k", label=f"{spectra[0].model} BTK fit")
    ax.set_xlabel("Bias voltage (mV)")
    ax.set_ylabel(f"Normalised dI/dV (offset {offset:g})")
    xmax = float(np.max(np.abs(spectra[0].bias_mV)))
    ax.set_xlim(-xmax, xmax * 1.22)
    top = max(float(np.max(s.conductance_norm)) + i * offset for i, s in enumerate(spectra))
    bottom = min(float(np.min(s.conductance_norm)) + i * offset for i, s in enumerate(spectra))
    ax.set_ylim(bottom - 0.1, top + 0.12 + 0.02 * len(spectra))
    ax.legend(loc="upper left", ncol=3)
    ax.set_title("Andreev reflection spectra (normalised, offset)")
    fig.suptitle(data.title, fontsize=9, y=0.995)
    fig.tight_layout()
    return fig


def gap_figure(data: ReportData):
    """Δ1(T) and Δ2(T) with their BCS fits (seed Fig. 3b)."""
    spectra = sorted(data.spectra, key=lambda s: s.temperature_K)
    if not spectra:
        return None
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    temps = np.array([s.temperature_K for s in spectra])
    tops: list[float] = []  # value + error of every plotted point, and the fits' maxima
    for key, marker, color, name in (("delta1_meV", "o", "tab:red", "Δ₁"),
                                     ("delta2_meV", "s", "tab:blue", "Δ₂")):
        vals = np.array([s.parameters.get(key).value if key in s.parameters else np.nan
                         for s in spectra])
        errs = np.array([s.parameters.get(key).error if key in s.parameters else np.nan
                         for s in spectra])
        if not np.any(np.isfinite(vals)):
            continue
        fitted = data.gap_fitted_K.get(key.replace("_meV", ""))
        used = (np.isin(temps, fitted) if fitted is not None
                else np.ones(temps.size, dtype=bool))
        yerr = np.where(np.isfinite(errs), errs, 0)
        tops += [float(v + e) for v, e in zip(vals, yerr, strict=True) if np.isfinite(v)]
        ax.errorbar(temps[used], vals[used], yerr=yerr[used], fmt=marker, color=color,
                    mfc="white", ms=6, mew=1.3, capsize=2, label=name)
        if (~used & np.isfinite(vals)).any():
            ax.errorbar(temps[~used], vals[~used], yerr=yerr[~used], fmt=marker, color="0.45",
                        mfc="none", ms=6, mew=1.0, capsize=2,
                        label=f"{name} not resolved (not fitted)")
        fit = data.gap_fits.get(key.replace("_meV", ""))
        if fit is not None:
            tc = fit.values.get("tc_K")
            d0 = fit.values.get("delta0_meV")
            label = fit.label
            if tc is not None and d0 is not None:
                label += f": Δ(0) = {d0.text(3)}, $T_c$ = {tc.text(3)}"
            ax.plot(fit.x, fit.y, "-", color=color, lw=1.4, label=label)
            tops.append(float(np.nanmax(fit.y)))
    ax.set_xlabel("Temperature (K)")
    ax.set_ylabel("Δ (meV)")
    ax.set_xlim(left=0)
    # the scale of the gaps, not of the largest error bar (one unresolved Δ₂ near Tc with
    # ± 115 meV squeezed every point into the bottom sixth); room above for the legend
    values = [t for t in tops if np.isfinite(t)]
    data_top = float(np.percentile(values, 80)) if values else ax.get_ylim()[1]
    ymax = 1.7 * data_top
    ax.set_ylim(0, ymax)
    if values and max(values) > ymax:
        ax.text(0.01, 0.01, "error bars beyond the frame are cut", transform=ax.transAxes,
                ha="left", va="bottom", fontsize=7, color="0.35")
    ax.legend(loc="upper right")
    ax.set_title("Superconducting gaps vs temperature")
    fig.suptitle(data.title, fontsize=9, y=0.995)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- I–V


def iv_figure(data: ReportData):
    """I–V curves by temperature and Ic(T) with the pinning fit (seed Fig. 4)."""
    curves = sorted(data.iv_curves, key=lambda c: c.temperature_K)
    if not curves:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    colors = _colors([c.temperature_K for c in curves])
    for curve, color in zip(curves, colors, strict=True):
        ax1.plot(curve.current_mA, curve.voltage_mV, "-", color=color, lw=1.3,
                 label=_kelvin(curve.temperature_K))
    ax1.set_xlabel("Current (mA)")
    ax1.set_ylabel("Voltage (mV)")
    ax1.axhline(0, color="0.7", lw=0.6)
    ax1.legend(ncol=2, loc="lower right")
    _panel_label(ax1, "a")
    points = [(c.temperature_K, c.ic_mA.value, c.ic_mA.error) for c in curves]
    t = np.array([p[0] for p in points])
    ic = np.array([p[1] for p in points])
    err = np.array([p[2] for p in points])
    ok = np.isfinite(ic)
    ax2.errorbar(t[ok], ic[ok], yerr=np.where(np.isfinite(err[ok]), err[ok], 0), fmt="o",
                 color="k", mfc="white", ms=6, mew=1.3, capsize=2, label="$I_c$ from I–V")
    if data.jc_fit is not None:
        ic0 = data.jc_fit.values.get("jc0_mA")
        extra = f", $I_c(0)$ = {ic0.text(3)}" if ic0 is not None else ""
        ax2.plot(data.jc_fit.x, data.jc_fit.y, "-", color="tab:red", lw=1.5,
                 label=f"{data.jc_fit.label}{extra}")
    ax2.set_xlabel("Temperature (K)")
    ax2.set_ylabel("$I_c$ (mA)")
    ax2.set_xlim(left=0)
    ax2.set_ylim(bottom=0)
    ax2.legend(loc="lower left")  # Ic(T) falls to the right: the lower left is empty
    _panel_label(ax2, "b")
    fig.suptitle(f"{data.title}: I–V curves and critical current")
    fig.tight_layout()
    return fig


def calibration_figure(data: ReportData):
    """The Nb reference spectrum and its single-gap fit (seed Extended Data Fig. 1)."""
    spec: SpectrumResult | None = data.calibration
    if spec is None:
        return None
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    ax.plot(spec.bias_mV, spec.conductance_norm, "o", ms=3, mfc="none", color="tab:blue",
            label=f"Nb, {_kelvin(spec.temperature_K)}")
    if spec.fit_curve is not None:
        p = spec.parameters
        x = spec.fit_bias_mV if spec.fit_curve_fine is not None else spec.bias_mV
        y = spec.fit_curve_fine if spec.fit_curve_fine is not None else spec.fit_curve
        parts = []
        for key, name in (("delta1_meV", "Δ"), ("z1", "Z"), ("gamma1_meV", "Γ")):
            if key in p:
                parts.append(f"{name} = {p[key].text(3)}")
        ax.plot(x, y, "-", color="k", lw=1.4,
                label=f"{spec.model} BTK fit\n" + ", ".join(parts))
    ax.set_ylim(top=ax.get_ylim()[1] + 0.35 * (ax.get_ylim()[1] - ax.get_ylim()[0]))
    # the window reaches the normal state: G/G_N → 1 (only as Δ²/2E², physics.md 2.8.9)
    ax.axhline(1.0, color="0.35", ls=":", lw=0.9, zorder=0)
    ax.set_xlabel("Bias voltage (mV)")
    ax.set_ylabel("Normalised dI/dV")
    ax.legend(loc="upper right")
    ax.set_title("Nb calibration (point contact on Nb foil)")
    fig.tight_layout()
    return fig
