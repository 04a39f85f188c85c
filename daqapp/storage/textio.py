"""Plain-text tables in and out: CSV export of a run, and reading spectra files from elsewhere.

Other labs send spectra as CSV, TSV or whitespace columns with a header line of names (often
with units, "bias (mV)", "G_norm"), or with ``#`` comments. ``read_table`` accepts all of those,
streaming (bounded memory, at most ``MAX_TEXT_ROWS`` rows), and says which file and line are
wrong when it cannot. ``export_csv`` writes a run's columns with
their units in the header, in a form ``read_table`` (and spreadsheets) read back.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from daqapp.errors import DataFileError
from daqapp.storage.safe_write import open_output

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
    #: (line number, text) of data lines left out with ``skip_bad_lines``
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def skipped_text(self) -> str:
        """One line for the user: how many lines were left out, and the first of them."""
        if not self.skipped:
            return ""
        lineno, text = self.skipped[0]
        return (f"{self.path}: skipped {len(self.skipped)} bad line"
                f"{'s' if len(self.skipped) != 1 else ''} (first: line {lineno}: {text[:40]!r})")

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


#: At most this many numeric rows per text file (all spectra together). A real spectrum has
#: 10²-10⁴ points; the bound keeps a hostile or mistaken file (10⁷ lines) from taking minutes
#: and gigabytes before anything is said.
MAX_TEXT_ROWS = 2_000_000
#: At most this many columns per row.
MAX_TEXT_COLUMNS = 64
#: Rows parsed by numpy at once (memory per step stays a few MB whatever the file's size).
_PARSE_CHUNK = 65536


def _decode(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("latin-1")


def _parse_chunk(path: Path, lines: list[str], linenos: list[int], delim: str | None,
                 ncols: int, skipped: list[tuple[int, str]] | None = None) -> np.ndarray:
    """Rows of a chunk of numeric lines; on a bad line, DataFileError naming it (or, given a
    ``skipped`` list, the line is left out and noted there)."""
    try:  # numpy's C parser checks every line's column count
        rows = np.loadtxt(lines, delimiter=delim, ndmin=2, comments=None, dtype=float)
        if rows.shape == (len(lines), ncols):
            return rows
    except ValueError:
        pass
    rows = np.empty((len(lines), ncols))
    kept = 0
    for line, lineno in zip(lines, linenos, strict=True):
        values = _numbers(_row_tokens(line, delim))
        if values is None or len(values) != ncols:
            if skipped is not None:
                skipped.append((lineno, line))
                continue
            if values is None:
                raise DataFileError(f"{path}: line {lineno}: not numbers: {line[:60]!r} "
                                    "(--skip-bad-lines leaves such lines out)")
            raise DataFileError(f"{path}: line {lineno}: {len(values)} columns, "
                                f"expected {ncols} (--skip-bad-lines leaves such lines out)")
        rows[kept] = values
        kept += 1
    return rows[:kept]


def _row_tokens(line: str, delim: str | None) -> list[str]:
    tokens = _split(line, delim)
    if delim is not None and tokens and tokens[-1] == "":
        tokens = tokens[:-1]  # trailing delimiter
    return tokens


def read_table(path: str | os.PathLike[str], skip_bad_lines: bool = False) -> TextTable:
    """Read a numeric text table; raise DataFileError naming the file (and line) if it cannot.

    Streams the file: lines are checked one by one, numbers parsed by numpy a chunk at a time,
    and a file over ``MAX_TEXT_ROWS`` rows is refused as soon as it passes the bound. With
    ``skip_bad_lines`` a data line that is not numbers (an instrument's ``OVERLOAD``) or has
    the wrong column count is left out and listed in ``TextTable.skipped`` instead.
    """
    skipped: list[tuple[int, str]] | None = [] if skip_bad_lines else None
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        raise DataFileError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise DataFileError(f"{p}: not a regular file")
    try:
        fh = open(p, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise DataFileError(f"{p}: cannot read ({exc.strerror or exc})") from None
    with fh:
        if b"\x00" in fh.read(4096):
            raise DataFileError(f"{p}: binary file, not a text table")
        fh.seek(0)
        if fh.read(3) != b"\xef\xbb\xbf":
            fh.seek(0)
        header_candidates: list[str] = []
        chunks: list[np.ndarray] = []
        pending: list[str] = []
        pending_lines: list[int] = []
        blocks: list[int] = []
        block_lines: list[int] = []  # the line each block starts on
        delim: str | None = None
        ncols = 0
        n_rows = 0
        new_block = True
        for lineno, raw in enumerate(fh, start=1):
            stripped = _decode(raw).strip()
            if not stripped:
                new_block = True
                continue
            if stripped.startswith(_COMMENT):
                if not n_rows:
                    header_candidates.append(stripped.lstrip("#%/; ").strip())
                continue
            if not n_rows:
                delim = _delimiter(stripped)
                values = _numbers(_row_tokens(stripped, delim))
                if values is None:
                    header_candidates.append(stripped[:10_000])
                    continue
                ncols = len(values)
                if not 1 <= ncols <= MAX_TEXT_COLUMNS:
                    raise DataFileError(f"{p}: line {lineno}: {ncols} columns; at most "
                                        f"{MAX_TEXT_COLUMNS} are read")
            if new_block:
                blocks.append(n_rows)
                block_lines.append(lineno)
                new_block = False
            pending.append(stripped)
            pending_lines.append(lineno)
            n_rows += 1
            if n_rows > MAX_TEXT_ROWS:
                raise DataFileError(f"{p}: more than {MAX_TEXT_ROWS} numeric rows; daqapp reads "
                                    "at most that many from one text file (split or decimate "
                                    "it)")
            if len(pending) >= _PARSE_CHUNK:
                chunks.append(_parse_chunk(p, pending, pending_lines, delim, ncols, skipped))
                pending, pending_lines = [], []
        if pending:
            chunks.append(_parse_chunk(p, pending, pending_lines, delim, ncols, skipped))
    if not n_rows or not sum(len(c) for c in chunks):
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
    data = np.concatenate(chunks)
    if skipped:  # a block starts at its row among the kept ones
        bad = [lineno for lineno, _ in skipped]
        blocks = sorted({b - sum(1 for lineno in bad if lineno < first)
                         for b, first in zip(blocks, block_lines, strict=True)
                         if b - sum(1 for lineno in bad if lineno < first) < len(data)})
    return TextTable(path=str(p), names=[s[0] for s in split], units=[s[1] for s in split],
                     data=data, blocks=blocks, has_header=has_header,
                     skipped=skipped or [])


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
        with open_output(out, "w", encoding="utf-8", newline="") as fh:
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
