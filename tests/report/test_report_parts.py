"""Report pieces: the spectrum analysis as the report shows it, summary file, figures."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from daqapp.analysis.btk import Gap, conductance
from daqapp.analysis.spectroscopy import (
    AnalysisOptions,
    RawSpectrum,
    SeriesFit,
    analyse,
    prepare,
)
from daqapp.report.analyse import spectrum_result
from daqapp.report.figures import write_all
from daqapp.report.results import CurveFit, IVCurve, ReportData, RTCurve, SpectrumResult, Value
from daqapp.report.summary import REQUIRED_SUMMARY_KEYS, summary_dict, write_summary

SEED_3K = [Gap(delta=23.0, gamma=6.6, z=0.58, weight=0.6), Gap(delta=6.0, gamma=4.0, z=0.4,
                                                              weight=0.4)]


def seed_spectrum(noise: float = 0.002, seed: int = 3):
    """The seed's Cell 2 spectrum at 3 K on a sloped quadratic normal-state background."""
    rng = np.random.default_rng(seed)
    v = np.linspace(-70, 70, 161)
    background = 2.8e-3 * (1 + 4e-4 * v + 1.5e-5 * v * v)
    g = conductance(v, 3.0, SEED_3K, dimension=2) * background
    return v, g * (1 + noise * rng.standard_normal(v.size)), background


def test_joint_background_recovers_seed_gaps_and_the_normal_state():
    v, g, background = seed_spectrum()
    a = analyse(RawSpectrum(v, g, temperature_K=3.0), AnalysisOptions(v0_mV=None))
    values, errors = a.result().values, a.result().stderr
    assert values["delta1"] == pytest.approx(23.0, rel=0.02)
    assert values["delta2"] == pytest.approx(6.0, rel=0.05)
    assert values["weight1"] == pytest.approx(0.6, abs=0.05)
    assert 0 < errors["delta1"] < 0.5
    # the fitted normal state is the one the spectrum was built on (to 1 %)
    assert np.max(np.abs(a.normal_state(v) / background - 1)) < 0.01
    assert 0.3 < a.result().chi2_red < 3.0
    result = spectrum_result(a, "seed")
    assert result.parameters["delta1_meV"].value == values["delta1"]
    assert np.max(np.abs(result.conductance_norm - g / background)) < 0.02


def test_a_warmer_spectrum_of_the_series_cannot_let_a_gap_grow():
    v, g, _ = seed_spectrum()
    series = SeriesFit(AnalysisOptions(v0_mV=None))
    colder = series.add(prepare(RawSpectrum(v, g, temperature_K=3.0)))
    hotter = [Gap(delta=20.0, gamma=7.0, z=0.4, weight=0.6), Gap(delta=5.0, gamma=4.2, z=0.3,
                                                                 weight=0.4)]
    g2 = conductance(v, 40.0, hotter, dimension=2) * 2.8e-3 * (1 + 4e-4 * v + 1.5e-5 * v * v)
    warm = series.add(prepare(RawSpectrum(v, g2, temperature_K=40.0)))
    values, cold = warm.result().values, colder.result().values
    assert values["delta1"] <= 1.05 * cold["delta1"] + 0.3
    assert values["delta1"] == pytest.approx(20.0, rel=0.04)
    assert values["weight1"] == cold["weight1"]  # the contact's: held along the series


def report_data() -> ReportData:
    v = np.linspace(-60, 60, 121)
    spectra = []
    for t, d1 in ((3.0, 23.0), (20.0, 22.9), (40.0, 20.5)):
        g = conductance(v, t, [Gap(delta=d1, gamma=6.6, z=0.58, weight=0.6),
                               Gap(delta=6.0, gamma=4.0, z=0.4, weight=0.4)])
        spectra.append(SpectrumResult(t, 0.0, v, g, g, g, {
            "delta1_meV": Value(d1, 0.1, "meV"), "delta2_meV": Value(6.0, 0.2, "meV"),
            "gamma1_meV": Value(6.6, 0.1, "meV"), "gamma2_meV": Value(4.0, 0.1, "meV"),
            "z1": Value(0.58, 0.01), "z2": Value(0.4, 0.01), "weight1": Value(0.6, 0.01)},
            chi2_red=1.0))
    t = np.linspace(2, 90, 200)
    rt = [RTCurve(b, t, 0.25 + 0.006 * t * (t > 70 - b)) for b in (0.0, 4.0, 8.0)]
    iv = [IVCurve(temp, np.linspace(-5, 5, 101), np.linspace(-1, 1, 101), Value(ic, 0.05, "mA"))
          for temp, ic in ((3.0, 2.0), (15.0, 1.7), (25.0, 1.0))]
    data = ReportData(title="test", spectra=spectra, rt_curves=rt, iv_curves=iv,
                      hc2_points=(np.array([70.0, 66.0, 62.0]), np.array([0.0, 4.0, 8.0])))
    grid = np.linspace(0, 72, 50)
    data.gap_fits["delta1"] = CurveFit("BCS fit", grid, 23 * np.sqrt(np.clip(1 - grid / 72, 0,
                                                                             1)),
                                       {"tc_K": Value(72, 1, "K"),
                                        "delta0_meV": Value(23, 0.1, "meV")})
    data.hc2_fits["whh"] = CurveFit("single band (WHH)", grid, 90 * (1 - (grid / 72) ** 2),
                                    {"hc2_0_T": Value(90, 5, "T")})
    data.summary.update(tc_gap_K=Value(72.0, 1.0, "K"), delta1_0_meV=Value(23.0, 0.1, "meV"),
                        tc_onset_K=Value(70.0, 0.2, "K"))
    return data


def test_summary_json_has_every_required_key_and_null_for_unknown(tmp_path):
    data = report_data()
    json_path, md_path = write_summary(data, tmp_path, [])
    summary = json.loads(json_path.read_text())
    for key in REQUIRED_SUMMARY_KEYS:
        assert set(summary[key]) == {"value", "error", "unit"}
    assert summary["tc_gap_K"] == {"value": 72.0, "error": 1.0, "unit": "K"}
    assert summary["jc0_mA"]["value"] is None  # not measured: null, never NaN
    row = summary["temperatures"][0]
    for key in ("temperature_K", "delta1_meV", "delta2_meV", "gamma1_meV", "gamma2_meV", "z1",
                "z2", "weight1"):
        assert key in row and f"{key}_err" in row or key == "temperature_K"
    assert [r["temperature_K"] for r in summary["temperatures"]] == [3.0, 20.0, 40.0]
    text = md_path.read_text()
    # the value to the error's decimal place (the error to two significant figures)
    assert "| 3 | 23.00 ± 0.10" in text and "72.0 ± 1.0 K" in text
    assert summary_dict(data)["title"] == "test"
    assert not any(isinstance(v, float) and math.isnan(v) for v in summary.values())


def test_figures_are_written_for_the_parts_present(tmp_path):
    data = report_data()
    names = {p.name for p in write_all(data, tmp_path) if p.suffix == ".png"}
    assert names == {"rt_fields.png", "hc2.png", "spectra.png", "gap_temperature.png",
                     "iv_critical_current.png"}  # no calibration run: no Nb figure
    for name in names:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert write_all(ReportData(), tmp_path / "empty") == []
