"""Critical current from I–V curves and Jc(T) fits."""

import numpy as np
import pytest

from daqapp.analysis.critical import (
    JC_FORMS,
    critical_current,
    critical_current_density,
    fit_jc_forms,
    fit_jc_temperature,
    jc_temperature,
)

I = np.linspace(-5e-3, 5e-3, 401)  # ±5 mA as in the seed, 25 µA steps
STEP = I[1] - I[0]


def _iv(current, ic, rn=2.0):
    """Overdamped-junction I–V: V = R_N √(I² − Ic²) above Ic, 0 below."""
    return np.sign(current) * rn * np.sqrt(np.clip(current ** 2 - ic ** 2, 0, None))


def test_ic_both_polarities_with_offset_and_noise():
    rng = np.random.default_rng(0)
    V = _iv(I, 2.03e-3) + 3e-6 + rng.normal(0, 1e-6, I.size)
    r = critical_current(I, V)
    assert r.ic_positive == pytest.approx(2.03e-3, abs=STEP)
    assert r.ic_negative == pytest.approx(2.03e-3, abs=STEP)
    assert r.ic_mean == pytest.approx(2.03e-3, abs=STEP)
    assert r.offset_V == pytest.approx(3e-6, abs=1e-6)
    assert r.noise_V == pytest.approx(1e-6, rel=0.4)
    assert r.normal_resistance == pytest.approx(2.0, rel=0.2)
    assert not r.ohmic


def test_asymmetric_ic_and_units_follow_input():
    I_mA = I * 1e3
    V = np.where(I_mA > 0, _iv(I_mA, 1.5), _iv(I_mA, 2.5))
    r = critical_current(I_mA, V)
    assert r.ic_positive == pytest.approx(1.5, abs=STEP * 1e3)
    assert r.ic_negative == pytest.approx(2.5, abs=STEP * 1e3)
    assert r.ic_asymmetry == pytest.approx(0.5, abs=STEP * 1e3)


def test_single_spike_does_not_trigger():
    rng = np.random.default_rng(1)
    V = _iv(I, 3e-3) + rng.normal(0, 1e-6, I.size)
    V[np.argmin(np.abs(I - 1e-3))] += 1e-3  # one glitch at +1 mA
    r = critical_current(I, V)
    assert r.ic_positive == pytest.approx(3e-3, abs=STEP)


def test_ohmic_curve_gives_zero_and_superconducting_curve_gives_none():
    rng = np.random.default_rng(2)
    r = critical_current(I, _iv(I, 0.0) + rng.normal(0, 1e-6, I.size))
    assert r.ohmic and r.ic_mean == 0.0
    r = critical_current(I, _iv(I, 6e-3) + rng.normal(0, 1e-6, I.size))
    assert r.ic_positive is None and r.ic_mean is None and r.normal_resistance is None


def test_explicit_voltage_and_resistance_criteria():
    V = _iv(I, 2e-3)
    r = critical_current(I, V, threshold_V=1e-3)
    # 2 Ω √(I² − Ic²) = 1 mV  ->  I = √(Ic² + (0.5 mA)²)
    assert r.ic_positive == pytest.approx(np.hypot(2e-3, 0.5e-3), abs=STEP)
    r = critical_current(I, V, criterion="resistance", resistance_threshold=1.0)
    # V/I = 1 Ω  ->  2√(I² − Ic²) = I  ->  I = Ic / √(3/4)
    assert r.ic_positive == pytest.approx(2e-3 / np.sqrt(0.75), abs=STEP)
    assert r.criterion == "resistance"


def test_invalid_ic_arguments():
    with pytest.raises(ValueError, match="criterion"):
        critical_current(I, _iv(I, 1e-3), criterion="power")
    with pytest.raises(ValueError, match="resistance_threshold"):
        critical_current(I, _iv(I, 1e-3), criterion="resistance")
    with pytest.raises(ValueError, match="same length"):
        critical_current(I, _iv(I, 1e-3)[:-1])


def test_seed_current_density():
    # 2.03 mA over 50 µm × 5 µm = 812 A/cm²
    assert critical_current_density(2.03e-3, 50e-6, 5e-6) == pytest.approx(812.0)
    assert critical_current_density(2.03e-3, 50e-6, 5e-6, unit="A/m2") == pytest.approx(8.12e6)
    with pytest.raises(ValueError, match="width_m"):
        critical_current_density(1e-3, 0.0, 5e-6)


def test_jc_forms_shapes():
    t = np.array([0.0, 0.5, 1.0, 1.2])
    np.testing.assert_allclose(jc_temperature(t, 1.0, 1.0, "gl"),
                               [1, 0.75 ** 1.5 * 1.25 ** 0.5, 0, 0])
    np.testing.assert_allclose(jc_temperature(t, 1.0, 1.0, "dew_hughes_dtc"),
                               [1, 0.75 ** (7 / 6) * 1.25 ** (5 / 6), 0, 0])
    np.testing.assert_allclose(jc_temperature(t, 1.0, 1.0, "dew_hughes_dl"),
                               [1, 0.75 ** 2.5 * 1.25 ** -0.5, 0, 0])
    np.testing.assert_allclose(jc_temperature(t, 2.0, 1.0, "power", n=2), [2, 0.5, 0, 0])


