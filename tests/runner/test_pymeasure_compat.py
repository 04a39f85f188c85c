"""pymeasure's own Worker records into the HDF5 run file and ends in the safe state."""

from __future__ import annotations

import json

import pytest
from pymeasure.experiment import Procedure, Worker

from daqapp.errors import LimitError
from daqapp.runner.pymeasure_compat import StorageResults, StorageWorker


def test_pymeasure_worker_records_to_hdf5(station, ramp_procedure, read_run, tmp_path):
    procedure = ramp_procedure(points=12, current_max=2e-4)
    path = tmp_path / "worker.h5"
    results = StorageResults(procedure, path, station=station, metadata={"sample": "Nb"})
    worker = StorageWorker(results)
    assert isinstance(worker, Worker)
    worker.start()
    worker.join(timeout=60)
    assert procedure.status == Procedure.FINISHED
    frame = results.data  # what pymeasure's plots read: from memory, same rows as the file
    assert list(frame["index"]) == list(range(12))
    stored = read_run(path)
    assert stored["attrs"]["status"] == "finished"
    assert list(stored["data"]["index"]) == list(range(12))
    assert stored["data"]["current"][-1] == pytest.approx(2e-4)
    assert stored["units"]["current"] == "A"
    assert json.loads(stored["end"][0])["source"]["enabled"] is False
    names = station.calls.names()
    assert names.index("procedure.shutdown") < names.index("station.to_safe_state")


def test_pymeasure_worker_failure_is_recorded(station, ramp_procedure, read_run, tmp_path):
    procedure = ramp_procedure(points=10)

    def fail(i):
        if i == 4:
            raise TimeoutError("VI_ERROR_TMO: lock-in did not answer")

    procedure.on_point = fail
    path = tmp_path / "failed.h5"
    worker = StorageWorker(StorageResults(procedure, path, station=station))
    worker.start()
    worker.join(timeout=60)
    stored = read_run(path)
    assert stored["attrs"]["status"] == "failed"
    assert "VI_ERROR_TMO" in stored["attrs"]["error"]
    assert len(stored["data"]["index"]) == 4
    assert "station.to_safe_state" in station.calls.names()


def test_limits_checked_before_worker_exists(station, ramp_procedure, tmp_path):
    with pytest.raises(LimitError, match="current_max"):
        StorageResults(ramp_procedure(current_max=1.0), tmp_path / "x.h5", station=station)
    assert station.calls == [] and not (tmp_path / "x.h5").exists()
