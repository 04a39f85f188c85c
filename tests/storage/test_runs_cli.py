"""``daqapp runs list|show|export`` against real run files."""

import shutil

from daqapp import cli
from daqapp.storage import RunWriter


def test_list_shows_each_run_and_marks_unreadable(spectrum_run, tmp_path, capsys):
    folder = tmp_path / "runs"
    folder.mkdir()
    shutil.copy(spectrum_run, folder / "a.h5")
    RunWriter(folder / "b.h5", procedure="procedures.rt.DeltaRT", columns={"R": "ohm"},
              metadata={"sample": "Nb"}).start().finish("aborted")
    (folder / "c.h5").write_bytes(b"garbage")
    assert cli.main(["runs", "list", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["file", "procedure", "status", "start", "rows", "sample"]
    a = next(line for line in out if line.startswith("a.h5")).split()
    assert a[1:3] == ["LockInSpectrum", "finished"] and a[-2:] == ["53", "La3Ni2O7"]
    b = next(line for line in out if line.startswith("b.h5")).split()
    assert b[1:3] == ["DeltaRT", "aborted"] and b[-2:] == ["0", "Nb"]
    assert "unreadable" in next(line for line in out if line.startswith("c.h5"))


def test_show_prints_parameters_columns_fits_and_log(spectrum_run, capsys):
    assert cli.main(["runs", "show", str(spectrum_run), "--snapshot"]) == 0
    out = capsys.readouterr().out
    assert "status       finished" in out
    assert "columns (53 rows)" in out
    assert "didv" in out and "bias_resistor" in out and "48000" in out
    assert "sweep0: model=btk_two_gap, dimension=2D" in out
    assert "delta1 = 1.21 ± 0.05" in out and "gamma = 0.8 (fixed)" in out
    assert "spectrum done" in out
    assert '"tau": 0.3' in out


def test_export_and_errors_exit_2(spectrum_run, tmp_path, capsys):
    out = tmp_path / "e.csv"
    assert cli.main(["runs", "export", str(spectrum_run), "--output", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 8 + 1 + 53
    assert cli.main(["runs", "show", str(tmp_path / "missing.h5")]) == 2
    assert "no such run file" in capsys.readouterr().err
    assert cli.main(["runs", "list", str(tmp_path / "nope")]) == 2
