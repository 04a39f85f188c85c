"""Contact-regime estimates: the seed's l and Sharvin radius, Wexler, regimes, heating."""

import numpy as np
import pytest

from daqapp.analysis.contact import (
    E_CHARGE,
    HBAR,
    M_E,
    contact_regime,
    contact_temperature,
    fermi_velocity,
    maxwell_resistance,
    mean_free_path,
    sharvin_radius,
    sharvin_resistance,
    wexler_radius,
    wexler_resistance,
)

RHO, N = 9e-6, 1.25e27
K_F = 0.5 * np.pi / 3.7e-10  # seed: k_F = 0.5π/a0, a0 = 3.7 Å


def test_seed_mean_free_path():
    l_mfp = mean_free_path(RHO, N, k_f=K_F)
    # l = ħk_F/(n e² ρ), independent of the mass
    assert l_mfp == pytest.approx(HBAR * K_F / (N * E_CHARGE ** 2 * RHO), rel=1e-12)
    assert l_mfp == pytest.approx(1.6e-9, abs=0.06e-9)  # the seed's "≈ 1.6 nm"
    assert mean_free_path(RHO, N, v_f=fermi_velocity(K_F)) == pytest.approx(l_mfp)


def test_free_electron_default_and_effective_mass():
    kf = (3 * np.pi ** 2 * N) ** (1 / 3)
    assert mean_free_path(RHO, N) == pytest.approx(mean_free_path(RHO, N, k_f=kf))
    # l = m v_F/(n e² ρ) with v_F = ħk_F/m: the mass cancels for given k_F
    assert mean_free_path(RHO, N, k_f=K_F, effective_mass=3.0) == pytest.approx(
        mean_free_path(RHO, N, k_f=K_F))
    assert fermi_velocity(K_F, 2.0) == pytest.approx(HBAR * K_F / (2 * M_E))


def test_sharvin_round_trip_and_seed_radius():
    l_mfp = mean_free_path(RHO, N, k_f=K_F)
    R = sharvin_resistance(7.33e-9, RHO, l_mfp)
    assert sharvin_radius(R, RHO, l_mfp) == pytest.approx(7.33e-9, rel=1e-12)
    # the seed's a ≈ 7.33 nm corresponds to R ≈ 110 Ω (114 Ω with l rounded to 1.6 nm)
    assert 105 < R < 115
    assert sharvin_resistance(7.33e-9, RHO, 1.6e-9) == pytest.approx(113.7, abs=0.5)


def test_wexler_limits_and_inverse():
    l_mfp = 1.55e-9
    # a ≪ l: Sharvin dominates; a ≫ l: Maxwell dominates
    small, large = 1e-11, 1e-6
    assert wexler_resistance(small, RHO, l_mfp) == pytest.approx(
        sharvin_resistance(small, RHO, l_mfp), rel=0.01)
    assert wexler_resistance(large, RHO, l_mfp) == pytest.approx(
        maxwell_resistance(large, RHO), rel=0.01)
    for a in (2e-9, 7.33e-9, 4e-8):
        R = wexler_resistance(a, RHO, l_mfp)
        assert wexler_radius(R, RHO, l_mfp) == pytest.approx(a, rel=1e-10)
    # with the Maxwell term the seed's ~110 Ω contact is much larger than 7.33 nm
    R_seed = sharvin_resistance(7.33e-9, RHO, l_mfp)
    assert wexler_radius(R_seed, RHO, l_mfp) > 4 * 7.33e-9


def test_regimes():
    l_mfp = 1.55e-9
    assert contact_regime(1e-9, l_mfp).regime == "ballistic"
    seed = contact_regime(7.33e-9, l_mfp)
    assert seed.regime == "intermediate" and seed.knudsen == pytest.approx(l_mfp / 7.33e-9)
    assert contact_regime(5e-8, l_mfp).regime == "diffusive"
    assert contact_regime(5e-8, l_mfp, inelastic_length_m=1e-7).regime == "thermal"
    assert contact_regime(5e-8, l_mfp, inelastic_length_m=1e-5).regime == "diffusive"


def test_heating_at_10_mV():
    # physics.md §4.8: at 10 mV the contact is already ≈ 32 K
    assert contact_temperature(3.0, 10e-3) == pytest.approx(32.1, abs=0.2)
    assert contact_temperature(3.0, 0.0) == pytest.approx(3.0)


@pytest.mark.parametrize("call,match", [
    (lambda: mean_free_path(-1.0, N), "rho_ohm_m"),
    (lambda: mean_free_path(RHO, 0.0), "n_m3"),
    (lambda: mean_free_path(RHO, N, v_f=1e5, k_f=1e9), "v_f or k_f"),
    (lambda: sharvin_radius(0.0, RHO, 1e-9), "R_ohm"),
    (lambda: wexler_radius(10.0, RHO, float("nan")), "l_m"),
    (lambda: contact_regime(1e-9, 1e-9, inelastic_length_m=-1.0), "inelastic_length_m"),
])
def test_invalid_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()
