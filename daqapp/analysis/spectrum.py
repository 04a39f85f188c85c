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


@dataclass
class PreparedSpectrum:
    """A spectrum and the list of steps that produced it from the raw data."""

    bias_mV: np.ndarray
    conductance: np.ndarray
    steps: list[str] = field(default_factory=list)
    background: np.ndarray | None = None


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
                     symmetrise: bool = False) -> PreparedSpectrum:
    """Apply, in this order: series resistance, offset, normalisation, symmetrisation.

    ``v0``: a number (mV), ``"symmetry"`` (find it) or None. ``r_series_ohm`` needs the
    conductance in siemens. ``normalize``: None, ``"polynomial"`` (fit in ``windows`` or the
    outer quarters, ``degree``) or ``"normal-state"`` (divide by ``normal_state`` = (bias,
    G_N) measured on the same contact above Tc or Hc2, interpolated).
    """
    b, g = _sorted(bias_mV, conductance)
    steps: list[str] = []
    background = None
    if r_series_ohm:
        b, g = correct_series_resistance(b, g, r_series_ohm)
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
