"""Writer → file → reader: the layout of DESIGN.md and exact round trips."""

import json
import math

import h5py
import numpy as np
import pytest

import daqapp
from daqapp.errors import ConfigError, DataFileError
from daqapp.storage import RunBuffer, RunWriter, append_fit, open_run


def test_root_attributes_and_nexus(spectrum_run):
    with h5py.File(spectrum_run, "r") as f:
        a = f.attrs
        assert a["file_name"] == "spectrum.h5" and a["HDF5_Version"] == h5py.version.hdf5_version
        assert a["creator_version"] == daqapp.__version__
        run = f["entry/daqapp"].attrs
        assert run["format"] == "daqapp-run" and run["format_version"] == 2
        assert run["software_version"] == daqapp.__version__
        assert run["procedure"] == "procedures.spectrum.LockInSpectrum"
        assert run["status"] == "finished" and run["cell"] == "Cell 2"
        assert json.loads(run["parameters"])["excitation"] == {"value": 0.1, "units": "V"}
        # NeXus fields: definition, times, sample, user
        assert f["entry/definition"][()] == b"NXdaqapp_run"
        assert f["entry/definition"].attrs["version"] == "2"
        assert f["entry/start_time"][()] < f["entry/end_time"][()]
        assert f["entry/sample/name"][()] == b"La3Ni2O7"
        assert f["entry/sample/pressure"][()] == pytest.approx(18.8)
        assert f["entry/sample/pressure"].attrs["units"] == "GPa"
        assert f["entry/user/name"][()] == b"ana"
        # NeXus default chain root → entry → data, signal and axes resolvable
        entry = f[a["default"]]
        assert entry.attrs["NX_class"] == "NXentry"
        data = entry[entry.attrs["default"]]
        assert data.attrs["NX_class"] == "NXdata"
        assert data.attrs["signal"] == "didv"
        assert list(data.attrs["axes"]) == ["dc_voltage"]
        assert data.attrs["dc_voltage_indices"] == 0 and data.attrs["temperature_indices"] == 0
        assert data["didv"].attrs["units"] == "S" and data["dvdi"].attrs["units"] == "ohm"
        assert data["didv"].maxshape == (None,) and data["didv"].chunks is not None
        # every column is indexed by the bias, an HDF5 dimension scale (netCDF coordinates)
        assert data["dc_voltage"].is_scale
        assert all(data[k].dims[0][0] == data["dc_voltage"] for k in data if k != "dc_voltage")
        # stored once: the sweeps are an index of row segments, no 2-D copy
        sweeps = entry["sweeps"]
        assert all(sweeps[k].ndim == 1 for k in sweeps)
        assert list(sweeps["offset"][()]) == [0, 21, 42]
        assert list(sweeps["length"][()]) == [21, 21, 11]
        # parameters group: one dataset per parameter with units
        assert f["entry/parameters/bias_resistor"][()] == 48e3
        assert f["entry/parameters/bias_resistor"].attrs["units"] == "ohm"
        # snapshots are JSON text, never pickled objects
        assert isinstance(json.loads(f["entry/snapshots/start"][()]), dict)


def test_reader_round_trip(spectrum_run, spectrum_columns, make_record):
    with open_run(spectrum_run) as run:
        assert run.status == "finished" and run.finished
        assert run.units == spectrum_columns
        assert list(run.columns) == list(spectrum_columns)  # written order kept
        assert run.n_rows == 53
        expected = [make_record(s, i, n) for s, n in ((0, 21), (1, 21), (2, 11))
                    for i in range(n)]
        assert list(run.iter_records()) == [{k: float(v) for k, v in r.items()}
                                           for r in expected]
        assert run.metadata["cryostat"] == "PPMS" and run.metadata["operator"] == "ana"
        assert run.parameters["biases"] == {"value": [-0.01, 0.0, 0.01], "units": "V"}
        assert run.snapshots["end"]["lockin"]["tau"] == 0.3
        assert [(e.level, e.message) for e in run.log] == [("INFO", "spectrum done")]
        assert run.start_time < run.end_time


