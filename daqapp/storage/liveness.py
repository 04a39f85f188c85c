"""Is a run file still being written? An open-file-description lock answers it at once.

HDF5 releases its own ``flock`` when SWMR writing starts, and a SWMR reader holds a shared
``flock`` of its own, so ``flock`` cannot tell a live writer from a reader. The writer therefore
holds an OFD (open file description) write lock on one byte far past any real data; the kernel
drops it when the writing process dies, even by SIGKILL. OFD locks do not interact with HDF5's
``flock`` and, unlike classic POSIX locks, also conflict inside one process. Where OFD locks do
not exist the reader falls back to the heartbeat the writer stores at every flush.
"""

from __future__ import annotations

import fcntl
import os
import struct

#: Byte offset of the liveness lock: far beyond any HDF5 data, never read or written.
LOCK_OFFSET = 1 << 60
_FLOCK = "hhqqi4x"  # struct flock on Linux x86_64/aarch64: type, whence, start, len, pid

HAVE_OFD = hasattr(fcntl, "F_OFD_SETLK") and hasattr(fcntl, "F_OFD_GETLK")


def _flock(lock_type: int) -> bytes:
    return struct.pack(_FLOCK, lock_type, os.SEEK_SET, LOCK_OFFSET, 1, 0)


class WriterLock:
    """Held by a RunWriter while it writes; released on close or process death."""

    def __init__(self, path: str) -> None:
        self._fd: int | None = None
        if not HAVE_OFD:
            return
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock(fcntl.F_WRLCK))
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the description drops the OFD lock
            self._fd = None


def writer_alive(path: str) -> bool | None:
    """True if some process holds the writer lock, False if none, None if it cannot be told."""
    if not HAVE_OFD:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        result = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _flock(fcntl.F_WRLCK))
        lock_type = struct.unpack(_FLOCK, result)[0]
        return lock_type != fcntl.F_UNLCK
    except OSError:
        return None
    finally:
        os.close(fd)
