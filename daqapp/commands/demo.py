"""``daqapp demo``: the main job — the seed paper end to end on the virtual lab.

Runs ``la3ni2o7.toml`` (R–T at 0–8 T, I–V curves, spectra 3–65 K and one in the normal
state) and ``nb-calibration.toml`` (package data, :mod:`daqapp.examples_data`) on the virtual
lab, then writes the report and prints where it is and the key numbers beside the simulated
sample's. Interrupted, it resumes where it stopped when run again with the same ``--output``.
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib.resources import as_file
from pathlib import Path

from daqapp.commands._options import add_output_option, add_progress_option
from daqapp.commands._types import finite_float

MAIN_CAMPAIGN = "la3ni2o7.toml"
CALIBRATION_CAMPAIGN = "nb-calibration.toml"
QUICK_CAMPAIGN = "quick.toml"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="the seed paper end to end on the virtual lab, then the report",
        description="Run the packaged la3ni2o7.toml (R–T at 0–8 T, I–V, spectra 3–65 K) "
        "and nb-calibration.toml on the virtual lab, write the report, and print the "
        "key numbers beside the simulated sample's. Run again to resume an interrupted demo.")
    add_output_option(parser, default=Path("demo-output"),
                      help="folder for the campaigns and the report (default demo-output)")
    parser.add_argument("--speed", type=finite_float(0.01, 1e6), default=None, metavar="X",
                        help="virtual-lab speed-up (default: the campaign files' value)")
    parser.add_argument("--quick", action="store_true",
                        help="the short campaign (quick.toml): fewer temperatures "
                        "and fields, for a first look or a test")
    parser.add_argument("--no-calibration", action="store_true",
                        help="skip the Nb calibration campaign")
    add_progress_option(parser)
    parser.set_defaults(func=_demo)


def _run_or_resume(path: Path, folder: Path, speed: float | None, progress: bool,
                   fitter) -> object:
    from daqapp.campaign.executor import resume_campaign, run_campaign
    from daqapp.campaign.manifest import MANIFEST_NAME

    if (folder / MANIFEST_NAME).exists():
        print(f"resuming {folder}")
        return resume_campaign(folder, show_progress=progress, fitter=fitter)
    return run_campaign(path, output=folder, show_progress=progress, fitter=fitter,
                        speed=speed)


def _demo(args: argparse.Namespace) -> int:
    """SIGTERM/SIGHUP abort the running step into the safe state (resumable), exit 128 + N."""
    from daqapp.runner import signals

    with signals.termination_signals():
        code = _demo_steps(args)
    return signals.exit_code(code)


def _demo_steps(args: argparse.Namespace) -> int:
    from daqapp.commands.report import print_key_numbers
    from daqapp.errors import ConfigError
    from daqapp.examples_data import example_campaign
    from daqapp.report import write_report
    from daqapp.report.analyse import quick_fit_run

    if args.speed is not None and not 0.01 <= args.speed <= 1e6:
        raise ConfigError(f"--speed = {args.speed:g} is outside the allowed range 0.01 to 1e6")
    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    plan = [(QUICK_CAMPAIGN if args.quick else MAIN_CAMPAIGN,
             out / ("quick" if args.quick else "la3ni2o7"))]
    if not args.no_calibration:
        plan.append((CALIBRATION_CAMPAIGN, out / "nb-calibration"))
    folders = []
    for name, folder in plan:
        # as_file: a real path even if the package sits in a zip; the campaign folder keeps
        # its own copy, so resuming never needs this file again.
        with as_file(example_campaign(name)) as path:
            print(f"campaign {path} -> {folder}")
            outcome = _run_or_resume(path, folder, args.speed, not args.no_progress,
                                     quick_fit_run)
        counts = outcome.counts
        print(f"  {outcome.status}: {counts.get('finished', 0)} finished, "
              f"{counts.get('skipped', 0)} skipped ({time.monotonic() - started:.0f} s)")
        if outcome.safe_state:
            print(f"  {outcome.safe_state}")
        if outcome.status != "finished":
            print(f"  {outcome.message}", file=sys.stderr)
            print(f"  run `daqapp demo --output {args.output}` again to resume", file=sys.stderr)
            return 1
        folders.append(folder)
    print("report: refitting every spectrum and transport curve ...")
    report = write_report(folders, output=out / "report",
                          title="La3Ni2O7-δ Cell 2, 23 GPa (virtual lab)")
    elapsed = time.monotonic() - started
    print(f"\nreport written to {report.folder}")
    print(f"  summary: {report.summary_md}")
    print(f"  figures: {', '.join(p.name for p in report.figures)}")
    print("key numbers:")
    print_key_numbers(report.summary)
    _compare_with_preset(report.summary, "la3ni2o7-cell2")
    print(f"demo finished in {elapsed:.0f} s")
    return 0


def _compare_with_preset(summary: dict, preset_name: str) -> None:
    """What the virtual lab simulated, beside what the analysis recovered."""
    try:
        from simulators.presets import load_preset
    except ImportError:
        return
    preset = load_preset(preset_name)
    rows = summary.get("temperatures") or []
    coldest = rows[0] if rows else {}
    truth_row = preset.gap_rows[0]
    pairs = [
        ("Δ1 at the lowest T (meV)", coldest.get("delta1_meV"), truth_row.delta_meV[0]),
        ("Δ2 at the lowest T (meV)", coldest.get("delta2_meV"), truth_row.delta_meV[1]),
        ("Tc from Δ(T) (K)", (summary.get("tc_gap_K") or {}).get("value"), preset.tc_K),
        ("μ0Hc2(0) (T)", (summary.get("hc2_0_T") or {}).get("value"), preset.hc2_0_T),
        ("Ic(0) (mA)", (summary.get("jc0_mA") or {}).get("value"), preset.ic0_A * 1e3),
    ]
    print(f"recovered vs simulated ({preset_name}):")
    for label, got, truth in pairs:
        if got is None:
            print(f"  {label:<28} n/a       (simulated {truth:g})")
            continue
        dev = 100.0 * (got - truth) / truth
        print(f"  {label:<28} {got:8.3g}  simulated {truth:8.3g}  ({dev:+.1f} %)")
