"""Fit results in a run file: an exact JSON list plus one browsable group per fit.

The JSON list (``/entry/fits/name``, ``json``, ``time``) is what the reader trusts: it is
resizable, so fits can be added while SWMR is on, and it round-trips ``FitResult.to_dict()``
exactly. Once the run is closed, each fit is also expanded into ``/entry/fit_results/<name>``
(an NXcollection): arrays and scalars as fields, nested dicts (``params``) as NXcollections, so
h5web/HDFView users see model, parameters, uncertainties, covariance and χ² without parsing JSON.

Crash safety: a process killed while a file is open for plain (non-SWMR) writing can leave any
metadata it was changing half-written. So a fit is appended to the JSON list under SWMR write
(the file stays readable at every instant, like a running run), and only the browsable groups,
which nothing reads back, are written without SWMR, into their own group: a kill there can
damage ``fit_results`` alone, never the run's data or its fit list.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import h5py
import numpy as np

from daqapp.errors import DataFileError
from daqapp.storage import layout as L

log = logging.getLogger(__name__)

_RESERVED = {"name", "json", "time"}


def group_name(name: str) -> str:
    """HDF5-safe group name for a fit; never one of the list datasets."""
    safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", name.strip()) or "fit"
    return f"fit_{safe}" if safe in _RESERVED else safe


def _write_value(group: h5py.Group, key: str, value: Any) -> None:
    """One fit item as a field (numbers, text, arrays) or an NXcollection (a nested dict).

    Fields, not attributes: NeXus defines no attributes of its own for these, and a field
    also carries its None (NaN plus a ``missing`` note) where an attribute cannot.
    """
    if isinstance(value, Mapping):
        sub = group.create_group(key)
        sub.attrs["NX_class"] = "NXcollection"
        for k, v in value.items():
            _write_value(sub, str(k), v)
        return
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, str) for v in value):
            group.create_dataset(key, data=list(value), dtype=L.STR_DTYPE)
            return
        try:
            arr = np.asarray([np.nan if v is None else v for v in value], dtype="f8") \
                if all(not isinstance(v, (list, tuple)) for v in value) \
                else np.asarray(_nan_nested(value), dtype="f8")
        except (TypeError, ValueError):
            group.create_dataset(key, data=L.dumps(value), dtype=L.STR_DTYPE)
            return
        group.create_dataset(key, data=arr)
        return
    if value is None:
        group.create_dataset(key, data=np.nan).attrs["missing"] = "None in the fit's JSON"
        return
    if isinstance(value, str):
        group.create_dataset(key, data=value, dtype=L.STR_DTYPE)
        return
    if isinstance(value, (bool, int, float)):
        group.create_dataset(key, data=value)
        return
    group.create_dataset(key, data=L.dumps(value), dtype=L.STR_DTYPE)


def _nan_nested(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_nan_nested(v) for v in value]
    return np.nan if value is None else value


def write_fit_groups(path: str | os.PathLike[str], fits: Iterable[tuple[str, str]]) -> None:
    """Expand each (name, json) into ``/entry/fit_results/<name>`` of a closed run file.

    A later fit of the same name replaces the earlier group. Opens the file without SWMR (object
    creation needs it); see the module doc for why only ``fit_results`` is at risk then.
    """
    with h5py.File(path, "a", libver="latest") as f:
        if L.FIT_RESULTS not in f:  # files written before fit_results existed
            f.create_group(L.FIT_RESULTS).attrs["NX_class"] = "NXcollection"
        results = f[L.FIT_RESULTS]
        for name, text in fits:
            fit = json.loads(text)
            key = group_name(name)
            if key in results:
                del results[key]
            g = results.create_group(key)
            g.attrs["NX_class"] = "NXcollection"
            g.create_dataset("fit_name", data=name, dtype=L.STR_DTYPE)
            g.create_dataset("json", data=text, dtype=L.STR_DTYPE)
            if isinstance(fit, Mapping):
                for k, v in fit.items():
                    if str(k) in ("fit_name", "json"):
                        continue
                    _write_value(g, str(k), v)


def append_fit(path: str | os.PathLike[str], name: str, fit: Mapping[str, Any]) -> None:
    """Add a fit to a closed run file (a refit of an old run); the run data stay untouched.

    The fit goes into the JSON list under SWMR write first (kill-safe), then into its browsable
    group (see the module doc).
    """
    p = os.fspath(path)
    text = L.dumps(dict(fit))
    try:
        f = h5py.File(p, "a", libver="latest")
    except OSError as exc:
        raise DataFileError(f"{p}: cannot open run file to add a fit "
                            f"(is it still being written?): {exc}") from None
    with f:
        if L.FITS not in f or not all(k in f[L.FITS] for k in ("name", "json", "time")):
            raise DataFileError(f"{p}: not a daqapp run file (no {L.FITS})")
        f.swmr_mode = True  # from here on the file is consistent on disk at every instant
        g = f[L.FITS]
        n = min(g[k].shape[0] for k in ("name", "json", "time"))
        for key, value in (("name", name), ("json", text), ("time", time.time())):
            g[key].resize((n + 1,))
            g[key][n] = value
        f.flush()
    try:
        write_fit_groups(p, [(name, text)])
    except OSError as exc:  # the JSON list already holds the fit
        log.warning("%s: fit %r kept as JSON only (%s)", p, name, exc)
