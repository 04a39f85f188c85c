"""Hc2(T): WHH and Gurevich two-band against physics.md, and Hc2 fits → Hc2(0), ξ."""

import numpy as np
import pytest
from scipy.special import psi

from daqapp.analysis.hc2 import (
    WHH_DIRTY_RATIO,
    coherence_length_nm,
    diffusivity_from_slope,
    fit_hc2,
    gurevich_hc2,
    maki_alpha,
    temperature_at_field,
    whh_hc2,
    whh_reduced_field,
)

SINGLE_BAND_LIKE = (0.5, 0.5, 0.25, 0.25)
MGB2 = (0.81, 0.285, 0.119, 0.09)
E_CHARGE, K_B = 1.602176634e-19, 1.380649e-23


def _largest_sign_change(f, grid, n_bisect=60):
    """Brute force: the largest sign change of f(grid) in every row, bisected; 0 if none.

    ``f(x)`` takes a (rows, k) array of abscissae and returns values of the same shape.
    """
    vals = f(np.broadcast_to(grid, (1, grid.size)))
    rows = vals.shape[0]
    change = np.sign(vals[:, :-1]) * np.sign(vals[:, 1:]) < 0
    has = change.any(axis=1)
    k = grid.size - 2 - np.argmax(change[:, ::-1], axis=1)
    lo, hi = grid[k].copy(), grid[k + 1].copy()
    s_lo = np.sign(vals[np.arange(rows), k])
    for _ in range(n_bisect):
        mid = 0.5 * (lo + hi)
        same = np.sign(f(mid[:, None])[:, 0]) == s_lo
        lo = np.where(same, mid, lo)
        hi = np.where(same, hi, mid)
    return np.where(has, 0.5 * (lo + hi), 0.0)


def _gurevich_paper_lhs(B, T, tc, d1, eta, lambdas):
    """a0[ln t + U(h)][ln t + U(ηh)] + a1[ln t + U(h)] + a2[ln t + U(ηh)], Gurevich (2003)."""
    l11, l22, l12, l21 = lambdas
    lam_minus = l11 - l22
    lam0 = np.sqrt(lam_minus ** 2 + 4 * l12 * l21)
    w = l11 * l22 - l12 * l21
    a0, a1, a2 = 2 * w / lam0, 1 + lam_minus / lam0, 1 - lam_minus / lam0
    t = T / tc
    h = E_CHARGE * d1 * B / (2 * np.pi * K_B * T)

    def U(x):
        return psi(0.5 + x) - psi(0.5)

    x1, x2 = np.log(t) + U(h), np.log(t) + U(eta * h)
    return a0 * x1 * x2 + a1 * x1 + a2 * x2


def _whh_matsubara_lhs(hbar, t, alpha, lambda_so, n_terms=2000):
    """ln(1/t) − Σ_ν{1/|2ν+1| − [|2ν+1| + h̄/t + (αh̄/t)²/(|2ν+1| + (h̄+λ_so)/t)]⁻¹}.

    The sum over ν of ±(2ν+1) is twice the sum over odd n > 0, cut at n_terms with the
    leading x/n² tail added (relative error ~ (h̄/(t n_terms))²).
    """
    x = hbar / t
    c = (alpha * x) ** 2
    d = (hbar + lambda_so) / t
    total = np.zeros(np.broadcast_shapes(np.shape(hbar), np.shape(t)))
    for n in np.arange(1.0, 2 * n_terms, 2.0):
        total += 1 / n - 1 / (n + x + c / (n + d))
    total += x / (4 * n_terms)
    return np.log(1 / t) - 2 * total


REDUCED_T = np.array([1e-3, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.99, 0.999])


@pytest.mark.parametrize("lambdas", [MGB2, SINGLE_BAND_LIKE, (0.3, 0.6, 0.05, 0.05)])
def test_gurevich_returns_the_largest_root_for_every_eta(lambdas):
    # physics.md §2.9: for η ≠ 1 the equation has several roots at low T; Hc2 is the
    # largest.  Scan the paper's equation densely in B (far beyond any root: 2000 T/min(η,1)
    # where the largest root is below 200 T/min(η,1)) and compare.
    tc, d1 = 72.0, diffusivity_from_slope(1.0)
    T = REDUCED_T * tc
    for eta in np.geomspace(0.01, 100.0, 13):
        grid = np.geomspace(1e-6, 2000.0 / min(eta, 1.0), 20000)
        brute = _largest_sign_change(
            lambda B, eta=eta: _gurevich_paper_lhs(B, T[:, None], tc, d1, eta, lambdas), grid)
        got = gurevich_hc2(T, tc, d1, eta, lambdas)
        assert np.all(brute > 0)
        np.testing.assert_allclose(got, brute, rtol=1e-7, err_msg=f"eta = {eta:g}")
        # and it is a root of the paper's equation, not just near one
        lhs = _gurevich_paper_lhs(got * (1 + 1e-9), T, tc, d1, eta, lambdas)
        lhs_below = _gurevich_paper_lhs(got * (1 - 1e-9), T, tc, d1, eta, lambdas)
        assert np.all(np.sign(lhs) != np.sign(lhs_below))


