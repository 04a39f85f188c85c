"""BTK/TK forward model: every limiting case and regression anchor of physics.md §2.8."""

from __future__ import annotations

import math

import numpy as np
import pytest

from daqapp.analysis import btk
from daqapp.analysis.btk import Gap, conductance, current, dynes_dos


def g_at(v, t, gaps, dim=2):
    return conductance(np.atleast_1d(np.asarray(v, dtype=float)), t, gaps, dim)


# --------------------------------------------------------------------------- analytic limits

def btk1982(e: np.ndarray, delta: float, z: float) -> np.ndarray:
    """BTK 1982 A/B coefficients, T = 0, Γ = 0, written independently of the TK code."""
    e = np.abs(np.asarray(e, dtype=float))
    out = np.empty_like(e)
    inside = e < delta
    a_in = delta**2 / (e[inside] ** 2 + (delta**2 - e[inside] ** 2) * (1 + 2 * z**2) ** 2)
    out[inside] = (1 + z**2) * (1 + a_in - (1 - a_in))
    eo = e[~inside]
    u2 = 0.5 * (1 + np.sqrt((eo**2 - delta**2) / eo**2))
    v2 = 1 - u2
    gam = u2 + z**2 * (u2 - v2)
    a = u2 * v2 / gam**2
    b = (u2 - v2) ** 2 * z**2 * (1 + z**2) / gam**2
    out[~inside] = (1 + z**2) * (1 + a - b)
    return out


def plecenik(e: np.ndarray, delta: float, gamma: float, z: float) -> np.ndarray:
    """Plecenik/Dynes modulus form of BTK (physics.md §2.1)."""
    zc = np.abs(np.asarray(e, dtype=float)) + 1j * gamma
    root = np.sqrt((zc**2 - delta**2) / zc**2)
    u2 = 0.5 * (1 + root)
    v2 = 0.5 * (1 - root)
    gam = u2 + z**2 * (u2 - v2)
    a = np.abs(u2) * np.abs(v2) / np.abs(gam) ** 2
    b = np.abs((u2 - v2) * (z**2 + 1j * z)) ** 2 / np.abs(gam) ** 2
    return (1 + z**2) * (1 + a - b)


@pytest.mark.parametrize("z", [0.0, 0.3, 0.58, 1.0, 3.0])
def test_tk_normal_incidence_equals_btk1982(z):
    e = np.concatenate([np.linspace(-9.9, 9.9, 397), np.linspace(10.05, 40, 200)])
    got = conductance(e, 0.0, [Gap(10.0, 0.0, z)], dimension=1)
    np.testing.assert_allclose(got, btk1982(e, 10.0, z), atol=1e-12)


@pytest.mark.parametrize("gamma,z", [(0.5, 0.2), (2.0, 0.58), (6.6, 1.5)])
def test_tk_with_gamma_equals_plecenik(gamma, z):
    e = np.linspace(-60, 60, 481)
    got = conductance(e, 0.0, [Gap(10.0, gamma, z)], dimension=1)
    np.testing.assert_allclose(got, plecenik(e, 10.0, gamma, z), atol=1e-12)


@pytest.mark.parametrize("z,expected", [(0, 2.0), (0.3, 1.565642), (0.58, 0.955165),
                                        (1.0, 0.444444), (3.0, 0.055402)])
def test_zero_bias_1d(z, expected):
    assert g_at(0.0, 0.0, [Gap(5.0, 0.0, z)], 1)[0] == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(2 * (1 + z * z) / (1 + 2 * z * z) ** 2, abs=1e-6)


@pytest.mark.parametrize("z", [0.5, 1.0])
def test_peak_tends_to_2_1_plus_z2_as_gamma_vanishes(z):
    g = g_at([5.0 - 1e-7], 0.0, [Gap(5.0, 1e-9, z)], 1)[0]
    assert g == pytest.approx(2 * (1 + z * z), rel=1e-3)


@pytest.mark.parametrize("dim,sym", [(1, "s"), (2, "s"), (3, "s"), (1, "d")])
def test_z0_gives_2_inside_gap(dim, sym):
    # d-wave in 2D/3D has directions with |Δ(θ)| < E, so the plateau is an s-wave/1D property
    e = np.linspace(-4.5, 4.5, 91)
    g = conductance(e, 0.0, [Gap(5.0, 0.0, 0.0, sym)], dim)
    np.testing.assert_allclose(g, 2.0, atol=1e-12)


