"""``daqapp campaign run|resume|procedures``: unattended measurement campaigns from TOML files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from daqapp.commands._options import add_output_option, add_progress_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "campaign", help="run, dry-run or resume a measurement campaign (TOML file)",
        description="Unattended campaigns: set field, reach and stabilise temperatures, run "
        "procedures in loops, one HDF5 run per step plus a manifest; resumable after a crash.")
    sub = parser.add_subparsers(dest="campaign_command", metavar="ACTION")

    run = sub.add_parser("run", help="validate a campaign file and run it (or --dry-run)",
                         description="Validate the whole campaign file before anything moves, "
                         "then run every step. With --dry-run, print the expanded steps and "
                         "the time estimate instead.")
    run.add_argument("file", type=Path, help="campaign TOML file")
    run.add_argument("--dry-run", action="store_true",
                     help="print the expanded steps and the time estimate; touch nothing")
    add_output_option(run, help="campaign folder to create (default: [campaign] output, else "
                      "<file stem>-<date-time> in the current folder)")
    add_progress_option(run)
    run.add_argument("--no-report", action="store_true",
                     help="do not write the report when the campaign finishes")
    run.set_defaults(func=_run)

    resume = sub.add_parser("resume", help="continue a campaign folder after an interruption",
                            description="Continue with the first unfinished step; finished "
                            "steps are never repeated, an interrupted step's partial run is "
                            "kept under partial/ and the step is run again.")
    resume.add_argument("folder", type=Path, help="campaign folder (holds manifest.json)")
    add_progress_option(resume)
    resume.add_argument("--no-report", action="store_true",
                        help="do not write the report when the campaign finishes")
    resume.set_defaults(func=_resume)

    status = sub.add_parser("status", help="show the steps of a campaign folder and their state",
                            description="One line per step of a campaign folder: its state "
                            "(pending, running, finished, skipped, failed), the number of "
                            "attempts, its run file and the last error. Reads manifest.json "
                            "only; safe while the campaign runs.")
    status.add_argument("folder", type=Path, help="campaign folder (holds manifest.json)")
    status.set_defaults(func=_status)

    procs = sub.add_parser("procedures", help="list the procedures a campaign can name, "
                           "with their parameters",
                           description="The procedure names a [[step]]'s procedure = may "
                           "use, each with its summary and the parameter names its params "
                           "table takes (units, defaults and limits: daqapp run --list).")
    procs.set_defaults(func=_procedures)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _quick_fitter():
    from daqapp.report.analyse import quick_fit_run

    return quick_fit_run


def _finish(outcome, args) -> int:
    """Summary lines, the report when finished, and the safe state's verdict last; the exit
    code is 128 + N after a termination signal N (daqapp.runner.signals)."""
    from daqapp.runner.signals import exit_code

    code = _summarise(outcome, args)
    if outcome.safe_state:
        print(outcome.safe_state)
    return exit_code(code)


def _summarise(outcome, args) -> int:
    counts = outcome.counts
    print(f"campaign {outcome.status}: {counts.get('finished', 0)} finished, "
          f"{counts.get('skipped', 0)} skipped, {counts.get('failed', 0)} failed, "
          f"{counts.get('pending', 0) + counts.get('running', 0)} not done — {outcome.folder}")
    if outcome.message:
        print(f"  {outcome.message}")
    if outcome.status != "finished":
        print(f"  continue with: daqapp campaign resume {outcome.folder}")
        return 1
    if not getattr(args, "no_report", False):
        from daqapp.report import write_report

        report = write_report(outcome.folder)
        print(f"report: {report.folder / 'summary.md'}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from daqapp.campaign.catalog import ProcedureCatalog
    from daqapp.campaign.executor import load_for_run, run_campaign
    from daqapp.campaign.spec import format_duration, iter_step_lines

    catalog = ProcedureCatalog()
    campaign = load_for_run(args.file, catalog)
    if args.dry_run:
        speed = campaign.station.speed if campaign.station.simulated else 1.0
        print(f"campaign {campaign.name!r}: {len(campaign.steps)} steps on "
              f"{campaign.station.describe()}")
        for line in iter_step_lines(campaign, speed=1.0):
            print("  " + line)
        total = campaign.total_estimate_s
        extra = (f" (≈ {format_duration(total / speed)} on the virtual lab at ×{speed:g})"
                 if speed != 1.0 else "")
        print(f"estimated laboratory time: {format_duration(total)}{extra}")
        print("valid: nothing was moved (dry run)")
        return 0
    outcome = run_campaign(args.file, output=args.output, catalog=catalog,
                           show_progress=not args.no_progress, fitter=_quick_fitter(),
                           quiet_console=not getattr(args, "debug", False))
    return _finish(outcome, args)


def _resume(args: argparse.Namespace) -> int:
    from daqapp.campaign.executor import resume_campaign
    from daqapp.storage.recover import recovery_hint

    for line in recovery_hint(args.folder):  # runs a killed session left open
        print(line)
    outcome = resume_campaign(args.folder, show_progress=not args.no_progress,
                              fitter=_quick_fitter(),
                              quiet_console=not getattr(args, "debug", False))
    return _finish(outcome, args)


def _status(args: argparse.Namespace) -> int:
    from daqapp.campaign.manifest import Manifest

    manifest = Manifest.load(args.folder)
    data = manifest.data
    print(f"campaign {data['campaign']['name']!r} — {data['status']} "
          f"(updated {data['updated']})")
    for step in manifest.steps:
        attempts = len(step.get("attempts", []))
        extra = f"  {step['file']}" if step.get("file") else ""
        error = f"  ({step['error']})" if step.get("error") and step["status"] != "finished" \
            else ""
        print(f"  {step['key']:<30} {step['status']:<9} attempts {attempts}{extra}{error}")
    counts = manifest.counts()
    print("  " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    return 0


def _procedures(args: argparse.Namespace) -> int:
    from daqapp.campaign.catalog import ProcedureCatalog

    catalog = ProcedureCatalog()
    for key, summary in catalog.describe():
        print(f"{key:<20} {summary}")
        print(f"{'':<20} parameters: {', '.join(catalog.parameter_names(key))}")
    sys.stdout.flush()
    return 0
