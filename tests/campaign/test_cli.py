"""`daqapp campaign`: dry run prints the expanded steps and estimate; bad files exit 2, named."""

from __future__ import annotations

from pathlib import Path

from daqapp import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "daqapp" / "examples_data"


def test_dry_run_of_every_example_moves_nothing(capsys, tmp_path):
    for name in ("la3ni2o7.toml", "nb-calibration.toml", "quick.toml"):
        assert cli.main(["campaign", "run", str(EXAMPLES / name), "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "estimated laboratory time" in out and "nothing was moved" in out
    # the main campaign: 6 R–T fields, 8 I–V temperatures, 15 spectra
    assert cli.main(["campaign", "run", str(EXAMPLES / "la3ni2o7.toml"), "--dry-run"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  0")]
    assert len(lines) == 6 + 8 + 15
    assert lines[0].split()[0] == "001-rt-0T" and "run rt" in lines[0]
    assert any("T = 80 K" in ln for ln in lines)


def test_bad_campaign_is_one_line_naming_the_key_and_exit_2(capsys, tmp_path):
    text = (EXAMPLES / "quick.toml").read_text().replace("temperature_K = [3, 20, 35, 50, 65]",
                                                         "temperature_K = [3, 20, 350]")
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    assert cli.main(["campaign", "run", str(bad), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "step[3] (spectrum).temperature_K[2]: 350 K is outside the allowed range" in err[0]


def test_procedure_parameter_checked_against_station_wiring(capsys, tmp_path):
    text = (EXAMPLES / "quick.toml").read_text().replace("bias_start = -2.1e-4",
                                                         "bias_start = -6e-4")
    bad = tmp_path / "bias.toml"
    bad.write_text(text)
    assert cli.main(["campaign", "run", str(bad), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "step[3] (spectrum).params" in err and "48000 Ohm" in err


def test_resume_of_a_folder_without_manifest_exits_2(capsys, tmp_path):
    assert cli.main(["campaign", "resume", str(tmp_path)]) == 2
    assert "not a campaign folder" in capsys.readouterr().err
