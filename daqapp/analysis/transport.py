"""Resistive transitions: Tc (onset, midpoint, zero), dR/dT, sweep directions and Hc2 from R–T.

Why these choices: continuous temperature ramps give non-uniform, noisy, sometimes repeated
temperatures (up and down sweeps, thermometer lag).  Everything here therefore works on data
sorted by temperature with a local-linear smoother over a temperature *window* (not a fixed
number of points), computed in O(N) with cumulative sums so overnight ramps of 10⁵ points are
instantaneous.  Criteria are fractions of the extrapolated normal-state resistance R_N(T), the
convention of most transport papers, and every criterion is a parameter and is reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def _clean_rt(temperature_K: object, resistance: object) -> tuple[np.ndarray, np.ndarray]:
    T = np.asarray(temperature_K, dtype=float).ravel()
    R = np.asarray(resistance, dtype=float).ravel()
    if T.size != R.size:
        raise ValueError(f"temperature_K and resistance must have the same length "
                         f"(got {T.size} and {R.size})")
    if T.size < 5:
        raise ValueError(f"need at least 5 (temperature, resistance) points, got {T.size}")
    if not (np.all(np.isfinite(T)) and np.all(np.isfinite(R))):
        raise ValueError("temperature_K and resistance must be finite (no NaN or inf)")
    order = np.argsort(T, kind="stable")
    return T[order], R[order]


def _default_width(T: np.ndarray) -> float:
    steps = np.diff(np.unique(T))
    if steps.size == 0:
        raise ValueError("temperature_K must contain more than one distinct temperature")
    return 3.0 * float(np.median(steps))


def _local_linear(T: np.ndarray, R: np.ndarray, half_width: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Box-kernel local-linear regression at every (sorted) T: smoothed R and dR/dT.

    Cumulative sums of centred moments give each window's least-squares line in O(N); a
    window with fewer than 3 distinct points is widened to its 2 nearest neighbours each side.
    """
    n = T.size
    x = T - T.mean()
    c0 = np.concatenate([[0], np.cumsum(np.ones(n))])
    c1 = np.concatenate([[0], np.cumsum(x)])
    c2 = np.concatenate([[0], np.cumsum(x * x)])
    cy = np.concatenate([[0], np.cumsum(R)])
    cxy = np.concatenate([[0], np.cumsum(x * R)])
    lo = np.searchsorted(T, T - half_width, side="left")
    hi = np.searchsorted(T, T + half_width, side="right")
    idx = np.arange(n)
    lo = np.minimum(lo, np.maximum(idx - 2, 0))
    hi = np.maximum(hi, np.minimum(idx + 3, n))
    s0 = c0[hi] - c0[lo]
    s1 = c1[hi] - c1[lo]
    s2 = c2[hi] - c2[lo]
    sy = cy[hi] - cy[lo]
    sxy = cxy[hi] - cxy[lo]
    mean_x = s1 / s0
    var = s2 / s0 - mean_x ** 2
    cov = sxy / s0 - mean_x * sy / s0
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(var > 1e-12 * (1 + mean_x ** 2), cov / var, 0.0)
    smooth = sy / s0 + slope * (x - mean_x)
    return smooth, slope


