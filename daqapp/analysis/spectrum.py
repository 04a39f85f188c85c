"""Preparing measured dI/dV spectra for a BTK fit: offset, series resistance, normalisation.

Each step is explicit and recorded in :attr:`PreparedSpectrum.steps`, because every one of
them changes the fitted Δ, Γ, Z (physics.md §4): dividing by the conductance at the window edge
biases Z and w (G(60 mV) = 1.05 for the paper's gap 1), an uncorrected lead resistance moves
the gap features outward, an offset smears the two branches. Symmetrisation is offered, never
applied silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)  # holds arrays: identity, not element-wise ==
class PreparedSpectrum:
    """A spectrum ready for the fit, and the list of steps that produced it from the raw data.

    ``conductance`` is the measured junction conductance divided by ``background`` (the
    divisor: a normal-state polynomial, a measured reference, a constant edge level or 1);
    :mod:`daqapp.analysis.spectroscopy` fills the rest: the points the fit may use (``keep``,
    False in critical-current dips), the noise σ of ``conductance``, the temperature, the
    bias offset the fit starts from and whether it is fitted, and the lock-in modulation.
    """

    bias_mV: np.ndarray
    conductance: np.ndarray
    steps: list[str] = field(default_factory=list)
    background: np.ndarray | None = None
    keep: np.ndarray | None = None
    temperature_K: float = float("nan")
    field_T: float = 0.0
    sigma: float = float("nan")
    normalized: bool = False
    v0_mV: float = 0.0
    v0_free: bool = False
    modulation_mV: float = 0.0
    dips_mV: list[float] = field(default_factory=list)
    label: str = ""
    series_resistance_ohm: float = 0.0
    offset_subtracted_mV: float = 0.0
    #: the recorded bias (mV) at each point, for drawing a fit over the data as recorded
    measured_bias_mV: np.ndarray | None = None

    @property
    def mask(self) -> np.ndarray:
        """Points the fit uses (all of them unless dips were masked)."""
        return np.ones(self.bias_mV.shape, bool) if self.keep is None else self.keep

    def divisor(self, bias_mV) -> np.ndarray:
        """What the measured conductance was divided by, at ``bias_mV`` (interpolated)."""
        if self.background is None:
            return np.ones(np.shape(bias_mV))
        return np.interp(bias_mV, self.bias_mV, self.background)


def _sorted(bias, g) -> tuple[np.ndarray, np.ndarray]:
    b = np.asarray(bias, dtype=float).ravel()
    y = np.asarray(g, dtype=float).ravel()
    if b.shape != y.shape:
        raise ValueError(f"bias_mV and conductance lengths differ ({b.size} and {y.size})")
    ok = np.isfinite(b) & np.isfinite(y)
    order = np.argsort(b[ok])
    return b[ok][order], y[ok][order]


def offset_from_symmetry(bias_mV, conductance, max_offset_mV: float | None = None) -> float:
    """Bias offset V0 that makes G(V0 + u) and G(V0 − u) agree best (least squares)."""
    from scipy.optimize import minimize_scalar

    b, g = _sorted(bias_mV, conductance)
    half = 0.5 * min(-b[0], b[-1]) if b[0] < 0 < b[-1] else None
    if half is None:
        raise ValueError("offset_from_symmetry needs biases on both sides of zero")
    limit = max_offset_mV if max_offset_mV is not None else 0.2 * half
    u = np.linspace(0.0, half, 400)

    def asym(v0: float) -> float:
        d = np.interp(v0 + u, b, g) - np.interp(v0 - u, b, g)
        return float(d @ d)

    return float(minimize_scalar(asym, bounds=(-limit, limit), method="bounded",
                                 options={"xatol": 1e-4 * half}).x)


def correct_series_resistance(bias_mV, conductance_S, r_series_ohm: float,
                              current_mA=None) -> tuple[np.ndarray, np.ndarray]:
    """Remove a series (lead/spreading) resistance: V_c = V − I·R_s, G_c = G/(1 − R_s·G).

    ``conductance_S`` is the absolute dI/dV in siemens, bias in mV, so I is in mA and I·R_s in
    mV. Without a measured current it is ∫G dV from zero bias (I(0) = 0).
    """
    from scipy.integrate import cumulative_trapezoid

    b = np.asarray(bias_mV, dtype=float)
    g = np.asarray(conductance_S, dtype=float)
    if not (np.isfinite(r_series_ohm) and r_series_ohm >= 0):
        raise ValueError(f"r_series_ohm = {r_series_ohm!r} is outside the allowed range "
                         "0 to inf Ω")
    if current_mA is None:
        order = np.argsort(b)
        i_sorted = cumulative_trapezoid(g[order], b[order], initial=0.0)
        i_sorted -= np.interp(0.0, b[order], i_sorted)
        current = np.empty_like(i_sorted)
        current[order] = i_sorted
    else:
        current = np.asarray(current_mA, dtype=float)
    rg = r_series_ohm * g
    if np.any(rg >= 1.0):
        raise ValueError(f"r_series_ohm = {r_series_ohm:g} Ω is at least the junction "
                         "resistance somewhere (R_s·G ≥ 1); allowed: R_s < 1/max(G)")
    return b - current * r_series_ohm, g / (1.0 - rg)


def critical_current_dips(bias_mV, conductance, width: int = 15, threshold: float = 6.0,
                          min_depth: float = 0.05) -> np.ndarray:
    """Mask of the sharp conductance dips where the current reaches the contact's Ic.

    They track Jc(T, B), not Δ (physics.md §4.7, Sheet et al. 2004), so they are left out of
    the fit: points more than ``threshold`` noise widths below a running median of ``width``
    points and at least ``min_depth`` (relative) below it — far sharper and deeper than any
    BTK feature, which Γ and k_BT keep smooth — widened by two points on each side. The input
    must be sorted by bias.
    """
    from scipy.ndimage import median_filter

    g = np.asarray(conductance, dtype=float)
    n = g.size
    if n < width + 5:
        return np.zeros(n, dtype=bool)
    smooth = median_filter(g, size=width, mode="nearest")
    resid = g - smooth
    noise = 1.4826 * float(np.median(np.abs(np.diff(g)))) / np.sqrt(2.0) or 1e-12
    low = (resid < -threshold * max(noise, 1e-3 * float(np.median(np.abs(g))))) & (
        resid < -min_depth * np.abs(smooth))
    if not low.any():
        return low
    grown = low.copy()
    for shift in (1, 2):
        grown[shift:] |= low[:-shift]
        grown[:-shift] |= low[shift:]
    return grown


def dip_positions(bias_mV, mask) -> list[float]:
    """Centre bias (mV) of each contiguous run of masked points, for the notes."""
    b = np.asarray(bias_mV, dtype=float)
    m = np.asarray(mask, dtype=bool)
    out, start = [], None
    for i, flag in enumerate([*m.tolist(), False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            out.append(float(np.mean(b[start:i])))
            start = None
    return out


def junction_from_current(current_mA, signal, kind: str, r_series_ohm: float = 0.0
                          ) -> tuple[np.ndarray, np.ndarray]:
    """(junction voltage mV, dI/dV S) from a current-biased record, series resistance removed.

    ``kind`` "dvdi_i": ``signal`` is dV/dI (Ω) against current (what the 6221 DCON procedure
    records): R_j = dV/dI − R_s, V_j = ∫R_j dI with V_j(0) = 0. "v_i": ``signal`` is the
    voltage (mV) against current: V_j = V − I·R_s and G = dI/dV_j numerically.
    """
    from scipy.integrate import cumulative_trapezoid

    i, y = _sorted(current_mA, signal)
    if kind == "dvdi_i":
        r = y - r_series_ohm
        if np.any(r <= 0):
            raise ValueError(f"r_series_ohm = {r_series_ohm:g} Ω is at least dV/dI somewhere; "
                             "allowed: below the smallest differential resistance")
        v = cumulative_trapezoid(r, i, initial=0.0)
        v -= np.interp(0.0, i, v)
        return v, 1.0 / r
    if kind == "v_i":
        v = y - i * r_series_ohm
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.gradient(i, v)
        return v, g
    raise ValueError(f"kind = {kind!r} is not a current-axis kind (allowed: 'dvdi_i', 'v_i')")


def polynomial_background(bias_mV, conductance, windows: Sequence[tuple[float, float]],
                          degree: int = 2) -> np.ndarray:
    """Polynomial (in V) fitted to the points inside the normal-state ``windows`` (mV)."""
    b, g = np.asarray(bias_mV, dtype=float), np.asarray(conductance, dtype=float)
    mask = np.zeros(b.shape, dtype=bool)
    for lo, hi in windows:
        mask |= (b >= lo) & (b <= hi)
    if mask.sum() < degree + 2:
        raise ValueError(f"windows = {list(windows)!r} hold {int(mask.sum())} points; need at "
                         f"least {degree + 2} for degree {degree}")
    if not 0 <= degree <= 8:
        raise ValueError(f"degree = {degree} is outside the allowed range 0 to 8")
    coeffs = np.polynomial.polynomial.polyfit(b[mask], g[mask], degree)
    return np.polynomial.polynomial.polyval(b, coeffs)


def default_windows(bias_mV, fraction: float = 0.25) -> list[tuple[float, float]]:
    """The outer ``fraction`` of the bias range on each side."""
    b = np.asarray(bias_mV, dtype=float)
    lo, hi = float(b.min()), float(b.max())
    span = hi - lo
    return [(lo, lo + fraction * span), (hi - fraction * span, hi)]


def symmetrize(bias_mV, conductance) -> tuple[np.ndarray, np.ndarray]:
    """[G(V) + G(−V)]/2 on the symmetric part of the bias range (explicit opt-in only)."""
    b, g = _sorted(bias_mV, conductance)
    vmax = min(-b[0], b[-1])
    if vmax <= 0:
        raise ValueError("symmetrize needs biases on both sides of zero")
    keep = np.abs(b) <= vmax
    u = b[keep]
    return u, 0.5 * (np.interp(u, b, g) + np.interp(-u, b, g))


def prepare_spectrum(bias_mV, conductance, *, v0: float | str | None = None,
                     r_series_ohm: float | None = None, normalize: str | None = None,
                     windows: Sequence[tuple[float, float]] | None = None, degree: int = 2,
                     normal_state: tuple[np.ndarray, np.ndarray] | None = None,
                     symmetrise: bool = False, current_mA=None) -> PreparedSpectrum:
    """Apply, in this order: series resistance, offset, normalisation, symmetrisation.

    ``v0``: a number (mV), ``"symmetry"`` (find it) or None. ``r_series_ohm`` needs the
    conductance in siemens; ``current_mA`` is the measured bias current (else ∫G dV) and
    ``normal_state`` is corrected for the same R_s. ``normalize``: None, ``"polynomial"``
    (fit in ``windows`` or the outer quarters, ``degree``) or ``"normal-state"`` (divide by
    ``normal_state`` = (bias, G_N) measured on the same contact above Tc or Hc2, interpolated).
    """
    b0 = np.asarray(bias_mV, dtype=float).ravel()
    order = np.argsort(b0, kind="stable")
    b, g = b0[order], np.asarray(conductance, dtype=float).ravel()[order]
    current = None if current_mA is None else np.asarray(current_mA, dtype=float).ravel()[order]
    ok = np.isfinite(b) & np.isfinite(g) & (np.isfinite(current) if current is not None
                                            else True)
    b, g = b[ok], g[ok]
    steps: list[str] = []
    background = None
    if r_series_ohm:
        b, g = correct_series_resistance(b, g, r_series_ohm,
                                         None if current is None else current[ok])
        if normal_state is not None:
            normal_state = correct_series_resistance(*_sorted(*normal_state), r_series_ohm)
        order = np.argsort(b)
        b, g = b[order], g[order]
        steps.append(f"series resistance {r_series_ohm:g} Ω removed (V_c = V − I·R_s)")
    if v0 is not None:
        shift = offset_from_symmetry(b, g) if v0 == "symmetry" else float(v0)
        b = b - shift
        steps.append(f"bias offset V0 = {shift:.4g} mV subtracted"
                     + (" (from symmetry)" if v0 == "symmetry" else ""))
    if normalize == "polynomial":
        win = list(windows) if windows else default_windows(b)
        background = polynomial_background(b, g, win, degree)
        g = g / background
        steps.append(f"normalised by a degree-{degree} polynomial fitted in "
                     + ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in win) + " mV")
    elif normalize == "normal-state":
        if normal_state is None:
            raise ValueError("normalize = 'normal-state' needs normal_state = (bias, G_N)")
        nb, ng = _sorted(*normal_state)
        if b.min() < nb.min() or b.max() > nb.max():
            raise ValueError(f"normal_state covers {nb.min():g} to {nb.max():g} mV, the "
                             f"spectrum {b.min():g} to {b.max():g} mV; allowed: covering it")
        background = np.interp(b, nb, ng)
        g = g / background
        steps.append("normalised by the measured normal-state curve")
    elif normalize is not None:
        raise ValueError(f"normalize = {normalize!r} is not allowed (allowed: None, "
                         "'polynomial', 'normal-state')")
    if symmetrise:
        b, g = symmetrize(b, g)
        background = None
        steps.append("symmetrised: [G(V) + G(−V)]/2")
    return PreparedSpectrum(b, g, steps, background)
