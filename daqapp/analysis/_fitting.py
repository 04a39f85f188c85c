"""Small weighted least-squares core shared by the Δ(T), Hc2(T) and Jc(T) fits.

Why a helper: every fit in gaps/hc2/critical needs the same bookkeeping — bounds, σ or no σ,
covariance from the Jacobian, χ²_red, and the delta-method error of derived quantities — and
must report it the same way.  Convention (the same as ``curve_fit``): with measured errors the
covariance is absolute, (JᵀJ)⁻¹; without them the residual scatter is the noise estimate and the
covariance is scaled by χ²_red.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares


@dataclass(frozen=True)
class LeastSquaresResult:
    """Best values, standard errors and covariance of a fit, in the order of ``names``."""

    names: tuple[str, ...]
    values: np.ndarray
    errors: np.ndarray
    covariance: np.ndarray
    chi2: float
    chi2_red: float
    dof: int
    n_points: int
    absolute_sigma: bool
    success: bool
    message: str

    def value(self, name: str) -> float:
        return float(self.values[self.names.index(name)])

    def error(self, name: str) -> float:
        return float(self.errors[self.names.index(name)])

    def as_dict(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.names, self.values, strict=True)}

    def derived_error(self, func: Callable[[np.ndarray], float], rel_step: float = 1e-6) -> float:
        """Standard error of ``func(values)`` by the delta method (central differences)."""
        p = np.asarray(self.values, dtype=float)
        grad = np.empty(p.size)
        for i in range(p.size):
            h = rel_step * max(abs(p[i]), 1e-12)
            up, dn = p.copy(), p.copy()
            up[i] += h
            dn[i] -= h
            grad[i] = (func(up) - func(dn)) / (2 * h)
        with np.errstate(invalid="ignore"):
            var = float(grad @ self.covariance @ grad)
        if not np.isfinite(var):
            return float("inf")  # an undetermined direction: say so, never report 0
        return float(np.sqrt(var)) if var > 0 else 0.0


def clean_xy(x: object, y: object, sigma: object | None, xname: str, yname: str
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate and return float arrays; raises ValueError naming the bad argument."""
    xa = np.asarray(x, dtype=float).ravel()
    ya = np.asarray(y, dtype=float).ravel()
    if xa.size != ya.size:
        raise ValueError(f"{xname} and {yname} must have the same length "
                         f"(got {xa.size} and {ya.size})")
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(ya))):
        raise ValueError(f"{xname} and {yname} must be finite numbers (no NaN or inf)")
    sa = None
    if sigma is not None:
        sa = np.broadcast_to(np.asarray(sigma, dtype=float), xa.shape).astype(float)
        if not np.all(np.isfinite(sa)) or np.any(sa <= 0):
            raise ValueError(f"errors on {yname} must be finite and > 0")
    return xa, ya, sa


def fit_least_squares(
    model: Callable[..., np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    sigma: np.ndarray | None,
    p0: Sequence[float],
    lower: Sequence[float],
    upper: Sequence[float],
    names: Sequence[str],
) -> LeastSquaresResult:
    """Fit ``model(x, *p)`` to ``y`` with TRF inside bounds; return values and covariance."""
    p0a = np.clip(np.asarray(p0, dtype=float), np.asarray(lower) + 0.0, np.asarray(upper) + 0.0)
    w = 1.0 / sigma if sigma is not None else np.ones_like(y)

    def resid(p: np.ndarray) -> np.ndarray:
        return (model(x, *p) - y) * w

    res = least_squares(resid, p0a, bounds=(lower, upper), x_scale="jac", method="trf")
    n, k = y.size, p0a.size
    dof = max(n - k, 1)
    chi2 = float(np.sum(res.fun ** 2))
    chi2_red = chi2 / dof
    cov = _covariance(res.jac)
    if sigma is None:
        cov = cov * chi2_red
    err = np.sqrt(np.clip(np.diag(cov), 0, None))
    return LeastSquaresResult(tuple(names), res.x, err, cov, chi2, chi2_red, dof, n,
                              sigma is not None, bool(res.success), str(res.message))


def _covariance(jac: np.ndarray) -> np.ndarray:
    """(JᵀJ)⁻¹ via the SVD of the column-normalised Jacobian.

    Normalising first matters: parameters of very different size (a diffusivity of 1e-4 m²/s
    next to η ≈ 1) would otherwise make the small singular values fall under the pseudo-inverse
    cut-off and silently shrink their errors.  Truly undetermined directions get infinite
    variance instead of zero.
    """
    k = jac.shape[1]
    norms = np.linalg.norm(jac, axis=0)
    if np.any(norms == 0) or not np.all(np.isfinite(jac)):
        cov = np.full((k, k), np.inf)
        good = (norms > 0) & np.all(np.isfinite(jac), axis=0)
        if good.any():
            cov[np.ix_(good, good)] = _covariance(jac[:, good])
        return cov
    js = jac / norms
    _, sv, vt = np.linalg.svd(js, full_matrices=False)
    tiny = sv <= np.finfo(float).eps * max(js.shape) * sv[0]
    if np.any(tiny):
        return np.full((k, k), np.inf)
    cov_s = (vt.T / sv ** 2) @ vt
    return cov_s / np.outer(norms, norms)


def check_finite_positive(name: str, value: float, allow_zero: bool = False) -> float:
    """Return float(value) or raise ValueError naming the parameter and the allowed range."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} = {value!r} is not a number") from None
    ok = np.isfinite(v) and (v >= 0 if allow_zero else v > 0)
    if not ok:
        rng = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} = {v!r} is outside the allowed range ({rng}, finite)")
    return v
