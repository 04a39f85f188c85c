"""Upper critical field Hc2(T): WHH (single band) and Gurevich dirty two-band, and their fits.

Why both: the seed paper finds that the single-band model fails for La3Ni2O7 and extrapolates
μ0Hc2(0) = 97.7 T with the two-band model (Gurevich, PRB 67, 184515 (2003)); a user must be
able to compare the two and quote Hc2(0) and ξ = √(Φ0/2πμ0Hc2(0)) with uncertainties.

Both models are solved the same way, vectorised over temperature: a scan of a reduced field on
a log grid finds the *largest* field at which the normal state becomes unstable, then bisection
refines it to 1e-12.  Fields are μ0H in tesla everywhere.

Units: the band diffusivities D1, D2 = η·D1 are in m²/s (1 cm²/s = 1e-4 m²/s).  For one band
D = 4k_B/(πe|dB/dT|_Tc) = 1.10e-4 m²/s ÷ |dB/dT| [T/K].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import psi

from daqapp.analysis._fitting import (
    LeastSquaresResult,
    check_finite_positive,
    clean_xy,
    fit_least_squares,
)

E_CHARGE = 1.602176634e-19
K_B = 1.380649e-23
FLUX_QUANTUM = 2.067833848e-15
"""Φ0 = h/2e in Wb."""
PAULI_T_PER_K = 1.84
"""Clogston–Chandrasekhar limit μ0H_P ≈ 1.84 T/K × Tc (weak coupling, g = 2)."""
WHH_DIRTY_RATIO = np.pi ** 2 / 8 * np.exp(-0.5772156649015329)
"""Hc2(0) = 0.6927 Tc |dHc2/dT|_Tc (dirty-limit orbital WHH)."""
DEFAULT_LAMBDAS = (0.81, 0.285, 0.119, 0.09)
"""λ11, λ22, λ12, λ21 of MgB2 (Golubov et al. 2002), Gurevich's worked example; fix your own."""

_PSI_HALF = float(psi(0.5))
_T_MIN = 1e-6  # reduced temperature used for T = 0 (the limit is reached far above this)


def _reduced_t(temperature_K: object, tc_K: float) -> np.ndarray:
    T = np.asarray(temperature_K, dtype=float)
    if np.any(~np.isfinite(T)) or np.any(T < 0):
        raise ValueError("temperature_K must be finite and >= 0")
    check_finite_positive("tc_K", tc_K)
    return np.maximum(T / tc_K, _T_MIN)


def _largest_root(g: Callable[[np.ndarray, np.ndarray], np.ndarray], t: np.ndarray,
                  grid: np.ndarray) -> np.ndarray:
    """Largest b where g(b, t) turns from > 0 (superconducting) to <= 0, per element of t.

    Returns 0 where g <= 0 already at the smallest b (t >= 1), raises if still > 0 at the end
    of the grid (the field range given is too small for the parameters).
    """
    flat = t.ravel()
    out = np.zeros(flat.size)
    if flat.size == 0:
        return out.reshape(t.shape)
    G = g(grid[None, :], flat[:, None])
    pos = G > 0
    if np.any(pos[:, -1]):
        raise ValueError("Hc2 lies beyond the searched field range: check the parameters "
                         "(diffusivity too small or eta too far from 1?)")
    trans = pos[:, :-1] & ~pos[:, 1:]
    has = trans.any(axis=1)
    idx = grid.size - 2 - np.argmax(trans[:, ::-1], axis=1)
    lo, hi = grid[idx].copy(), grid[idx + 1].copy()
    for _ in range(48):
        mid = 0.5 * (lo + hi)
        above = g(mid, flat) > 0
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    out[has] = 0.5 * (lo + hi)[has]
    return out.reshape(t.shape)


