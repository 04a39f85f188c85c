"""Lock-in modulation broadening: the dI/dV a lock-in measures under a finite ac excitation.

A lock-in drives the junction with V(t) = V + a·cos ωt (a = √2·V_rms) and reports the first
harmonic of the current divided by the excitation, X₁/a with X₁ = (1/π)∫₀^{2π} I(V + a cos θ)
cos θ dθ. Integrating by parts (d sin θ = cos θ dθ, the boundary term vanishes):

    X₁/a = (1/π) ∫₀^{2π} G(V + a cos θ) sin²θ dθ = ∫_{−a}^{a} G(V + u) K(u) du,
    K(u) = (2/(π a²)) √(a² − u²)   (|u| < a; u = a cos θ, sin θ = √(a² − u²)/a),

a semicircle of unit area and variance a²/4 = V_rms²/2 — not a Gaussian. Why it matters: it
broadens a spectrum like extra temperature (5 mV rms doubles a fitted Δ2 of 6 meV when
ignored, physics.md §2.9), so a fit must convolve it into the model.

Numerics: in θ the integral is (2/π)∫₀^π G(V + a cos θ) sin²θ dθ, i.e. ∫ f(x)√(1 − x²) dx —
Gauss–Chebyshev quadrature of the second kind, nodes xₖ = cos(kπ/(n+1)), weights
(2/(n+1)) sin²(kπ/(n+1)) (they sum to 1), exact for polynomials of degree ≤ 2n − 1 and
treating the √ edges of K exactly. The BTK model applies it inside its thermal kernel
(:func:`daqapp.analysis.btk.conductance` with ``modulation_mV``), so it is evaluated on the
model's own energy grid beyond the bias edges; :func:`broaden` is the general tool for any
G(V), callable or sampled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np

SQRT2 = math.sqrt(2.0)
_MAX_NODES = 4096


def peak_amplitude(v_rms_mV: float) -> float:
    """a = √2·V_rms: the peak amplitude of a sinusoidal excitation of rms ``v_rms_mV``."""
    v = float(v_rms_mV)
    if not (math.isfinite(v) and v >= 0.0):
        raise ValueError(f"modulation_mV = {v_rms_mV!r} is outside the allowed range 0 to inf "
                         "mV rms (finite)")
    return SQRT2 * v


def modulation_kernel(u_mV, v_rms_mV: float) -> np.ndarray:
    """K(u) = (2/(π a²))·√(a² − u²) for |u| < a (0 outside), a = √2·``v_rms_mV``; 1/mV.

    The weight the lock-in's first harmonic gives to G(V + u). Unit area, variance V_rms²/2.
    """
    a = peak_amplitude(v_rms_mV)
    u = np.asarray(u_mV, dtype=float)
    if a == 0.0:
        raise ValueError("modulation_mV = 0: the kernel is a δ function (no broadening)")
    inside = np.clip(a * a - u * u, 0.0, None)
    return (2.0 / (math.pi * a * a)) * np.sqrt(inside)


@lru_cache(maxsize=64)
def _chebyshev_u(n: int) -> tuple[np.ndarray, np.ndarray]:
    k = np.arange(1, n + 1)
    t = k * math.pi / (n + 1)
    x, w = np.cos(t), (2.0 / (n + 1)) * np.sin(t) ** 2
    x.setflags(write=False)
    w.setflags(write=False)
    return x, w


def modulation_nodes(v_rms_mV: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets uₖ (mV) and weights wₖ (Σ wₖ = 1) with Σ wₖ G(V + uₖ) ≈ ∫ G(V + u) K(u) du.

    Gauss–Chebyshev (second kind) rule with ``n`` nodes on [−a, a]: exact for polynomial G of
    degree ≤ 2n − 1; for smooth G the error falls geometrically with n.
    """
    a = peak_amplitude(v_rms_mV)
    n = int(n)
    if not 1 <= n <= _MAX_NODES:
        raise ValueError(f"n = {n!r} nodes is outside the allowed range 1 to {_MAX_NODES}")
    x, w = _chebyshev_u(n)
    return a * x, w


