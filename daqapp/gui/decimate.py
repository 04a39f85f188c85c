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
    """Indices (sorted) of at most ``max_points`` samples that keep each chunk's min and max.

    NaN samples are skipped inside a chunk; a chunk of only NaNs keeps its first sample so
    gaps stay gaps when drawn with ``connect='finite'``.
    """
    n = len(y)
    if max_points < 2:
        raise ValueError(f"max_points = {max_points} must be at least 2")
    if n <= max_points:
        return np.arange(n)
    bins = max_points // 2
    chunk = -(-n // bins)  # ceil
    full = n // chunk
    y = np.asarray(y, dtype=float)
    finite = np.isfinite(y)
    y_for_min = np.where(finite, y, np.inf)
    y_for_max = np.where(finite, y, -np.inf)
    head = full * chunk
    offsets = np.arange(full) * chunk
    imin = y_for_min[:head].reshape(full, chunk).argmin(axis=1) + offsets
    imax = y_for_max[:head].reshape(full, chunk).argmax(axis=1) + offsets
    parts = [imin, imax]
    if head < n:
        parts.append(np.array([head + y_for_min[head:].argmin(), head + y_for_max[head:].argmax()]))
    return np.unique(np.concatenate(parts))


def decimate(x: np.ndarray, y: np.ndarray, max_points: int,
             x_range: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return at most about ``max_points`` samples of (x, y) for drawing.

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
            return x[sel], y[sel]
        keep = sel[minmax_indices(y[sel], max_points)]
        return x[keep], y[keep]
    if n <= max_points:
        return x, y
    keep = minmax_indices(y, max_points)
    return x[keep], y[keep]
