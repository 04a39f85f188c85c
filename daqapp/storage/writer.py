"""RunWriter: streams a run's records into one HDF5 file from one writer thread, SWMR on.

Why one thread: h5py serialises every call on a global lock and HDF5 itself is not
re-entrant, so the acquisition thread must never wait on disk. ``append``/``extend`` only put
the records on an in-memory list and hand them to the listeners (plots, fits); the writer
thread takes the whole list at once, turns it into columns and writes each column with one
slice assignment.

Stored once: every reading lives in its 1-D column only; a sweep is a list of (sweep, offset,
length) segments of those columns, so the writer's per-batch cost is the columns' write plus a
few index rows, and the reader builds 2-D sweep views from the index.

Crash safety: every dataset exists before ``swmr_mode`` is switched on, so HDF5 only ever
extends datasets in place; the file is flushed at least every ``flush_interval`` seconds, and a
reader (also in another process, also after SIGKILL) sees every row up to the last flush.
"""

from __future__ import annotations

import atexit
import logging
import math
import operator
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import h5py
import numpy as np

import daqapp
from daqapp.errors import ConfigError, DataFileError
from daqapp.storage import layout as L
from daqapp.storage.buffer import as_float
from daqapp.storage.fits import write_fit_groups
from daqapp.storage.liveness import WriterLock
from daqapp.storage.units import EPOCH_UNITS, stored_unit

log = logging.getLogger(__name__)

RecordListener = Callable[[Mapping[str, float]], None]

_CHUNK_ROWS = 4096
_SEGMENT_CHUNK = 256
#: Sweep indices beyond this are a bug in the procedure (a sweep per row, for days).
MAX_SWEEPS = 100_000


#: Real paths this process is writing; HDF5 cannot open them a second time in-process.
ACTIVE_PATHS: set[str] = set()
#: Writers started and not yet finished; closed as "failed" at interpreter exit.
_UNFINISHED: weakref.WeakSet[RunWriter] = weakref.WeakSet()
#: How long the exit hook waits for a writer thread to drain before giving up on it.
EXIT_DRAIN_S = 5.0


@atexit.register
def _finish_abandoned_writers() -> None:
    """A run nobody finished (an exception path that skipped ``finish``) ends "failed".

    Runs before h5py's own teardown: an HDF5 file still open for SWMR writing at interpreter
    exit, with a writer thread mid-batch, made the process hang instead of exiting.
    """
    for writer in list(_UNFINISHED):
        try:
            writer.finish("failed", error="process exited without finishing the run",
                          join_timeout=EXIT_DRAIN_S)
        except Exception:  # noqa: BLE001 - exiting anyway; the file reads as interrupted
            log.exception("%s: could not close the run at exit", writer.path)


def now_iso() -> str:
    """Local time with UTC offset, ISO-8601, to the microsecond."""
    return datetime.now().astimezone().isoformat(timespec="microseconds")


class _Fit:
    __slots__ = ("name", "json", "time")

    def __init__(self, name: str, fit_json: str, t: float) -> None:
        self.name, self.json, self.time = name, fit_json, t


class _LogLine:
    __slots__ = ("time", "level", "message")

    def __init__(self, t: float, level: str, message: str) -> None:
        self.time, self.level, self.message = t, level, message


class _Stop:
    __slots__ = ()


