"""Spectra for fitting from runs and from other labs' text files; CSV export of a run."""

import numpy as np
import pytest

from daqapp.errors import DataFileError
from daqapp.storage import open_run
from daqapp.storage.spectra import load_spectra
from daqapp.storage.textio import export_csv, read_table


def test_run_gives_one_spectrum_per_sweep_in_mV(spectrum_run):
    spectra = load_spectra(spectrum_run)
    assert [len(s) for s in spectra] == [21, 21, 11]
    assert [s.temperature_K for s in spectra] == [2.0, 3.0, 4.0]
    assert [s.field_T for s in spectra] == [0.0, 0.5, 1.0]
    assert not any(s.normalized for s in spectra)
    with open_run(spectrum_run) as run:
        first = run.sweeps()[0].columns
    np.testing.assert_allclose(spectra[0].bias_mV, first["dc_voltage"] * 1e3)
    np.testing.assert_array_equal(spectra[0].conductance, first["didv"])
    assert spectra[0].bias_mV[0] == pytest.approx(-10.0)
    assert "T=2 K" in spectra[0].label


def test_exported_csv_has_units_and_loads_back_as_the_same_spectra(spectrum_run, tmp_path):
    out = export_csv(spectrum_run, tmp_path / "run.csv")
    text = out.read_text()
    assert "dc_voltage (V),x (V),y (V),dvdi (ohm),didv (S)" in text
    assert "# procedure: procedures.spectrum.LockInSpectrum" in text
    table = read_table(out)
    assert table.units[table.names.index("didv")] == "S"
    assert table.data.shape == (53, 10)
    from_csv = load_spectra(out)
    from_run = load_spectra(spectrum_run)
    assert [s.temperature_K for s in from_csv] == [2.0, 3.0, 4.0]
    for a, b in zip(from_csv, from_run, strict=True):
        np.testing.assert_allclose(a.bias_mV, b.bias_mV, rtol=1e-11)
        np.testing.assert_allclose(a.conductance, b.conductance, rtol=1e-11)


def test_csv_with_several_temperatures_and_normalized_header(tmp_path):
    path = tmp_path / "other_lab.csv"
    rows = ["bias (mV),G/GN,T (K)"]
    for temperature in (2.0, 10.0, 20.0):
        for v in np.linspace(-20, 20, 9):
            # the thermometer wanders by a few mK within one spectrum
            rows.append(f"{v},{1 + 0.1 * np.exp(-v * v / 9)},{temperature + 0.003 * (v > 0)}")
    path.write_text("\n".join(rows) + "\n")
    spectra = load_spectra(path)
    assert len(spectra) == 3
    assert [round(s.temperature_K, 1) for s in spectra] == [2.0, 10.0, 20.0]
    assert all(s.normalized and len(s) == 9 for s in spectra)
    np.testing.assert_allclose(spectra[1].bias_mV, np.linspace(-20, 20, 9))


@pytest.mark.parametrize("content, factor", [
    ("# V_mV dIdV\n-1.0 0.5\n0.0 0.4\n1.0 0.5\n", 1.0),
    ("bias\tconductance\n-1.0\t0.5\n0.0\t0.4\n1.0\t0.5\n", 1.0),
    ("Vbias (V); G (S)\n-0.001; 0.5\n0; 0.4\n0.001; 0.5\n", 1.0),
    ("-1.0 0.5\n0.0 0.4\n1.0 0.5\n", 1.0),
])
def test_text_dialects(tmp_path, content, factor):
    path = tmp_path / "s.txt"
    path.write_text(content)
    [s] = load_spectra(path)
    np.testing.assert_allclose(s.bias_mV, [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(s.conductance, [0.5, 0.4, 0.5])
    assert s.temperature_K is None and not s.normalized


def test_dvdi_column_is_inverted_and_blank_lines_split_spectra(tmp_path):
    path = tmp_path / "r.dat"
    path.write_text("bias_mV dVdI_ohm\n-1 2\n0 4\n1 2\n\n-1 5\n1 5\n")
    a, b = load_spectra(path)
    np.testing.assert_allclose(a.conductance, [0.5, 0.25, 0.5])
    np.testing.assert_allclose(b.conductance, [0.2, 0.2])


@pytest.mark.parametrize("content, reason", [
    ("bias,G\n1,2\n3,oops\n", "line 3"),
    ("bias,G\n1,2\n3,4,5\n", "line 3: 3 columns, expected 2"),
    ("# nothing here\n", "no numeric rows"),
    ("foo,bar\n1,2\n", "cannot tell which column"),
    ("1\n2\n", "at least 2 columns"),
])
def test_unreadable_text_names_file_and_reason(tmp_path, content, reason):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataFileError, match=reason) as exc:
        load_spectra(path)
    assert "bad.csv" in str(exc.value)


def test_missing_file_and_foreign_hdf5(tmp_path):
    with pytest.raises(DataFileError, match="no such file"):
        load_spectra(tmp_path / "nope.csv")
    import h5py

    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["a"] = [1.0]
    with pytest.raises(DataFileError, match="x.h5.*not a daqapp run file"):
        load_spectra(tmp_path / "x.h5")


def test_text_import_to_run_and_buffer_keeps_the_spectra(tmp_path, capsys):
    from daqapp import cli
    from daqapp.storage.spectra import buffer_from_spectra

    src = tmp_path / "lab.csv"
    src.write_text("bias (mV),G/GN,T (K)\n-1,1.1,2\n0,0.9,2\n1,1.1,2\n-1,1.0,9\n1,1.0,9\n")
    out = tmp_path / "lab.h5"
    assert cli.main(["runs", "import", str(src), "--output", str(out)]) == 0
    original, imported = load_spectra(src), load_spectra(out)
    assert [len(s) for s in imported] == [3, 2]
    assert [s.temperature_K for s in imported] == [2.0, 9.0]
    assert all(s.normalized for s in imported)
    for a, b in zip(original, imported, strict=True):
        np.testing.assert_allclose(b.bias_mV, a.bias_mV)
        np.testing.assert_array_equal(b.conductance, a.conductance)
    buf = buffer_from_spectra(original)
    np.testing.assert_array_equal(buf.column("sweep"), [0, 0, 0, 1, 1])
    np.testing.assert_allclose(buf.column("dc_voltage"), [-1e-3, 0, 1e-3, -1e-3, 1e-3])
