"""``daqapp fit`` on a CSV spectrum: table, JSON, and one-line errors with exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from daqapp import cli
from daqapp.analysis.btk import Gap, conductance


@pytest.fixture()
def cell2_csv(tmp_path):
    v = np.linspace(-100, 100, 401)
    g = conductance(v, 3.0, [Gap(23, 6.6, 0.58, weight=0.5), Gap(6, 4, 0.4, weight=0.5)])
    g = g + np.random.default_rng(2).normal(0, 0.003, v.size)
    path = tmp_path / "cell2_3K.csv"
    np.savetxt(path, np.c_[v, g], delimiter=",", header="bias_mV,G_norm", comments="")
    return path


def test_fit_json(cell2_csv, capsys):
    assert cli.main(["fit", str(cell2_csv), "--temperature", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    res = out[0]["result"]
    assert res["model"] == "s+s" and res["dimension"] == 2
    assert res["params"]["delta1"]["value"] == pytest.approx(23, rel=0.03)


def test_fit_table(cell2_csv, capsys):
    assert cli.main(["fit", str(cell2_csv), "--model", "s", "--bias-window", "-60", "60"]) == 0
    out = capsys.readouterr().out
    assert "delta1" in out and "χ²_red" in out and "-60 to 60 mV" in out


def test_unreadable_file_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("not numbers\n")
    assert cli.main(["fit", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.csv" in err


def test_bad_model_exit_2(cell2_csv, capsys):
    assert cli.main(["fit", str(cell2_csv), "--model", "p+s"]) == 2
    assert "--model" in capsys.readouterr().err


def test_normalize_fits_the_background_jointly_on_a_narrow_raw_sweep(tmp_path, capsys):
    # Nb-like contact swept to only ±4Δ, on a sloped, curved normal state, in siemens. The BTK
    # tail is still > 1 there, so dividing by a polynomial fitted in the outer quarters drags Δ;
    # the joint fit must recover Δ and Z.
    rng = np.random.default_rng(3)
    bias = np.linspace(-6.0, 6.0, 161)
    g_btk = conductance(bias, 3.0, [Gap(delta=1.5, gamma=0.4, z=0.5)], dimension=2)
    background = 0.12 * (1.0 + 0.02 * bias + 4e-3 * bias ** 2)
    raw = background * g_btk * (1.0 + 0.001 * rng.standard_normal(bias.size))
    path = tmp_path / "nb_raw.csv"
    np.savetxt(path, np.column_stack([bias, raw]), delimiter=",",
               header="bias_mV,conductance_S", comments="")
    assert cli.main(["fit", str(path), "--model", "s", "--temperature", "3", "--normalize",
                     "--json"]) == 0
    result = json.loads(capsys.readouterr().out)[0]["result"]
    params = result["params"]
    assert params["delta1"]["value"] == pytest.approx(1.5, rel=0.03)
    assert params["z1"]["value"] == pytest.approx(0.5, abs=0.05)
    assert params["curvature"]["vary"] and params["curvature"]["value"] == pytest.approx(
        4e-3, rel=0.25)
    assert result["chi2_red"] < 1.5


def test_bad_sigma_and_series_resistance_exit_2_naming_the_option(cell2_csv, capsys):
    for option, value, rule in (("--sigma", "-1", "> 0"), ("--series-resistance", "-5", ">= 0"),
                                ("--modulation-mV", "nan", "finite")):
        with pytest.raises(SystemExit) as exit_info:  # argparse refuses it: one line, exit 2
            cli.main(["fit", str(cell2_csv), option, value])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert option in err and rule in err and err.count("\n") == 0


def test_a_normalised_bias_mV_conductance_table_is_accepted(tmp_path, capsys):
    # someone else's already-normalised file: the header says only "bias_mV conductance"
    v = np.linspace(-80, 80, 321)
    g = conductance(v, 4.2, [Gap(23, 6.6, 0.58, weight=0.6), Gap(6, 4, 0.4, weight=0.4)])
    g = g + np.random.default_rng(5).normal(0, 0.002, v.size)
    path = tmp_path / "theirs.txt"
    np.savetxt(path, np.c_[v, g], header="bias_mV conductance", comments="")
    assert cli.main(["fit", str(path), "--temperature", "4.2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)[0]
    assert any("normalised" in s for s in out["preparation"])
    assert not out["result"]["params"]["scale"]["vary"]
    assert out["result"]["params"]["delta1"]["value"] == pytest.approx(23, rel=0.02)


def test_dvdi_against_current_as_the_dcon_procedure_records_it(tmp_path, capsys):
    # a DCON export: current (A) and dV/dI (Ohm) of a 100 Ω contact behind a 10 Ω lead
    vj = np.linspace(-90, 90, 2001)
    gj = conductance(vj, 3.0, [Gap(23, 6.6, 0.58, weight=0.6), Gap(6, 4, 0.4, weight=0.4)]) / 100
    i_mA = np.concatenate([[0.0], np.cumsum(0.5 * (gj[1:] + gj[:-1]) * np.diff(vj))])
    i_mA -= np.interp(0.0, vj, i_mA)
    grid = np.linspace(i_mA[100], i_mA[-100], 301)
    dvdi = 1 / np.interp(grid, i_mA, gj) + 10.0
    path = tmp_path / "dcon.csv"
    np.savetxt(path, np.c_[grid * 1e-3, dvdi], delimiter=",", comments="",
               header="bias_current (A),dvdi (Ohm)")
    assert cli.main(["fit", str(path), "--series-resistance", "10", "--temperature", "3",
                     "--json"]) == 0
    out = json.loads(capsys.readouterr().out)[0]
    assert any("against current" in s for s in out["preparation"])
    assert out["result"]["params"]["delta1"]["value"] == pytest.approx(23, rel=0.02)
    assert out["result"]["params"]["delta2"]["value"] == pytest.approx(6, rel=0.08)
