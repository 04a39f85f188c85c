"""On-line fits of each spectrum as it completes, off the GUI and acquisition threads.

The worker listens to a run's event stream (``Run.subscribe``): records are collected per
sweep in memory (never re-read from the file); at ``sweep_end`` the finished spectrum is queued
and the listener returns at once, so acquisition never waits for a fit. A single worker thread
normalises the spectrum, fits each chosen model — warm-started from that model's previous
result — ranks the models by AIC/BIC, stores every result in the run file (the live writer's
``add_fit`` while the run is open, ``append_fit`` once it is closed), and for a temperature
series keeps Δ(T) and its BCS fit (→ Tc) up to date. Listeners get a :class:`FitUpdate`; they
are called from the worker thread (the GUI re-emits it as a queued Qt signal).

Qt-free: unattended campaigns use the same worker.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

#: The spectral models the analysis engine fits (gap symmetries, larger gap first).
MODELS = ("s", "d", "s+s", "s+d", "d+s", "d+d")

#: Column names the worker reads from the record stream (first present wins).
BIAS_COLUMNS = ("dc_voltage", "junction_voltage", "bias_voltage", "voltage_dc", "v_dc", "bias")
CONDUCTANCE_COLUMNS = ("didv", "dIdV", "conductance")
TEMPERATURE_COLUMNS = ("temperature", "temperature_K", "T")
FIELD_COLUMNS = ("field", "field_T", "B")
SWEEP_COLUMN = "sweep"

#: Fewest points a spectrum needs before it is worth a fit.
MIN_POINTS = 20


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Spectrum:
    """One completed sweep: bias in mV and conductance in the run's units (S, or normalised)."""

    sweep: int
    bias_mV: np.ndarray
    conductance: np.ndarray
    temperature_K: float
    field_T: float = 0.0
    time: float = 0.0
    source: str = ""


@dataclass(frozen=True)
class ParameterRow:
    model: str
    name: str
    value: float
    error: float
    unit: str
    fixed: bool = False
    temperature_K: float = math.nan
    sweep: int = -1


@dataclass(frozen=True)
class ComparisonRow:
    model: str
    chi2_red: float
    aic: float
    delta_aic: float
    bic: float
    delta_bic: float
    n_free: int
    n_points: int


@dataclass
class GapSeries:
    """Δ(T) from the primary model, one entry per fitted spectrum, sorted by temperature."""

    temperature_K: np.ndarray = field(default_factory=lambda: np.empty(0))
    delta1: np.ndarray = field(default_factory=lambda: np.empty(0))
    delta1_err: np.ndarray = field(default_factory=lambda: np.empty(0))
    delta2: np.ndarray | None = None
    delta2_err: np.ndarray | None = None
    sweeps: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=int))


@dataclass
class FitUpdate:
    """What a listener learns after a spectrum was fitted."""

    sweep: int
    temperature_K: float
    field_T: float
    results: dict[str, Any]
    best_model: str
    parameters: list[ParameterRow]
    comparison: list[ComparisonRow]
    fit_bias_mV: np.ndarray | None
    fit_didv: np.ndarray | None
    gap_series: GapSeries | None
    gap_fits: tuple[Any, ...]
    status: str
    errors: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0


def _first(names: Iterable[str], candidates: Sequence[str]) -> str | None:
    names = set(names)
    for c in candidates:
        if c in names:
            return c
    return None


