"""A dropped instrument connection mid-run, pymeasure's Worker on the lab, and ``daqapp run``."""

from __future__ import annotations

import math

import pytest

from daqapp import cli
from daqapp.runner import Run, events
from daqapp.runner.pymeasure_compat import StorageResults, StorageWorker
from daqapp.storage import open_run
from procedures import PROCEDURES, load
from procedures.lockin_spectrum import DifferentialConductanceLockIn

AUX_READOUT = {"dc_voltage_reader": "lockin_aux_in"}


def test_dropped_lockin_connection_fails_run_keeps_rows(lab_station, tmp_path):
    conn = lab_station(wiring=AUX_READOUT)
    run = Run(DifferentialConductanceLockIn(points=61, directions="up"), station=conn,
              output_dir=tmp_path)

    def drop_after_five(event):
        if event.kind == events.RECORD and run.rows == 5:
            conn.lab.faults.set("lockin", "drop")

    run.subscribe(drop_after_five)
    result = run.execute()
    assert result.status == "failed"
    assert result.rows >= 5
    assert "safe state NOT CONFIRMED: lockin" in result.error
    with open_run(result.path) as stored:
        assert stored.status == "failed"
        assert stored.n_rows == result.rows
        assert "lockin" in stored.attrs["error"]
        assert stored.snapshots["end"]["roles"]["lockin"].get("error")
    # the roles that still answer were made safe
    assert not conn.current_source.is_enabled()


def test_pymeasure_worker_runs_procedure_on_lab_into_hdf5(lab_station, tmp_path):
    conn = lab_station(wiring=AUX_READOUT)
    procedure = DifferentialConductanceLockIn(points=21, directions="up")
    path = tmp_path / "worker.h5"
    worker = StorageWorker(StorageResults(procedure, path, station=conn))
    worker.start()
    worker.join(timeout=120)
    with open_run(path) as stored:
        assert stored.status == "finished"
        assert stored.n_rows == 21
        assert stored.units["didv"] == "S"
    assert conn.lockin.excitation() == pytest.approx(0.004, abs=1e-3)


def test_every_procedure_has_estimate_and_safe_defaults():
    from daqapp.station import Station

    # Nb's 8 Ω contact needs the 6221 for its ±0.75 mA default bias (AUX: ±0.22 mA max)
    biased = Station.simulated(wiring={"dc_bias_source": "current_source"})
    for name in PROCEDURES:
        procedure = load(name)()
        procedure.station = biased if name == "nb-calibration" else Station.simulated()
        procedure.validate()  # defaults pass pymeasure's and the station's default limits
        estimate = procedure.estimate_duration()
        assert math.isfinite(estimate) and estimate > 0, name
        assert procedure.get_estimates()[0][0] == "Duration"
        assert procedure.column_units(), name


def test_cli_list_shows_parameters_with_units(capsys):
    assert cli.main(["run", "--list"]) == 0
    out = capsys.readouterr().out
    for name in PROCEDURES:
        assert name in out
    assert "excitation" in out and "0.004 .. 5" in out


@pytest.mark.parametrize("assignment, message", [
    ("bias_stop=2e-3", "bias_stop = 0.002 A is outside the allowed range -0.001 to 0.001 A "
                       "(station limit max_bias_current_a)"),
    ("excitation=9", "didv-lockin parameter excitation = 9 V is outside the allowed range "
                     "0.004 to 5 V"),
    ("spacing=log", "spacing = 'log'"),
])
def test_cli_bad_parameter_exits_2_with_one_line(capsys, tmp_path, assignment, message):
    code = cli.main(["run", "didv-lockin", "--simulate", "--set", assignment, "--output",
                     str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert message in err[0]
    assert list(tmp_path.iterdir()) == []  # nothing connected, nothing written


def test_cli_headless_run_writes_one_file(capsys, tmp_path):
    code = cli.main(["run", "didv-lockin", "--simulate", "--speed", "2000",
                     "--wiring", "dc_voltage_reader=lockin_aux_in", "--set", "points=11",
                     "--set", "directions=up", "--meta", "sample=Nb foil", "--output",
                     str(tmp_path), "--quiet"])
    assert code == 0
    files = list(tmp_path.glob("*.h5"))
    assert len(files) == 1
    with open_run(files[0]) as stored:
        assert stored.status == "finished" and stored.n_rows == 11
        assert stored.metadata.get("sample") == "Nb foil" or \
            stored.file.attrs["sample"] == "Nb foil"
    assert "finished: 11 rows" in capsys.readouterr().out
