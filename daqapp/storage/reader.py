"""Reading run files: finished, interrupted, or still being written by another process.

Files are opened by ``h5safe.open_hdf5``: a live writer's file as a SWMR reader, a killed
writer's through a view that reads its "open for write" flag as clear, both failing fast on a
truncated or damaged file. ``refresh()`` picks up rows flushed since by refreshing the datasets
in place (``H5Drefresh``: no reopen per poll); once the writer is gone the file is reopened
once, because HDF5 caches the attributes that hold the final status. A file whose status
still says "running" but whose writer is gone is reported "interrupted".

Format 2 stores each column once plus a sweep index; ``sweeps()`` builds the per-sweep views
from it. Format 1 files (2-D sweep grids, run attributes on the root) read as before.

Every object is reached through ``h5safe.child`` (hard links, or soft links inside the file;
external links refused) and every public accessor runs under ``h5safe.damaged``, so a hostile
or broken file gives one DataFileError line naming the file, never a traceback.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import h5py
import numpy as np

from daqapp.errors import DataFileError
from daqapp.storage import layout as L
from daqapp.storage.h5safe import check_dataset, child, damaged, escape, has, open_hdf5, resolve
from daqapp.storage.liveness import writer_alive
from daqapp.storage.units import display_unit

log = logging.getLogger(__name__)
T = TypeVar("T")


def _guarded(method: Callable[..., T]) -> Callable[..., T]:
    """Run a RunReader accessor under ``damaged``: a broken file gives one DataFileError."""

    @functools.wraps(method)
    def wrapper(self: RunReader, *args: Any, **kwargs: Any) -> T:
        with damaged(self.path, method.__name__.strip("_").replace("_", " ")):
            return method(self, *args, **kwargs)

    return wrapper

RUN_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs")
#: Without an OFD lock, a heartbeat older than this means the writer is gone.
HEARTBEAT_STALE_S = 10.0


class LogEntry(NamedTuple):
    time: float
    level: str
    message: str


@dataclass
class Sweep:
    """One sweep's rows of every column (a spectrum at one T, B), with its mean temperature
    and field and the time of its first point."""

    index: int
    columns: dict[str, np.ndarray]
    temperature: float
    field: float
    time: float
    n_points: int


@dataclass
class RunSummary:
    """One line of a folder listing."""

    path: str
    procedure: str
    status: str
    start: str
    n_rows: int
    sample: str
    end: str = ""
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class RunReader:
    """A run file opened for reading; see ``open_run``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._file: h5py.File | None = None
        self._cache: dict[str, np.ndarray] = {}
        self._objects: dict[str, Any] = {}
        self._open()

    # ------------------------------------------------------------ opening
    def _open(self) -> None:
        if not os.path.exists(self.path):
            raise DataFileError(f"{self.path}: no such run file")
        from daqapp.storage.writer import ACTIVE_PATHS

        if os.path.realpath(self.path) in ACTIVE_PATHS:
            raise DataFileError(f"{self.path}: being written by this process; read the live "
                                "records from a RunBuffer listener instead of the file")
        f = open_hdf5(self.path)
        try:
            with damaged(self.path, "opening"):
                attrs = _run_attrs(f, self.path)
                if attrs.get("format") != L.FORMAT_NAME or not has(f, L.ENTRY) \
                        or not has(child(f, L.ENTRY, self.path), "data"):
                    raise DataFileError(f"{self.path}: not a daqapp run file (no "
                                        f"format={L.FORMAT_NAME!r} attribute or no {L.DATA})")
                if not isinstance(self._group(L.DATA, f), h5py.Group):
                    raise DataFileError(f"{self.path}: {L.DATA} is not a group")
        except BaseException:
            f.close()
            raise
        self._file = f
        self._cache = {}
        self._objects = {}
        self._column_names: list[str] | None = None
        self.attrs: dict[str, Any] = attrs

    def _group(self, path: str, f: h5py.File | None = None) -> Any:
        """The object at ``path``, reached through checked links only."""
        return resolve(f if f is not None else self.file, "/" + path, self.path)

    def _has(self, path: str) -> bool:
        head, _, name = path.rpartition("/")
        try:
            parent = self._group(head) if head else self.file
        except KeyError:
            return False
        return isinstance(parent, h5py.Group) and has(parent, name)

    @property
    def file(self) -> h5py.File:
        if self._file is None:
            raise DataFileError(f"{self.path}: run file is closed")
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> RunReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @_guarded
    def refresh(self) -> int:
        """Pick up rows (and, once the writer is gone, the final status) written since; return
        the row count. While the writer lives, the datasets are refreshed in place."""
        if self.attrs.get("status") == "running" and writer_alive(self.path) is not True:
            self.close()  # finished or killed: the final attributes need a fresh open
            for attempt in range(20):  # the writer may hold the file for a moment at its end
                try:
                    self._open()
                    break
                except DataFileError:
                    if attempt == 19:
                        raise
                    time.sleep(0.05)
        else:
            for obj in self._objects.values():
                if isinstance(obj, h5py.Dataset):
                    obj.refresh()
            self._cache = {}
        return self.n_rows

    def _obj(self, path: str) -> Any:
        """The object at ``path``, opened once: ``refresh`` updates exactly the objects in use
        (a dataset opened twice keeps the shape its first opening saw)."""
        obj = self._objects.get(path)
        if obj is None:
            obj = self._group(path)
            if isinstance(obj, h5py.Dataset) and self.file.swmr_mode:
                obj.refresh()
            self._objects[path] = obj
        return obj

    # ------------------------------------------------------------ attributes
    @property
    def procedure(self) -> str:
        return str(self.attrs.get("procedure", ""))

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        """``{name: {"value": v, "units": u}}`` exactly as the procedure gave them."""
        raw = _json(self.attrs.get("parameters", "{}"), self.path, "parameters attribute")
        return {str(k): v if isinstance(v, dict) and "value" in v else {"value": v, "units": ""}
                for k, v in raw.items()}

    @property
    def metadata(self) -> dict[str, Any]:
        out = {k: self.attrs.get(k, "") for k in ("operator", "sample", "cell", "pressure_GPa")}
        out.update(_json(self.attrs.get("metadata", "{}"), self.path, "metadata attribute"))
        return out

    @property
    def raw_status(self) -> str:
        """The status attribute as stored (``running`` even if the writer was killed)."""
        return str(self.attrs.get("status", ""))

    @property
    @_guarded
    def is_live(self) -> bool:
        """True while a writer process still holds the file."""
        if self.raw_status != "running":
            return False
        alive = writer_alive(self.path)
        if alive is not None:
            return alive
        heartbeat = 0.0
        for where in (L.HEARTBEAT, L.V1_HEARTBEAT):
            if self._has(where):
                hb = check_dataset(self._obj(where), self.path, where, ndim=1)
                heartbeat = float(hb[0]) if hb.shape[0] else 0.0
                break
        return time.time() - heartbeat < HEARTBEAT_STALE_S

    @property
    def status(self) -> str:
        """finished | aborted | failed | running (writer alive) | interrupted (writer gone).

        ``interrupted`` is also what a file copied by ``daqapp runs recover`` stores.
        """
        raw = self.raw_status
        if raw == "running" and not self.is_live:
            return L.INTERRUPTED
        return raw

    @property
    def finished(self) -> bool:
        """True only if the run ended normally (not aborted, failed or interrupted)."""
        return self.raw_status == "finished"

    @property
    def start_time(self) -> str:
        return str(self.attrs.get("start_time", ""))

    @property
    def end_time(self) -> str:
        return str(self.attrs.get("end_time", ""))

    @property
    def sweep_axis(self) -> str | None:
        return str(self.attrs.get("sweep_axis", "")) or None

    # ------------------------------------------------------------ columns
    @property
    def column_names(self) -> list[str]:
        if self._column_names is None:
            self._column_names = self._read_column_names()
        return list(self._column_names)

    @_guarded
    def _read_column_names(self) -> list[str]:
        data = self._group(L.DATA)
        order = _attr(data.attrs["columns"]) if "columns" in data.attrs else []
        if not isinstance(order, list) or not all(isinstance(c, str) for c in order):
            raise DataFileError(f"{self.path}: attribute 'columns' of {L.DATA} is "
                                f"{type(order).__name__}, expected a list of column names")
        present = [k for k in data if isinstance(child(data, k, self.path), h5py.Dataset)]
        named = [c for c in order if L.dataset_name(c) in present]
        taken = {L.dataset_name(c) for c in named}
        names = named + [c for c in present if c not in taken]
        for name in names:
            check_dataset(child(data, L.dataset_name(name), self.path), self.path,
                          f"column {name!r}", ndim=1)
        return names

    def _dataset(self, column: str) -> h5py.Dataset:
        return self._obj(f"{L.DATA}/{L.dataset_name(column)}")

    @property
    @_guarded
    def units(self) -> dict[str, str]:
        """Column → units as people write them ("s" for epoch seconds, stored in CF form)."""
        return {k: display_unit(L.text(self._dataset(k).attrs.get("units", "")))
                for k in self.column_names}

    @property
    @_guarded
    def stored_units(self) -> dict[str, str]:
        """Column → units exactly as stored (pint/UDUNITS spelling, CF time units)."""
        return {k: L.text(self._dataset(k).attrs.get("units", "")) for k in self.column_names}

    @property
    @_guarded
    def format_version(self) -> int:
        try:
            return int(self.attrs.get("format_version", 1))
        except (TypeError, ValueError):
            return 1

    @property
    @_guarded
    def n_rows(self) -> int:
        """Rows every column holds (columns are written together; the shortest bounds it)."""
        lengths = [self._dataset(k).shape[0] for k in self.column_names]
        return min(lengths) if lengths else 0

    @_guarded
    def column(self, name: str) -> np.ndarray:
        if name not in self.column_names:
            raise DataFileError(f"{self.path}: no column {name!r} "
                                f"(columns: {escape(', '.join(self.column_names))})")
        if name not in self._cache:
            self._cache[name] = self._dataset(name)[: self.n_rows]
        return self._cache[name]

    @property
    def columns(self) -> dict[str, np.ndarray]:
        """Column name → float64 array, all of length ``n_rows``."""
        return {name: self.column(name) for name in self.column_names}

    @_guarded
    def read_rows(self, start: int, stop: int | None = None) -> dict[str, np.ndarray]:
        """Rows ``start:stop`` of every column, read from the file (cheap live following)."""
        n = self.n_rows
        stop = n if stop is None else min(stop, n)
        start = max(0, min(start, stop))
        return {name: self._dataset(name)[start:stop] for name in self.column_names}

    def iter_records(self, start: int = 0, chunk: int = 65536) -> Iterator[dict[str, float]]:
        """Yield the rows as dicts in the order they were written (the replay stream)."""
        names = self.column_names
        n = self.n_rows
        datasets = [self._dataset(name) for name in names]
        for lo in range(start, n, chunk):
            hi = min(lo + chunk, n)
            block = [ds[lo:hi].tolist() for ds in datasets]
            for row in zip(*block, strict=True):
                yield dict(zip(names, row, strict=True))

    # ------------------------------------------------------------ sweeps
    @property
    @_guarded
    def has_sweeps(self) -> bool:
        return self._has(L.SWEEPS)

    @_guarded
    def sweep_segments(self) -> dict[str, np.ndarray]:
        """The sweep index: ``sweep``, ``offset``, ``length`` of each contiguous run of one
        sweep in the columns, clipped to the rows every column holds. Format 2 stores it;
        for format 1 it is found from the sweep column."""
        rows = self.n_rows
        if self.has_sweeps and has(self._group(L.SWEEPS), "offset"):
            seg = {name: check_dataset(self._obj(f"{L.SWEEPS}/{name}"), self.path,
                                       f"{L.SWEEPS}/{name}", ndim=1)
                   for name in L.SEGMENT_DATASETS}
            n = min(d.shape[0] for d in seg.values())
            raw = {name: np.asarray(d[:n], dtype=np.int64) for name, d in seg.items()}
            sweep, lo = raw["sweep"], np.clip(raw["offset"], 0, rows)
            hi = np.clip(raw["offset"] + np.maximum(raw["length"], 0), lo, rows)
        elif L.SWEEP_COLUMN in self.column_names:
            sweep, lo, hi = L.segments(self.column(L.SWEEP_COLUMN))
        else:
            sweep = lo = hi = np.zeros(0, dtype=np.int64)
        keep = hi > lo
        return {"sweep": sweep[keep], "offset": lo[keep], "length": (hi - lo)[keep]}

    @_guarded
    def sweeps(self) -> list[Sweep]:
        """Each sweep's columns (its rows, in order) with its temperature, field, time."""
        if not self.has_sweeps:
            return []
        if not has(self._group(L.SWEEPS), "offset"):
            return self._grid_sweeps()
        seg = self.sweep_segments()
        names = [c for c in self.column_names if c != L.SWEEP_COLUMN]
        cols = {name: self.column(name) for name in names}
        parts: dict[int, list[tuple[int, int]]] = {}
        for s, lo, n in zip(seg["sweep"].tolist(), seg["offset"].tolist(),
                            seg["length"].tolist(), strict=True):
            parts.setdefault(s, []).append((lo, lo + n))
        out = []
        for index in sorted(parts):
            spans = parts[index]
            if len(spans) == 1:
                lo, hi = spans[0]
                columns = {name: col[lo:hi] for name, col in cols.items()}
            else:
                rows = np.concatenate([np.arange(lo, hi) for lo, hi in spans])
                columns = {name: col[rows] for name, col in cols.items()}
            n = sum(hi - lo for lo, hi in spans)
            out.append(Sweep(index=int(index), columns=columns,
                             temperature=_finite_mean(columns.get(L.TEMPERATURE_COLUMN)),
                             field=_finite_mean(columns.get(L.FIELD_COLUMN)),
                             time=_first_finite(columns.get(L.TIME_COLUMN)), n_points=n))
        return out

    def _grid_sweeps(self) -> list[Sweep]:
        """Format 1: one row per sweep of NaN-padded 2-D datasets, plus per-sweep info."""
        sw = self._group(L.SWEEPS)
        info = {name: check_dataset(child(sw, L.sweep_info_name(name), self.path), self.path,
                                    f"{L.SWEEPS}/{L.sweep_info_name(name)}", ndim=1)[()]
                for name in L.SWEEP_INFO}
        n_sweeps = min(len(v) for v in info.values())
        grids: dict[str, np.ndarray] = {}
        for name in self.column_names:
            if not has(sw, L.dataset_name(name)):
                continue
            ds = check_dataset(child(sw, L.dataset_name(name), self.path), self.path,
                               f"{L.SWEEPS}/{name}")
            if ds.ndim == 2:
                grids[name] = ds[()]
        out = []
        for i in range(n_sweeps):
            n = int(info["n_points"][i])
            if n <= 0:
                continue
            out.append(Sweep(
                index=int(info["index"][i]),
                columns={name: grid[i, :n] for name, grid in grids.items() if i < grid.shape[0]},
                temperature=float(info["temperature"][i]),
                field=float(info["field"][i]),
                time=float(info["time"][i]),
                n_points=n,
            ))
        return out

    # ------------------------------------------------------------ snapshots, fits, log
    @property
    @_guarded
    def snapshots(self) -> dict[str, dict[str, Any] | None]:
        """``{"start": dict, "end": dict or None}`` (end is None until the run finishes)."""
        start_ds = check_dataset(self._obj(f"{L.SNAPSHOTS}/start"), self.path, "start snapshot",
                                 numeric=False)
        start = _json(L.text(start_ds[()] if start_ds.ndim == 0 else start_ds[0]), self.path,
                      "start snapshot")
        end_ds = check_dataset(self._obj(f"{L.SNAPSHOTS}/end"), self.path, "end snapshot", ndim=1,
                               numeric=False)
        end = _json(L.text(end_ds[0]), self.path, "end snapshot") if end_ds.shape[0] else None
        return {"start": start, "end": end}

    @property
    @_guarded
    def fit_list(self) -> list[tuple[str, dict[str, Any], float]]:
        """Every stored fit in order: (name, FitResult dict, unix time)."""
        ds = {k: check_dataset(self._obj(f"{L.FITS}/{k}"), self.path, f"{L.FITS}/{k}", ndim=1,
                               numeric=k == "time") for k in ("name", "json", "time")}
        n = min(d.shape[0] for d in ds.values())
        names = [L.text(v) for v in ds["name"][:n]]
        texts = [L.text(v) for v in ds["json"][:n]]
        times = [float(t) for t in ds["time"][:n]]
        return [(name, _json(t, self.path, f"fit {name!r}"), tm)
                for name, t, tm in zip(names, texts, times, strict=True)]

    @property
    def fits(self) -> dict[str, dict[str, Any]]:
        """Fit name → FitResult dict; a later fit of the same name wins."""
        return {name: fit for name, fit, _ in self.fit_list}

    @property
    @_guarded
    def log(self) -> list[LogEntry]:
        ds = {k: check_dataset(self._obj(f"{L.LOG}/{k}"), self.path, f"{L.LOG}/{k}", ndim=1,
                               numeric=k == "time") for k in ("time", "level", "message")}
        n = min(d.shape[0] for d in ds.values())
        return [LogEntry(float(t), L.text(lv), L.text(m)) for t, lv, m in
                zip(ds["time"][:n], ds["level"][:n], ds["message"][:n], strict=True)]

    @_guarded
    def summary(self) -> RunSummary:
        return RunSummary(path=self.path, procedure=self.procedure, status=self.status,
                          start=self.start_time, n_rows=self.n_rows,
                          sample=str(self.attrs.get("sample", "")), end=self.end_time,
                          error=str(self.attrs.get("error", "")))