def _mV_factor(units: Mapping[str, str], column: str) -> float:
    unit = (units.get(column) or "V").strip().lower()
    return {"v": 1e3, "mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3}.get(unit, 1e3)


class SweepCollector:
    """Collects the records of the sweep in progress; yields a :class:`Spectrum` at its end."""

    def __init__(self, units: Mapping[str, str] | None = None, source: str = "") -> None:
        self.units = dict(units or {})
        self.source = source
        self._rows: list[Mapping[str, Any]] = []
        self._sweep: int | None = None
        self.bias_column: str | None = None
        self.conductance_column: str | None = None

    def add(self, record: Mapping[str, Any]) -> Spectrum | None:
        """Add a record; if it starts a new sweep number, the previous one is returned."""
        done = None
        sweep = record.get(SWEEP_COLUMN)
        if sweep is not None and sweep == sweep:
            sweep = int(sweep)
            if self._sweep is not None and sweep != self._sweep and self._rows:
                done = self.finish()
            self._sweep = sweep
        self._rows.append(record)
        return done

    def finish(self, info: Mapping[str, Any] | None = None) -> Spectrum | None:
        """Close the current sweep (``sweep_end``) and return it, if it has usable points."""
        rows, self._rows = self._rows, []
        index = self._sweep if self._sweep is not None else int((info or {}).get("sweep", 0))
        if not rows:
            return None
        keys = set().union(*(r.keys() for r in rows[:50]))
        bias = self.bias_column or _first(keys, BIAS_COLUMNS)
        cond = self.conductance_column or _first(keys, CONDUCTANCE_COLUMNS)
        if bias is None or cond is None:
            return None
        v = np.array([_num(r.get(bias)) for r in rows]) * _mV_factor(self.units, bias)
        g = np.array([_num(r.get(cond)) for r in rows])
        tcol = _first(keys, TEMPERATURE_COLUMNS)
        bcol = _first(keys, FIELD_COLUMNS)
        temps = np.array([_num(r.get(tcol)) for r in rows]) if tcol else np.array([math.nan])
        fields = np.array([_num(r.get(bcol)) for r in rows]) if bcol else np.array([0.0])
        info = dict(info or {})
        temperature = _num(info.get("temperature", _nanmean(temps)))
        field_T = _num(info.get("field", _nanmean(fields)))
        good = np.isfinite(v) & np.isfinite(g)
        if good.sum() < MIN_POINTS:
            return None
        return Spectrum(sweep=int(index), bias_mV=v[good], conductance=g[good],
                        temperature_K=temperature, field_T=field_T if field_T == field_T else 0.0,
                        time=time.time(), source=self.source)


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _nanmean(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else math.nan


# ----------------------------------------------------------------------------- storing
class RunFitStore:
    """Stores fits in a run file: through the live run while it is open, afterwards by
    appending to the closed file (a spectrum's fit often ends after its run does).

    ``adder(name, fit) -> bool`` is the open run's ``Run.add_fit`` (False once closed);
    ``writer_getter`` an open ``RunWriter`` (or None); ``path_getter`` the file.
    """

    def __init__(self, writer_getter: Callable[[], Any] | None = None,
                 path_getter: Callable[[], str | Path | None] | None = None,
                 adder: Callable[[str, Mapping[str, Any]], bool] | None = None) -> None:
        self.writer_getter = writer_getter
        self.path_getter = path_getter
        self.adder = adder
        self.stored: list[str] = []

    def __call__(self, name: str, fit: Mapping[str, Any]) -> None:
        if self.adder is not None and self.adder(name, dict(fit)):
            self.stored.append(name)
            return
        writer = self.writer_getter() if self.writer_getter else None
        if writer is not None:
            try:
                writer.add_fit(name, fit)
                self.stored.append(name)
                return
            except RuntimeError:
                pass  # the run closed meanwhile: append to the file instead
        path = self.path_getter() if self.path_getter else None
        if path is None:
            return
        from daqapp.storage import append_fit

        last: Exception | None = None
        for _attempt in range(50):  # the writer may still be closing the file
            try:
                append_fit(path, name, fit)
                self.stored.append(name)
                return
            except Exception as exc:  # noqa: BLE001 - retried, then reported
                last = exc
                time.sleep(0.1)
        log.error("fit %s could not be stored in %s: %s", name, path, last)

    @classmethod
    def for_run(cls, run: Any) -> RunFitStore:
        """The store of a :class:`daqapp.runner.Run`: ``Run.add_fit`` while the file is open
        (listeners hear a ``fit`` event too), then ``append_fit`` on its file."""
        def path() -> Any:
            result = getattr(run, "result", None)
            return getattr(result, "path", None) or getattr(run, "path", None)

        adder = getattr(run, "add_fit", None)
        return cls(None, path, adder if callable(adder) else None)


# ----------------------------------------------------------------------------- fitting
class SpectrumFitter(Protocol):
    """What the worker needs from the analysis engine, for one spectrum and one model."""

    def prepare(self, spectrum: Spectrum) -> Any:
        """Normalise the measured spectrum (the result is passed to ``fit`` and ``curve``)."""

    def fit(self, prepared: Any, model: str, warm_start: Any | None) -> Any:
        """Fit ``model``, starting from ``warm_start`` (that model's previous result) if given."""

    def stats(self, result: Any) -> dict[str, float]:
        """``chi2_red``, ``aic``, ``bic``, ``n_free``, ``n_points``."""

    def rows(self, result: Any, model: str, spectrum: Spectrum) -> list[ParameterRow]:
        """The parameters with errors and units, for the table."""

    def gaps(self, result: Any) -> tuple[float, float, float, float] | None:
        """(Δ1, σΔ1, Δ2, σΔ2) in meV (Δ2 NaN for a one-gap model)."""

    def curve(self, result: Any, prepared: Any, bias_mV: np.ndarray) -> np.ndarray:
        """The fitted conductance at ``bias_mV`` in the measured units (for the overlay)."""

    def to_dict(self, result: Any, prepared: Any, spectrum: Spectrum) -> dict[str, Any]:
        """JSON-serialisable result for the run file."""


#: outer fraction of the bias range taken as normal state for the background polynomial
BACKGROUND_FRACTION = 0.25
BACKGROUND_DEGREE = 2
#: relative change of the background below which its refinement stops (≈ 0.1 σ at 0.3 % noise)
BACKGROUND_TOLERANCE = 2e-4

_PRETTY = {"delta": "Δ", "gamma": "Γ", "z": "Z", "alpha": "α", "weight": "w",
           "anisotropy": "a"}
_UNITS = {"delta": "meV", "gamma": "meV", "alpha": "rad", "v0": "mV", "slope": "1/mV",
          "temperature": "K"}


@dataclass(frozen=True)
class PreparedSpectrum:
    """A spectrum normalised for fitting, with the background that undoes it."""

    bias_mV: np.ndarray
    normalised: np.ndarray
    background: np.ndarray  # polynomial coefficients (np.polyval), measured units
    temperature_K: float
    sigma: float
    keep: np.ndarray  # False at points left out of the fit (critical-current dips)

    def excluded_mV(self) -> list[float]:
        return sorted(float(v) for v in self.bias_mV[~self.keep])


#: smoothing window (points) and order of the Savitzky–Golay curve dips are measured against
DIP_WINDOW, DIP_ORDER = 11, 3
#: a dip: below the smooth curve by more than this many robust σ and this fraction of it
DIP_SIGMAS, DIP_FRACTION = 8.0, 0.01
#: never exclude more than this share of a spectrum (beyond it, it is not dips but the shape)
DIP_MAX_SHARE = 0.25
#: neighbours on each side excluded with a dip point (its shoulders are not BTK either)
DIP_NEIGHBOURS = 2


def dip_mask(bias_mV: np.ndarray, conductance: np.ndarray) -> np.ndarray:
    """True at points of narrow conductance dips (and their neighbours).

    Sharp dips above the gap appear where the current through the contact reaches its
    critical current (physics.md §4.7, Sheet et al. 2004); they follow Jc(T, B), not Δ, and a
    BTK fit that tries to follow them distorts every parameter. They are found against a
    Savitzky–Golay smooth of the spectrum (which follows BTK structure, Γ-broadened over many
    points): deeper than ``DIP_SIGMAS`` robust σ and ``DIP_FRACTION`` of the level.
    """
    from scipy.signal import savgol_filter

    n = len(bias_mV)
    dips = np.zeros(n, dtype=bool)
    if n < 3 * DIP_WINDOW:
        return dips
    order = np.argsort(bias_mV, kind="stable")
    g = np.asarray(conductance, dtype=float)[order]
    smooth = savgol_filter(g, DIP_WINDOW, DIP_ORDER)
    d = g - smooth
    mad = 1.4826 * float(np.median(np.abs(d - np.median(d))))
    sorted_dips = (d < -DIP_SIGMAS * mad) & (d < -DIP_FRACTION * np.abs(smooth))
    widened = sorted_dips.copy()
    for shift in range(1, DIP_NEIGHBOURS + 1):
        widened[shift:] |= sorted_dips[:-shift]
        widened[:-shift] |= sorted_dips[shift:]
    if widened.sum() > DIP_MAX_SHARE * n:
        return dips
    dips[order] = widened
    return dips


class AnalysisFitter:
    """The analysis engine's BTK fits (:mod:`daqapp.analysis.fit`) for the worker.

    Normalisation: the normal-state conductance is a degree-2 polynomial. A first guess goes
    through the outer quarter of the bias range on each side; but there the Andreev tail of a
    large gap is still 5–10 % (physics.md §4.4), so the background is then refined against the
    fit itself — the polynomial through measured/model in the same outer range, then a
    warm-started refit — which removes the tail's bias without letting the background swallow
    broad structure near zero bias. Every model of a spectrum is fitted to the same
    normalised data with the same noise σ, so their AIC/BIC are comparable.

    Γ is bounded below by max(0.05 meV, k_BT/4): a smaller Γ cannot be told apart under
    thermal smearing, and it would make the model's energy grid needlessly fine.
    """

    MAX_BACKGROUND_STEPS = 15
    #: largest relative move of the background (at the window edges and centre) away from its
    #: first estimate that is accepted; beyond it the model is eating real structure
    MAX_BACKGROUND_SHIFT = 0.12
    #: a gap must lie inside the measured window to be fitted
    MAX_GAP_FRACTION_OF_WINDOW = 0.9

    def __init__(self, dimension: int = 2, free_scale: bool = False,
                 series_shared: Sequence[str] = ("weight",)) -> None:
        self.dimension = dimension
        self.free_scale = free_scale
        #: parameter families held at the series' first fit (per model): the channel weights
        #: are a property of the contact, and fixing them breaks the w–Z–Γ degeneracy that
        #: otherwise grows with thermal smearing (physics.md §3, "fit a series globally")
        self.series_shared = tuple(series_shared)
        self.anchors: dict[str, dict[str, float]] = {}
        #: last settled background (coefficients) and the outer-range mean it was found at:
        #: the contact's normal-state shape barely changes along a series, so it seeds the next
        self._last_background: tuple[np.ndarray, float] | None = None

    def reset(self) -> None:
        self._last_background = None
        self.anchors = {}

    def anchor(self, model: str, result: Any) -> None:
        """Hold this result's shared parameters for the rest of the series (first call wins)."""
        if model in self.anchors or not self.series_shared:
            return
        values = result.values
        self.anchors[model] = {k: float(v) for k, v in values.items()
                               if k.rstrip("0123456789") in self.series_shared
                               and result.params[k]["vary"]}

    def prepare(self, spectrum: Spectrum) -> PreparedSpectrum:
        from daqapp.analysis.fit import estimate_noise

        v = np.asarray(spectrum.bias_mV, dtype=float)
        g = np.asarray(spectrum.conductance, dtype=float)
        if not math.isfinite(spectrum.temperature_K) or spectrum.temperature_K < 0:
            raise ValueError(f"sweep {spectrum.sweep}: temperature unknown; a BTK fit needs it")
        edge = float(np.max(np.abs(v)))
        outer = np.abs(v) >= (1.0 - BACKGROUND_FRACTION) * edge
        if outer.sum() < BACKGROUND_DEGREE + 2 or edge <= 0:
            raise ValueError(f"sweep {spectrum.sweep}: too few high-bias points to normalise")
        keep = ~dip_mask(v, g)
        outer &= keep
        coeffs = np.polyfit(v[outer], g[outer], BACKGROUND_DEGREE)
        if self._last_background is not None:
            last, last_outer_mean = self._last_background
            candidate = last * (float(np.mean(g[outer])) / last_outer_mean)
            if np.all(np.polyval(candidate, v) > 0):
                coeffs = candidate
        background = np.polyval(coeffs, v)
        if np.any(background <= 0):
            raise ValueError(f"sweep {spectrum.sweep}: normal-state background is not positive")
        normalised = g / background
        if not keep.all():
            log.info("sweep %d: %d points in narrow dips left out of the fit (at %s mV)",
                     spectrum.sweep, int((~keep).sum()),
                     ", ".join(f"{x:.1f}" for x in sorted(v[~keep])))
        return PreparedSpectrum(v, normalised, coeffs, float(spectrum.temperature_K),
                                float(estimate_noise(v[keep], normalised[keep])), keep)

    def fit(self, prepared: PreparedSpectrum, model: str, warm_start: Any | None) -> Any:
        from daqapp.analysis.fit import BTKModel, fit_spectrum

        btk = BTKModel(model, prepared.temperature_K, self.dimension)
        if self.free_scale:
            btk.set("scale", vary=True)
        gamma_min = max(0.05, 0.25 * 0.08617333262 * prepared.temperature_K)
        delta_max = self.MAX_GAP_FRACTION_OF_WINDOW * float(np.max(np.abs(prepared.bias_mV)))
        for i in range(1, len(btk.components) + 1):
            btk.set(f"gamma{i}", min=gamma_min, value=max(btk[f"gamma{i}"].value, gamma_min))
            btk.set(f"delta{i}", max=delta_max, value=min(btk[f"delta{i}"].value, delta_max))
        for name, value in self.anchors.get(model, {}).items():
            if name in btk.params:
                btk.set(name, value=value, vary=False)
        keep = prepared.keep
        return fit_spectrum(prepared.bias_mV[keep], prepared.normalised[keep], btk,
                            temperature_K=prepared.temperature_K, dimension=self.dimension,
                            sigma=prepared.sigma, warm_start=warm_start)

    def settle(self, prepared: PreparedSpectrum, raw: np.ndarray, model: str,
               warm_start: Any | None) -> tuple[Any, PreparedSpectrum]:
        """Fit ``model`` and the normal-state background together (fixed-point iteration).

        Each step fits the BTK model to the data normalised by the current background, then
        takes the polynomial through measured/model in the outer bias range as the next
        background; every third step is Aitken-extrapolated (the plain iteration converges
        linearly, with a ratio near 0.8). Stops when the background moves by less than
        ``BACKGROUND_TOLERANCE`` (relative) anywhere in the window.
        """
        from daqapp.analysis.fit import estimate_noise

        v = prepared.bias_mV
        edge = float(np.max(np.abs(v)))
        outer = (np.abs(v) >= (1.0 - BACKGROUND_FRACTION) * edge) & prepared.keep
        probe = np.array([-edge, 0.0, edge])
        coeffs = np.asarray(prepared.background, dtype=float)
        initial, initial_prepared = coeffs, prepared
        history = [coeffs]
        result = warm_start
        for step in range(self.MAX_BACKGROUND_STEPS):
            result = self.fit(prepared, model, result)
            fitted = np.asarray(result.eval(v), dtype=float)
            ok = outer & np.isfinite(fitted) & (fitted > 0)
            if ok.sum() < BACKGROUND_DEGREE + 2:
                break
            new = np.polyfit(v[ok], raw[ok] / fitted[ok], BACKGROUND_DEGREE)
            history.append(new)
            if step % 3 == 2 and len(history) >= 3:
                x0, x1, x2 = history[-3:]
                d2 = x2 - 2 * x1 + x0
                with np.errstate(divide="ignore", invalid="ignore"):
                    extrapolated = np.where(np.abs(d2) > 1e-300, x2 - (x2 - x1) ** 2 / d2, x2)
                if np.all(np.isfinite(extrapolated)) and np.all(
                        np.polyval(extrapolated, v) > 0):
                    new = extrapolated
                    history.append(new)
            background = np.polyval(new, v)
            if np.any(background <= 0):
                break
            change = float(np.max(np.abs(np.polyval(new, probe) / np.polyval(coeffs, probe)
                                         - 1.0)))
            coeffs = new
            normalised = raw / background
            keep = prepared.keep
            prepared = PreparedSpectrum(v, normalised, coeffs, prepared.temperature_K,
                                        float(estimate_noise(v[keep], normalised[keep])), keep)
            if change < BACKGROUND_TOLERANCE:
                break
        drift = float(np.max(np.abs(np.polyval(coeffs, probe) / np.polyval(initial, probe) - 1)))
        if drift > self.MAX_BACKGROUND_SHIFT:
            log.info("background moved %.0f %% from its first estimate: kept the first",
                     100 * drift)
            prepared = initial_prepared
            result = self.fit(prepared, model, warm_start)
        outer_mean = float(np.mean(raw[outer]))
        self._last_background = (np.asarray(prepared.background, dtype=float), outer_mean)
        return result, prepared


    def stats(self, result: Any) -> dict[str, float]:
        return {"chi2_red": result.chi2_red, "aic": result.aic, "bic": result.bic,
                "n_free": result.n_varying, "n_points": result.n_points}

    def rows(self, result: Any, model: str, spectrum: Spectrum) -> list[ParameterRow]:
        rows = []
        for name in result.param_names:
            p = result.params[name]
            base = name.rstrip("0123456789")
            held = not p["vary"] and base in self.series_shared
            if (not p["vary"] and not held) or p.get("shared_with"):
                continue
            index = name[len(base):]
            label = _PRETTY.get(base, base) + index
            err = p["stderr"]
            rows.append(ParameterRow(model, label, float(p["value"]),
                                     math.nan if err is None or held else float(err),
                                     _UNITS.get(base, ""), held, spectrum.temperature_K,
                                     spectrum.sweep))
        return rows

    def gaps(self, result: Any) -> tuple[float, float, float, float] | None:
        values, errors = result.values, result.stderr
        if "delta1" not in values:
            return None

        def err(name: str) -> float:
            e = errors.get(name)
            return math.nan if e is None else float(e)

        d2 = float(values.get("delta2", math.nan))
        return float(values["delta1"]), err("delta1"), d2, err("delta2")

    def curve(self, result: Any, prepared: PreparedSpectrum, bias_mV: np.ndarray) -> np.ndarray:
        return np.asarray(result.eval(bias_mV)) * np.polyval(prepared.background, bias_mV)

    def to_dict(self, result: Any, prepared: PreparedSpectrum,
                spectrum: Spectrum) -> dict[str, Any]:
        out = dict(result.to_dict())
        out.update({
            "sweep": int(spectrum.sweep), "field_T": float(spectrum.field_T),
            "normalisation": f"measured / polynomial (degree {BACKGROUND_DEGREE}, settled with "
                             f"the fit in the outer {BACKGROUND_FRACTION:.0%} of the bias "
                             "range per side)",
            "background_coefficients": [float(c) for c in prepared.background],
            "excluded_bias_mV": prepared.excluded_mV(),
            "series_held": sorted(self.anchors.get(result.model, {})),
        })
        return out


def default_fitter(dimension: int = 2) -> SpectrumFitter:
    """The fitter the worker uses unless given another: :class:`AnalysisFitter`."""
    return AnalysisFitter(dimension=dimension)


# ----------------------------------------------------------------------------- the worker
@dataclass
class _Job:
    spectrum: Spectrum
    models: tuple[str, ...]
    store: Callable[[str, Mapping[str, Any]], None] | None
    generation: int


class FitWorker:
    """Fits spectra in its own thread as they complete; see the module docstring."""

    def __init__(self, models: Sequence[str] = ("s+s",), dimension: int = 2,
                 gap_form: str = "bcs", store: Callable[[str, Mapping[str, Any]], None]
                 | None = None, fitter: SpectrumFitter | None = None) -> None:
        self.set_models(models)
        if dimension not in (1, 2, 3):
            raise ValueError(f"dimension = {dimension!r} is not allowed (allowed: 1, 2, 3)")
        self.dimension = dimension
        self.gap_form = gap_form
        self.store = store
        self.fitter = fitter if fitter is not None else default_fitter(dimension)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._listeners: list[Callable[[FitUpdate], None]] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._generation = 0
        self._thread: threading.Thread | None = None
        self._collector = SweepCollector()
        self.warm: dict[str, Any] = {}
        self.gap_points: list[tuple[int, float, float, float, float, float]] = []
        self.gap_fits: tuple[Any, ...] = (None, None)
        self.updates: list[FitUpdate] = []
        self._primary = ""

    # -- configuration ---------------------------------------------------------------------
    def set_models(self, models: Sequence[str]) -> None:
        models = tuple(dict.fromkeys(models))
        bad = [m for m in models if m not in MODELS]
        if bad or not models:
            raise ValueError(f"fit models {list(models)!r}: choose one or more of "
                             f"{', '.join(MODELS)}")
        self.models = models

    def add_listener(self, listener: Callable[[FitUpdate], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[FitUpdate], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def reset(self) -> None:
        """Forget warm starts, Δ(T) and queued spectra (a new series begins)."""
        reset_fitter = getattr(self.fitter, "reset", None)
        if callable(reset_fitter):
            reset_fitter()
        with self._lock:
            self._generation += 1
            self.warm = {}
            self.gap_points = []
            self.gap_fits = (None, None)
            self.updates = []
            self._primary = ""
        self._collector = SweepCollector(self._collector.units, self._collector.source)

    def attach(self, run: Any, units: Mapping[str, str] | None = None,
               new_series: bool = True) -> Callable[[Any], None]:
        """Follow ``run`` (a :class:`daqapp.runner.Run`): subscribe to its events and store
        fits in its file. Returns the listener (already subscribed)."""
        if new_series:
            self.reset()
        if units is None:
            getter = getattr(run.procedure, "column_units", None)
            units = dict(getter()) if callable(getter) else {}
        self._collector = SweepCollector(units, source=type(run.procedure).__name__)
        self.store = RunFitStore.for_run(run)
        run.subscribe(self.handle_event)
        return self.handle_event

    # -- input (acquisition thread: must return at once) -----------------------------------
    def handle_event(self, event: Any) -> None:
        """A run listener: collects records, queues the spectrum at each ``sweep_end``."""
        kind = getattr(event, "kind", None)
        if kind == "record":
            done = self._collector.add(event.payload)
            if done is not None:
                self.submit(done)
        elif kind == "sweep_end":
            spectrum = self._collector.finish(event.payload)
            if spectrum is not None:
                self.submit(spectrum)

    def submit(self, spectrum: Spectrum, models: Sequence[str] | None = None) -> None:
        """Queue one spectrum for fitting with the current (or given) models."""
        job = _Job(spectrum, tuple(models or self.models), self.store, self._generation)
        with self._lock:
            self._pending += 1
        self.start()
        self._queue.put(job)

    def refit(self, spectra: Iterable[Spectrum], models: Sequence[str] | None = None,
              store: Callable[[str, Mapping[str, Any]], None] | None = None) -> None:
        """Fit a recorded series again (replay, or other models): new Δ(T) from scratch."""
        if models is not None:
            self.set_models(models)
        self.reset()
        if store is not None:
            self.store = store
        for spectrum in spectra:
            self.submit(spectrum)

    # -- thread ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="fit-worker", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)
        self._thread = None

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every queued spectrum is fitted; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    @property
    def busy(self) -> bool:
        return self._pending > 0

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                if job.generation == self._generation:
                    update = self._process(job)
                    if update is not None and job.generation == self._generation:
                        self.updates.append(update)
                        for listener in list(self._listeners):
                            try:
                                listener(update)
                            except Exception:  # noqa: BLE001 - one bad listener only
                                log.exception("fit listener %r failed", listener)
            except Exception:  # noqa: BLE001 - the worker must outlive a bad spectrum
                log.exception("fit of sweep %s failed", job.spectrum.sweep)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def primary_model(self, models: Sequence[str]) -> str:
        """The model that settles the background and gives Δ(T), kept for the whole series so
        Δ(T) never mixes models: s+s if chosen, else the first two-gap model, else the first
        (a one-gap model would fold the second gap into the background)."""
        if not models:
            return ""
        if self._primary in models:
            return self._primary
        two_gap = [m for m in models if "+" in m]
        self._primary = "s+s" if "s+s" in two_gap else (two_gap[0] if two_gap else models[0])
        return self._primary

    # -- one spectrum ----------------------------------------------------------------------
    def _process(self, job: _Job) -> FitUpdate | None:
        started = time.perf_counter()
        spectrum = job.spectrum
        prepared = self.fitter.prepare(spectrum)
        results: dict[str, Any] = {}
        errors: dict[str, str] = {}
        settle = getattr(self.fitter, "settle", None)
        if callable(settle):
            # settle the normal-state background with the primary model, then fit every
            # model to the same normalised data (comparable χ², AIC, BIC)
            primary_model = self.primary_model(job.models)
            try:
                first, prepared = settle(prepared, np.asarray(spectrum.conductance, float),
                                         primary_model, self.warm.get(primary_model))
                self.warm[primary_model] = first
            except Exception as exc:  # noqa: BLE001 - fall back to the first background
                log.info("sweep %d: background refinement failed: %s", spectrum.sweep, exc)
        for model in job.models:
            try:
                result = self.fitter.fit(prepared, model, self.warm.get(model))
            except Exception as exc:  # noqa: BLE001 - reported per model, others go on
                errors[model] = f"{type(exc).__name__}: {exc}"
                log.warning("sweep %d: %s fit failed: %s", spectrum.sweep, model, exc)
                continue
            results[model] = result
            self.warm[model] = result
            anchor = getattr(self.fitter, "anchor", None)
            if callable(anchor) and getattr(result, "success", True):
                anchor(model, result)
        if not results:
            return FitUpdate(spectrum.sweep, spectrum.temperature_K, spectrum.field_T, {}, "",
                             [], [], None, None, self._series(), self.gap_fits,
                             f"sweep {spectrum.sweep}: no model could be fitted", errors,
                             time.perf_counter() - started)
        comparison = compare(results, self.fitter)
        best = comparison[0].model
        parameters: list[ParameterRow] = []
        for model, result in results.items():
            parameters.extend(self.fitter.rows(result, model, spectrum))
            self._store(job.store, f"sweep{spectrum.sweep:04d}_{model}",
                        self.fitter.to_dict(result, prepared, spectrum))
        primary = self.primary_model([m for m in job.models if m in results]) or best
        gaps = self.fitter.gaps(results[primary])
        if gaps is not None and math.isfinite(spectrum.temperature_K):
            d1, e1, d2, e2 = gaps
            self.gap_points = [p for p in self.gap_points if p[0] != spectrum.sweep]
            self.gap_points.append((spectrum.sweep, spectrum.temperature_K, d1, e1, d2, e2))
            self._fit_gaps(job.store)
        curve_bias = np.linspace(float(spectrum.bias_mV.min()), float(spectrum.bias_mV.max()),
                                 600)
        curve = self.fitter.curve(results[best], prepared, curve_bias)
        c = comparison[0]
        status = (f"sweep {spectrum.sweep} at {spectrum.temperature_K:.2f} K: best {best} "
                  f"(χ²_red {c.chi2_red:.2f}"
                  + (f", ΔAIC to next {comparison[1].delta_aic:.1f})" if len(comparison) > 1
                     else ")")
                  + (f"; failed: {', '.join(errors)}" if errors else ""))
        gap_fit = self.gap_fits[0]
        if gap_fit is not None and tc_determined(gap_fit, float(np.max(self._series()
                                                                          .temperature_K))):
            status += f"; Tc(Δ1) = {gap_fit.tc_K:.1f} ± {gap_fit.tc_err_K:.1g} K"
        elif gap_fit is not None:
            status += "; Tc(Δ1) not determined yet (need spectra closer to Tc)"
        log.info(status)
        return FitUpdate(spectrum.sweep, spectrum.temperature_K, spectrum.field_T, results,
                         best, parameters, comparison, curve_bias, curve, self._series(),
                         self.gap_fits, status, errors, time.perf_counter() - started)

    def _store(self, store: Callable[[str, Mapping[str, Any]], None] | None, name: str,
               fit: Mapping[str, Any]) -> None:
        if store is None:
            return
        try:
            store(name, fit)
        except Exception as exc:  # noqa: BLE001 - losing a stored fit must not stop fitting
            log.error("storing fit %s failed: %s", name, exc)

    def _series(self) -> GapSeries:
        pts = sorted(self.gap_points, key=lambda p: p[1])
        if not pts:
            return GapSeries()
        arr = np.array([p[1:] for p in pts], dtype=float)
        has2 = np.isfinite(arr[:, 3]).any()
        return GapSeries(temperature_K=arr[:, 0], delta1=arr[:, 1], delta1_err=arr[:, 2],
                         delta2=arr[:, 3] if has2 else None,
                         delta2_err=arr[:, 4] if has2 else None,
                         sweeps=np.array([p[0] for p in pts], dtype=int))

    def _fit_gaps(self, store: Callable[[str, Mapping[str, Any]], None] | None) -> None:
        """Refit Δ(T) → Tc with every point so far (needs three temperatures)."""
        from daqapp.analysis.gaps import fit_gap_temperature

        series = self._series()
        fits: list[Any] = []
        for label, values, errors in (("delta1", series.delta1, series.delta1_err),
                                      ("delta2", series.delta2, series.delta2_err)):
            if values is None:
                fits.append(None)
                continue
            good = np.isfinite(values) & np.isfinite(series.temperature_K)
            if len(np.unique(series.temperature_K[good])) < 3 or not (values[good] > 0).any():
                fits.append(None)
                continue
            sigma = errors[good] if errors is not None else None
            if sigma is not None and not (np.all(np.isfinite(sigma)) and np.all(sigma > 0)):
                sigma = None
            try:
                fit = fit_gap_temperature(series.temperature_K[good], values[good], sigma,
                                          form=self.gap_form)
            except (ValueError, RuntimeError) as exc:
                log.info("Δ(T) fit of %s not possible yet: %s", label, exc)
                fits.append(None)
                continue
            fits.append(fit)
            self._store(store, f"gap_T_{label}_{self.gap_form}", fit.to_dict())
        self.gap_fits = tuple(fits)


def tc_determined(fit: Any, t_max_K: float) -> bool:
    """A Δ(T) fit whose Tc means something: finite, with a finite error smaller than itself,
    and not beyond 5× the warmest spectrum (points far below Tc leave Tc unconstrained)."""
    return (fit is not None and math.isfinite(fit.tc_K) and math.isfinite(fit.tc_err_K)
            and 0 < fit.tc_err_K < fit.tc_K < 5 * max(t_max_K, 1.0))


def compare(results: Mapping[str, Any], fitter: SpectrumFitter) -> list[ComparisonRow]:
    """Rank fitted models by AIC (then BIC); deltas relative to the best."""
    stats = {m: fitter.stats(r) for m, r in results.items()}
    best_aic = min(s["aic"] for s in stats.values())
    best_bic = min(s["bic"] for s in stats.values())
    rows = [ComparisonRow(m, s["chi2_red"], s["aic"], s["aic"] - best_aic, s["bic"],
                          s["bic"] - best_bic, int(s["n_free"]), int(s["n_points"]))
            for m, s in stats.items()]
    rows.sort(key=lambda r: (r.aic, r.bic))
    return rows