def _whh_g(hbar: np.ndarray, t: np.ndarray, alpha: float, lambda_so: float) -> np.ndarray:
    """ln(1/t) − WHH Matsubara sum; positive below Hc2.

    The sum Σ_ν{1/|2ν+1| − [|2ν+1| + x + c/(|2ν+1| + d)]⁻¹}, x = h̄/t, c = (αh̄/t)²,
    d = (h̄+λ_so)/t, is summed exactly by partial fractions into digamma functions of
    (possibly complex) arguments: (n+d)/((n+x)(n+d)+c) = P/(n−r1) + Q/(n−r2).
    """
    x = hbar / t
    if alpha == 0.0:
        return np.log(1.0 / t) - (psi(0.5 + 0.5 * x) - _PSI_HALF)
    d = (hbar + lambda_so) / t
    c = (alpha * hbar / t) ** 2
    disc = np.sqrt((x - d) ** 2 - 4 * c + 0j)
    disc = np.where(np.abs(disc) < 1e-9 * (1 + np.abs(x)), 1e-9 * (1 + np.abs(x)), disc)
    r1 = 0.5 * (-(x + d) + disc)
    r2 = 0.5 * (-(x + d) - disc)
    p = (r1 + d) / (r1 - r2)
    q = 1.0 - p
    total = p * psi(0.5 - 0.5 * r1) + q * psi(0.5 - 0.5 * r2) - _PSI_HALF
    return np.log(1.0 / t) - total.real


_HBAR_GRID = np.geomspace(1e-9, 1.0, 400)


def whh_reduced_field(t: object, alpha: float = 0.0, lambda_so: float = 0.0) -> np.ndarray:
    """h*(t) = Hc2(t)/(Tc |dHc2/dT|_Tc) of WHH; 0.6927 at t → 0 when α = λ_so = 0."""
    ta = np.maximum(np.asarray(t, dtype=float), _T_MIN)
    check_finite_positive("alpha", alpha, allow_zero=True)
    check_finite_positive("lambda_so", lambda_so, allow_zero=True)
    hbar = _largest_root(lambda b, tt: _whh_g(b, tt, alpha, lambda_so), ta, _HBAR_GRID)
    return np.pi ** 2 / 4 * hbar


def whh_hc2(temperature_K: object, tc_K: float, slope_T_per_K: float, alpha: float = 0.0,
            lambda_so: float = 0.0) -> np.ndarray:
    """μ0Hc2(T) in tesla from WHH (dirty limit).

    ``slope_T_per_K`` is |dμ0Hc2/dT| at Tc (the magnitude).  With α = λ_so = 0 (default) it is
    orbital-only WHH: Hc2(0) = 0.693 Tc |slope|.  Maki α (Pauli paramagnetism; α = √2
    Hc2^orb(0)/H_P, see :func:`maki_alpha`) and spin–orbit λ_so give the full WHH.
    """
    t = _reduced_t(temperature_K, tc_K)
    check_finite_positive("slope_T_per_K", slope_T_per_K)
    return whh_reduced_field(t, alpha, lambda_so) * tc_K * slope_T_per_K


def maki_alpha(hc2_orbital_0_T: float, tc_K: float) -> float:
    """Maki parameter α = √2 Hc2^orb(0)/H_P with H_P = 1.84 T/K · Tc."""
    check_finite_positive("hc2_orbital_0_T", hc2_orbital_0_T)
    check_finite_positive("tc_K", tc_K)
    return float(np.sqrt(2.0) * hc2_orbital_0_T / (PAULI_T_PER_K * tc_K))


def diffusivity_from_slope(slope_T_per_K: float) -> float:
    """Single-band D [m²/s] = 4k_B/(πe|dB/dT|_Tc)."""
    check_finite_positive("slope_T_per_K", slope_T_per_K)
    return 4 * K_B / (np.pi * E_CHARGE * slope_T_per_K)