def test_gurevich_issue_case_eta_5():
    # the reported failure: η = 5 at 5 K gave a value that is no root of the equation
    tc, d1 = 72.0, diffusivity_from_slope(2.0)
    b = float(gurevich_hc2(5.0, tc, d1, 5.0))
    grid = np.geomspace(1e-6, 2000.0, 200000)
    vals = _gurevich_paper_lhs(grid, 5.0, tc, d1, 5.0, MGB2)
    roots = grid[:-1][np.sign(vals[:-1]) != np.sign(vals[1:])]
    assert roots.size >= 2  # a low-field root and the physical Hc2
    assert b == pytest.approx(roots[-1], rel=1e-4)


@pytest.mark.parametrize("alpha,lambda_so", [(0.0, 0.0), (1.0, 0.0), (1.0, 2.0), (3.0, 0.5),
                                             (5.0, 0.0), (10.0, 0.1)])
def test_whh_returns_the_largest_root_of_the_matsubara_sum(alpha, lambda_so):
    t = np.array([0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.95, 0.999])
    grid = np.geomspace(1e-7, 2.0, 1200)
    brute = _largest_sign_change(
        lambda h: _whh_matsubara_lhs(h, t[:, None], alpha, lambda_so), grid, n_bisect=40)
    got = whh_reduced_field(t, alpha, lambda_so) * 4 / np.pi ** 2
    np.testing.assert_allclose(got, brute, rtol=5e-5)


def _brute_whh_g(hbar, t, alpha, lambda_so, n_terms=200000):
    n = np.arange(1, 2 * n_terms, 2.0)
    term = 1 / n - 1 / (n + hbar / t + (alpha * hbar / t) ** 2 / (n + (hbar + lambda_so) / t))
    return np.log(1 / t) - 2 * np.sum(term)


def test_whh_orbital_reference_values():
    np.testing.assert_allclose(whh_reduced_field([1e-6, 0.2, 0.5, 0.8]),
                               [0.6927, 0.6417, 0.4505, 0.1933], atol=1e-4)
    assert WHH_DIRTY_RATIO == pytest.approx(0.6927, abs=1e-4)
    assert whh_reduced_field(1.0) == 0.0 and whh_reduced_field(1.3) == 0.0
    # slope at Tc is -1 in reduced units by construction
    dt = 1e-4
    assert whh_reduced_field(1 - dt) / dt == pytest.approx(1.0, rel=2e-3)


def test_whh_in_tesla_and_zero_temperature():
    assert whh_hc2(0.0, 72.0, 2.0) == pytest.approx(0.6927 * 72 * 2.0, rel=1e-4)
    assert whh_hc2(80.0, 72.0, 2.0) == 0.0


@pytest.mark.parametrize("alpha,lambda_so", [(1.0, 0.0), (1.0, 2.0), (3.0, 0.5)])
def test_full_whh_closed_form_equals_matsubara_sum(alpha, lambda_so):
    # the root found must zero the explicit Matsubara sum of physics.md §2.7
    for t in (0.1, 0.5, 0.8):
        hstar = whh_reduced_field(t, alpha, lambda_so)
        hbar = hstar * 4 / np.pi ** 2
        assert abs(_brute_whh_g(hbar, t, alpha, lambda_so)) < 1e-4


def test_pauli_limiting_lowers_hc2_and_spin_orbit_restores_it():
    orb = whh_reduced_field(0.1)
    pauli = whh_reduced_field(0.1, alpha=1.5)
    restored = whh_reduced_field(0.1, alpha=1.5, lambda_so=1e4)
    assert pauli < 0.8 * orb
    assert restored == pytest.approx(orb, rel=1e-3)
    assert maki_alpha(100.0, 72.0) == pytest.approx(np.sqrt(2) * 100 / (1.84 * 72))


def test_gurevich_equal_diffusivities_is_whh():
    slope, tc = 2.0, 10.0
    d = diffusivity_from_slope(slope)
    assert d == pytest.approx(1.10e-4 / slope, rel=5e-3)  # 1.097e-4 rounded
    T = np.array([0.2, 5.0, 8.0])
    np.testing.assert_allclose(gurevich_hc2(T, tc, d, 1.0, SINGLE_BAND_LIKE),
                               whh_hc2(T, tc, slope), rtol=1e-8)
    # physics.md: 0.451 at t = 0.5 and 0.692 at t = 0.02
    r = gurevich_hc2(np.array([5.0, 0.2]), tc, d, 1.0) / (tc * slope)
    np.testing.assert_allclose(r, [0.451, 0.692], atol=1e-3)


