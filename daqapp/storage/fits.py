"""Fit results in a run file: an exact JSON list plus one browsable group per fit.

The JSON list (``/entry/fits/name``, ``json``, ``time``) is what the reader trusts: it is
resizable, so fits can be added while SWMR is on, and it round-trips ``FitResult.to_dict()``
exactly. Once the run is closed, each fit is also expanded into ``/entry/fits/<name>``: arrays
as datasets, scalars as attributes, nested dicts (``params``) as subgroups, so h5web/HDFView
users see model, parameters, uncertainties, covariance and χ² without parsing JSON.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import h5py
import numpy as np

from daqapp.errors import DataFileError
from daqapp.storage import layout as L

_RESERVED = {"name", "json", "time"}


def group_name(name: str) -> str:
    """HDF5-safe group name for a fit; never one of the list datasets."""
    safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", name.strip()) or "fit"
    return f"fit_{safe}" if safe in _RESERVED else safe


def _write_value(group: h5py.Group, key: str, value: Any) -> None:
    if isinstance(value, Mapping):
        sub = group.create_group(key)
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
            group.attrs[key] = L.dumps(value)
            return
        group.create_dataset(key, data=arr)
        return
    if value is None:
        group.attrs[key] = np.nan
        group.attrs[f"{key}_is_none"] = True
        return
    if isinstance(value, (bool, int, float, str)):
        group.attrs[key] = value
        return
    group.attrs[key] = L.dumps(value)


def _nan_nested(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_nan_nested(v) for v in value]
    return np.nan if value is None else value


def write_fit_groups(fits_group: h5py.Group, fits: Iterable[tuple[str, str]]) -> None:
    """Expand each (name, json) into a subgroup; a later fit of the same name replaces it."""
    for name, text in fits:
        fit = json.loads(text)
        key = group_name(name)
        if key in fits_group:
            del fits_group[key]
        g = fits_group.create_group(key)
        g.attrs["NX_class"] = "NXprocess"
        g.attrs["fit_name"] = name
        g.attrs["json"] = text
        if isinstance(fit, Mapping):
            for k, v in fit.items():
                if str(k) in ("NX_class", "fit_name", "json"):
                    continue
                _write_value(g, str(k), v)


def append_fit(path: str | os.PathLike[str], name: str, fit: Mapping[str, Any]) -> None:
    """Add a fit to a closed run file (a refit of an old run); the run data stay untouched."""
    text = L.dumps(dict(fit))
    try:
        f = h5py.File(path, "a", libver="latest")
    except OSError as exc:
        raise DataFileError(f"{os.fspath(path)}: cannot open run file to add a fit "
                            f"(is it still being written?): {exc}") from None
    with f:
        if L.FITS not in f or "json" not in f[L.FITS]:
            raise DataFileError(f"{os.fspath(path)}: not a daqapp run file (no {L.FITS})")
        g = f[L.FITS]
        n = g["json"].shape[0]
        for key, value in (("name", name), ("json", text), ("time", time.time())):
            g[key].resize((n + 1,))
            g[key][n] = value
        write_fit_groups(g, [(name, text)])
