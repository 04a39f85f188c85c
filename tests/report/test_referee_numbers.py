"""The report's numbers as a referee reads them: one Tc onset for the summary and Hc2(T), errors
that cover the truth, the η systematic in the Hc2(0) headline, χ²_red ≈ 1 for the right
model on the virtual lab, the campaign's title and no made-up pressure."""

from __future__ import annotations

import math

import numpy as np
import pytest

from daqapp.analysis.btk import Gap, conductance
from daqapp.analysis.fit import estimate_noise
from daqapp.analysis.spectroscopy import AnalysisOptions, RawSpectrum, prepare
from daqapp.analysis.transport import critical_temperatures
from daqapp.report.analyse import ReportOptions, analyse, analyse_rt_curves
from daqapp.report.results import ReportData, RTCurve, Value
from daqapp.report.summary import markdown, summary_dict

ONSET_TRUE = 6.0 + 66.0 * 0.9 ** (1 / 1.6)  # where the synthetic R = 90 % of R_N


def synthetic_rt(rng, noise: float, field_T: float = 0.0, t_stop: float = 2.0):
    """The virtual lab's kind of transition: regions with local Tc spread over 6–72 K
    (cumulative normal fraction x^1.6) on a linear R_N; a field shifts it down by 0.7 K/T."""
    T = np.arange(t_stop, 85.0, 0.15)
    T = T + rng.normal(0, 0.02, T.size)
    shift = 0.7 * field_T
    f = np.clip((T + shift - 6.0) / 66.0, 0, 1) ** 1.6
    return T, (0.25 + 0.006 * T) * f + rng.normal(0, noise, T.size)


@pytest.mark.parametrize("noise", [2e-3, 5e-3])
def test_tc_onset_error_covers_the_true_onset_over_noise_draws(noise):
    z = []
    for seed in range(24):
        T, R = synthetic_rt(np.random.default_rng(seed), noise)
        tc = critical_temperatures(T, R)
        err = tc.errors_K["onset"]
        assert err > 0
        z.append((tc.onset_K - ONSET_TRUE) / err)
    z = np.array(z)
    # covers the truth (a grid-spacing error of 0.075 K would not: |z| ~ 3–6 here) ...
    assert np.mean(np.abs(z) < 2.0) >= 0.9
    # ... without being an inflated, meaningless bar
    assert 0.35 < float(np.sqrt(np.mean(z * z))) < 1.5


def test_normal_state_window_starts_above_the_fluctuation_region_and_is_wide():
    T, R = synthetic_rt(np.random.default_rng(1), 2e-3)
    tc = critical_temperatures(T, R)
    lo, hi = tc.normal_window_K
    assert lo == pytest.approx(1.1 * tc.onset_K, rel=0.02)
    assert hi - lo > 8.0  # not the last 0.4 K of the ramp
    np.testing.assert_allclose(tc.normal_state_coeffs, [0.006, 0.25], rtol=0.05)


def _rt_data() -> ReportData:
    rng = np.random.default_rng(4)
    curves = []
    for b in (0.0, 2.0, 4.0, 6.0, 8.0):
        T, R = synthetic_rt(rng, 1e-3, b, t_stop=2.0 if b == 0 else 40.0)
        curves.append(RTCurve(b, T, R, f"rt-{b:g}T.h5"))
    data = ReportData()
    analyse_rt_curves(curves, ReportOptions(), data)
    return data


@pytest.fixture(scope="module")
def rt_data() -> ReportData:
    return _rt_data()


def test_summary_onset_is_the_zero_field_point_of_hc2(rt_data):
    onset = rt_data.summary["tc_onset_K"]
    t, b = rt_data.hc2_points
    at_zero = int(np.argmin(b))
    assert b[at_zero] == 0.0
    assert t[at_zero] == onset.value  # one definition, computed the same way
    assert rt_data.hc2_errors_K[at_zero] == onset.error
    assert onset.value == pytest.approx(ONSET_TRUE, abs=3 * onset.error)


