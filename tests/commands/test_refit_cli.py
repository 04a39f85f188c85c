"""``daqapp refit``: the results table, --jobs giving the serial numbers, --store appending
fits without touching the raw data, bad options in one line."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from daqapp import cli
from tests.analysis.test_batch import make_map


def read_table(path):
    with h5py.File(path, "r") as f:
        g = f["results"]
        return {k: g[k][()] for k in g}, {k: g[k].attrs.get("units", "") for k in g}


def test_refit_writes_one_row_per_spectrum_and_jobs_gives_the_serial_numbers(tmp_path, capsys):
    root = make_map(tmp_path / "map")
    assert cli.main(["refit", str(root), "--models", "s+s", "-o", str(tmp_path / "a.h5"),
                     "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "4 fits of 4 spectra in 2 contacts" in out
    assert cli.main(["refit", str(root), "--jobs", "2", "-o", str(tmp_path / "b.h5")]) == 0
    err = capsys.readouterr().err
    assert "4/4 spectra" in err and "ETA" in err
    serial, units = read_table(tmp_path / "a.h5")
    jobs, _ = read_table(tmp_path / "b.h5")
    assert sorted(serial) == sorted(jobs)
    for key in serial:
        np.testing.assert_array_equal(serial[key], jobs[key], err_msg=key)
    assert list(serial["temperature_K"]) == [3.0, 10.0, 3.0, 10.0]
    assert [m.decode() for m in serial["model"]] == ["s+s"] * 4
    assert units["delta1"] == "meV" and units["temperature_K"] == "K"
    assert serial["delta1"] == pytest.approx([23.0] * 4, rel=0.05)
    assert np.all(np.isfinite(serial["delta1_err"]) & np.isfinite(serial["aic"]))
    assert all(e == b"" for e in serial["error"])


def test_shared_fs_workers_read_the_files_and_give_the_same_table(tmp_path, capsys):
    root = make_map(tmp_path / "map")
    (root / "contact1" / "truncated.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    assert cli.main(["refit", str(root), "-o", str(tmp_path / "a.h5"), "--quiet"]) == 0
    serial_err = capsys.readouterr().err
    assert cli.main(["refit", str(root), "--shared-fs", "--jobs", "2",
                     "-o", str(tmp_path / "b.h5")]) == 0
    out, err = capsys.readouterr()
    assert "3/3 files" in err                      # the client counts files, not spectra
    assert "truncated.h5" in serial_err and "truncated.h5" in err  # the worker's note
    assert "4 fits of 4 spectra in 2 contacts" in out
    serial, _ = read_table(tmp_path / "a.h5")
    shared, _ = read_table(tmp_path / "b.h5")
    for key in serial:
        np.testing.assert_array_equal(serial[key], shared[key], err_msg=key)


def _raw_data(path):
    with h5py.File(path, "r") as f:
        return {k: f["entry/data"][k][()] for k in f["entry/data"]}


def test_store_appends_the_fits_and_leaves_the_raw_data_alone(tmp_path, capsys):
    from daqapp.storage import open_run

    root = make_map(tmp_path / "map", contacts=1)
    run_file = root / "contact0" / "spectra.h5"
    before = _raw_data(run_file)
    assert cli.main(["refit", str(root), "--store", "--quiet"]) == 0
    assert "2 fits appended" in capsys.readouterr().out
    assert (root / "report" / "refit.h5").is_file()
    after = _raw_data(run_file)
    assert sorted(before) == sorted(after)
    for key in before:
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)
    with open_run(run_file) as run:
        fits = run.fits
    assert {"sweep0000_s+s", "sweep0001_s+s"} <= set(fits)
    stored = fits["sweep0000_s+s"]
    assert stored["origin"] == "daqapp refit" and stored["model"] == "s+s"
    with h5py.File(root / "report" / "refit.h5", "r") as f:
        assert stored["params"]["delta1"]["value"] == f["results/delta1"][0]


@pytest.mark.parametrize("argv, words", [
    (["--jobs", "0"], "--jobs"),
    (["--models", "x+y"], "--models"),
    (["--scheduler", "localhost"], "--scheduler"),
])
def test_bad_options_are_one_line_and_exit_2(tmp_path, capsys, argv, words):
    root = make_map(tmp_path / "map", contacts=1, rows=[(3, 6.6, 4.0, 0.58, 0.40, 23.0, 6.0)])
    with pytest.raises(SystemExit) as exc:
        code = cli.main(["refit", str(root), *argv])
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]
