"""RunBuffer: the in-memory columns that plots and the fit worker read instead of the file.

pymeasure's stock Results re-reads its whole CSV on every plot tick (O(N) per tick). Here the
record stream fills numpy columns in place: appends are amortised O(1) (capacity grows by half
when full), and ``snapshot()`` returns views of the filled part without copying, so a 10 Hz
plot refresh costs nothing however long the run. A view stays valid after later appends: a
grown buffer gets new arrays, and the rows a view covers are never written again.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

_MIN_CAPACITY = 1024


class RunBuffer:
    """Thread-safe growable float64 columns filled from records (dicts column → value)."""

    def __init__(self, columns: Sequence[str] | Mapping[str, str], capacity: int = 4096) -> None:
        if isinstance(columns, Mapping):
            self.units: dict[str, str] = {str(k): str(v) for k, v in columns.items()}
        else:
            self.units = {str(k): "" for k in columns}
        if not self.units:
            raise ValueError("RunBuffer columns: at least one column is needed")
        self.names: tuple[str, ...] = tuple(self.units)
        self._lock = threading.Lock()
        self._capacity = max(_MIN_CAPACITY, int(capacity))
        self._data = {n: np.full(self._capacity, np.nan) for n in self.names}
        self._n = 0
        self.version = 0  # bumped on every change, so a GUI timer can skip idle redraws
        #: bumped by :meth:`clear`: rows of one generation are never rewritten, so a reader
        #: may keep what it derived from them (plot envelopes) until this changes
        self.generation = 0

    def __len__(self) -> int:
        return self._n

    def __call__(self, record: Mapping[str, Any]) -> None:
        """Listener form: ``writer.add_listener(buffer)``."""
        self.append(record)

    def _grow(self, needed: int) -> None:
        cap = self._capacity
        while cap < needed:
            cap += cap // 2
        for name in self.names:
            new = np.full(cap, np.nan)
            new[: self._n] = self._data[name][: self._n]
            self._data[name] = new
        self._capacity = cap

    def append(self, record: Mapping[str, Any]) -> None:
        """Add one record; keys not in the buffer are ignored, missing columns are NaN."""
        with self._lock:
            i = self._n
            if i >= self._capacity:
                self._grow(i + 1)
            data = self._data
            for name in self.names:
                value = record.get(name)
                if value is not None:
                    try:
                        data[name][i] = value
                    except (TypeError, ValueError):
                        data[name][i] = math.nan
            self._n = i + 1
            self.version += 1

    def extend(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Add many records at once (replay of a stored run)."""
        records = list(records)
        if not records:
            return
        with self._lock:
            i, n = self._n, len(records)
            if i + n > self._capacity:
                self._grow(i + n)
            for name in self.names:
                col = np.fromiter((as_float(r.get(name)) for r in records), dtype="f8", count=n)
                self._data[name][i:i + n] = col
            self._n = i + n
            self.version += 1

    def extend_columns(self, columns: Mapping[str, np.ndarray]) -> None:
        """Add whole columns (equal lengths), e.g. a run read from file."""
        lengths = {len(np.asarray(v)) for k, v in columns.items() if k in self.units}
        if len(lengths) > 1:
            raise ValueError(f"RunBuffer.extend_columns: columns differ in length {lengths}")
        n = lengths.pop() if lengths else 0
        if n == 0:
            return
        with self._lock:
            i = self._n
            if i + n > self._capacity:
                self._grow(i + n)
            for name in self.names:
                if name in columns:
                    self._data[name][i:i + n] = np.asarray(columns[name], dtype="f8")
            self._n = i + n
            self.version += 1

    def snapshot(self) -> dict[str, np.ndarray]:
        """Read-only views of every column's filled part; no copy."""
        with self._lock:
            n = self._n
            out = {}
            for name in self.names:
                view = self._data[name][:n]
                view.flags.writeable = False
                out[name] = view
            return out

    def column(self, name: str) -> np.ndarray:
        """Read-only view of one column."""
        if name not in self.units:
            raise KeyError(f"RunBuffer has no column {name!r} (columns: {', '.join(self.names)})")
        with self._lock:
            view = self._data[name][: self._n]
        view.flags.writeable = False
        return view

    def tail(self, n: int) -> dict[str, np.ndarray]:
        """The last ``n`` rows of every column (views)."""
        snap = self.snapshot()
        return {k: v[-n:] if n > 0 else v[:0] for k, v in snap.items()}

    def clear(self) -> None:
        with self._lock:
            self._data = {n: np.full(self._capacity, np.nan) for n in self.names}
            self._n = 0
            self.version += 1
            self.generation += 1

    @classmethod
    def from_run(cls, run: Any) -> RunBuffer:
        """A buffer holding a stored run (``RunReader``), for the same plots as a live run."""
        buf = cls(run.units, capacity=max(_MIN_CAPACITY, run.n_rows))
        buf.extend_columns(run.columns)
        return buf


def as_float(value: Any) -> float:
    """A record cell as a float: None and anything non-numeric become NaN (a missing reading)."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