def test_hc2_headline_carries_the_eta_systematic(rt_data):
    h = rt_data.summary["hc2_0_T"]
    assert h.has_systematic and h.sys_plus >= 0 and h.sys_minus >= 0
    low = rt_data.summary["hc2_0_low_T"].value
    assert h.value - h.sys_minus == pytest.approx(low)
    text = h.text()
    assert "(stat)" in text and "(η" in text and f"+{h.sys_plus:.2g}"[:3] in text
    entry = summary_dict(rt_data)["hc2_0_T"]
    assert entry["systematic"]["minus"] == pytest.approx(h.sys_minus)
    assert "(stat)" in markdown(rt_data)


def test_a_value_without_systematic_prints_as_before():
    assert Value(72.0, 1.0, "K").text() == "72.0 ± 1.0 K"
    assert set(Value(72.0, 1.0, "K").as_dict()) == {"value", "error", "unit"}
    assert Value(92.0, 2.0, "T", 9.0, 20.0, "η").text() == "92.0 ± 2.0 (stat) +20/−9.0 (η) T"


# --------------------------------------------------------------------------- noise σ


SEED_3K = [Gap(delta=23.0, gamma=6.6, z=0.58, weight=0.6),
           Gap(delta=6.0, gamma=4.0, z=0.4, weight=0.4)]


def test_noise_estimate_is_not_fooled_by_gap_structure_on_a_coarse_sweep():
    v = np.linspace(-70, 70, 121)  # the demo's 121 points: third differences read +31 %
    clean = conductance(v, 3.0, SEED_3K, dimension=2)
    rng = np.random.default_rng(2)
    ratio = np.mean([estimate_noise(v, clean + 2.3e-4 * rng.standard_normal(v.size))
                     for _ in range(30)]) / 2.3e-4
    assert ratio == pytest.approx(1.0, abs=0.08)


def test_merged_sweep_directions_keep_the_noise_of_one_sweep():
    v = np.linspace(-70, 70, 121)
    g = 2.8e-3 * conductance(v, 3.0, SEED_3K, dimension=2)
    rng = np.random.default_rng(5)
    up = RawSpectrum(v, g * (1 + 2e-4 * rng.standard_normal(v.size)), temperature_K=3.0)
    # the down sweep at the same biases, a little off (drift): interleaved when merged
    down = RawSpectrum(v[::-1], (g * (1.0008 + 2e-4 * rng.standard_normal(v.size)))[::-1],
                       temperature_K=3.0)
    merged = RawSpectrum(np.concatenate([up.x, down.x]), np.concatenate([up.y, down.y]),
                         temperature_K=3.0, parts=[up, down])
    options = AnalysisOptions(v0_mV=None)
    one = prepare(up, options).sigma
    both = prepare(merged, options).sigma
    assert both == pytest.approx(one, rel=0.2)
    # without the parts the interleaved points read as noise several times larger
    naive = prepare(RawSpectrum(merged.x, merged.y, temperature_K=3.0), options).sigma
    assert naive > 2.5 * both


CLEAN_PRESET = """base = "la3ni2o7-cell2"
name = "cell2-without-unmodelled-effects"
series_heating_per_A = 0.0
spreading_resistance_ohm = 0.0
thermal_emf_drift_V_per_s = 0.0
"""


@pytest.fixture(scope="module")
def lab_spectrum_run(tmp_path_factory):
    """An up+down lock-in spectrum at base temperature on the virtual lab, whose junction
    is exactly what the s+s model describes (no lead heating, no spreading region)."""
    from daqapp.runner import Run
    from daqapp.station import Station
    from procedures.lockin_spectrum import DifferentialConductanceLockIn

    folder = tmp_path_factory.mktemp("lab")
    preset = folder / "clean.toml"
    preset.write_text(CLEAN_PRESET)
    conn = Station.simulated(preset=str(preset), speed=2000.0, seed=3).connect()
    try:
        run = Run(DifferentialConductanceLockIn(points=121, directions="up_down"),
                  station=conn, output_dir=folder,
                  metadata={"sample": "virtual", "operator": "pytest",
                            "campaign": "Cell 2, clean contact", "series_resistance_ohm": 25.0})
        result = run.execute()
    finally:
        conn.close()
    assert result.status == "finished"
    return folder, result.path


