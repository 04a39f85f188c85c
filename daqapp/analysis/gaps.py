"""Temperature dependence of superconducting gaps, Δ(T), and fits of Δ(T) → Tc, Δ(0), 2Δ/k_BTc.

Why exact and tabulated: the weak-coupling BCS curve is the reference every tunnelling paper
quotes, and the tanh shortcut is off by up to 1.8 % (physics.md §2.6).  The gap equation

    ln(Δ0/Δ) = 2 ⟨w(φ) ∫_0^∞ du f(Δ|c(φ)| cosh u)⟩ ,   (ξ = Δ|c| sinh u)

is solved once on a grid of reduced temperatures t = T/Tc (s-wave: c = 1; d-wave: c = cos 2φ,
w = c²/⟨c²⟩) and interpolated with a cubic spline of Δ/(Δ0 √(1−t)), which is smooth up to t = 1.
Evaluation then costs microseconds, so simulators can call it per reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.interpolate import CubicSpline

from daqapp.analysis._fitting import (
    LeastSquaresResult,
    check_finite_positive,
    clean_xy,
    fit_least_squares,
)

K_B_MEV_PER_K = 8.617333262e-2
"""Boltzmann constant in meV/K."""
EULER_GAMMA = 0.5772156649015329
BCS_DELTA0_OVER_KTC = np.pi * np.exp(-EULER_GAMMA)
"""Weak-coupling s-wave Δ0/(k_B Tc) = π e^{−γ} = 1.7639."""
DWAVE_DELTA0_OVER_KTC = BCS_DELTA0_OVER_KTC * 2.0 * np.exp(-0.5)
"""Weak-coupling d-wave (cos 2φ) Δ0/(k_B Tc) = 2π e^{−γ−1/2} = 2.1397 (gap maximum)."""

GAP_FORMS = ("bcs", "tanh", "dwave", "alpha")

_N_U = 64  # Gauss–Legendre nodes of the u-integral
_N_PHI = 48  # nodes of the angular average (d-wave), split in two halves


def _u_integral(delta_c: np.ndarray, t: np.ndarray) -> np.ndarray:
    """∫_0^∞ du f(Δc cosh u) at reduced temperature t (energies in k_B Tc), broadcast."""
    # The Fermi factor is < e^-50 beyond Δc cosh u = 50 t: cut the range there.
    u_max = np.arccosh(np.maximum(50.0 * t / np.maximum(delta_c, 1e-300), 1.0 + 1e-12))
    x, w = np.polynomial.legendre.leggauss(_N_U)
    u = 0.5 * (x + 1.0) * u_max[..., None]
    e = delta_c[..., None] * np.cosh(u)
    f = 0.5 * (1.0 - np.tanh(0.5 * e / t[..., None]))
    return 0.5 * u_max * (f @ w)


def _angular_nodes(symmetry: str) -> tuple[np.ndarray, np.ndarray]:
    """|c(φ)| and normalised weights w(φ) of the gap-equation angular average."""
    if symmetry == "s":
        return np.ones(1), np.ones(1)
    # Gauss–Legendre on x = 2φ ∈ (0, π/2), split at π/4 to resolve the node region better.
    x, w = np.polynomial.legendre.leggauss(_N_PHI // 2)
    xs = np.concatenate([0.5 * (x + 1) * np.pi / 4, np.pi / 4 + 0.5 * (x + 1) * np.pi / 4])
    ws = np.concatenate([w, w]) * np.pi / 8
    c = np.cos(xs)
    weight = ws * c ** 2
    return c, weight / weight.sum()


def _solve_ratios(t: np.ndarray, symmetry: str) -> np.ndarray:
    """Δ(t)/Δ0 from the gap equation for all t at once (vectorised bisection, 1e-13)."""
    delta0 = BCS_DELTA0_OVER_KTC if symmetry == "s" else DWAVE_DELTA0_OVER_KTC
    c, w = _angular_nodes(symmetry)
    lo = np.full(t.shape, 1e-9)
    hi = np.ones(t.shape)
    tt = np.broadcast_to(t[:, None], (t.size, c.size))
    for _ in range(44):
        mid = 0.5 * (lo + hi)
        integral = _u_integral(mid[:, None] * delta0 * c[None, :], tt) @ w
        g = np.log(1.0 / mid) - 2.0 * integral  # decreasing in the ratio
        above = g < 0  # ratio too large
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    return 0.5 * (lo + hi)


@lru_cache(maxsize=2)
def _gap_table(symmetry: str) -> CubicSpline:
    """Spline of Δ/(Δ0 √(1−t)) on t ∈ [0, 1] (built once per symmetry, well under 1 s)."""
    # denser near t = 1 where Δ varies fastest in absolute terms
    s = np.linspace(0.0, 1.0, 41)
    t_grid = np.unique(np.concatenate([np.linspace(0.05, 0.9, 35), 1.0 - 0.1 * s[1:] ** 2]))
    t_grid = t_grid[t_grid < 1.0 - 1e-5]
    ratios = _solve_ratios(t_grid, symmetry)
    g = ratios / np.sqrt(1.0 - t_grid)
    # t -> 0: Δ = Δ0 up to exponentially small terms for s-wave (< 1e-15 at t = 0.05);
    # d-wave departs as −t³ (thermal quasiparticles at the nodes): extrapolate with that law.
    t_low = np.linspace(0.0, 0.04, 5)
    if symmetry == "s":
        g_low = 1.0 / np.sqrt(1.0 - t_low)
    else:
        r_low = 1.0 - (1.0 - ratios[0]) * (t_low / t_grid[0]) ** 3
        g_low = r_low / np.sqrt(1.0 - t_low)
    t_all = np.concatenate([t_low, t_grid])
    g_all = np.concatenate([g_low, g])
    # value at t = 1 by quadratic extrapolation of the last points (g is smooth there)
    p = np.polyfit(t_grid[-6:], g[-6:], 2)
    t_all = np.append(t_all, 1.0)
    g_all = np.append(g_all, np.polyval(p, 1.0))
    return CubicSpline(t_all, g_all)


def _check_t(t: object, name: str = "t") -> np.ndarray:
    ta = np.asarray(t, dtype=float)
    if np.any(~np.isfinite(ta)) or np.any(ta < 0):
        raise ValueError(f"{name} must be finite and >= 0 (reduced temperature T/Tc)")
    return ta


def _ratio_from_table(t: object, symmetry: str) -> np.ndarray:
    ta = _check_t(t)
    out = np.zeros_like(ta, dtype=float)
    inside = ta < 1.0
    ti = ta[inside]
    out[inside] = np.minimum(_gap_table(symmetry)(ti) * np.sqrt(1.0 - ti), 1.0)
    return out if out.ndim else out[()]


def bcs_gap_ratio(t: object) -> np.ndarray:
    """Exact weak-coupling BCS Δ(t)/Δ0 at reduced temperature t = T/Tc (0 for t ≥ 1)."""
    return _ratio_from_table(t, "s")


def dwave_gap_ratio(t: object) -> np.ndarray:
    """Weak-coupling d-wave (Δ cos 2φ) gap-maximum ratio Δ(t)/Δ0 (0 for t ≥ 1)."""
    return _ratio_from_table(t, "d")


def _check_model_args(temperature_K: object, delta0: float, tc: float) -> np.ndarray:
    check_finite_positive("delta0 (meV)", delta0, allow_zero=True)
    check_finite_positive("tc (K)", tc)
    return _check_t(temperature_K, "temperature_K")


def gap_bcs(temperature_K: object, delta0: float, tc: float) -> np.ndarray:
    """Δ(T) in the units of ``delta0`` with the exact BCS shape and free Δ0, Tc."""
    T = _check_model_args(temperature_K, delta0, tc)
    return delta0 * bcs_gap_ratio(T / tc)


def gap_dwave(temperature_K: object, delta0: float, tc: float) -> np.ndarray:
    """Δ(T) with the weak-coupling d-wave shape and free Δ0 (gap maximum), Tc."""
    T = _check_model_args(temperature_K, delta0, tc)
    return delta0 * dwave_gap_ratio(T / tc)


def gap_tanh(temperature_K: object, delta0: float, tc: float, b: float = 1.74) -> np.ndarray:
    """Δ0 tanh(b √(Tc/T − 1)); b = 1.74 mimics BCS to 1.8 %, b ≈ 1.66 mimics d-wave."""
    T = _check_model_args(temperature_K, delta0, tc)
    check_finite_positive("b", b)
    with np.errstate(divide="ignore", invalid="ignore"):
        arg = b * np.sqrt(np.clip(tc / T - 1.0, 0.0, None))
    out = delta0 * np.tanh(np.where(T > 0, arg, np.inf))
    return np.where(T < tc, out, 0.0)


def gap_alpha_model(temperature_K: object, delta0: float, tc: float,
                    dc_over_c: float = 1.426, a: float = 2.0 / 3.0) -> np.ndarray:
    """Gross α-model: Δ0 tanh{(πk_BTc/Δ0) √[a (ΔC/C_N)(Tc/T − 1)]}, Δ0 in meV.

    With Δ0/k_BTc and ΔC/C_N free it describes strong coupling; a = 2/3 is the isotropic
    s-wave value (Gross et al., Z. Phys. B 64, 175 (1986)); weak coupling is Δ0 = 1.764 k_BTc,
    ΔC/C_N = 1.426.
    """
    T = _check_model_args(temperature_K, delta0, tc)
    check_finite_positive("dc_over_c", dc_over_c)
    check_finite_positive("a", a)
    if delta0 == 0:
        return np.zeros_like(T, dtype=float)
    pref = np.pi * K_B_MEV_PER_K * tc / delta0
    with np.errstate(divide="ignore", invalid="ignore"):
        arg = pref * np.sqrt(a * dc_over_c * np.clip(tc / T - 1.0, 0.0, None))
    out = delta0 * np.tanh(np.where(T > 0, arg, np.inf))
    return np.where(T < tc, out, 0.0)


TC_MIN_POINTS = 3
"""Distinct temperatures needed before a Δ(T) fit can say anything about Tc."""
TC_MIN_DROP_CHI2 = 9.0
"""Δχ² by which a constant gap (Tc → ∞) must fit worse: the drop of Δ(T) seen at 3σ."""
TC_MAX_GAP_RATIO = 0.85
"""Δ(T_max)/Δ(0) the data must reach: the gap has visibly started to close (t ≳ 0.66 for
BCS).  Below that Δ(T) is flat to a few %, and Tc is an extrapolation of the assumed shape —
the seed's Table 3 (3–40 K, Δ1 23 → 20.5 meV) gives a BCS Tc of 64.5 ± 1.0 K against the
transport 72 K."""
TC_MAX_REL_ERR = 0.2
"""Largest relative Tc error still quoted as a value."""


@dataclass(frozen=True)
class GapTemperatureFit:
    """Result of a Δ(T) fit: Tc, Δ(0) and 2Δ(0)/k_BTc with standard errors.

    ``tc_determined`` says whether the data determine Tc (see :func:`tc_is_determined`);
    ``notes`` give the reasons when they do not.  ``tc_fixed`` marks a Tc given by the caller.
    """

    form: str
    tc_K: float
    tc_err_K: float
    delta0_meV: float
    delta0_err_meV: float
    ratio_2delta_kTc: float
    ratio_err: float
    chi2_red: float
    n_points: int
    absolute_sigma: bool
    extra: dict[str, float] = field(default_factory=dict)
    extra_err: dict[str, float] = field(default_factory=dict)
    covariance: tuple[tuple[float, ...], ...] = ()
    parameter_names: tuple[str, ...] = ()
    tc_determined: bool = False
    notes: list[str] = field(default_factory=list)
    tc_fixed: bool = False
    t_max_K: float = float("nan")
    gap_ratio_at_t_max: float = float("nan")
    drop_delta_chi2: float = float("nan")

    def curve(self, temperature_K: object) -> np.ndarray:
        """Fitted Δ(T) in meV, for plotting over any temperature grid."""
        return _FORMS[self.form](np.asarray(temperature_K, dtype=float), self.delta0_meV,
                                 self.tc_K, **self.extra)

    def to_dict(self) -> dict[str, object]:
        return {
            "form": self.form, "tc_K": self.tc_K, "tc_err_K": self.tc_err_K,
            "delta0_meV": self.delta0_meV, "delta0_err_meV": self.delta0_err_meV,
            "ratio_2delta_kTc": self.ratio_2delta_kTc, "ratio_err": self.ratio_err,
            "chi2_red": self.chi2_red, "n_points": self.n_points,
            "absolute_sigma": self.absolute_sigma, "extra": dict(self.extra),
            "extra_err": dict(self.extra_err),
            "parameter_names": list(self.parameter_names),
            "covariance": [list(r) for r in self.covariance],
            "tc_determined": self.tc_determined, "notes": list(self.notes),
            "tc_fixed": self.tc_fixed, "t_max_K": self.t_max_K,
            "gap_ratio_at_t_max": self.gap_ratio_at_t_max,
            "drop_delta_chi2": self.drop_delta_chi2,
        }


def _tanh_form(T: np.ndarray, delta0: float, tc: float, b: float = 1.74) -> np.ndarray:
    return gap_tanh(T, delta0, tc, b)


def _alpha_form(T: np.ndarray, delta0: float, tc: float, dc_over_c: float = 1.426
                ) -> np.ndarray:
    return gap_alpha_model(T, delta0, tc, dc_over_c)


_FORMS = {"bcs": gap_bcs, "dwave": gap_dwave, "tanh": _tanh_form, "alpha": _alpha_form}


def _initial_guess(T: np.ndarray, D: np.ndarray, shape) -> tuple[float, float]:
    """Profile over Tc (Δ0 enters linearly) to find a start that cannot miss the basin."""
    gapped = T[D > 0.05 * D.max()]
    t_low = gapped.max() if gapped.size else T.max()
    best = (np.inf, D.max(), T.max())
    for tc in np.geomspace(0.5 * t_low, 6.0 * max(t_low, 1e-3), 240):
        s = shape(T / tc)
        ss = float(s @ s)
        if ss == 0:
            continue
        d0 = float(s @ D) / ss
        cost = float(np.sum((d0 * s - D) ** 2))
        if cost < best[0]:
            best = (cost, d0, tc)
    return best[1], best[2]


def _constant_gap_chi2(y: np.ndarray, sig: np.ndarray | None) -> float:
    """χ² of the Tc → ∞ limit of every form: a temperature-independent gap."""
    w = np.ones_like(y) if sig is None else 1.0 / sig ** 2
    mean = float(np.sum(w * y) / np.sum(w))
    return float(np.sum(w * (y - mean) ** 2))


def _tc_verdict(series: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
                res: LeastSquaresResult, curves: Sequence[np.ndarray],
                delta0s: Sequence[float], tc: float, tc_err: float, tc_fixed: bool,
                tc_lower_bound: float) -> dict[str, object]:
    """Does this Δ(T) fit determine Tc?  The physics: Tc is only known once the data see
    the gap close — Δ(T_max)/Δ(0) clearly below 1 and the drop significant against the noise
    (a constant gap, the Tc → ∞ limit, must fit worse by TC_MIN_DROP_CHI2)."""
    all_T = np.concatenate([s[0] for s in series])
    t_max = float(all_T.max())
    ratios = [float(c[np.argmax(s[0])] / d0) if d0 > 0 else float("nan")
              for c, s, d0 in zip(curves, series, delta0s, strict=True)]
    finite = [r for r in ratios if np.isfinite(r)]
    ratio = min(finite) if finite else float("nan")
    # χ² of the fit against a constant gap per series, in units of the noise
    unit = 1.0 if res.absolute_sigma else res.chi2 / max(res.dof, 1)
    chi2_const = sum(_constant_gap_chi2(s[1], s[2]) for s in series)
    drop = (chi2_const - res.chi2) / unit if unit > 0 else float("inf")
    notes: list[str] = []
    if tc_fixed:
        notes.append(f"Tc fixed at {tc:.4g} K by the caller (not fitted)")
    else:
        if not res.success:
            notes.append(f"the Δ(T) fit did not converge ({res.message})")
        n_temps = np.unique(all_T).size
        if n_temps < TC_MIN_POINTS:
            notes.append(f"only {n_temps} temperatures (Tc needs ≥ {TC_MIN_POINTS})")
        if not (np.isfinite(tc_err) and tc_err > 0):
            notes.append("the Tc error is not finite: Tc is not constrained")
        elif tc_err > TC_MAX_REL_ERR * tc:
            notes.append(f"the Tc error {tc_err:.2g} K is more than {TC_MAX_REL_ERR:.0%} of Tc")
        if tc <= tc_lower_bound * (1 + 1e-6) or tc > 1e3 * t_max:
            notes.append(f"Tc = {tc:.4g} K sits at a bound of the fit")
        if not (ratio <= TC_MAX_GAP_RATIO):
            notes.append(f"the data stop at {t_max:.3g} K where the fitted gap is still "
                         f"{ratio:.0%} of Δ(0) (Tc needs data where it has fallen below "
                         f"{TC_MAX_GAP_RATIO:.0%}, t ≳ 0.66 for BCS): Tc would be an "
                         "extrapolation of the assumed Δ(T) shape")
        if not (drop >= TC_MIN_DROP_CHI2):
            notes.append(f"the drop of Δ(T) up to {t_max:.3g} K is not significant "
                         f"(a constant gap fits worse by only Δχ² = {drop:.2g} < "
                         f"{TC_MIN_DROP_CHI2:g})")
    if res.absolute_sigma and res.chi2_red > 5:
        notes.append(f"χ²_red = {res.chi2_red:.3g}: the Δ(T) form does not describe the data "
                     "within the given errors (or the errors are too small)")
    return {"tc_determined": not notes and not tc_fixed, "notes": notes,
            "tc_fixed": tc_fixed, "t_max_K": t_max, "gap_ratio_at_t_max": ratio,
            "drop_delta_chi2": float(drop)}


def tc_is_determined(fit: GapTemperatureFit | None,
                     temperatures: object | None = None) -> tuple[bool, str]:
    """(whether to show Tc, the text to show): the one place that decides it.

    Uses the verdict stored on the fit; ``temperatures`` (the series actually measured, if
    it differs from what was fitted) must also reach Δ(T)/Δ(0) ≤ TC_MAX_GAP_RATIO on the
    fitted curve.  The text is "Tc = 71.8 ± 0.3 K" or "Tc not determined: <reason>".
    """
    if fit is None:
        return False, "Tc not determined: no Δ(T) fit"
    if fit.tc_fixed:
        return False, f"Tc fixed at {fit.tc_K:.4g} K (not fitted)"
    if not fit.tc_determined:
        reason = fit.notes[0] if fit.notes else "the data do not constrain it"
        return False, f"Tc not determined: {reason}"
    if temperatures is not None:
        T = np.asarray(temperatures, dtype=float)
        T = T[np.isfinite(T)]
        if T.size == 0:
            return False, "Tc not determined: no temperatures"
        ratio = float(fit.curve(np.array([T.max()]))[0]) / fit.delta0_meV \
            if fit.delta0_meV > 0 else float("nan")
        if not ratio <= TC_MAX_GAP_RATIO:
            return False, (f"Tc not determined: the data stop at {T.max():.3g} K where the "
                           f"fitted gap is still {ratio:.0%} of Δ(0)")
    err = f"{fit.tc_err_K:.2g}" if fit.tc_err_K >= 0.1 else f"{fit.tc_err_K:.1g}"
    return True, f"Tc = {fit.tc_K:.1f} ± {err} K"


def fit_gap_temperature(temperature_K: object, delta_meV: object,
                        delta_err_meV: object | None = None, form: str = "bcs",
                        tc_K: float | None = None, b: float | None = None
                        ) -> GapTemperatureFit:
    """Fit Δ(T) → Tc, Δ(0), 2Δ(0)/k_BTc with standard errors.

    form: "bcs" (exact weak-coupling shape), "dwave" (weak-coupling cos 2φ shape, Δ0 is the
    gap maximum), "tanh" (Δ0 tanh(b√(Tc/T−1)) with b fixed, 1.74 unless ``b`` is given) or
    "alpha" (Gross α-model with ΔC/C_N fitted too, for strong coupling).
    ``tc_K`` fixes Tc (e.g. from transport).  Points with Δ = 0 above Tc are welcome: they pin
    Tc.  Without ``delta_err_meV`` the residual scatter sets the errors (χ²_red scaling).
    """
    if form not in _FORMS:
        raise ValueError(f"form = {form!r} is not allowed (allowed: {', '.join(GAP_FORMS)})")
    T, D, sig = clean_xy(temperature_K, delta_meV, delta_err_meV, "temperature_K", "delta_meV")
    if np.any(T < 0):
        raise ValueError("temperature_K must be >= 0")
    if D.max() <= 0:
        raise ValueError("delta_meV must contain at least one value > 0")
    if tc_K is not None:
        check_finite_positive("tc_K", tc_K)
    b_fixed = 1.74 if b is None else check_finite_positive("b", b)
    n_free = 2 + (form == "alpha") - (tc_K is not None)
    if T.size < n_free:
        raise ValueError(f"need at least {n_free} (temperature, gap) points for form {form!r}, "
                         f"got {T.size}")

    shapes = {"bcs": bcs_gap_ratio, "dwave": dwave_gap_ratio,
              "tanh": lambda t: gap_tanh(t, 1.0, 1.0, b_fixed),
              "alpha": lambda t: gap_tanh(t, 1.0, 1.0, 1.74)}
    d0_guess, tc_guess = _initial_guess(T, D, shapes[form])
    if tc_K is not None:
        tc_guess = float(tc_K)
    extra_fixed = {"b": b_fixed} if form == "tanh" else {}
    fn = _FORMS[form]

    names = ["delta0_meV"]
    p0, lo, hi = [d0_guess], [0.0], [np.inf]
    if tc_K is None:
        names.append("tc_K")
        p0.append(tc_guess)
        lo.append(1e-6)
        hi.append(np.inf)
    if form == "alpha":
        names.append("dc_over_c")
        p0.append(1.426)
        lo.append(1e-3)
        hi.append(100.0)

    def model(x: np.ndarray, *p: float) -> np.ndarray:
        vals = dict(zip(names, p, strict=True))
        tc = vals.get("tc_K", tc_guess)
        kw = dict(extra_fixed)
        if form == "alpha":
            kw["dc_over_c"] = vals["dc_over_c"]
        return fn(x, vals["delta0_meV"], tc, **kw)

    res: LeastSquaresResult = fit_least_squares(model, T, D, sig, p0, lo, hi, names)
    d0 = res.value("delta0_meV")
    d0_err = res.error("delta0_meV")
    if tc_K is None:
        tc, tc_err = res.value("tc_K"), res.error("tc_K")
    else:
        tc, tc_err = float(tc_K), 0.0
    verdict = _tc_verdict([(T, D, sig)], res, [model(T, *res.values)], [d0], tc, tc_err,
                          tc_K is not None, tc_lower_bound=1e-6)

    def ratio_fn(p: np.ndarray) -> float:
        return 2 * p[0] / (K_B_MEV_PER_K * (p[1] if tc_K is None else tc))

    ratio = 2 * d0 / (K_B_MEV_PER_K * tc)
    extra = dict(extra_fixed)
    extra_err: dict[str, float] = {}
    if form == "alpha":
        extra["dc_over_c"] = res.value("dc_over_c")
        extra_err["dc_over_c"] = res.error("dc_over_c")
    return GapTemperatureFit(
        form=form, tc_K=tc, tc_err_K=tc_err, delta0_meV=d0, delta0_err_meV=d0_err,
        ratio_2delta_kTc=ratio, ratio_err=res.derived_error(ratio_fn), chi2_red=res.chi2_red,
        n_points=res.n_points, absolute_sigma=res.absolute_sigma, extra=extra,
        extra_err=extra_err, covariance=tuple(tuple(float(v) for v in r) for r in res.covariance),
        parameter_names=res.names, **verdict)


def fit_gaps_shared_tc(temperature_K: object, deltas_meV: Sequence[object],
                       deltas_err_meV: Sequence[object] | None = None,
                       forms: Sequence[str] = ("bcs", "alpha"), tc_K: float | None = None
                       ) -> list[GapTemperatureFit]:
    """Fit several gaps measured at the same temperatures with one common Tc.

    Why: in a two-band superconductor both gaps close at the same Tc (physics.md §2.6), and
    the small gap alone rarely pins it.  Each gap gets its own Δ0 and shape (``forms``, e.g.
    "bcs" for Δ1 and "alpha" for a Δ2 that departs from BCS); Tc and its error are shared.
    Returns one GapTemperatureFit per gap (the covariance given is that of the joint fit).
    """
    T = np.asarray(temperature_K, dtype=float).ravel()
    n_gaps = len(deltas_meV)
    if n_gaps < 1:
        raise ValueError("deltas_meV must hold at least one gap series")
    if len(forms) != n_gaps:
        raise ValueError(f"forms must have one entry per gap ({n_gaps}), got {len(forms)}")
    for f in forms:
        if f not in _FORMS:
            raise ValueError(f"form = {f!r} is not allowed (allowed: {', '.join(GAP_FORMS)})")
    errs = list(deltas_err_meV) if deltas_err_meV is not None else [None] * n_gaps
    if len(errs) != n_gaps:
        raise ValueError("deltas_err_meV must have one entry per gap")
    series = [clean_xy(T, d, e, "temperature_K", f"deltas_meV[{i}]")
              for i, (d, e) in enumerate(zip(deltas_meV, errs, strict=True))]
    if np.any(T < 0):
        raise ValueError("temperature_K must be >= 0")
    if (deltas_err_meV is None) != all(s[2] is None for s in series) or \
            (deltas_err_meV is not None and any(s[2] is None for s in series)):
        raise ValueError("give errors for every gap or for none")
    for i, s in enumerate(series):
        if s[1].max() <= 0:
            raise ValueError(f"deltas_meV[{i}] must contain at least one value > 0")
    if tc_K is not None:
        check_finite_positive("tc_K", tc_K)

    x = np.concatenate([s[0] for s in series])
    y = np.concatenate([s[1] for s in series])
    sig = None if deltas_err_meV is None else np.concatenate([s[2] for s in series])
    group = np.concatenate([np.full(s[0].size, i) for i, s in enumerate(series)])
    tc_guess = _initial_guess(series[0][0], series[0][1], bcs_gap_ratio)[1] \
        if tc_K is None else float(tc_K)

    names: list[str] = []
    p0: list[float] = []
    lo: list[float] = []
    hi: list[float] = []
    for i, (f, s) in enumerate(zip(forms, series, strict=True)):
        names.append(f"delta0_{i}")
        p0.append(float(s[1].max()))
        lo.append(0.0)
        hi.append(np.inf)
        if f == "alpha":
            names.append(f"dc_over_c_{i}")
            p0.append(1.426)
            lo.append(1e-3)
            hi.append(100.0)
    if tc_K is None:
        names.append("tc_K")
        p0.append(tc_guess)
        lo.append(1e-6)
        hi.append(np.inf)
    if y.size < len(names):
        raise ValueError(f"need at least {len(names)} gap values in total, got {y.size}")

    def model(xx: np.ndarray, *p: float) -> np.ndarray:
        v = dict(zip(names, p, strict=True))
        tc = v.get("tc_K", tc_guess)
        out = np.empty_like(xx)
        for i, f in enumerate(forms):
            m = group == i
            kw = {"dc_over_c": v[f"dc_over_c_{i}"]} if f == "alpha" else {}
            out[m] = _FORMS[f](xx[m], v[f"delta0_{i}"], tc, **kw)
        return out

    res = fit_least_squares(model, x, y, sig, p0, lo, hi, names)
    tc = res.value("tc_K") if tc_K is None else float(tc_K)
    tc_err = res.error("tc_K") if tc_K is None else 0.0
    cov = tuple(tuple(float(c) for c in r) for r in res.covariance)
    fitted = model(x, *res.values)
    verdict = _tc_verdict(series, res, [fitted[group == i] for i in range(n_gaps)],
                          [res.value(f"delta0_{i}") for i in range(n_gaps)], tc, tc_err,
                          tc_K is not None, tc_lower_bound=1e-6)
    fits = []
    for i, f in enumerate(forms):
        k_d = names.index(f"delta0_{i}")
        k_t = names.index("tc_K") if tc_K is None else None

        def ratio_fn(p: np.ndarray, k_d: int = k_d, k_t: int | None = k_t) -> float:
            return 2 * p[k_d] / (K_B_MEV_PER_K * (p[k_t] if k_t is not None else tc))

        d0 = res.value(f"delta0_{i}")
        extra = {"dc_over_c": res.value(f"dc_over_c_{i}")} if f == "alpha" else \
            ({"b": 1.74} if f == "tanh" else {})
        extra_err = {"dc_over_c": res.error(f"dc_over_c_{i}")} if f == "alpha" else {}
        fits.append(GapTemperatureFit(
            form=f, tc_K=tc, tc_err_K=tc_err, delta0_meV=d0,
            delta0_err_meV=res.error(f"delta0_{i}"),
            ratio_2delta_kTc=2 * d0 / (K_B_MEV_PER_K * tc), ratio_err=res.derived_error(ratio_fn),
            chi2_red=res.chi2_red, n_points=res.n_points, absolute_sigma=res.absolute_sigma,
            extra=extra, extra_err=extra_err, covariance=cov, parameter_names=res.names,
            **{**verdict, "notes": list(verdict["notes"])}))
    return fits
