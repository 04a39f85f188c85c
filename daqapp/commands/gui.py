"""``daqapp gui``: the operator window on a station file or on the virtual lab."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from daqapp.commands._options import add_output_option
from daqapp.commands._station_options import (
    add_station_options,
    parse_pairs,
    station_from_options,
)
from daqapp.commands._types import finite_float, whole_number


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "gui",
        help="operator window: queue runs, live plots and fits, instrument monitor, replay",
        description="Open the operator window. Queue procedures with checked parameters, watch "
        "dI/dV, I-V, R-T, temperature and field live, fit spectra on-line (BTK models, Δ(T) "
        "with its BCS fit), monitor the instruments, stop/pause/abort runs, browse and replay "
        "past runs. Closing the window aborts a running run into the safe state.",
        epilog="examples:\n"
        "  daqapp gui --simulate --speed 100 --output runs\n"
        "  daqapp gui --station lab.toml --output /data/cell2 --models s+s,d+d",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_station_options(parser, default_speed=100.0)
    add_output_option(parser, default=Path("runs"),
                      help="folder for run files (default %(default)s)")
    parser.add_argument("--models", default="s+s", metavar="LIST",
                        help="on-line fit models, comma-separated from s, d, s+s, s+d, d+s, d+d "
                             "(default %(default)s)")
    parser.add_argument("--dimension", type=whole_number(1, 3), choices=(1, 2, 3), default=2,
                        help="BTK convention for on-line fits (default %(default)s, the seed's)")
    parser.add_argument("--monitor-interval", type=finite_float(0.05, 3600, "s"), default=1.0,
                        metavar="S",
                        help="instrument monitor poll interval in s (default %(default)s)")
    parser.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                        help="run metadata for every queued run: operator, sample, cell, ...")
    parser.set_defaults(func=main)


def parse_models(text: str) -> list[str]:
    from daqapp.errors import ConfigError
    from daqapp.fitworker import MODELS

    models = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS]
    if bad or not models:
        raise ConfigError(f"--models {text!r}: choose from {', '.join(MODELS)}")
    return models


def main(args: argparse.Namespace) -> int:
    from daqapp.errors import ConfigError

    if not args.monitor_interval > 0:
        raise ConfigError(f"--monitor-interval {args.monitor_interval}: must be > 0 s")
    models = parse_models(args.models)
    metadata = parse_pairs("--meta", args.meta)
    config = station_from_options(args)

    from qtpy import QtCore, QtWidgets

    from daqapp.gui.main_window import MainWindow
    from daqapp.runner import signals
    from daqapp.runner.station_lock import track_run
    from daqapp.station.lock import connect_for_driving

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["daqapp"])
    settings = QtCore.QSettings("daqapp", "gui")
    with connect_for_driving(config, "gui", ask=ask_put_safe) as conn:
        window = MainWindow(conn, output_dir=args.output, models=models,
                            dimension=args.dimension,
                            monitor_interval_s=args.monitor_interval, metadata=metadata,
                            title=f"daqapp — {config.name}", settings=settings)
        window.queue.run_listeners.append(lambda _item, run: track_run(conn, run))
        window.show()
        quit_on_interrupt(app, lambda: (window.save_layout(), window.shutdown()))
        with signals.termination_signals(
                on_signal=lambda reason: abort_and_quit(window, app, reason)):
            app.exec()
        window.shutdown()
    return signals.exit_code(0)


def abort_and_quit(window: Any, app: Any, reason: str) -> None:
    """SIGTERM/SIGHUP: abort the running run with ``reason`` (its file says why), let it reach
    the safe state and close its file, then quit the window."""
    current = window.queue.current
    if current is not None and current.run is not None:
        current.run.control.abort(reason)
    window.save_layout()
    window.shutdown()
    app.quit()


PUT_SAFE = "Put safe now"
LEAVE = "Leave as it is"


def stale_lock_dialog(stale: Any) -> Any:
    """The question asked when the station's previous driver died: the facts, and
    "Put safe now" as the default answer (Enter or closing the box picks it)."""
    from qtpy import QtWidgets

    info = stale.info
    box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning,
                                "Station left by a dead process",
                                f"The last process that drove station {info.station_name!r} "
                                "ended without putting it in its safe state.")
    facts = [f"Process: {info.command or 'unknown'} (pid {info.pid} on {info.host or '?'}, "
             f"{stale.reason})", f"Lock taken: {info.acquired or '?'}"]
    facts += [f"Run file: {path}" for path in stale.run_files] or ["Run file: none open"]
    box.setInformativeText("\n".join(facts) + "\n\nThe current source may still be on, the "
                           "excitation, heater or magnet where it left them. Put the station "
                           "in its safe state before anything else moves?")
    safe = box.addButton(PUT_SAFE, QtWidgets.QMessageBox.ButtonRole.AcceptRole)
    box.addButton(LEAVE, QtWidgets.QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(safe)
    box.setEscapeButton(safe)
    box.put_safe_button = safe
    return box


def ask_put_safe(stale: Any, conn: Any) -> bool:
    """True unless the operator chose to leave the station as the dead process left it."""
    import logging

    box = stale_lock_dialog(stale)
    box.exec()
    clicked = box.clickedButton()
    answer = clicked is None or clicked == box.put_safe_button
    if not answer:
        logging.getLogger("daqapp.gui").warning(
            "operator left station %r as the dead process left it", stale.info.station_name)
    return answer


def quit_on_interrupt(app: Any, before_quit: Any) -> Any:
    """Ctrl-C in the terminal: ``before_quit()`` (abort into the safe state), then quit.

    Qt's event loop runs in C++, where Python signal handlers never get a turn; a 200 ms
    no-op timer hands control back to Python often enough (for SIGTERM/SIGHUP too). Returns
    the timer (keep it).
    """
    import logging
    import signal

    from qtpy import QtCore

    def interrupted(*_args: Any) -> None:
        logging.getLogger("daqapp.gui").warning("interrupted: aborting any run (safe state)")
        before_quit()
        app.quit()

    signal.signal(signal.SIGINT, interrupted)
    timer = QtCore.QTimer(app)
    timer.timeout.connect(lambda: None)
    timer.start(200)
    return timer
