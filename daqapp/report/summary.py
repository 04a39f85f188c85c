"""The report's numbers as ``summary.json`` (for scripts) and ``summary.md`` (for people).

``summary.json`` layout::

    {"format": "daqapp-report", "version": 1, "title": ..., "sample": {...},
     "temperatures": [{"temperature_K": 3.0, "delta1_meV": 23.0, "delta1_meV_err": 0.1,
                       ..., "chi2_red": 1.0}, ...],
     "tc_gap_K": {"value": 72.1, "error": 0.8, "unit": "K"}, ... (every key of SUMMARY_KEYS),
     "calibration": {...} | null, "figures": [...], "runs": [...], "notes": [...]}

Unknown numbers are ``null`` (JSON has no NaN).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from daqapp.campaign.manifest import write_json_atomic
from daqapp.report.results import ReportData, Value, _num
from daqapp.storage.safe_write import open_output

FORMAT = "daqapp-report"
VERSION = 1

#: Per-temperature parameters of the two-gap fit, in table order.
PER_TEMPERATURE_KEYS = ("delta1_meV", "delta2_meV", "gamma1_meV", "gamma2_meV", "z1", "z2",
                        "weight1")

#: Headline numbers, each with its uncertainty, and how the Markdown names them.
SUMMARY_KEYS = {
    "tc_gap_K": "T_c from Δ(T) (BCS fit)",
    "delta1_0_meV": "Δ₁(0)",
    "delta2_0_meV": "Δ₂(0)",
    "ratio_2delta1_kTc": "2Δ₁(0)/k_BT_c",
    "tc_onset_K": "T_c onset (R–T, 0 T, 90 % R_N)",
    "tc_mid_K": "T_c midpoint (R–T, 0 T)",
    "tc_zero_K": "T_c zero resistance (R–T, 0 T)",
    "hc2_0_T": "μ₀H_c2(0), two-band fit",
    "hc2_0_low_T": "μ₀H_c2(0) two-band, lowest over η",
    "hc2_0_high_T": "μ₀H_c2(0) two-band, highest over η",
    "hc2_0_whh_T": "μ₀H_c2(0), single-band WHH fit",
    "coherence_length_nm": "Coherence length ξ(0)",
    "jc0_mA": "I_c(0) (pinning fit)",
    "jc0_systematic_mA": "I_c(0) systematic (pinning forms)",
}
REQUIRED_SUMMARY_KEYS = ("tc_gap_K", "delta1_0_meV", "delta2_0_meV", "ratio_2delta1_kTc",
                         "tc_onset_K", "tc_zero_K", "hc2_0_T", "coherence_length_nm", "jc0_mA")


def summary_dict(data: ReportData, figures: list[Path] | None = None) -> dict[str, Any]:
    rows = []
    for spec in sorted(data.spectra, key=lambda s: s.temperature_K):
        row: dict[str, Any] = {"temperature_K": _num(spec.temperature_K),
                               "field_T": _num(spec.field_T)}
        for key in PER_TEMPERATURE_KEYS:
            v = spec.parameters.get(key)
            row[key] = _num(v.value) if v else None
            row[f"{key}_err"] = _num(v.error) if v else None
        row["chi2_red"] = _num(spec.chi2_red)
        row["model"] = spec.model
        row["source"] = spec.source
        rows.append(row)
    out: dict[str, Any] = {"format": FORMAT, "version": VERSION, "title": data.title,
                           "sample": data.sample, "temperatures": rows}
    for key in SUMMARY_KEYS:
        out[key] = data.summary.get(key, Value(math.nan)).as_dict()
    for key, value in data.summary.items():
        if key not in out:
            out[key] = value.as_dict()
    cal = data.calibration
    out["calibration"] = None if cal is None else {
        "temperature_K": _num(cal.temperature_K), "model": cal.model,
        "chi2_red": _num(cal.chi2_red), "source": cal.source,
        "parameters": {k: v.as_dict() for k, v in cal.parameters.items()}}
    out["figures"] = [Path(p).name for p in (figures or [])]
    out["runs"] = data.runs
    out["notes"] = list(data.notes)
    return out


def write_summary(data: ReportData, folder: Path, figures: list[Path] | None = None
                  ) -> tuple[Path, Path]:
    """Write ``summary.json`` and ``summary.md`` into ``folder``; return both paths."""
    folder = Path(folder)
    summary = summary_dict(data, figures)
    json_path = folder / "summary.json"
    write_json_atomic(json_path, summary)
    md_path = folder / "summary.md"
    with open_output(md_path, "w", encoding="utf-8") as fh:  # never through a symlink
        fh.write(markdown(data, summary))
    return json_path, md_path


def markdown(data: ReportData, summary: dict[str, Any] | None = None) -> str:
    summary = summary or summary_dict(data)
    lines = [f"# {data.title}", ""]
    if data.sample:
        facts = [f"**{k}**: {v}" for k, v in data.sample.items()]
        if "pressure_GPa" not in data.sample:
            facts.append("**pressure_GPa**: not recorded")
        lines.append(", ".join(facts))
        lines.append("")
    lines += ["## Key results", "", "| Quantity | Value |", "|---|---|"]
    for key, label in SUMMARY_KEYS.items():
        lines.append(f"| {label} | {data.summary.get(key, Value(math.nan)).text()} |")
    lines.append("")
    if data.spectra:
        lines += ["## Two-gap BTK fits per temperature", "",
                  f"Model {data.spectra[0].model} (2D BTK, thermal smearing at the measured "
                  "temperature) fitted together with a quadratic normal-state background, "
                  "which normalises the spectra; w₁ is shared along the series (no error "
                  "shown: held at the coldest spectrum's value). Errors are one standard "
                  "deviation.", "",
                  "| T (K) | Δ₁ (meV) | Δ₂ (meV) | Γ₁ (meV) | Γ₂ (meV) | Z₁ | Z₂ | w₁ | χ²_red |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for spec in sorted(data.spectra, key=lambda s: s.temperature_K):
            cells = [f"{round(spec.temperature_K, 1):g}"]
            for key in PER_TEMPERATURE_KEYS:
                v = spec.parameters.get(key)
                cells.append(Value(v.value, v.error).text() if v else "n/a")
            cells.append(f"{spec.chi2_red:.2f}" if math.isfinite(spec.chi2_red) else "n/a")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if data.calibration is not None:
        cal = data.calibration
        lines += ["## Nb calibration", "",
                  f"{cal.model} fit at {round(cal.temperature_K, 2):g} K: "
                  + ", ".join(f"{k} = {v.text()}" for k, v in cal.parameters.items()), ""]
    if summary.get("figures"):
        lines += ["## Figures", ""]
        vector = [n for n in summary["figures"] if not n.endswith(".png")]
        for name in summary["figures"]:
            if name.endswith(".png"):
                lines.append(f"![{name}]({name})")
        if vector:
            lines += ["", "For print (vector): " + ", ".join(f"[{n}]({n})" for n in vector)]
        lines.append("")
    if data.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in data.notes] + [""]
    if data.runs:
        lines += ["## Runs", "", "| Run | Kind | Status |", "|---|---|---|"]
        for run in data.runs:
            lines.append(f"| {run.get('file', '')} | {run.get('kind', '')} | "
                         f"{run.get('status', '')} |")
        lines.append("")
    return "\n".join(lines)


def load_summary(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))
