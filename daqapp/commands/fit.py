"""``daqapp fit``: the one spectrum analysis on HDF5 runs or text files, from the command line.

A run file brings its own facts (series resistance from its campaign or station, lock-in
modulation from its columns); a text file from elsewhere gets them from the options. Several
files (or sweeps) are one series of a contact, fitted cold to warm like the report does.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

from daqapp.commands._types import finite_float, whole_number

#: Temperature assumed for a table that gives none (said in the notes): the seed's 3 K.
DEFAULT_TEMPERATURE_K = 3.0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fit", help="fit BTK/TK models to dI/dV spectra (HDF5 runs or CSV/text)",
        description="Fit conductance spectra with s, d, s+s, s+d, d+s, d+d (or n-gap, e.g. "
        "s+s+s) BTK/Tanaka-Kashiwaya models through the same analysis as the window and the "
        "report: series resistance removed, critical-current dips masked, the normal-state "
        "background fitted jointly, bias offset fitted; 'all' compares the four two-gap "
        "models by AIC/BIC. FILE: a run file, or a table with bias (mV) and dI/dV (S or "
        "G/G_N) or dV/dI (Ω), or current with dV/dI or V; optional temperature (K). Several "
        "files are one temperature series (fitted cold to warm; Δ(T) and Tc at the end).")
    p.add_argument("files", nargs="+", metavar="FILE", help="HDF5 run file(s) or CSV/text")
    p.add_argument("--model", default="s+s",
                   help="s, d, s+s, s+d, d+s, d+d, n gaps like s+s+s, or 'all' (default s+s)")
    p.add_argument("--temperature", type=finite_float(0, 1500, "K", low_open=True), default=None,
                   metavar="K",
                   help="temperature for the thermal smearing (default: from the file, else "
                        "3 K with a note)")
    p.add_argument("--dimension", type=whole_number(1, 3), default=2, choices=(1, 2, 3),
                   help="Fermi-surface convention: 1D, 2D (default, the seed's) or 3D")
    norm = p.add_mutually_exclusive_group()
    norm.add_argument("--normalize", action="store_true",
                      help="raw conductance (S): fit the quadratic normal-state background "
                           "jointly with the BTK model (the default for run files)")
    norm.add_argument("--normalized", action="store_true",
                      help="the file holds G/G_N already: background held at 1 (detected "
                           "when the outer edges sit at ≈ 1)")
    p.add_argument("--series-resistance", type=finite_float(0, unit="Ω"),
                   default=None, metavar="OHM",
                   help="lead/spreading resistance in series with the junction, removed from "
                        "V and G (default: the run file's series_resistance_ohm, else 0)")
    p.add_argument("--modulation-mV", type=finite_float(0, unit="mV"),
                   default=None, metavar="MV_RMS",
                   help="lock-in ac voltage across the junction, rms mV (default: from the "
                        "run's own columns, else 0)")
    p.add_argument("--v0", default="auto", metavar="MV|auto|none",
                   help="bias offset: a number (mV) is subtracted, 'auto' (default) fits it, "
                        "'none' leaves the axis alone")
    p.add_argument("--bias-window", type=finite_float(), nargs=2, metavar=("MIN", "MAX"),
                   help="fit only junction biases in [MIN, MAX] mV")
    p.add_argument("--profile", action="store_true",
                   help="profile-likelihood 68 %% intervals of the gaps (slower; follow a "
                        "curved or bounded χ² valley, unlike ±σ)")
    p.add_argument("--normal-fraction", action="store_true",
                   help="fit a parallel normal-conductance fraction p_normal (conduction "
                        "through non-superconducting regions; held at 0 otherwise)")
    p.add_argument("--skip-bad-lines", action="store_true",
                   help="text files: leave out data lines that are not numbers (e.g. "
                        "OVERLOAD) instead of refusing the file; their count is printed")
    p.add_argument("--keep-dips", action="store_true",
                   help="do not mask critical-current dips")
    p.add_argument("--sigma", type=finite_float(0, low_open=True), default=None,
                   help="noise of one point of G/G_N (default: estimated from the scatter)")
    p.add_argument("--json", action="store_true", help="print result objects as JSON")
    p.set_defaults(func=run)


def _options(args: argparse.Namespace):
    from daqapp.analysis.fit import STANDARD_MODELS
    from daqapp.analysis.spectroscopy import AnalysisOptions
    from daqapp.errors import ConfigError

    models = STANDARD_MODELS if args.model == "all" else (args.model,)
    if args.bias_window and not args.bias_window[0] < args.bias_window[1]:
        raise ConfigError(f"--bias-window {args.bias_window[0]:g} {args.bias_window[1]:g}: "
                          "MIN must be below MAX")
    v0 = args.v0.strip().lower()
    if v0 == "none":
        v0_value: float | str | None = None
    elif v0 == "auto":
        v0_value = "auto"
    else:
        try:
            v0_value = float(v0)
        except ValueError:
            raise ConfigError(f"--v0 = {args.v0!r} is not allowed (allowed: a number of mV, "
                              "'auto' or 'none')") from None
    try:
        return AnalysisOptions(
            models=tuple(models), dimension=args.dimension,
            series_resistance_ohm=args.series_resistance, v0_mV=v0_value,
            modulation_mV_rms=args.modulation_mV,
            normalized=True if args.normalized else (False if args.normalize else None),
            mask_dips=not args.keep_dips, sigma=args.sigma, temperature_K=args.temperature,
            bias_window_mV=tuple(args.bias_window) if args.bias_window else None,
            profile=args.profile, normal_fraction=args.normal_fraction)
    except ConfigError as exc:
        raise ConfigError(f"--model: {exc}" if str(exc).startswith("models") else str(exc)) \
            from None


def _load(path: str, options, skip_bad_lines: bool = False):
    """(raw spectra, options with the file's facts) of one file."""
    import h5py

    from daqapp.analysis.spectroscopy import (
        RawSpectrum,
        options_from_run,
        raw_spectra_from_run,
    )
    from daqapp.errors import DataFileError
    from daqapp.storage import open_run
    from daqapp.storage.spectra import load_spectra

    p = Path(path)
    try:
        if p.is_file() and h5py.is_hdf5(p):
            with open_run(p) as run:
                opts = options_from_run(run, options)
                raws = raw_spectra_from_run(run)
            if not raws:
                raise DataFileError(f"{p}: no spectrum (dc_voltage with didv or dvdi) in it")
            return raws, opts
        current = _current_axis_table(p, skip_bad_lines)
        if current is not None:
            return [current], options
        notes: list[str] = []
        spectra = load_spectra(p, skip_bad_lines=skip_bad_lines, notes=notes)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        return _merged([RawSpectrum(s.bias_mV, s.conductance, "didv",
                                    temperature_K=math.nan if s.temperature_K is None
                                    else s.temperature_K,
                                    field_T=s.field_T or 0.0, label=s.label,
                                    normalized=True if s.normalized else None)
                        for s in spectra], p.stem), options
    except DataFileError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise DataFileError(f"{p}: cannot read spectra ({exc})") from None


def _merged(raws: list, stem: str) -> list:
    """Consecutive blocks of a table within 0.5 K (and at one field) are one spectrum: the
    reader splits where the temperature drifts by a few tens of mK during a sweep."""
    import numpy as np

    from daqapp.analysis.spectroscopy import SERIES_T_TOLERANCE_K, RawSpectrum

    out: list = []
    for raw in raws:
        last = out[-1] if out else None
        if (last is not None and raw.field_T == last.field_T
                and abs(raw.temperature_K - last.temperature_K) <= SERIES_T_TOLERANCE_K):
            n0, n1 = last.x.size, raw.x.size
            out[-1] = RawSpectrum(np.concatenate([last.x, raw.x]),
                                  np.concatenate([last.y, raw.y]), "didv",
                                  temperature_K=(n0 * last.temperature_K
                                                 + n1 * raw.temperature_K) / (n0 + n1),
                                  field_T=raw.field_T, label=stem, normalized=raw.normalized)
        else:
            out.append(raw)
    return out


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum() or ch == "/")


