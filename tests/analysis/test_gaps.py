"""Δ(T): the exact BCS and d-wave gap curves against physics.md, and Δ(T) fits."""

import numpy as np
import pytest

from daqapp.analysis.gaps import (
    BCS_DELTA0_OVER_KTC,
    DWAVE_DELTA0_OVER_KTC,
    K_B_MEV_PER_K,
    bcs_gap_ratio,
    dwave_gap_ratio,
    fit_gap_temperature,
    fit_gaps_shared_tc,
    gap_alpha_model,
    gap_bcs,
    gap_dwave,
    gap_tanh,
)


def test_bcs_matches_muehlschlegel():
    t = [0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99]
    ref = [0.9971, 0.9569, 0.8288, 0.7110, 0.5263, 0.3803, 0.1730]
    np.testing.assert_allclose(bcs_gap_ratio(t), ref, atol=1e-4)


def test_bcs_limits_and_ginzburg_landau_slope():
    assert bcs_gap_ratio(0.0) == pytest.approx(1.0, abs=1e-12)
    assert bcs_gap_ratio(1.0) == 0.0 and bcs_gap_ratio(1.5) == 0.0
    # near Tc: Δ = 3.063 k_BTc √(1−t)  ->  Δ/Δ0 = 1.7367 √(1−t)
    t = 1 - 1e-4
    assert bcs_gap_ratio(t) / np.sqrt(1 - t) == pytest.approx(3.0633 / 1.76388, rel=1e-3)
    assert BCS_DELTA0_OVER_KTC == pytest.approx(1.764, abs=1e-3)
    r = bcs_gap_ratio(np.linspace(0, 1, 400))
    assert np.all(np.diff(r) <= 1e-8)  # monotonic decrease (to spline accuracy)


def test_dwave_values():
    np.testing.assert_allclose(dwave_gap_ratio([0.3, 0.5, 0.7, 0.9]),
                               [0.9883, 0.9348, 0.7997, 0.503], atol=1.5e-4)
    assert DWAVE_DELTA0_OVER_KTC == pytest.approx(2.140, abs=1e-3)


def test_tanh_form_accuracy_as_documented():
    t = np.linspace(0.02, 0.999, 500)
    rel = gap_tanh(t, 1.0, 1.0) / bcs_gap_ratio(t) - 1
    assert np.max(np.abs(rel)) == pytest.approx(0.018, abs=0.002)
    # b = 1.66 mimics the d-wave curve to about 0.5 %
    reld = gap_tanh(t[t < 0.98], 1.0, 1.0, b=1.66) / dwave_gap_ratio(t[t < 0.98]) - 1
    assert np.max(np.abs(reld)) < 0.01


def test_alpha_model_weak_coupling_reduces_to_tanh_like_bcs():
    # Δ0 = 1.764 k_BTc and ΔC/C = 1.43 give the BCS curve to within the tanh accuracy
    tc = 10.0
    d0 = BCS_DELTA0_OVER_KTC * K_B_MEV_PER_K * tc
    T = np.linspace(0.5, 9.99, 50)
    np.testing.assert_allclose(gap_alpha_model(T, d0, tc, 1.426), gap_bcs(T, d0, tc),
                               atol=0.03 * d0)
    assert gap_alpha_model(12.0, d0, tc) == 0.0


@pytest.mark.parametrize("bad", [np.nan, -0.1])
def test_invalid_reduced_temperature(bad):
    with pytest.raises(ValueError, match="t must be"):
        bcs_gap_ratio([0.5, bad])


def test_invalid_parameters_named():
    with pytest.raises(ValueError, match="tc"):
        gap_bcs([1.0], 1.0, -3.0)
    with pytest.raises(ValueError, match="form"):
        fit_gap_temperature([1, 2, 3], [1, 1, 1], form="cubic")
    with pytest.raises(ValueError, match="same length"):
        fit_gap_temperature([1, 2, 3], [1, 1])
    with pytest.raises(ValueError, match="delta_meV"):
        fit_gap_temperature([1, 2, 3], [0, 0, 0])
    with pytest.raises(ValueError, match="delta_meV"):
        fit_gap_temperature([1, 2, 3], [1, np.nan, 1])


@pytest.mark.parametrize("form,truth_fn", [("bcs", gap_bcs), ("dwave", gap_dwave),
                                           ("tanh", gap_tanh)])