def _check_lambdas(lambdas: Sequence[float]) -> tuple[float, float, float, float, float]:
    """Validate (λ11, λ22, λ12, λ21); return them with L = 1/λ_max."""
    if len(lambdas) != 4:
        raise ValueError("lambdas must be (l11, l22, l12, l21)")
    l11, l22, l12, l21 = (float(v) for v in lambdas)
    if not all(np.isfinite([l11, l22, l12, l21])):
        raise ValueError("lambdas must be finite numbers")
    if l12 * l21 < 0:
        raise ValueError("lambdas: l12*l21 must be >= 0 (real coupling eigenvalues)")
    lam0 = np.sqrt((l11 - l22) ** 2 + 4 * l12 * l21)
    lam_max = 0.5 * (l11 + l22 + lam0)
    if lam_max <= 0 or l11 < 0 or l22 < 0:
        raise ValueError("lambdas: l11, l22 must be >= 0 and the largest coupling eigenvalue "
                         "> 0 (a superconducting state must exist)")
    return l11, l22, l12, l21, 1.0 / lam_max


def _gurevich_g(b: np.ndarray, t: np.ndarray, eta: float, lam: tuple) -> np.ndarray:
    """det(1 − λ·diag(A)) with a minus sign; > 0 below Hc2, its zeros are Gurevich's roots.

    With X1 = ln t + U(b/t), X2 = ln t + U(ηb/t) and A_i = 1/λ_max − X_i (the pair kernels
    of the two bands), det(1 − λ·diag(A)) = w X1 X2 + (λ11 − λ_min) X1 + (λ22 − λ_min) X2,
    which is (λ0/2)(a0 X1 X2 + a1 X1 + a2 X2): Gurevich's equation, written without dividing
    by λ0 (0 for identical decoupled bands).  Every root counts, also where one band's kernel
    is already negative: for η ≠ 1 the cleaner band (larger D) is pair-broken long before Hc2
    and the largest root lies there (excluding that region returned 33.3 T where the largest
    root is 47.7 T: 5 K, η = 5, |dB/dT| = 1 T/K).  Only where *both* kernels are ≤ 0 is
    nothing left to pair; for interband-dominated couplings (w < 0) the equation has a
    spurious root there, which is excluded.
    """
    l11, l22, l12, l21, big_l = lam
    w = l11 * l22 - l12 * l21
    lam_min = w * big_l  # λ_min λ_max = w
    lnt = np.log(t)
    x1 = lnt + psi(0.5 + b / t) - _PSI_HALF
    x2 = lnt + psi(0.5 + eta * b / t) - _PSI_HALF
    value = -(w * x1 * x2 + (l11 - lam_min) * x1 + (l22 - lam_min) * x2)
    nothing_pairs = (x1 >= big_l) & (x2 >= big_l)
    return np.where(nothing_pairs, -1.0, value)


_B_GRID_PER_DECADE = 40


def _gurevich_b_grid(eta: float, lam: tuple) -> np.ndarray:
    """Reduced fields b = e D1 B/(2π k_B Tc) that hold every root of Gurevich's equation.

    Upper end: ψ(½ + x) > ln x gives X_i > ln(4e^γ b_i), so a band still pairs (X_i < 1/λ_max)
    only for b_i < e^{1/λ_max}/(4e^γ); once the dirtier band (smaller D, b_i = b·min(1, η))
    exceeds 1.5× that bound nothing pairs and there is no root.  Lower end 1e-10 resolves
    Hc2 down to t = 1 − 1e-9.
    """
    b_max = 1.5 * np.exp(lam[4]) / (4 * np.exp(0.5772156649015329)) / min(eta, 1.0)
    n = int(np.ceil(_B_GRID_PER_DECADE * np.log10(b_max / 1e-10))) + 1
    return np.geomspace(1e-10, b_max, n)


def gurevich_hc2(temperature_K: object, tc_K: float, d1: float, eta: float,
                 lambdas: Sequence[float] = DEFAULT_LAMBDAS) -> np.ndarray:
    """μ0Hc2(T) in tesla of a dirty two-gap superconductor (Gurevich 2003).

    d1: diffusivity of band 1 in m²/s; eta = D2/D1; lambdas = (λ11, λ22, λ12, λ21).  The
    reduced field is h = e D1 B/(2π k_B T).  With eta = 1 this is orbital WHH with
    |dB/dT|_Tc = 4k_B/(πe D1).  Hc2 is the largest root of Gurevich's equation.
    """
    t = _reduced_t(temperature_K, tc_K)
    check_finite_positive("d1 (m^2/s)", d1)
    check_finite_positive("eta", eta)
    lam = _check_lambdas(lambdas)
    b = _largest_root(lambda x, tt: _gurevich_g(x, tt, eta, lam), t, _gurevich_b_grid(eta, lam))
    return b * 2 * np.pi * K_B * tc_K / (E_CHARGE * d1)


