"""Refit many runs at once: contacts' temperature series as tasks, serial, local processes or a
dask.distributed cluster, with the same numbers from each.

The unit of work is one contact's series (:class:`SeriesTask`), fitted cold to warm by
:func:`fit_series` exactly as the report does (warm starts never cross a task). A contact is
the spectrum runs of one folder — what ``daqapp report FOLDER`` fits as one series. Tasks hold
arrays (:class:`~daqapp.analysis.spectroscopy.RawSpectrum`), never open HDF5 files, so workers
need no access to the data. A spectrum whose fit fails is kept with its error text; the batch
goes on.

Local worker processes are spawned with ``MALLOC_TRIM_THRESHOLD_`` removed: dask's default
worker environment sets it to 65536, which made each fit 2.2–2.5× slower (issue 14). They
inherit this process's BLAS/OpenMP thread settings, so ``jobs=N`` gives serial's numbers to the
bit: a different thread count changes the summation order of threaded BLAS (spectra of a few
hundred points and more), hence the last digits of χ² and the digits of a poorly determined
parameter. Dask workers run with ``OMP_NUM_THREADS=1`` unless told otherwise; to compare a
cluster bit for bit, run serial with ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1`` too.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daqapp.analysis.spectroscopy import (
    AnalysisOptions,
    GapSeries,
    RawSpectrum,
    SeriesFit,
    SpectrumAnalysis,
    options_from_run,
    prepare,
    raw_spectra_from_run,
)

RUN_SUFFIXES = (".h5", ".hdf5")
#: folders under a campaign that hold no runs of its own
SKIP_DIRS = ("partial", "report")

#: Removed from the environment of every worker process this module starts (dask sets
#: MALLOC_TRIM_THRESHOLD_=65536: fits 2.2–2.5× slower).
WORKER_ENV_UNSET = ("MALLOC_TRIM_THRESHOLD_",)


# --------------------------------------------------------------------------- tasks


@dataclass(eq=False)  # holds arrays: identity, not element-wise ==
class SeriesItem:
    """One recorded spectrum with the analysis options its own run's facts give."""

    raw: RawSpectrum
    options: AnalysisOptions
    source: str
    #: normal-state spectrum to divide by before the joint background fit (the report's option)
    reference: RawSpectrum | None = None
    #: the run file it came from (for ``--store``); None for spectra built in memory
    path: str | None = None

    @property
    def temperature_K(self) -> float:
        return float(self.raw.temperature_K)

    @property
    def field_T(self) -> float:
        return float(self.raw.field_T)


@dataclass(eq=False)
class SeriesTask:
    """One contact's spectra: fitted in one process, cold to warm, warm-starting each other."""

    contact: str
    items: list[SeriesItem]

    def __len__(self) -> int:
        return len(self.items)


@dataclass(eq=False)
class SeriesOutcome:
    """The fits of one task: per item (same order) the analysis or the error, and Δ(T)."""

    contact: str
    items: list[SeriesItem]
    analyses: list[SpectrumAnalysis | None]
    errors: list[str]
    gaps: GapSeries = field(default_factory=GapSeries)

    def rows(self) -> list[SpectrumFit]:
        return [row for k in range(len(self.items)) for row in _rows(self, k)]


@dataclass
class SpectrumFit:
    """One row of the results table: one spectrum and one model (or its error)."""

    contact: str
    file: str
    sweep: int
    temperature_K: float
    field_T: float
    model: str
    values: dict[str, float]
    errors: dict[str, float]
    chi2: float = math.nan
    chi2_red: float = math.nan
    aic: float = math.nan
    has_gap: bool = False
    error: str = ""


def _rows(outcome: SeriesOutcome, k: int) -> list[SpectrumFit]:
    item, analysis, error = outcome.items[k], outcome.analyses[k], outcome.errors[k]
    base = {"contact": outcome.contact, "file": item.source, "sweep": int(item.raw.sweep),
            "temperature_K": item.temperature_K, "field_T": item.field_T}
    models = item.options.models
    if analysis is None:
        return [SpectrumFit(**base, model=m, values={}, errors={}, error=error) for m in models]
    out = []
    for m in models:
        r = analysis.results.get(m)
        if r is None:
            out.append(SpectrumFit(**base, model=m, values={}, errors={},
                                   error=analysis.errors.get(m, "not fitted")))
            continue
        errs = {k: (math.nan if e is None else float(e)) for k, e in r.stderr.items()}
        out.append(SpectrumFit(**base, model=m, values={k: float(v) for k, v in r.values.items()},
                               errors=errs, chi2=float(r.chi2), chi2_red=float(r.chi2_red),
                               aic=float(r.aic), has_gap=bool(analysis.has_gap)))
    return out