def test_gurevich_dirty_second_band_gives_upturn():
    # η ≪ 1: Hc2(T) curves upward at low T and exceeds WHH with the same Tc slope
    tc, d = 72.0, diffusivity_from_slope(1.0)
    T = np.linspace(1, 70, 40)
    h = gurevich_hc2(T, tc, d, 0.05)
    assert np.all(np.diff(h) < 0)
    # WHH is concave everywhere; the two-band curve has a convex (upturn) stretch
    assert np.all(np.diff(whh_hc2(T, tc, 1.0), 2) < 0)
    assert np.max(np.diff(h, 2)) > 0
    slope_tc = float(gurevich_hc2(tc - 0.01, tc, d, 0.05)) / 0.01
    assert float(gurevich_hc2(0.0, tc, d, 0.05)) > 1.5 * 0.6927 * tc * slope_tc
    # interband-dominated couplings (w < 0) must not pick the spurious root
    hw = gurevich_hc2(T, tc, d, 1.0, (0.1, 0.1, 0.4, 0.4))
    np.testing.assert_allclose(hw, whh_hc2(T, tc, 4 * 1.380649e-23 / (np.pi * 1.602176634e-19 * d)),
                               rtol=1e-6)


def test_coherence_length_seed_value():
    # μ0Hc2(0) = 97.7 T -> ξ = 18.3 Å
    assert coherence_length_nm(97.7) == pytest.approx(1.83, abs=0.01)


def test_temperature_at_field_inverts_hc2():
    def hc2(T):
        return whh_hc2(T, 72.0, 2.0)
    B = np.array([0.0, 10.0, 50.0, 500.0])
    T = temperature_at_field(B, hc2, 72.0)
    assert T[0] == 72.0 and T[3] == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(hc2(T[1:3]), B[1:3], rtol=1e-6)


def test_invalid_inputs():
    with pytest.raises(ValueError, match="slope_T_per_K"):
        whh_hc2([1.0], 10.0, -1.0)
    with pytest.raises(ValueError, match="eta"):
        gurevich_hc2([1.0], 10.0, 1e-4, 0.0)
    with pytest.raises(ValueError, match="lambdas"):
        gurevich_hc2([1.0], 10.0, 1e-4, 1.0, (0.5, 0.5, 0.1))
    with pytest.raises(ValueError, match="temperature_K"):
        whh_hc2([np.nan], 10.0, 1.0)
    with pytest.raises(ValueError, match="model"):
        fit_hc2([1, 2, 3], [3, 2, 1], model="three_band")


def test_fit_whh_recovers_truth():
    rng = np.random.default_rng(1)
    T = np.linspace(20, 70, 12)
    truth = whh_hc2(T, 72.0, 2.0)
    sigma = 0.05 + 0.01 * truth
    fit = fit_hc2(T, truth + rng.normal(0, sigma), sigma, model="whh")
    assert abs(fit.tc_K - 72.0) < 3 * fit.tc_err_K
    assert abs(fit.params["slope_T_per_K"] - 2.0) < 3 * fit.param_errors["slope_T_per_K"]
    h0 = 0.6927 * 72 * 2.0
    assert abs(fit.hc2_0_T - h0) < 3 * fit.hc2_0_err_T
    assert fit.coherence_length_nm == pytest.approx(coherence_length_nm(fit.hc2_0_T))
    np.testing.assert_allclose(fit.curve(T), truth, rtol=0.02)
    assert fit.to_dict()["model"] == "whh"


def test_fit_two_band_recovers_truth_and_beats_whh():
    rng = np.random.default_rng(5)
    d1 = diffusivity_from_slope(1.0)
    T = np.linspace(5, 70, 15)
    truth = gurevich_hc2(T, 72.0, d1, 0.1)
    sigma = 0.02 * truth + 0.05
    y = truth + rng.normal(0, sigma)
    fit = fit_hc2(T, y, sigma, model="two_band", profile_eta=False)
    assert fit.hc2_0_range_T is None
    assert abs(fit.params["eta"] - 0.1) < 3 * fit.param_errors["eta"]
    assert abs(fit.params["d1_m2_s"] - d1) < 3 * fit.param_errors["d1_m2_s"]
    h0 = float(gurevich_hc2(0.0, 72.0, d1, 0.1))
    assert abs(fit.hc2_0_T - h0) < 3 * fit.hc2_0_err_T
    whh = fit_hc2(T, y, sigma, model="whh")
    assert whh.chi2_red > 3 * fit.chi2_red


