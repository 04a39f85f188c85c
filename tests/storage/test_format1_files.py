"""Run files of format 1 (before data were stored once) still open, analyse and export.

``data/run_format1.h5`` was written by the format-1 RunWriter (daqapp at commit 7d40b52:
run attributes on the root, each column also as a NaN-padded 2-D (sweep, point) grid in
/entry/sweeps with sweep_index/temperature/field/time/n_points, heartbeat at
/entry/heartbeat), from ``conftest.spectrum_record``: sweeps of 21, 21 and 11 points, a fit
and a log line; then copied object by object with chunks shrunk to the data (63 kB instead of
600 kB), which leaves the layout the reader sees unchanged.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from daqapp import cli
from daqapp.analysis.spectroscopy import raw_spectra_from_run
from daqapp.storage import RunBuffer, load_spectra, open_run, to_xarray

from .conftest import FIT, SPECTRUM_COLUMNS, spectrum_record

FORMAT1 = Path(__file__).with_name("data") / "run_format1.h5"
SWEEPS = ((0, 21), (1, 21), (2, 11))


@pytest.fixture
def old_run(tmp_path) -> Path:
    path = tmp_path / "old.h5"
    shutil.copy(FORMAT1, path)
    return path


def test_the_fixture_is_format_1(old_run):
    with h5py.File(old_run, "r") as f:
        assert f.attrs["format_version"] == 1 and "daqapp" not in f["entry"]
        assert f["entry/sweeps/didv"].shape == (3, 21)


def test_format1_run_reads_as_before(old_run):
    with open_run(old_run) as run:
        assert run.format_version == 1
        assert run.status == "finished" and run.procedure.endswith("LockInSpectrum")
        assert run.metadata["sample"] == "La3Ni2O7" and run.metadata["cell"] == "Cell 2"
        assert run.units == SPECTRUM_COLUMNS
        expected = [spectrum_record(s, i, n) for s, n in SWEEPS for i in range(n)]
        assert list(run.iter_records()) == [{k: float(v) for k, v in r.items()}
                                           for r in expected]
        sweeps = run.sweeps()
        assert [s.n_points for s in sweeps] == [21, 21, 11]
        assert [s.temperature for s in sweeps] == [2.0, 3.0, 4.0]
        np.testing.assert_allclose(sweeps[2].columns["dc_voltage"], np.arange(-5, 6) * 1e-3)
        segments = run.sweep_segments()  # found from the sweep column
        assert segments["offset"].tolist() == [0, 21, 42]
        assert segments["length"].tolist() == [21, 21, 11]
        assert run.fits == {"sweep0": FIT}
        assert run.refresh() == 53 and not run.is_live
        assert len(RunBuffer.from_run(run)) == 53


def test_format1_run_analyses_and_exports(old_run, tmp_path, capsys):
    with open_run(old_run) as run:
        raw = raw_spectra_from_run(run)
    assert [len(r.x) for r in raw] == [21, 21, 11]
    assert [r.temperature_K for r in raw] == [2.0, 3.0, 4.0]
    assert [s.temperature_K for s in load_spectra(old_run)] == [2.0, 3.0, 4.0]
    ds = to_xarray(old_run)
    assert ds.sizes["dc_voltage"] == 53 and ds.attrs["format_version"] == 1
    assert cli.main(["runs", "show", str(old_run)]) == 0
    assert "sweeps (3, axis dc_voltage)" in capsys.readouterr().out
    assert cli.main(["runs", "export", str(old_run), "-o", str(tmp_path / "o.csv")]) == 0