def test_excess_current_sum_rule_z0():
    delta = 2.0
    e = np.linspace(0, 400 * delta, 400_001)
    g = conductance(e, 0.0, [Gap(delta, 0.0, 0.0)], 1)
    integral = np.trapezoid(g - 1.0, e)
    # tail beyond the window: G − 1 ≈ Δ²/(2E²)·… → ∫ ≈ Δ²/(4E_max) for Z = 0
    assert integral == pytest.approx(4 * delta / 3, rel=2e-3)


def test_large_z_tends_to_dynes_dos():
    e = np.linspace(-30, 30, 301)
    g = conductance(e, 0.0, [Gap(10.0, 0.5, 50.0)], 1)
    diff = np.max(np.abs(g - dynes_dos(e, 10.0, 0.5)))
    assert diff < 2e-3
    g100 = conductance(e, 0.0, [Gap(10.0, 0.5, 100.0)], 1)
    assert np.max(np.abs(g100 - dynes_dos(e, 10.0, 0.5))) < diff / 3  # ∝ 1/Z²


@pytest.mark.parametrize("z,expected", [(1.0, 5.3082), (3.0, 29.3856), (10.0, 302.40)])
def test_d_wave_zero_bias_peak_alpha_pi_4(z, expected):
    root = math.sqrt(1 + z * z)
    n_z = 2 - (z * z / root) * math.log((root + 1) / (root - 1))
    g0 = g_at(0.0, 0.0, [Gap(5.0, 0.0, z, "d", math.pi / 4)])[0]
    assert g0 == pytest.approx(4 / n_z, rel=1e-9)
    assert g0 == pytest.approx(expected, rel=1e-4)


def test_d_wave_alpha0_large_z_is_v_shaped():
    g = g_at([0.0, 1.0, 2.0], 0.0, [Gap(5.0, 0.0, 10.0, "d", 0.0)])
    assert g[0] == pytest.approx(0.0040, abs=5e-5)
    assert g[0] < g[1] < g[2]


@pytest.mark.parametrize("sym,alpha", [("s", 0.0), ("d", 0.3), ("d", math.pi / 4),
                                       ("s_aniso", 0.2)])
def test_particle_hole_symmetry(sym, alpha):
    v = np.linspace(-50, 50, 201)
    gap = Gap(12.0, 1.5, 0.7, sym, alpha, anisotropy=0.4 if sym == "s_aniso" else 0.0)
    for t in (0.0, 7.0):
        g = conductance(v, t, [gap])
        np.testing.assert_allclose(g, g[::-1], atol=1e-14)


def test_d_wave_alpha_symmetries():
    v = np.linspace(-30, 30, 121)
    base = conductance(v, 2.0, [Gap(10.0, 1.0, 1.0, "d", 0.3)])
    for a in (-0.3, math.pi / 2 - 0.3):
        np.testing.assert_allclose(conductance(v, 2.0, [Gap(10.0, 1.0, 1.0, "d", a)]), base,
                                   atol=1e-12)


def test_d_wave_zbcp_needs_the_gap_sign_phase():
    """sgn(Δ₊Δ₋) makes the zero-bias peak; a phase from g₊/g₋ would lose it (physics §4.3)."""
    g = g_at([0.0, 10.0], 0.0, [Gap(10.0, 0.3, 2.0, "d", math.pi / 4)])
    assert g[0] > 3.0 * g[1]


def test_thermal_smearing_conserves_excess_area():
    v = np.linspace(-150, 150, 6001)
    gaps = [Gap(10.0, 1.0, 0.5)]
    a0 = np.trapezoid(conductance(v, 0.0, gaps) - 1, v)
    a30 = np.trapezoid(conductance(v, 30.0, gaps) - 1, v)
    assert a30 == pytest.approx(a0, rel=2e-3)


def test_slow_tail_delta2_over_2e2():
    e = 40 * 5.0
    g = g_at(e, 0.0, [Gap(5.0, 0.0, 0.5)])[0]
    assert 1e-4 < g - 1.0 < 4e-4


# --------------------------------------------------------------------------- anchors (3 K)

NB = dict(delta=1.5, gamma=1.42, z=0.43)


@pytest.mark.parametrize("dim,g0,peak,vpeak", [(1, 1.0895, 1.0943, 1.105),
                                               (2, 1.0504, 1.0766, 1.725),
                                               (3, 1.0232, 1.0695, 2.00)])
def test_nb_anchor(dim, g0, peak, vpeak):
    v = np.linspace(0, 4, 4001)
    g = conductance(v, 3.0, [Gap(**NB)], dim)
    assert g[0] == pytest.approx(g0, abs=1e-4)
    assert g.max() == pytest.approx(peak, abs=1e-4)
    assert v[np.argmax(g)] == pytest.approx(vpeak, abs=0.006)


