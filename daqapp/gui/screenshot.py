"""Regenerate the README screenshot: the window during a simulated temperature series.

``python -m daqapp.gui.screenshot docs/screenshots/main-window.png`` runs the seed's Cell 2
preset on the virtual lab (offscreen), queues a temperature series, and saves the window once
several spectra have been fitted and Δ(T) has its BCS curve — while the run is still going.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


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
        for _ in range(5):
            app.processEvents()
            time.sleep(0.05)
        window._redraw(force=True)  # noqa: SLF001 - draw what the timer would draw next
        app.processEvents()
        output.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(output))
        window.shutdown()
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, nargs="?",
                        default=Path("docs/screenshots/main-window.png"))
    parser.add_argument("--speed", type=float, default=600.0)
    args = parser.parse_args(argv)
    print(capture(args.output, speed=args.speed))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
