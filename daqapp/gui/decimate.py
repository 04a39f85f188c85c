"""Min/max decimation of a trace, so a plot of 10⁶ points draws a few thousand.

pyqtgraph's own auto-downsampling assumes x increases uniformly; our traces often do not
(a spectrum swept up and back, an R–T ramp that reverses, a temperature series where each
spectrum restarts the bias axis). Here we keep, for each run of consecutive samples, the
sample with the lowest and the one with the highest y — real samples in acquisition order —
so the drawn envelope is exact for any x ordering, and spikes are never lost.
"""

from __future__ import annotations

import numpy as np


def minmax_indices(y: np.ndarray, max_points: int) -> np.ndarray:
    """Indices (sorted) of at most about ``max_points`` samples that keep each bucket's min
    and max (one-shot form of :meth:`Envelope.indices`, for data that do not grow).

    NaN samples are skipped inside a bucket; a bucket of only NaNs keeps its first sample so
    gaps stay gaps when drawn with ``connect='finite'``.
    """
    if max_points < 2:
        raise ValueError(f"max_points = {max_points} must be at least 2")
    y = np.asarray(y, dtype=float)
    if len(y) <= max_points:
        return np.arange(len(y))
    envelope = Envelope()
    envelope.update(y)
    return envelope.indices(y, max_points)


def decimate_indices(x: np.ndarray, y: np.ndarray, max_points: int,
                     x_range: tuple[float, float] | None = None) -> np.ndarray:
    """Row indices of at most about ``max_points`` samples of (x, y) to draw.

    With ``x_range`` (the visible x interval when zoomed), only samples inside it — plus their
    immediate neighbours, so lines run to the edge of the view — are considered, which is what
    keeps detail when the operator zooms into a 10⁶-point trace.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    if x_range is not None and n > max_points:
        lo, hi = x_range
        core = (x >= lo) & (x <= hi)
        # keep the neighbours of in-view samples so segments that cross the edge are drawn
        inside = core.copy()
        inside[:-1] |= core[1:]
        inside[1:] |= core[:-1]
        sel = np.flatnonzero(inside)
        if len(sel) <= max_points:
            return sel
        return sel[minmax_indices(y[sel], max_points)]
    if n <= max_points:
        return np.arange(n)
    return minmax_indices(y, max_points)


def decimate(x: np.ndarray, y: np.ndarray, max_points: int,
             x_range: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return at most about ``max_points`` samples of (x, y) for drawing
    (see :func:`decimate_indices`)."""
    x = np.asarray(x)
    y = np.asarray(y)
    n = min(len(x), len(y))
    if n <= max_points:
        return x[:n], y[:n]
    keep = decimate_indices(x, y, max_points, x_range)
    return x[keep], y[keep]


#: finest level of an :class:`Envelope` holds blocks of 2**_BASE_LEVEL samples
_BASE_LEVEL = 4


def _min_key(y: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(y), y, np.inf)


def _max_key(y: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(y), y, -np.inf)


