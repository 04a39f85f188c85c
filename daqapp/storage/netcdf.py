"""A run as an ``xarray.Dataset`` (coordinates, units, run attributes) and as a netCDF file.

For QCoDeS and xarray users: one call gives the run in the form their tools take, with the
axis column (the bias of a spectrum, the current of an I–V, the temperature of an R–T) as the
dimension coordinate, the sweep number, temperature, field and time as coordinates along the
same rows, every other column a data variable, units as stored (pint/UDUNITS spellings, CF
time decoded to datetime64), and the run's metadata as dataset attributes. The sweep index
(``segment_sweep``, ``segment_offset``, ``segment_length`` along ``segment``) says which rows
form each sweep, so ``ds.isel(dc_voltage=slice(off, off + n))`` is one spectrum.

xarray (and h5netcdf, to write netCDF) are an optional extra: ``pip install daqapp[xarray]``;
they are imported only when these functions run.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from daqapp.errors import ConfigError, DataFileError
from daqapp.storage import layout as L

if TYPE_CHECKING:
    import xarray

#: Columns that locate a reading rather than measure it: coordinates, not data variables.
COORDINATE_COLUMNS = (L.SWEEP_COLUMN, L.TEMPERATURE_COLUMN, L.FIELD_COLUMN, L.TIME_COLUMN,
                      "direction")
#: Run attributes copied onto the Dataset (``attrs`` keys of the reader).
RUN_ATTRIBUTES = ("procedure", "status", "start_time", "end_time", "sample", "operator", "cell",
                  "pressure_GPa", "parameters", "metadata", "sweep_axis", "format",
                  "format_version", "software_version", "error")


def _xarray() -> Any:
    try:
        import xarray
    except ImportError:
        raise ConfigError("xarray is not installed; install the optional extra: "
                          "pip install 'daqapp[xarray]'") from None
    return xarray


def to_xarray(path: str | os.PathLike[str]) -> xarray.Dataset:
    """The run at ``path`` as an in-memory ``xarray.Dataset`` (see the module doc)."""
    from daqapp.storage.reader import open_run

    xr = _xarray()
    with open_run(path) as run:
        names = run.column_names
        if not names:
            raise DataFileError(f"{path}: the run has no columns")
        stored = run.stored_units
        axis = L.axis_column(names, run.sweep_axis)
        if axis not in names:
            axis = names[0]
        dim = L.dataset_name(axis)
        columns = run.columns
        coords: dict[str, Any] = {}
        data_vars: dict[str, Any] = {}
        for name in names:
            var = L.dataset_name(name)
            attrs = {"units": stored.get(name, ""), "long_name": name}
            target = coords if name == axis or name in COORDINATE_COLUMNS else data_vars
            target[var] = ((dim,), np.asarray(columns[name]), attrs)
        seg = run.sweep_segments()
        if seg["sweep"].size:
            for key, values in seg.items():
                long = {"sweep": "sweep number", "offset": f"first row along {dim}",
                        "length": "rows"}[key]
                data_vars[f"segment_{key}"] = (("segment",), values,
                                               {"units": "", "long_name": long})
        attrs = {"source_file": Path(run.path).name, "Conventions": "CF-1.8"}
        for key in RUN_ATTRIBUTES:
            value = run.attrs.get(key, "")
            if key == "status":
                value = run.status
            attrs[key] = _attr_value(value)
    ds = xr.Dataset(data_vars=data_vars, coords=coords, attrs=attrs)
    return xr.decode_cf(ds)  # CF time units → datetime64, as xarray.open_dataset does


def _attr_value(value: Any) -> Any:
    """A netCDF-writable attribute: text or a finite number (NaN as "", None as "")."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else ""
    if value is None:
        return ""
    return str(value)


def export_netcdf(run_path: str | os.PathLike[str],
                  output: str | os.PathLike[str] | None = None) -> Path:
    """Write ``to_xarray(run_path)`` as a netCDF-4 file (default: the run with ``.nc``)."""
    run_path = Path(run_path)
    out = Path(output) if output is not None else run_path.with_suffix(".nc")
    if out.is_symlink():  # the rule of daqapp.storage.safe_write for every output file
        raise DataFileError(f"{out}: is a symbolic link; refusing to write through it "
                            "(remove it, or choose another output)")
    if out.resolve() == run_path.resolve():
        raise DataFileError(f"{out}: is the run file itself; choose another --output")
    ds = to_xarray(run_path)
    try:
        import h5netcdf  # noqa: F401 - the engine xarray writes with
    except ImportError:
        raise ConfigError("h5netcdf is not installed; install the optional extra: "
                          "pip install 'daqapp[xarray]'") from None
    try:
        ds.to_netcdf(out, engine="h5netcdf", invalid_netcdf=False)
    except OSError as exc:
        raise DataFileError(f"{out}: cannot write netCDF ({exc.strerror or exc})") from None
    return out
