"""Refit many runs at once: contacts' temperature series as tasks, serial, local processes or a
dask.distributed cluster, with the same numbers from each.

The unit of work is one contact's series (:class:`SeriesTask`), fitted cold to warm by
:func:`fit_series` exactly as the report does (warm starts never cross a task). A contact is
the spectrum runs of one folder — what ``daqapp report FOLDER`` fits as one series. Tasks hold
arrays (:class:`~daqapp.analysis.spectroscopy.RawSpectrum`), never open HDF5 files, so workers
need no access to the data. A spectrum whose fit fails is kept with its error text; the batch
goes on.

With ``shared_fs`` a task names its run files instead (:class:`FileSeriesTask`) and the worker
reads them: for clusters whose nodes see the same files, so the client ships paths, not data.

``jobs=N`` starts a dask LocalCluster of N single-threaded worker processes on 127.0.0.1 (a
process pool where dask is not installed); ``scheduler=ADDRESS`` uses a running cluster. Both
run through one client loop.

Why fits ran 2.2–2.5× slower on dask workers (issue 14): a nanny starts each worker with
``MALLOC_TRIM_THRESHOLD_=65536``. Setting any malloc threshold by environment switches off
glibc's dynamic mmap threshold, so every array above 128 KiB (the BTK energy × bias grids) is
mmapped, page-faulted in and unmapped again, every time. The variable cannot be removed from a
running worker, and dask's environment-variable override does not reach it either
(``DASK_..._MALLOC_TRIM_THRESHOLD_`` is lower-cased into a new key, the upper-case default
stays), so :func:`fit_series` restores large thresholds with ``mallopt`` in any process started
that way — on every cluster, whoever started its workers. The LocalCluster's workers are also
spawned without the variable, and inherit this process's BLAS/OpenMP thread settings, so
``jobs=N`` gives serial's numbers to the bit: a different thread count changes the summation
order of threaded BLAS (spectra of a few hundred points and more), hence the last digits of χ²
and of a poorly determined parameter. Workers of an external cluster run with
``OMP_NUM_THREADS=1`` unless told otherwise; to compare such a cluster bit for bit, run serial
with ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1`` too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import sys
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
#: dask's nanny sets these in its workers' environment; unset for the LocalCluster, so its
#: workers inherit this process's values (same BLAS threads: serial's numbers to the bit).
DASK_PRE_SPAWN_UNSET = ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                        "OPENBLAS_NUM_THREADS")
#: glibc's largest dynamic mmap threshold on 64-bit systems (what the dynamic rule reaches),
#: and the trim threshold it pairs with (twice that).
_MMAP_THRESHOLD = 32 * 1024 * 1024
_TRIM_THRESHOLD = 2 * _MMAP_THRESHOLD
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_malloc_checked = False

#: dask worker settings for fitting. A worker runs a task in an executor thread while its event
#: loop thread wakes for dask's statistical profiler (every 10 ms, walking every thread's stack)
#: and its tick (every 20 ms); each wake takes the GIL from the fitting thread, which numpy
#: drops and retakes for every array operation: about 700 context switches per second, and fits
#: 6–15 % slower than in a plain process. The LocalCluster of ``jobs=N`` starts its workers
#: with these; for a cluster started by hand, :data:`QUIET_WORKER_ENV` says the same.
QUIET_WORKER_CONFIG = {"distributed.worker.profile.enabled": False,
                       "distributed.admin.tick.interval": "1s"}
#: :data:`QUIET_WORKER_CONFIG` as the environment of ``dask worker`` (what the README gives).
QUIET_WORKER_ENV = {"DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False",
                    "DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL": "1s"}


def restore_malloc_thresholds() -> bool:
    """In a process started with ``MALLOC_TRIM_THRESHOLD_`` set (a dask nanny's worker), give
    glibc large mmap/trim thresholds again, so BTK grids are reused instead of mmapped and
    unmapped per allocation. True if applied; a no-op elsewhere and on non-glibc systems."""
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


def _once_per_process() -> None:
    global _malloc_checked
    if not _malloc_checked:
        _malloc_checked = True
        restore_malloc_thresholds()


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
class FileSeriesTask:
    """One contact's series named by its run files, read by the worker (``shared_fs``): for a
    cluster whose nodes see the same filesystem, so the client ships paths, not arrays."""

    contact: str
    paths: list[str]
    options: AnalysisOptions | None = None

    def __len__(self) -> int:
        return len(self.paths)


@dataclass(eq=False)
class SeriesOutcome:
    """The fits of one task: per item (same order) the analysis or the error, and Δ(T)."""

    contact: str
    items: list[SeriesItem]
    analyses: list[SpectrumAnalysis | None]
    errors: list[str]
    gaps: GapSeries = field(default_factory=GapSeries)
    #: what the worker could not read (``shared_fs``: files without spectra or temperature)
    notes: list[str] = field(default_factory=list)

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
    _once_per_process()
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


def fit_file_series(task: FileSeriesTask) -> SeriesOutcome:
    """Read the task's run files here (the worker), then :func:`fit_series` their spectra."""
    items, notes = _load_series([Path(p) for p in task.paths], task.options)
    outcome = fit_series(SeriesTask(task.contact, items))
    outcome.notes = notes
    return outcome


def _fit_task(task: SeriesTask | FileSeriesTask) -> SeriesOutcome:
    """The one function every engine runs: arrays shipped, or files read where it runs."""
    if isinstance(task, FileSeriesTask):
        return fit_file_series(task)
    return fit_series(task)


def _failed(task: SeriesTask | FileSeriesTask, error: str) -> SeriesOutcome:
    """A task whose worker failed as a whole: every spectrum carries the error (for a task of
    files, whose spectra were never read, the note names the files)."""
    if isinstance(task, FileSeriesTask):
        return SeriesOutcome(task.contact, [], [], [], notes=[
            f"{p}: not fitted ({error})" for p in task.paths])
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


def _load_series(paths: Sequence[Path], options: AnalysisOptions | None
                 ) -> tuple[list[SeriesItem], list[str]]:
    """The spectra of ``paths`` with a temperature, and notes on what was left out."""
    items: list[SeriesItem] = []
    notes: list[str] = []
    for path in paths:
        try:
            found = run_file_spectra(path, options)
        except Exception as exc:  # noqa: BLE001 - one bad file must not sink the batch
            notes.append(f"{path}: spectra not read ({exc})")
            continue
        for item in found:
            if math.isfinite(item.temperature_K):
                items.append(item)
            else:
                notes.append(f"{path.name} sweep {item.raw.sweep}: no temperature, not fitted")
    return items, notes


def series_tasks(paths: Iterable[Path | str], options: AnalysisOptions | None = None,
                 shared_fs: bool = False
                 ) -> tuple[list[SeriesTask] | list[FileSeriesTask], list[str]]:
    """(one task per contact, notes): the spectrum runs under ``paths`` grouped by folder.

    Runs without spectra (R–T, I–V) are left out; an unreadable file and spectra without a
    temperature are named in the notes. With ``shared_fs`` nothing is read here: each task
    names its folder's run files (absolute paths) and the worker reads them; its notes come
    back in the outcome.
    """
    by_folder: dict[Path, list[Path]] = {}
    for path in find_run_files(paths):
        by_folder.setdefault(path.parent, []).append(path)
    if shared_fs:
        root = _common_root(list(by_folder))
        return [FileSeriesTask(_contact_name(folder, root),
                               [str(p.resolve()) for p in files], options)
                for folder, files in by_folder.items()], []
    groups: dict[Path, list[SeriesItem]] = {}
    notes: list[str] = []
    for folder, files in by_folder.items():
        items, more = _load_series(files, options)
        notes += more
        if items:
            groups[folder] = items
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
    """How far a batch is: spectra fitted (or failed), of how many, fits/s and seconds left.

    With ``shared_fs`` the client never sees the spectra before they are fitted, so progress
    counts run files (``unit = "files"``)."""

    done: int
    total: int
    rate: float
    eta_s: float
    unit: str = "spectra"


Task = SeriesTask | FileSeriesTask


def run_batch(tasks: Sequence[Task], jobs: int = 1, scheduler: str | None = None,
              progress: Callable[[Progress], None] | None = None,
              note: Callable[[str], None] | None = None) -> list[SeriesOutcome]:
    """Every task fitted; outcomes in task order.

    ``jobs=1`` and no ``scheduler``: in this process. ``jobs=N``: a LocalCluster of N
    single-threaded worker processes on 127.0.0.1 (N spawned processes where dask is not
    installed). ``scheduler="tcp://HOST:PORT"``: an existing dask.distributed cluster. All run
    the same :func:`fit_series` on the same arrays (or, for :class:`FileSeriesTask`, the same
    files), so they give the same numbers. A task of a lost worker runs again on another one.
    Ctrl-C cancels what has not run and shuts the workers down before ``KeyboardInterrupt``
    propagates. ``note`` gets one line about the cluster where its workers are set up to fit
    slower than they could (see :data:`QUIET_WORKER_CONFIG`).
    """
    if jobs < 1:
        from daqapp.errors import ConfigError

        raise ConfigError(f"jobs = {jobs}: allowed is a whole number >= 1")
    total = sum(len(t) for t in tasks)
    unit = "files" if any(isinstance(t, FileSeriesTask) for t in tasks) else "spectra"
    started = time.perf_counter()
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            elapsed = max(time.perf_counter() - started, 1e-9)
            rate = done / elapsed
            progress(Progress(done, total, rate, (total - done) / rate if rate > 0
                              else math.inf, unit))

    def begin() -> None:
        if progress is not None:
            progress(Progress(0, total, 0.0, math.inf, unit))

    if scheduler is not None:  # begins after its note on the workers, not inside the bar
        return _run_on_cluster(tasks, scheduler, begin, tick, note)
    begin()
    if jobs == 1 or len(tasks) <= 1:
        outcomes = []
        for task in tasks:
            outcomes.append(_fit_task(task))
            tick(len(task))
        return outcomes
    if _have_dask():
        return _run_on_local_cluster(tasks, min(jobs, len(tasks)), tick)
    return _run_in_processes(tasks, jobs, tick)


def _have_dask() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


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


def _collect(done: Iterable[Any], futures: dict[Any, int], tasks: Sequence[Task],
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


def _run_in_processes(tasks: Sequence[Task], jobs: int,
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
                futures[pool.submit(_fit_task, task)] = k
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


def _run_on_local_cluster(tasks: Sequence[Task], workers: int,
                          tick: Callable[[int], None]) -> list[SeriesOutcome]:
    with local_cluster(workers) as client:
        return _run_with_client(client, tasks, tick)


@contextmanager
def local_cluster(workers: int) -> Iterator[Any]:
    """A client of a LocalCluster of ``workers`` single-threaded worker processes on
    127.0.0.1, closed on exit; the workers inherit this process's environment (see
    :data:`DASK_PRE_SPAWN_UNSET`) without ``MALLOC_TRIM_THRESHOLD_``."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    unset = dict.fromkeys(DASK_PRE_SPAWN_UNSET)
    # the in-process scheduler logs its closing at INFO after silence_logs has let go
    dask_log = logging.getLogger("distributed")
    level = dask_log.level
    dask_log.setLevel(max(logging.WARNING, level))
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": unset,
                              **QUIET_WORKER_CONFIG}), worker_environment():
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address=None,
                                   silence_logs=logging.ERROR)
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
    finally:
        dask_log.setLevel(level)


def wakes_for_dask(dask_worker: Any) -> bool:
    """On a dask worker (``client.run``): True if its profiler or a tick under 0.5 s wakes its
    event loop while a task runs (not the settings of :data:`QUIET_WORKER_CONFIG`)."""
    import dask
    from dask.utils import parse_timedelta

    tick_s = parse_timedelta(dask.config.get("distributed.admin.tick.interval"), default="ms")
    return "profile" in dask_worker.periodic_callbacks or tick_s < 0.5


def worker_settings_note(client: Any) -> str | None:
    """One line naming how many of the cluster's workers fit slower than they could, and the
    environment to start them with; None when all are set up for fitting."""
    woken = client.run(wakes_for_dask)
    slow = sum(bool(v) for v in woken.values())
    if not slow:
        return None
    env = " ".join(f"{k}={v}" for k, v in QUIET_WORKER_ENV.items())
    return (f"{slow} of {len(woken)} workers run dask's 10 ms profiler or a fast tick, which "
            f"slows fits there by 5-15 %: start them with {env}")


def _run_on_cluster(tasks: Sequence[Task], address: str, begin: Callable[[], None],
                    tick: Callable[[int], None], note: Callable[[str], None] | None = None
                    ) -> list[SeriesOutcome]:
    try:
        from distributed import Client
    except ImportError:
        from daqapp.errors import ConfigError

        raise ConfigError("--scheduler needs dask.distributed: pip install 'daqapp[cluster]'"
                          ) from None
    client = Client(address, timeout="20s")
    try:
        if note is not None:
            found = worker_settings_note(client)
            if found:
                note(found)
        begin()
        return _run_with_client(client, tasks, tick)
    finally:
        client.close()


def _run_with_client(client: Any, tasks: Sequence[Task],
                     tick: Callable[[int], None]) -> list[SeriesOutcome]:
    from distributed import as_completed

    outcomes: list[SeriesOutcome | None] = [None] * len(tasks)
    futures: dict[Any, int] = {}
    try:
        for k, task in enumerate(tasks):
            # retries: a task of a lost worker runs again on another one
            futures[client.submit(_fit_task, task, pure=False, retries=1)] = k
        _collect(as_completed(list(futures)), futures, tasks, outcomes, tick)
    except BaseException:
        client.cancel(list(futures))
        raise
    return [o for o in outcomes if o is not None]
