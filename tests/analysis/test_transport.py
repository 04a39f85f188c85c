"""R–T analysis: Tc criteria, dR/dT on ramps, sweep splitting, Hc2 points from R–T."""

import numpy as np
import pytest

from daqapp.analysis.hc2 import temperature_at_field, whh_hc2
from daqapp.analysis.transport import (
    critical_temperatures,
    critical_temperatures_by_direction,
    dR_dT,
    hc2_from_rt,
    smooth_resistance,
    split_sweeps,
)

TC, W = 72.0, 3.0


def _rt(T, tc=TC, w=W, rn0=10.0, slope=0.05):
    """R_N(T) = rn0 + slope·T times a tanh step: criteria are known in closed form."""
    return (rn0 + slope * T) * 0.5 * (1 + np.tanh((T - tc) / w))


def _crit(fraction, tc=TC, w=W):
    return tc + w * np.arctanh(2 * fraction - 1)


def test_tc_criteria_on_noisy_non_uniform_ramp():
    rng = np.random.default_rng(0)
    T = np.sort(rng.uniform(2, 150, 800))
    R = _rt(T) + rng.normal(0, 0.02, T.size)
    res = critical_temperatures(T, R)
    assert res.onset_K == pytest.approx(_crit(0.9), abs=0.3)
    assert res.midpoint_K == pytest.approx(_crit(0.5), abs=0.3)
    assert res.zero_K == pytest.approx(_crit(0.01), abs=0.5)
    assert res.width_10_90_K == pytest.approx(_crit(0.9) - _crit(0.1), abs=0.5)
    assert res.dRdT_peak_K == pytest.approx(TC, abs=1.0)
    np.testing.assert_allclose(res.normal_state_coeffs, [0.05, 10.0], rtol=0.02)
    assert res.normal_window_K[0] > _crit(0.99)
    assert res.to_dict()["criteria"]["onset_fraction"] == 0.9


def test_configurable_criteria_and_absolute_zero_threshold():
    T = np.linspace(2, 150, 1500)
    R = _rt(T)
    res = critical_temperatures(T, R, onset_fraction=0.99, midpoint_fraction=0.3,
                                zero_threshold=1e-3, width_K=0)
    assert res.onset_K == pytest.approx(_crit(0.99), abs=0.05)
    assert res.midpoint_K == pytest.approx(_crit(0.3), abs=0.05)
    # R = 1e-3 Ω where (10 + 0.05T)·(1 + tanh)/2 = 1e-3
    zero_T = res.zero_K
    assert _rt(np.array([zero_T]))[0] == pytest.approx(1e-3, rel=0.05)


def test_no_zero_resistance_is_reported_as_none():
    T = np.linspace(2, 150, 600)
    R = _rt(T) + 0.5  # a residual resistance: never reaches zero
    res = critical_temperatures(T, R)
    assert res.zero_K is None
    assert res.midpoint_K > 60


def test_broad_transition_like_seed_cell2():
    # onset ~72 K, zero only below ~6 K: a very broad, two-step-like transition
    T = np.linspace(2, 300, 3000)
    R = (5 + 0.02 * T) * (0.6 * 0.5 * (1 + np.tanh((T - 62) / 5))
                          + 0.4 * 0.5 * (1 + np.tanh((T - 25) / 8)))
    res = critical_temperatures(T, R)
    assert 60 < res.onset_K < 75
    assert res.zero_K is not None and res.zero_K < 15


def test_dR_dT_non_uniform_and_mixed_sweeps():
    rng = np.random.default_rng(2)
    up = np.sort(rng.uniform(10, 50, 400))
    down = np.sort(rng.uniform(10, 50, 400))[::-1]
    T = np.concatenate([up, down])
    R = 0.01 * T ** 2 + rng.normal(0, 1e-3, T.size)
    Ts, d = dR_dT(T, R, width_K=2.0)
    assert np.all(np.diff(Ts) >= 0)
    inner = (Ts > 12) & (Ts < 48)
    np.testing.assert_allclose(d[inner], 0.02 * Ts[inner], atol=0.01)
    Ts2, Rs = smooth_resistance(T, R, width_K=2.0)
    np.testing.assert_allclose(Rs[inner], 0.01 * Ts2[inner] ** 2, atol=5e-3)


def test_split_sweeps_up_down_up_with_noise():
    rng = np.random.default_rng(3)
    ramp = np.linspace(2, 150, 400)
    T = np.concatenate([ramp, ramp[::-1], ramp]) + rng.normal(0, 0.01, 1200)
    sweeps = split_sweeps(T)
    assert len(sweeps) == 3
    assert sum(s.size for s in sweeps) == T.size
    assert T[sweeps[0][-1]] > 149 and T[sweeps[1][-1]] < 3
    # a noisy monotonic ramp stays one sweep
    assert len(split_sweeps(ramp + rng.normal(0, 0.02, ramp.size))) == 1


def test_thermal_lag_shows_as_direction_difference():
    ramp = np.linspace(40, 110, 700)
    lag = 0.5  # the thermometer lags: on warming it reads low, on cooling high
    T_read = np.concatenate([ramp - lag, ramp[::-1] + lag])
    T_true = np.concatenate([ramp, ramp[::-1]])
    R = _rt(T_true)
    res = critical_temperatures_by_direction(T_read, R)
    assert set(res) == {"up", "down"}
    diff = res["down"].midpoint_K - res["up"].midpoint_K
    assert diff == pytest.approx(2 * lag, abs=0.1)


def test_hc2_from_rt_recovers_hc2_curve():
    def hc2(T):
        return whh_hc2(T, TC, 2.0)
    T = np.linspace(2, 150, 1500)
    fields = [0.0, 20.0, 60.0, 90.0, 200.0]  # 200 T is above Hc2(0) = 99.7 T
    curves = []
    for B in fields:
        tcb = float(temperature_at_field(B, hc2, TC))
        curves.append((B, T, _rt(T, tc=max(tcb, 1e-3), w=1.0)))
    pts = hc2_from_rt(curves, criterion=0.5)
    assert pts.skipped_fields_T == (200.0,)
    np.testing.assert_allclose(pts.field_T, [0.0, 20.0, 60.0, 90.0])
    np.testing.assert_allclose(hc2(pts.temperature_K), pts.field_T, atol=0.3)
    assert pts.to_dict()["criterion"] == 0.5
    T_pts, H_pts = pts
    np.testing.assert_array_equal(H_pts, pts.field_T)


@pytest.mark.parametrize("kwargs,match", [
    ({"onset_fraction": 1.2}, "onset_fraction"),
    ({"midpoint_fraction": 0.95}, "fractions"),
    ({"normal_window_K": (100, 90)}, "normal_window_K"),
    ({"width_K": -1}, "width_K"),
])
def test_invalid_criteria(kwargs, match):
    T = np.linspace(2, 150, 300)
    with pytest.raises(ValueError, match=match):
        critical_temperatures(T, _rt(T), **kwargs)


def test_invalid_data():
    with pytest.raises(ValueError, match="same length"):
        critical_temperatures([1, 2, 3, 4, 5], [1, 2, 3])
    with pytest.raises(ValueError, match="finite"):
        critical_temperatures([1, 2, 3, 4, np.nan], [1, 2, 3, 4, 5])
    T = np.linspace(2, 150, 300)
    with pytest.raises(ValueError, match="no resistive transition"):
        critical_temperatures(T, 10 + 0.05 * T)