def coherence_length_nm(hc2_0_T: float) -> float:
    """GL coherence length ξ(0) in nm from μ0Hc2(0) = Φ0/(2πξ²)."""
    check_finite_positive("hc2_0_T", hc2_0_T)
    return float(np.sqrt(FLUX_QUANTUM / (2 * np.pi * hc2_0_T)) * 1e9)


def temperature_at_field(field_T: object, hc2_of_T: Callable[[np.ndarray], np.ndarray],
                         tc_K: float) -> np.ndarray:
    """Invert a decreasing Hc2(T): the temperature at which μ0Hc2 equals ``field_T``.

    Fields above Hc2(0) give 0 K; field 0 gives Tc.  Vectorised bisection (1e-10 Tc).
    """
    B = np.asarray(field_T, dtype=float)
    if np.any(~np.isfinite(B)) or np.any(B < 0):
        raise ValueError("field_T must be finite and >= 0")
    check_finite_positive("tc_K", tc_K)
    lo = np.zeros(B.shape)
    hi = np.full(B.shape, float(tc_K))
    for _ in range(34):
        mid = 0.5 * (lo + hi)
        sc = np.asarray(hc2_of_T(mid)) > B
        lo = np.where(sc, mid, lo)
        hi = np.where(sc, hi, mid)
    out = 0.5 * (lo + hi)
    out = np.where(B == 0, tc_K, out)
    return out if out.ndim else out[()]


HC2_MODELS = ("whh", "two_band")
ETA_BOUNDS = (1e-3, 1e3)
"""η = D2/D1 range of the two-band fits and of the η profile."""
_ETA_PROFILE_PER_DECADE = 4


@dataclass(frozen=True)
class Hc2Fit:
    """Result of an Hc2(T) fit, with Hc2(0) and ξ(0) and their standard errors.

    Two-band fits also carry the η profile: ``eta_profile`` holds (η, χ², Hc2(0)) of fits
    with η fixed on a log grid; ``eta_range`` is where χ² stays within the allowed increase
    (``eta_delta_chi2``, in units of the noise), and ``hc2_0_range_T`` the Hc2(0) those η
    give — the systematic range to quote beside the statistical ``hc2_0_err_T``, because
    near-Tc data rarely fix η.  ``notes`` says when η is not bounded by the data.
    """

    model: str
    hc2_0_T: float
    hc2_0_err_T: float
    coherence_length_nm: float
    coherence_length_err_nm: float
    tc_K: float
    tc_err_K: float
    params: dict[str, float]
    param_errors: dict[str, float]
    fixed: dict[str, object] = field(default_factory=dict)
    chi2_red: float = float("nan")
    n_points: int = 0
    absolute_sigma: bool = False
    covariance: tuple[tuple[float, ...], ...] = ()
    parameter_names: tuple[str, ...] = ()
    hc2_0_range_T: tuple[float, float] | None = None
    eta_range: tuple[float, float] | None = None
    eta_delta_chi2: float = 1.0
    eta_profile: tuple[tuple[float, float, float], ...] = ()
    coherence_length_range_nm: tuple[float, float] | None = None
    notes: list[str] = field(default_factory=list)

    def curve(self, temperature_K: object) -> np.ndarray:
        """Fitted μ0Hc2(T) in tesla on any temperature grid (0 above Tc)."""
        return _model_fn(self.model, self.fixed)(np.asarray(temperature_K, dtype=float),
                                                 **self.params, tc_K=self.tc_K)

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.model, "hc2_0_T": self.hc2_0_T, "hc2_0_err_T": self.hc2_0_err_T,
            "coherence_length_nm": self.coherence_length_nm,
            "coherence_length_err_nm": self.coherence_length_err_nm,
            "tc_K": self.tc_K, "tc_err_K": self.tc_err_K, "params": dict(self.params),
            "param_errors": dict(self.param_errors),
            "fixed": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.fixed.items()},
            "chi2_red": self.chi2_red, "n_points": self.n_points,
            "absolute_sigma": self.absolute_sigma,
            "parameter_names": list(self.parameter_names),
            "covariance": [list(r) for r in self.covariance],
            "hc2_0_range_T": list(self.hc2_0_range_T) if self.hc2_0_range_T else None,
            "eta_range": list(self.eta_range) if self.eta_range else None,
            "eta_delta_chi2": self.eta_delta_chi2,
            "eta_profile": [list(r) for r in self.eta_profile],
            "coherence_length_range_nm": (list(self.coherence_length_range_nm)
                                          if self.coherence_length_range_nm else None),
            "notes": list(self.notes),
        }