def test_paper_gap_anchors():
    g1 = g_at([0, 23, 60], 3.0, [Gap(23, 6.6, 0.58)])
    np.testing.assert_allclose(g1, [0.9075, 1.3130, 1.0522], atol=1e-4)
    g2 = g_at([0, 6, 60], 3.0, [Gap(6, 4, 0.4)])
    np.testing.assert_allclose(g2, [1.0807, 1.1365, 1.0030], atol=1e-4)


def test_zero_bias_by_dimension_z058():
    vals = [g_at(0.0, 0.0, [Gap(23, 0.0, 0.58)], d)[0] for d in (1, 2, 3)]
    np.testing.assert_allclose(vals, [0.955, 0.773, 0.659], atol=6e-4)


def test_two_gap_is_weighted_sum():
    v = np.linspace(-80, 80, 321)
    a, b = Gap(23, 6.6, 0.58, weight=0.3), Gap(6, 4, 0.4, "d", 0.2, weight=0.7)
    both = conductance(v, 3.0, [a, b])
    one = conductance(v, 3.0, [Gap(23, 6.6, 0.58)])
    two = conductance(v, 3.0, [Gap(6, 4, 0.4, "d", 0.2)])
    np.testing.assert_allclose(both, 0.3 * one + 0.7 * two, atol=1e-13)


# --------------------------------------------------------------------------- accuracy

def _converged(v, t, gaps, dim, monkeypatch):
    """Same equations with 4× finer energy step, wider kernel and many more angles."""
    step = btk._energy_step
    with monkeypatch.context() as m:
        m.setattr(btk, "_energy_step", lambda tt, gg: step(tt, gg) / 4)
        m.setattr(btk, "_KERNEL_HALF_WIDTH_KT", 24.0)
        m.setattr(btk, "_n_angles", lambda g: 2048)
        s_w = btk._s_wave_weights.__wrapped__
        m.setattr(btk, "_s_wave_weights", lambda n, z, d: s_w(512, z, d))
        btk._aniso_geometry.cache_clear()
        return conductance(v, t, gaps, dim)


@pytest.mark.parametrize("gap,t,dim", [
    (Gap(23, 6.6, 0.58), 3.0, 2), (Gap(1.5, 0.05, 2.0), 3.0, 2), (Gap(1.5, 0.3, 10.0), 0.5, 2),
    (Gap(10.0, 0.5, 0.01), 100.0, 2), (Gap(23, 1.0, 1.0, "d", 0.3), 3.0, 2),
    (Gap(6, 0.2, 2.0, "d", 0.7), 1.0, 2), (Gap(5, 0.5, 0.5, "d", 0.1), 0.0, 2),
    (Gap(5, 0.5, 3.0), 10.0, 3), (Gap(5, 0.3, 0.8), 2.0, 1)])
def test_within_1e4_of_converged(gap, t, dim, monkeypatch):
    v = np.linspace(-200, 200, 401) if t > 10 else np.linspace(-40, 40, 401)
    got = conductance(v, t, [gap], dim)
    ref = _converged(v, t, [gap], dim, monkeypatch)
    assert np.max(np.abs(got - ref)) < 1e-4


def test_few_bias_points_path_matches_grid_path():
    v = np.linspace(-40, 40, 801)
    gaps = [Gap(10.0, 1.0, 0.6)]
    full = conductance(v, 2.0, gaps)
    pick = conductance(v[::200], 2.0, gaps)  # 5 points: local quadrature around each bias
    np.testing.assert_allclose(pick, full[::200], atol=2e-6)


def test_scalar_and_shape_preserved():
    g = conductance(3.0, 3.0, [Gap(5, 1, 0.5)])
    assert np.shape(g) == ()
    m = conductance(np.zeros((2, 3)), 3.0, [Gap(5, 1, 0.5)])
    assert m.shape == (2, 3)


# --------------------------------------------------------------------------- current

def test_current_integrates_conductance():
    gaps = [Gap(23, 6.6, 0.58, weight=0.5), Gap(6, 4, 0.4, weight=0.5)]
    v = np.linspace(-100, 100, 2001)
    i = current(v, 3.0, gaps)
    np.testing.assert_allclose(i, -i[::-1], atol=1e-12)  # odd
    dv = np.gradient(i, v)
    np.testing.assert_allclose(dv[5:-5], conductance(v, 3.0, gaps)[5:-5], atol=2e-4)
    assert i[1000] == pytest.approx(0.0, abs=1e-12)


