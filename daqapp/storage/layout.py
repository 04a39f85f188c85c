"""Names and conventions of the daqapp HDF5 run file, shared by the writer and the reader.

One place defines every path and attribute so the writer, the reader and the tests cannot
drift apart. The layout (format version 1)::

    /                      NXroot; run attributes (format, versions, procedure, parameters, times,
                           status, operator, sample, cell, pressure_GPa, error)
    /entry                 NXentry
    /entry/parameters      NXparameters; one scalar dataset per parameter with a ``units`` attr
    /entry/data            NXdata; one 1-D resizable chunked float64 dataset per column (``units``)
    /entry/sweeps          NXdata; 2-D (sweep, point) datasets per column, NaN-padded, plus
                           per-sweep ``sweep_index``, ``sweep_temperature``, ``sweep_field``,
                           ``sweep_time`` (first point), ``sweep_n_points``
    /entry/snapshots       ``start`` (JSON text) and ``end`` (0 or 1 JSON text)
    /entry/fits            ``name``, ``json``, ``time`` (resizable): the fits as exact JSON
    /entry/fit_results     after the run, one browsable subgroup per fit (arrays as datasets,
                           scalars as attributes); its own group, created before SWMR starts,
                           so a kill while it is written can damage nothing else
    /entry/log             ``time``, ``level``, ``message`` (resizable)
    /entry/heartbeat       wall-clock time of the last flush (liveness fallback)
"""

from __future__ import annotations

import json
import math
from typing import Any

import h5py
import numpy as np

FORMAT_NAME = "daqapp-run"
FORMAT_VERSION = 1

ENTRY = "entry"
DATA = f"{ENTRY}/data"
SWEEPS = f"{ENTRY}/sweeps"
PARAMETERS = f"{ENTRY}/parameters"
SNAPSHOTS = f"{ENTRY}/snapshots"
FITS = f"{ENTRY}/fits"
FIT_RESULTS = f"{ENTRY}/fit_results"
LOG = f"{ENTRY}/log"
HEARTBEAT = f"{ENTRY}/heartbeat"

#: Columns whose per-sweep mean / first value describe a sweep (a spectrum at one temperature).
TEMPERATURE_COLUMN = "temperature"
FIELD_COLUMN = "field"
TIME_COLUMN = "time"
SWEEP_COLUMN = "sweep"
#: Per-sweep datasets in /entry/sweeps, stored as ``sweep_<name>`` (never clash with columns).
SWEEP_INFO = ("index", "temperature", "field", "time", "n_points")


def sweep_info_name(name: str) -> str:
    """Dataset name of a per-sweep quantity: ``sweep_index``, ``sweep_temperature``, ..."""
    return f"sweep_{name}"


RESERVED_COLUMNS = frozenset(sweep_info_name(n) for n in SWEEP_INFO)


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