def _model_fn(model: str, fixed: dict[str, object]) -> Callable[..., np.ndarray]:
    if model == "whh":
        def whh(T: np.ndarray, slope_T_per_K: float, tc_K: float) -> np.ndarray:
            return whh_hc2(T, tc_K, slope_T_per_K, float(fixed.get("alpha", 0.0)),
                           float(fixed.get("lambda_so", 0.0)))
        return whh

    def two_band(T: np.ndarray, d1_m2_s: float, eta: float, tc_K: float) -> np.ndarray:
        return gurevich_hc2(T, tc_K, d1_m2_s, eta, fixed["lambdas"])
    return two_band


def _tc_and_slope_guess(T: np.ndarray, H: np.ndarray) -> tuple[float, float]:
    """Line through the points nearest Tc: intercept → Tc, |slope| → dHc2/dT."""
    order = np.argsort(T)[::-1]
    k = max(2, min(4, T.size // 2))
    sel = order[:k]
    if np.ptp(T[sel]) == 0:
        return float(T.max()) * 1.05, float(H.max() / max(T.max(), 1e-9))
    slope, icpt = np.polyfit(T[sel], H[sel], 1)
    if slope >= 0:
        return float(T.max()) * 1.05, float(max(H.max(), 1e-6) / max(T.max(), 1e-9))
    tc = -icpt / slope
    return float(max(tc, T.max() * 1.001)), float(-slope)


@dataclass(frozen=True)
class _Problem:
    """One Hc2 least-squares problem: data, model, which parameters are free, starts."""

    T: np.ndarray
    H: np.ndarray
    sig: np.ndarray | None
    model: str
    fixed: dict[str, object]
    tc_K: float | None
    tc_guess: float

    def names(self) -> list[str]:
        if self.model == "whh":
            names = ["slope_T_per_K"]
        else:
            names = ["d1_m2_s"] + ([] if "eta" in self.fixed else ["eta"])
        return names + (["tc_K"] if self.tc_K is None else [])

    def params_of(self, p: Sequence[float]) -> dict[str, float]:
        vals = dict(zip(self.names(), (float(v) for v in p), strict=True))
        vals.setdefault("tc_K", float(self.tc_guess))
        if self.model == "two_band" and "eta" in self.fixed:
            vals["eta"] = float(self.fixed["eta"])
        return vals

    def hc2_zero(self, p: Sequence[float]) -> float:
        return float(_model_fn(self.model, self.fixed)(np.array([0.0]), **self.params_of(p))[0])

    def fit(self, starts: Sequence[Sequence[float]]) -> LeastSquaresResult | None:
        """Best of the starts (each without Tc, which is appended), None if all fail."""
        names = self.names()
        if self.model == "whh":
            lo, hi = [1e-9], [np.inf]
        elif "eta" in self.fixed:
            lo, hi = [1e-12], [1.0]
        else:
            lo, hi = [1e-12, ETA_BOUNDS[0]], [1.0, ETA_BOUNDS[1]]
        if self.tc_K is None:
            lo, hi = lo + [1e-6], hi + [np.inf]
        base = _model_fn(self.model, self.fixed)

        def fmodel(x: np.ndarray, *p: float) -> np.ndarray:
            return base(x, **self.params_of(p))

        best = None
        for p0 in starts:
            p0 = list(p0) + ([self.tc_guess] if self.tc_K is None else [])
            try:
                res = fit_least_squares(fmodel, self.T, self.H, self.sig, p0, lo, hi, names)
            except ValueError:
                continue  # a start outside the solvable range
            if best is None or res.chi2 < best.chi2:
                best = res
        return best


def _eta_profile(problem: _Problem, d1_guess: float, eta_best: float | None
                 ) -> list[tuple[float, float, float, LeastSquaresResult]]:
    """Fits with η fixed on a log grid over ETA_BOUNDS (and at the best η), warm-started."""
    n = int(round(_ETA_PROFILE_PER_DECADE * np.log10(ETA_BOUNDS[1] / ETA_BOUNDS[0]))) + 1
    grid = np.geomspace(ETA_BOUNDS[0], ETA_BOUNDS[1], n)
    if eta_best is not None:
        grid = np.unique(np.append(grid, eta_best))
    out: list[tuple[float, float, float, LeastSquaresResult]] = []
    # walk outwards from the middle of the grid so each fit starts from its neighbour's D1
    mid = int(np.argmin(np.abs(np.log(grid / (eta_best or 1.0)))))
    for order in (range(mid, grid.size), range(mid - 1, -1, -1)):
        d1_prev = None
        for i in order:
            sub = _Problem(problem.T, problem.H, problem.sig, "two_band",
                           {**problem.fixed, "eta": float(grid[i])}, problem.tc_K,
                           problem.tc_guess)
            res = sub.fit([[d1_prev]]) if d1_prev is not None else None
            if res is None or not res.success:
                res = sub.fit([[d1_guess]] + ([[res.values[0]]] if res is not None else []))
            if res is None:
                continue
            d1_prev = res.values[0]
            out.append((float(grid[i]), res.chi2, sub.hc2_zero(res.values), res))
    out.sort(key=lambda r: r[0])
    return out


def fit_hc2(temperature_K: object, hc2_T: object, hc2_err_T: object | None = None,
            model: str = "whh", tc_K: float | None = None, alpha: float = 0.0,
            lambda_so: float = 0.0, lambdas: Sequence[float] = DEFAULT_LAMBDAS,
            eta: float | None = None, eta_delta_chi2: float = 1.0,
            profile_eta: bool = True) -> Hc2Fit:
    """Fit μ0Hc2(T) points → Hc2(0), ξ(0), Tc with standard errors.

    model "whh": free |dHc2/dT|_Tc and Tc (α, λ_so fixed, default orbital only).
    model "two_band": Gurevich with fixed ``lambdas``, free D1 [m²/s], η = D2/D1 (or fixed with
    ``eta=``) and Tc; several η starts are tried because η and D1 trade off.  It also profiles
    χ² in η over ETA_BOUNDS and reports the Hc2(0) range over the η whose χ² is within
    ``eta_delta_chi2`` of the minimum (1 = 68 % for one parameter; without errors the
    residual scatter sets the unit) — a systematic range, since the data rarely fix η
    (``profile_eta=False`` skips it: about 30 extra fits).
    ``tc_K`` fixes Tc (e.g. the zero-field transport value).
    """
    if model not in HC2_MODELS:
        raise ValueError(f"model = {model!r} is not allowed (allowed: {', '.join(HC2_MODELS)})")
    T, H, sig = clean_xy(temperature_K, hc2_T, hc2_err_T, "temperature_K", "hc2_T")
    if np.any(T < 0) or np.any(H < 0):
        raise ValueError("temperature_K and hc2_T must be >= 0")
    if tc_K is not None:
        check_finite_positive("tc_K", tc_K)
    check_finite_positive("eta_delta_chi2", eta_delta_chi2)
    tc_guess, slope_guess = _tc_and_slope_guess(T, H)
    if tc_K is not None:
        tc_guess = float(tc_K)
        pos = H > 0
        slope_guess = float(np.median(H[pos] / np.maximum(tc_K - T[pos], 1e-9 * tc_K)))
    d1_guess = diffusivity_from_slope(max(slope_guess, 1e-9))
    if model == "whh":
        fixed: dict[str, object] = {
            "alpha": check_finite_positive("alpha", alpha, allow_zero=True),
            "lambda_so": check_finite_positive("lambda_so", lambda_so, allow_zero=True)}
        starts = [[slope_guess]]
    else:
        _check_lambdas(lambdas)
        fixed = {"lambdas": tuple(float(v) for v in lambdas)}
        if eta is not None:
            fixed["eta"] = check_finite_positive("eta", eta)
            starts = [[d1_guess]]
        else:
            starts = [[d1_guess * f, e] for e, f in ((1.0, 1.0), (0.2, 1.0), (5.0, 0.3),
                                                      (0.05, 1.0), (20.0, 0.1))]
    problem = _Problem(T, H, sig, model, fixed, tc_K, tc_guess)
    n_free = len(problem.names())
    if T.size < n_free:
        raise ValueError(f"need at least {n_free} (temperature, field) points for model "
                         f"{model!r}, got {T.size}")
    res = problem.fit(starts)
    if res is None:
        raise ValueError("the Hc2 fit failed from every start: check the data and units "
                         "(temperature in K, μ0Hc2 in T)")

    profile: list[tuple[float, float, float, LeastSquaresResult]] = []
    if model == "two_band":
        eta_best = res.value("eta") if eta is None else float(eta)
        profile = _eta_profile(problem, d1_guess, eta_best) if profile_eta else []
        if eta is None and profile:
            # the profile may find a deeper minimum than the local starts did: restart there
            e_min, chi_min, _, r_min = min(profile, key=lambda r: r[1])
            if chi_min < res.chi2 * (1 - 1e-6):
                better = problem.fit([[r_min.values[0], e_min]])
                if better is not None and better.chi2 < res.chi2:
                    res = better

    vals = problem.params_of(res.values)
    tc = vals.pop("tc_K")
    errs = {n: res.error(n) for n in problem.names() if n != "tc_K"}
    tc_err = res.error("tc_K") if tc_K is None else 0.0
    h0 = problem.hc2_zero(res.values)
    h0_err = res.derived_error(problem.hc2_zero)
    xi = coherence_length_nm(h0)
    params = dict(vals)
    if model == "two_band":
        errs.setdefault("eta", 0.0)
    extra = _eta_systematics(problem, profile, res, h0, eta, eta_delta_chi2) \
        if model == "two_band" and profile_eta else {}
    return Hc2Fit(model=model, hc2_0_T=h0, hc2_0_err_T=h0_err, coherence_length_nm=xi,
                  coherence_length_err_nm=0.5 * xi * h0_err / h0, tc_K=tc, tc_err_K=tc_err,
                  params=params, param_errors=errs, fixed=fixed, chi2_red=res.chi2_red,
                  n_points=res.n_points, absolute_sigma=res.absolute_sigma,
                  covariance=tuple(tuple(float(v) for v in r) for r in res.covariance),
                  parameter_names=res.names, eta_delta_chi2=float(eta_delta_chi2), **extra)


def _eta_systematics(problem: _Problem,
                     profile: list[tuple[float, float, float, LeastSquaresResult]],
                     res: LeastSquaresResult, h0: float, eta_fixed: float | None,
                     delta_chi2: float) -> dict[str, object]:
    """η range allowed by the χ² profile and the Hc2(0) range it implies, with notes."""
    if not profile:
        return {"notes": ["η profile failed at every η: no systematic range"]}
    notes: list[str] = []
    chi2_min = min(min(r[1] for r in profile), res.chi2)
    # without measured errors χ² is in units of an unknown σ²: use the residual scatter
    unit = 1.0 if res.absolute_sigma else chi2_min / max(res.dof, 1)
    unit = unit if unit > 0 else 1.0
    limit = chi2_min + delta_chi2 * unit
    points = [(e, c, h) for e, c, h, _ in profile]
    etas = np.array([p[0] for p in points])
    allowed = np.array([p[1] for p in points]) <= limit
    if not allowed.any():
        allowed = np.array([p[1] for p in points]) == min(p[1] for p in points)
    lo_i, hi_i = int(np.argmax(allowed)), int(allowed.size - 1 - np.argmax(allowed[::-1]))
    if not allowed[lo_i:hi_i + 1].all():
        notes.append("the χ² profile in η has several separate minima; the range spans them")
    # refine each edge between the last allowed and the first excluded grid η (log bisection)
    d1_start = float(profile[lo_i][3].values[0])
    edges = []
    for inside, outside in ((lo_i, lo_i - 1), (hi_i, hi_i + 1)):
        if outside < 0 or outside >= etas.size:
            edges.append(None)
            continue
        a, b = np.log(etas[inside]), np.log(etas[outside])
        for _ in range(6):
            m = 0.5 * (a + b)
            sub = _Problem(problem.T, problem.H, problem.sig, "two_band",
                           {**problem.fixed, "eta": float(np.exp(m))}, problem.tc_K,
                           problem.tc_guess)
            r = sub.fit([[d1_start]])
            if r is None:
                break
            ok = r.chi2 <= limit
            if ok:
                points.append((float(np.exp(m)), r.chi2, sub.hc2_zero(r.values)))
                a = m
            else:
                b = m
        edges.append(float(np.exp(a)))
    eta_range = (edges[0] if edges[0] is not None else float(etas[lo_i]),
                 edges[1] if edges[1] is not None else float(etas[hi_i]))
    in_range = [h for e, c, h in points
                if eta_range[0] * (1 - 1e-9) <= e <= eta_range[1] * (1 + 1e-9) and c <= limit]
    if eta_fixed is None:
        in_range.append(h0)
    h_range = (float(min(in_range)), float(max(in_range))) if in_range else (h0, h0)
    level = f"Δχ² ≤ {delta_chi2:g}" + ("" if res.absolute_sigma else " (residual-scatter units)")
    if lo_i == 0:
        notes.append(f"η = D2/D1 is not bounded below by the data ({level} down to η = "
                     f"{ETA_BOUNDS[0]:g}, the end of the scan): the Hc2(0) range stops there")
    if hi_i == etas.size - 1:
        notes.append(f"η = D2/D1 is not bounded above by the data ({level} up to η = "
                     f"{ETA_BOUNDS[1]:g}, the end of the scan): the Hc2(0) range stops there")
    if eta_fixed is not None:
        inside_range = eta_range[0] <= eta_fixed <= eta_range[1]
        notes.append(f"η fixed at {eta_fixed:g} by the caller; the data allow η "
                     f"{eta_range[0]:.3g}–{eta_range[1]:.3g} ({level})"
                     + ("" if inside_range else f", so η = {eta_fixed:g} is disfavoured: χ² "
                        f"{(res.chi2 - chi2_min) / unit:+.1f} σ² above the profile minimum"))
    notes.append(f"Hc2(0) over the allowed η: {h_range[0]:.4g}–{h_range[1]:.4g} T (systematic)")
    pauli = PAULI_T_PER_K * float(problem.params_of(res.values)["tc_K"])
    if h_range[1] > pauli:
        notes.append(f"the upper end exceeds the Pauli limit 1.84 T/K × Tc = {pauli:.0f} T, "
                     "which an orbital-only model ignores")
    xi_range = (coherence_length_nm(h_range[1]), coherence_length_nm(h_range[0]))
    points.sort()
    return {"hc2_0_range_T": h_range, "eta_range": eta_range, "notes": notes,
            "coherence_length_range_nm": xi_range,
            "eta_profile": tuple((float(e), float(c), float(h)) for e, c, h in points)}
