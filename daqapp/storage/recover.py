"""Recovering a run whose writer died: a file every HDF5 tool opens, with all that still reads.

A writer killed mid-run leaves the superblock's "open for write" flags set; daqapp's reader
reads such files anyway, but HDFView, h5web, nexusformat or plain ``h5py.File(path)`` refuse
them. Two ways out:

* ``recover_run(path)`` copies the file object by object (never a whole-group ``h5py`` copy:
  one unreadable global-heap string used to abort it with "bad heap index" and leave an empty
  output) into ``<stem>_recovered.h5``: every dataset down to its last readable row (chunk by
  chunk, then row by row inside a chunk that fails), every attribute that reads, the columns
  of a group trimmed to the rows all of them have. What could not be read is listed in the
  report and in the ``recovery_lost`` attribute. The copy is written to a temporary file,
  checked by opening it in plain h5py, and only then given its name; the original is kept.
* ``recover_run(path, in_place=True)`` clears the flags in the file itself (the superblock's
  consistency-flags byte and its checksum, what ``h5clear -s --increment`` does), after the
  writer is proven gone, then trims what does not read and marks the run ``interrupted``.
  No copy of a large file is made.

Links are never followed out of the file: external links are not copied (and listed as lost).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from daqapp.errors import DataFileError
from daqapp.storage import layout as L
from daqapp.storage.h5safe import (
    BROKEN_FILE_ERRORS,
    check_dataset,
    cleared_superblock,
    damaged,
    open_hdf5,
    read_superblock,
)
from daqapp.storage.liveness import WriterLock, writer_alive
from daqapp.storage.writer import now_iso

#: Groups whose resizable datasets are rows of one table: trimmed to the rows all of them have.
TABLE_GROUPS = (L.DATA, L.SWEEPS, L.FITS, L.LOG)
#: Groups nested deeper than this are not copied (a hostile file may nest without end).
MAX_DEPTH = 32
_INTERRUPTED_ERROR = ("writer process ended without closing the file (killed or crashed); "
                      "rows up to its last flush recovered")


@dataclass
class Recovery:
    """What a recovery produced: the file, its rows, and what could not be read."""

    path: Path
    n_rows: int
    lost: list[str] = field(default_factory=list)
    in_place: bool = False


def needs_recovery(path: str | os.PathLike[str]) -> bool:
    """True if a dead writer left the file open: plain HDF5 tools refuse it until recovered."""
    try:
        sb = read_superblock(path)
    except DataFileError:
        return False
    return sb.open_for_write and writer_alive(os.fspath(path)) is False


def runs_needing_recovery(folder: str | os.PathLike[str]) -> list[Path]:
    """The run files in ``folder`` (recursively) that ``needs_recovery``, sorted."""
    from daqapp.storage.reader import RUN_SUFFIXES

    root = Path(folder)
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in RUN_SUFFIXES
                  and p.is_file() and needs_recovery(p))


def recovery_hint(folder: str | os.PathLike[str]) -> list[str]:
    """One line per file of ``folder`` that needs recovery, with the command that does it."""
    return [f"{p}: writer was killed; other HDF5 tools refuse it until "
            f"`daqapp runs recover --in-place {p}`" for p in runs_needing_recovery(folder)]


# ------------------------------------------------------------------------- salvaging
def _storage_end(ds: h5py.Dataset, lo: int) -> int:
    """Byte offset past the stored chunk holding row ``lo`` (0 if unallocated: fill values)."""
    try:
        if ds.chunks is None:
            offset = ds.id.get_offset()
            return 0 if offset is None else offset + ds.id.get_storage_size()
        info = ds.id.get_chunk_info_by_coord((lo // ds.chunks[0] * ds.chunks[0],)
                                             + (0,) * (ds.ndim - 1))
        return 0 if info.byte_offset is None else info.byte_offset + info.size
    except (AttributeError, RuntimeError, ValueError, KeyError, OSError):
        return 0


def _blocks(ds: h5py.Dataset, file_size: int, lost: list[str]) -> list[np.ndarray]:
    """The readable leading rows of ``ds`` as blocks of rows; records where reading stopped."""
    n = ds.shape[0]
    step = ds.chunks[0] if ds.chunks else 65536
    out: list[np.ndarray] = []
    lo = 0
    while lo < n:
        hi = min(n, lo + step)
        if _storage_end(ds, lo) > file_size:  # the chunk lies past a cut: zeros, not data
            lost.append(f"{ds.name}: rows {lo} to {n - 1} lie past the end of the file")
            return out
        try:
            out.append(np.asarray(ds[lo:hi]))
        except BROKEN_FILE_ERRORS:
            for i in range(lo, hi):
                try:
                    out.append(np.asarray(ds[i:i + 1]))
                except BROKEN_FILE_ERRORS as exc:
                    lost.append(f"{ds.name}: rows {i} to {n - 1} unreadable ({_short(exc)})")
                    return out
        lo = hi
    return out


def _short(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:120]


#: Dimension-scale links: object references into the source file, meaningless in the copy;
#: the scales are attached again there (``_attach_scales``).
_SCALE_LINKS = ("DIMENSION_LIST", "REFERENCE_LIST")


def _copy_attrs(src: Any, dst: Any, lost: list[str]) -> None:
    for key in list(src.attrs):
        if key in _SCALE_LINKS:
            continue
        try:
            dst.attrs[key] = src.attrs[key]
        except BROKEN_FILE_ERRORS as exc:
            lost.append(f"{src.name} attribute {key!r} ({_short(exc)})")


ScaleLinks = list[tuple[str, int, str]]


def _copy_dataset(ds: h5py.Dataset, dst: h5py.Group, name: str, src_path: str,
                  lost: list[str], scales: ScaleLinks) -> None:
    file_size = os.stat(src_path).st_size
    try:
        check_dataset(ds, src_path, ds.name, numeric=False)
    except DataFileError as exc:
        lost.append(str(exc).split(": ", 1)[-1])
        return
    kwargs: dict[str, Any] = {}
    dtype = h5py.string_dtype() if h5py.check_string_dtype(ds.dtype) else ds.dtype
    if ds.ndim == 0:
        try:
            out = dst.create_dataset(name, data=ds[()], dtype=dtype)
        except BROKEN_FILE_ERRORS as exc:
            lost.append(f"{ds.name} ({_short(exc)})")
            return
        _copy_attrs(ds, out, lost)
        return
    blocks = _blocks(ds, file_size, lost)
    rows = sum(b.shape[0] for b in blocks)
    if ds.chunks:  # a chunk may not exceed a fixed maximum, nor be empty
        chunks = tuple(c if m is None else min(c, m) for c, m in zip(ds.chunks, ds.maxshape,
                                                                     strict=True))
        if all(chunks):
            kwargs["chunks"] = chunks
            kwargs["maxshape"] = ds.maxshape
    if ds.fillvalue is not None and dtype == ds.dtype and ds.dtype.kind in "biuf":
        kwargs["fillvalue"] = ds.fillvalue
    try:
        out = dst.create_dataset(name, shape=(rows, *ds.shape[1:]), dtype=dtype, **kwargs)
        at = 0
        for block in blocks:
            out[at:at + block.shape[0]] = block
            at += block.shape[0]
    except BROKEN_FILE_ERRORS as exc:
        lost.append(f"{ds.name} ({_short(exc)})")
        if name in dst:
            del dst[name]
        return
    _copy_attrs(ds, out, lost)
    if "DIMENSION_LIST" in ds.attrs:  # remember the scales by path, for _attach_scales
        try:
            scales.extend((out.name, i, scale.name) for i, dim in enumerate(ds.dims)
                          for scale in dim.values())
        except BROKEN_FILE_ERRORS as exc:
            lost.append(f"{ds.name}: dimension scales unreadable ({_short(exc)})")


def _attach_scales(f: h5py.File, scales: ScaleLinks, lost: list[str]) -> None:
    """Attach in the copy the dimension scales (dataset, dimension, scale) the source had."""
    for path, dim, scale_path in scales:
        try:
            if path not in f or scale_path not in f:
                continue
            scale = f[scale_path]
            if not scale.is_scale:
                scale.make_scale(scale_path.rsplit("/", 1)[-1])
            f[path].dims[dim].attach_scale(scale)
        except BROKEN_FILE_ERRORS as exc:
            lost.append(f"{path}: dimension scale {scale_path} not attached ({_short(exc)})")


def _copy_group(src: h5py.Group, dst: h5py.Group, src_path: str, lost: list[str],
                scales: ScaleLinks, depth: int = 0) -> None:
    _copy_attrs(src, dst, lost)
    if depth >= MAX_DEPTH:
        lost.append(f"{src.name}: groups nested deeper than {MAX_DEPTH} levels not copied")
        return
    try:
        names = list(src)
    except BROKEN_FILE_ERRORS as exc:
        lost.append(f"{src.name}: members unreadable ({_short(exc)})")
        return
    for name in names:
        where = f"{src.name.rstrip('/')}/{name}"
        try:
            link = src.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                lost.append(f"{where}: external link to {link.filename}:{link.path} not "
                            "followed")
                continue
            if isinstance(link, h5py.SoftLink):
                lost.append(f"{where}: soft link to {link.path} not copied")
                continue
            obj = src[name]
        except BROKEN_FILE_ERRORS as exc:
            lost.append(f"{where} ({_short(exc)})")
            continue
        if isinstance(obj, h5py.Dataset):
            _copy_dataset(obj, dst, name, src_path, lost, scales)
        elif isinstance(obj, h5py.Group):
            try:
                sub = dst.create_group(name, track_order=True)
            except BROKEN_FILE_ERRORS as exc:
                lost.append(f"{where} ({_short(exc)})")
                continue
            _copy_group(obj, sub, src_path, lost, scales, depth + 1)


def _trim_tables(f: h5py.File, lost: list[str], keep: dict[str, int] | None = None
                 ) -> dict[str, int]:
    """Trim each table group's resizable datasets to the rows all of them hold.

    ``keep`` gives a per-dataset number of readable rows (in-place recovery); otherwise the
    datasets' own lengths count. Returns the rows kept per group.
    """
    kept: dict[str, int] = {}
    for group in TABLE_GROUPS:
        g = f.get(group)
        if not isinstance(g, h5py.Group):
            continue
        members = [g[k] for k in g if isinstance(g.get(k, getlink=True), h5py.HardLink)]
        rows = [ds for ds in members if isinstance(ds, h5py.Dataset) and ds.ndim >= 1
                and ds.maxshape[0] is None]
        if not rows:
            continue
        lengths = {ds.name: (keep or {}).get(ds.name, ds.shape[0]) for ds in rows}
        n = min(min(lengths.values()), *(ds.shape[0] for ds in rows))
        for ds in rows:
            if ds.shape[0] > n:
                ds.resize((n, *ds.shape[1:]))
        kept[group] = n
    return kept


def _repair_columns(data: h5py.Group, lost: list[str]) -> None:
    """A ``columns`` attribute that is not a list of names is replaced by the datasets held."""
    value = data.attrs.get("columns")
    names = [L.text(v) for v in value] if isinstance(value, np.ndarray) and value.ndim == 1 \
        else None
    held = [k for k in data if isinstance(data[k], h5py.Dataset) and data[k].ndim == 1
            and data[k].dtype.kind in "biuf"]
    if names is None or not all(isinstance(n, str) for n in names):
        lost.append(f"{data.name} attribute 'columns' ({type(value).__name__}) replaced by the "
                    "columns present")
        data.attrs["columns"] = [n.replace("\u2215", "/") for n in held]
    for k in list(data):  # a column that is not a 1-D number array cannot be kept
        if k not in held:
            lost.append(f"{data.name}/{k}: not a 1-D numeric column, dropped")
            del data[k]


def _mark(f: h5py.File, src_attrs: dict[str, Any], n_rows: int, lost: list[str],
          origin: str) -> None:
    """Status, rows and what was lost, where the file keeps its run attributes."""
    attrs = L.run_group(f).attrs
    if str(src_attrs.get("status", "")) in ("running", ""):
        attrs["status"] = L.INTERRUPTED
        attrs["error"] = _INTERRUPTED_ERROR
    attrs["n_rows"] = n_rows
    attrs["recovered_from"] = origin
    attrs["recovered_at"] = now_iso()
    attrs["recovery_lost"] = json.dumps(lost)


def _verify(path: Path) -> int:
    """Open in plain h5py (what other tools do) and as a run; the number of rows."""
    from daqapp.storage.reader import open_run

    try:
        with h5py.File(path, "r"):
            pass
    except OSError as exc:
        raise DataFileError(f"{path}: recovered file does not open in plain h5py ({exc})"
                            ) from None
    with open_run(path) as run:
        return run.n_rows


def _attrs_of(f: h5py.File) -> dict[str, Any]:
    """The run attributes that read (format 2: /entry/daqapp; format 1: the root)."""
    out: dict[str, Any] = {}
    try:
        group = L.run_group(f)
    except BROKEN_FILE_ERRORS:
        group = f
    for key in list(group.attrs):
        try:
            out[key] = L.text(group.attrs[key]) if key in ("status", "format") \
                else group.attrs[key]
        except BROKEN_FILE_ERRORS:
            continue
    return out


# ------------------------------------------------------------------------- entry point
def recover_run(path: str | os.PathLike[str], output: str | os.PathLike[str] | None = None,
                *, in_place: bool = False) -> Recovery:
    """Make an interrupted run readable by every HDF5 tool; see the module doc for the ways."""
    src_path = Path(path)
    with damaged(str(src_path), "recovery"):
        if in_place:
            if output is not None:
                raise DataFileError("runs recover: --in-place and --output exclude each other")
            return _recover_in_place(src_path)
        return _recover_copy(src_path, output)


def _recover_copy(src_path: Path, output: str | os.PathLike[str] | None) -> Recovery:
    out = Path(output) if output is not None else src_path.with_name(
        f"{src_path.stem}_recovered{src_path.suffix or '.h5'}")
    if out.exists() or out.is_symlink():
        raise DataFileError(f"{out}: already exists; choose another --output")
    sb = read_superblock(src_path)
    if sb.open_for_write and writer_alive(os.fspath(src_path)) is True:
        raise DataFileError(f"{src_path}: still being written by a running process; "
                            "recover it only after that process has ended")
    src = open_hdf5(src_path, allow_truncated=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    lost: list[str] = []
    try:
        with src:
            src_attrs = _attrs_of(src)
            if L.text(src_attrs.get("format", "")) != L.FORMAT_NAME:
                raise DataFileError(f"{src_path}: not a daqapp run file (no "
                                    f"format={L.FORMAT_NAME!r} attribute)")
            try:
                dst = h5py.File(tmp, "w-", libver="latest")
            except OSError as exc:
                raise DataFileError(f"{out}: cannot create ({exc})") from None
            with dst:
                scales: ScaleLinks = []
                _copy_group(src, dst, os.fspath(src_path), lost, scales)
                if L.DATA not in dst:
                    raise DataFileError(f"{src_path}: nothing to recover ({L.DATA} unreadable: "
                                        f"{'; '.join(lost[:3]) or 'missing'})")
                _repair_columns(dst[L.DATA], lost)
                n_rows = _trim_tables(dst, lost).get(L.DATA, 0)
                _attach_scales(dst, scales, lost)
                _mark(dst, src_attrs, n_rows, lost, str(src_path.resolve()))
        try:
            n_rows = _verify(tmp)
        except DataFileError as exc:
            reason = str(exc).split(": ", 1)[-1]
            raise DataFileError(f"{src_path}: cannot recover: the copy does not read as a run "
                                f"({reason})") from None
        try:
            os.link(tmp, out)  # never replaces a file that appeared meanwhile
            os.unlink(tmp)
        except FileExistsError:
            raise DataFileError(f"{out}: already exists; choose another --output") from None
        except OSError:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return Recovery(out, n_rows, lost)


def _recover_in_place(path: Path) -> Recovery:
    p = os.fspath(path)
    sb = read_superblock(path)
    if not sb.open_for_write:
        raise DataFileError(f"{path}: closed cleanly; nothing to recover in place")
    if writer_alive(p) is not False:
        raise DataFileError(f"{path}: a process may still be writing it (its writer lock is "
                            "held, or cannot be checked here); not touched")
    size = os.stat(path).st_size
    if sb.base_address + sb.eof > size:
        raise DataFileError(f"{path}: truncated (holds {size} bytes, superblock says "
                            f"{sb.base_address + sb.eof}); use a copy: daqapp runs recover "
                            f"{path}")
    lost: list[str] = []
    readable: dict[str, int] = {}
    with open_hdf5(path) as f:
        src_attrs = _attrs_of(f)
        if L.text(src_attrs.get("format", "")) != L.FORMAT_NAME:
            raise DataFileError(f"{path}: not a daqapp run file; not touched")
        for group in TABLE_GROUPS:
            g = f.get(group)
            if not isinstance(g, h5py.Group):
                continue
            for name in g:
                if not isinstance(g.get(name, getlink=True), h5py.HardLink):
                    continue
                ds = g[name]
                if isinstance(ds, h5py.Dataset) and ds.ndim >= 1:
                    try:
                        check_dataset(ds, p, ds.name, numeric=False)
                    except DataFileError as exc:
                        lost.append(str(exc).split(": ", 1)[-1])
                        continue
                    readable[ds.name] = sum(b.shape[0] for b in _blocks(ds, size, lost))
    # held while the file changes: to other daqapp processes it reads as being written
    lock = WriterLock(p)
    try:
        fd = os.open(p, os.O_RDWR)
        try:
            original = os.pread(fd, sb.size, sb.offset)
            os.pwrite(fd, cleared_superblock(fd, sb, size), sb.offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            with h5py.File(path, "r+", locking=False) as f:
                n_rows = _trim_tables(f, lost, readable).get(L.DATA, 0)
                _mark(f, src_attrs, n_rows, lost, "in place")
        except OSError as exc:  # nothing was changed but the superblock: put it back
            fd = os.open(p, os.O_RDWR)
            try:
                os.pwrite(fd, original, sb.offset)
            finally:
                os.close(fd)
            raise DataFileError(f"{path}: cannot recover in place ({exc}); file left as it "
                                "was, try a copy: daqapp runs recover") from None
    finally:
        lock.release()
    return Recovery(path, _verify(path), lost, in_place=True)