def test_sweeps_are_rows_with_their_temperature_field_time(spectrum_run):
    with open_run(spectrum_run) as run:
        sweeps = run.sweeps()
        assert [s.n_points for s in sweeps] == [21, 21, 11]
        assert [s.temperature for s in sweeps] == [2.0, 3.0, 4.0]
        assert [s.field for s in sweeps] == [0.0, 0.5, 1.0]
        assert [s.time for s in sweeps] == [1000.0, 1100.0, 1200.0]
        np.testing.assert_allclose(sweeps[2].columns["dc_voltage"], np.arange(-5, 6) * 1e-3)
        assert "sweep" not in sweeps[0].columns


def test_fit_round_trips_exactly_and_is_browsable(spectrum_run, fit_dict):
    FIT = fit_dict  # noqa: N806
    with open_run(spectrum_run) as run:
        assert run.fits == {"sweep0": FIT}
    with h5py.File(spectrum_run, "r") as f:
        g = f["entry/fit_results/sweep0"]
        assert g["model"][()] == b"btk_two_gap" and g["chi2"][()] == 12.5
        np.testing.assert_allclose(g["covariance"][()], FIT["covariance"])
        assert g["params/delta1/stderr"][()] == 0.05
        assert np.isnan(g["params/gamma/stderr"][()])
        assert g["params/gamma/stderr"].attrs["missing"]
        assert [s.decode() for s in g["param_names"][()]] == FIT["param_names"]
        assert json.loads(g["json"][()]) == FIT
        assert not (set(g.attrs) - {"NX_class"})  # no attributes NeXus does not define
    refit = dict(FIT, chi2=9.0)
    append_fit(spectrum_run, "sweep0", refit)
    append_fit(spectrum_run, "sweep1", FIT)
    with open_run(spectrum_run) as run:
        assert run.fits == {"sweep0": refit, "sweep1": FIT}
        assert [name for name, _, _ in run.fit_list] == ["sweep0", "sweep0", "sweep1"]


def test_unknown_column_is_named_and_missing_is_nan(tmp_path):
    w = RunWriter(tmp_path / "r.h5", procedure="p", columns={"a": "V", "b": "A"})
    w.start()
    with pytest.raises(ValueError, match="'c' is not a column"):
        w.append({"a": 1.0, "c": 2.0})
    w.append({"a": 1.0})
    w.append({"b": None, "a": "nonsense"})
    w.finish()
    with open_run(tmp_path / "r.h5") as run:
        np.testing.assert_array_equal(run.column("a")[:1], [1.0])
        assert math.isnan(run.column("a")[1])
        assert np.isnan(run.column("b")).all()
        assert not run.has_sweeps and run.sweeps() == []


def test_aborted_and_failed_runs_keep_reason(tmp_path):
    with pytest.raises(RuntimeError), RunWriter(tmp_path / "f.h5", procedure="p",
                                                columns={"a": ""}) as w:
        w.start()
        w.append({"a": 1.0})
        raise RuntimeError("lock-in overload")
    with open_run(tmp_path / "f.h5") as run:
        assert run.status == "failed" and not run.finished
        assert "lock-in overload" in run.attrs["error"]
        assert run.n_rows == 1
    w = RunWriter(tmp_path / "a.h5", procedure="p", columns={"a": ""}).start()
    w.finish("aborted", error="operator pressed abort")
    with open_run(tmp_path / "a.h5") as run:
        assert run.status == "aborted" and run.attrs["error"] == "operator pressed abort"
    with pytest.raises(ValueError, match="finish status"):
        RunWriter(tmp_path / "x.h5", procedure="p", columns={"a": ""}).finish("done")


