"""The one way daqapp opens an HDF5 file for reading: fast failure on broken or hostile files.

Why a file cut short used to hang every tool: a run whose writer died still has the
superblock's "open for SWMR write" flag set, so it can only be opened as a SWMR reader, and a
SWMR reader retries a metadata read whose checksum fails 100 times with an exponential
back-off (1 ns doubling, capped at 36 s a try: about 40 minutes), inside the C library with
the GIL held, so Ctrl-C waits too. Bytes past the end of a truncated file read as zeros, i.e.
as a checksum failure, every time. ``open_hdf5`` therefore

* checks before HDF5 sees the file: a regular file (a FIFO would block ``open``), the HDF5
  signature, a superblock whose checksum is right, and a stored end of file the file reaches;
* opens SWMR readers with a handful of read attempts (microseconds of back-off in all) through
  ``H5Pset_metadata_read_attempts``, which h5py does not wrap (called via ctypes on the very
  library h5py loaded), and without HDF5 file locking (read-only, no lock is needed);

``child``/``resolve`` walk paths through hard links only (an external link could pull in any
file the user can read; a soft link is followed only to a hard-linked object of the same file),
and ``check_dataset`` bounds what one read may allocate. ``damaged`` turns whatever HDF5 raises
on a broken file into one ``DataFileError`` line naming the file.
"""

from __future__ import annotations

import atexit
import ctypes
import io
import os
import signal
import stat
import struct
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
from h5py import h5f, h5p

from daqapp.errors import DataFileError

SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Superblock file-consistency flags of version 3: written by a writer / SWMR writer.
FLAG_WRITE = 0x01
FLAG_SWMR_WRITE = 0x04
#: Metadata read attempts of a SWMR reader (HDF5 default 100, ~40 min of back-off on a bad
#: checksum); 12 attempts back off 4 µs in all and still ride out a torn read of a live file.
SWMR_READ_ATTEMPTS = 12
#: One read may allocate at most this many bytes more than the file holds (fill-valued chunks).
MAX_READ_SLACK_BYTES = 256 * 2**20
#: Exceptions h5py/numpy raise on damaged files; ``damaged`` turns them into DataFileError.
BROKEN_FILE_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError,
                      AttributeError, RecursionError, MemoryError, OverflowError, UnicodeError,
                      struct.error)