def fit_series(task: SeriesTask,
               on_fit: Callable[[SeriesItem, SpectrumAnalysis | None, str], None] | None = None,
               reuse: Callable[[SeriesItem, SeriesFit], SpectrumAnalysis | None] | None = None
               ) -> SeriesOutcome:
    """The task's spectra through :class:`SeriesFit`, cold to warm, then Δ(T).

    A spectrum that raises is recorded with its error and constrains nothing. ``on_fit`` is
    called after each spectrum (the report prints its line there). ``reuse(item, series)``
    may return an analysis already made for this item on exactly this path (the campaign's
    on-line fit): it joins the series instead of a refit.
    """
    order = sorted(range(len(task.items)), key=lambda k: task.items[k].temperature_K
                   if math.isfinite(task.items[k].temperature_K) else -math.inf)
    analyses: list[SpectrumAnalysis | None] = [None] * len(task.items)
    errors = [""] * len(task.items)
    series = SeriesFit()
    for k in order:
        item = task.items[k]
        try:
            found = reuse(item, series) if reuse is not None else None
            if found is not None:  # made on exactly this path: it joins the series as is
                series.analyses.append(found)
            else:
                series.options = item.options
                found = series.add(prepare(item.raw, item.options, item.reference))
            analyses[k] = found
        except Exception as exc:  # noqa: BLE001 - one spectrum must not sink the batch
            errors[k] = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
        if on_fit is not None:
            on_fit(item, analyses[k], errors[k])
    return SeriesOutcome(task.contact, task.items, analyses, errors, series.series())


def _failed(task: SeriesTask, error: str) -> SeriesOutcome:
    """A task whose worker failed as a whole: every spectrum carries the error."""
    return SeriesOutcome(task.contact, task.items, [None] * len(task.items),
                         [error] * len(task.items))


# --------------------------------------------------------------------------- from run files


def find_run_files(paths: Iterable[Path | str]) -> list[Path]:
    """Run files under each path (a file, a campaign folder, or a folder of campaigns)."""
    out: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_file():
            out.append(path)
            continue
        for p in sorted(path.rglob("*")):
            if p.suffix.lower() in RUN_SUFFIXES and p.is_file() and not any(
                    part in SKIP_DIRS or part.startswith(".") for part in
                    p.relative_to(path).parts[:-1]):
                out.append(p)
    return out


def run_file_spectra(path: Path | str, options: AnalysisOptions | None = None
                     ) -> list[SeriesItem]:
    """Spectra of a run, both sweep directions at one temperature merged into one curve, each
    with the run's facts (series resistance from its campaign or station, modulation)."""
    from daqapp.storage import open_run

    path = Path(path)
    with open_run(path) as run:
        opts = options_from_run(run, options)
        raws = raw_spectra_from_run(run, merge_directions=True)
    return [SeriesItem(raw, opts, path.name, path=str(path)) for raw in raws]


def series_tasks(paths: Iterable[Path | str], options: AnalysisOptions | None = None
                 ) -> tuple[list[SeriesTask], list[str]]:
    """(one task per contact, notes): the spectrum runs under ``paths`` grouped by folder.

    Runs without spectra (R–T, I–V) are left out; an unreadable file and spectra without a
    temperature are named in the notes.
    """
    groups: dict[Path, list[SeriesItem]] = {}
    notes: list[str] = []
    for path in find_run_files(paths):
        try:
            items = run_file_spectra(path, options)
        except Exception as exc:  # noqa: BLE001 - one bad file must not sink the batch
            notes.append(f"{path}: spectra not read ({exc})")
            continue
        for item in items:
            if math.isfinite(item.temperature_K):
                groups.setdefault(path.parent, []).append(item)
            else:
                notes.append(f"{path.name} sweep {item.raw.sweep}: no temperature, not fitted")
    root = _common_root(list(groups))
    tasks = [SeriesTask(_contact_name(folder, root), items) for folder, items in groups.items()]
    return tasks, notes


def _common_root(folders: Sequence[Path]) -> Path | None:
    if not folders:
        return None
    try:
        return Path(os.path.commonpath([str(f.resolve()) for f in folders]))
    except ValueError:
        return None


