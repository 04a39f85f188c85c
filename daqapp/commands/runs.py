"""``daqapp runs``: list a folder of run files, show one, export, import and recover them.

Everything printed from a file goes through ``h5safe.escape``: attributes of a file received
from elsewhere must not drive the terminal (ANSI escapes, carriage returns).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from typing import Any

from daqapp.commands._types import finite_float, whole_number
from daqapp.storage.h5safe import escape


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "runs", help="list, inspect and export HDF5 run files",
        description="Inspect daqapp HDF5 run files (also while they are being written).")
    sub = parser.add_subparsers(dest="runs_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])

    p_list = sub.add_parser("list", help="one line per run file in a folder",
                            description="Table of the run files in DIR: file, procedure, "
                            "status (interrupted = the writer died), start, rows, sample.")
    p_list.add_argument("dir", metavar="DIR", help="folder holding .h5 run files")
    p_list.set_defaults(func=_list)

    p_show = sub.add_parser("show", help="attributes, parameters, columns, fits, log of a run",
                            description="Everything about one run file in readable form.")
    p_show.add_argument("file", metavar="FILE", help="run file (.h5)")
    p_show.add_argument("--log-lines", type=whole_number(0, 1_000_000), default=10, metavar="N",
                        help="last N log lines to print (default 10)")
    p_show.add_argument("--snapshot", action="store_true",
                        help="also print the start and end instrument snapshots (JSON)")
    p_show.set_defaults(func=_show)

    p_export = sub.add_parser("export", help="write a run's columns to CSV or netCDF",
                              description="CSV with one column per run column, 'name (units)' "
                              "headers and the run's attributes as # comment lines; or, with "
                              "--format netcdf, a netCDF-4 file of the run as an "
                              "xarray.Dataset (coordinates, units, run attributes; needs the "
                              "xarray extra).")
    p_export.add_argument("file", metavar="FILE", help="run file (.h5)")
    p_export.add_argument("--output", "-o", metavar="OUT",
                          help="output file (default: FILE with .csv or .nc suffix)")
    p_export.add_argument("--format", choices=("csv", "netcdf"), default="csv",
                          help="output format (default csv)")
    p_export.set_defaults(func=_export)

    p_recover = sub.add_parser("recover", help="make an interrupted run readable by any tool",
                               description="Copy a run whose writer was killed, object by "
                               "object, into a new cleanly closed file (status 'interrupted') "
                               "that HDFView, h5web and plain h5py open, with every row and "
                               "attribute that still reads; the original stays untouched. "
                               "With --in-place, clear the file's 'open for write' flags "
                               "instead (only once its writer is gone).")
    p_recover.add_argument("file", metavar="FILE", help="interrupted run file (.h5)")
    p_recover.add_argument("--output", "-o", metavar="H5",
                           help="new file (default: FILE_recovered.h5)")
    p_recover.add_argument("--in-place", action="store_true",
                           help="fix FILE itself (no copy): clear the flags a killed writer "
                           "left set, trim unreadable rows, mark it interrupted")
    p_recover.set_defaults(func=_recover)

    p_import = sub.add_parser("import", help="turn a text/CSV spectra file into a run file",
                              description="Read spectra from text (bias in mV, conductance, "
                              "optional temperature) and write them as a run file, one sweep "
                              "per spectrum, so they can be plotted, refitted and annotated "
                              "like measured runs.")
    p_import.add_argument("file", metavar="TEXT", help="CSV/TSV/whitespace spectra file")
    p_import.add_argument("--temperature", type=finite_float(0, 1500, "K", low_open=True),
                          default=None, metavar="K",
                          help="temperature of the spectra, for a file that records none")
    p_import.add_argument("--skip-bad-lines", action="store_true",
                          help="leave out data lines that are not numbers (e.g. OVERLOAD) "
                               "instead of refusing the file; their count is printed")
    p_import.add_argument("--output", "-o", metavar="H5",
                          help="run file to write (default: TEXT with .h5 suffix)")
    p_import.set_defaults(func=_import)


def _short_time(iso: str) -> str:
    return iso[:19].replace("T", " ") if iso else "-"


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _list(args: argparse.Namespace) -> int:
    from daqapp.storage import list_runs
    from daqapp.storage.recover import needs_recovery

    runs = list_runs(args.dir)
    if not runs:
        print(f"no run files in {args.dir}")
        return 0
    rows = [[escape(os.path.basename(r.path)), escape(r.procedure.rsplit(".", 1)[-1]) or "-",
             escape(r.status), escape(_short_time(r.start)), str(r.n_rows),
             escape(r.sample) or "-"] for r in runs]
    print(_table(rows, ["file", "procedure", "status", "start", "rows", "sample"]))
    for r in runs:
        name = escape(os.path.basename(r.path))
        if r.status == "unreadable":
            print(f"{name}: skipped: {escape(r.error)}")
        elif r.status == "interrupted" and needs_recovery(r.path):
            print(f"{name}: writer was killed; other HDF5 tools refuse it until "
                  f"`daqapp runs recover --in-place {escape(r.path)}`")
    return 0


def _fmt(value: Any) -> str:
    """A value from the file as one printable line (control characters escaped)."""
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, (list, dict)):
        try:
            text = json.dumps(value)
        except (TypeError, ValueError, RecursionError):
            text = "<unprintable>"
        return text if len(text) <= 70 else text[:67] + "..."
    return escape(str(value))


def _show(args: argparse.Namespace) -> int:
    import numpy as np

    from daqapp.storage import open_run

    with open_run(args.file) as run:
        a = run.attrs
        status = run.status
        if status == "interrupted":
            status += " (file says running, but no process is writing it: the run did not finish)"
        print(f"run file     {escape(run.path)}")
        print(f"procedure    {_fmt(run.procedure)}")
        print(f"status       {_fmt(status)}")
        if a.get("error"):
            print(f"error        {_fmt(a['error'])}")
        print(f"start        {_fmt(run.start_time)}")
        print(f"end          {_fmt(run.end_time) or '-'}")
        for key in ("operator", "sample", "cell", "pressure_GPa"):
            print(f"{key:<12} {_fmt(a.get(key, '')) or '-'}")
        print(f"format       {_fmt(a.get('format'))} v{_fmt(a.get('format_version'))}, "
              f"daqapp {_fmt(a.get('software_version'))}")
        extra = run.metadata
        for key in ("operator", "sample", "cell", "pressure_GPa"):
            extra.pop(key, None)
        if extra:
            print(f"metadata     {_fmt(extra)}")

        params = run.parameters
        if params:
            print("\nparameters")
            print(_table([[_fmt(n), _fmt(p.get("value")), _fmt(p.get("units", ""))]
                          for n, p in params.items()], ["name", "value", "units"]))

        print(f"\ncolumns ({run.n_rows} rows)")
        rows = []
        for name, units in run.units.items():
            col = run.column(name)
            finite = col[np.isfinite(col)]
            rng = f"{finite.min():.6g} .. {finite.max():.6g}" if finite.size else "-"
            rows.append([_fmt(name), _fmt(units) or "-", str(col.shape[0]), rng])
        print(_table(rows, ["name", "units", "length", "range"]))

        sweeps = run.sweeps()
        if sweeps:
            print(f"\nsweeps ({len(sweeps)}, axis {_fmt(run.sweep_axis)})")
            print(_table([[str(s.index), str(s.n_points), _fmt(s.temperature), _fmt(s.field)]
                          for s in sweeps[:20]], ["sweep", "points", "T (K)", "B (T)"]))
            if len(sweeps) > 20:
                print(f"... {len(sweeps) - 20} more")

        fits = run.fit_list
        if fits:
            print(f"\nfits ({len(fits)})")
            for name, fit, _ in fits:
                stats = ", ".join(f"{k}={_fmt(fit[k])}" for k in ("model", "dimension", "chi2_red",
                                                                   "aic", "bic") if k in fit)
                print(f"  {_fmt(name)}: {stats}")
                params = fit.get("params")
                for pname, p in (params if isinstance(params, dict) else {}).items():
                    if isinstance(p, dict):
                        err = p.get("stderr")
                        pm = f" ± {_fmt(err)}" if err is not None else ""
                        fixed = "" if p.get("vary", True) else " (fixed)"
                        print(f"      {_fmt(pname)} = {_fmt(p.get('value'))}{pm}{fixed}")

        log_lines = run.log
        if log_lines and args.log_lines > 0:
            shown = log_lines[-args.log_lines:]
            print(f"\nlog (last {len(shown)} of {len(log_lines)})")
            for entry in shown:
                stamp = _stamp(entry.time)
                print(f"  {stamp} {_fmt(entry.level):<7} {_fmt(entry.message)}")

        if args.snapshot:
            snaps = run.snapshots
            print("\nstart snapshot")
            print(json.dumps(snaps["start"], indent=2))
            print("\nend snapshot")
            print(json.dumps(snaps["end"], indent=2) if snaps["end"] is not None else "-")
    return 0


def _stamp(t: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
    except (OverflowError, OSError, ValueError):  # NaN or absurd times from a damaged file
        return "????-??-?? ??:??:??"


def _export(args: argparse.Namespace) -> int:
    from daqapp.storage import export_csv, export_netcdf

    out = (export_netcdf if args.format == "netcdf" else export_csv)(args.file, args.output)
    print(f"wrote {out}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from daqapp.storage.spectra import spectra_to_run

    notes: list[str] = []
    out = spectra_to_run(args.file, args.output, temperature_K=args.temperature,
                         skip_bad_lines=args.skip_bad_lines, notes=notes)
    for note in notes:
        print(f"note: {escape(note)}")
    print(f"wrote {out}")
    return 0


def _recover(args: argparse.Namespace) -> int:
    from daqapp.storage.recover import recover_run

    result = recover_run(args.file, args.output, in_place=args.in_place)
    for line in result.lost:
        print(f"not recovered: {escape(line)}")
    what = "fixed in place" if result.in_place else "wrote"
    print(f"{what} {escape(str(result.path))} ({result.n_rows} rows; "
          f"{len(result.lost)} object(s) unreadable)")
    return 0
