"""The fit's semi-analytic Jacobian (daqapp.analysis.fit.model_jacobian) against finite
differences of the whole model, and fits with it against fits with plain differences."""

from __future__ import annotations

import numpy as np
import pytest

from daqapp.analysis import fit as F
from daqapp.analysis.btk import Gap, conductance
from daqapp.analysis.fit import BTKModel, fit_spectrum, model_jacobian

BIAS = np.linspace(-30.0, 30.0, 81)
# Δ/Γ ≤ 4 keeps the d-wave node count fixed under the reference's own differences
VALUES = {"delta1": 8.0, "gamma1": 2.5, "z1": 0.6, "alpha1": 0.3, "delta2": 3.0,
          "gamma2": 1.0, "z2": 0.35, "alpha2": 0.3, "weight1": 0.6}


def _model(name: str, temperature: float, modulation: float) -> tuple[BTKModel, dict]:
    m = BTKModel(name, temperature, modulation_mV=modulation)
    values = m.values()
    values.update({k: v for k, v in VALUES.items() if k in values})
    return m, m._resolve_shared(values)


def _reference(m: BTKModel, values: dict, names: list[str]) -> np.ndarray:
    """Central differences of BTKModel.eval: every column re-evaluates every channel."""
    cols = []
    for k in names:
        h = 1e-5 * max(abs(values[k]), 1e-2)
        up, dn = dict(values), dict(values)
        for q, p in m.params.items():  # a shared parameter moves with its source
            if q == k or p.shared_with == k:
                up[q], dn[q] = values[q] + h, values[q] - h
        cols.append((m.eval(BIAS, up) - m.eval(BIAS, dn)) / (2 * h))
    return np.array(cols).T


@pytest.mark.parametrize("name", ["s", "d", "s+s", "s+d", "d+s", "d+d"])
@pytest.mark.parametrize("temperature,modulation", [(0.0, 0.0), (3.0, 0.0), (0.0, 1.5),
                                                    (3.0, 1.5)])
def test_jacobian_matches_finite_differences(name, temperature, modulation):
    m, values = _model(name, temperature, modulation)
    names = m.free_names()
    ref = _reference(m, values, names)
    parts = m.parts(BIAS, values, z_derivatives=True)
    np.testing.assert_allclose(parts.model, m.eval(BIAS, values), rtol=0, atol=1e-14)
    scale = np.max(np.abs(ref), axis=0)
    assert np.all(scale > 1e-4)  # every column is a real dependence, not a zero test
    for central, tol in ((True, 1e-6), (False, 2e-4)):
        jac = model_jacobian(m, parts, names, central=central)
        err = np.max(np.abs(jac - ref), axis=0) / scale
        assert np.all(err < tol), dict(zip(names, err, strict=True))


def test_jacobian_of_background_normal_channel_offset_and_temperature():
    m, values = _model("s+d", 3.0, 1.0)
    m.free_background()
    for k in ("p_normal", "v0", "temperature"):
        m[k].vary = True
    values.update(p_normal=0.15, scale=1.05, slope=0.002, curvature=-3e-4, v0=0.4)
    names = m.free_names()
    ref = _reference(m, values, names)
    jac = model_jacobian(m, m.parts(BIAS, values, z_derivatives=True), names, central=True)
    err = np.max(np.abs(jac - ref), axis=0) / np.max(np.abs(ref), axis=0)
    assert np.all(err < 1e-5), dict(zip(names, err, strict=True))


def test_three_channel_weights():
    m = BTKModel("s+s+s", 3.0)
    values = m.values()
    values.update(delta1=10.0, gamma1=2.0, delta2=5.0, gamma2=1.5, delta3=2.0, gamma3=0.8,
                  weight1=0.4, weight2=0.3)
    names = [k for k in m.free_names() if k.startswith("weight")]
    ref = _reference(m, values, names)
    jac = model_jacobian(m, m.parts(BIAS, values), names)
    np.testing.assert_allclose(jac, ref, atol=1e-8 * np.max(np.abs(ref)))