def smooth_resistance(temperature_K: object, resistance: object, width_K: float | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(T sorted, R smoothed) with a local-linear window of full width ``width_K``.

    ``width_K = 0`` returns the sorted data unsmoothed; None uses 6 median temperature steps.
    """
    T, R = _clean_rt(temperature_K, resistance)
    if width_K is not None and width_K == 0:
        return T, R
    w = _default_width(T) * 2 if width_K is None else _check_width(width_K)
    return T, _local_linear(T, R, 0.5 * w)[0]


def _check_width(width_K: float) -> float:
    w = float(width_K)
    if not np.isfinite(w) or w < 0:
        raise ValueError(f"width_K = {width_K!r} must be finite and >= 0 (K)")
    return w


def dR_dT(temperature_K: object, resistance: object, width_K: float | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed derivative dR/dT: returns (T sorted, dR/dT) in resistance units per kelvin.

    Handles non-uniform spacing, repeated temperatures and mixed up/down sweeps (the data are
    pooled by temperature; use :func:`split_sweeps` first to compare directions).  ``width_K``
    is the full width of the local-linear window (default 6 median temperature steps): widen
    it for noisy data, narrow it for sharp transitions.
    """
    T, R = _clean_rt(temperature_K, resistance)
    w = _default_width(T) * 2 if width_K is None else _check_width(width_K)
    return T, _local_linear(T, R, 0.5 * max(w, 1e-300))[1]


def split_sweeps(temperature_K: object, tolerance_K: float | None = None) -> list[np.ndarray]:
    """Indices of the monotonic sweeps (in acquisition order) of a temperature record.

    A turning point is accepted once T has moved back by more than ``tolerance_K`` from the
    extreme (default 5 × the median |ΔT| between readings), so thermometer noise on a slow ramp
    does not split it.  Each returned array is one sweep, up or down.
    """
    T = np.asarray(temperature_K, dtype=float).ravel()
    if T.size < 2 or not np.all(np.isfinite(T)):
        raise ValueError("temperature_K must hold at least 2 finite readings")
    tol = 5.0 * float(np.median(np.abs(np.diff(T)))) if tolerance_K is None else float(tolerance_K)
    if not np.isfinite(tol) or tol < 0:
        raise ValueError(f"tolerance_K = {tolerance_K!r} must be finite and >= 0")
    turns = [0]
    direction = 0
    ext_i = 0
    for i in range(1, T.size):
        if direction == 0:
            if abs(T[i] - T[0]) > tol:
                direction = 1 if T[i] > T[0] else -1
                ext_i = i
            continue
        if (T[i] - T[ext_i]) * direction > 0:
            ext_i = i  # a new extreme in the current direction
        elif abs(T[i] - T[ext_i]) > tol:
            turns.append(ext_i)  # moved back by more than the tolerance: a turning point
            direction = -direction
            ext_i = i
    ends = turns[1:] + [T.size - 1]
    sweeps = []
    for k, (a, b) in enumerate(zip(turns, ends, strict=True)):
        seg = np.arange(a + (1 if k else 0), b + 1)
        if seg.size:
            sweeps.append(seg)
    return sweeps


@dataclass(frozen=True)
class TcResult:
    """Transition temperatures of one R–T curve and the criteria that define them."""

    onset_K: float
    midpoint_K: float
    zero_K: float | None
    width_10_90_K: float | None
    dRdT_peak_K: float
    normal_state_coeffs: tuple[float, ...]
    normal_window_K: tuple[float, float]
    criteria: dict[str, float] = field(default_factory=dict)
    #: one-σ uncertainty (K) of "onset", "midpoint", "zero": R_N's fit uncertainty and the
    #: noise of R carried into each crossing, with the spread over normal-state windows
    errors_K: dict[str, float] = field(default_factory=dict)

    def normal_resistance(self, temperature_K: object) -> np.ndarray:
        """Extrapolated normal-state resistance R_N(T) used by the criteria."""
        return np.polyval(self.normal_state_coeffs, np.asarray(temperature_K, dtype=float))

    def to_dict(self) -> dict[str, object]:
        return {"onset_K": self.onset_K, "midpoint_K": self.midpoint_K, "zero_K": self.zero_K,
                "width_10_90_K": self.width_10_90_K, "dRdT_peak_K": self.dRdT_peak_K,
                "normal_state_coeffs": list(self.normal_state_coeffs),
                "normal_window_K": list(self.normal_window_K), "criteria": dict(self.criteria),
                "errors_K": dict(self.errors_K)}


def _highest_crossing(T: np.ndarray, y: np.ndarray, level: np.ndarray | float) -> float | None:
    """Highest T where y falls below ``level`` coming down from high T (linear interpolation)."""
    below = y < level
    if not below.any():
        return None
    if below[-1]:
        return float(T[-1])
    i = int(np.nonzero(below)[0][-1])  # last point below; i + 1 is above
    lv = np.broadcast_to(level, y.shape)
    d0, d1 = y[i] - lv[i], y[i + 1] - lv[i + 1]
    if d1 == d0:
        return float(T[i])
    return float(T[i] + (T[i + 1] - T[i]) * (-d0) / (d1 - d0))


#: The normal-state window starts this far above the onset (×T_onset): below ~1.1 Tc
#: superconducting fluctuations (paraconductivity) already lower R below the normal line.
FLUCTUATION_FACTOR = 1.1
#: ... and holds at least this many readings, else it is widened down towards the onset.
MIN_NORMAL_POINTS = 10


def _default_normal_window(T: np.ndarray, Rs: np.ndarray, fraction: float = 0.9
                           ) -> tuple[float, float]:
    """From 1.1 × the onset to the top of the data: above the fluctuation region, and as
    wide as the data allow (a line through the last 0.4 K of a ramp extrapolates R_N by
    its noise: measured 69.3 K instead of 65.6 K on the virtual lab's 0 T curve)."""
    top = Rs[T >= T[-1] - 0.1 * (T[-1] - T[0])]
    r_top = float(np.median(top))
    if r_top <= 0:
        raise ValueError("resistance at the highest temperatures must be > 0 to define R_N")
    t50 = _highest_crossing(T, Rs, 0.5 * r_top)
    if t50 is None:
        raise ValueError("no resistive transition found: R never drops below half of its "
                         "high-temperature value")
    # a first R_N from the upper half of the data above the 50 % point gives the onset
    lo = max(t50 + 0.5 * (T[-1] - t50), float(T[max(0, T.size - 5)]))
    window = (float(lo), float(T[-1]))
    for _ in range(3):
        sel = (T >= window[0]) & (T <= window[1])
        if np.count_nonzero(sel) < 3:
            break
        rn = np.polyval(np.polyfit(T[sel], Rs[sel], 1), T)
        onset = _highest_crossing(T, Rs, fraction * np.maximum(rn, 1e-300))
        if onset is None:
            break
        lo = FLUCTUATION_FACTOR * onset
        if np.count_nonzero(T >= lo) < MIN_NORMAL_POINTS:
            # short of data above 1.1 Tc: the readings between the onset and the top
            lo = float(T[-MIN_NORMAL_POINTS]) if T.size > MIN_NORMAL_POINTS else float(T[0])
            lo = max(lo, onset + 0.5 * (T[-1] - onset))
        if abs(lo - window[0]) < 1e-9:
            break
        window = (float(lo), float(T[-1]))
    if np.count_nonzero(T >= window[0]) < 5:  # too little data above the transition
        window = (float(T[-5]), float(T[-1]))
    return window


def _crossings(T: np.ndarray, Rs: np.ndarray, slope: np.ndarray, R: np.ndarray,
               width_K: float, window: tuple[float, float], normal_degree: int,
               levels: dict[str, float | np.ndarray]) -> tuple[dict[str, float | None],
                                                              dict[str, float], np.ndarray]:
    """Highest T where the smoothed R falls below each level (× R_N, or absolute when an
    array) and its statistical one-σ error; also the R_N coefficients."""
    sel = (T >= window[0]) & (T <= window[1])
    n = int(np.count_nonzero(sel))
    if n < normal_degree + 2:
        raise ValueError(f"normal_window_K {window} holds {n} points; "
                         f"need at least {normal_degree + 2}")
    try:
        coeffs, cov = np.polyfit(T[sel], R[sel], normal_degree, cov=True)
    except (ValueError, np.linalg.LinAlgError):
        coeffs, cov = np.polyfit(T[sel], R[sel], normal_degree), None
    rn = np.polyval(coeffs, T)
    if np.any(rn <= 0):
        rn = np.maximum(rn, 1e-12 * float(np.max(np.abs(R))))
    resid = R[sel] - np.polyval(coeffs, T[sel])
    noise = float(np.sqrt(np.sum(resid ** 2) / max(n - normal_degree - 1, 1)))
    found: dict[str, float | None] = {}
    errors: dict[str, float] = {}
    drn = np.polyval(np.polyder(coeffs), T) if normal_degree else np.zeros_like(T)
    for key, level in levels.items():
        absolute = np.ndim(level) > 0
        target = level if absolute else float(level) * rn
        t_x = _highest_crossing(T, Rs, target)
        found[key] = t_x
        if t_x is None:
            continue
        c = 0.0 if absolute else float(level)
        k = int(np.clip(np.searchsorted(T, t_x), 0, T.size - 1))
        if cov is not None and np.all(np.isfinite(cov)):
            jac = t_x ** np.arange(normal_degree, -1, -1)
            var_rn = float(jac @ cov @ jac)
        else:
            var_rn = noise ** 2 / max(n, 1)
        # the smoothed R at the crossing averages the readings within its window
        n_avg = max(1.0, float(np.count_nonzero(np.abs(T - t_x) <= 0.5 * width_K)))
        rise = abs(float(slope[k]) - c * float(drn[k]))
        if rise <= 0:
            errors[key] = float("nan")
            continue
        errors[key] = float(np.sqrt(c * c * var_rn + noise ** 2 / n_avg) / rise)
    return found, errors, coeffs


def critical_temperatures(temperature_K: object, resistance: object,
                          onset_fraction: float = 0.9, midpoint_fraction: float = 0.5,
                          zero_fraction: float = 0.01, zero_threshold: float | None = None,
                          normal_window_K: tuple[float, float] | None = None,
                          normal_degree: int = 1, width_K: float | None = None) -> TcResult:
    """Onset, midpoint and zero-resistance temperatures of a resistive transition.

    Criteria (all on the smoothed curve, each the highest temperature where R falls below):
      onset: ``onset_fraction`` × R_N(T); midpoint: ``midpoint_fraction`` × R_N(T);
      zero: ``zero_threshold`` (same units as R) if given, else ``zero_fraction`` × R_N(T).
    R_N(T) is a polynomial of degree ``normal_degree`` fitted in ``normal_window_K``; by default
    from 1.1 × the onset (above the fluctuation region) to the top of the data (a linear
    strange-metal R_N is extrapolated, as in the seed paper).  ``zero_K`` is None if R never
    reaches the threshold.  ``errors_K``: each crossing's one-σ uncertainty, R_N's fit
    covariance and the noise of R carried through the slope at the crossing, combined with
    the shift when the window starts 5 % lower or higher.
    """
    for name, f in (("onset_fraction", onset_fraction), ("midpoint_fraction", midpoint_fraction),
                    ("zero_fraction", zero_fraction)):
        if not (0 < float(f) < 1):
            raise ValueError(f"{name} = {f!r} is outside the allowed range 0 to 1 (exclusive)")
    if not (zero_fraction < midpoint_fraction < onset_fraction):
        raise ValueError("fractions must satisfy zero_fraction < midpoint_fraction < "
                         "onset_fraction")
    if normal_degree not in (0, 1, 2, 3):
        raise ValueError(f"normal_degree = {normal_degree!r} is not allowed (0 to 3)")
    T, R = _clean_rt(temperature_K, resistance)
    w = _default_width(T) * 2 if width_K is None else _check_width(width_K)
    Rs, slope = _local_linear(T, R, 0.5 * w) if w > 0 else (R, _local_linear(
        T, R, _default_width(T))[1])
    if normal_window_K is None:
        window = _default_normal_window(T, Rs)
    else:
        window = (float(normal_window_K[0]), float(normal_window_K[1]))
        if not window[0] < window[1]:
            raise ValueError("normal_window_K must be (low, high) with low < high")
    zero_level = (np.full(T.shape, float(zero_threshold)) if zero_threshold is not None
                  else zero_fraction)
    levels = {"onset": onset_fraction, "midpoint": midpoint_fraction, "zero": zero_level}
    found, errors, coeffs = _crossings(T, Rs, slope, R, w, window, normal_degree, levels)
    rn = np.maximum(np.polyval(coeffs, T), 1e-12 * float(np.max(np.abs(R))))
    onset, mid, zero = found["onset"], found["midpoint"], found["zero"]
    if onset is None or mid is None:
        raise ValueError("no resistive transition found below the normal-state window "
                         f"{window} (R never falls below {midpoint_fraction:g} R_N)")
    # the window is a choice: the crossings' spread over windows starting 5 % lower and
    # higher (as far as the data above the onset allow) is part of their uncertainty
    spread = {key: 0.0 for key in found}
    for factor in (1.0 / 1.05, 1.05):
        lo = window[0] * factor
        if not (onset < lo < window[1]) or np.count_nonzero(T >= lo) < normal_degree + 3:
            continue
        try:
            other, _, _ = _crossings(T, Rs, slope, R, w, (lo, window[1]),
                                        normal_degree, levels)
        except ValueError:
            continue
        for key, value in other.items():
            if value is not None and found[key] is not None:
                spread[key] = max(spread[key], abs(value - found[key]))
    errors_K = {key: float(np.hypot(errors.get(key, np.nan), spread[key]))
                for key in found if found[key] is not None}
    t90 = _highest_crossing(T, Rs, 0.9 * rn)
    t10 = _highest_crossing(T, Rs, 0.1 * rn)
    width = (t90 - t10) if (t90 is not None and t10 is not None) else None
    below_window = T < window[0]
    peak_T = float(T[below_window][np.argmax(slope[below_window])]) if below_window.any() \
        else float(T[np.argmax(slope)])
    criteria = {"onset_fraction": float(onset_fraction),
                "midpoint_fraction": float(midpoint_fraction),
                "zero_fraction": float(zero_fraction), "width_K": float(w)}
    if zero_threshold is not None:
        criteria["zero_threshold"] = float(zero_threshold)
    return TcResult(onset_K=onset, midpoint_K=mid, zero_K=zero, width_10_90_K=width,
                    dRdT_peak_K=peak_T, normal_state_coeffs=tuple(float(c) for c in coeffs),
                    normal_window_K=window, criteria=criteria, errors_K=errors_K)


def critical_temperatures_by_direction(temperature_K: object, resistance: object,
                                       **criteria: object) -> dict[str, TcResult]:
    """Tc criteria separately for warming ("up") and cooling ("down") sweeps.

    The difference between the two is thermal lag of the thermometer or hysteresis; report
    it.  Sweeps of one direction are pooled.  Keyword arguments go to critical_temperatures.
    """
    T = np.asarray(temperature_K, dtype=float).ravel()
    R = np.asarray(resistance, dtype=float).ravel()
    if T.size != R.size:
        raise ValueError("temperature_K and resistance must have the same length")
    groups: dict[str, list[np.ndarray]] = {"up": [], "down": []}
    for seg in split_sweeps(T):
        if seg.size < 2:
            continue
        groups["up" if T[seg[-1]] > T[seg[0]] else "down"].append(seg)
    out = {}
    for key, segs in groups.items():
        if segs:
            idx = np.concatenate(segs)
            out[key] = critical_temperatures(T[idx], R[idx], **criteria)
    return out


@dataclass(frozen=True)
class Hc2Points:
    """Hc2(T) points extracted from R–T curves at fixed fields."""

    temperature_K: np.ndarray
    field_T: np.ndarray
    criterion: float
    skipped_fields_T: tuple[float, ...] = ()
    #: one-σ uncertainty of each temperature (K), as :attr:`TcResult.errors_K`
    temperature_err_K: np.ndarray | None = None

    def __iter__(self):  # ``T, H = hc2_from_rt(...)`` unpacks the two arrays
        return iter((self.temperature_K, self.field_T))

    def to_dict(self) -> dict[str, object]:
        errors = None if self.temperature_err_K is None else self.temperature_err_K.tolist()
        return {"temperature_K": self.temperature_K.tolist(), "field_T": self.field_T.tolist(),
                "criterion": self.criterion, "skipped_fields_T": list(self.skipped_fields_T),
                "temperature_err_K": errors}


def hc2_from_rt(curves: Sequence[tuple[float, object, object]], criterion: float = 0.5,
                **options: object) -> Hc2Points:
    """(T, μ0Hc2) points: for each (field_T, T, R) curve, where R = ``criterion`` × R_N(T).

    Typical criteria: 0.9 (onset, upper bound of Hc2), 0.5 (midpoint), 0.1 or 0.01 (close
    to the irreversibility field).  ``options`` go to :func:`critical_temperatures`
    (normal_window_K, width_K, ...).  Curves without a crossing are listed in
    ``skipped_fields_T`` instead of failing the whole set.
    """
    c = float(criterion)
    if not 0 < c < 1:
        raise ValueError(f"criterion = {criterion!r} is outside the allowed range 0 to 1")
    Ts, Bs, errs, skipped = [], [], [], []
    onset = max(0.9, 0.5 * (1 + c))
    for fld, T, R in curves:
        B = float(fld)
        if not np.isfinite(B) or B < 0:
            raise ValueError(f"field_T = {fld!r} must be finite and >= 0")
        try:
            res = critical_temperatures(T, R, onset_fraction=onset, midpoint_fraction=c,
                                        zero_fraction=min(0.01, 0.5 * c), **options)
        except ValueError as exc:
            if "no resistive transition" not in str(exc):
                raise
            skipped.append(B)
            continue
        Ts.append(res.midpoint_K)
        Bs.append(B)
        errs.append(res.errors_K.get("midpoint", np.nan))
    order = np.argsort(Bs)
    return Hc2Points(np.asarray(Ts)[order], np.asarray(Bs)[order], c, tuple(skipped),
                     np.asarray(errs, dtype=float)[order])
