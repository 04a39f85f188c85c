"""Spectra for fitting, from a daqapp run file or a text/CSV file from elsewhere.

Both sources end in the same in-memory form, ``SpectrumData`` (bias in mV, conductance,
temperature, field), so ``daqapp fit`` and the GUI's fit panel do not care where a spectrum
came from. A run gives one spectrum per sweep; a text file one per temperature (or per
blank-line-separated block).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daqapp.errors import DataFileError
from daqapp.storage import layout as L
from daqapp.storage.h5safe import escape, has_hdf5_signature
from daqapp.storage.textio import TextTable, read_table

#: A spectrum longer than this is refused (fits cost grows with the points: a 10⁷-point
#: spectrum took over 600 s); real lock-in spectra have 10²-10⁴ points.
MAX_POINTS_PER_SPECTRUM = 100_000
#: A file with more spectra than this is refused (one run sweep each when imported).
MAX_SPECTRA_PER_FILE = 10_000
#: Two readings belong to one spectrum if their temperatures differ by less than this.
T_TOLERANCE_K = 0.02
T_TOLERANCE_REL = 0.005


@dataclass
class SpectrumData:
    """One dI/dV spectrum: bias in mV, conductance (S, or G/G_N if ``normalized``)."""

    bias_mV: np.ndarray
    conductance: np.ndarray
    temperature_K: float | None
    field_T: float | None
    normalized: bool
    label: str

    def __len__(self) -> int:
        return int(self.bias_mV.shape[0])


def load_spectra(path: str | os.PathLike[str], skip_bad_lines: bool = False,
                 notes: list[str] | None = None) -> list[SpectrumData]:
    """All spectra in a run file (HDF5) or a text table; DataFileError says which file and why.

    ``skip_bad_lines`` (text only) leaves out data lines that are not numbers; what was left
    out is said in ``notes``."""
    p = Path(path)
    if not p.exists():
        raise DataFileError(f"{p}: no such file")
    if p.is_dir():
        raise DataFileError(f"{p}: is a folder, not a spectrum file")
    if has_hdf5_signature(p):
        spectra = _from_run(p)
    else:
        table = read_table(p, skip_bad_lines=skip_bad_lines)
        if table.skipped and notes is not None:
            notes.append(table.skipped_text())
        spectra = _from_table(table)
    spectra = [s for s in spectra if len(s) > 0]
    if not spectra:
        raise DataFileError(f"{p}: no spectrum with finite bias and conductance points")
    if len(spectra) > MAX_SPECTRA_PER_FILE:
        raise DataFileError(f"{p}: {len(spectra)} spectra (blank-line blocks or temperatures); "
                            f"at most {MAX_SPECTRA_PER_FILE} per file are read")
    for s in spectra:
        if len(s) > MAX_POINTS_PER_SPECTRUM:
            raise DataFileError(f"{p}: spectrum {s.label!r} has {len(s)} points; at most "
                                f"{MAX_POINTS_PER_SPECTRUM} per spectrum are read (decimate "
                                "or split it)")
    return spectra


# ------------------------------------------------------------------------------ run files
def _finite_or_none(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _clean(bias: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = np.isfinite(bias) & np.isfinite(g)
    return np.asarray(bias[keep], dtype=float), np.asarray(g[keep], dtype=float)


def _run_columns(run, path: Path) -> tuple[str, float, str, bool]:
    """(bias column, factor to mV, conductance column, conductance is dV/dI)."""
    units = run.units
    candidates = [run.sweep_axis] if run.sweep_axis else []
    candidates += ["dc_voltage", "bias_voltage", "voltage", "bias"]
    bias = factor = None
    for name in candidates:
        if name in units:
            try:
                factor = L.units_to_mV(units[name] or "V")
            except ValueError:
                continue
            bias = name
            break
    if bias is None:
        raise DataFileError(f"{path}: no junction voltage column for the bias axis "
                            f"(columns: {escape(', '.join(units))})")
    if "didv" in units:
        return bias, factor, "didv", False
    if "dvdi" in units:
        return bias, factor, "dvdi", True
    siemens = [n for n, u in units.items() if u.strip() in ("S", "mS", "uS")]
    if siemens:
        return bias, factor, siemens[0], False
    raise DataFileError(f"{path}: no conductance column (didv, dvdi, or units S) "
                        f"(columns: {escape(', '.join(units))})")


def _normalized_flag(run) -> bool:
    for source in (run.attrs, run.metadata):
        value = source.get("normalized")
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
    param = run.parameters.get("normalized")
    return bool(param and param.get("value"))


def _from_run(path: Path) -> list[SpectrumData]:
    from daqapp.storage.reader import open_run

    with open_run(path) as run:
        bias_col, factor, g_col, inverted = _run_columns(run, path)
        normalized = _normalized_flag(run)
        sweeps = run.sweeps()
        groups: list[tuple[str, dict[str, np.ndarray], float, float]] = []
        if sweeps:
            for s in sweeps:
                groups.append((f"sweep {s.index}", s.columns, s.temperature, s.field))
        else:
            cols = run.columns
            if L.SWEEP_COLUMN in cols and np.isfinite(cols[L.SWEEP_COLUMN]).any():
                idx = cols[L.SWEEP_COLUMN]
                for s in np.unique(idx[np.isfinite(idx)]):
                    sel = idx == s
                    groups.append((f"sweep {int(s)}", {k: v[sel] for k, v in cols.items()},
                                   math.nan, math.nan))
            else:
                groups.append(("", cols, math.nan, math.nan))
        out = []
        for tag, cols, temperature, fld in groups:
            if not math.isfinite(temperature) and L.TEMPERATURE_COLUMN in cols:
                temperature = _nanmean(cols[L.TEMPERATURE_COLUMN])
            if not math.isfinite(fld) and L.FIELD_COLUMN in cols:
                fld = _nanmean(cols[L.FIELD_COLUMN])
            g = cols[g_col]
            if inverted:
                with np.errstate(divide="ignore", invalid="ignore"):
                    g = 1.0 / g
            bias, g = _clean(cols[bias_col] * factor, g)
            out.append(SpectrumData(bias, g, _finite_or_none(temperature),
                                    _finite_or_none(fld), normalized,
                                    _label(path, tag, temperature, fld)))
        return out


def _nanmean(a: np.ndarray) -> float:
    good = a[np.isfinite(a)]
    return float(good.mean()) if good.size else math.nan


def _label(path: Path, tag: str, temperature: float | None, fld: float | None) -> str:
    parts = [path.stem]
    if tag:
        parts.append(tag)
    if temperature is not None and math.isfinite(temperature):
        parts.append(f"T={temperature:.3g} K")
    if fld is not None and math.isfinite(fld):
        parts.append(f"B={fld:.3g} T")
    return ", ".join(parts)


# ------------------------------------------------------------------------------ text files
def _key(name: str) -> str:
    return re.sub(r"[\s_\-\.]", "", name.lower())


def _is_voltage_unit(unit: str) -> bool:
    try:
        L.units_to_mV(unit)
        return True
    except ValueError:
        return False


def _find(table: TextTable, match, unit_ok=lambda u: True) -> int | None:
    for i, (name, unit) in enumerate(zip(table.names, table.units, strict=True)):
        if match(_key(name)) and (not unit or unit_ok(unit)):
            return i
    return None


def _text_columns(table: TextTable) -> tuple[int, float, int, bool, bool, int | None, int | None]:
    """(bias idx, factor to mV, conductance idx, is dV/dI, normalized, T idx, B idx)."""
    p = table.path
    ncols = table.data.shape[1]
    if not table.has_header:
        if ncols < 2:
            raise DataFileError(f"{p}: need at least 2 columns (bias mV, conductance), "
                                f"found {ncols}")
        return 0, 1.0, 1, False, False, (2 if ncols >= 3 else None), None
    bias = _find(table, lambda k: k in ("dcvoltage", "biasvoltage", "vbias", "biasv", "vdc",
                                        "bias", "v", "voltage", "u", "ubias", "e", "energy"),
                 _is_voltage_unit)
    if bias is None:
        bias = _find(table, lambda k: "bias" in k or k.startswith("v"), _is_voltage_unit)
    g = _find(table, lambda k: k in ("didv", "di/dv", "g", "conductance", "ggn", "g/gn", "gn",
                                     "gnorm", "normg", "sigma", "normalizedconductance",
                                     "normalisedconductance", "dids"))
    inverted = False
    if g is None:
        g = _find(table, lambda k: "didv" in k or "di/dv" in k or "conduct" in k
                  or k.startswith("g"))
    if g is None:
        g = _find(table, lambda k: k in ("dvdi", "dv/di", "r", "rdiff") or "dvdi" in k
                  or "dv/di" in k)
        inverted = g is not None
    if bias is None or g is None:
        what = "bias voltage" if bias is None else "conductance"
        raise DataFileError(f"{p}: cannot tell which column is the {what} "
                            f"(header: {escape(', '.join(table.names))}); name columns e.g. "
                            "'bias (mV)', 'dI/dV', 'T (K)'")
    factor = L.units_to_mV(table.units[bias]) if table.units[bias] else 1.0
    gname = _key(table.names[g])
    normalized = any(s in gname for s in ("norm", "/gn", "ggn", "gn")) or gname == "gn"
    temperature = _find(table, lambda k: k in ("t", "temp", "temperature", "tk", "tsample",
                                               "sampletemperature") or k.startswith("temp"),
                        lambda u: u.strip() in ("K", "mK"))
    fld = _find(table, lambda k: k in ("b", "field", "h", "bfield", "magneticfield", "mu0h"),
                lambda u: u.strip() in ("T", "mT"))
    return bias, factor, g, inverted, normalized, temperature, fld


def _temperature_groups(t: np.ndarray, starts: list[int]) -> list[tuple[int, int]]:
    """Consecutive row ranges at one temperature; blank-line blocks always split."""
    bounds = sorted(set(starts) | {0})
    ranges = []
    for b0, b1 in zip(bounds, [*bounds[1:], len(t)], strict=True):
        lo = b0
        mean, n = None, 0
        for i in range(b0, b1):
            ti = t[i]
            if not math.isfinite(ti):
                continue
            if mean is not None and abs(ti - mean) > max(T_TOLERANCE_K, T_TOLERANCE_REL * mean):
                ranges.append((lo, i))
                lo, mean, n = i, None, 0
            mean = ti if mean is None else (mean * n + ti) / (n + 1)
            n += 1
        ranges.append((lo, b1))
    return [(a, b) for a, b in ranges if b > a]


def _from_table(table: TextTable) -> list[SpectrumData]:
    bias_i, factor, g_i, inverted, normalized, t_i, b_i = _text_columns(table)
    data = table.data
    if t_i is not None:
        t = data[:, t_i] * (1e-3 if table.units[t_i].strip() == "mK" else 1.0)
    else:
        t = np.full(len(data), np.nan)
    ranges = _temperature_groups(t, table.blocks)
    path = Path(table.path)
    out = []
    for k, (a, b) in enumerate(ranges):
        g = data[a:b, g_i]
        if inverted:
            with np.errstate(divide="ignore", invalid="ignore"):
                g = 1.0 / g
        bias, g = _clean(data[a:b, bias_i] * factor, g)
        temperature = _finite_or_none(_nanmean(t[a:b]))
        fld = None
        if b_i is not None:
            scale = 1e-3 if table.units[b_i].strip() == "mT" else 1.0
            fld = _finite_or_none(_nanmean(data[a:b, b_i]) * scale)
        tag = f"#{k + 1}" if len(ranges) > 1 else ""
        out.append(SpectrumData(bias, g, temperature, fld, normalized,
                                _label(path, tag, temperature, fld)))
    return out


# ------------------------------------------------------------------------------ conversions
SPECTRUM_RUN_COLUMNS = {"dc_voltage": "V", "didv": "S", "temperature": "K", "field": "T",
                        "sweep": ""}


def spectrum_records(spectra: list[SpectrumData]):
    """The spectra as the record stream a lock-in spectrum run emits (V, S, K, T, sweep)."""
    for k, s in enumerate(spectra):
        t = math.nan if s.temperature_K is None else s.temperature_K
        b = math.nan if s.field_T is None else s.field_T
        for v, g in zip(s.bias_mV.tolist(), s.conductance.tolist(), strict=True):
            yield {"dc_voltage": v * 1e-3, "didv": g, "temperature": t, "field": b, "sweep": k}


def buffer_from_spectra(spectra: list[SpectrumData]):
    """A RunBuffer holding the spectra, so imported data plot like a live run."""
    from daqapp.storage.buffer import RunBuffer

    buf = RunBuffer(_run_columns_for(spectra), capacity=sum(len(s) for s in spectra))
    buf.extend(spectrum_records(spectra))
    return buf


def _run_columns_for(spectra: list[SpectrumData]) -> dict[str, str]:
    cols = dict(SPECTRUM_RUN_COLUMNS)
    if spectra and all(s.normalized for s in spectra):
        cols["didv"] = ""  # G/G_N has no unit
    return cols


def spectra_to_run(source: str | os.PathLike[str],
                   output: str | os.PathLike[str] | None = None, *,
                   temperature_K: float | None = None, skip_bad_lines: bool = False,
                   notes: list[str] | None = None) -> Path:
    """Import a text spectra file as a run file (one sweep per spectrum) to refit and annotate.

    ``temperature_K`` is the temperature of a file that records none (refused where the file
    has its own: two temperatures for one spectrum is a question, not a default)."""
    from daqapp.storage.writer import RunWriter

    src = Path(source)
    spectra = load_spectra(src, skip_bad_lines=skip_bad_lines, notes=notes)
    if temperature_K is not None:
        own = [s.label for s in spectra if s.temperature_K is not None]
        if own:
            raise DataFileError(f"{src}: --temperature: the file gives its own temperature "
                                f"({own[0]}); --temperature is for files without one")
        for s in spectra:
            s.temperature_K = float(temperature_K)
    out = Path(output) if output is not None else src.with_suffix(".h5")
    normalized = all(s.normalized for s in spectra)
    w = RunWriter(out, procedure="daqapp.storage.spectra.import_text",
                  parameters={"source": {"value": str(src.resolve()), "units": ""}},
                  metadata={"sample": "", "normalized": normalized,
                            "labels": [s.label for s in spectra]},
                  columns=_run_columns_for(spectra), sweep_axis="dc_voltage")
    w.start(snapshot={"imported_from": str(src.resolve())})
    try:
        for record in spectrum_records(spectra):
            w.append(record)
        w.log("INFO", f"imported {len(spectra)} spectra from {src.name}")
    except BaseException as exc:  # the file must not stay "running"
        w.finish("failed", error=exc)
        raise
    w.finish("finished")
    return out
