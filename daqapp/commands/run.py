"""``daqapp run``: one procedure, headless, into one run file, with a progress bar and a log.

Parameters and station limits are checked against the station file before any connection is
opened, so a bad ``--set`` exits 2 with one line and nothing moves. Ctrl-C once stops after the
current point (the file is saved as finished); twice aborts to the safe state. SIGTERM/SIGHUP
abort the same way and the process exits 128 + the signal number. The last line printed is
the safe state's verdict.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from pathlib import Path
from typing import Any

from daqapp.commands._options import add_output_option, add_progress_option
from daqapp.commands._station_options import (
    add_station_options,
    parse_pairs,
    station_from_options,
)

EXIT_FAILED = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run", help="run one procedure headless into an HDF5 run file",
        description="Run one measurement procedure without the GUI. Writes one HDF5 run file "
        "into --output, shows a progress bar on stderr and logs to stderr; the last line is the "
        "safe state's read-back verdict. Exit 0 when the run finished (or was stopped) and "
        "its safe state was confirmed, 1 when it failed, was aborted or its safe state was "
        "not confirmed, 2 for bad input, 128+N after signal N (SIGTERM/SIGHUP abort it).",
        epilog="examples:\n"
        "  daqapp run --list\n"
        "  daqapp run nb-calibration --simulate --preset nb-foil --speed 200 --output runs\n"
        "  daqapp run rt --station station.toml --set t_start=80 --set t_stop=4 --output runs",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("procedure", nargs="?", help="procedure name (see --list)")
    parser.add_argument("--list", action="store_true",
                        help="list procedures and their parameters (units, defaults, limits; "
                        "with --station or --simulate, the ranges valid on that station)")
    add_station_options(parser, default_speed=1.0)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        dest="assignments", help="set a procedure parameter (repeatable)")
    parser.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                        help="run metadata: operator, sample, cell, pressure_GPa, ...")
    add_output_option(parser, help="folder for the run file (required to run)")
    parser.add_argument("--filename", help="run file name (default: <Procedure>_<time>.h5)")
    add_progress_option(parser)
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from daqapp.errors import ConfigError

    if args.list:
        known = args.station is not None or args.simulate
        print(list_text(station_from_options(args) if known else None))
        return 0
    if not args.procedure:
        raise ConfigError("procedure: name one (daqapp run --list shows them)")
    import procedures

    procedures.load(args.procedure)  # an unknown name is refused first, with the known ones
    if args.output is None:
        raise ConfigError("-o/--output DIR is required (the folder for the run file)")
    station = station_from_options(args)
    procedure = build_procedure(args.procedure, args.assignments, station)
    metadata = parse_pairs("--meta", args.meta)
    if not getattr(args, "debug", False):
        logging.getLogger("pymeasure").setLevel(logging.WARNING)  # "Initializing ..." lines
    return execute(procedure, station, args.output, args.filename, metadata, args.no_progress)


# ---- building blocks (also used by tests) ------------------------------------------------
def build_procedure(name: str, assignments: list[str], station: Any) -> Any:
    """The procedure with ``--set`` values applied and validated against ``station`` (a
    station *config*: limits and wiring, no connection)."""
    import procedures
    from daqapp.errors import ConfigError
    from daqapp.runner.procedure import validate_parameters

    cls = procedures.load(name)
    procedure = cls()
    values = parse_pairs("--set", assignments)
    known = procedure.parameter_objects()
    by_label = {p.name.lower(): key for key, p in known.items()}
    for key, text in values.items():
        attribute = key if key in known else by_label.get(key.lower())
        if attribute is None:
            raise ConfigError(f"--set {key}: {name} has no such parameter; parameters: "
                              f"{', '.join(sorted(known))}")
        setattr(procedure, attribute, text)
    validate_parameters(procedure, station, name=name)
    return procedure


def execute(procedure: Any, station_config: Any, output: Path, filename: str | None,
            metadata: dict[str, Any], quiet: bool = False) -> int:
    from daqapp.runner import signals

    with signals.termination_signals():
        code = _execute(procedure, station_config, output, filename, metadata, quiet)
    return signals.exit_code(code)


def _execute(procedure: Any, station_config: Any, output: Path, filename: str | None,
             metadata: dict[str, Any], quiet: bool) -> int:
    from daqapp.runner import Run, events
    from daqapp.runner.signals import Terminated, shielded
    from daqapp.runner.station_lock import track_run
    from daqapp.station.lock import connect_for_driving

    progress = ProgressBar(enabled=not quiet)
    with contextlib.ExitStack() as ending:  # once the run has ended, no signal cuts in
        with connect_for_driving(station_config, "run",
                                 roles=getattr(procedure, "ROLES", None)) as conn:
            run = Run(procedure, station=conn, output_dir=output, filename=filename,
                      metadata=metadata)
            run.subscribe(progress.handle)
            track_run(conn, run)
            run.start()  # validates again on the connected station; nothing moved yet
            # the run's own log lines reach stderr through the progress bar (from the run file's
            # log stream); keep the console handler from printing them a second time
            run_thread = run.thread_id
            quiet = _DropThread(run_thread)
            for handler in logging.getLogger().handlers:
                handler.addFilter(quiet)
            interrupts = 0
            while True:
                try:
                    result = run.wait(0.25)
                    progress.draw()
                    if result is not None:
                        ending.enter_context(shielded(raise_after=False))
                        break
                except Terminated as exc:  # SIGTERM/SIGHUP: abort; later ones are ignored
                    progress.note(f"{exc.reason}: aborting, going to the safe state")
                    run.control.abort(exc.reason)
                except KeyboardInterrupt:
                    interrupts += 1
                    if interrupts == 1:
                        progress.note("stopping after this point (Ctrl-C again to abort)")
                        run.control.stop()
                    else:
                        progress.note("aborting: going to the safe state")
                        run.control.abort()
        for handler in logging.getLogger().handlers:
            handler.removeFilter(quiet)
        progress.finish()
        print(f"{result.status}: {result.rows} rows in {result.path} "
              f"({result.duration:.1f} s){': ' + result.error if result.error else ''}")
        if result.safe_state:
            print(result.safe_state)
        return 0 if result.status in (events.FINISHED, events.STOPPED) else EXIT_FAILED


class _DropThread(logging.Filter):
    def __init__(self, thread_id: int | None) -> None:
        super().__init__()
        self.thread_id = thread_id

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread_id


class ProgressBar:
    """A one-line text progress bar on stderr (redrawn in place on a terminal; on a pipe, a
    line every 10 %), plus the run's log lines above it."""

    WIDTH = 30

    def __init__(self, enabled: bool = True, stream: Any = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.percent = 0.0
        self.rows = 0
        self.status = "starting"
        self.started = time.monotonic()
        self._last_step = -1
        self._drawn = False

    def handle(self, event: Any) -> None:
        from daqapp.runner import events

        if event.kind == events.PROGRESS:
            self.percent = float(event.payload)
        elif event.kind == events.RECORD:
            self.rows += 1
        elif event.kind == events.STATUS:
            self.status = event.payload.get("status", self.status)
        elif event.kind == events.LOG:
            self.note(f"{event.payload['level']}: {event.payload['message']}")

    def line(self) -> str:
        filled = int(self.WIDTH * self.percent / 100)
        elapsed = time.monotonic() - self.started
        eta = ""
        if 0 < self.percent < 100:
            left = elapsed * (100 - self.percent) / self.percent
            eta = f" ETA {int(left // 60)}:{int(left % 60):02d}"
        return (f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.percent:5.1f}% "
                f"{self.rows} pts {self.status}{eta}")

    def draw(self) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r" + self.line().ljust(79))
            self._drawn = True
        else:
            step = int(self.percent // 10)
            if step != self._last_step:
                self._last_step = step
                self.stream.write(self.line() + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty and self._drawn:
            self.stream.write("\r" + " " * 79 + "\r")
        self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.draw()
            if self.tty:
                self.stream.write("\n")


def list_text(station: Any = None) -> str:
    """Every procedure with its summary and parameters (name, units, default, allowed);
    with a ``station`` (config), a range is the one valid there (procedure ∩ station)."""
    import procedures
    from daqapp.runner.procedure import effective_range
    from daqapp.runner.roles import station_limits

    lines = []
    for name in procedures.PROCEDURES:
        cls = procedures.load(name)
        lines.append(f"{name}  ({cls.__name__}): {getattr(cls, 'SUMMARY', '')}")
        instance = cls()
        instance.station = station
        limits = station_limits(station)
        for key, parameter in sorted(instance.parameter_objects().items()):
            units = getattr(parameter, "units", None) or ""
            allowed = ""
            low, high = getattr(parameter, "minimum", None), getattr(parameter, "maximum", None)
            span = effective_range(instance, key, limits) if limits is not None else None
            if span is not None:
                low, high = span[0], span[1]
            if low is not None and high is not None:
                zero = "0 | " if getattr(parameter, "zero_allowed", False) else ""
                allowed = f" [{zero}{low:g} .. {high:g}]"
            choices = getattr(parameter, "choices", None)
            if choices:
                allowed = f" [{' | '.join(map(str, choices))}]"
            lines.append(f"    {key:<22} {parameter.default!s:>14} {units:<6}{allowed}  "
                         f"{parameter.name}")
        lines.append(f"    estimated duration with defaults: {instance.get_estimates()[0][1]}")
        lines.append("")
    return "\n".join(lines).rstrip()
