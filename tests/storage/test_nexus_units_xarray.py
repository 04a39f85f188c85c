"""Run files as other tools read them: NeXus (nexusformat's validator), pint, xarray, netCDF.

One file of every procedure is recorded on the virtual lab (plus a writer-made run with a
fit, an interrupted one and a recovered one); every file must validate against the NeXus base
classes with no error and no warning beyond ``EXPECTED_WARNINGS``, every stored unit must
parse in pint, and xarray must get real coordinates from the file itself and from
``to_xarray``.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
import pytest

from daqapp import cli
from daqapp.storage import layout as L
from daqapp.storage import open_run, to_xarray
from daqapp.storage.recover import recover_run
from daqapp.storage.units import EPOCH_UNITS

pint = pytest.importorskip("pint")
xr = pytest.importorskip("xarray")
validate = pytest.importorskip("nexusformat.nexus.validate")

CHILD = Path(__file__).with_name("swmr_child.py")
AUX_READOUT = {"dc_voltage_reader": "lockin_aux_in"}

#: The warnings nexusformat 2.x gives a daqapp run file (against the base classes and against
#: daqapp's application definition NXdaqapp_run), and why each is accepted.
EXPECTED_WARNINGS = {
    # a run whose writer died never wrote its end time: the field stays "" (it cannot be
    # created later, once SWMR is on), which is not an NX_DATE_TIME
    ("interrupted", "The field value is not a valid NX_DATE_TIME"),
}


def _procedures():
    from procedures.dcon import DifferentialConductanceDcon
    from procedures.iv import CriticalCurrentIV
    from procedures.lockin_spectrum import DifferentialConductanceLockIn
    from procedures.rt import ResistanceTemperature
    from procedures.series import FieldSweep, NbCalibration, TemperatureSeries

    return {
        "lockin": ({}, DifferentialConductanceLockIn(points=11, directions="up")),
        "dcon": ({"wiring": {"dc_bias_source": "current_source"}},
                 DifferentialConductanceDcon(bias_start=-1e-4, bias_stop=1e-4, step=2e-5,
                                             delta=2e-6, directions="up")),
        "iv": ({}, CriticalCurrentIV(current_max=5e-3, points=11, directions="up")),
        "rt": ({"preset": "nb-foil"},
               ResistanceTemperature(mode="step", t_start=10.0, t_stop=9.0, t_step=1.0,
                                     band=0.05, hold_time=5.0, readings=2, ramp_rate=5.0)),
        "temperature_series": ({"wiring": AUX_READOUT, "speed": 5000},
                               TemperatureSeries(temperatures="2, 3", points=7,
                                                 directions="up", hold_time=5.0, band=0.05,
                                                 ramp_rate=5.0)),
        "field_sweep": ({"wiring": AUX_READOUT, "speed": 5000},
                        FieldSweep(fields="0, 0.2", points=7, directions="up",
                                   field_rate=0.5)),
        "nb_calibration": ({"preset": "nb-foil",
                            "wiring": {"dc_bias_source": "current_source",
                                       "dc_voltage_reader": "nanovoltmeter"}},
                           NbCalibration(points=11, directions="up", hold_time=5.0,
                                         excitation=0.02)),
    }


@pytest.fixture(scope="module")
def run_files(tmp_path_factory) -> dict[str, Path]:
    """kind → run file: every procedure on the virtual lab, a writer-made run with a fit, a
    run whose writer was killed, and its recovered copy."""
    from daqapp.runner import Run
    from daqapp.station import Station

    folder = tmp_path_factory.mktemp("kinds")
    files: dict[str, Path] = {}
    for kind, (station, procedure) in _procedures().items():
        preset = station.get("preset", "la3ni2o7-cell2")
        speed = station.get("speed", 1000.0)
        tables = {k: v for k, v in station.items() if k not in ("preset", "speed")}
        for attempt in range(2):  # an emulator reply lost on a saturated machine: once more
            conn = Station.simulated(preset=preset, speed=speed, seed=1, **tables).connect()
            try:
                result = Run(procedure, station=conn, output_dir=folder / kind / str(attempt),
                             metadata={"sample": "virtual", "operator": "pytest",
                                       "cell": "Cell 2", "pressure_GPa": 18.8}).execute()
            finally:
                conn.close()
            if result.status == "finished":
                break
        assert result.status == "finished", (kind, result.error)
        files[kind] = Path(result.path)
    files["writer_with_fit"] = _writer_run(folder / "writer.h5")
    files["interrupted"] = _killed_run(folder / "killed.h5")
    files["recovered"] = recover_run(files["interrupted"]).path
    return files


def _writer_run(path: Path) -> Path:
    from daqapp.storage import RunWriter

    from .conftest import FIT, SPECTRUM_COLUMNS, spectrum_record

    w = RunWriter(path, procedure="tests.writer", columns=SPECTRUM_COLUMNS,
                  sweep_axis="dc_voltage",
                  parameters={"slope": {"value": 24, "units": "dB/oct"},
                              "nplc": {"value": 1.0, "units": "NPLC"},
                              "bias_resistor": {"value": 48e3, "units": "Ohm"}},
                  metadata={"sample": "Nb", "operator": "ana"})
    w.start({"lockin": {"tau": 0.1}})
    for s, n in ((0, 11), (1, 11)):
        for i in range(n):
            w.append(spectrum_record(s, i, n))
    w.add_fit("sweep0", FIT)
    w.finish()
    return path


def _killed_run(path: Path) -> Path:
    proc = subprocess.Popen([sys.executable, str(CHILD), str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started"
        proc.stdin.write("rows 60\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "flushed 60"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    return path


def _nexus_messages(path: Path, application: Path | None = None) -> list[tuple[str, str, str]]:
    """(context line, level, message) of every warning and error nexusformat gives: against
    the base classes, or against an application definition."""
    found: list[tuple[str, str, str]] = []
    context = [""]

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage().strip()
            if record.levelno >= logging.CRITICAL:
                context[0] = text
            elif record.levelno >= logging.WARNING:
                found.append((context[0], record.levelname.lower(), text))

    logger = validate.logger
    handler = Collect()
    old_level, old_handlers, old_propagate = logger.level, logger.handlers[:], logger.propagate
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    try:
        if application is None:
            validate.validate_file(str(path))
        else:
            validate.validate_application(str(path), application=str(application))
    finally:
        logger.handlers, logger.propagate = old_handlers, old_propagate
        logger.setLevel(old_level)
    return found


def test_every_kind_of_run_file_validates_as_nexus(run_files):
    assert len(run_files) == 10
    for kind, path in run_files.items():
        if kind == "interrupted":  # a killed writer's file opens in HDF5 tools once recovered
            path = run_files["recovered"]
        which = "interrupted" if kind == "recovered" else kind
        for application in (None, L.DEFINITION_FILE):  # base classes, then NXdaqapp_run
            messages = _nexus_messages(path, application)
            unexpected = [m for m in messages
                          if not (m[1] == "warning" and (which, m[2]) in EXPECTED_WARNINGS)]
            assert not unexpected, (kind, application, unexpected)


def test_nexus_metadata_where_nexus_puts_it(run_files):
    with h5py.File(run_files["iv"], "r") as f:
        assert set(f.attrs) <= {"NX_class", "default", "file_name", "file_time",
                                "HDF5_Version", "h5py_version", "creator", "creator_version"}
        assert f.attrs["file_name"] == run_files["iv"].name
        entry = f["entry"]
        assert entry["definition"][()] == b"NXdaqapp_run"
        datetime.fromisoformat(entry["start_time"][()].decode())
        datetime.fromisoformat(entry["end_time"][()].decode())
        assert entry["sample/name"][()] == b"virtual"
        assert entry["sample"].attrs["NX_class"] == "NXsample"
        assert entry["sample/pressure"][()] == pytest.approx(18.8)
        assert entry["user/name"][()] == b"pytest"
        # I–V: the default plot is V(I)
        data = entry["data"]
        assert data.attrs["signal"] == "voltage" and list(data.attrs["axes"]) == ["current"]
        assert data.attrs["resistance_indices"] == 0


def _units_of(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    with h5py.File(path, "r") as f:
        def visit(name: str, obj) -> None:
            if isinstance(obj, h5py.Dataset) and "units" in obj.attrs:
                value = obj.attrs["units"]
                out[name] = value.decode() if isinstance(value, bytes) else str(value)
        f.visititems(visit)
    return out


def test_every_stored_unit_parses_in_pint(run_files):
    ureg = pint.UnitRegistry()
    seen = set()
    for kind, path in run_files.items():
        if kind == "interrupted":
            continue
        units = _units_of(path)
        assert units, kind
        for unit in units.values():
            if " since " in unit:  # CF time: "<unit> since <ISO time>"
                step, origin = unit.split(" since ")
                assert ureg.parse_units(step).dimensionality == ureg.second.dimensionality
                datetime.fromisoformat(origin.replace("Z", "+00:00"))
            else:
                ureg.parse_units(unit)  # raises on 'Ohm', 'dB/oct', 'NPLC'
            seen.add(unit)
    assert {"ohm", "V", "A", "S", "K", "T", EPOCH_UNITS} <= seen
    with h5py.File(run_files["writer_with_fit"], "r") as f:
        slope = f["entry/parameters/slope"]
        assert slope.attrs["units"] == "" and "dB per octave" in slope.attrs["description"]
        assert "power-line cycles" in f["entry/parameters/nplc"].attrs["description"]
        assert f["entry/data/time"].attrs["units"] == EPOCH_UNITS


def test_netcdf_readers_get_coordinates_from_the_raw_file(run_files):
    for kind, axis in (("lockin", "dc_voltage"), ("iv", "current"), ("rt", "temperature"),
                       ("recovered", "dc_voltage")):  # a recovered copy re-attaches its scales
        with open_run(run_files[kind]) as run:  # (HDF5 refuses two opens with other locking)
            expected = run.column(axis).copy()
        with xr.open_dataset(run_files[kind], engine="h5netcdf", group="entry/data") as ds:
            assert not [d for d in ds.dims if str(d).startswith("phony_dim")], (kind, ds.dims)
            assert list(ds.dims) == [axis] and axis in ds.coords
            assert ds["time"].dtype.kind == "M"  # CF time decoded to datetime64
            np.testing.assert_array_equal(ds[axis].values, expected)


def test_to_xarray_has_coordinates_units_and_run_attributes(run_files):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = to_xarray(run_files["lockin"])
    with open_run(run_files["lockin"]) as run:
        n, didv, sweeps = run.n_rows, run.column("didv"), run.sweeps()
    assert ds.sizes["dc_voltage"] == n
    np.testing.assert_array_equal(ds.didv.values, didv)
    assert {"dc_voltage", "temperature", "field", "time", "sweep"} <= set(ds.coords)
    assert ds.didv.attrs["units"] == "S" and ds.dvdi.attrs["units"] == "ohm"
    assert ds.attrs["sample"] == "virtual" and ds.attrs["status"] == "finished"
    assert ds.attrs["procedure"].endswith("DifferentialConductanceLockIn")
    # the sweep index picks out each spectrum
    for k, s in enumerate(sweeps):
        off, length = int(ds.segment_offset[k]), int(ds.segment_length[k])
        np.testing.assert_array_equal(ds.didv.isel(dc_voltage=slice(off, off + length)),
                                      s.columns["didv"])
    lines = ds.didv.plot(x="dc_voltage")
    assert len(lines) == 1 and len(lines[0].get_xdata()) == n
    plt.close("all")


def test_runs_export_netcdf_opens_in_xarray(run_files, tmp_path, capsys):
    out = tmp_path / "iv.nc"
    assert cli.main(["runs", "export", "--format", "netcdf", str(run_files["iv"]),
                     "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    with open_run(run_files["iv"]) as run:
        voltage = run.column("voltage").copy()
    with xr.open_dataset(out) as ds:
        assert list(ds.dims)[0] == "current"
        np.testing.assert_array_equal(ds.voltage.values, voltage)
        assert ds.resistance.attrs["units"] == "ohm"
        assert ds.attrs["operator"] == "pytest"
        assert ds.time.dtype.kind == "M"
        assert math.isclose(ds.attrs["pressure_GPa"], 18.8)
