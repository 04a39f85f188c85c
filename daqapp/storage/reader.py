"""Reading run files: finished, interrupted, or still being written by another process.

Files are opened as SWMR readers, which is also the only way HDF5 opens a file whose writer
was killed (its "open for write" flag is never cleared). ``refresh()`` picks up rows flushed
since; the status attribute is re-read by reopening, because HDF5 caches attributes.
A file whose status still says "running" but whose writer is gone is reported "interrupted".
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

from daqapp.errors import DataFileError
from daqapp.storage import layout as L
from daqapp.storage.liveness import writer_alive

RUN_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs")
#: Without an OFD lock, a heartbeat older than this means the writer is gone.
HEARTBEAT_STALE_S = 10.0


class LogEntry(NamedTuple):
    time: float
    level: str
    message: str


@dataclass
class Sweep:
    """One row of the 2-D sweep datasets, trimmed to its points (a spectrum at one T, B)."""

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
        self._open()

    # ------------------------------------------------------------ opening
    def _open(self) -> None:
        if not os.path.exists(self.path):
            raise DataFileError(f"{self.path}: no such run file")
        from daqapp.storage.writer import ACTIVE_PATHS

        if os.path.realpath(self.path) in ACTIVE_PATHS:
            raise DataFileError(f"{self.path}: being written by this process; read the live "
                                "records from a RunBuffer listener instead of the file")
        try:
            f = h5py.File(self.path, "r", swmr=True)
        except OSError as exc:
            try:  # files not written with the SWMR-capable format
                f = h5py.File(self.path, "r")
            except OSError:
                raise DataFileError(f"{self.path}: not a readable HDF5 file ({exc})") from None
        if L.text(f.attrs.get("format", "")) != L.FORMAT_NAME or L.DATA not in f:
            f.close()
            raise DataFileError(f"{self.path}: not a daqapp run file "
                                f"(no format={L.FORMAT_NAME!r} attribute or no {L.DATA})")
        self._file = f
        self._cache = {}
        self._column_names: list[str] | None = None
        self.attrs: dict[str, Any] = {k: _attr(v) for k, v in f.attrs.items()}

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

    def refresh(self) -> int:
        """Pick up rows (and, while running, the status) written since; return the row count."""
        if self.attrs.get("status") == "running":
            self.close()
            for attempt in range(20):  # the writer may hold the file for a moment at its end
                try:
                    self._open()
                    break
                except DataFileError:
                    if attempt == 19:
                        raise
                    time.sleep(0.05)
        else:
            for obj in self._datasets():
                obj.refresh()
            self._cache = {}
        return self.n_rows

    def _datasets(self) -> Iterator[h5py.Dataset]:
        for group in (L.DATA, L.SWEEPS, L.FITS, L.LOG, L.SNAPSHOTS):
            if group in self.file:
                for obj in self.file[group].values():
                    if isinstance(obj, h5py.Dataset):
                        yield obj

    # ------------------------------------------------------------ attributes
    @property
    def procedure(self) -> str:
        return str(self.attrs.get("procedure", ""))

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        """``{name: {"value": v, "units": u}}`` exactly as the procedure gave them."""
        return _json(self.attrs.get("parameters", "{}"), self.path, "parameters")

    @property
    def metadata(self) -> dict[str, Any]:
        out = {k: self.attrs.get(k, "") for k in ("operator", "sample", "cell", "pressure_GPa")}
        out.update(_json(self.attrs.get("metadata", "{}"), self.path, "metadata"))
        return out

    @property
    def raw_status(self) -> str:
        """The status attribute as stored (``running`` even if the writer was killed)."""
        return str(self.attrs.get("status", ""))

    @property
    def is_live(self) -> bool:
        """True while a writer process still holds the file."""
        if self.raw_status != "running":
            return False
        alive = writer_alive(self.path)
        if alive is not None:
            return alive
        heartbeat = float(self.file[L.HEARTBEAT][0]) if L.HEARTBEAT in self.file else 0.0
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

    def _read_column_names(self) -> list[str]:
        data = self.file[L.DATA]
        order = [L.text(c) for c in data.attrs.get("columns", [])]
        present = [k for k in data if isinstance(data[k], h5py.Dataset)]
        named = [c for c in order if L.dataset_name(c) in present]
        taken = {L.dataset_name(c) for c in named}
        return named + [c for c in present if c not in taken]

    def _dataset(self, column: str) -> h5py.Dataset:
        return self.file[L.DATA][L.dataset_name(column)]

    @property
    def units(self) -> dict[str, str]:
        return {k: L.text(self._dataset(k).attrs.get("units", "")) for k in self.column_names}

    @property
    def n_rows(self) -> int:
        """Rows every column holds (columns are written together; the shortest bounds it)."""
        lengths = [self._dataset(k).shape[0] for k in self.column_names]
        return min(lengths) if lengths else 0

    def column(self, name: str) -> np.ndarray:
        if name not in self.column_names:
            raise DataFileError(f"{self.path}: no column {name!r} "
                                f"(columns: {', '.join(self.column_names)})")
        if name not in self._cache:
            self._cache[name] = self._dataset(name)[: self.n_rows]
        return self._cache[name]

    @property
    def columns(self) -> dict[str, np.ndarray]:
        """Column name → float64 array, all of length ``n_rows``."""
        return {name: self.column(name) for name in self.column_names}

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
    def has_sweeps(self) -> bool:
        return L.SWEEPS in self.file

    def sweeps(self) -> list[Sweep]:
        """Each sweep's columns (trimmed to its length) with its temperature, field, time."""
        if not self.has_sweeps:
            return []
        sw = self.file[L.SWEEPS]
        info = {name: sw[L.sweep_info_name(name)][()] for name in L.SWEEP_INFO}
        n_sweeps = min(len(v) for v in info.values())
        names = [c for c in self.column_names if L.dataset_name(c) in sw
                 and sw[L.dataset_name(c)].ndim == 2]
        grids = {name: sw[L.dataset_name(name)][()] for name in names}
        out = []
        for i in range(n_sweeps):
            n = int(info["n_points"][i])
            if n == 0:
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
    def snapshots(self) -> dict[str, dict[str, Any] | None]:
        """``{"start": dict, "end": dict or None}`` (end is None until the run finishes)."""
        g = self.file[L.SNAPSHOTS]
        start = _json(L.text(g["start"][()]), self.path, "start snapshot")
        end_ds = g["end"]
        end = _json(L.text(end_ds[0]), self.path, "end snapshot") if end_ds.shape[0] else None
        return {"start": start, "end": end}

    @property
    def fit_list(self) -> list[tuple[str, dict[str, Any], float]]:
        """Every stored fit in order: (name, FitResult dict, unix time)."""
        g = self.file[L.FITS]
        n = min(g["name"].shape[0], g["json"].shape[0], g["time"].shape[0])
        names = [L.text(v) for v in g["name"][:n]]
        texts = [L.text(v) for v in g["json"][:n]]
        times = g["time"][:n].tolist()
        return [(name, _json(t, self.path, f"fit {name!r}"), tm)
                for name, t, tm in zip(names, texts, times, strict=True)]

    @property
    def fits(self) -> dict[str, dict[str, Any]]:
        """Fit name → FitResult dict; a later fit of the same name wins."""
        return {name: fit for name, fit, _ in self.fit_list}

    @property
    def log(self) -> list[LogEntry]:
        g = self.file[L.LOG]
        n = min(g[k].shape[0] for k in ("time", "level", "message"))
        return [LogEntry(float(t), L.text(lv), L.text(m)) for t, lv, m in
                zip(g["time"][:n], g["level"][:n], g["message"][:n], strict=True)]

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
        except (DataFileError, OSError, KeyError, ValueError) as exc:
            out.append(RunSummary(path=str(p), procedure="", status="unreadable", start="",
                                  n_rows=0, sample="", error=str(exc)))
    out.sort(key=lambda s: (s.start == "", s.start, s.path))
    return out


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OSU":
            return [L.text(v) for v in value.tolist()]
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json(text: Any, path: str, what: str) -> Any:
    try:
        return json.loads(text) if text else {}
    except (TypeError, ValueError) as exc:
        raise DataFileError(f"{path}: {what} is not valid JSON ({exc})") from None
