"""pymeasure's Worker, Manager and windows on top of daqapp's HDF5 run files.

pymeasure's ``Results`` writes a CSV through the Worker's ``Recorder`` and its ``data`` property
re-reads that CSV on every plot refresh. :class:`StorageResults` is a ``Results`` (so the Worker
and ``ManagedWindow`` accept it) whose rows go to the HDF5 ``RunWriter`` and whose ``data`` is
built from memory; :class:`StorageWorker` is pymeasure's ``Worker`` with the recorder replaced
by that path and with daqapp's end of run (procedure shutdown, station safe state, end
snapshot, status and error in the file). pymeasure's own Worker given a ``StorageResults``
would record nothing and never reach the safe state, so :class:`StorageWorker` is the only
Worker for it (:mod:`daqapp.gui.managed` gives pymeasure's window a Manager that makes it).

    results = StorageResults(procedure, "runs/nb.h5", station=conn)
    worker = StorageWorker(results)        # a pymeasure.experiment.Worker
    worker.start(); worker.join(timeout=3600)
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pymeasure.experiment import Procedure, Results, Worker
from pymeasure.experiment.results import CSVFormatter

from daqapp.errors import ConfigError, DataFileError
from daqapp.runner import events
from daqapp.runner.control import RunAborted, RunControl
from daqapp.runner.recording import RunRecorder, WriterFactory
from daqapp.runner.safe_state import apply_safe_state

log = logging.getLogger(__name__)

#: The run file's status for each way pymeasure's Worker leaves a procedure.
_FILE_STATUS = {Procedure.FINISHED: "finished", Procedure.ABORTED: "aborted",
                Procedure.FAILED: "failed", Procedure.RUNNING: "failed",
                Procedure.QUEUED: "failed"}
#: ... and back: what the Worker finally reports to pymeasure's Manager and browser.
_PYMEASURE_STATUS = {"finished": Procedure.FINISHED, "aborted": Procedure.ABORTED,
                     "failed": Procedure.FAILED}
_FINAL = frozenset(_PYMEASURE_STATUS.values())
#: Suffixes of an HDF5 run file (what ``daqapp runs``, replay and the report look for).
RUN_FILE_SUFFIXES = (".h5", ".hdf5")


class StorageResults(Results):
    """A pymeasure ``Results`` backed by an HDF5 run file and an in-memory table.

    Parameters and station limits are validated here, before a Worker exists and before any
    instrument moves (raises ``ConfigError``/``LimitError``/``DataFileError``). The file is
    created when the Worker starts running the procedure. ``station`` may be given later with
    :meth:`attach_station` (pymeasure scripts build ``Results(procedure, filename)``; the
    Manager of :mod:`daqapp.gui.managed` attaches its station then).
    """

    def __init__(self, procedure: Procedure, data_filename: str | Path, station: Any = None,
                 metadata: dict[str, Any] | None = None,
                 writer_factory: WriterFactory | None = None) -> None:
        if not isinstance(procedure, Procedure):
            raise ValueError("Results require a Procedure object")
        path = Path(data_filename)
        if path.suffix.lower() not in RUN_FILE_SUFFIXES:
            raise ConfigError(f"data_filename {str(path)!r}: daqapp run files are HDF5, give a "
                              f"name ending in .h5 (e.g. unique_filename(directory, ext='h5'))")
        if path.exists():
            raise DataFileError(f"{path}: run file already exists; choose another name "
                                "(runs are never overwritten)")
        self.procedure = procedure
        self.procedure_class = procedure.__class__
        self.parameters = procedure.parameter_objects()
        self._header_count = -1
        self._metadata_count = -1
        self._last_file_size = 0
        self.formatter = CSVFormatter(columns=procedure.DATA_COLUMNS)
        self.data_filename = str(data_filename)
        self.recorder = RunRecorder(path, procedure, station, metadata, writer_factory)
        self._columns: dict[str, list[float]] = {c: [] for c in procedure.DATA_COLUMNS}
        self._table_lock = threading.Lock()  # rows come from the Worker, plots read in Qt's
        self._frame: pd.DataFrame | None = None
        self._frame_rows = -1
        self.opened = False
        self.status: str | None = None  # the run file's final status and error, once closed
        self.error: str | None = None
        self.attach_station(station)

    def attach_station(self, station: Any) -> None:
        """Run on ``station`` (None: the procedure drives its own instruments, no safe
        state); validates parameters and station limits again, raising before anything moves."""
        if self.opened:
            raise RuntimeError(f"{self.data_filename}: the run is under way; its station is set")
        self.station = station
        self.recorder.station = station
        self.control = RunControl(station=station, on_status=self._on_control_status)
        self.procedure.station = station
        self.procedure.control = self.control
        validate = getattr(self.procedure, "validate", None)
        if callable(validate):
            validate()

    # pymeasure hooks -------------------------------------------------------------------
    @property
    def data_filenames(self) -> list[str]:
        """The CSV files pymeasure's Recorder writes: none. Only :class:`StorageWorker`
        (which creates the run file first) may run these results: pymeasure's own Worker
        would take every point and record none, so it is stopped here, before startup()."""
        if not self.opened:
            raise RuntimeError(f"{self.data_filename}: StorageResults record only under "
                               "daqapp's StorageWorker (daqapp.gui.managed.ManagedWindow or "
                               "Manager); pymeasure's Worker would record nothing")
        return []

    def store_metadata(self) -> None:
        """pymeasure writes metadata into the CSV header; here it is in the run file already."""

    def reload(self) -> None:
        """Nothing to re-read: ``data`` comes from memory."""

    @property
    def data(self) -> pd.DataFrame:
        """The rows so far as a DataFrame, rebuilt from memory only when rows were added."""
        with self._table_lock:
            rows = len(next(iter(self._columns.values()), []))
            if self._frame is None or rows != self._frame_rows:
                self._frame = pd.DataFrame({k: np.asarray(v, dtype=float)
                                            for k, v in self._columns.items()})
                self._frame_rows = rows
            return self._frame

    @property
    def rows(self) -> int:
        return self.recorder.rows

    @property
    def path(self) -> Path:
        """The run file (``Run.path``'s name, so :func:`daqapp.runner.station_lock.track_run`
        follows this run too)."""
        return self.recorder.path

    def subscribe(self, listener: events.Listener) -> events.Listener:
        """Call ``listener(event)`` for every event of this run (as ``Run.subscribe``)."""
        self.recorder.listeners.append(listener)
        return listener

    # storage path ---------------------------------------------------------------------
    def open(self) -> None:
        if not self.opened:
            self.recorder.open()
            self.opened = True

    def append(self, record: dict[str, Any]) -> None:
        self.recorder.record(record)
        with self._table_lock:
            for key, column in self._columns.items():
                column.append(float(record.get(key, np.nan)))

    def close(self, status: str, error: str | None,
              safe_state: dict[str, Any] | None = None) -> None:
        if self.opened:
            self.status, self.error = status, error
            self.recorder.close(status, error, safe_state)
            self.opened = False

    def _on_control_status(self, status: str, reason: str) -> None:
        level = "WARNING" if status == events.SUSPENDED else "INFO"
        self.recorder.log(level, f"{status}: {reason}")
        self.recorder.publish(events.STATUS, {"status": status, "reason": reason})

    @classmethod
    def load(cls, data_filename: str | Path, procedure_class: type | None = None
             ) -> RecordedResults:
        """pymeasure's ``Results.load`` for a run file: a past run to plot and browse."""
        return RecordedResults(data_filename, procedure_class)

    def __repr__(self) -> str:
        return (f"<StorageResults(filename='{self.data_filename}',"
                f"procedure={self.procedure_class.__name__},rows={self.rows})>")


