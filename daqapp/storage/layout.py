"""Names and conventions of the daqapp HDF5 run file, shared by the writer and the reader.

One place defines every path and attribute so the writer, the reader and the tests cannot
drift apart. Format 2 stores every reading once and puts the run's metadata where NeXus
(base classes, checked by nexusformat's validator) and netCDF readers look for it::

    /                      NXroot: NX_class, default, file_name, file_time, HDF5_Version,
                           h5py_version, creator, creator_version
    /entry                 NXentry: fields definition ("NXdaqapp_run", @version = format),
                           title, start_time, end_time, program_name (@version)
    /entry/sample          NXsample: name, pressure (GPa), description (the cell)
    /entry/user            NXuser: name (the operator)
    /entry/daqapp          NXcollection: daqapp's own run attributes (format, format_version,
                           software_version, procedure, parameters JSON, metadata JSON,
                           status, error, n_rows, sweep_axis, cell) and ``heartbeat``
    /entry/parameters      NXparameters; one scalar dataset per parameter (``units``)
    /entry/data            NXdata; one 1-D resizable chunked float64 dataset per column
                           (``units``), signal/axes/``<column>_indices`` attributes; the axis
                           column is an HDF5 dimension scale attached to every other column
    /entry/sweeps          NXcollection: the sweep index, one row per contiguous segment of
                           a sweep: ``sweep``, ``offset``, ``length`` (rows of /entry/data)
    /entry/snapshots       ``start`` (JSON text) and ``end`` (0 or 1 JSON text)
    /entry/fits            ``name``, ``json``, ``time`` (resizable): the fits as exact JSON
    /entry/fit_results     after the run, one NXcollection per fit (arrays and scalars as
                           fields, nested dicts as NXcollections); its own group, created
                           before SWMR starts, so a kill while it is written damages nothing else
    /entry/log             ``time``, ``level``, ``message`` (resizable)

Format 1 (before this layout) kept the run attributes on the root, a 2-D NaN-padded copy of
every column in /entry/sweeps and the heartbeat at /entry/heartbeat; the reader still reads it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np

FORMAT_NAME = "daqapp-run"
FORMAT_VERSION = 2
#: /entry/definition: daqapp's own NeXus application definition, shipped beside this module
#: (``nxvalidate -a <DEFINITION_FILE> run.h5`` checks a run against it).
DEFINITION = "NXdaqapp_run"
DEFINITION_FILE = Path(__file__).with_name("nexus") / f"{DEFINITION}.nxdl.xml"

ENTRY = "entry"
DATA = f"{ENTRY}/data"
SWEEPS = f"{ENTRY}/sweeps"
PARAMETERS = f"{ENTRY}/parameters"
SNAPSHOTS = f"{ENTRY}/snapshots"
FITS = f"{ENTRY}/fits"
FIT_RESULTS = f"{ENTRY}/fit_results"
LOG = f"{ENTRY}/log"
RUN = f"{ENTRY}/daqapp"
SAMPLE = f"{ENTRY}/sample"
USER = f"{ENTRY}/user"
HEARTBEAT = f"{RUN}/heartbeat"
#: Format 1 paths, read only.
V1_HEARTBEAT = f"{ENTRY}/heartbeat"

#: Columns whose per-sweep mean / first value describe a sweep (a spectrum at one temperature).
TEMPERATURE_COLUMN = "temperature"
FIELD_COLUMN = "field"
TIME_COLUMN = "time"
SWEEP_COLUMN = "sweep"
#: The sweep index of format 2: one row per contiguous segment of a sweep in /entry/data.
SEGMENT_DATASETS = ("sweep", "offset", "length")
#: Per-sweep datasets of format 1's /entry/sweeps, stored as ``sweep_<name>``.
SWEEP_INFO = ("index", "temperature", "field", "time", "n_points")


def sweep_info_name(name: str) -> str:
    """Format-1 dataset name of a per-sweep quantity: ``sweep_index``, ``sweep_temperature``."""
    return f"sweep_{name}"


RESERVED_COLUMNS = frozenset(sweep_info_name(n) for n in SWEEP_INFO)


def segments(sweep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The runs of one sweep number in a sweep column: (sweep, start, stop) row ranges.

    Rows whose sweep is NaN or negative (points outside any sweep) belong to no run.
    """
    sweep = np.asarray(sweep, dtype="f8")
    valid = np.isfinite(sweep) & (sweep >= 0) & (sweep < 2.0**62)
    idx = np.where(valid, sweep, -1).astype(np.int64)
    bounds = np.flatnonzero(np.diff(idx)) + 1
    starts = np.concatenate(([0], bounds)).astype(np.int64) if idx.size else bounds
    stops = np.concatenate((bounds, [idx.size])).astype(np.int64) if idx.size else bounds
    keep = idx[starts] >= 0
    return idx[starts][keep], starts[keep], stops[keep]


def run_group(f: h5py.File) -> h5py.Group:
    """Where a file keeps daqapp's run attributes (status, error, ...): format 2 or 1."""
    g = f.get(RUN)
    return g if isinstance(g, h5py.Group) else f


def dataset_name(column: str) -> str:
    """HDF5 name of a column: '/' separates groups, so "dI/dV" is stored as "dI∕dV" (U+2215).

    The real column names are kept, in order, in the ``columns`` attribute of the data group.
    """
    return column.replace("/", "\u2215")

STATUSES = ("running", "finished", "aborted", "failed")
FINAL_STATUSES = ("finished", "aborted", "failed")
#: What a reader reports for a run whose file says "running" but whose writer is gone.
INTERRUPTED = "interrupted"

#: Signal column preferred for NeXus plotting, in order.
SIGNAL_PREFERENCE = ("didv", "dvdi", "resistance", "x", "voltage", "dc_voltage")
#: Against a current axis people read the voltage, V(I), before R(I).
SIGNAL_FOR_AXIS: dict[str, tuple[str, ...]] = {"current": ("voltage",),
                                               "bias_current": ("voltage", "dc_voltage")}


def axis_column(columns: Any, sweep_axis: str | None) -> str:
    """The column the others are plotted against and indexed by (an HDF5 dimension scale):
    the sweep axis, else the time, else the first column."""
    if sweep_axis:
        return sweep_axis
    return TIME_COLUMN if TIME_COLUMN in columns else next(iter(columns))


STR_DTYPE = h5py.string_dtype()


def to_jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays and non-finite floats into plain JSON (NaN/inf → None)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def dumps(value: Any) -> str:
    """JSON text for attributes and string datasets: strict (no NaN tokens), key order kept."""
    return json.dumps(to_jsonable(value), allow_nan=False)


def text(value: Any) -> str:
    """Decode an HDF5 string attribute/dataset element (bytes or str) to ``str``."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return text(value[()])
    return str(value)


def units_to_mV(units: str) -> float:
    """Factor turning a voltage in ``units`` into mV; raises ValueError for non-voltage units."""
    table = {"v": 1e3, "mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "nv": 1e-6, "kv": 1e6}
    key = units.strip().lower()
    if key not in table:
        raise ValueError(f"units {units!r} are not a voltage (V, mV, uV, nV)")
    return table[key]