def open_run(path: str | os.PathLike[str]) -> RunReader:
    """Open a run file for reading (also while another process writes it)."""
    return RunReader(path)


def list_runs(folder: str | os.PathLike[str]) -> list[RunSummary]:
    """Summaries of the run files in ``folder`` (not recursive), oldest start first.

    Files that cannot be read are listed with status ``unreadable`` and the reason, so a
    corrupt file is visible rather than silently skipped.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataFileError(f"{root}: not a folder")
    out: list[RunSummary] = []
    for p in sorted(root.iterdir()):
        if p.suffix.lower() not in RUN_SUFFIXES or not p.is_file():
            continue
        try:
            with open_run(p) as run:
                out.append(run.summary())
        except (DataFileError, OSError) as exc:
            log.warning("skipping %s: %s", p.name, exc)
            out.append(RunSummary(path=str(p), procedure="", status="unreadable", start="",
                                  n_rows=0, sample="", error=str(exc)))
    out.sort(key=lambda s: (s.start == "", s.start, s.path))
    return out


def _finite_mean(values: np.ndarray | None) -> float:
    if values is None:
        return math.nan
    good = values[np.isfinite(values)]
    return float(good.mean()) if good.size else math.nan


def _first_finite(values: np.ndarray | None) -> float:
    if values is None:
        return math.nan
    good = np.flatnonzero(np.isfinite(values))
    return float(values[good[0]]) if good.size else math.nan


def _run_attrs(f: h5py.File, path: str) -> dict[str, Any]:
    """The run's attributes under the keys of format 1 (root attributes), whatever the format:
    format 2 keeps daqapp's own in /entry/daqapp and the rest in NeXus fields."""
    attrs = _read_attrs(f, path)
    if not (has(f, L.ENTRY) and isinstance(child(f, L.ENTRY, path), h5py.Group)
            and has(child(f, L.ENTRY, path), "daqapp")):
        return attrs
    run = resolve(f, "/" + L.RUN, path)
    if not isinstance(run, h5py.Group):
        raise DataFileError(f"{path}: {L.RUN} is not a group")
    attrs.update({k: v for k, v in _read_attrs(run, path).items() if k != "NX_class"})
    fields = {"start_time": f"{L.ENTRY}/start_time", "end_time": f"{L.ENTRY}/end_time",
              "sample": f"{L.SAMPLE}/name", "operator": f"{L.USER}/name",
              "pressure_GPa": f"{L.SAMPLE}/pressure"}
    for key, where in fields.items():
        attrs[key] = _field(f, where, path, numeric=key == "pressure_GPa")
    return attrs