def test_fit_recovers_truth_within_errors(form, truth_fn):
    rng = np.random.default_rng(7)
    tc, d0, sigma = 72.0, 23.0, 0.15
    T = np.linspace(3, 70, 25)
    y = truth_fn(T, d0, tc) + rng.normal(0, sigma, T.size)
    fit = fit_gap_temperature(T, y, np.full(T.size, sigma), form=form)
    assert abs(fit.tc_K - tc) < 3 * fit.tc_err_K
    assert abs(fit.delta0_meV - d0) < 3 * fit.delta0_err_meV
    ratio = 2 * d0 / (K_B_MEV_PER_K * tc)
    assert abs(fit.ratio_2delta_kTc - ratio) < 3 * fit.ratio_err
    assert 0.4 < fit.chi2_red < 2.0
    assert fit.tc_err_K < 1.0
    np.testing.assert_allclose(fit.curve(T), truth_fn(T, d0, tc), atol=4 * sigma)


def test_fit_errors_scale_with_scatter_when_no_sigma_given():
    rng = np.random.default_rng(3)
    T = np.linspace(2, 9.5, 30)
    y = gap_bcs(T, 1.5, 9.2) + rng.normal(0, 0.01, T.size)
    fit = fit_gap_temperature(T, y, form="bcs")
    assert not fit.absolute_sigma
    assert abs(fit.tc_K - 9.2) < 3 * fit.tc_err_K
    assert fit.chi2_red == pytest.approx(0.01 ** 2, rel=0.6)


def test_fit_alpha_model_recovers_strong_coupling():
    rng = np.random.default_rng(11)
    T = np.linspace(3, 71, 30)
    y = gap_alpha_model(T, 23.0, 72.0, 2.5) + rng.normal(0, 0.1, T.size)
    fit = fit_gap_temperature(T, y, 0.1, form="alpha")
    assert abs(fit.extra["dc_over_c"] - 2.5) < 3 * fit.extra_err["dc_over_c"]
    assert abs(fit.tc_K - 72.0) < 3 * fit.tc_err_K


def test_seed_table_fixed_tc_ratio_and_serialisation():
    # Extended Data Table 3, Δ1(T) of Cell 2; Tc fixed at the transport value 72 K.
    T = [3, 5, 10, 14, 20, 26, 30, 35, 40]
    d1 = [23, 22.9, 23, 22.8, 22.9, 22.2, 22.1, 21.5, 20.5]
    fit = fit_gap_temperature(T, d1, form="bcs", tc_K=72.0)
    assert fit.tc_err_K == 0.0
    assert fit.ratio_2delta_kTc == pytest.approx(2 * fit.delta0_meV / (K_B_MEV_PER_K * 72.0))
    # the paper's 2·23/(k_B·72) is 7.41, not the printed 7.61
    assert 2 * 23.0 / (K_B_MEV_PER_K * 72.0) == pytest.approx(7.41, abs=0.01)
    d = fit.to_dict()
    assert d["form"] == "bcs" and d["tc_K"] == 72.0 and len(d["covariance"]) == 1


def test_shared_tc_fit_of_two_gaps():
    rng = np.random.default_rng(21)
    T = np.linspace(3, 70, 20)
    sigma = 0.1
    d1 = gap_bcs(T, 23.0, 72.0) + rng.normal(0, sigma, T.size)
    d2 = gap_alpha_model(T, 6.0, 72.0, 0.6) + rng.normal(0, sigma, T.size)
    fits = fit_gaps_shared_tc(T, [d1, d2], [np.full(T.size, sigma)] * 2, forms=("bcs", "alpha"))
    assert len(fits) == 2
    assert fits[0].tc_K == fits[1].tc_K
    assert abs(fits[0].tc_K - 72.0) < 3 * fits[0].tc_err_K
    assert abs(fits[0].delta0_meV - 23.0) < 3 * fits[0].delta0_err_meV
    assert abs(fits[1].delta0_meV - 6.0) < 3 * fits[1].delta0_err_meV
    assert abs(fits[1].extra["dc_over_c"] - 0.6) < 3 * fits[1].extra_err["dc_over_c"]
    # sharing Tc constrains it better than the small gap alone
    alone = fit_gap_temperature(T, d2, sigma, form="alpha")
    assert fits[1].tc_err_K < alone.tc_err_K
    with pytest.raises(ValueError, match="forms"):
        fit_gaps_shared_tc(T, [d1, d2], forms=("bcs",))
