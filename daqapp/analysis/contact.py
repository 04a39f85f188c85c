"""Point-contact regime estimates: mean free path, Sharvin/Wexler radius, regime, heating.

Why: a PCAR spectrum only measures the gap when the contact is ballistic or close to it
(a ≲ l); in the thermal regime features move with heating, not with Δ (physics.md §4.6–4.8).
The seed estimates l ≈ 1.6 nm and a ≈ 7.33 nm this way; these functions reproduce that chain
and add the Maxwell term the pure Sharvin estimate leaves out.  SI units throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daqapp.analysis._fitting import check_finite_positive

HBAR = 1.054571817e-34
M_E = 9.1093837015e-31
E_CHARGE = 1.602176634e-19
LORENZ = 2.44e-8
"""Lorenz number L0 in W·Ω/K²."""


def fermi_velocity(k_f: float, effective_mass: float = 1.0) -> float:
    """v_F = ħk_F/(m* m_e) in m/s, from k_F in 1/m."""
    check_finite_positive("k_f (1/m)", k_f)
    check_finite_positive("effective_mass", effective_mass)
    return HBAR * k_f / (effective_mass * M_E)


def mean_free_path(rho_ohm_m: float, n_m3: float, v_f: float | None = None,
                   k_f: float | None = None, effective_mass: float = 1.0) -> float:
    """Drude mean free path l = m v_F/(n e² ρ) in metres.

    v_F (m/s) if given, else from k_F (1/m), else the free-electron k_F = (3π²n)^{1/3}.
    """
    rho = check_finite_positive("rho_ohm_m", rho_ohm_m)
    n = check_finite_positive("n_m3", n_m3)
    m = check_finite_positive("effective_mass", effective_mass) * M_E
    if v_f is not None and k_f is not None:
        raise ValueError("give v_f or k_f, not both")
    if v_f is not None:
        vf = check_finite_positive("v_f (m/s)", v_f)
    else:
        kf = (3 * np.pi ** 2 * n) ** (1 / 3) if k_f is None else k_f
        vf = fermi_velocity(kf, effective_mass)
    return m * vf / (n * E_CHARGE ** 2 * rho)


def sharvin_resistance(a_m: float, rho_ohm_m: float, l_m: float) -> float:
    """Ballistic (Sharvin) resistance R_S = 4ρl/(3πa²) in Ω of a contact of radius a."""
    a = check_finite_positive("a_m", a_m)
    return 4 * check_finite_positive("rho_ohm_m", rho_ohm_m) * check_finite_positive(
        "l_m", l_m) / (3 * np.pi * a * a)


def sharvin_radius(R_ohm: float, rho_ohm_m: float, l_m: float) -> float:
    """Contact radius a = √(4ρl/(3πR)) in m from the Sharvin formula alone (a ≪ l)."""
    R = check_finite_positive("R_ohm", R_ohm)
    return float(np.sqrt(4 * check_finite_positive("rho_ohm_m", rho_ohm_m)
                         * check_finite_positive("l_m", l_m) / (3 * np.pi * R)))


def maxwell_resistance(a_m: float, rho_ohm_m: float) -> float:
    """Diffusive (Maxwell) spreading resistance ρ/(2a) in Ω."""
    return check_finite_positive("rho_ohm_m", rho_ohm_m) / (2 * check_finite_positive("a_m", a_m))


def wexler_resistance(a_m: float, rho_ohm_m: float, l_m: float, gamma: float = 1.0) -> float:
    """Wexler interpolation R = 4ρl/(3πa²) + Γ(l/a)·ρ/(2a), Γ ≈ 1 (0.694 for l ≫ a)."""
    check_finite_positive("gamma", gamma)
    return sharvin_resistance(a_m, rho_ohm_m, l_m) + gamma * maxwell_resistance(a_m, rho_ohm_m)


def wexler_radius(R_ohm: float, rho_ohm_m: float, l_m: float, gamma: float = 1.0) -> float:
    """Radius a in m whose Wexler resistance equals R (positive root of the quadratic)."""
    R = check_finite_positive("R_ohm", R_ohm)
    rho = check_finite_positive("rho_ohm_m", rho_ohm_m)
    l_mfp = check_finite_positive("l_m", l_m)
    g = check_finite_positive("gamma", gamma)
    # R a² − (Γρ/2) a − 4ρl/(3π) = 0
    b = g * rho / 2
    c = 4 * rho * l_mfp / (3 * np.pi)
    return float((b + np.sqrt(b * b + 4 * R * c)) / (2 * R))


CONTACT_REGIMES = ("ballistic", "intermediate", "diffusive", "thermal")


@dataclass(frozen=True)
class ContactRegime:
    """Regime of a point contact and the length ratios that decide it."""

    regime: str
    knudsen: float
    a_m: float
    l_m: float
    inelastic_length_m: float | None
    explanation: str

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def contact_regime(a_m: float, l_m: float, inelastic_length_m: float | None = None,
                   diffusive_ratio: float = 10.0) -> ContactRegime:
    """Classify by the Knudsen ratio K = l/a (and the inelastic length if known).

    ballistic: a < l (spectroscopic, BTK applies); intermediate: l ≤ a < ``diffusive_ratio``·l
    (energy-resolved, Z and Γ absorb part of the spreading); diffusive: a ≥ that (still
    spectroscopic if a < √(l·l_in)); thermal: a ≥ √(l·l_in) when ``inelastic_length_m`` is
    given — heating dominates and features no longer measure Δ.
    """
    a = check_finite_positive("a_m", a_m)
    lm = check_finite_positive("l_m", l_m)
    check_finite_positive("diffusive_ratio", diffusive_ratio)
    k = lm / a
    if inelastic_length_m is not None:
        lin = check_finite_positive("inelastic_length_m", inelastic_length_m)
        if a >= np.sqrt(lm * lin) and a >= lm:
            return ContactRegime("thermal", k, a, lm, lin,
                                 f"a = {a:.3g} m ≥ √(l·l_in) = {np.sqrt(lm * lin):.3g} m: "
                                 "Joule heating in the contact, not spectroscopic")
    if a < lm:
        regime, why = "ballistic", f"a < l (K = l/a = {k:.3g} > 1): Sharvin limit"
    elif a < diffusive_ratio * lm:
        regime, why = "intermediate", (f"l ≤ a < {diffusive_ratio:g} l (K = {k:.3g}): between "
                                       "the quasi-ballistic and quasi-diffusive limits")
    else:
        regime, why = "diffusive", f"a ≥ {diffusive_ratio:g} l (K = {k:.3g}): Maxwell limit"
    return ContactRegime(regime, k, a, lm, inelastic_length_m, why)


def contact_temperature(bath_K: float, bias_V: object) -> np.ndarray:
    """Thermal-regime contact temperature √(T_bath² + V²/(4L0)) in K (physics.md §4.8)."""
    check_finite_positive("bath_K", bath_K, allow_zero=True)
    V = np.asarray(bias_V, dtype=float)
    if np.any(~np.isfinite(V)):
        raise ValueError("bias_V must be finite")
    return np.sqrt(bath_K ** 2 + V ** 2 / (4 * LORENZ))
