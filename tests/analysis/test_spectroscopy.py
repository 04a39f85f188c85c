"""The one spectrum analysis: preparation from the run's facts, masks, joint background, the
no-gap verdict, Δ(T) with Tc only when determined — and the four consumers agreeing."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from daqapp import cli
from daqapp.analysis.btk import Gap, conductance
from daqapp.analysis.gaps import gap_bcs
from daqapp.analysis.spectroscopy import (
    AnalysisOptions,
    RawSpectrum,
    SeriesFit,
    analyse,
    analyse_series,
    facts_from_run,
    looks_normalized,
    options_from_run,
    prepare,
    raw_spectra_from_run,
    tc_determined,
)
from daqapp.errors import ConfigError
from daqapp.storage import RunWriter, open_run

# Extended Data Table 3 of the seed paper (Cell 2, 23 GPa): T, Γ1, Γ2, Z1, Z2, Δ1, Δ2
TABLE3 = ((3, 6.6, 4.0, 0.58, 0.40, 23.0, 6.0), (5, 6.63, 4.1, 0.57, 0.40, 22.9, 6.0),
          (10, 6.63, 4.1, 0.557, 0.41, 23.0, 5.98), (14, 6.63, 4.1, 0.53, 0.40, 22.8, 5.9),
          (20, 6.4, 3.5, 0.515, 0.38, 22.9, 5.85), (26, 6.4, 3.6, 0.485, 0.36, 22.2, 5.8),
          (30, 6.9, 4.0, 0.43, 0.31, 22.1, 5.7))
R_N, R_LEAD, WEIGHT = 350.0, 25.0, 0.6


def semicircle_broadened(v: np.ndarray, g: np.ndarray, v_rms: float) -> np.ndarray:
    """The lock-in's first harmonic under a sinusoidal modulation of rms ``v_rms``: G convolved
    with k(u) = 2/(πa²)·√(a² − u²), a = √2·v_rms (physics.md §2.9), on a uniform grid."""
    if v_rms <= 0:
        return g
    a = math.sqrt(2.0) * v_rms
    h = v[1] - v[0]
    u = np.arange(-a, a + h / 2, h)
    k = np.sqrt(np.clip(a * a - u * u, 0.0, None))
    k /= k.sum()
    pad = len(u) // 2
    padded = np.concatenate([np.full(pad, g[0]), g, np.full(pad, g[-1])])
    return np.convolve(padded, k, mode="same")[pad:pad + len(g)]


def measured(row, *, lead=R_LEAD, offset=0.4, v_rms=2.0, noise=0.002, seed=0, points=241,
             span=75.0, gaps=True):
    """What the instrument records for a Table 3 row: the junction's BTK conductance on a
    quadratic normal state, broadened by the modulation, seen through a lead (V = V_j + I·R_s)
    with a bias offset. Returns (V mV, G S, I mA)."""
    t, g1, g2, z1, z2, d1, d2 = row
    vj = np.linspace(-span - 10, span + 10, 4001)
    btk = conductance(vj, t, [Gap(d1, g1, z1, weight=WEIGHT), Gap(d2, g2, z2,
                                                                 weight=1 - WEIGHT)]) \
        if gaps else np.ones_like(vj)
    gj = semicircle_broadened(vj, btk * (1 + 3e-4 * vj + 1.5e-5 * vj * vj) / R_N, v_rms)
    i = np.concatenate([[0.0], np.cumsum(0.5 * (gj[1:] + gj[:-1]) * np.diff(vj))])
    i -= np.interp(0.0, vj, i)
    v_meas = vj + i * lead + offset
    g_meas = gj / (1 + lead * gj)
    grid = np.linspace(v_meas[200], v_meas[-200], points)
    rng = np.random.default_rng(seed)
    g_out = np.interp(grid, v_meas, g_meas) * (1 + noise * rng.standard_normal(points))
    return grid, g_out, np.interp(grid, v_meas, i)


def write_run(path, rows, lead=R_LEAD, metadata_lead=True, **kw):
    """A lock-in spectrum run file like the virtual lab writes, one sweep per row."""
    cols = {"bias_current": "A", "dc_voltage": "V", "i_ac": "A", "dvdi": "Ohm", "didv": "S",
            "temperature": "K", "sweep": ""}
    w = RunWriter(path, procedure="procedures.lockin_spectrum.DifferentialConductanceLockIn",
                  parameters={"excitation": {"value": 0.1, "units": "V"}},
                  metadata={"series_resistance_ohm": lead} if metadata_lead else {},
                  columns=cols, sweep_axis="dc_voltage")
    w.start({})
    for k, row in enumerate(rows):
        v, g, i = measured(row, lead=lead, seed=k, **kw)
        for vv, gg, ii in zip(v, g, i, strict=True):
            w.append({"bias_current": ii * 1e-3, "dc_voltage": vv * 1e-3, "i_ac": 2e-6,
                      "dvdi": 1 / gg, "didv": gg, "temperature": float(row[0]), "sweep": k})
    w.finish("finished")
    return path


# --------------------------------------------------------------------------- preparation


def test_lead_resistance_from_the_run_is_removed_from_spectrum_and_reference(tmp_path):
    path = write_run(tmp_path / "run.h5", TABLE3[:1], offset=0.0, v_rms=0.0)
    with open_run(path) as run:
        facts = facts_from_run(run)
        opts = options_from_run(run)
        (raw,) = raw_spectra_from_run(run)
    assert facts.series_resistance_ohm == 25.0 and facts.series_resistance_source == "campaign"
    assert opts.series_resistance_ohm == 25.0
    # ac voltage across the junction: I_ac times its own share of dV/dI (the lead's removed)
    assert raw.current_mA is not None
    assert raw.modulation_mV == pytest.approx(2e-3 * (np.median(1 / raw.y) - 25.0), rel=1e-6)
    a = analyse(raw, opts)
    v = a.result().values
    assert v["delta1"] == pytest.approx(23.0, rel=0.01)
    assert any("series resistance 25 Ω removed" in s for s in a.prepared.steps)
    # ignoring the lead moves the gap outwards (physics.md §2.9): the reason for all this
    wrong = analyse(raw, AnalysisOptions(series_resistance_ohm=0.0))
    assert wrong.result().values["delta1"] > 1.05 * v["delta1"]
    # a normal-state reference measured through the same lead, corrected the same way,
    # leaves the gaps where they are
    ref_v, ref_g, ref_i = measured(TABLE3[0], gaps=False, offset=0.0, v_rms=0.0)
    reference = RawSpectrum(ref_v, ref_g, current_mA=ref_i, temperature_K=80.0, label="80 K")
    with_ref = analyse(raw, opts, reference=reference)
    assert with_ref.result().values["delta1"] == pytest.approx(v["delta1"], rel=0.01)
    assert any("normal-state reference" in s for s in with_ref.prepared.steps)


def test_dvdi_against_current_is_integrated_to_the_junction_voltage():
    v, g, i = measured(TABLE3[0], offset=0.0, v_rms=0.0, noise=0.001)
    opts = AnalysisOptions(series_resistance_ohm=R_LEAD)
    from_v = analyse(RawSpectrum(v, g, current_mA=i, temperature_K=3.0), opts)
    from_i = analyse(RawSpectrum(i, 1 / g, "dvdi_i", temperature_K=3.0), opts)
    for name in ("delta1", "delta2", "z1"):
        assert from_i.result().values[name] == pytest.approx(from_v.result().values[name],
                                                            rel=0.02)
    assert from_i.result().values["delta1"] == pytest.approx(23.0, rel=0.02)


def test_normalised_input_is_detected_and_series_resistance_then_refused():
    v = np.linspace(-80, 80, 321)
    g = conductance(v, 3.0, [Gap(23, 6.6, 0.58, weight=0.6), Gap(6, 4, 0.4, weight=0.4)])
    g = g + np.random.default_rng(1).normal(0, 0.002, v.size)
    assert looks_normalized(v, g) and not looks_normalized(v, g / 350)
    a = analyse(RawSpectrum(v, g, temperature_K=3.0), AnalysisOptions(v0_mV=None))
    assert a.prepared.normalized and not a.result().params["scale"]["vary"]
    assert a.result().values["delta1"] == pytest.approx(23.0, rel=0.02)
    with pytest.raises(ConfigError, match="series_resistance_ohm.*normalised"):
        prepare(RawSpectrum(v, g, temperature_K=3.0), AnalysisOptions(series_resistance_ohm=5))


def test_critical_current_dips_are_masked_reported_and_do_not_move_the_gaps():
    v, g, i = measured(TABLE3[0], offset=0.0, v_rms=0.0, noise=0.001)
    dipped = g * (1 - 0.15 * np.exp(-0.5 * ((np.abs(v) - 45.0) / 0.5) ** 2))
    clean = analyse(RawSpectrum(v, g, current_mA=i, temperature_K=3.0),
                    AnalysisOptions(series_resistance_ohm=R_LEAD))
    assert clean.prepared.mask.all()
    a = analyse(RawSpectrum(v, dipped, current_mA=i, temperature_K=3.0),
                AnalysisOptions(series_resistance_ohm=R_LEAD))
    assert len(a.prepared.dips_mV) == 2
    assert any("critical-current dips masked" in n for n in a.notes)
    # the dips and everything beyond the inner one (above Ic) are left out, and inside it as
    # far again as the dip's inner half-width (G falls before the sharp core); the rest is kept
    bias, keep = np.abs(a.prepared.bias_mV), a.prepared.mask
    centre = min(abs(d) for d in a.prepared.dips_mV)
    cut = float(bias[keep].max())
    assert keep[bias < cut].all()           # one window, |V| below the cut
    assert centre - 8.0 < cut < centre - 2.0  # the dip's core and its inner flank left out
    assert a.result().values["delta1"] == pytest.approx(clean.result().values["delta1"],
                                                       rel=0.01)


def test_the_conductance_beyond_a_critical_current_dip_does_not_move_the_gaps():
    """Above Ic a resistive region in series (here 40 % of R_N) lowers G beyond the dips, as
    in the virtual lab at 26 K. Fitted, that lower outer level drags the joint background and
    with it the gaps; left out with the dips, the gaps are those of the clean spectrum."""
    v, g, i = measured(TABLE3[0], offset=0.0, v_rms=0.0, noise=0.001)
    above = np.abs(v) > 45.0
    beyond = np.where(above, 1.0 / (1.0 / g + 0.4 * R_N), g)
    dipped = beyond * (1 - 0.15 * np.exp(-0.5 * ((np.abs(v) - 45.0) / 0.5) ** 2))
    options = AnalysisOptions(series_resistance_ohm=R_LEAD)
    a = analyse(RawSpectrum(v, dipped, current_mA=i, temperature_K=3.0), options)
    assert any("beyond |V|" in n and "above Ic" in n for n in a.notes)
    # the clean spectrum over the same bias range: what the junction alone gives there
    kept = a.prepared.bias_mV[a.prepared.mask]
    window = AnalysisOptions(series_resistance_ohm=R_LEAD,
                             bias_window_mV=(float(kept.min()) - 1e-9, float(kept.max()) + 1e-9))
    clean = analyse(RawSpectrum(v, g, current_mA=i, temperature_K=3.0), window).result()
    for name in ("delta1", "delta2", "gamma1", "z1", "z2"):
        assert a.result().values[name] == pytest.approx(clean.values[name], rel=0.02), name
    assert a.result().values["delta1"] == pytest.approx(TABLE3[0][5], rel=0.02)
    # fitted, the conductance above Ic is taken for the junction's, and the gaps go astray
    fitted = analyse(RawSpectrum(v, beyond, current_mA=i, temperature_K=3.0),
                     AnalysisOptions(series_resistance_ohm=R_LEAD, mask_dips=False)).result()
    assert abs(fitted.values["delta1"] / TABLE3[0][5] - 1) > 0.1


def test_sweeps_that_disagree_at_one_temperature_are_flagged_as_heating():
    from daqapp.analysis.spectroscopy import sweep_disagreement

    v, g, i = measured(TABLE3[0], offset=0.0, v_rms=0.0, noise=0.001, seed=1)
    _, g_again, _ = measured(TABLE3[0], offset=0.0, v_rms=0.0, noise=0.001, seed=2)
    # the second sweep heated the contact to 25 K: its spectrum is smeared
    hot = measured((25.0, *TABLE3[0][1:]), offset=0.0, v_rms=0.0, noise=0.001, seed=2)
    up = RawSpectrum(v, g, temperature_K=3.0)
    assert sweep_disagreement([up, RawSpectrum(v[::-1], g_again[::-1], temperature_K=3.0)]) \
        is None
    note = sweep_disagreement([up, RawSpectrum(*hot[:2], temperature_K=3.0)])
    assert note and "heating" in note


def test_bad_options_name_the_parameter_and_the_allowed_range():
    with pytest.raises(ConfigError, match="sigma = -1.*> 0"):
        AnalysisOptions(sigma=-1)
    with pytest.raises(ConfigError, match="series_resistance_ohm"):
        AnalysisOptions(series_resistance_ohm=-3)
    with pytest.raises(ConfigError, match="models"):
        AnalysisOptions(models=("p+s",))
    with pytest.raises(ConfigError, match="temperature unknown"):
        prepare(RawSpectrum(np.linspace(-50, 50, 100), np.ones(100)), AnalysisOptions())


# --------------------------------------------------------------------------- gaps and series


def test_a_normal_state_spectrum_has_no_gap_and_stays_out_of_the_gap_series():
    v, g, i = measured(TABLE3[0], gaps=False, offset=0.1, v_rms=0.0)
    opts = AnalysisOptions(series_resistance_ohm=R_LEAD)
    normal = analyse(RawSpectrum(v, g, current_mA=i, temperature_K=80.0, label="80 K"), opts)
    assert not normal.has_gap
    assert any(n.startswith("no gap") for n in normal.notes)
    series = SeriesFit(opts)
    for k, row in enumerate(TABLE3[:2]):
        vv, gg, ii = measured(row, offset=0.1, v_rms=0.0, seed=k)
        series.add(prepare(RawSpectrum(vv, gg, current_mA=ii, temperature_K=row[0]), opts))
    series.add(normal.prepared)
    gaps = series.series()
    assert list(gaps.temperature_K) == [3.0, 5.0]
    assert gaps.excluded and "no gap" in gaps.excluded[0]


def test_tc_is_reported_only_when_the_data_determine_it():
    class Fit:
        def __init__(self, tc, err):
            self.tc_K, self.tc_err_K = tc, err

    assert tc_determined(Fit(72.0, 0.5), 65.0)
    assert not tc_determined(Fit(14.3, 0.5), 3.0)  # from 1.5–3 K data: a flat BCS curve
    assert not tc_determined(Fit(72.0, 30.0), 65.0)
    # a real series from far below Tc: the fit exists, Tc is "not determined"
    temps = np.array([2.0, 3.0, 4.0, 5.0])
    d = gap_bcs(temps, 23.0, 72.0)
    from daqapp.analysis.gaps import fit_gap_temperature

    fit = fit_gap_temperature(temps, d + np.array([0.01, -0.01, 0.02, 0.0]))
    assert not tc_determined(fit, 5.0)


# --------------------------------------------------------------------------- done-when checks


def test_raw_table3_spectra_through_lead_background_offset_and_modulation(tmp_path, capsys):
    """``daqapp fit --normalize --series-resistance 25 --modulation-mV 2`` on raw spectra of
    Table 3 (3–30 K): Δ1 within 3 %, Δ2 within 8 % at every temperature. The noise is 0.01 %
    of G per point (the virtual lab's contact noise is 0.02 %): at 0.1 % the statistical error
    of Δ2 alone is ±60 % at 30 K, where k_BT and the modulation smear the small gap."""
    paths = []
    for k, row in enumerate(TABLE3):
        v, g, _ = measured(row, seed=k, noise=1e-4, points=401)
        path = tmp_path / f"raw_{row[0]}K.csv"
        np.savetxt(path, np.column_stack([v, g, np.full(v.size, float(row[0]))]),
                   delimiter=",", header="bias_mV,conductance_S,T_K", comments="")
        paths.append(str(path))
    assert cli.main(["fit", *paths, "--normalize", "--series-resistance", "25",
                     "--modulation-mV", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["temperature_K"] for o in out] == [row[0] for row in TABLE3]
    for o, row in zip(out, TABLE3, strict=True):
        p = o["result"]["params"]
        assert p["delta1"]["value"] == pytest.approx(row[5], rel=0.03), row
        assert p["delta2"]["value"] == pytest.approx(row[6], rel=0.08), row
        assert p["v0"]["value"] == pytest.approx(0.4, abs=0.1)


def _worker_values(path):
    """The FitWorker as the window uses it: attached to a run, fed its record stream."""
    from daqapp.fitworker import FitWorker
    from daqapp.runner.events import RECORD, SWEEP_END, RunEvent

    with open_run(path) as reader:
        metadata, units = reader.metadata, reader.units
        sweeps = reader.sweeps()

    class Procedure:
        excitation, bias_resistor = 0.1, 0.0

        def column_units(self):
            return units

    class LiveRun:
        procedure, station = Procedure(), None

        def __init__(self):
            self.metadata = metadata
            self.listeners = []

        def subscribe(self, listener):
            self.listeners.append(listener)

        def add_fit(self, name, fit):
            return True

    run = LiveRun()
    worker = FitWorker(models=("s+s",))
    worker.attach(run)
    for s in sweeps:
        names = list(s.columns)
        for values in zip(*(s.columns[k].tolist() for k in names), strict=True):
            for listener in run.listeners:
                listener(RunEvent(RECORD, dict(zip(names, values, strict=True))))
        for listener in run.listeners:  # as the replay window sends it: T from the column
            listener(RunEvent(SWEEP_END, {"sweep": s.index}))
    assert worker.wait_idle(120)
    worker.stop()
    return [u.results["s+s"].values for u in worker.updates]


def test_the_four_consumers_give_the_same_numbers_for_the_same_run_file(tmp_path, capsys):
    from daqapp.report.analyse import ReportOptions
    from daqapp.report.analyse import analyse as report_analyse

    rows = (TABLE3[0], TABLE3[4])
    path = write_run(tmp_path / "spectra.h5", rows, v_rms=0.7)
    names = ("delta1", "delta2", "gamma1", "gamma2", "z1", "z2", "weight1")
    assert cli.main(["fit", str(path), "--json"]) == 0
    cli_values = [o["result"]["params"] for o in json.loads(capsys.readouterr().out)]
    cli_values = [{k: p[k]["value"] for k in names} for p in cli_values]
    worker_values = _worker_values(path)
    report = report_analyse([path], ReportOptions())
    report_values = [{k: s.parameters[k + ("_meV" if k[0] in "dg" else "")].value
                      for k in names} for s in report.spectra]
    out = tmp_path / "replayed"
    assert cli.main(["replay", "--headless", str(path), "-o", str(out)]) == 0
    capsys.readouterr()
    rows_json = json.loads((out / "summary.json").read_text())["temperatures"]
    replay_values = [{k: r[k + ("_meV" if k[0] in "dg" else "")] for k in names}
                     for r in rows_json]
    assert len(cli_values) == len(worker_values) == len(report_values) == 2
    for k in range(2):
        for name in names:
            ref = cli_values[k][name]
            for other in (worker_values[k], report_values[k], replay_values[k]):
                assert other[name] == pytest.approx(ref, rel=2e-3, abs=2e-3), (k, name)
    assert cli_values[0]["delta1"] == pytest.approx(23.0, rel=0.02)


def test_series_gives_tc_from_a_bcs_temperature_dependence():
    rows = []
    for t in (3.0, 20.0, 35.0, 50.0, 60.0):
        d1, d2 = (float(gap_bcs(t, d0, 72.0)) for d0 in (23.0, 6.0))
        rows.append((t, 6.6, 4.0, 0.58, 0.40, d1, d2))
    opts = AnalysisOptions(series_resistance_ohm=R_LEAD, modulation_mV_rms=0.0)
    series = SeriesFit(opts)
    for k, row in enumerate(rows):
        v, g, i = measured(row, v_rms=0.0, seed=k, noise=0.001)
        series.add(prepare(RawSpectrum(v, g, current_mA=i, temperature_K=row[0]), opts))
    gaps = series.series()
    assert gaps.tc_determined["delta1"]
    assert gaps.fits["delta1"].tc_K == pytest.approx(72.0, rel=0.05)
    assert analyse_series(series.analyses[:2]).tc_determined.get("delta1") is not True


def test_modulation_from_the_run_parameters_lockin_and_dcon():
    from daqapp.analysis.spectroscopy import modulation_from_columns, run_facts

    lockin = run_facts({"series_resistance_ohm": 25.0}, {"excitation": {"value": 0.1}},
                       {"bias_resistor_ohm": 48e3})
    # 0.1 V rms through 48 kΩ + 25 Ω lead + a 350 Ω junction
    assert modulation_from_columns({"dvdi": np.full(10, 375.0)}, lockin) == pytest.approx(
        100 * 350 / (48e3 + 25 + 350))
    dcon = run_facts({}, {"delta": {"value": 4e-6}})
    assert dcon.dcon_delta_A == 4e-6 and dcon.excitation_V_rms is None
    # a 4 µA step on 100 Ω is a 0.4 mV box: the semicircle of its variance, 0.4/√6 mV rms
    assert modulation_from_columns({"dvdi": np.full(10, 100.0)}, dcon) == pytest.approx(
        0.4 / math.sqrt(6))


def test_a_spectrum_cut_inside_its_large_gap_by_dips_stays_out_of_delta_t():
    """At 30 K in the demo the Ic dips sit at ±18 mV, inside Δ1 ≈ 22 meV: what is left holds
    no coherence peak of Δ1, yet its fit found a "gap" (6 ± 72 meV), which the unweighted
    Δ(T) fit took at full weight (Tc not determined). Such a spectrum is left out with its
    reason; one cut outside the gap (±45 mV) stays."""
    from daqapp.analysis.spectroscopy import _without_peaks_cut_by_dips

    # (T, Δ1, σ1, Δ2, σ2, sweep, label, fit window mV) sorted by T, as analyse_series builds
    # them; the window is finite only where critical-current dips cut the spectrum
    inf = float("inf")
    rows = [(3.0, 23.0, 0.01, 6.0, 0.04, 0, "3 K", inf),
            (20.0, 22.9, 0.03, 5.9, 0.1, 1, "20 K", inf),
            (26.0, 22.2, 0.08, 5.8, 0.3, 2, "26 K", 42.7),
            (30.0, 6.0, 72.0, 4.0, 38.0, 3, "30 K", 13.0),
            (35.0, 22.1, 0.3, 5.7, 1.5, 4, "35 K", inf)]
    excluded: list[str] = []
    kept = _without_peaks_cut_by_dips(rows, excluded)
    assert [r[6] for r in kept] == ["3 K", "20 K", "26 K", "35 K"]
    assert len(excluded) == 1 and excluded[0].startswith("30 K at 30.0 K: Δ1 not in the data")
    assert "±13.0 mV" in excluded[0] and "23.0 meV" in excluded[0]
