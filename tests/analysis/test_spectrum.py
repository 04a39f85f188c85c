"""Spectrum preparation: offset, series resistance, normalisation, symmetrisation."""

from __future__ import annotations

import numpy as np
import pytest

from daqapp.analysis.btk import Gap, conductance, current
from daqapp.analysis.spectrum import (
    correct_series_resistance,
    offset_from_symmetry,
    prepare_spectrum,
    symmetrize,
)

GAPS = [Gap(23.0, 6.6, 0.58, weight=0.5), Gap(6.0, 4.0, 0.4, weight=0.5)]


def test_offset_found_from_symmetry():
    v = np.linspace(-90, 90, 901)
    g = conductance(v - 0.7, 3.0, GAPS)
    assert offset_from_symmetry(v, g) == pytest.approx(0.7, abs=0.01)
    p = prepare_spectrum(v, g, v0="symmetry")
    assert "from symmetry" in p.steps[0]


def test_series_resistance_correction_recovers_junction_curve():
    rn, rs = 100.0, 30.0  # ohm
    vj = np.linspace(-80, 80, 1601)
    gj = conductance(vj, 3.0, GAPS) / rn  # S
    ij = current(vj, 3.0, GAPS) / rn  # mA
    v_meas = vj + ij * rs
    g_meas = gj / (1 + rs * gj)
    vc, gc = correct_series_resistance(v_meas, g_meas, rs)
    np.testing.assert_allclose(vc, vj, atol=2e-3)
    np.testing.assert_allclose(gc, gj, rtol=1e-12)
    with pytest.raises(ValueError, match="r_series_ohm"):
        correct_series_resistance(v_meas, g_meas, 1e6)


def test_polynomial_normalisation_removes_background():
    v = np.linspace(-150, 150, 1501)
    g = conductance(v, 3.0, GAPS)
    bg = 2e-3 * (1 + 1e-3 * v + 4e-6 * v**2)
    p = prepare_spectrum(v, g * bg, normalize="polynomial",
                         windows=[(-150, -110), (110, 150)], degree=2)
    # the background's slope and curvature go; what stays is the BTK tail G − 1 ≈ 0.4 % inside
    # the windows (physics.md §4.4), which polynomial normalisation cannot know about
    np.testing.assert_allclose(p.conductance, g, atol=1.5e-2)
    raw = g * bg
    assert np.ptp(p.conductance - g) < 0.2 * np.ptp(raw / raw[750] - g)
    assert "degree-2 polynomial" in p.steps[0]


def test_normal_state_division_and_no_silent_symmetrisation():
    v = np.linspace(-50, 50, 201)
    g = conductance(v, 3.0, GAPS)
    gn = 1 + 1e-3 * v
    p = prepare_spectrum(v, g * gn, normalize="normal-state", normal_state=(v, gn))
    np.testing.assert_allclose(p.conductance, g, atol=1e-12)
    assert not any("symmetr" in s for s in p.steps)
    u, gs = symmetrize(v, g * gn)
    np.testing.assert_allclose(gs, g, atol=1e-12)
    assert len(u) == len(v)
