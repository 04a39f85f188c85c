"""A pymeasure ManagedWindow script, recording into daqapp run files.

Written as pymeasure's tutorial writes one (a ManagedWindow subclass naming the procedure, its
inputs, the browser columns and the plot axes; ``queue()`` builds Results and an Experiment and
hands it to the Manager). Only the imports differ, and the window is given the station: the
Manager then runs each Experiment with daqapp's Worker, so rows go to an HDF5 run file, the plot
is live and every run ends with the station in its safe state (also on Abort, on an error and
when the window is closed).

    python examples/pymeasure_window.py --simulate --speed 100 --output runs
    python examples/pymeasure_window.py --station lab.toml --output /data/cell2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pymeasure.experiment import unique_filename

# the two names a pymeasure script imports from pymeasure, taken from daqapp instead
from daqapp.gui.managed import ManagedWindow, Results
from procedures.iv import CriticalCurrentIV


class IVWindow(ManagedWindow):
    """I–V curves of the sample, one run file per queued sweep."""

    def __init__(self, station: Any, output_dir: Path) -> None:
        super().__init__(
            procedure_class=CriticalCurrentIV,
            inputs=["current_max", "points", "directions", "settle", "offset"],
            displays=["current_max", "points", "directions"],
            x_axis="current",
            y_axis="voltage",
            enable_file_input=False,
            station=station,
            output_dir=output_dir,
            metadata={"operator": "pymeasure window"},
        )
        self.setWindowTitle("I–V (pymeasure ManagedWindow on daqapp)")

    def queue(self, procedure: CriticalCurrentIV | None = None) -> None:
        if procedure is None:
            procedure = self.make_procedure()
        filename = unique_filename(str(self.output_dir), prefix="IV", ext="h5")
        results = Results(procedure, filename)
        experiment = self.new_experiment(results)
        self.manager.queue(experiment)


def main(argv: list[str] | None = None) -> int:
    from qtpy import QtWidgets

    from daqapp.commands._station_options import add_station_options, station_from_options
    from daqapp.commands.gui import ask_put_safe, quit_on_interrupt
    from daqapp.errors import DaqappError
    from daqapp.station.lock import connect_for_driving

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_station_options(parser, default_speed=100.0)
    parser.add_argument("--output", type=Path, default=Path("runs"),
                        help="folder for run files (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        config = station_from_options(args)
    except DaqappError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv)
    with connect_for_driving(config, "pymeasure window", ask=ask_put_safe) as conn:
        window = IVWindow(conn, args.output)
        window.show()
        _timer = quit_on_interrupt(app, window.shutdown)  # Ctrl-C: abort into the safe state
        app.exec()
        window.shutdown()  # the station closes only once the last run is safe
    return 0


if __name__ == "__main__":
    sys.exit(main())