@pytest.mark.timeout(120)
def test_chi2_red_is_near_one_for_the_right_model_on_the_virtual_lab(lab_spectrum_run):
    from daqapp.analysis.spectroscopy import analyse as analyse_spectrum
    from daqapp.report.analyse import load_run_spectra

    _, path = lab_spectrum_run
    (spec,) = load_run_spectra(path, ReportOptions(series_resistance_ohm=25.0))
    assert len(spec.raw.parts) == 2  # up and down, merged
    result = analyse_spectrum(spec.raw, spec.options).result()
    # was 0.006 (σ from interleaved sweeps, 12× too large)
    assert 0.7 < result.chi2_red < 1.4
    assert result.values["delta1"] == pytest.approx(23.0, rel=0.03)


@pytest.mark.timeout(120)
def test_report_title_is_the_campaign_name_and_pressure_is_not_made_up(lab_spectrum_run):
    folder, _ = lab_spectrum_run
    data = analyse([folder], ReportOptions(series_resistance_ohm=25.0))
    assert data.title == "Cell 2, clean contact"  # not the folder's name
    assert "pressure_GPa" not in data.sample  # the writer's NaN is no pressure
    text = markdown(data)
    assert "nan" not in text.split("## Key results")[0]
    assert "**pressure_GPa**: not recorded" in text
    assert math.isfinite(data.spectra[0].chi2_red)


def test_an_asymmetric_spectrum_is_named_as_the_cause_of_a_large_chi2():
    from daqapp.analysis.spectroscopy import analyse as analyse_spectrum
    from daqapp.report.analyse import note_asymmetric_misfit, spectrum_result

    v = np.linspace(-70, 70, 161)
    g = 2.8e-3 * conductance(v, 3.0, SEED_3K, dimension=2) * (1 + 1.5e-5 * v * v)  # S
    rng = np.random.default_rng(8)
    noise = 2.8e-3 * 3e-4 * rng.standard_normal(v.size)
    heated = g * (1 + 6e-3 * np.tanh(v / 25.0) ** 3) + noise  # odd, not a slope
    data = ReportData()
    for y in (g + noise, heated):
        result = spectrum_result(analyse_spectrum(RawSpectrum(v, y, temperature_K=3.0),
                                                  AnalysisOptions(v0_mV=None)), "s")
        data.spectra.append(result)
    clean, odd = data.spectra
    assert clean.residual_odd == pytest.approx(0.5, abs=0.25)
    assert clean.residual_even == pytest.approx(0.5, abs=0.25)
    assert odd.chi2_red > 2 and odd.residual_odd > 3 * odd.residual_even
    note_asymmetric_misfit(data)
    assert any("odd in V" in n and "1 spectra" in n for n in data.notes)


@pytest.mark.parametrize(("kelvin", "ic_mA"), [(20.0, 1.50), (35.0, 0.0)])
def test_ic_is_a_knee_not_the_smooth_flux_flow_rise_above_its_tc(kelvin, ic_mA):
    from daqapp.report.analyse import ic_from_differential_resistance
    from simulators.presets import load_preset
    from simulators.sample import SampleModel

    sample = SampleModel(load_preset("la3ni2o7-cell2"))  # Ic vanishes at 32 K
    current = np.linspace(-5e-3, 5e-3, 161)
    voltage = sample.transport_voltage(current, kelvin)
    found = ic_from_differential_resistance(current * 1e3, voltage * 1e3)
    assert found == pytest.approx(ic_mA, abs=0.1)


def test_a_value_is_shown_to_its_error_decimal_place():
    """The R–T figure once read 'T_c onset = 67.2 ± 0.092 K'."""
    from daqapp.report.results import Value

    assert Value(67.2, 0.092, "K").text() == "67.200 ± 0.092 K"
    assert Value(94.04, 1.46, "T").text() == "94.0 ± 1.5 T"
    assert Value(23.0, 60.0, "meV").text() == "23 ± 60 meV"
    assert Value(72.0, math.nan, "K").text() == "72.0 K"
