"""What a report holds once the runs are analysed: plain arrays and numbers with errors.

The figures and the summary are written from these objects only, so they never depend on how
the data were read (a campaign folder, a single run, a replay) or on the fit objects' classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Value:
    """A number with its standard error (NaN when unknown) and unit, and optionally an
    asymmetric systematic range (``value − minus`` to ``value + plus``) and what it is over.

    The systematic belongs in the headline: a ± 2 T beside an Hc2(0) that moves by +20/−9 T
    with an unmeasured parameter would understate what is known tenfold.
    """

    value: float
    error: float = math.nan
    unit: str = ""
    sys_minus: float = math.nan
    sys_plus: float = math.nan
    sys_source: str = ""

    @property
    def has_systematic(self) -> bool:
        return math.isfinite(self.sys_minus) and math.isfinite(self.sys_plus)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": _num(self.value), "error": _num(self.error),
                               "unit": self.unit}
        if self.has_systematic:
            out["systematic"] = {"minus": _num(self.sys_minus), "plus": _num(self.sys_plus),
                                 "source": self.sys_source}
        return out

    def text(self, digits: int = 3) -> str:
        if not math.isfinite(self.value):
            return "n/a"
        unit = f" {self.unit}" if self.unit else ""
        stat = ""
        value = _sig(self.value, digits)
        if math.isfinite(self.error) and self.error > 0:
            # the error to two significant figures and the value to the same decimal place
            # (67.200 ± 0.092 K, not 67.2 ± 0.092 K)
            stat = f" ± {_sig(self.error, 2)}"
            value = f"{self.value:.{_decimals(self.error, 2)}f}"
        if self.has_systematic:
            source = f" ({self.sys_source})" if self.sys_source else ""
            return (f"{value}{stat} (stat) +{_sig(self.sys_plus, 2)}"
                    f"/−{_sig(self.sys_minus, 2)}{source}{unit}")
        return f"{value}{stat}{unit}"


MISSING = Value(math.nan)


def _decimals(x: float, digits: int) -> int:
    """Decimal places that show ``x`` to ``digits`` significant figures."""
    return max(0, digits - 1 - math.floor(math.log10(abs(x))))


def _sig(x: float, digits: int) -> str:
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    return f"{x:.{_decimals(x, digits)}f}"


def _num(x: Any) -> float | None:
    """JSON cannot hold NaN portably: unknown numbers become null."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


@dataclass
class SpectrumResult:
    """One dI/dV spectrum: raw, normalised, and its two-gap fit (per temperature)."""

    temperature_K: float
    field_T: float
    bias_mV: np.ndarray
    conductance_raw: np.ndarray
    conductance_norm: np.ndarray
    fit_curve: np.ndarray | None
    parameters: dict[str, Value]
    chi2_red: float = math.nan
    model: str = "s+s"
    source: str = ""
    warnings: list[str] = field(default_factory=list)
    #: mean squared odd and even parts (in V about V0) of the residual in noise σ: 0.5 each
    #: for white noise; an odd excess is an asymmetry the BTK model cannot have
    residual_odd: float = math.nan
    residual_even: float = math.nan
    #: the fit on a fine bias grid (drawn across masked dips, not as chords between points)
    fit_bias_mV: np.ndarray | None = None
    fit_curve_fine: np.ndarray | None = None
    #: points left out of the fit (critical-current dips), normalised like the rest
    masked_bias_mV: np.ndarray | None = None
    masked_conductance_norm: np.ndarray | None = None


@dataclass
class RTCurve:
    """Resistance against temperature at one field."""

    field_T: float
    temperature_K: np.ndarray
    resistance_ohm: np.ndarray
    source: str = ""
    #: the measuring current (mA; NaN when the file does not say)
    current_mA: float = math.nan


@dataclass
class IVCurve:
    """One I–V curve and the critical current found on it (NaN: no zero-voltage branch)."""

    temperature_K: float
    current_mA: np.ndarray
    voltage_mV: np.ndarray
    ic_mA: Value = MISSING
    source: str = ""


@dataclass
class CurveFit:
    """A fitted model drawn as a curve, with its headline numbers."""

    label: str
    x: np.ndarray
    y: np.ndarray
    values: dict[str, Value] = field(default_factory=dict)
    chi2_red: float = math.nan


@dataclass
class ReportData:
    """Everything the figures and summary need; any part may be empty."""

    title: str = "daqapp report"
    sample: dict[str, Any] = field(default_factory=dict)
    spectra: list[SpectrumResult] = field(default_factory=list)
    gap_fits: dict[str, CurveFit] = field(default_factory=dict)  # "delta1", "delta2"
    #: per gap, the temperatures its Δ(T) fit used (points outside are drawn as left out)
    gap_fitted_K: dict[str, np.ndarray] = field(default_factory=dict)
    rt_curves: list[RTCurve] = field(default_factory=list)
    #: the 0 T normal-state line R_N(T) the Tc criteria use: (polynomial coefficients,
    #: fitted window in K)
    rt_normal_state: tuple[tuple[float, ...], tuple[float, float]] | None = None
    hc2_points: tuple[np.ndarray, np.ndarray] | None = None  # (T, B) of the transition
    hc2_errors_K: np.ndarray | None = None  # one-σ error of each point's T
    hc2_fits: dict[str, CurveFit] = field(default_factory=dict)  # "whh", "two_band"
    hc2_criterion: str = ""
    iv_curves: list[IVCurve] = field(default_factory=list)
    jc_fit: CurveFit | None = None
    calibration: SpectrumResult | None = None
    summary: dict[str, Value] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
