"""One lock per instrument connection, so a monitor thread and a procedure never interleave.

pymeasure's ``Instrument.ask``/``values`` are a write followed by a read; if two threads use the
same connection, thread B's query can be written between A's write and A's read and A then reads
B's answer (pymeasure #506, QCoDeS #327). :class:`SerializedInstrument` is mixed in *before* the
pymeasure class, so every write, read, query and property access of that instrument holds the
connection's re-entrant lock for the whole transaction; role adapters take the same lock around
multi-message operations (``with adapter.lock: ...``).

The lock belongs to the pymeasure *adapter* (the connection), not the Python object: two driver
objects on one connection (the 2182A reached through the 6221's RS-232 pass-through) share it.
"""

from __future__ import annotations

import threading
from typing import Any

_LOCK_ATTRIBUTE = "_daqapp_connection_lock"
_CREATE_GUARD = threading.Lock()


def connection_lock(adapter: Any) -> threading.RLock:
    """Return the re-entrant lock of ``adapter`` (a pymeasure adapter), creating it once."""
    lock = getattr(adapter, _LOCK_ATTRIBUTE, None)
    if lock is None:
        with _CREATE_GUARD:
            lock = getattr(adapter, _LOCK_ATTRIBUTE, None)
            if lock is None:
                lock = threading.RLock()
                setattr(adapter, _LOCK_ATTRIBUTE, lock)
    return lock


class _LockedQueries:
    """The query methods both mixins lock: a query is a write and a read under one lock."""

    lock: threading.RLock

    def write(self, command: str, **kwargs: Any) -> None:
        with self.lock:
            super().write(command, **kwargs)

    def ask(self, command: str, *args: Any, **kwargs: Any) -> str:
        with self.lock:
            return super().ask(command, *args, **kwargs)

    def values(self, command: str, *args: Any, **kwargs: Any) -> list:
        with self.lock:
            return super().values(command, *args, **kwargs)

    def binary_values(self, command: str, *args: Any, **kwargs: Any):
        with self.lock:
            return super().binary_values(command, *args, **kwargs)


class SerializedInstrument(_LockedQueries):
    """Mixin for a pymeasure ``Instrument`` subclass: every I/O call holds the connection lock."""

    @property
    def lock(self) -> threading.RLock:
        return connection_lock(self.adapter)

    def read(self, **kwargs: Any) -> str:
        with self.lock:
            return super().read(**kwargs)

    def write_bytes(self, content: bytes, **kwargs: Any) -> None:
        with self.lock:
            super().write_bytes(content, **kwargs)

    def read_bytes(self, count: int, **kwargs: Any) -> bytes:
        with self.lock:
            return super().read_bytes(count, **kwargs)

    def read_binary_values(self, **kwargs: Any):
        with self.lock:
            return super().read_binary_values(**kwargs)


class SerializedChannel(_LockedQueries):
    """Mixin for a pymeasure ``Channel``: queries hold the parent connection's lock.

    A channel's ``ask``/``values`` call the parent's ``write`` and ``read`` separately, so
    locking those alone would still let another thread in between; the whole query is locked.
    """

    @property
    def lock(self) -> threading.RLock:
        return self.parent.lock