class RecordedResults(Results):
    """A finished (or interrupted) run file as pymeasure's read-only ``Results``: the
    procedure with the parameters it ran with, its final status, and its rows as ``data``.

    ``procedure_class`` defaults to the class named in the file (imported)."""

    def __init__(self, data_filename: str | Path, procedure_class: type | None = None) -> None:
        from daqapp.storage import open_run

        with open_run(data_filename) as run:
            if procedure_class is None:
                procedure_class = _import_procedure(run.procedure, data_filename)
            procedure = procedure_class()
            procedure.set_parameters({k: v["value"] for k, v in run.parameters.items()},
                                     except_missing=False)
            procedure.status = _PYMEASURE_STATUS.get(run.status, Procedure.FAILED)
            columns, rows = run.columns, run.n_rows
        self.procedure = procedure
        self.procedure_class = procedure_class
        self.parameters = procedure.parameter_objects()
        self.formatter = CSVFormatter(columns=procedure.DATA_COLUMNS)
        self.data_filename = str(data_filename)
        self.data_filenames: list[str] = []
        self._data = pd.DataFrame({c: np.asarray(columns.get(c, np.full(rows, np.nan)),
                                                 dtype=float)
                                   for c in procedure.DATA_COLUMNS})

    @property
    def data(self) -> pd.DataFrame:
        return self._data

    def reload(self) -> None:
        """A closed run file does not change."""


