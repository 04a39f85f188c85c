"""Regenerate the README screenshot: the window during a simulated temperature series.

``python -m daqapp.gui.screenshot docs/screenshots/main-window.png`` runs the seed's Cell 2
preset on the virtual lab (offscreen), queues a temperature series, and saves the window once
several spectra have been fitted and Δ(T) has its BCS curve — while the run is still going.

``python -m daqapp.gui.screenshot --campaign daqapp/examples_data/quick.toml
docs/screenshots/campaign-window.png`` runs that campaign from the window (File → Open
campaign…, Start) and saves the window during one of its spectrum steps, with earlier steps
finished in the Campaign panel.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def _save(app, window, output: Path, before_draw=None) -> None:
    """Let pending events settle, draw what the timer would draw next, save the PNG and shut
    the window down."""
    for _ in range(5):
        app.processEvents()
        time.sleep(0.05)
    if before_draw is not None:
        before_draw()
    window._redraw(force=True)  # noqa: SLF001 - draw what the timer would draw next
    app.processEvents()
    output.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(output))
    window.shutdown()


def capture(output: Path, temperatures: str = "3, 8, 14, 20, 26, 32", speed: float = 600.0,
            spectra_before_capture: int = 4, timeout_s: float = 600.0) -> Path:
    """Run the series and save the window PNG at ``output``; returns the path."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qtpy import QtCore, QtWidgets

    from daqapp.gui.main_window import MainWindow
    from daqapp.station import Station

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["daqapp"])
    with tempfile.TemporaryDirectory() as runs, \
            Station.simulated(speed=speed, seed=7).connect() as conn:
        window = MainWindow(conn, output_dir=runs, monitor_interval_s=0.25,
                            metadata={"sample": "La3Ni2O7 cell 2 (virtual)", "operator": "demo"},
                            title="daqapp — virtual lab, La3Ni2O7 cell 2")
        window.show()
        form = window.select_procedure("temperature-series")
        values = {"temperatures": temperatures, "points": "161", "hold_time": "20",
                  "directions": "up"}
        for key, text in values.items():
            editor = form.fields[key].editor
            if isinstance(editor, QtWidgets.QComboBox):
                editor.setCurrentText(text)
            else:
                editor.setText(text)
        item = window.queue_current()
        if item is None:
            raise RuntimeError("the temperature series was not accepted: "
                               + "; ".join(form.errors()))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
            fit = window.last_fit
            if (fit is not None and len(window.fitworker.updates) >= spectra_before_capture
                    and not item.finished):
                break
            if item.finished:
                break
            time.sleep(0.02)
        _save(app, window, output)
    return output


def capture_campaign(output: Path, campaign: Path, speed: float = 600.0,
                     spectra_before_capture: int = 3, timeout_s: float = 600.0) -> Path:
    """Run ``campaign`` from the window on the virtual lab; save the window PNG while it runs
    (after ``spectra_before_capture`` fitted spectra); returns the path."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qtpy import QtCore, QtWidgets

    from daqapp.gui.main_window import MainWindow
    from daqapp.station import Station

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["daqapp"])
    with tempfile.TemporaryDirectory() as runs, \
            Station.simulated(speed=speed, seed=7).connect() as conn:
        window = MainWindow(conn, output_dir=runs, monitor_interval_s=0.25,
                            title="daqapp — virtual lab, La3Ni2O7 cell 2")
        window.show()
        if not window.open_campaign(campaign) or not window.start_campaign(
                Path(runs) / campaign.stem):
            raise RuntimeError(f"the campaign did not start: {window.campaign_panel.message}")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and window.campaign.running:
            app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
            shown = window.shown
            executor = window.campaign.executor
            measuring = executor is not None and executor.progress is not None and \
                executor.progress.state.startswith("measuring")
            if (measuring and len(window.fitworker.updates) >= spectra_before_capture
                    and shown is not None and shown.buffer is not None
                    and len(shown.buffer) > 60 and not window.fitworker.busy):
                break
            time.sleep(0.02)
        if not window.campaign.running:
            raise RuntimeError("the campaign ended before the screenshot: "
                               + window.campaign_panel.status_text())
        _save(app, window, output, window.campaign_panel.refresh)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, nargs="?", default=None,
                        help="PNG to write (default docs/screenshots/main-window.png, or "
                             "campaign-window.png with --campaign)")
    parser.add_argument("--speed", type=float, default=600.0)
    parser.add_argument("--campaign", type=Path, default=None,
                        help="campaign file to run from the window instead of a queued series")
    args = parser.parse_args(argv)
    if args.campaign is not None:
        output = args.output or Path("docs/screenshots/campaign-window.png")
        print(capture_campaign(output, args.campaign, speed=args.speed))
        return 0
    print(capture(args.output or Path("docs/screenshots/main-window.png"), speed=args.speed))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