def _contact_name(folder: Path, root: Path | None) -> str:
    """The folder relative to the folders' common root (its own name when it is the root)."""
    resolved = folder.resolve()
    if root is not None and resolved != root:
        return str(resolved.relative_to(root))
    return resolved.name or str(resolved)


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Progress:
    """How far a batch is: spectra fitted (or failed), of how many, fits/s and seconds left."""

    done: int
    total: int
    rate: float
    eta_s: float


def run_batch(tasks: Sequence[SeriesTask], jobs: int = 1, scheduler: str | None = None,
              progress: Callable[[Progress], None] | None = None) -> list[SeriesOutcome]:
    """Every task fitted; outcomes in task order.

    ``jobs=1`` and no ``scheduler``: in this process. ``jobs=N``: N spawned local processes
    (one task at a time each). ``scheduler="tcp://HOST:PORT"``: an existing dask.distributed cluster
    (its workers' environment is the cluster's; see the module doc). All three run the same
    :func:`fit_series` on the same arrays, so they give the same numbers. Ctrl-C cancels
    what has not run and shuts the workers down before ``KeyboardInterrupt`` propagates.
    """
    if jobs < 1:
        from daqapp.errors import ConfigError

        raise ConfigError(f"jobs = {jobs}: allowed is a whole number >= 1")
    total = sum(len(t) for t in tasks)
    started = time.perf_counter()
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            elapsed = max(time.perf_counter() - started, 1e-9)
            rate = done / elapsed
            progress(Progress(done, total, rate, (total - done) / rate if rate > 0
                              else math.inf))

    if progress is not None:
        progress(Progress(0, total, 0.0, math.inf))
    if scheduler is not None:
        return _run_on_cluster(tasks, scheduler, tick)
    if jobs == 1 or len(tasks) <= 1:
        outcomes = []
        for task in tasks:
            outcomes.append(fit_series(task))
            tick(len(task))
        return outcomes
    return _run_in_processes(tasks, jobs, tick)


@contextmanager
def worker_environment() -> Iterator[None]:
    """os.environ as worker processes should inherit it (see :data:`WORKER_ENV_UNSET`), for
    the processes spawned inside the block; restored afterwards."""
    saved = {k: os.environ.get(k) for k in WORKER_ENV_UNSET}
    try:
        for k in WORKER_ENV_UNSET:
            os.environ.pop(k, None)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _collect(done: Iterable[Any], futures: dict[Any, int], tasks: Sequence[SeriesTask],
             outcomes: list[SeriesOutcome | None], tick: Callable[[int], None]) -> None:
    """Store each finished future's outcome at its task's index as it completes (a pool's
    or a dask cluster's futures alike); a failed task fails its series only."""
    for future in done:
        k = futures[future]
        try:
            outcomes[k] = future.result()
        except Exception as exc:  # noqa: BLE001 - a dead or lost worker fails its task only
            outcomes[k] = _failed(tasks[k], f"worker failed: {exc!r}")
        tick(len(tasks[k]))


def _run_in_processes(tasks: Sequence[SeriesTask], jobs: int,
                      tick: Callable[[int], None]) -> list[SeriesOutcome]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    outcomes: list[SeriesOutcome | None] = [None] * len(tasks)
    with worker_environment():
        pool = ProcessPoolExecutor(max_workers=min(jobs, len(tasks)),
                                   mp_context=multiprocessing.get_context("spawn"))
        futures: dict[Any, int] = {}
        try:
            for k, task in enumerate(tasks):
                futures[pool.submit(fit_series, task)] = k
            _collect(as_completed(futures), futures, tasks, outcomes, tick)
        except BaseException:  # Ctrl-C (or a failing callback): stop now, not after the queue
            processes = list((getattr(pool, "_processes", None) or {}).values())
            for process in processes:  # a running series would otherwise finish first
                process.terminate()
            for process in processes:
                process.join(timeout=10)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    return [o for o in outcomes if o is not None]


def _run_on_cluster(tasks: Sequence[SeriesTask], address: str,
                    tick: Callable[[int], None]) -> list[SeriesOutcome]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        from daqapp.errors import ConfigError

        raise ConfigError("--scheduler needs dask.distributed: pip install 'daqapp[cluster]'"
                          ) from None
    outcomes: list[SeriesOutcome | None] = [None] * len(tasks)
    client = Client(address, timeout="20s")
    futures: dict[Any, int] = {}
    try:
        for k, task in enumerate(tasks):
            # retries: a task of a lost worker runs again on another one
            futures[client.submit(fit_series, task, pure=False, retries=1)] = k
        _collect(as_completed(list(futures)), futures, tasks, outcomes, tick)
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        client.close()
    return [o for o in outcomes if o is not None]
