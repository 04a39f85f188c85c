"""``runs import --temperature`` / ``--skip-bad-lines`` and ``fit --skip-bad-lines``: a lab's
text file with one OVERLOAD line is read with the line left out and counted; a file without
temperatures gets the one the user gives, and a file with its own is not overridden."""

from __future__ import annotations

import numpy as np
import pytest

from daqapp import cli
from daqapp.storage.spectra import load_spectra
from daqapp.storage.textio import read_table

TABLE = ("bias (mV),G/GN\n-2,1.0\n-1,1.1\n0,0.9\n1,1.1\n2,1.0\n\n"
         "-2,1.0\n-1,1.05\nOVERLOAD\n1,1.05\n2,1.0\n")


def test_a_bad_line_refuses_the_file_and_names_the_way_out(tmp_path, capsys):
    src = tmp_path / "lab.csv"
    src.write_text(TABLE)
    assert cli.main(["runs", "import", str(src)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "line 10" in err[0] and "--skip-bad-lines" in err[0]
    assert not (tmp_path / "lab.h5").exists()


def test_skip_bad_lines_leaves_the_line_out_keeps_the_blocks_and_counts_it(tmp_path, capsys):
    src = tmp_path / "lab.csv"
    src.write_text(TABLE.replace("2,1.0\n\n", "2,1.0\n1,x,3\n\n", 1))
    table = read_table(src, skip_bad_lines=True)
    assert [lineno for lineno, _ in table.skipped] == [7, 11]
    assert table.blocks == [0, 5]   # the second spectrum still starts at its own first row
    np.testing.assert_array_equal(table.data[5:, 1], [1.0, 1.05, 1.05, 1.0])
    out = tmp_path / "lab.h5"
    assert cli.main(["runs", "import", str(src), "--skip-bad-lines", "--temperature", "4.2",
                     "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "skipped 2 bad lines (first: line 7" in text
    imported = load_spectra(out)
    assert [len(s) for s in imported] == [5, 4]
    assert [s.temperature_K for s in imported] == [4.2, 4.2]


def test_temperature_is_refused_for_a_file_with_its_own(tmp_path, capsys):
    src = tmp_path / "own.csv"
    src.write_text("bias (mV),G/GN,T (K)\n-1,1.1,2\n0,0.9,2\n1,1.1,2\n")
    assert cli.main(["runs", "import", str(src), "--temperature", "4.2"]) == 2
    err = capsys.readouterr().err
    assert "--temperature" in err and "its own temperature" in err
    with pytest.raises(SystemExit) as refused:
        cli.main(["runs", "import", str(src), "--temperature", "-3"])
    assert refused.value.code == 2 and "--temperature" in capsys.readouterr().err


def test_fit_skips_bad_lines_of_a_text_spectrum(tmp_path, capsys):
    from daqapp.analysis.btk import Gap, conductance

    v = np.linspace(-10, 10, 161)
    g = conductance(v, 2.0, [Gap(2.0, 0.3, 0.6)])
    lines = [f"{a:.4f},{b:.6f}" for a, b in zip(v, g, strict=True)]
    lines.insert(40, "OVERLOAD")
    src = tmp_path / "spec.csv"
    src.write_text("bias (mV),G/GN\n" + "\n".join(lines) + "\n")
    assert cli.main(["fit", str(src), "--model", "s", "--temperature", "2"]) == 2
    capsys.readouterr()
    assert cli.main(["fit", str(src), "--model", "s", "--temperature", "2",
                     "--skip-bad-lines"]) == 0
    out, err = capsys.readouterr()
    assert "skipped 1 bad line (first: line 42" in err
    delta = next(line for line in out.splitlines() if line.split()[:1] == ["delta1"])
    assert float(delta.split()[1]) == pytest.approx(2.0, rel=1e-3)


@pytest.mark.parametrize("name", ["fit", "runs import"])
def test_the_option_is_in_the_help(name, capsys):
    with pytest.raises(SystemExit):
        cli.main([*name.split(), "--help"])
    assert "--skip-bad-lines" in capsys.readouterr().out
