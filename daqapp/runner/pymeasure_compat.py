"""pymeasure's Worker, Manager and windows on top of daqapp's HDF5 run files.

pymeasure's ``Results`` writes a CSV through the Worker's ``Recorder`` and its ``data`` property
re-reads that CSV on every plot refresh. :class:`StorageResults` is a ``Results`` (so the Worker
and ``ManagedWindow`` accept it) whose rows go to the HDF5 ``RunWriter`` and whose ``data`` is
built from memory; :class:`StorageWorker` is pymeasure's ``Worker`` with the recorder replaced
by that path and with daqapp's end of run (procedure shutdown, station safe state, end
snapshot, status and error in the file).

    results = StorageResults(procedure, "runs/nb.h5", station=conn)
    worker = StorageWorker(results)        # a pymeasure.experiment.Worker
    worker.start(); worker.join(timeout=3600)
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pymeasure.experiment import Procedure, Results, Worker
from pymeasure.experiment.results import CSVFormatter

from daqapp.runner import events
from daqapp.runner.control import RunControl
from daqapp.runner.recording import RunRecorder, WriterFactory
from daqapp.runner.safe_state import apply_safe_state

log = logging.getLogger(__name__)

_FILE_STATUS = {Procedure.FINISHED: "finished", Procedure.ABORTED: "aborted",
                Procedure.FAILED: "failed", Procedure.RUNNING: "failed",
                Procedure.QUEUED: "failed"}


class StorageResults(Results):
    """A pymeasure ``Results`` backed by an HDF5 run file and an in-memory table.

    Parameters and station limits are validated here, before a Worker exists and before any
    instrument moves (raises ``ConfigError``/``LimitError``). The file is created when the
    Worker starts running the procedure.
    """

    def __init__(self, procedure: Procedure, data_filename: str | Path, station: Any = None,
                 metadata: dict[str, Any] | None = None,
                 writer_factory: WriterFactory | None = None) -> None:
        if not isinstance(procedure, Procedure):
            raise ValueError("Results require a Procedure object")
        self.procedure = procedure
        self.procedure_class = procedure.__class__
        self.station = station
        self.control = RunControl(station=station)
        procedure.station = station
        procedure.control = self.control
        validate = getattr(procedure, "validate", None)
        if callable(validate):
            validate()
        self.parameters = procedure.parameter_objects()
        self._header_count = -1
        self._metadata_count = -1
        self._last_file_size = 0
        self.formatter = CSVFormatter(columns=procedure.DATA_COLUMNS)
        self.data_filename = str(data_filename)
        self.data_filenames: list[str] = []  # the Worker's Recorder writes no CSV
        self.recorder = RunRecorder(Path(data_filename), procedure, station, metadata,
                                    writer_factory)
        self._columns: dict[str, list[float]] = {c: [] for c in procedure.DATA_COLUMNS}
        self._frame: pd.DataFrame | None = None
        self._frame_rows = -1
        self.opened = False

    # pymeasure hooks -------------------------------------------------------------------
    def store_metadata(self) -> None:
        """pymeasure writes metadata into the CSV header; here it is in the run file already."""

    def reload(self) -> None:
        """Nothing to re-read: ``data`` comes from memory."""

    @property
    def data(self) -> pd.DataFrame:
        """The rows so far as a DataFrame, rebuilt from memory only when rows were added."""
        rows = self.rows
        if self._frame is None or rows != self._frame_rows:
            self._frame = pd.DataFrame({k: np.asarray(v, dtype=float)
                                        for k, v in self._columns.items()})
            self._frame_rows = rows
        return self._frame

    @property
    def rows(self) -> int:
        return self.recorder.rows

    # storage path ---------------------------------------------------------------------
    def open(self) -> None:
        if not self.opened:
            self.recorder.open()
            self.opened = True

    def append(self, record: dict[str, Any]) -> None:
        self.recorder.record(record)
        for key, column in self._columns.items():
            column.append(float(record.get(key, np.nan)))

    def close(self, status: str, error: str | None,
              safe_state: dict[str, Any] | None = None) -> None:
        if self.opened:
            self.recorder.close(status, error, safe_state)
            self.opened = False

    def __repr__(self) -> str:
        return (f"<StorageResults(filename='{self.data_filename}',"
                f"procedure={self.procedure_class.__name__},rows={self.rows})>")


class StorageWorker(Worker):
    """pymeasure's Worker recording into an HDF5 run file through :class:`StorageResults`.

    ``stop()`` (pymeasure's abort button) asks the procedure to finish its point and return,
    which pymeasure reports as "aborted"; either way the station ends in its safe state.
    """

    def __init__(self, results: StorageResults, log_queue=None, log_level=logging.INFO,
                 port=None) -> None:
        if not isinstance(results, StorageResults):
            raise ValueError("StorageWorker needs a StorageResults (HDF5 run file)")
        super().__init__(results, log_queue=log_queue, log_level=log_level, port=port)
        self._error_text: str | None = None

    def stop(self) -> None:
        self.results.control.stop()
        super().stop()

    def update_status(self, status: int) -> None:
        if status == Procedure.RUNNING:
            self.results.open()  # start snapshot before startup() touches an instrument
        super().update_status(status)
        name = Procedure.STATUS_STRINGS.get(status, str(status)).lower()
        self.results.recorder.publish(events.STATUS, {"status": name, "reason": ""})

    def emit(self, topic: str, record: Any) -> None:
        super().emit(topic, record)
        if topic in ("progress", "sweep_end", "fit", "log"):
            self.results.recorder.handle(topic, record)

    def handle_record(self, record: dict[str, Any]) -> None:
        self.results.append(record)

    def handle_error(self) -> None:
        self._error_text = traceback.format_exc().strip().splitlines()[-1]
        super().handle_error()

    def shutdown(self) -> None:
        problems = []
        try:
            super().shutdown()
        except Exception as exc:  # noqa: BLE001 - the safe state must still follow
            problems.append(f"shutdown failed: {type(exc).__name__}: {exc}")
            if self.procedure.status == Procedure.RUNNING:
                self.procedure.status = Procedure.FAILED
            if self.recorder is not None and self.recorder.is_alive():
                self.recorder.stop()
            self.monitor_queue.put(None)
        status = _FILE_STATUS.get(self.procedure.status, "failed")
        safe = apply_safe_state(self.results.station)
        if safe is not None and not safe.confirmed:
            status = "failed"  # never "finished" with an instrument possibly left driving
            problems.append(safe.summary)
        error = "; ".join(filter(None, [self._error_text, *problems])) or None
        recorder = self.results.recorder
        for level, message in (safe.log_lines() if safe else []):
            recorder.log(level, message)
        recorder.log("ERROR" if status == "failed" else "INFO",
                     f"run ended: {status} (pymeasure Worker); "
                     f"{safe.summary if safe else 'no station (no safe state)'}")
        self.results.close(status, error, safe.to_dict() if safe else None)
