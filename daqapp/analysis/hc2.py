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

from daqapp.analysis._fitting import check_finite_positive, clean_xy, fit_least_squares

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
    is already negative: for η ≠ 1 the dirtier band is pair-broken long before Hc2 and the
    largest root lies there (excluding that region returned 121.7 T for a root at 174.3 T,
    η = 5).  Only where *both* kernels are ≤ 0 is nothing left to pair; for interband-dominated
    couplings (w < 0) the equation has a spurious root there, which is excluded.
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


_B_GRID_PER_DECADE = 80


def _gurevich_b_grid(eta: float, lam: tuple) -> np.ndarray:
    """Reduced fields b = e D1 B/(2π k_B Tc) that hold every root of Gurevich's equation.

    Upper end: ψ(½ + x) > ln x gives X_i > ln(4e^γ b_i), so a band still pairs (X_i < 1/λ_max)
    only for b_i < e^{1/λ_max}/(4e^γ); above 1.5× that bound for the cleaner band nothing
    pairs and there is no root.  Lower end 1e-10 resolves Hc2 down to t = 1 − 1e-9.
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


@dataclass(frozen=True)
class Hc2Fit:
    """Result of an Hc2(T) fit, with Hc2(0) and ξ(0) and their standard errors."""

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


def fit_hc2(temperature_K: object, hc2_T: object, hc2_err_T: object | None = None,
            model: str = "whh", tc_K: float | None = None, alpha: float = 0.0,
            lambda_so: float = 0.0, lambdas: Sequence[float] = DEFAULT_LAMBDAS,
            eta: float | None = None) -> Hc2Fit:
    """Fit μ0Hc2(T) points → Hc2(0), ξ(0), Tc with standard errors.

    model "whh": free |dHc2/dT|_Tc and Tc (α, λ_so fixed, default orbital only).
    model "two_band": Gurevich with fixed ``lambdas``, free D1 [m²/s], η = D2/D1 (or fixed with
    ``eta=``) and Tc; several η starts are tried because η and D1 trade off.
    ``tc_K`` fixes Tc (e.g. the zero-field transport value).
    """
    if model not in HC2_MODELS:
        raise ValueError(f"model = {model!r} is not allowed (allowed: {', '.join(HC2_MODELS)})")
    T, H, sig = clean_xy(temperature_K, hc2_T, hc2_err_T, "temperature_K", "hc2_T")
    if np.any(T < 0) or np.any(H < 0):
        raise ValueError("temperature_K and hc2_T must be >= 0")
    if tc_K is not None:
        check_finite_positive("tc_K", tc_K)
    tc_guess, slope_guess = _tc_and_slope_guess(T, H)
    if tc_K is not None:
        tc_guess = float(tc_K)
        pos = H > 0
        slope_guess = float(np.median(H[pos] / np.maximum(tc_K - T[pos], 1e-9 * tc_K)))
    fixed: dict[str, object] = {}
    if model == "whh":
        fixed = {"alpha": check_finite_positive("alpha", alpha, allow_zero=True),
                 "lambda_so": check_finite_positive("lambda_so", lambda_so, allow_zero=True)}
        names = ["slope_T_per_K"]
        starts = [[slope_guess]]
        lo, hi = [1e-9], [np.inf]
    else:
        _check_lambdas(lambdas)
        fixed = {"lambdas": tuple(float(v) for v in lambdas)}
        d1_guess = diffusivity_from_slope(max(slope_guess, 1e-9))
        if eta is not None:
            fixed["eta"] = check_finite_positive("eta", eta)
            names = ["d1_m2_s"]
            starts = [[d1_guess]]
            lo, hi = [1e-12], [1.0]
        else:
            names = ["d1_m2_s", "eta"]
            starts = [[d1_guess * f, e] for e, f in ((1.0, 1.0), (0.2, 1.0), (5.0, 0.3),
                                                      (0.05, 1.0), (20.0, 0.1))]
            lo, hi = [1e-12, 1e-3], [1.0, 1e3]
    if tc_K is None:
        names.append("tc_K")
        starts = [s + [tc_guess] for s in starts]
        lo.append(1e-6)
        hi.append(np.inf)
    n_free = len(names)
    if T.size < n_free:
        raise ValueError(f"need at least {n_free} (temperature, field) points for model "
                         f"{model!r}, got {T.size}")

    base = _model_fn(model, fixed)

    def params_of(p: Sequence[float]) -> dict[str, float]:
        vals = dict(zip(names, (float(v) for v in p), strict=True))
        vals.setdefault("tc_K", float(tc_guess))
        if model == "two_band" and "eta" in fixed:
            vals["eta"] = float(fixed["eta"])
        return vals

    def fmodel(x: np.ndarray, *p: float) -> np.ndarray:
        return base(x, **params_of(p))

    best = None
    for p0 in starts:
        try:
            res = fit_least_squares(fmodel, T, H, sig, p0, lo, hi, names)
        except ValueError:
            continue  # a start outside the solvable range (root beyond the grid)
        if best is None or res.chi2 < best.chi2:
            best = res
    if best is None:
        raise ValueError("the Hc2 fit failed from every start: check the data and units "
                         "(temperature in K, μ0Hc2 in T)")
    res = best
    vals = params_of(res.values)
    tc = vals.pop("tc_K")
    errs = {n: res.error(n) for n in names if n != "tc_K"}
    tc_err = res.error("tc_K") if tc_K is None else 0.0

    def hc2_zero(p: np.ndarray) -> float:
        v = params_of(p)
        return float(base(np.array([0.0]), **v)[0])

    h0 = hc2_zero(res.values)
    h0_err = res.derived_error(hc2_zero)
    xi = coherence_length_nm(h0)
    params = {k: v for k, v in vals.items() if not (model == "two_band" and k == "eta"
                                                     and "eta" in fixed)}
    if model == "two_band":
        params["eta"] = vals["eta"]
        errs.setdefault("eta", 0.0)
    return Hc2Fit(model=model, hc2_0_T=h0, hc2_0_err_T=h0_err, coherence_length_nm=xi,
                  coherence_length_err_nm=0.5 * xi * h0_err / h0, tc_K=tc, tc_err_K=tc_err,
                  params=params, param_errors=errs, fixed=fixed, chi2_red=res.chi2_red,
                  n_points=res.n_points, absolute_sigma=res.absolute_sigma,
                  covariance=tuple(tuple(float(v) for v in r) for r in res.covariance),
                  parameter_names=res.names)