def nodes_for_smoothness(v_rms_mV: float, smoothness_mV: float, tol: float = 1e-8) -> int:
    """Nodes for error ≈ ``tol`` when G is analytic within ``smoothness_mV`` of the real axis.

    Gauss rules converge like ρ^(−2n) for a function analytic inside the Bernstein ellipse
    of parameter ρ = b + √(1 + b²), b = smoothness/a (a thermal kernel: πk_BT; a Dynes
    broadening: Γ).
    """
    a = peak_amplitude(v_rms_mV)
    if a == 0.0:
        return 1
    b = max(float(smoothness_mV), 1e-12) / a
    rho = b + math.sqrt(1.0 + b * b)
    n = math.ceil(-math.log(tol) / (2.0 * math.log(rho))) + 2
    return int(min(max(n, 8), _MAX_NODES))


def broaden(bias_mV, conductance: Callable[[np.ndarray], np.ndarray] | np.ndarray,
            v_rms_mV: float, *, n_nodes: int | None = None) -> np.ndarray:
    """The dI/dV a lock-in measures at ``bias_mV`` with an excitation of ``v_rms_mV`` rms.

    ``conductance``: either a callable G(V) (preferred — it is evaluated where the kernel
    needs it, including beyond the bias edges, on any bias grid), or an array of G sampled
    at ``bias_mV`` (any order, non-uniform allowed). A sampled G is interpolated with a cubic
    spline; within a = √2·V_rms of the ends of the data it is held at the end values, the
    only choice without a model — pass a callable when the edges matter. ``n_nodes``: the
    quadrature order (default: enough for features of the grid spacing for samples, 64 for
    a callable). ``v_rms_mV`` = 0 returns G itself.
    """
    bias = np.asarray(bias_mV, dtype=float)
    a = peak_amplitude(v_rms_mV)
    if callable(conductance):
        func = conductance
        if a == 0.0:
            return np.asarray(func(bias), dtype=float)
        n = 64 if n_nodes is None else n_nodes
    else:
        g = np.asarray(conductance, dtype=float)
        if g.shape != bias.shape:
            raise ValueError(f"conductance has shape {g.shape}, bias_mV {bias.shape}: "
                             "allowed are arrays of the same shape or a callable G(V)")
        if a == 0.0:
            return g.copy()
        func, spacing = _sampled(bias.ravel(), g.ravel())
        n = n_nodes if n_nodes is not None else nodes_for_smoothness(v_rms_mV, spacing, 1e-6)
    offsets, weights = modulation_nodes(v_rms_mV, n)
    flat = bias.ravel()
    out = np.empty(flat.size)
    rows = max(1, 500_000 // offsets.size)
    for i in range(0, flat.size, rows):
        pts = flat[i:i + rows, None] + offsets[None, :]
        vals = np.asarray(func(pts.ravel()), dtype=float).reshape(pts.shape)
        out[i:i + rows] = vals @ weights
    return out.reshape(bias.shape)


def _sampled(bias: np.ndarray, g: np.ndarray) -> tuple[Callable[[np.ndarray], np.ndarray],
                                                       float]:
    """A cubic-spline G(V) through samples (held constant past the ends) and the grid step."""
    from scipy.interpolate import CubicSpline

    ok = np.isfinite(bias) & np.isfinite(g)
    b, y = bias[ok], g[ok]
    order = np.argsort(b, kind="stable")
    b, y = b[order], y[order]
    ub, inv = np.unique(b, return_inverse=True)
    if ub.size < 4:
        raise ValueError("conductance needs at least 4 distinct finite bias points to broaden")
    yy = np.bincount(inv, weights=y) / np.bincount(inv)  # repeated biases: their mean
    spline = CubicSpline(ub, yy)
    lo, hi = ub[0], ub[-1]

    def func(v: np.ndarray) -> np.ndarray:
        return spline(np.clip(v, lo, hi))

    return func, float(np.median(np.diff(ub)))