class RunWriter:
    """Write one run file: attributes, snapshots, columns, sweep index, fits and log.

    ``columns`` maps column name → units. When ``sweep_axis`` names a column and the records
    carry a ``sweep`` index, the rows of each sweep are indexed as (sweep, offset, length)
    segments of the columns; the reader turns them into one spectrum per sweep.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        procedure: str,
        parameters: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        columns: Mapping[str, str] | None = None,
        sweep_axis: str | None = None,
        *,
        signal: str | None = None,
        flush_interval: float = 0.5,
        max_backlog: int = 20_000,
        listeners: list[RecordListener] | None = None,
    ) -> None:
        self.path = os.fspath(path)
        if not columns:
            raise ConfigError("RunWriter columns: at least one column (name → units) is needed")
        self.columns: dict[str, str] = {str(k): str(v) for k, v in columns.items()}
        for name in self.columns:
            if not name.strip() or name in (".", "..") or name in L.RESERVED_COLUMNS:
                raise ConfigError(f"RunWriter column name {name!r}: must be non-empty, not "
                                  f"'.' and not one of {', '.join(sorted(L.RESERVED_COLUMNS))} "
                                  "(reserved)")
        self._column_set = frozenset(self.columns)
        self._row_of = operator.itemgetter(*self.columns)  # a record as a tuple, column order
        if sweep_axis is not None and sweep_axis not in self.columns:
            raise ConfigError(f"RunWriter sweep_axis = {sweep_axis!r} is not a column "
                              f"(columns: {', '.join(self.columns)})")
        if signal is not None and signal not in self.columns:
            raise ConfigError(f"RunWriter signal = {signal!r} is not a column "
                              f"(columns: {', '.join(self.columns)})")
        if not 0.01 <= flush_interval <= 1.0:
            raise ConfigError(f"RunWriter flush_interval = {flush_interval:g} s is outside "
                              "the allowed range 0.01 to 1 s")
        self.procedure = procedure
        self.parameters = _normalise_parameters(parameters or {})
        self.metadata = dict(metadata or {})
        self.sweep_axis = sweep_axis
        self.signal = signal or _pick_signal(self.columns, sweep_axis)
        self.flush_interval = float(flush_interval)
        self.max_backlog = int(max_backlog)
        self._sweeps_on = sweep_axis is not None and L.SWEEP_COLUMN in self.columns
        self._listeners: list[RecordListener] = list(listeners or [])
        self._listener_failed: set[int] = set()

        # records waiting for the writer thread, and the commands (fits, log lines, stop)
        # queued among them, each with the number of records queued before it
        self._pending: list[Mapping[str, Any]] = []
        self._commands: list[tuple[int, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._drained = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._state = "new"  # new → running → finished
        self._file: h5py.File | None = None
        self._writer_lock: WriterLock | None = None
        self.rows_written = 0
        self.rows_flushed = 0
        self.status = "new"
        self._fits: list[tuple[str, str]] = []
        self._warned_columns: set[str] = set()
        # sweep index bookkeeping (writer thread only): the open (last) segment
        self._n_segments = 0
        self._last_segment: list[int] | None = None  # [sweep, offset, length]

    # ---------------------------------------------------------------- listeners
    def add_listener(self, listener: RecordListener) -> None:
        """Call ``listener(record)`` for every appended record, in the appending thread.

        In-memory consumers (plot buffers, the fit worker) hang here so they never re-read the
        file. A listener that raises is logged once and skipped; it cannot stop the run.
        """
        self._listeners.append(listener)

    # ---------------------------------------------------------------- lifecycle
    def start(self, snapshot: Mapping[str, Any] | None = None) -> RunWriter:
        """Create the file and every dataset, store the start snapshot, switch SWMR on."""
        if self._state != "new":
            raise RuntimeError(f"RunWriter.start: writer for {self.path} already started")
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        try:
            f = h5py.File(self.path, "w-", libver="latest")
        except FileExistsError:
            raise DataFileError(f"{self.path}: run file already exists; "
                                "choose another name (runs are never overwritten)") from None
        except OSError as exc:
            raise DataFileError(f"{self.path}: cannot create run file: {exc}") from None
        try:
            self._create_layout(f, snapshot or {})
            f.flush()
            f.swmr_mode = True
        except BaseException:
            f.close()
            raise
        self._file = f
        ACTIVE_PATHS.add(os.path.realpath(self.path))
        try:
            self._writer_lock = WriterLock(self.path)
        except OSError as exc:  # liveness falls back to the heartbeat
            log.warning("%s: liveness lock not available (%s)", self.path, exc)
        self._state = "running"
        self.status = "running"
        _UNFINISHED.add(self)
        self._thread = threading.Thread(target=self._run, name=f"RunWriter[{self.path}]",
                                        daemon=True)
        self._thread.start()
        return self

    def append(self, record: Mapping[str, Any]) -> None:
        """Queue one record (column → value) for writing; never waits on the disk.

        Keys must be columns of the run (else ValueError naming the key); missing columns are
        written as NaN. Blocks only if the writer thread is ``max_backlog`` rows behind.
        """
        self.extend((record,))

    def extend(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Queue many records at once: one lock, one hand-over to the writer thread.

        The records are checked as ``append`` checks one, but per batch: the check costs
        a few C-level passes, not a Python loop per record.
        """
        if self._state != "running":
            raise RuntimeError(f"RunWriter.append: run {self.path} is {self._state}, not running")
        if self._error is not None:
            raise DataFileError(f"{self.path}: writer thread failed: {self._error}")
        records = records if isinstance(records, (list, tuple)) else list(records)
        self._check(records)
        self._put_many(records)
        for listener in self._listeners:
            for record in records:
                try:
                    listener(record)
                except Exception:  # noqa: BLE001 - a broken plot must not stop the measurement
                    if id(listener) not in self._listener_failed:
                        self._listener_failed.add(id(listener))
                        log.exception("record listener %r failed; further errors suppressed",
                                      listener)

    def _check(self, records: list[Mapping[str, Any]] | tuple[Mapping[str, Any], ...]) -> None:
        """Refuse a batch holding an unknown key or a bad sweep number, naming the first.

        Checked per batch in C (the union of the keys, the sweep numbers as one array); the
        record-by-record walk only runs to name what a failing batch holds.
        """
        keys = set().union(*records) if len(records) > 1 else \
            (records[0].keys() if records else ())
        if not self._column_set.issuperset(keys):
            unknown = next(k for r in records for k in r if k not in self._column_set)
            raise ValueError(f"record key {unknown!r} is not a column of run {self.path} "
                             f"(columns: {', '.join(self.columns)})")
        if not self._sweeps_on:
            return
        sweeps = [r.get(L.SWEEP_COLUMN) for r in records]
        try:
            values = np.array(sweeps, dtype="f8")
            if values.ndim == 1 and bool(np.all(np.isnan(values) | ((values >= 0)
                                                                   & (values < MAX_SWEEPS)))):
                return
        except (TypeError, ValueError):
            pass
        for sweep in sweeps:
            if sweep is not None and not (isinstance(sweep, (int, float, np.number))
                                          and (0 <= sweep < MAX_SWEEPS or sweep != sweep)):
                raise ValueError(f"record sweep = {sweep!r}: must be a number from 0 to "
                                 f"{MAX_SWEEPS - 1} (or NaN for points outside any sweep)")

    def add_fit(self, name: str, fit: Mapping[str, Any]) -> None:
        """Store a fit result (``FitResult.to_dict()``) under ``name``; exact JSON round trip."""
        if self._state != "running":
            raise RuntimeError(f"RunWriter.add_fit: run {self.path} is {self._state}")
        if not name or not str(name).strip():
            raise ValueError("add_fit name: a non-empty name is needed")
        self._put(_Fit(str(name), L.dumps(dict(fit)), time.time()))

    def log(self, level: str, message: str) -> None:
        """Append one line to the run's log dataset (time, level, message)."""
        if self._state != "running":
            raise RuntimeError(f"RunWriter.log: run {self.path} is {self._state}")
        self._put(_LogLine(time.time(), str(level).upper(), str(message)))

    def finish(self, status: str = "finished", snapshot: Mapping[str, Any] | None = None,
               error: str | BaseException | None = None, *,
               join_timeout: float | None = None) -> None:
        """Write everything queued, the end snapshot, end time and status; close the file.

        With ``join_timeout``, a writer thread still busy after that long is abandoned (a
        daemon: it cannot hold the process) and the file is left to read as interrupted.
        """
        if status not in L.FINAL_STATUSES:
            raise ValueError(f"finish status = {status!r}; allowed: {', '.join(L.FINAL_STATUSES)}")
        if self._state == "finished":
            return
        if self._state == "new":
            raise RuntimeError(f"RunWriter.finish: run {self.path} was never started")
        self._state = "finishing"
        assert self._thread is not None
        if join_timeout is not None:  # never wait on a full backlog at exit
            with self._lock:
                self._commands.append((len(self._pending), _Stop()))
            self._wake.set()
        else:
            self._put(_Stop())
        self._thread.join(join_timeout)
        if self._thread.is_alive():
            log.error("%s: writer thread still busy after %.0f s; run left unfinished "
                      "(it reads as interrupted)", self.path, join_timeout or 0.0)
            if self._writer_lock is not None:
                self._writer_lock.release()
            _UNFINISHED.discard(self)
            return
        f = self._file
        assert f is not None
        thread_error = self._error
        if thread_error is not None and status == "finished":
            status = "failed"
        if error is None and thread_error is not None:
            error = f"writer thread: {thread_error}"
        try:
            if snapshot is not None:
                end = f[L.SNAPSHOTS]["end"]
                end.resize((1,))
                end[0] = L.dumps(snapshot)
            f[L.ENTRY]["end_time"][()] = now_iso()
            run = f[L.RUN].attrs
            run["error"] = "" if error is None else _error_text(error)
            run["n_rows"] = self.rows_written
            run["status"] = status
            f[L.HEARTBEAT][0] = time.time()
            f.flush()
        finally:
            f.close()
            self._file = None
            ACTIVE_PATHS.discard(os.path.realpath(self.path))
            if self._writer_lock is not None:
                self._writer_lock.release()
            self._state = "finished"
            self.status = status
            _UNFINISHED.discard(self)
        self.rows_flushed = self.rows_written
        if self._fits:
            try:  # the per-fit groups need object creation, impossible under SWMR
                write_fit_groups(self.path, self._fits)
            except OSError as exc:  # a reader holds the file: the JSON list still has all fits
                log.warning("%s: fits kept as JSON only (file busy: %s)", self.path, exc)
        if thread_error is not None:
            raise DataFileError(f"{self.path}: writing failed: {thread_error}") from thread_error

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._state in ("running", "finishing"):
            if exc_type is None:
                self.finish("finished")
            elif issubclass(exc_type, KeyboardInterrupt):
                self.finish("aborted", error=exc)
            else:
                self.finish("failed", error=exc)

    # ---------------------------------------------------------------- queue
    def _put(self, command: Any) -> None:
        """Queue a command (a fit, a log line, the stop) after the records queued so far."""
        with self._lock:
            self._wait_for_room()
            first = not self._pending and not self._commands
            self._commands.append((len(self._pending), command))
        if first:
            self._wake.set()

    def _put_many(self, records: list[Any] | tuple[Any, ...]) -> None:
        with self._lock:
            self._wait_for_room()
            first = not self._pending and not self._commands
            self._pending.extend(records)
        if first and records:
            self._wake.set()

    def _wait_for_room(self) -> None:
        """Block (lock held) while the writer thread is ``max_backlog`` records behind."""
        while len(self._pending) >= self.max_backlog and self._error is None \
                and self._thread is not None and self._thread.is_alive():
            self._drained.wait(0.1)

    # ---------------------------------------------------------------- file layout
    def _create_layout(self, f: h5py.File, snapshot: Mapping[str, Any]) -> None:
        meta = self.metadata
        started = now_iso()
        a = f.attrs
        a["NX_class"] = "NXroot"
        a["default"] = L.ENTRY
        a["file_name"] = os.path.basename(self.path)
        a["file_time"] = started
        a["HDF5_Version"] = h5py.version.hdf5_version
        a["h5py_version"] = h5py.version.version
        a["creator"] = "daqapp"
        a["creator_version"] = daqapp.__version__

        entry = f.create_group(L.ENTRY, track_order=True)
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["default"] = "data"
        definition = entry.create_dataset("definition", data=L.DEFINITION, dtype=L.STR_DTYPE)
        definition.attrs["version"] = str(L.FORMAT_VERSION)
        sample_name = str(meta.get("sample", "") or "")
        title = self.procedure.rsplit(".", 1)[-1] + (f" of {sample_name}" if sample_name else "")
        entry.create_dataset("title", data=title, dtype=L.STR_DTYPE)
        entry.create_dataset("start_time", data=started, dtype=L.STR_DTYPE)
        # "" until finish writes it (a field cannot be created once SWMR is on)
        entry.create_dataset("end_time", data="", dtype=L.STR_DTYPE)
        program = entry.create_dataset("program_name", data="daqapp", dtype=L.STR_DTYPE)
        program.attrs["version"] = daqapp.__version__

        sample = f.create_group(L.SAMPLE)
        sample.attrs["NX_class"] = "NXsample"
        sample.create_dataset("name", data=sample_name, dtype=L.STR_DTYPE)
        cell = str(meta.get("cell", "") or "")
        if cell:
            sample.create_dataset("description", data=f"in {cell}", dtype=L.STR_DTYPE)
        pressure = meta.get("pressure_GPa")
        if pressure is not None:
            sample.create_dataset("pressure", data=float(pressure)).attrs["units"] = "GPa"
        user = f.create_group(L.USER)
        user.attrs["NX_class"] = "NXuser"
        user.create_dataset("name", data=str(meta.get("operator", "") or ""), dtype=L.STR_DTYPE)

        run = f.create_group(L.RUN)
        run.attrs["NX_class"] = "NXcollection"
        r = run.attrs
        r["format"] = L.FORMAT_NAME
        r["format_version"] = L.FORMAT_VERSION
        r["software_version"] = daqapp.__version__
        r["procedure"] = self.procedure
        r["parameters"] = L.dumps(self.parameters)
        r["status"] = "running"
        r["error"] = ""
        r["n_rows"] = 0
        r["sweep_axis"] = self.sweep_axis or ""
        r["cell"] = cell
        extra = {k: v for k, v in meta.items()
                 if k not in ("operator", "sample", "cell", "pressure_GPa")}
        r["metadata"] = L.dumps(extra)
        hb = run.create_dataset("heartbeat", data=[time.time()], dtype="f8")
        hb.attrs["units"] = EPOCH_UNITS

        params = f.create_group(L.PARAMETERS)
        params.attrs["NX_class"] = "NXparameters"
        for name, spec in self.parameters.items():
            value = spec.get("value")
            try:
                ds = params.create_dataset(name, data=_param_data(value))
            except (TypeError, ValueError):
                ds = params.create_dataset(name, data=L.dumps(value), dtype=L.STR_DTYPE)
                ds.attrs["encoding"] = "json"
            _set_units(ds, spec.get("units", ""))

        self._create_data(f)
        if self._sweeps_on:
            sw = f.create_group(L.SWEEPS, track_order=True)
            sw.attrs["NX_class"] = "NXcollection"
            sw.attrs["sweep_axis"] = self.sweep_axis
            descriptions = {"sweep": "sweep number of the segment",
                            "offset": f"first row of the segment in {L.DATA}",
                            "length": "rows of the segment"}
            for name in L.SEGMENT_DATASETS:
                ds = sw.create_dataset(name, shape=(0,), maxshape=(None,), dtype="i8",
                                       chunks=(_SEGMENT_CHUNK,), fillvalue=0)
                ds.attrs["units"] = ""
                ds.attrs["long_name"] = descriptions[name]
            sw["sweep"].make_scale("sweep")
            for name in ("offset", "length"):
                sw[name].dims[0].attach_scale(sw["sweep"])

        snaps = f.create_group(L.SNAPSHOTS)
        snaps.attrs["NX_class"] = "NXcollection"
        start = snaps.create_dataset("start", data=L.dumps(snapshot), dtype=L.STR_DTYPE)
        start.attrs["encoding"] = "json"
        end = snaps.create_dataset("end", shape=(0,), maxshape=(1,), dtype=L.STR_DTYPE)
        end.attrs["encoding"] = "json"

        fits = f.create_group(L.FITS)
        fits.attrs["NX_class"] = "NXcollection"
        for name, dtype in (("name", L.STR_DTYPE), ("json", L.STR_DTYPE), ("time", "f8")):
            fits.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(16,))
        fits["time"].attrs["units"] = EPOCH_UNITS
        f.create_group(L.FIT_RESULTS).attrs["NX_class"] = "NXcollection"

        lg = f.create_group(L.LOG)
        lg.attrs["NX_class"] = "NXcollection"
        for name, dtype in (("time", "f8"), ("level", L.STR_DTYPE), ("message", L.STR_DTYPE)):
            lg.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(256,))
        lg["time"].attrs["units"] = EPOCH_UNITS

    def _create_data(self, f: h5py.File) -> None:
        """/entry/data: the columns, an NXdata whose axis column is their dimension scale."""
        data = f.create_group(L.DATA, track_order=True)
        data.attrs["NX_class"] = "NXdata"
        data.attrs["columns"] = list(self.columns)
        data.attrs["signal"] = L.dataset_name(self.signal)
        axis = self.axis
        if axis != self.signal:
            data.attrs["axes"] = [L.dataset_name(axis)]
        for name, units in self.columns.items():
            ds = data.create_dataset(L.dataset_name(name), shape=(0,), maxshape=(None,),
                                     dtype="f8", chunks=(_CHUNK_ROWS,), fillvalue=np.nan)
            _set_units(ds, units, name)
            ds.attrs["long_name"] = f"{name} ({units})" if units else name
            if name != self.signal:  # every other column is a coordinate along the rows
                data.attrs[f"{L.dataset_name(name)}_indices"] = 0
        scale = data[L.dataset_name(axis)]
        scale.make_scale(L.dataset_name(axis))
        for name in self.columns:
            if name != axis:
                data[L.dataset_name(name)].dims[0].attach_scale(scale)

    @property
    def axis(self) -> str:
        """The column the others are plotted against (and indexed by, for netCDF readers)."""
        return L.axis_column(self.columns, self.sweep_axis)

    # ---------------------------------------------------------------- writer thread
    def _run(self) -> None:
        f = self._file
        assert f is not None
        last_flush = time.monotonic()
        dirty = False
        try:
            while True:
                if dirty:
                    timeout = max(0.0, last_flush + self.flush_interval - time.monotonic())
                else:
                    timeout = 1.0
                self._wake.wait(timeout)
                with self._lock:
                    self._wake.clear()
                    records, self._pending = self._pending, []
                    commands, self._commands = self._commands, []
                    self._drained.notify_all()
                stop = self._write_batch(f, records, commands)
                dirty = dirty or bool(records) or bool(commands)
                now = time.monotonic()
                if stop or now - last_flush >= self.flush_interval:
                    if dirty or now - last_flush >= 2.0:  # idle: heartbeat every 2 s
                        f[L.HEARTBEAT][0] = time.time()
                        f.flush()
                        self.rows_flushed = self.rows_written
                    last_flush, dirty = now, False
                if stop:
                    return
        except BaseException as exc:  # noqa: BLE001 - reported by append/finish
            log.exception("%s: writer thread failed", self.path)
            with self._lock:
                self._error = exc
                self._drained.notify_all()

    def _write_batch(self, f: h5py.File, records: list[Mapping[str, Any]],
                     commands: list[tuple[int, Any]]) -> bool:
        """Write records and commands in the order queued; the records between two commands
        are written column-wise at once. True once the stop command is met."""
        at = 0
        stop = False
        for position, item in commands:
            if position > at:
                self._write_records(f, records[at:position])
                at = position
            if isinstance(item, _Fit):
                self._append_strings(f[L.FITS], {"name": item.name, "json": item.json},
                                     {"time": item.time})
                self._fits.append((item.name, item.json))
            elif isinstance(item, _LogLine):
                self._append_strings(f[L.LOG], {"level": item.level, "message": item.message},
                                     {"time": item.time})
            elif isinstance(item, _Stop):
                stop = True
        if at < len(records):
            self._write_records(f, records[at:] if at else records)
        return stop

    @staticmethod
    def _append_strings(group: h5py.Group, strings: dict[str, str],
                        numbers: dict[str, float]) -> None:
        n = group["time"].shape[0]
        for name, value in {**strings, **numbers}.items():
            ds = group[name]
            ds.resize((n + 1,))
            ds[n] = value

    def _column_arrays(self, records: list[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """The batch as one float64 array per column.

        Records holding every column with numbers (a procedure's usual record) go through one
        C-level pass (itemgetter + one array); others column by column, NaN where missing.
        """
        names = self.columns
        if len(names) > 1:
            try:
                table = np.array(list(map(self._row_of, records)), dtype="f8")
            except (KeyError, TypeError, ValueError):
                pass
            else:
                table = np.ascontiguousarray(table.T)
                return {name: table[k] for k, name in enumerate(names)}
        return {name: self._column_array(name, records) for name in names}

    def _column_array(self, name: str, records: list[Mapping[str, Any]]) -> np.ndarray:
        nan = math.nan
        try:
            return np.fromiter((r.get(name, nan) for r in records), dtype="f8",
                               count=len(records))
        except (TypeError, ValueError):
            out = np.empty(len(records))
            for i, r in enumerate(records):
                out[i] = as_float(r.get(name, nan))
            if name not in self._warned_columns:
                self._warned_columns.add(name)
                log.warning("%s: column %r received non-numeric values; stored as NaN",
                            self.path, name)
            return out

    def _write_records(self, f: h5py.File, records: list[Mapping[str, Any]]) -> None:
        n = len(records)
        start = self.rows_written
        data = f[L.DATA]
        arrays = self._column_arrays(records)
        for name, arr in arrays.items():
            ds = data[L.dataset_name(name)]
            ds.resize((start + n,))
            ds[start:start + n] = arr
        if self._sweeps_on:
            self._index_sweeps(f[L.SWEEPS], arrays[L.SWEEP_COLUMN], start)
        self.rows_written = start + n

    def _index_sweeps(self, sw: h5py.Group, sweep: np.ndarray, start: int) -> None:
        """Extend the segment index by this batch's runs of one sweep number (vectorised)."""
        open_segment = self._last_segment
        first = self._n_segments  # first index row this batch rewrites
        segments: list[list[int]] = []
        for s, lo, hi in zip(*(a.tolist() for a in L.segments(sweep)), strict=True):
            last = segments[-1] if segments else open_segment
            if last is not None and last[0] == s and last[1] + last[2] == start + lo:
                last[2] += hi - lo  # the open segment goes on
                if not segments:
                    segments.append(last)
                    first -= 1
                continue
            segments.append([s, start + lo, hi - lo])
        if not segments:
            return
        total = first + len(segments)
        block = np.asarray(segments, dtype=np.int64)
        for k, name in enumerate(L.SEGMENT_DATASETS):
            ds = sw[name]
            if ds.shape[0] != total:
                ds.resize((total,))
            ds[first:total] = block[:, k]
        self._n_segments = total
        self._last_segment = segments[-1]


def _error_text(error: str | BaseException) -> str:
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"
    return str(error)


def _set_units(ds: h5py.Dataset, units: str, column: str | None = None) -> None:
    """Store ``units`` as the one units table spells them (a bare count gets a description)."""
    stored, description = stored_unit(units, column)
    ds.attrs["units"] = stored
    if description:
        ds.attrs["description"] = description


def _param_data(value: Any) -> Any:
    if value is None:
        raise TypeError("None is stored as JSON")
    if isinstance(value, str):
        return value
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError("non-numeric parameters are stored as JSON")
    return arr


def _normalise_parameters(parameters: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Accept ``{name: {"value": v, "units": u}}`` or plain ``{name: v}``; always store both."""
    out: dict[str, dict[str, Any]] = {}
    for name, spec in parameters.items():
        if isinstance(spec, Mapping) and "value" in spec:
            out[str(name)] = {"value": L.to_jsonable(spec["value"]),
                              "units": str(spec.get("units", "") or "")}
        else:
            out[str(name)] = {"value": L.to_jsonable(spec), "units": ""}
        if "/" in str(name) or not str(name):
            raise ConfigError(f"parameter name {name!r}: must be non-empty and contain no '/'")
    return out


def _pick_signal(columns: Mapping[str, str], sweep_axis: str | None) -> str:
    for name in L.SIGNAL_FOR_AXIS.get(sweep_axis or "", ()) + L.SIGNAL_PREFERENCE:
        if name in columns and name != sweep_axis:
            return name
    for name in columns:
        if name not in (sweep_axis, L.TIME_COLUMN, L.SWEEP_COLUMN):
            return name
    return next(iter(columns))
