"""Reports: the seed paper's figures and a summary, computed from a folder of run files.

```python
from daqapp.report import write_report
report = write_report("demo-output")          # -> demo-output/report/
print(report.summary["delta1_0_meV"])          # {"value": ..., "error": ..., "unit": "meV"}
```
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daqapp.report.analyse import ReportOptions, analyse
from daqapp.report.results import ReportData

REPORT_DIR = "report"


@dataclass
class Report:
    """Where a report was written and what it says."""

    folder: Path
    figures: list[Path]
    summary_json: Path
    summary_md: Path
    data: ReportData
    summary: dict[str, Any] = field(default_factory=dict)


def write_report(source: Path | str | Iterable[Path | str], output: Path | None = None,
                 options: ReportOptions | None = None, title: str | None = None,
                 progress: Callable[[str], None] | None = None,
                 require: bool = False) -> Report:
    """Analyse every run under ``source`` and write figures + summary into ``output``.

    ``source`` is a run file, a campaign folder, a folder of campaign folders, or a list of
    these; ``output`` defaults to ``<first source folder>/report``. ``require`` refuses
    sources without a readable run file before anything is written.
    """
    from daqapp.report.figures import write_all
    from daqapp.report.summary import summary_dict, write_summary

    sources = [Path(source)] if isinstance(source, str | Path) else [Path(s) for s in source]
    if output is None:
        first = sources[0]
        output = (first if first.is_dir() else first.parent) / REPORT_DIR
    output = Path(output)
    data = analyse(sources, options, title=title, progress=progress, require=require)
    output.mkdir(parents=True, exist_ok=True)
    figures = write_all(data, output)
    json_path, md_path = write_summary(data, output, figures)
    return Report(output, figures, json_path, md_path, data, summary_dict(data, figures))


__all__ = ["Report", "ReportOptions", "write_report"]
