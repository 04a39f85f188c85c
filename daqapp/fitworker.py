"""On-line fits of each spectrum as it completes, off the GUI and acquisition threads.

The worker listens to a run's event stream (``Run.subscribe``): records are collected per
sweep in memory (never re-read from the file); at ``sweep_end`` the finished spectrum is queued
and the listener returns at once, so acquisition never waits for a fit. A single worker thread
hands each spectrum to the one spectrum analysis (:mod:`daqapp.analysis.spectroscopy`: series
resistance from the run's facts, dips masked, joint normal-state background, every chosen
model fitted and ranked, constrained by the previous spectrum of the series), stores every
result in the run file (the live writer's ``add_fit`` while the run is open, ``append_fit``
once it is closed), and keeps Δ(T) and its BCS fit up to date, with Tc only when determined.
Listeners get a :class:`FitUpdate`; they are called from the worker thread (the GUI re-emits
it as a queued Qt signal). The worker has no fitting or normalising code of its own.

Qt-free: unattended campaigns use the same worker.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from daqapp.analysis.spectroscopy import (
    AnalysisOptions,
    GapSeries,
    RawSpectrum,
    RunFacts,
    SeriesFit,
    SpectrumAnalysis,
    facts_from_run,
    modulation_from_columns,
    prepare,
    tc_determined,
)

log = logging.getLogger(__name__)

#: The spectral models the analysis engine fits (gap symmetries, larger gap first).
MODELS = ("s", "d", "s+s", "s+d", "d+s", "d+d")

#: Column names the worker reads from the record stream (first present wins).
BIAS_COLUMNS = ("dc_voltage", "junction_voltage", "bias_voltage", "voltage_dc", "v_dc", "bias")
CONDUCTANCE_COLUMNS = ("didv", "dIdV", "conductance")
RESISTANCE_COLUMNS = ("dvdi",)
CURRENT_COLUMNS = ("bias_current",)
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
    current_mA: np.ndarray | None = None
    modulation_mV: float | None = None
    normalized: bool | None = None
    #: the run's facts (series resistance ...); None: the worker's current ones
    facts: RunFacts | None = None

    def raw(self) -> RawSpectrum:
        """The spectrum as the analysis takes it."""
        return RawSpectrum(self.bias_mV, self.conductance, "didv", self.current_mA,
                           self.temperature_K, self.field_T,
                           f"{self.source + ' ' if self.source else ''}sweep {self.sweep}",
                           self.sweep, self.modulation_mV, self.normalized)


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
    analysis: SpectrumAnalysis | None = None
    attached: int = 0
    """Which :meth:`FitWorker.attach` the spectrum came under: a fit finishing after the next
    run started belongs to the one before (the window then leaves that run's plot alone)."""


def sweep_label(index: int) -> str:
    """A sweep as the operator reads it: numbered from 1 (files count from 0)."""
    return f"sweep {int(index) + 1}"


def _first(names: Iterable[str], candidates: Sequence[str]) -> str | None:
    names = set(names)
    for c in candidates:
        if c in names:
            return c
    return None


def _mV_factor(units: Mapping[str, str], column: str) -> float:
    unit = (units.get(column) or "V").strip().lower()
    return {"v": 1e3, "mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3}.get(unit, 1e3)


def _mA_factor(units: Mapping[str, str], column: str) -> float:
    unit = (units.get(column) or "A").strip().lower()
    return {"a": 1e3, "ma": 1.0, "ua": 1e-3, "µa": 1e-3, "μa": 1e-3}.get(unit, 1e3)


class SweepCollector:
    """Collects the records of the sweep in progress; yields a :class:`Spectrum` at its end."""

    def __init__(self, units: Mapping[str, str] | None = None, source: str = "",
                 facts: RunFacts | None = None) -> None:
        self.units = dict(units or {})
        self.source = source
        #: the run's facts, stamped on every spectrum (series resistance, modulation)
        self.facts = facts
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
        resistance = _first(keys, RESISTANCE_COLUMNS)
        if bias is None or (cond is None and resistance is None):
            return None
        v = np.array([_num(r.get(bias)) for r in rows]) * _mV_factor(self.units, bias)
        if cond is not None:
            g = np.array([_num(r.get(cond)) for r in rows])
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                g = 1.0 / np.array([_num(r.get(resistance)) for r in rows])
        ccol = _first(keys, CURRENT_COLUMNS)
        current = (np.array([_num(r.get(ccol)) for r in rows]) * _mA_factor(self.units, ccol)
                   if ccol else None)
        modulation = None
        if resistance is not None:
            modulation = modulation_from_columns(
                {"dvdi": np.array([_num(r.get(resistance)) for r in rows]),
                 "i_ac": np.array([_num(r.get("i_ac")) for r in rows]) if "i_ac" in keys
                 else None}, self.facts or RunFacts())
        tcol = _first(keys, TEMPERATURE_COLUMNS)
        bcol = _first(keys, FIELD_COLUMNS)
        temps = np.array([_num(r.get(tcol)) for r in rows]) if tcol else np.array([math.nan])
        fields = np.array([_num(r.get(bcol)) for r in rows]) if bcol else np.array([0.0])
        info = dict(info or {})
        temperature = _num(info.get("temperature", _nanmean(temps)))
        field_T = _num(info.get("field", _nanmean(fields)))
        good = np.isfinite(v) & np.isfinite(g)
        if current is not None:
            good &= np.isfinite(current)
        if good.sum() < MIN_POINTS:
            return None
        unit = (self.units.get(cond or "") or "").strip()
        return Spectrum(sweep=int(index), bias_mV=v[good], conductance=g[good],
                        temperature_K=temperature, field_T=field_T if field_T == field_T else 0.0,
                        time=time.time(), source=self.source,
                        current_mA=None if current is None else current[good],
                        modulation_mV=modulation, facts=self.facts,
                        normalized=False if unit in ("S", "mS", "uS") or resistance and not cond
                        else None)


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


# ----------------------------------------------------------------------------- the worker
@dataclass
class _Job:
    spectrum: Spectrum
    models: tuple[str, ...]
    store: Callable[[str, Mapping[str, Any]], None] | None
    generation: int
    attached: int = 0


class FitWorker:
    """Fits spectra in its own thread as they complete; see the module docstring."""

    def __init__(self, models: Sequence[str] = ("s+s",), dimension: int = 2,
                 gap_form: str = "bcs", store: Callable[[str, Mapping[str, Any]], None]
                 | None = None, options: AnalysisOptions | None = None,
                 fitter: SeriesFit | None = None) -> None:
        self.set_models(models)
        if dimension not in (1, 2, 3):
            raise ValueError(f"dimension = {dimension!r} is not allowed (allowed: 1, 2, 3)")
        self.dimension = dimension
        self.gap_form = gap_form
        self.store = store
        #: the analysis choices; the run's facts (series resistance) fill them on ``attach``
        self.base_options = options or AnalysisOptions(models=self.models, dimension=dimension,
                                                       gap_form=gap_form)
        self.facts = RunFacts()
        #: the series being analysed (one contact, cold to warm); replaceable for tests
        self.series_fit = fitter if fitter is not None else SeriesFit(self.options())
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._listeners: list[Callable[[FitUpdate], None]] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._generation = 0
        self.attached = 0  # runs followed so far (attach)
        self._thread: threading.Thread | None = None
        self._collector = SweepCollector()
        self.gap_fits: tuple[Any, ...] = (None, None)
        self.updates: list[FitUpdate] = []
        self._sweeps: list[int] = []
        self._contact: tuple[str, ...] = ()

    def options(self, models: Sequence[str] | None = None,
                facts: RunFacts | None = None) -> AnalysisOptions:
        """The analysis options for ``models`` (default: the chosen ones) with the facts."""
        return replace(self.base_options, models=tuple(models or self.models),
                       dimension=self.dimension, gap_form=self.gap_form
                       ).with_facts(facts or self.facts)

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
        """Forget the series, Δ(T) and queued spectra (a new series begins)."""
        with self._lock:
            self._generation += 1
            self.series_fit.reset()
            self._sweeps = []
            self.gap_fits = (None, None)
            self.updates = []
        self._collector = SweepCollector(self._collector.units, self._collector.source,
                                         self._collector.facts)

    def attach(self, run: Any, units: Mapping[str, str] | None = None,
               new_series: bool | None = None) -> Callable[[Any], None]:
        """Follow ``run`` (a :class:`daqapp.runner.Run`): subscribe to its events and store
        fits in its file. Returns the listener (already subscribed).

        ``new_series``: True starts a new Δ(T) series, False continues it, None (default)
        continues it when the run is of the same contact as the last one (same sample, cell
        and campaign in its metadata), as the report treats a campaign folder."""
        self.attached += 1
        contact = _contact(getattr(run, "metadata", None) or {})
        if new_series is None:
            new_series = not (contact and contact == self._contact)
        self._contact = contact
        if new_series:
            self.reset()
        if units is None:
            getter = getattr(run.procedure, "column_units", None)
            units = dict(getter()) if callable(getter) else {}
        self.facts = facts_from_run(run)
        self._collector = SweepCollector(units, source=type(run.procedure).__name__,
                                         facts=self.facts)
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
        job = _Job(spectrum, tuple(models or self.models), self.store, self._generation,
                   self.attached)
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
        """End the worker: the fit in progress finishes, spectra still queued are dropped
        (a closed window must not go on fitting for minutes); ``wait_idle`` first to keep them."""
        if self._thread is not None and self._thread.is_alive():
            self._generation += 1
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
                        update.attached = job.attached
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

    # -- one spectrum ----------------------------------------------------------------------
    def _process(self, job: _Job) -> FitUpdate | None:
        started = time.perf_counter()
        spectrum = job.spectrum
        options = self.options(job.models, spectrum.facts)
        self.series_fit.options = options
        analysis = self.series_fit.add(prepare(spectrum.raw(), options))
        self._sweeps.append(spectrum.sweep)
        results = analysis.results
        series = self.series_fit.series(self._sweeps)
        if not results:
            return FitUpdate(spectrum.sweep, spectrum.temperature_K, spectrum.field_T, {}, "",
                             [], [], None, None, series, self.gap_fits,
                             f"{sweep_label(spectrum.sweep)}: no model could be fitted",
                             analysis.errors, time.perf_counter() - started, analysis)
        comparison = comparison_rows(analysis)
        best = analysis.best
        parameters: list[ParameterRow] = []
        for model in results:
            parameters.extend(parameter_rows(analysis, model, spectrum.sweep))
            self._store(job.store, f"sweep{spectrum.sweep:04d}_{model}",
                        {**analysis.to_dict(model), "sweep": int(spectrum.sweep)})
        # only fits whose Tc the data determine are drawn; the status says "not determined"
        self.gap_fits = tuple(series.fits.get(k) if series.tc_determined.get(k) else None
                              for k in ("delta1", "delta2"))
        for key, fit in series.fits.items():
            if fit is not None:
                self._store(job.store, f"gap_T_{key}_{self.gap_form}",
                            {**fit.to_dict(), "tc_determined": series.tc_determined[key]})
        curve_bias, curve = analysis.overlay()
        c = comparison[0]
        status = (f"{sweep_label(spectrum.sweep)} at {spectrum.temperature_K:.2f} K: best {best} "
                  f"(χ²_red {c.chi2_red:.2f}"
                  + (f", ΔAIC to next {comparison[1].delta_aic:.1f})" if len(comparison) > 1
                     else ")")
                  + (f"; failed: {', '.join(analysis.errors)}" if analysis.errors else ""))
        if not analysis.has_gap:
            status += "; no gap (normal state): left out of Δ(T)"
        if series.fits.get("delta1") is not None:
            status += "; Δ1(T): " + series.tc_text("delta1")
        log.info(status)
        return FitUpdate(spectrum.sweep, spectrum.temperature_K, spectrum.field_T, results,
                         best, parameters, comparison, curve_bias, curve, series,
                         self.gap_fits, status, analysis.errors,
                         time.perf_counter() - started, analysis)

    def _store(self, store: Callable[[str, Mapping[str, Any]], None] | None, name: str,
               fit: Mapping[str, Any]) -> None:
        if store is None:
            return
        try:
            store(name, fit)
        except Exception as exc:  # noqa: BLE001 - losing a stored fit must not stop fitting
            log.error("storing fit %s failed: %s", name, exc)


def _contact(metadata: Mapping[str, Any]) -> tuple[str, ...]:
    """What identifies a contact in run metadata (empty: unknown)."""
    keys = ("sample", "cell", "campaign")
    if not any(metadata.get(k) for k in keys):
        return ()
    return tuple(str(metadata.get(k) or "") for k in keys)


_PRETTY = {"delta": "Δ", "gamma": "Γ", "z": "Z", "alpha": "α", "weight": "w",
           "anisotropy": "a", "curvature": "c2", "slope": "c1", "scale": "c0"}
_UNITS = {"delta": "meV", "gamma": "meV", "alpha": "rad", "v0": "mV", "slope": "1/mV",
          "curvature": "1/mV²", "temperature": "K"}


def parameter_rows(analysis: SpectrumAnalysis, model: str, sweep: int = -1
                   ) -> list[ParameterRow]:
    """The fitted parameters of one model, for the table: held ones (the series' channel
    weights) marked fixed, undetermined ones with a NaN error."""
    result = analysis.results[model]
    rows = []
    for name in result.param_names:
        p = result.params[name]
        base = name.rstrip("0123456789")
        held = not p["vary"] and base == "weight"
        if (not p["vary"] and not held) or p.get("shared_with"):
            continue
        label = _PRETTY.get(base, base) + name[len(base):]
        err = p["stderr"]
        rows.append(ParameterRow(model, label, float(p["value"]),
                                 math.nan if err is None or held else float(err),
                                 _UNITS.get(base, ""), held, analysis.temperature_K, sweep))
    return rows


def comparison_rows(analysis: SpectrumAnalysis) -> list[ComparisonRow]:
    """The analysis's model ranking (by AIC, then BIC) as table rows."""
    results = analysis.comparison.results if analysis.comparison else []
    best_aic = min(r.aic for r in results)
    best_bic = min(r.bic for r in results)
    rows = [ComparisonRow(r.model, r.chi2_red, r.aic, r.aic - best_aic, r.bic,
                          r.bic - best_bic, int(r.n_varying), int(r.n_points))
            for r in results]
    rows.sort(key=lambda r: (r.aic, r.bic))
    return rows


__all__ = ["MODELS", "ComparisonRow", "FitUpdate", "FitWorker", "GapSeries", "ParameterRow",
           "RunFitStore", "Spectrum", "SweepCollector", "comparison_rows", "parameter_rows",
           "tc_determined"]