@pytest.mark.parametrize("form", JC_FORMS)
def test_jc_fit_recovers_truth_within_errors(form):
    rng = np.random.default_rng(4)
    T = np.linspace(2, 30, 12)
    sigma = 0.02  # mA
    truth = jc_temperature(T, 2.03, 32.0, form, n=1.8)
    fit = fit_jc_temperature(T, truth + rng.normal(0, sigma, T.size), sigma, form=form)
    assert abs(fit.jc0 - 2.03) < 3 * fit.jc0_err
    assert abs(fit.tc_K - 32.0) < 3 * fit.tc_err_K
    if form == "power":
        assert fit.n_fitted and abs(fit.n - 1.8) < 3 * fit.n_err
    np.testing.assert_allclose(fit.curve(T), truth, atol=4 * sigma)
    assert fit.to_dict()["form"] == form


def test_jc_fit_with_fixed_tc_and_invalid_input():
    T = np.array([2.0, 5, 10, 15, 20, 25])
    J = jc_temperature(T, 2.03, 30.0, "gl")
    fit = fit_jc_temperature(T, J, form="gl", tc_K=30.0)
    assert fit.jc0 == pytest.approx(2.03, rel=1e-6) and fit.tc_err_K == 0.0
    with pytest.raises(ValueError, match="form"):
        fit_jc_temperature(T, J, form="bean")
    with pytest.raises(ValueError, match="ic"):
        fit_jc_temperature(T, -J)


def test_power_t2_form_analytic():
    t = np.linspace(0.0, 0.999, 50)
    np.testing.assert_allclose(jc_temperature(t, 1.0, 1.0, "power_t2", n=1.0), 1 - t ** 2)
    # δl pinning is (1 − t²)^{5/2} times (1 + t²)^{−1/2}
    np.testing.assert_allclose(jc_temperature(t, 1.0, 1.0, "dew_hughes_dl")
                               / jc_temperature(t, 1.0, 1.0, "power_t2", n=2.5),
                               (1 + t ** 2) ** -0.5, rtol=1e-12)
    # near Tc (1 − t²)^n → 2^n (1 − t)^n: the same exponent n as the (1 − t)^n form
    tt = 1 - 1e-7
    assert (jc_temperature(tt, 1.0, 1.0, "power_t2", n=1.7)
            / jc_temperature(tt, 1.0, 1.0, "power", n=1.7)) == pytest.approx(2 ** 1.7, rel=1e-6)
    assert jc_temperature(1.2, 1.0, 1.0, "power_t2", n=1.7) == 0.0
    with pytest.raises(ValueError, match="n"):
        jc_temperature(t, 1.0, 1.0, "power_t2", n=-1.0)


def test_power_t2_fit_recovers_n_over_noise_draws():
    T = np.linspace(2, 25, 12)
    sigma = 0.02
    truth = jc_temperature(T, 2.03, 32.0, "power_t2", n=1.8)
    pulls = []
    for k in range(12):
        y = truth + np.random.default_rng(40 + k).normal(0, sigma, T.size)
        fit = fit_jc_temperature(T, y, sigma, form="power_t2")
        assert fit.n_fitted and fit.n_free == 3
        pulls.append((fit.n - 1.8) / fit.n_err)
    assert np.all(np.abs(pulls) < 3.5)
    assert 0.4 <= np.mean(np.abs(pulls) < 1) <= 0.95  # ~68 % coverage of the 1σ error
    # noise-free data give the exponent back exactly
    exact = fit_jc_temperature(T, truth, form="power_t2")
    assert exact.n == pytest.approx(1.8, rel=1e-6) and exact.tc_K == pytest.approx(32.0)


def test_fit_jc_forms_reports_the_spread_between_pinning_forms():
    T = np.linspace(2, 25, 12)
    truth = jc_temperature(T, 2.03, 32.0, "power_t2", n=1.8)
    sigma = 0.1  # 5 %: several forms stay acceptable
    y = truth + np.random.default_rng(2).normal(0, sigma, T.size)
    r = fit_jc_forms(T, y, sigma)
    assert set(r.fits) == set(JC_FORMS) and not r.failed
    assert r.best_form in r.accepted_forms and len(r.accepted_forms) >= 2
    jc0s = [r.fits[f].jc0 for f in r.accepted_forms]
    assert r.jc0_range == (min(jc0s), max(jc0s))
    assert r.jc0_systematic == pytest.approx(0.5 * (max(jc0s) - min(jc0s)))
    assert r.jc0_systematic > 0 and r.jc0 == r.best.jc0
    assert r.tc_range_K[0] <= r.best.tc_K <= r.tc_range_K[1]
    for f in set(JC_FORMS) - set(r.accepted_forms):
        assert r.aic[f] - r.aic[r.best_form] > 10
        assert any("rejected" in n for n in r.notes)
    assert r.to_dict()["best_form"] == r.best_form
    # precise data reject the wrong shapes: the true form is the only one left, spread 0
    precise = fit_jc_forms(T, truth + np.random.default_rng(3).normal(0, 0.002, T.size), 0.002)
    assert precise.accepted_forms == ("power_t2",) and precise.jc0_systematic == 0.0
    with pytest.raises(ValueError, match="form"):
        fit_jc_forms(T, y, forms=("gl", "bean"))