def bucket_size(n_rows: int, max_points: int) -> int:
    """Rows per drawn bucket for ``n_rows`` under ``max_points``: a power of two (so each
    bucket is one block of an :class:`Envelope` level), at least 2**_BASE_LEVEL."""
    bins = max(1, max_points // 2)
    need = -(-int(n_rows) // bins)
    return 1 << max(_BASE_LEVEL, (need - 1).bit_length())


class Ascending:
    """Whether a growing column never decreases (and has no NaN) so far, checked on new rows
    only: such an x axis (time) finds the rows in a zoomed view by bisection."""

    def __init__(self) -> None:
        self.n = 0
        self.ascending = True

    def update(self, x: np.ndarray) -> bool:
        n = len(x)
        if n < self.n:
            raise ValueError(f"Ascending.update: column shrank from {self.n} to {n} rows")
        if self.ascending and n > self.n:
            new = np.asarray(x[max(self.n - 1, 0):n], dtype=float)
            self.ascending = bool(np.isfinite(new).all() and (np.diff(new) >= 0).all())
        self.n = n
        return self.ascending


class _Growable:
    """An int array with amortised O(1) appends (the levels of an Envelope)."""

    def __init__(self, dtype: type = np.int64) -> None:
        self.data = np.empty(64, dtype=dtype)
        self.n = 0

    def extend(self, values: np.ndarray) -> None:
        need = self.n + len(values)
        if need > len(self.data):
            grown = np.empty(max(need, len(self.data) * 3 // 2), dtype=self.data.dtype)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n:need] = values
        self.n = need

    def view(self) -> np.ndarray:
        return self.data[: self.n]


class Envelope:
    """Min/max pyramid of a growing column, so a redraw costs O(pixels + new rows), not O(N).

    Level k holds, for every complete block of 2**(_BASE_LEVEL + k) rows, the index of its
    lowest and of its highest finite sample (the first one on ties; a block without finite
    samples keeps its first row). :meth:`update` extends the levels over rows appended since
    the last call — the rows of a :class:`~daqapp.storage.RunBuffer` never change once
    written — and :meth:`indices` reads a bucket per drawn pixel pair straight off one level.
    Indices are kept as int64: ≤ 2·8/16 + 2·8/32 + … = 2 bytes per row beside the column's 8.
    """

    def __init__(self) -> None:
        self.n = 0
        self._min: list[_Growable] = []
        self._max: list[_Growable] = []

    def update(self, y: np.ndarray) -> None:
        """Take in rows ``self.n:len(y)`` of ``y`` (whose first ``self.n`` rows are unchanged)."""
        n = len(y)
        if n < self.n:
            raise ValueError(f"Envelope.update: column shrank from {self.n} to {n} rows; "
                             "start a new Envelope for a cleared buffer")
        level, block = 0, 1 << _BASE_LEVEL
        while n >= block:
            if level == len(self._min):
                self._min.append(_Growable())
                self._max.append(_Growable())
            lo_min, lo_max = self._min[level], self._max[level]
            done, total = lo_min.n, n // block
            if total > done:
                if level == 0:
                    rows = np.asarray(y[done * block: total * block], dtype=float)
                    offsets = np.arange(done, total) * block
                    lo_min.extend(_min_key(rows).reshape(-1, block).argmin(axis=1) + offsets)
                    lo_max.extend(_max_key(rows).reshape(-1, block).argmax(axis=1) + offsets)
                else:
                    fine_min = self._min[level - 1].view()[2 * done: 2 * total]
                    fine_max = self._max[level - 1].view()[2 * done: 2 * total]
                    lo_min.extend(_merge(fine_min, _min_key(y[fine_min]), np.less_equal))
                    lo_max.extend(_merge(fine_max, _max_key(y[fine_max]), np.greater_equal))
            level += 1
            block <<= 1
        self.n = n

    @property
    def nbytes(self) -> int:
        """Memory the levels hold (allocated), to keep beside the column's own 8 bytes/row."""
        return sum(g.data.nbytes for g in self._min + self._max)

    def _span(self, y: np.ndarray, a: int, b: int) -> tuple[int, int]:
        """(argmin, argmax) of rows a:b (a < b ≤ self.n) from O(log) blocks and a few rows."""
        cands: list[tuple[int, int]] = []
        while a < b:
            level = -1
            for k in range(len(self._min) - 1, -1, -1):
                size = 1 << (_BASE_LEVEL + k)
                if a % size == 0 and a + size <= b:
                    level = k
                    break
            if level < 0:
                stop = min(b, (a // (1 << _BASE_LEVEL) + 1) << _BASE_LEVEL)
                rows = np.asarray(y[a:stop], dtype=float)
                cands.append((a + int(_min_key(rows).argmin()), a + int(_max_key(rows).argmax())))
                a = stop
            else:
                i = a >> (_BASE_LEVEL + level)
                cands.append((int(self._min[level].data[i]), int(self._max[level].data[i])))
                a += 1 << (_BASE_LEVEL + level)
        imin = [c[0] for c in cands]
        imax = [c[1] for c in cands]
        return (imin[int(_min_key(y[imin]).argmin())], imax[int(_max_key(y[imax]).argmax())])

    def indices(self, y: np.ndarray, max_points: int, start: int = 0,
                stop: int | None = None) -> np.ndarray:
        """Sorted row indices to draw rows ``start:stop`` of ``y`` in at most ~``max_points``.

        Buckets are the multiples of :func:`bucket_size` rows (clipped to the range); each
        keeps its min and max sample, so the drawn envelope is exact and no spike is lost.
        """
        if max_points < 2:
            raise ValueError(f"max_points = {max_points} must be at least 2")
        stop = self.n if stop is None else min(int(stop), self.n)
        start = max(0, int(start))
        if stop - start <= max_points:
            return np.arange(start, max(start, stop))
        size = bucket_size(stop - start, max_points)
        level = (size.bit_length() - 1) - _BASE_LEVEL
        first, last = -(-start // size), stop // size  # whole buckets first:last
        parts = []
        head_end = min(first * size, stop)
        if start < head_end:
            parts.append(np.array(self._span(y, start, head_end)))
        if last > first:
            parts.append(self._min[level].data[first:last])
            parts.append(self._max[level].data[first:last])
        tail_start = max(last * size, head_end)
        if tail_start < stop:
            parts.append(np.array(self._span(y, tail_start, stop)))
        return np.unique(np.concatenate(parts))


def _merge(idx: np.ndarray, key: np.ndarray, keep_left: np.ufunc) -> np.ndarray:
    """Pairwise reduce a level: the left index of each pair wins ties (first occurrence)."""
    left, right = idx[0::2], idx[1::2]
    return np.where(keep_left(key[0::2], key[1::2]), left, right)
