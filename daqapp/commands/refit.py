"""``daqapp refit PATHS…``: refit whole campaigns and maps, serial, on N local processes or on a
dask.distributed cluster, into one results table (and, with ``--store``, into the run files).

Each folder of spectrum runs is one contact's series, fitted cold to warm in one task exactly
as ``daqapp report`` fits it (:mod:`daqapp.analysis.batch`), so the three ways of running give
the same numbers.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from daqapp.commands._options import add_progress_option
from daqapp.commands._types import finite_float, whole_number


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "refit", help="refit campaigns and maps: serial, --jobs N local processes, or "
                      "--scheduler on a dask cluster",
        description="Refit every spectrum under PATHS (run files, campaign folders, folders of "
        "campaigns) with the one spectrum analysis. A folder's spectrum runs are one "
        "contact's temperature series, fitted cold to warm in one task (warm starts stay "
        "inside it). Writes one row per spectrum and model (file, sweep, T, B, model, "
        "parameters, errors, χ², AIC, error text of a failed fit) and Δ(T) per contact to "
        "an HDF5 table; --store also appends the fits to each run file (raw data untouched).")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                   help="run file(s) or folder(s) of runs")
    p.add_argument("--models", default="s+s", metavar="M[,M…]",
                   help="comma-separated models (s, d, s+s, s+d, d+s, d+d, n gaps like "
                        "s+s+s) or 'all' for the four two-gap models (default s+s)")
    p.add_argument("--dimension", type=whole_number(1, 3), default=2, choices=(1, 2, 3),
                   help="Fermi-surface convention: 1D, 2D (default) or 3D")
    p.add_argument("--series-resistance", type=finite_float(0, 1e6, "Ohm"), default=None,
                   metavar="OHM",
                   help="series resistance to remove (default: each run file's "
                        "series_resistance_ohm, else 0)")
    p.add_argument("--max-bias", type=finite_float(0, 1e4, "mV", low_open=True), default=None,
                   metavar="MV", help="fit spectra only within ±MV")
    p.add_argument("--gap-form", default="bcs", choices=["bcs", "tanh", "alpha", "dwave"],
                   help="Δ(T) form for Tc and Δ(0) per contact (default bcs)")
    engine = p.add_mutually_exclusive_group()
    engine.add_argument("--jobs", type=whole_number(1, 4096), default=1, metavar="N",
                        help="N local worker processes: a dask LocalCluster on 127.0.0.1, or "
                             "a process pool without dask (default 1: in this process)")
    engine.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                        help="address of a running dask.distributed scheduler "
                             "(pip install 'daqapp[cluster]')")
    p.add_argument("--shared-fs", action="store_true",
                   help="the workers see the same files as this machine: send them paths and "
                        "let them read the runs (default: this process reads the runs and "
                        "sends the spectra)")
    p.add_argument("-o", "--output", type=Path, default=None, metavar="RESULTS.h5",
                   help="results table (default: <first PATH>/report/refit.h5)")
    p.add_argument("--store", action="store_true",
                   help="also append each fit to its run file (never rewrites raw data)")
    add_progress_option(p)
    p.set_defaults(func=run)


def _models(text: str) -> tuple[str, ...]:
    from daqapp.analysis.fit import STANDARD_MODELS

    if text.strip().lower() == "all":
        return tuple(STANDARD_MODELS)
    return tuple(m.strip() for m in text.split(",") if m.strip())


def _default_output(first: Path) -> Path:
    folder = first if first.is_dir() else first.parent
    return folder / "report" / "refit.h5"  # report/ is not searched for runs


def progress_bar(stream=None):
    """A one-line progress bar (fits done, rate, ETA) for :func:`run_batch`, on ``stream``
    (default: sys.stderr as it is when the bar is made)."""
    stream = stream or sys.stderr

    def show(p) -> None:
        width = 30
        filled = int(width * p.done / p.total) if p.total else width
        eta = f"{p.eta_s:5.0f} s" if math.isfinite(p.eta_s) else "    ?"
        stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {p.done}/{p.total} {p.unit} "
                     f"{p.rate:6.2f}/s  ETA {eta}")
        if p.done == p.total:
            stream.write("\n")
        stream.flush()
    return show


def _units(name: str) -> str:
    stem = name.rstrip("0123456789")
    return {"delta": "meV", "gamma": "meV", "v0": "mV"}.get(stem, "")


def write_results(path: Path, outcomes, notes: list[str]) -> int:
    """The results table: ``/results`` one row per spectrum and model (columns with a
    ``units`` attribute; parameter ``p`` and its error ``p_err``, NaN where a model has no
    such parameter or the fit failed), ``/delta_T/<n>`` Δ(T) of each contact. Returns rows."""
    import h5py
    import numpy as np

    from daqapp.errors import DataFileError
    from daqapp.storage import layout as L

    rows = [r for o in outcomes for r in o.rows()]
    params = list(dict.fromkeys(k for r in rows for k in r.values))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():  # the rule of daqapp.storage.safe_write for every output file
        raise DataFileError(f"{path}: is a symbolic link; refusing to write through it "
                            "(remove it, or choose another output)")
    with h5py.File(path, "w") as f:
        f.attrs["creator"] = "daqapp refit"
        f.attrs["notes"] = L.dumps(notes)
        g = f.create_group("results")
        g.attrs["NX_class"] = "NXcollection"
        text = {"contact": [r.contact for r in rows], "file": [r.file for r in rows],
                "model": [r.model for r in rows], "error": [r.error for r in rows]}
        for key, values in text.items():
            g.create_dataset(key, data=values, dtype=L.STR_DTYPE)
        g.create_dataset("sweep", data=np.array([r.sweep for r in rows], dtype="i8"))
        g.create_dataset("has_gap", data=np.array([r.has_gap for r in rows], dtype=bool))
        numbers = {"temperature_K": ("K", [r.temperature_K for r in rows]),
                   "field_T": ("T", [r.field_T for r in rows]),
                   "chi2": ("", [r.chi2 for r in rows]),
                   "chi2_red": ("", [r.chi2_red for r in rows]),
                   "aic": ("", [r.aic for r in rows])}
        for name in params:
            numbers[name] = (_units(name), [r.values.get(name, math.nan) for r in rows])
            numbers[f"{name}_err"] = (_units(name), [r.errors.get(name, math.nan)
                                                     for r in rows])
        for key, (units, values) in numbers.items():
            d = g.create_dataset(key, data=np.asarray(values, dtype="f8"))
            d.attrs["units"] = units
        series = f.create_group("delta_T")
        for n, o in enumerate(outcomes):
            s = series.create_group(str(n))
            s.attrs["contact"] = o.contact
            gaps = o.gaps
            for key, values, units in (("temperature", gaps.temperature_K, "K"),
                                       ("delta1", gaps.delta1, "meV"),
                                       ("delta1_err", gaps.delta1_err, "meV"),
                                       ("delta2", gaps.delta2, "meV"),
                                       ("delta2_err", gaps.delta2_err, "meV")):
                if values is not None:
                    s.create_dataset(key, data=np.asarray(values, dtype="f8"))
                    s[key].attrs["units"] = units
            fit = gaps.fits.get("delta1")
            s.attrs["tc_K"] = float(fit.tc_K) if fit is not None and \
                gaps.tc_determined.get("delta1") else math.nan
    return len(rows)


def store_fits(outcomes) -> int:
    """Each fit appended to its run file under the FitWorker's name ``sweepNNNN_<model>``
    (the latest fit of a name is the one shown); returns the number stored."""
    from daqapp.storage import append_fit

    stored = 0
    for o in outcomes:
        for item, analysis in zip(o.items, o.analyses, strict=True):
            if analysis is None or item.path is None:
                continue
            for model in analysis.results:
                sweep = int(item.raw.sweep)
                append_fit(item.path, f"sweep{sweep:04d}_{model}",
                           {**analysis.to_dict(model), "sweep": sweep,
                            "origin": "daqapp refit"})
                stored += 1
    return stored


def run(args: argparse.Namespace) -> int:
    from daqapp.analysis.batch import run_batch, series_tasks
    from daqapp.analysis.spectroscopy import AnalysisOptions
    from daqapp.errors import ConfigError, DataFileError

    for path in args.paths:
        if not path.exists():
            raise DataFileError(f"{path}: no such file or folder")
    try:
        options = AnalysisOptions(models=_models(args.models), dimension=args.dimension,
                                  series_resistance_ohm=args.series_resistance,
                                  max_bias_mV=args.max_bias, gap_form=args.gap_form)
    except ConfigError as exc:
        raise ConfigError(f"--models: {exc}" if str(exc).startswith("models") else str(exc)) \
            from None
    if args.scheduler is not None and "://" not in args.scheduler:
        raise ConfigError(f"--scheduler = {args.scheduler!r}: allowed is a scheduler address "
                          "like tcp://HOST:PORT")
    tasks, notes = series_tasks(args.paths, options, shared_fs=args.shared_fs)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if not tasks:
        raise DataFileError(f"{', '.join(map(str, args.paths))}: no spectrum runs found")
    outcomes = run_batch(tasks, jobs=args.jobs, scheduler=args.scheduler,
                         progress=None if args.no_progress else progress_bar(),
                         note=lambda line: print(f"note: {line}", file=sys.stderr))
    for note in (n for o in outcomes for n in o.notes):  # what the workers could not read
        print(f"note: {note}", file=sys.stderr)
        notes.append(note)
    outcomes = [o for o in outcomes if o.items]  # --shared-fs: folders without spectra
    if not outcomes:
        raise DataFileError(f"{', '.join(map(str, args.paths))}: no spectrum runs found")
    output = args.output or _default_output(args.paths[0])
    n_rows = write_results(output, outcomes, notes)
    failed = sum(1 for o in outcomes for e in o.errors if e)
    print(f"{n_rows} fits of {sum(len(o.items) for o in outcomes)} spectra in "
          f"{len(outcomes)} contacts "
          f"→ {output}" + (f" ({failed} spectra failed: see the error column)" if failed else ""))
    for o in outcomes:
        gaps = o.gaps
        print(f"  {o.contact}: Δ1(T) " + ", ".join(
            f"{t:.1f} K: {d:.2f} meV" for t, d in zip(gaps.temperature_K, gaps.delta1,
                                                      strict=True)) + f"; {gaps.tc_text()}")
    if args.store:
        print(f"{store_fits(outcomes)} fits appended to the run files")
    return 0