def test_internal_coordinates_chain_rule():
    """Γᵢ = ρᵢΔᵢ and Δ2 = qΔ1 as fit_spectrum sets them up for d+s."""
    m, values = _model("d+s", 3.0, 0.0)
    for k, v in values.items():
        if k in m.params:
            m[k].value = v
    g = m.eval(BIAS, values)
    prob = F._Problem(m, BIAS, g + 0.01, 0.003, ["gamma1<=delta1", "gamma2<=delta2",
                                                   "delta2<=delta1"])
    x = prob.pack(values)
    jac = prob.jac(x)
    ref = []
    for i in range(x.size):
        h = 1e-6 * max(abs(x[i]), 1e-2)
        up, dn = x.copy(), x.copy()
        up[i] += h
        dn[i] -= h
        ref.append((prob.residual(up) - prob.residual(dn)) / (2 * h))
    ref = np.array(ref).T
    np.testing.assert_allclose(jac, ref, atol=2e-4 * np.max(np.abs(ref)))


def _plain_jacobian(monkeypatch) -> None:
    """Fits as before: scipy's 2-point differences of the residual."""
    def solve(self, x0, max_nfev, tol):
        return F.least_squares(self.residual, F._clip_into(x0, self.lo, self.hi),
                               bounds=(self.lo, self.hi), method="trf", x_scale="jac",
                               max_nfev=max_nfev, xtol=tol, ftol=tol, gtol=tol)
    monkeypatch.setattr(F._Problem, "solve", solve)


@pytest.mark.parametrize("model,truth", [
    ("s+s", [Gap(23.0, 6.6, 0.58, weight=0.5), Gap(6.0, 4.0, 0.4, weight=0.5)]),
    ("d+s", [Gap(20.0, 4.0, 0.5, "d", 0.2, weight=0.6), Gap(6.0, 2.0, 0.4, weight=0.4)])])
def test_same_minimum_as_with_finite_differences(model, truth, monkeypatch):
    v = np.linspace(-80, 80, 321)
    g = conductance(v, 3.0, truth) + np.random.default_rng(5).normal(0, 0.003, v.size)
    new = fit_spectrum(v, g, model, temperature_K=3.0, sigma=0.003)
    with monkeypatch.context() as mp:
        _plain_jacobian(mp)
        old = fit_spectrum(v, g, model, temperature_K=3.0, sigma=0.003)
    assert new.chi2 <= old.chi2 + 0.05
    assert new.chi2 == pytest.approx(old.chi2, abs=0.5)
    for k in new.varying:
        err = new.stderr[k] or old.stderr[k] or 1.0
        assert abs(new.values[k] - old.values[k]) < 0.2 * err, k
        if new.stderr[k] and old.stderr[k]:
            assert new.stderr[k] == pytest.approx(old.stderr[k], rel=0.02), k


def test_uncertainties_cover_the_truth():
    """Pulls (fit − truth)/σ over noise draws: about unit spread, none beyond 3.5."""
    truth = [Gap(10.0, 2.0, 0.5, weight=0.6), Gap(3.0, 1.0, 0.4, weight=0.4)]
    v = np.linspace(-40, 40, 241)
    pulls = []
    for k in range(8):
        g = conductance(v, 3.0, truth) + np.random.default_rng(70 + k).normal(0, 0.004, v.size)
        r = fit_spectrum(v, g, "s+s", temperature_K=3.0, sigma=0.004)
        for name, true in (("delta1", 10.0), ("delta2", 3.0), ("z1", 0.5), ("weight1", 0.6)):
            pulls.append((r.values[name] - true) / r.stderr[name])
    pulls = np.array(pulls)
    assert np.all(np.abs(pulls) < 3.5)
    assert 0.4 < np.sqrt(np.mean(pulls ** 2)) < 1.6
