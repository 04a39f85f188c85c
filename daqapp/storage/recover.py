"""Recovering a run whose writer died: a copy every HDF5 tool can open.

A writer killed mid-run leaves the superblock's "open for SWMR write" flag set. daqapp's reader
opens such files anyway (as a SWMR reader), but HDFView, h5web or plain ``h5py.File(path)``
refuse them until ``h5clear`` is run. ``recover_run`` copies what the file holds into a new,
cleanly closed file, trims the columns to the rows all of them have, and marks the status
``interrupted``; the original is left untouched as evidence.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py

from daqapp.errors import DataFileError
from daqapp.storage import layout as L
from daqapp.storage.reader import open_run
from daqapp.storage.writer import now_iso


def recover_run(path: str | os.PathLike[str], output: str | os.PathLike[str] | None = None
                ) -> Path:
    """Copy an interrupted run to ``output`` (default ``<stem>_recovered.h5``); return it."""
    src_path = Path(path)
    out = Path(output) if output is not None else src_path.with_name(
        f"{src_path.stem}_recovered{src_path.suffix or '.h5'}")
    with open_run(src_path) as run:
        if run.is_live:
            raise DataFileError(f"{src_path}: still being written by a running process; "
                                "recover it only after that process has ended")
        n_rows = run.n_rows
        src = run.file
        try:
            dst = h5py.File(out, "w-", libver="latest")
        except FileExistsError:
            raise DataFileError(f"{out}: already exists; choose another --output") from None
        except OSError as exc:
            raise DataFileError(f"{out}: cannot create ({exc})") from None
        with dst:
            for key, value in src.attrs.items():
                dst.attrs[key] = value
            for key in src:
                src.copy(src[key], dst, name=key)
            data = dst[L.DATA]
            for name in data:
                ds = data[name]
                if isinstance(ds, h5py.Dataset) and ds.shape[0] > n_rows:
                    ds.resize((n_rows,))
            if run.raw_status == "running":
                dst.attrs["status"] = L.INTERRUPTED
                dst.attrs["error"] = ("writer process ended without closing the file (killed or "
                                      "crashed); rows up to its last flush recovered")
            dst.attrs["n_rows"] = n_rows
            dst.attrs["recovered_from"] = str(src_path.resolve())
            dst.attrs["recovered_at"] = now_iso()
    return out
