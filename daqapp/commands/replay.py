"""``daqapp replay RUN_OR_DIR``: recorded runs through the live plots and fits, or headless."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from daqapp.commands._types import finite_float


def register(subparsers: argparse._SubParsersAction) -> None:
    from daqapp.commands.report import add_report_options

    parser = subparsers.add_parser(
        "replay", help="replay recorded runs in the live window, or refit them headless",
        description="With a display: play run files (or a campaign folder) into the same "
        "plots and on-line fits as a live run. With --headless (or no display): refit every "
        "spectrum and transport curve and write the report.")
    parser.add_argument("sources", nargs="+", type=Path, metavar="RUN_OR_DIR",
                        help="run file(s) or campaign folder(s)")
    parser.add_argument("--speed", type=finite_float(0, 1e6, low_open=True), default=None,
                        metavar="X",
                        help="play at X times the recorded pace (default: all at once)")
    parser.add_argument("--headless", action="store_true",
                        help="no window: refit and write the report")
    parser.add_argument("--output", "-o", type=Path, default=None,
                        help="report folder for --headless (default: <first source>/report)")
    add_report_options(parser)
    parser.set_defaults(func=_replay)


def _has_display() -> bool:
    if os.environ.get("QT_QPA_PLATFORM", "") in ("offscreen", "minimal"):
        return False
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or os.name == "nt")


def _replay(args: argparse.Namespace) -> int:
    from daqapp.commands.report import require_runs, require_sources
    from daqapp.errors import ConfigError

    require_sources(args.sources)
    if args.speed is not None and not args.speed > 0:
        raise ConfigError(f"--speed = {args.speed:g} must be > 0")
    if not args.headless and _has_display():
        from daqapp.gui.replay import open_replay_window

        require_runs(args.sources)  # the window reads the files itself
        open_replay_window([str(s) for s in args.sources], speed=args.speed,
                           models=(args.model,))
        return 0
    if not args.headless:
        print("no display: replaying headless (refit and report)")
    from daqapp.commands.report import options_from, print_key_numbers
    from daqapp.report import write_report

    report = write_report(args.sources, output=args.output, options=options_from(args),
                          progress=print, require=True)
    print(f"report: {report.summary_md}")
    print_key_numbers(report.summary)
    return 0
