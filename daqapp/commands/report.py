"""``daqapp report DIR``: the seed paper's figures and a summary from a folder of runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from daqapp.commands._types import finite_float, whole_number


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """Analysis choices shared by ``report``, ``replay --headless`` and ``demo``."""
    from daqapp.analysis.critical import JC_FORMS
    from daqapp.fitworker import MODELS  # the one list the window's fit panel offers too

    group = parser.add_argument_group("analysis")
    group.add_argument("--model", default="s+s", choices=list(MODELS),
                       help="BTK model for the spectra (default s+s, as the seed)")
    group.add_argument("--dimension", type=whole_number(1, 3), default=2, choices=[1, 2, 3],
                       help="angular average of the BTK model (default 2, the seed's)")
    group.add_argument("--series-resistance", type=finite_float(0, 1e6, "Ohm"), default=None,
                       metavar="OHM",
                       help="series resistance to remove from spectra (default: from the run "
                       "files' series_resistance_ohm, else 0)")
    group.add_argument("--max-bias", type=finite_float(0, 1e4, "mV", low_open=True),
                       default=None, metavar="MV",
                       help="fit spectra only within ±MV (e.g. to exclude critical-current dips)")
    group.add_argument("--normal-state-reference", action="store_true",
                       help="divide the spectra by the normal-state spectrum (above the R–T "
                       "onset + 3 K) before the joint background fit (default: the same "
                       "analysis as the window and daqapp fit, without it)")
    group.add_argument("--profile", action="store_true",
                       help="profile-likelihood 68 %% intervals of the gaps of every spectrum "
                       "(in the notes; slower)")
    group.add_argument("--gap-form", default="bcs", choices=["bcs", "tanh", "alpha", "dwave"],
                       help="Δ(T) form for Tc and Δ(0) (default bcs)")
    group.add_argument("--hc2-criterion", type=finite_float(0, 1, low_open=True, high_open=True),
                       default=0.9, metavar="FRACTION",
                       help="Hc2(T) where R = FRACTION × R_N (default 0.9, the onset)")
    group.add_argument("--hc2-eta", type=finite_float(0, 1e3, low_open=True), default=0.2,
                       metavar="ETA",
                       help="D2/D1 of the two-band Hc2 fit (default 0.2; near-Tc data cannot "
                       "fix it, the summary notes how Hc2(0) depends on it)")
    group.add_argument("--jc-form", default="dew_hughes_dtc",
                       choices=list(JC_FORMS),
                       help="Ic(T) pinning form (default δTc pinning, Dew-Hughes)")


def options_from(args: argparse.Namespace):
    from daqapp.errors import ConfigError
    from daqapp.report import ReportOptions

    if not 0 < args.hc2_criterion < 1:
        raise ConfigError(f"--hc2-criterion = {args.hc2_criterion:g} is outside the allowed "
                          "range 0 to 1 (exclusive)")
    if args.hc2_eta <= 0:
        raise ConfigError(f"--hc2-eta = {args.hc2_eta:g} must be > 0")
    if args.series_resistance is not None and args.series_resistance < 0:
        raise ConfigError(f"--series-resistance = {args.series_resistance:g} Ω must be >= 0")
    if args.max_bias is not None and args.max_bias <= 0:
        raise ConfigError(f"--max-bias = {args.max_bias:g} mV must be > 0")
    return ReportOptions(model=args.model, dimension=args.dimension,
                         series_resistance_ohm=args.series_resistance,
                         fit_max_bias_mV=args.max_bias, gap_form=args.gap_form,
                         hc2_criterion=args.hc2_criterion, hc2_eta=args.hc2_eta,
                         jc_form=args.jc_form,
                         normal_state_reference=getattr(args, "normal_state_reference", False),
                         profile=getattr(args, "profile", False))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="figures (PNG) and summary (Markdown, JSON) from a folder of runs",
        description="Refit every run under the given folders (campaign folders, folders of "
        "campaigns, or run files) and write R–T, Hc2(T), spectra, Δ(T), I–V/Ic(T) and Nb "
        "calibration figures plus summary.md and summary.json.")
    parser.add_argument("sources", nargs="+", type=Path, metavar="DIR",
                        help="campaign folder(s) or run file(s)")
    parser.add_argument("--output", "-o", type=Path, default=None,
                        help="report folder (default: <first DIR>/report)")
    parser.add_argument("--title", default=None, help="title of the figures and summary")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only where it went")
    add_report_options(parser)
    parser.set_defaults(func=_report)


def print_key_numbers(summary: dict, stream=None) -> None:
    import sys

    from daqapp.report.results import Value
    from daqapp.report.summary import SUMMARY_KEYS

    def number(x) -> float:
        return float("nan") if x is None else float(x)

    stream = stream or sys.stdout
    for key, label in SUMMARY_KEYS.items():
        entry = summary.get(key) or {}
        sys_range = entry.get("systematic") or {}
        value = Value(number(entry.get("value")), number(entry.get("error")),
                      entry.get("unit") or "", number(sys_range.get("minus")),
                      number(sys_range.get("plus")), sys_range.get("source", ""))
        print(f"  {label:<36} {value.text()}", file=stream)


def require_runs(sources: list[Path]) -> None:
    """Refuse (exit 2, one line) sources that do not exist or hold no readable run file
    (for callers that do not analyse them next; the report checks while it collects)."""
    from daqapp.report.analyse import collect
    from daqapp.report.analyse import require_runs as require_collected

    require_sources(sources)
    require_collected(collect(sources), sources)


def require_sources(sources: list[Path]) -> None:
    from daqapp.errors import DataFileError

    for source in sources:
        if not source.exists():
            raise DataFileError(f"{source}: no such file or folder")


def _report(args: argparse.Namespace) -> int:
    from daqapp.report import write_report

    require_sources(args.sources)
    report = write_report(args.sources, output=args.output, options=options_from(args),
                          title=args.title, progress=None if args.quiet else print,
                          require=True)
    print(f"report: {report.summary_md}")
    print(f"figures: {', '.join(p.name for p in report.figures) or 'none'}")
    if not args.quiet:
        print_key_numbers(report.summary)
        for note in report.data.notes:
            print(f"  note: {note}")
    return 0