# ------------------------------------------------------------------------- superblock
def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``: the checksum of every HDF5 v2+ metadata block."""
    m = 0xFFFFFFFF

    def rot(x: int, k: int) -> int:
        return ((x << k) | (x >> (32 - k))) & m

    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & m
    k = 0
    while length > 12:
        a = (a + int.from_bytes(data[k:k + 4], "little")) & m
        b = (b + int.from_bytes(data[k + 4:k + 8], "little")) & m
        c = (c + int.from_bytes(data[k + 8:k + 12], "little")) & m
        a = (a - c) & m; a ^= rot(c, 4); c = (c + b) & m  # noqa: E702
        b = (b - a) & m; b ^= rot(a, 6); a = (a + c) & m  # noqa: E702
        c = (c - b) & m; c ^= rot(b, 8); b = (b + a) & m  # noqa: E702
        a = (a - c) & m; a ^= rot(c, 16); c = (c + b) & m  # noqa: E702
        b = (b - a) & m; b ^= rot(a, 19); a = (a + c) & m  # noqa: E702
        c = (c - b) & m; c ^= rot(b, 4); b = (b + a) & m  # noqa: E702
        length -= 12
        k += 12
    if length == 0:
        return c
    tail = data[k:k + length] + b"\x00" * (12 - length)
    a = (a + int.from_bytes(tail[0:4], "little")) & m
    b = (b + int.from_bytes(tail[4:8], "little")) & m
    c = (c + int.from_bytes(tail[8:12], "little")) & m
    c ^= b; c = (c - rot(b, 14)) & m  # noqa: E702
    a ^= c; a = (a - rot(c, 11)) & m  # noqa: E702
    b ^= a; b = (b - rot(a, 25)) & m  # noqa: E702
    c ^= b; c = (c - rot(b, 16)) & m  # noqa: E702
    a ^= c; a = (a - rot(c, 4)) & m  # noqa: E702
    b ^= a; b = (b - rot(a, 14)) & m  # noqa: E702
    c ^= b; c = (c - rot(b, 24)) & m  # noqa: E702
    return c


@dataclass(frozen=True)
class Superblock:
    """What daqapp needs from an HDF5 superblock (file format spec, section II.A)."""

    offset: int  # where the superblock starts (0, or after a user block of 512·2ⁿ bytes)
    version: int
    offset_size: int
    flags: int
    base_address: int
    eof: int  # stored end-of-file address, relative to base_address
    flags_at: int  # byte offset of the consistency flags (v2/v3: one byte)

    @property
    def open_for_write(self) -> bool:
        """The writer never closed the file (killed, or still writing it)."""
        return self.version >= 2 and bool(self.flags & (FLAG_WRITE | FLAG_SWMR_WRITE))

    @property
    def size(self) -> int:
        """Bytes of a v2/v3 superblock, checksum included."""
        return 12 + 4 * self.offset_size + 4


def _regular_file(path: str) -> os.stat_result:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise DataFileError(f"{path}: is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise DataFileError(f"{path}: not a regular file (a pipe, socket or device)")
    return st


def has_hdf5_signature(path: str | os.PathLike[str]) -> bool:
    """True if a regular file starts with the HDF5 signature (never blocks on a FIFO)."""
    p = os.fspath(path)
    try:
        if not stat.S_ISREG(os.stat(p).st_mode):
            return False
        with open(p, "rb") as fh:
            return fh.read(8) == SIGNATURE
    except OSError:
        return False


def read_superblock(path: str | os.PathLike[str]) -> Superblock:
    """Parse and check the superblock; DataFileError names the file and the defect."""
    p = os.fspath(path)
    size = _regular_file(p).st_size
    try:
        with open(p, "rb") as fh:
            offset = 0
            while True:  # the signature sits at 0, 512, 1024, 2048, ... (after a user block)
                fh.seek(offset)
                head = fh.read(96)
                if head[:8] == SIGNATURE:
                    break
                offset = 512 if offset == 0 else offset * 2
                if offset + 8 > size:
                    raise DataFileError(f"{p}: not an HDF5 file (no HDF5 signature)")
    except OSError as exc:
        raise DataFileError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if len(head) < 12:
        raise DataFileError(f"{p}: truncated HDF5 file ({size} bytes, superblock cut off)")
    version = head[8]
    if version >= 2:
        if version > 3:
            raise DataFileError(f"{p}: HDF5 superblock version {version} is not supported")
        osz = head[9]
        flags_at, addr_at = 11, 12
        flags = head[11]
    elif version in (0, 1):
        osz = head[13]
        flags_at = 20
        flags = int.from_bytes(head[20:24], "little")
        addr_at = 24 if version == 0 else 28
    else:
        raise DataFileError(f"{p}: HDF5 superblock version {version} is not supported")
    if osz not in (2, 4, 8):
        raise DataFileError(f"{p}: damaged HDF5 superblock (size of offsets {osz})")
    need = addr_at + 4 * osz + (4 if version >= 2 else 0)
    if len(head) < need:
        raise DataFileError(f"{p}: truncated HDF5 file ({size} bytes, superblock cut off)")

    def addr(i: int) -> int:
        return int.from_bytes(head[addr_at + i * osz:addr_at + (i + 1) * osz], "little")

    if version >= 2:
        stored = int.from_bytes(head[need - 4:need], "little")
        if lookup3(head[:need - 4]) != stored:
            raise DataFileError(f"{p}: damaged HDF5 superblock (checksum mismatch)")
        base, eof = addr(0), addr(2)
    else:
        base, eof = addr(0), addr(2)
    return Superblock(offset=offset, version=version, offset_size=osz, flags=flags,
                      base_address=base, eof=eof, flags_at=offset + flags_at)


# ------------------------------------------------------------------------- opening
_SET_READ_ATTEMPTS: Any = None


def _read_attempts_setter() -> Any:
    """``H5Pset_metadata_read_attempts`` of the HDF5 library h5py uses, or None if not found."""
    global _SET_READ_ATTEMPTS
    if _SET_READ_ATTEMPTS is not None:
        return _SET_READ_ATTEMPTS or None
    found: Any = False
    candidates: list[str] = []
    try:  # the library h5py's extension modules loaded (same handle: dlopen by path)
        with open("/proc/self/maps") as fh:
            for line in fh:
                name = line.rsplit(None, 1)[-1] if "/" in line else ""
                base = os.path.basename(name)
                if base.startswith("libhdf5") and "_hl" not in base and name not in candidates:
                    candidates.append(name)
    except OSError:
        pass
    candidates += ["libhdf5.so", "libhdf5.dylib", "hdf5.dll"]
    for name in candidates:
        try:
            fn = ctypes.CDLL(name).H5Pset_metadata_read_attempts
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_int64, ctypes.c_uint]
        fn.restype = ctypes.c_int
        found = fn
        break
    _SET_READ_ATTEMPTS = found
    return found or None


def _fapl(swmr: bool) -> h5p.PropFAID:
    fapl = h5p.create(h5p.FILE_ACCESS)
    fapl.set_fclose_degree(h5f.CLOSE_STRONG)
    try:  # a read-only open needs no lock, and NFS/SMB shares often cannot grant one
        fapl.set_file_locking(False, True)
    except (AttributeError, RuntimeError):
        pass
    if swmr:
        setter = _read_attempts_setter()
        if setter is not None:
            setter(fapl.id, SWMR_READ_ATTEMPTS)
    return fapl


class _ClearedView(io.RawIOBase):
    """The bytes of a run file a dead writer left open, with a superblock as if it had closed.

    The "open for write" flags read as clear and the stored end of file as at least the file's
    size (a dead SWMR writer's is stale), checksum recomputed; nothing is written to disk. HDF5
    then opens the file as a plain reader: no SWMR retry loop, also after a non-SWMR writer
    (``append_fit``, the fit groups of ``finish``) was killed, which SWMR readers refuse.
    """

    def __init__(self, path: str, sb: Superblock) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_RDONLY)
        self._real_size = os.fstat(self._fd).st_size
        # a truncated file reads as zero-padded to its stored end (recovery salvages the rest)
        self._size = max(self._real_size, sb.base_address + sb.eof)
        self._head_at = sb.offset
        self._head = cleared_superblock(self._fd, sb, self._real_size)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = base + pos
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = max(0, min(len(view), self._size - self._pos))
        n = os.preadv(self._fd, [view[:want]], self._pos) if want else 0
        if n < want:
            view[n:want] = bytes(want - n)
            n = want
        lo, hi = self._head_at, self._head_at + len(self._head)
        if self._pos < hi and self._pos + n > lo:
            a, z = max(lo, self._pos), min(hi, self._pos + n)
            view[a - self._pos:z - self._pos] = self._head[a - lo:z - lo]
        self._pos += n
        return n

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        super().close()


def cleared_superblock(fd: int, sb: Superblock, size: int) -> bytes:
    """The v2/v3 superblock at ``sb`` with the write flags clear, EOF ≥ ``size``, new checksum."""
    head = bytearray(os.pread(fd, sb.size, sb.offset))
    o = sb.offset_size
    head[11] = 0
    eof = max(sb.eof, size - sb.base_address)
    head[12 + 2 * o:12 + 3 * o] = eof.to_bytes(o, "little")
    head[-4:] = lookup3(bytes(head[:-4])).to_bytes(4, "little")
    return bytes(head)


#: Files opened through a _ClearedView; closed at exit before h5py's own teardown, which would
#: otherwise call back into a half-finalised Python file object (a crash at exit).
_VIEWS: weakref.WeakSet[h5py.File] = weakref.WeakSet()


@atexit.register
def _close_views() -> None:
    for f in list(_VIEWS):
        try:
            f.close()
        except Exception:  # noqa: BLE001 - exiting anyway
            pass


#: A probe child that has not read a file's attributes and strings by then is killed.
PROBE_TIMEOUT_S = 2.0
#: (device, inode, size, mtime) of files a probe has read without trouble.
_PROBED: set[tuple[int, int, int, int]] = set()


def _probe_reads(f: h5py.File) -> None:
    """Read what HDF5 keeps in its unchecksummed global heap: attributes and strings."""
    todo: list[tuple[h5py.Group, int]] = [(f, 0)]
    while todo:
        group, depth = todo.pop()
        for obj in (group,):
            for key in obj.attrs:
                obj.attrs[key]
        if depth > 64:
            continue
        for name in group:
            if not isinstance(group.get(name, getlink=True), h5py.HardLink):
                continue
            obj = group[name]
            if isinstance(obj, h5py.Group):
                todo.append((obj, depth + 1))
                continue
            for key in obj.attrs:
                obj.attrs[key]
            if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "O" and obj.size < 10**7:
                obj[()]


_probe_processes: Any = None


def _probe_context() -> Any:
    """Probe children come from a forkserver: a small single-threaded process started once,
    so this process (the window's fit threads busy in OpenBLAS) never forks — a fork while
    another thread is inside BLAS can deadlock in OpenBLAS's own fork handler."""
    global _probe_processes
    if _probe_processes is None:
        import multiprocessing

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["daqapp.storage.h5safe"])
        _probe_processes = context
    return _probe_processes


def _start_probe(path: str, truncated: bool) -> Any:
    """The probe child, started from the forkserver; in a daemonic process (a dask worker),
    which may not start multiprocessing children, forked directly (no other thread of such a
    worker runs BLAS while its one task thread probes)."""
    import multiprocessing

    if multiprocessing.current_process().daemon:
        return _ForkedChild(path, truncated)
    child = _probe_context().Process(target=_probe_child, args=(path, truncated, _probe_reads),
                                     daemon=True)
    child.start()
    return child


class _ForkedChild:
    """The few ``multiprocessing.Process`` calls ``probe`` makes, on a plain ``os.fork``."""

    def __init__(self, path: str, truncated: bool) -> None:
        with h5py._objects.phil:  # noqa: SLF001 - never fork with h5py's lock held elsewhere
            self.pid = os.fork()
            if self.pid == 0:
                _probe_child(path, truncated, _probe_reads)
        self.exitcode: int | None = None

    def join(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.exitcode is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.exitcode = (-os.WTERMSIG(status) if os.WIFSIGNALED(status)
                                 else os.WEXITSTATUS(status))
            elif deadline is not None and time.monotonic() >= deadline:
                return
            else:
                time.sleep(0.002)

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)

    def close(self) -> None:
        pass


def _probe_child(path: str, truncated: bool, reads: Any) -> None:
    """In the probe child: open the file as the reader will, read, report by exit code."""
    code = 0
    try:
        with _open_readonly(path, read_superblock(path), False, truncated) as f:
            reads(f)
    except BaseException:  # noqa: BLE001 - the parent reads the file again and says why
        code = 3
    os._exit(code)


def probe(path: str, truncated: bool = False) -> None:
    """Read a file's attributes and strings in a child process first; refuse it if that hangs.

    A corrupt global heap collection (vlen strings) sends HDF5 2.0 into an endless loop
    inside ``H5HG__cache_heap_deserialize``, holding the GIL: no timeout, no Ctrl-C. The
    child meets it instead and is killed after ``PROBE_TIMEOUT_S``.
    """
    if not hasattr(os, "fork"):
        return
    st = os.stat(path)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _PROBED:
        return
    child = _start_probe(path, truncated)
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    try:
        while child.exitcode is None:
            if time.monotonic() > deadline:
                raise DataFileError(f"{path}: damaged HDF5 file (reading its attributes does "
                                    f"not end within {PROBE_TIMEOUT_S:g} s: a corrupt heap)")
            child.join(0.02)  # Ctrl-C lands here, in Python, at any time
    finally:
        if child.exitcode is None:  # timed out or interrupted: it must not outlive the check
            child.kill()
            child.join()
        status = child.exitcode
        child.close()
    if status == 0:
        _PROBED.add(key)
    elif status < 0:
        raise DataFileError(f"{path}: damaged HDF5 file (reading it crashes the HDF5 library, "
                            f"signal {-status})")
    # exit code 3: an ordinary error, which the reader meets again and names


def _open_readonly(p: str, sb: Any, live: bool, truncated: bool) -> h5py.File:
    """The file as a reader opens it: a dead writer's or a cut file through a view with the
    superblock flags cleared, a live writer's as a SWMR reader, a closed one as it is."""
    if (sb.open_for_write and not live) or truncated:
        view = _ClearedView(p, sb)
        try:
            f = h5py.File(view, "r")
        except BaseException:
            view.close()
            raise
        _VIEWS.add(f)
        return f
    flags = h5f.ACC_RDONLY | (h5f.ACC_SWMR_READ if sb.open_for_write else 0)
    return h5py.File(h5f.open(p.encode(), flags, fapl=_fapl(sb.open_for_write)))


def open_hdf5(path: str | os.PathLike[str], *, allow_truncated: bool = False) -> h5py.File:
    """Open an HDF5 file read-only: also one a live or a dead writer left open.

    Every daqapp reader goes through here. Raises DataFileError (one line naming the file) for
    a missing, special, truncated or damaged file; never blocks for long (see module doc).
    A live writer's file is opened as a SWMR reader (``refresh`` follows it), a dead writer's
    through a view with the superblock flags cleared, a closed file as it is.
    ``allow_truncated`` (recovery only) opens a cut file too, zero-padded past its end.
    """
    from daqapp.storage.liveness import writer_alive

    p = os.fspath(path)
    sb = read_superblock(p)
    size = os.stat(p).st_size
    live = sb.open_for_write and writer_alive(p) is not False
    truncated = sb.base_address + sb.eof > size and not live
    if truncated and not allow_truncated:
        # a dead SWMR writer's stored end of file lags behind its data, never ahead of it
        raise DataFileError(f"{p}: truncated HDF5 file (it holds {size} bytes, its superblock "
                            f"says {sb.base_address + sb.eof})")
    if not live:  # a live writer's file comes from a process on this machine
        probe(p, truncated)
    try:
        return _open_readonly(p, sb, live, truncated)
    except BROKEN_FILE_ERRORS as exc:
        raise DataFileError(f"{p}: not a readable HDF5 file ({_reason(exc)})") from None


def writer_left_open(path: str | os.PathLike[str]) -> bool:
    """True if the superblock says a writer still has the file open (alive or killed)."""
    try:
        return read_superblock(path).open_for_write
    except DataFileError:
        return False


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return escape(text.splitlines()[0] if text else text)


@contextmanager
def damaged(path: str, what: str = "") -> Iterator[None]:
    """Turn what HDF5, numpy or json raise on a broken file into one DataFileError line."""
    try:
        yield
    except DataFileError:
        raise
    except BROKEN_FILE_ERRORS as exc:
        where = f" ({what})" if what else ""
        raise DataFileError(f"{path}: damaged run file{where}: {type(exc).__name__}: "
                            f"{_reason(exc)}") from None


# ------------------------------------------------------------------------- links and sizes
def child(group: h5py.Group, name: str, path: str = "") -> Any:
    """``group[name]`` through hard links only; a soft link only to a hard object in the file.

    External links are refused: a file received from elsewhere must not make daqapp read
    (and export) some other file the user can read.
    """
    here = f"{group.name.rstrip('/')}/{name}"
    link = group.get(name, getlink=True)
    if link is None:
        raise KeyError(f"no object {here!r}")
    if isinstance(link, h5py.ExternalLink):
        raise DataFileError(f"{path or group.file.filename}: {here} is an external link to "
                            f"{escape(link.filename)}:{escape(link.path)}; refused (a run file "
                            "must hold its own data)")
    if isinstance(link, h5py.SoftLink):
        target = link.path
        if not target.startswith("/"):
            target = f"{group.name.rstrip('/')}/{target}"
        obj = resolve(group.file, target, path, follow_soft=False)
        return obj
    return group[name]


def resolve(f: h5py.File | h5py.Group, target: str, path: str = "", *,
            follow_soft: bool = True) -> Any:
    """The object at ``target`` (absolute or relative to ``f``), every step checked by child."""
    node: Any = f.file if target.startswith("/") else f
    for part in [s for s in target.split("/") if s and s != "."]:
        if not isinstance(node, h5py.Group):
            raise KeyError(f"{target!r}: {node.name} is not a group")
        if not follow_soft:
            link = node.get(part, getlink=True)
            if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
                kind = "external" if isinstance(link, h5py.ExternalLink) else "soft"
                raise DataFileError(f"{path or f.file.filename}: {target} goes through another "
                                    f"{kind} link; refused (soft links may point only at an "
                                    "object of the same file)")
        node = child(node, part, path)
    return node


def has(group: h5py.Group, name: str) -> bool:
    """``name in group`` without following any link."""
    return group.get(name, getlink=True) is not None


def check_dataset(ds: Any, path: str, what: str, *, ndim: int | None = None,
                  numeric: bool = True) -> h5py.Dataset:
    """``ds`` if it is a dataset of that rank and a size one read may allocate, else refuse."""
    if not isinstance(ds, h5py.Dataset):
        raise DataFileError(f"{path}: {what} is not a dataset")
    if ndim is not None and ds.ndim != ndim:
        shape = "scalar" if ds.ndim == 0 else f"{ds.ndim}-D"
        raise DataFileError(f"{path}: {what} is {shape}, expected {ndim}-D")
    if numeric and ds.dtype.kind not in "biuf":
        raise DataFileError(f"{path}: {what} holds {ds.dtype}, expected numbers")
    nbytes = int(np.prod(ds.shape, dtype=np.float64) * ds.dtype.itemsize) if ds.shape else 0
    limit = os.path.getsize(path) * 16 + MAX_READ_SLACK_BYTES
    if nbytes > limit:
        raise DataFileError(f"{path}: {what} claims {ds.shape} elements ({nbytes} bytes), far "
                            "more than the file can hold; damaged file refused")
    return ds


# ------------------------------------------------------------------------- text from files
_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]}
_CONTROL.pop(0x09)  # a tab is harmless
_CONTROL[0x0A] = "\\n"


def escape(text: str) -> str:
    """``text`` with control characters (ANSI escapes, newlines, bells) shown as ``\\xNN``.

    Attributes of a file from elsewhere must not drive the user's terminal.
    """
    return str(text).translate(_CONTROL)