def _field(f: h5py.File, where: str, path: str, numeric: bool) -> Any:
    """A scalar NeXus field's value ("" or NaN when absent)."""
    try:
        ds = resolve(f, "/" + where, path)
    except KeyError:
        return math.nan if numeric else ""
    ds = check_dataset(ds, path, where, numeric=numeric)
    if ds.ndim > 1 or ds.size != 1:
        raise DataFileError(f"{path}: {where} holds {ds.shape} values, expected one")
    value = ds[()] if ds.ndim == 0 else ds[0]
    return float(value) if numeric else L.text(value)


def _read_attrs(obj: h5py.HLObject, path: str) -> dict[str, Any]:
    """Attributes as plain Python values; one HDF5 cannot decode is named, not fatal."""
    out: dict[str, Any] = {}
    for key in obj.attrs:
        try:
            out[key] = _attr(obj.attrs[key])
        except (OSError, TypeError, ValueError, RuntimeError) as exc:
            log.warning("%s: attribute %r unreadable (%s)", path, key, exc)
            out[key] = ""
    return out


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OSU":
            return [L.text(v) for v in value.tolist()] if value.ndim == 1 else \
                L.text(value.tolist()) if value.ndim == 0 else str(value.tolist())
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json(text: Any, path: str, what: str, expect: type = dict) -> Any:
    """Parse a JSON attribute/dataset; it must hold an ``expect`` (a file from elsewhere may
    hold anything)."""
    if text is None or text == "":
        return expect()
    if not isinstance(text, str):
        raise DataFileError(f"{path}: {what} is {type(text).__name__}, expected JSON text")
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise DataFileError(f"{path}: {what} is not valid JSON ({reason})") from None
    if not isinstance(value, expect):
        raise DataFileError(f"{path}: {what} holds a JSON {type(value).__name__}, expected "
                            f"a JSON {'object' if expect is dict else expect.__name__}")
    return value