_CURRENT_UNITS = {"a": 1e3, "ma": 1.0, "ua": 1e-3, "µa": 1e-3, "μa": 1e-3, "na": 1e-6}
_VOLT_UNITS = {"v": 1e3, "mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3}
_OHM_UNITS = {"ohm": 1.0, "ω": 1.0, "kohm": 1e3, "kω": 1e3, "v/a": 1.0, "mv/ma": 1.0}


def _current_axis_table(path: Path, skip_bad_lines: bool = False):
    """A table recorded against current (the 6221 DCON procedure's form: current with dV/dI,
    or current with V) and no bias-voltage column: the spectrum of kind dvdi_i / v_i."""
    import numpy as np

    from daqapp.analysis.spectroscopy import RawSpectrum
    from daqapp.storage.textio import read_table

    table = read_table(path, skip_bad_lines=skip_bad_lines)
    if not table.has_header:
        return None
    names = [_key(n) for n in table.names]
    units = [u.strip().lower() for u in table.units]

    def find(match, unit_table=None):
        for i, (n, u) in enumerate(zip(names, units, strict=True)):
            if match(n) and (not u or unit_table is None or u in unit_table):
                return i
        return None

    cur = find(lambda n: n in ("i", "current", "ibias", "biascurrent", "idc", "i/a", "ima")
               or n.startswith("current") or n.startswith("biascurrent"), _CURRENT_UNITS)
    if cur is None:
        return None
    dvdi = find(lambda n: "dvdi" in n or "dv/di" in n or n in ("r", "rdiff"), _OHM_UNITS)
    volt = find(lambda n: n in ("v", "voltage", "vdc", "dcvoltage", "u") or
                n.startswith("voltage") or n.startswith("dcvoltage"), _VOLT_UNITS)
    didv = find(lambda n: "didv" in n or "di/dv" in n or "conduct" in n)
    if didv is not None and volt is not None:
        return None  # a voltage axis with dI/dV: the ordinary reader handles it
    if dvdi is None and volt is None:
        return None
    i_mA = table.data[:, cur] * _CURRENT_UNITS.get(units[cur] or "a", 1e3)
    t_col = find(lambda n: n in ("t", "temp", "temperature", "tk") or n.startswith("temp"),
                 {"k"})
    t = float(np.nanmean(table.data[:, t_col])) if t_col is not None else math.nan
    if dvdi is not None:
        y = table.data[:, dvdi] * _OHM_UNITS.get(units[dvdi] or "ohm", 1.0)
        kind = "dvdi_i"
    else:
        y = table.data[:, volt] * _VOLT_UNITS.get(units[volt] or "v", 1e3)
        kind = "v_i"
    if table.skipped:
        print(f"note: {table.skipped_text()}", file=sys.stderr)
    return RawSpectrum(i_mA, y, kind, temperature_K=t, label=path.stem)


def run(args: argparse.Namespace) -> int:
    from daqapp.analysis.spectroscopy import SeriesFit, prepare
    from daqapp.errors import ConfigError

    options = _options(args)
    items = []
    for path in args.files:
        raws, opts = _load(path, options, args.skip_bad_lines)
        items += [(raw, opts) for raw in raws]
    items.sort(key=lambda item: item[0].temperature_K
               if math.isfinite(item[0].temperature_K) else -math.inf)
    series = SeriesFit(options)
    out = []
    for raw, opts in items:
        assumed = opts.temperature_K is None and not math.isfinite(raw.temperature_K)
        if assumed:  # a bare two-column table: the seed's base temperature, said aloud
            opts = replace(opts, temperature_K=DEFAULT_TEMPERATURE_K)
        try:
            series.options = opts
            analysis = series.add(prepare(raw, opts))
        except ValueError as exc:
            raise ConfigError(str(exc) if raw.label and raw.label in str(exc)
                              else f"{raw.label}: {exc}") from None
        if assumed:
            analysis.notes.append(f"temperature not in the file: {DEFAULT_TEMPERATURE_K:g} K "
                                  "assumed (give --temperature)")
        if not analysis.results:
            raise ConfigError(f"{raw.label}: no model could be fitted ("
                              + "; ".join(f"{k}: {v}" for k, v in analysis.errors.items())
                              + ")")
        item = {"label": raw.label, "temperature_K": analysis.temperature_K,
                "preparation": list(analysis.prepared.steps),
                "notes": analysis.notes[len(analysis.prepared.steps):],
                "has_gap": analysis.has_gap}
        if len(opts.models) > 1:
            item.update(analysis.comparison.to_dict())
            text = analysis.comparison.summary()
        else:
            item["result"] = analysis.result().to_dict()
            text = analysis.result().summary()
        out.append(item)
        if not args.json:
            print(f"== {raw.label}")
            for s in item["preparation"]:
                print(f"   ({s})")
            print(text)
            shown = analysis.result().notes if len(opts.models) == 1 else []
            for note in item["notes"]:
                if note not in shown:  # the result's own notes are in its summary
                    print(f"   note: {note}")
    gaps = series.series()
    if len(items) > 1 and not args.json:
        print("== Δ(T): " + ", ".join(f"{t:.1f} K: {d:.2f} meV" for t, d in
                                      zip(gaps.temperature_K, gaps.delta1, strict=True)))
        print("   Δ1(T): " + gaps.tc_text("delta1"))
        for line in gaps.excluded + gaps.notes:
            print(f"   note: {line}")
    if args.json:
        json.dump(out, sys.stdout, indent=1)
        sys.stdout.write("\n")
    return 0
