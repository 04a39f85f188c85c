"""RunWriter: streams a run's records into one HDF5 file from one writer thread, SWMR on.

Why one thread: h5py serialises every call on a global lock and HDF5 itself is not
re-entrant, so the acquisition thread must never wait on disk. ``append`` only puts the record
on an in-memory list and hands it to the listeners (plots, fits); the writer thread takes the
whole list at once, turns it into columns and writes each column with one slice assignment.

Crash safety: every dataset exists before ``swmr_mode`` is switched on, so HDF5 only ever
extends datasets in place; the file is flushed at least every ``flush_interval`` seconds, and a
reader (also in another process, also after SIGKILL) sees every row up to the last flush.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
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

log = logging.getLogger(__name__)

RecordListener = Callable[[Mapping[str, float]], None]

_CHUNK_ROWS = 4096
#: Sweep indices beyond this are a bug in the procedure (the 2-D grids would be huge).
MAX_SWEEPS = 100_000
_SWEEP_CHUNK = (4, 512)
#: A batch whose sweep points span at most this many grid cells is written as one rectangle.
_RECTANGLE_CELLS = 1 << 20


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
    """Write one run file: attributes, snapshots, columns, sweeps, fits and log.

    ``columns`` maps column name → units. When ``sweep_axis`` names a column and the records
    carry a ``sweep`` index, every column is also kept as a 2-D (sweep, point) dataset, one row
    per sweep, NaN-padded, with the sweep's mean temperature and field and its start time.
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

        self._pending: list[Any] = []
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
        # per-sweep bookkeeping (writer thread only)
        self._sweep_len: dict[int, int] = {}
        self._sweep_stats: dict[int, list[float]] = {}
        self._n_sweeps = 0
        self._sweep_width = 0

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
        if self._state != "running":
            raise RuntimeError(f"RunWriter.append: run {self.path} is {self._state}, not running")
        if self._error is not None:
            raise DataFileError(f"{self.path}: writer thread failed: {self._error}")
        if not self._column_set.issuperset(record):
            unknown = [k for k in record if k not in self._column_set]
            raise ValueError(f"record key {unknown[0]!r} is not a column of run {self.path} "
                             f"(columns: {', '.join(self.columns)})")
        if self._sweeps_on:
            sweep = record.get(L.SWEEP_COLUMN)
            if sweep is not None and not (isinstance(sweep, (int, float, np.number))
                                          and (0 <= sweep < MAX_SWEEPS or sweep != sweep)):
                raise ValueError(f"record sweep = {sweep!r}: must be a number from 0 to "
                                 f"{MAX_SWEEPS - 1} (or NaN for points outside any sweep)")
        self._put(record)
        for listener in self._listeners:
            try:
                listener(record)
            except Exception:  # noqa: BLE001 - a broken plot must not stop the measurement
                if id(listener) not in self._listener_failed:
                    self._listener_failed.add(id(listener))
                    log.exception("record listener %r failed; further errors suppressed",
                                  listener)

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
                self._pending.append(_Stop())
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
            f.attrs["end_time"] = now_iso()
            f.attrs["error"] = "" if error is None else _error_text(error)
            f.attrs["n_rows"] = self.rows_written
            f.attrs["status"] = status
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
    def _put(self, item: Any) -> None:
        with self._lock:
            while len(self._pending) >= self.max_backlog and self._error is None \
                    and self._thread is not None and self._thread.is_alive():
                self._drained.wait(0.1)
            self._pending.append(item)
            first = len(self._pending) == 1
        if first:
            self._wake.set()

    # ---------------------------------------------------------------- file layout
    def _create_layout(self, f: h5py.File, snapshot: Mapping[str, Any]) -> None:
        meta = self.metadata
        a = f.attrs
        a["NX_class"] = "NXroot"
        a["default"] = L.ENTRY
        a["format"] = L.FORMAT_NAME
        a["format_version"] = L.FORMAT_VERSION
        a["software_version"] = daqapp.__version__
        a["creator"] = f"daqapp {daqapp.__version__}"
        a["h5py_version"] = h5py.version.version
        a["hdf5_version"] = h5py.version.hdf5_version
        a["procedure"] = self.procedure
        a["parameters"] = L.dumps(self.parameters)
        a["start_time"] = now_iso()
        a["end_time"] = ""
        a["status"] = "running"
        a["error"] = ""
        a["n_rows"] = 0
        a["sweep_axis"] = self.sweep_axis or ""
        for key in ("operator", "sample", "cell"):
            a[key] = str(meta.get(key, "") or "")
        pressure = meta.get("pressure_GPa")
        a["pressure_GPa"] = float("nan") if pressure is None else float(pressure)
        extra = {k: v for k, v in meta.items()
                 if k not in ("operator", "sample", "cell", "pressure_GPa")}
        a["metadata"] = L.dumps(extra)

        entry = f.create_group(L.ENTRY)
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["default"] = "data"
        entry.attrs["definition"] = L.FORMAT_NAME

        params = f.create_group(L.PARAMETERS)
        params.attrs["NX_class"] = "NXparameters"
        for name, spec in self.parameters.items():
            value = spec.get("value")
            try:
                ds = params.create_dataset(name, data=_param_data(value))
            except (TypeError, ValueError):
                ds = params.create_dataset(name, data=L.dumps(value), dtype=L.STR_DTYPE)
                ds.attrs["encoding"] = "json"
            ds.attrs["units"] = spec.get("units", "")

        data = f.create_group(L.DATA, track_order=True)
        data.attrs["NX_class"] = "NXdata"
        data.attrs["columns"] = list(self.columns)
        data.attrs["signal"] = L.dataset_name(self.signal)
        axis = self.sweep_axis or (L.TIME_COLUMN if L.TIME_COLUMN in self.columns else None)
        if axis and axis != self.signal:
            data.attrs["axes"] = [L.dataset_name(axis)]
        for name, units in self.columns.items():
            ds = data.create_dataset(L.dataset_name(name), shape=(0,), maxshape=(None,),
                                     dtype="f8", chunks=(_CHUNK_ROWS,), fillvalue=np.nan)
            ds.attrs["units"] = units
            ds.attrs["long_name"] = f"{name} ({units})" if units else name

        if self._sweeps_on:
            sw = f.create_group(L.SWEEPS, track_order=True)
            sw.attrs["NX_class"] = "NXdata"
            sw.attrs["signal"] = L.dataset_name(self.signal)
            sw.attrs["axes"] = [L.sweep_info_name("temperature"), "."]
            sw.attrs[f"{L.sweep_info_name('temperature')}_indices"] = 0
            sw.attrs["sweep_axis"] = self.sweep_axis
            for name, units in self.columns.items():
                if name == L.SWEEP_COLUMN:
                    continue
                ds = sw.create_dataset(L.dataset_name(name), shape=(0, 0),
                                       maxshape=(None, None), dtype="f8",
                                       chunks=_SWEEP_CHUNK, fillvalue=np.nan)
                ds.attrs["units"] = units
            info_units = {"index": "", "temperature": "K", "field": "T", "time": "s",
                          "n_points": ""}
            for name in L.SWEEP_INFO:
                dtype = "i8" if name in ("index", "n_points") else "f8"
                fill = 0 if dtype == "i8" else np.nan
                ds = sw.create_dataset(L.sweep_info_name(name), shape=(0,), maxshape=(None,),
                                       dtype=dtype, chunks=(256,), fillvalue=fill)
                ds.attrs["units"] = self.columns.get(name, info_units[name]) \
                    if name in ("temperature", "field", "time") else info_units[name]

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
        f.create_group(L.FIT_RESULTS).attrs["NX_class"] = "NXcollection"

        lg = f.create_group(L.LOG)
        lg.attrs["NX_class"] = "NXcollection"
        for name, dtype in (("time", "f8"), ("level", L.STR_DTYPE), ("message", L.STR_DTYPE)):
            lg.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(256,))
        lg["time"].attrs["units"] = "s since 1970-01-01T00:00:00Z"

        hb = f.create_dataset(L.HEARTBEAT, data=[time.time()], dtype="f8")
        hb.attrs["units"] = "s since 1970-01-01T00:00:00Z"

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
                    batch, self._pending = self._pending, []
                    self._drained.notify_all()
                stop = self._write_batch(f, batch)
                dirty = dirty or bool(batch)
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

    def _write_batch(self, f: h5py.File, batch: list[Any]) -> bool:
        """Write a batch in order; records between commands are written column-wise at once."""
        records: list[Mapping[str, Any]] = []
        stop = False
        for item in batch:
            if isinstance(item, Mapping):
                records.append(item)
                continue
            if records:
                self._write_records(f, records)
                records = []
            if isinstance(item, _Fit):
                self._append_strings(f[L.FITS], {"name": item.name, "json": item.json},
                                     {"time": item.time})
                self._fits.append((item.name, item.json))
            elif isinstance(item, _LogLine):
                self._append_strings(f[L.LOG], {"level": item.level, "message": item.message},
                                     {"time": item.time})
            elif isinstance(item, _Stop):
                stop = True
        if records:
            self._write_records(f, records)
        return stop

    @staticmethod
    def _append_strings(group: h5py.Group, strings: dict[str, str],
                        numbers: dict[str, float]) -> None:
        n = group["time"].shape[0]
        for name, value in {**strings, **numbers}.items():
            ds = group[name]
            ds.resize((n + 1,))
            ds[n] = value

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
        arrays = {name: self._column_array(name, records) for name in self.columns}
        for name, arr in arrays.items():
            ds = data[L.dataset_name(name)]
            ds.resize((start + n,))
            ds[start:start + n] = arr
        if self._sweeps_on:
            self._write_sweeps(f[L.SWEEPS], arrays)
        self.rows_written = start + n

    def _write_sweeps(self, sw: h5py.Group, arrays: dict[str, np.ndarray]) -> None:
        sweep = arrays[L.SWEEP_COLUMN]
        n = sweep.shape[0]
        valid = np.isfinite(sweep) & (sweep >= 0)
        idx = np.where(valid, sweep, -1).astype(np.int64)
        pos = np.empty(n, dtype=np.int64)
        lengths = self._sweep_len
        for i in range(n):
            s = int(idx[i])
            if s < 0:
                pos[i] = -1
                continue
            p = lengths.get(s, 0)
            pos[i] = p
            lengths[s] = p + 1
        if not valid.any():
            return
        rows = max(self._n_sweeps, int(idx.max()) + 1)
        width = max(self._sweep_width, int(pos.max()) + 1)
        names = [c for c in self.columns if c != L.SWEEP_COLUMN]
        ds_names = {c: L.dataset_name(c) for c in names}
        if rows != self._n_sweeps or width != self._sweep_width:
            for name in names:
                sw[ds_names[name]].resize((rows, width))
            for name in L.SWEEP_INFO:
                sw[L.sweep_info_name(name)].resize((rows,))
            if rows > self._n_sweeps:
                sw[L.sweep_info_name("index")][self._n_sweeps:rows] = np.arange(
                    self._n_sweeps, rows)
            self._n_sweeps, self._sweep_width = rows, width
        # the batch's points as one rectangle (sweeps × positions) per column when it is small:
        # an import of many short spectra made one HDF5 write per sweep and column (14 s for
        # 10 000 two-point spectra); otherwise one slice write per contiguous run of a sweep
        s_idx, p_idx = idx[valid], pos[valid]
        s_lo, s_hi = int(s_idx.min()), int(s_idx.max()) + 1
        p_lo, p_hi = int(p_idx.min()), int(p_idx.max()) + 1
        rectangle = (s_hi - s_lo) * (p_hi - p_lo) <= _RECTANGLE_CELLS
        if rectangle:
            for name in names:
                ds = sw[ds_names[name]]
                block = ds[s_lo:s_hi, p_lo:p_hi]
                block[s_idx - s_lo, p_idx - p_lo] = arrays[name][valid]
                ds[s_lo:s_hi, p_lo:p_hi] = block
        i = 0
        while i < n:
            if idx[i] < 0:
                i += 1
                continue
            j = i + 1
            while j < n and idx[j] == idx[i] and pos[j] == pos[j - 1] + 1:
                j += 1
            s, p0 = int(idx[i]), int(pos[i])
            if not rectangle:
                for name in names:
                    sw[ds_names[name]][s, p0:p0 + (j - i)] = arrays[name][i:j]
            self._update_sweep_info(s, arrays, i, j)
            i = j
        touched = sorted({int(s) for s in idx[valid]})
        lo, hi = touched[0], touched[-1] + 1
        stats = [self._sweep_stats.get(s, [0.0, 0, 0.0, 0, math.nan]) for s in range(lo, hi)]
        info = L.sweep_info_name
        sw[info("temperature")][lo:hi] = [st[0] / st[1] if st[1] else math.nan for st in stats]
        sw[info("field")][lo:hi] = [st[2] / st[3] if st[3] else math.nan for st in stats]
        sw[info("time")][lo:hi] = [st[4] for st in stats]
        sw[info("n_points")][lo:hi] = [lengths.get(s, 0) for s in range(lo, hi)]

    def _update_sweep_info(self, s: int, arrays: dict[str, np.ndarray], i: int, j: int) -> None:
        st = self._sweep_stats.setdefault(s, [0.0, 0, 0.0, 0, math.nan])
        for col, k in ((L.TEMPERATURE_COLUMN, 0), (L.FIELD_COLUMN, 2)):
            if col in arrays:
                chunk = arrays[col][i:j]
                good = chunk[np.isfinite(chunk)]
                st[k] += float(good.sum())
                st[k + 1] += int(good.size)
        if L.TIME_COLUMN in arrays and math.isnan(st[4]):
            chunk = arrays[L.TIME_COLUMN][i:j]
            good = chunk[np.isfinite(chunk)]
            if good.size:
                st[4] = float(good[0])


def _error_text(error: str | BaseException) -> str:
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"
    return str(error)


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
    for name in L.SIGNAL_PREFERENCE:
        if name in columns and name != sweep_axis:
            return name
    for name in columns:
        if name not in (sweep_axis, L.TIME_COLUMN, L.SWEEP_COLUMN):
            return name
    return next(iter(columns))
