"""Plain-text tables in and out: CSV export of a run, and reading spectra files from elsewhere.

Other labs send spectra as CSV, TSV or whitespace columns with a header line of names (often
with units, "bias (mV)", "G_norm"), or with ``#`` comments. ``read_table`` accepts all of those
and says which file and line are wrong when it cannot. ``export_csv`` writes a run's columns with
their units in the header, in a form ``read_table`` (and spreadsheets) read back.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from daqapp.errors import DataFileError

_COMMENT = ("#", "%", "//", ";")
_UNIT_RE = re.compile(r"^\s*(?P<name>.*?)\s*[\(\[](?P<unit>[^\)\]]*)[\)\]]\s*$")


@dataclass
class TextTable:
    """Columns of a text file: names, units (from "name (unit)"), data, blank-line blocks."""

    path: str
    names: list[str]
    units: list[str]
    data: np.ndarray  # shape (rows, columns)
    blocks: list[int] = field(default_factory=list)  # row index where each block starts
    has_header: bool = False

    def column(self, i: int) -> np.ndarray:
        return self.data[:, i]


def split_name_unit(label: str) -> tuple[str, str]:
    """``"bias (mV)"`` → ``("bias", "mV")``; ``"bias_mV"`` → ``("bias", "mV")``."""
    m = _UNIT_RE.match(label)
    if m:
        return m.group("name").strip(), m.group("unit").strip()
    m = re.match(r"^(?P<name>.+?)[_ ](?P<unit>mV|V|uV|µV|nV|K|mK|T|mT|S|mS|uS|ohm|Ohm|A|mA|uA|s)$",
                 label.strip())
    if m:
        return m.group("name"), m.group("unit")
    return label.strip(), ""


def _delimiter(line: str) -> str | None:
    for d in (",", "\t", ";"):
        if d in line:
            return d
    return None  # whitespace


def _split(line: str, delim: str | None) -> list[str]:
    if delim is None:
        return line.split()
    return [t.strip() for t in line.strip().split(delim)]


def _numbers(tokens: list[str]) -> list[float] | None:
    try:
        return [float(t) for t in tokens]
    except ValueError:
        return None


def read_table(path: str | os.PathLike[str]) -> TextTable:
    """Read a numeric text table; raise DataFileError naming the file (and line) if it cannot."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DataFileError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if b"\x00" in raw[:4096]:
        raise DataFileError(f"{p}: binary file, not a text table")
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        content = raw.decode("latin-1")
    header_candidates: list[str] = []
    rows: list[list[float]] = []
    blocks: list[int] = []
    delim: str | None = None
    ncols = 0
    new_block = True
    for lineno, line in enumerate(content.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            new_block = True
            continue
        if stripped.startswith(_COMMENT):
            if not rows:
                header_candidates.append(stripped.lstrip("#%/; ").strip())
            continue
        if not rows:
            delim = _delimiter(stripped)
        tokens = _split(stripped, delim)
        if delim is not None and tokens and tokens[-1] == "":
            tokens = tokens[:-1]  # trailing delimiter
        values = _numbers(tokens)
        if values is None:
            if rows:
                raise DataFileError(f"{p}: line {lineno}: not numbers: {stripped[:60]!r}")
            header_candidates.append(stripped)
            continue
        if not rows:
            ncols = len(values)
        elif len(values) != ncols:
            raise DataFileError(f"{p}: line {lineno}: {len(values)} columns, expected {ncols}")
        if new_block:
            blocks.append(len(rows))
            new_block = False
        rows.append(values)
    if not rows:
        raise DataFileError(f"{p}: no numeric rows found")
    names, has_header = [f"column{i + 1}" for i in range(ncols)], False
    for cand in reversed(header_candidates):
        for splitter in (lambda s: _split(s, delim), lambda s: re.split(r"\t|\s{2,}|,", s),
                         str.split):
            tokens = [t.strip().strip("\"'") for t in splitter(cand) if t.strip() != ""]
            if len(tokens) == ncols:
                names, has_header = tokens, True
                break
        if has_header:
            break
    split = [split_name_unit(n) for n in names]
    return TextTable(path=str(p), names=[s[0] for s in split], units=[s[1] for s in split],
                     data=np.asarray(rows, dtype=float), blocks=blocks, has_header=has_header)


def export_csv(run_path: str | os.PathLike[str],
               output: str | os.PathLike[str] | None = None) -> Path:
    """Write a run's columns as CSV (``name (units)`` header, run attributes as # lines)."""
    from daqapp.storage.reader import open_run

    run_path = Path(run_path)
    out = Path(output) if output is not None else run_path.with_suffix(".csv")
    with open_run(run_path) as run:
        names = run.column_names
        units = run.units
        columns = run.columns
        lines = [
            "daqapp run export",
            f"source: {run_path.name}",
            f"procedure: {run.procedure}",
            f"status: {run.status}",
            f"start_time: {run.start_time}",
            f"end_time: {run.end_time}",
            f"sample: {run.attrs.get('sample', '')}",
            f"parameters: {run.attrs.get('parameters', '{}')}",
        ]
    header = ",".join(_csv_label(n, units.get(n, "")) for n in names)
    table = np.column_stack([columns[n] for n in names]) if names else np.empty((0, 0))
    try:
        with open(out, "w", encoding="utf-8", newline="") as fh:
            for line in lines:
                fh.write(f"# {line}\n")
            fh.write(header + "\n")
            np.savetxt(fh, table, delimiter=",", fmt="%.12g")
    except OSError as exc:
        raise DataFileError(f"{out}: cannot write CSV ({exc.strerror or exc})") from None
    return out


def _csv_label(name: str, unit: str) -> str:
    label = f"{name} ({unit})" if unit else name
    if "," in label or '"' in label:
        label = '"' + label.replace('"', '""') + '"'
    return label