def test_current_far_above_gap_is_v_plus_excess_for_transparent_contact():
    delta = 2.0
    i = current([400.0], 0.0, [Gap(delta, 1e-3, 0.0)], dimension=1)[0]
    assert i - 400.0 == pytest.approx(4 * delta / 3, rel=1e-2)


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs,match", [
    (dict(delta=-1, gamma=1, z=0.5), "delta"), (dict(delta=1, gamma=-1, z=0.5), "gamma"),
    (dict(delta=1, gamma=1, z=-0.1), "z"), (dict(delta=math.nan, gamma=1, z=0.5), "delta"),
    (dict(delta=1, gamma=1, z=0.5, symmetry="p"), "symmetry"),
    (dict(delta=1, gamma=1, z=0.5, weight=1.5), "weight")])
def test_invalid_gap_names_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Gap(**kwargs)


def test_invalid_call_names_parameter():
    gap = Gap(5, 1, 0.5)
    with pytest.raises(ValueError, match="dimension"):
        conductance([0.0], 3.0, [gap], dimension=4)
    with pytest.raises(ValueError, match="temperature_K"):
        conductance([0.0], -1.0, [gap])
    with pytest.raises(ValueError, match="bias_mV"):
        conductance([np.nan], 3.0, [gap])
    with pytest.raises(ValueError, match="weights sum"):
        conductance([0.0], 3.0, [Gap(5, 1, 0.5, weight=0.5), Gap(2, 1, 0.5, weight=0.3)])


# --------------------------------------------------------------------------- memory

def test_wide_kernel_is_summed_in_blocks_with_the_same_result(monkeypatch):
    v = np.linspace(-40, 40, 201)
    gaps = [Gap(10.0, 0.5, 0.8, "d", 0.3)]
    whole = conductance(v, 20.0, gaps)
    monkeypatch.setattr(btk, "_KERNEL_BLOCK", 5_000)  # forces the blocked path
    btk._KERNEL_CACHE.clear()
    np.testing.assert_allclose(conductance(v, 20.0, gaps), whole, atol=1e-13)
    few = np.array([-7.0, 0.0, 3.0])  # local-quadrature path, blocked as well
    np.testing.assert_allclose(conductance(few, 20.0, gaps),
                               np.interp(few, v, whole), atol=2e-3)


def test_small_gamma_at_high_temperature_stays_under_100_MB():
    import tracemalloc

    v = np.linspace(-100, 100, 401)
    tracemalloc.start()
    try:
        g = conductance(v, 30.0, [Gap(20.0, 0.01, 0.5)])  # old code: ~250 MB of kernel
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100e6
    assert np.all(np.isfinite(g)) and g[200] == pytest.approx(conductance(0.0, 30.0,
                                                                          [Gap(20.0, 0.01, 0.5)]))


# --------------------------------------------------------------------------- grid floors

def test_one_square_root_is_the_retarded_branch_on_the_half_grid():
    e = np.linspace(0.0, 30.0, 3001)[:, None]
    for gamma in (0.0, 1e-3, 0.5, 5.0):
        for delta in (0.0, 1.0, 6.0, 23.0):
            z = e + 1j * gamma
            with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 at E = Γ = Δ = 0
                two = delta / (z + np.sqrt(z - delta) * np.sqrt(z + delta))
            got = btk._g(e, gamma, delta)
            ok = np.isfinite(two)
            np.testing.assert_allclose(got[ok], two[ok], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("gap,vmax", [(Gap(1.5, 0.0, 0.5), 10.0), (Gap(23.0, 0.0, 0.58), 60.0),
                                      (Gap(6.0, 0.0, 0.5, "d", 0.1), 20.0)])
def test_gamma_zero_is_finite_and_converged(gap, vmax, monkeypatch):
    """Γ = 0: the energy step stops at k_BT/64 and the angular count at Γ = k_BT/4 (the grid
    used to follow Γ down to zero: a division by zero, or seconds for Γ = 1e-4 meV)."""
    v = np.linspace(-vmax, vmax, 401)
    got = conductance(v, 3.0, [gap])
    assert np.all(np.isfinite(got))
    monkeypatch.setattr(btk, "_STEP_FLOOR_PER_KT", 16 * btk._STEP_FLOOR_PER_KT)
    monkeypatch.setattr(btk, "_ANGLE_FLOOR_PER_KT", 16 * btk._ANGLE_FLOOR_PER_KT)
    btk._aniso_geometry.cache_clear()
    assert np.max(np.abs(got - conductance(v, 3.0, [gap]))) < 1e-4