def test_two_band_fit_on_near_tc_data_reports_its_ignorance():
    # the seed's situation: 0–8 T near Tc, Hc2(0) ~ 10x beyond the data.  η is then not
    # determined, and the fit must say so through large errors rather than tiny ones, and
    # the η profile must carry the whole spread of Hc2(0) the data allow.
    rng = np.random.default_rng(3)
    d1 = diffusivity_from_slope(1.2)
    B = np.arange(0.0, 9.0)
    T = temperature_at_field(B, lambda x: gurevich_hc2(x, 72.0, d1, 0.2), 72.0)
    T = T + rng.normal(0, 0.2, B.size)
    fit = fit_hc2(T, B, model="two_band")
    assert fit.param_errors["eta"] > 1.0
    assert fit.hc2_0_err_T > 0.2 * fit.hc2_0_T
    h0 = float(gurevich_hc2(0.0, 72.0, d1, 0.2))
    lo, hi = fit.hc2_0_range_T
    assert lo <= h0 <= hi and hi > 3 * lo
    assert any("not bounded below" in n for n in fit.notes)
    assert any("Pauli limit" in n for n in fit.notes)
    # fixing η (as the report does) keeps the same data-allowed range and says so
    fixed = fit_hc2(T, B, model="two_band", eta=0.2)
    assert fixed.params["eta"] == 0.2 and fixed.param_errors["eta"] == 0.0
    assert fixed.hc2_0_range_T == pytest.approx(fit.hc2_0_range_T, rel=0.05)
    assert any("fixed at 0.2" in n for n in fixed.notes)


def test_two_band_eta_profile_agrees_with_the_covariance_when_eta_is_determined():
    rng = np.random.default_rng(5)
    d1 = diffusivity_from_slope(1.0)
    T = np.linspace(5, 70, 15)
    truth = gurevich_hc2(T, 72.0, d1, 0.1)
    sigma = 0.02 * truth + 0.05
    fit = fit_hc2(T, truth + rng.normal(0, sigma), sigma, model="two_band")
    lo, hi = fit.hc2_0_range_T
    assert lo <= fit.hc2_0_T <= hi
    # Δχ² = 1 profile ≈ ±1σ of the linearised error when η is well determined
    assert 0.5 < (hi - lo) / (2 * fit.hc2_0_err_T) < 2.0
    e_lo, e_hi = fit.eta_range
    assert 0.5 < (e_hi - e_lo) / (2 * fit.param_errors["eta"]) < 2.0
    assert not any("not bounded" in n for n in fit.notes)
    d = fit.to_dict()
    assert d["hc2_0_range_T"] == [lo, hi] and d["notes"] == fit.notes
    assert all(c >= fit.chi2_red * 12 * (1 - 1e-6) for _, c, _ in fit.eta_profile)


def test_two_band_fit_with_eta_above_one_is_a_true_root():
    # the issue: a best fit at η > 1 returned 87.0 T where the equation gives 95.5 T
    rng = np.random.default_rng(8)
    tc, d1 = 72.0, diffusivity_from_slope(2.0)
    T = np.linspace(4, 70, 14)
    truth = gurevich_hc2(T, tc, d1, 5.0)
    sigma = 0.02 * truth + 0.05
    fit = fit_hc2(T, truth + rng.normal(0, sigma), sigma, model="two_band", profile_eta=False)
    assert abs(fit.params["eta"] - 5.0) < 3 * fit.param_errors["eta"]
    grid = np.geomspace(1e-6, 4000.0, 200000)
    vals = _gurevich_paper_lhs(grid, 0.05, fit.tc_K, fit.params["d1_m2_s"], fit.params["eta"],
                               MGB2)
    largest = grid[:-1][np.sign(vals[:-1]) != np.sign(vals[1:])][-1]
    assert float(fit.curve(0.05)) == pytest.approx(largest, rel=1e-4)


def test_hc2_fit_errors_cover_the_truth_over_noise_draws():
    # coverage: over independent noise draws the truth lies within 1σ about 68 % of the time
    d1 = diffusivity_from_slope(1.0)
    T = np.linspace(5, 70, 15)
    h0 = float(gurevich_hc2(0.0, 72.0, d1, 0.1))
    truth = gurevich_hc2(T, 72.0, d1, 0.1)
    sigma = 0.02 * truth + 0.05
    pulls = []
    for k in range(10):
        y = truth + np.random.default_rng(100 + k).normal(0, sigma)
        fit = fit_hc2(T, y, sigma, model="two_band", profile_eta=False)
        pulls.append((fit.hc2_0_T - h0) / fit.hc2_0_err_T)
    pulls = np.abs(pulls)
    assert 0.4 <= np.mean(pulls < 1) <= 0.9
    assert np.mean(pulls < 2.5) >= 0.85