def _import_procedure(dotted: str, path: str | Path) -> type:
    import importlib

    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise DataFileError(f"{path}: procedure {dotted!r} cannot be imported; pass its "
                            "class as procedure_class") from None


class StorageWorker(Worker):
    """pymeasure's Worker recording into an HDF5 run file through :class:`StorageResults`.

    ``stop()`` (pymeasure's abort button) aborts as daqapp's Abort does: the procedure's next
    checkpoint or settling wait raises, a procedure that only polls ``should_stop()`` returns;
    the run is "aborted", rows taken are kept. However the run ends, ``shutdown`` runs the
    procedure's shutdown, then the station's safe state (read back), then closes the file with
    the status, and only then reports the final status to pymeasure's Manager: when the
    window says finished/aborted/failed, the file is complete and the station safe ("failed"
    if the safe state is not confirmed, whatever ended the run).
    """

    def __init__(self, results: StorageResults, log_queue=None, log_level=logging.INFO,
                 port=None) -> None:
        if not isinstance(results, StorageResults):
            raise ValueError("StorageWorker needs a StorageResults (HDF5 run file)")
        super().__init__(results, log_queue=log_queue, log_level=log_level, port=port)
        self._error_text: str | None = None
        self._ended = False

    def stop(self) -> None:
        if not self._ended:  # pymeasure's run() calls stop() itself once it is over
            self.results.control.abort("aborted by operator")
        super().stop()

    def run(self) -> None:
        self.procedure = self.results.procedure
        try:
            self.results.open()  # start snapshot before startup() touches an instrument
        except Exception as exc:  # noqa: BLE001 - nothing has moved: report, do not run
            log.error("run file not created, procedure not started: %s", exc)
            self.results.status, self.results.error = "failed", f"run file not created: {exc}"
            self._ended = True
            self.update_status(Procedure.FAILED)
            self.monitor_queue.put(None)
            super().stop()
            return
        super().run()

    def update_status(self, status: int) -> None:
        if status in _FINAL and not self._ended:
            self.procedure.status = status  # the Manager hears it once the file is closed
            return
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
        exc = sys.exc_info()[1]
        if isinstance(exc, RunAborted):  # our own stop(): an abort, not a failure
            self._error_text = self.results.control.abort_reason or str(exc)
            self.procedure.status = Procedure.ABORTED
            return
        self._error_text = traceback.format_exc().strip().splitlines()[-1]
        super().handle_error()

    def shutdown(self) -> None:
        """pymeasure's shutdown, with daqapp's bookends before the final status goes out."""
        problems = []
        try:
            self.procedure.shutdown()
        except Exception as exc:  # noqa: BLE001 - the safe state must still follow
            problems.append(f"shutdown failed: {type(exc).__name__}: {exc}")
            if self.procedure.status == Procedure.RUNNING:
                self.procedure.status = Procedure.FAILED
        if self.procedure.status == Procedure.RUNNING:
            self.procedure.status = (Procedure.ABORTED if self.should_stop()
                                     else Procedure.FINISHED)
        if self.recorder is not None:
            self.recorder.stop()
        status = _FILE_STATUS.get(self.procedure.status, "failed")
        if status == "aborted" and self._error_text is None:
            self._error_text = "aborted by operator"
        safe = apply_safe_state(self.results.station)
        if safe is not None and not safe.confirmed:
            status = "failed"  # never "finished" with an instrument possibly left driving
            problems.append(safe.summary)
        error = "; ".join(filter(None, [self._error_text, *problems])) or None
        recorder = self.results.recorder
        rows = recorder.rows
        try:
            for level, message in (safe.log_lines() if safe else []):
                recorder.log(level, message)
            recorder.log("ERROR" if status == "failed" else "INFO",
                         f"run ended: {status} after {rows} points (pymeasure Worker); "
                         f"{safe.summary if safe else 'no station (no safe state)'}")
            self.results.close(status, error, safe.to_dict() if safe else None)
        except Exception as exc:  # noqa: BLE001 - the Manager must still hear the end
            log.error("closing the run file failed: %s", exc)
            status = "failed"
        finally:
            self._ended = True
            self.update_status(_PYMEASURE_STATUS[status])
            if status == "finished":
                self.emit("progress", 100.0)
            self.monitor_queue.put(None)
            if self.context is not None:
                self.publisher.close()
                self.context.term()
