"""Lock-in modulation broadening against analytic limits and a brute-force first harmonic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import cumulative_simpson

from daqapp.analysis.btk import Gap, conductance
from daqapp.analysis.modulation import (
    broaden,
    modulation_kernel,
    modulation_nodes,
    nodes_for_smoothness,
)

CELL2 = [Gap(23.0, 6.6, 0.58, weight=0.5), Gap(6.0, 4.0, 0.4, weight=0.5)]
NB = [Gap(1.5, 0.3, 0.43)]


def first_harmonic(bias, g_func, v_rms, grid_pad=2.0, n_theta=256):
    """X₁/a of I(V + a cos θ), I = ∫G by Simpson on a fine grid, θ by the periodic trapezoid."""
    a = math.sqrt(2.0) * v_rms
    fine = np.linspace(bias.min() - a - grid_pad, bias.max() + a + grid_pad, 40001)
    current = cumulative_simpson(g_func(fine), x=fine, initial=0.0)
    theta = np.linspace(0.0, 2 * math.pi, n_theta, endpoint=False)
    i_t = np.interp(bias[:, None] + a * np.cos(theta)[None, :], fine, current)
    return (i_t * np.cos(theta)).mean(axis=1) * 2.0 / a


def test_kernel_is_a_unit_semicircle_of_variance_vrms2_over_2():
    v_rms = 1.7
    a = math.sqrt(2) * v_rms
    u = np.linspace(-a, a, 200001)
    k = modulation_kernel(u, v_rms)
    assert np.trapezoid(k, u) == pytest.approx(1.0, abs=1e-5)
    assert np.trapezoid(k * u * u, u) == pytest.approx(v_rms ** 2 / 2, rel=1e-4)
    assert modulation_kernel(np.array([a * 1.01, -a * 1.5]), v_rms).tolist() == [0.0, 0.0]
    offs, w = modulation_nodes(v_rms, 12)
    assert w.sum() == pytest.approx(1.0, abs=1e-14)
    assert np.all(np.abs(offs) < a)


def test_parabola_is_exact_g_plus_b_a2_over_4():
    # G = c + bV²: ⟨(V + u)²⟩ = V² + a²/4 under the semicircle, so G_meas = G + b·a²/4
    bias = np.array([-7.0, -1.0, 0.0, 0.3, 4.0])
    c, b, v_rms = 1.0, 0.03, 2.0
    a = math.sqrt(2) * v_rms
    out = broaden(bias, lambda v: c + b * v * v, v_rms, n_nodes=4)
    np.testing.assert_allclose(out, c + b * bias ** 2 + b * a * a / 4, atol=1e-14)
    # the sampled path (cubic spline, exact for a parabola inside the data) agrees
    grid = np.linspace(-20, 20, 81)
    sampled = broaden(grid, c + b * grid ** 2, v_rms)
    inner = np.abs(grid) < 20 - a
    np.testing.assert_allclose(sampled[inner], (c + b * grid ** 2 + b * a * a / 4)[inner],
                               atol=1e-10)


def test_step_gives_the_kernel_cdf():
    v_rms = 1.0
    a = math.sqrt(2)
    bias = np.linspace(-1.3, 1.3, 7)
    out = broaden(bias, lambda v: (v > 0).astype(float), v_rms, n_nodes=4000)
    x = bias / a
    cdf = 0.5 + (x * np.sqrt(1 - x * x) + np.arcsin(x)) / math.pi
    np.testing.assert_allclose(out, cdf, atol=2e-3)


def test_zero_modulation_returns_the_input():
    bias = np.linspace(-60, 60, 121)
    g = conductance(bias, 3.0, CELL2)
    np.testing.assert_array_equal(broaden(bias, g, 0.0), g)
    np.testing.assert_array_equal(conductance(bias, 3.0, CELL2, modulation_mV=0.0), g)
    # and a tiny modulation is a tiny change (continuity, not a different code path's offset)
    small = conductance(bias, 3.0, CELL2, modulation_mV=1e-3)
    assert np.max(np.abs(small - g)) < 1e-6


@pytest.mark.parametrize("gaps,temp,v_rms,bias", [
    (CELL2, 3.0, 2.0, np.linspace(-100, 100, 401)),
    (NB, 1.5, 0.3, np.linspace(-6, 6, 241)),
    (NB, 4.2, 0.5, np.sort(np.concatenate([np.linspace(-6, 6, 97), [0.013, 1.777]]))),
])
def test_btk_broadening_matches_brute_force_first_harmonic(gaps, temp, v_rms, bias):
    measured = conductance(bias, temp, gaps, modulation_mV=v_rms)
    brute = first_harmonic(bias, lambda v: conductance(v, temp, gaps), v_rms)
    np.testing.assert_allclose(measured, brute, atol=2e-6)
    general = broaden(bias, lambda v: conductance(v, temp, gaps), v_rms, n_nodes=200)
    np.testing.assert_allclose(measured, general, atol=1e-6)
    # it is a real effect: larger than lock-in noise
    assert np.max(np.abs(measured - conductance(bias, temp, gaps))) > 3e-3


def test_zero_temperature_modulation_uses_the_semicircle_directly():
    bias = np.linspace(-5, 5, 41)
    gaps = [Gap(1.5, 0.4, 0.5)]
    out = conductance(bias, 0.0, gaps, modulation_mV=0.5)
    brute = first_harmonic(bias, lambda v: conductance(v, 0.0, gaps), 0.5, n_theta=1024)
    np.testing.assert_allclose(out, brute, atol=1e-4)


def test_sampled_nonuniform_grid_matches_the_model_inside_the_edges():
    rng = np.random.default_rng(3)
    bias = np.sort(rng.uniform(-60, 60, 2000))
    v_rms = 2.0
    g = conductance(bias, 3.0, CELL2)
    out = broaden(bias, g, v_rms)
    exact = conductance(bias, 3.0, CELL2, modulation_mV=v_rms)
    inner = np.abs(bias) < 60 - 2 * v_rms
    np.testing.assert_allclose(out[inner], exact[inner], atol=2e-4)


def test_bad_modulation_is_rejected_with_the_range():
    with pytest.raises(ValueError, match="modulation_mV .* allowed range 0 to"):
        broaden(np.zeros(3), lambda v: v, -1.0)
    with pytest.raises(ValueError, match="modulation_mV"):
        conductance(np.zeros(3), 3.0, NB, modulation_mV=float("nan"))
    assert nodes_for_smoothness(2.0, 0.8) >= 8