def test_bad_configuration_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="sweep_axis = 'v'"):
        RunWriter(tmp_path / "r.h5", procedure="p", columns={"a": ""}, sweep_axis="v")
    with pytest.raises(ConfigError, match="reserved"):
        RunWriter(tmp_path / "r.h5", procedure="p", columns={"sweep_time": "s"})
    RunWriter(tmp_path / "r.h5", procedure="p", columns={"a": ""}).start().finish()
    with pytest.raises(DataFileError, match="already exists"):
        RunWriter(tmp_path / "r.h5", procedure="p", columns={"a": ""}).start()
    live = RunWriter(tmp_path / "live.h5", procedure="p", columns={"a": ""}).start()
    with pytest.raises(DataFileError, match="being written by this process"):
        open_run(tmp_path / "live.h5")
    live.finish()
    assert open_run(tmp_path / "live.h5").status == "finished"
    with pytest.raises(RuntimeError, match="finished"):
        w = RunWriter(tmp_path / "s.h5", procedure="p", columns={"a": ""}).start()
        w.finish()
        w.append({"a": 1.0})


def test_not_a_run_file_is_a_data_file_error(tmp_path):
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(DataFileError, match="junk.h5"):
        open_run(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = [1, 2]
    with pytest.raises(DataFileError, match="not a daqapp run file"):
        open_run(tmp_path / "other.h5")


def test_listener_sees_every_record_and_a_broken_one_cannot_stop_the_run(tmp_path):
    w = RunWriter(tmp_path / "r.h5", procedure="p", columns={"v": "V", "i": "A"})
    buf = RunBuffer(w.columns)
    calls = []

    def broken(record):
        calls.append(record)
        raise ZeroDivisionError

    w.add_listener(broken)
    w.add_listener(buf)
    w.start()
    for k in range(5000):
        w.append({"v": k * 1e-3, "i": k * 1e-6})
    w.finish()
    assert len(calls) == 5000 and len(buf) == 5000
    with open_run(tmp_path / "r.h5") as run:
        np.testing.assert_array_equal(buf.column("v"), run.column("v"))
        replay = RunBuffer.from_run(run)
    np.testing.assert_array_equal(replay.snapshot()["i"], buf.snapshot()["i"])


def test_pymeasure_style_column_names_with_slash_round_trip(tmp_path):
    cols = {"Bias (A)": "A", "dI/dV (S)": "S"}
    w = RunWriter(tmp_path / "p.h5", procedure="p", columns=cols, sweep_axis="Bias (A)")
    w.start()
    w.append({"Bias (A)": 1e-6, "dI/dV (S)": 0.02})
    w.finish()
    with open_run(tmp_path / "p.h5") as run:
        assert run.units == cols
        assert list(run.iter_records()) == [{"Bias (A)": 1e-6, "dI/dV (S)": 0.02}]


def test_extend_hands_over_a_batch_and_refuses_it_whole_naming_the_bad_record(tmp_path):
    w = RunWriter(tmp_path / "b.h5", procedure="p", columns={"v": "V", "sweep": ""},
                  sweep_axis="v").start()
    seen = []
    w.add_listener(seen.append)
    w.extend([{"v": float(k), "sweep": k // 3} for k in range(6)])
    with pytest.raises(ValueError, match="record key 'w' is not a column"):
        w.extend([{"v": 1.0}, {"v": 2.0, "w": 0.0}])
    with pytest.raises(ValueError, match="record sweep = -2"):
        w.extend([{"v": 1.0, "sweep": 0}, {"v": 2.0, "sweep": -2}])
    w.extend([{"v": 9.0}, {"v": 10.0, "sweep": None}])  # missing and None: NaN, in no sweep
    w.finish()
    assert len(seen) == 8  # listeners saw the accepted batches only
    with open_run(tmp_path / "b.h5") as run:
        np.testing.assert_array_equal(run.column("v"), [0, 1, 2, 3, 4, 5, 9, 10])
        assert [s.n_points for s in run.sweeps()] == [3, 3]
