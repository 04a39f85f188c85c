"""pymeasure's ``ManagedWindow`` recording into daqapp run files and ending in the safe state.

pymeasure's Manager hard-wires its own ``Worker``, which writes a CSV through its Recorder and
knows nothing of a station: given daqapp's HDF5 results it took points, wrote no file, plotted
nothing and left the instruments driving. This module keeps pymeasure's window, widgets,
browser, queue and Experiment, and changes only who runs a queued Experiment: a
:class:`Manager` that starts a :class:`~daqapp.runner.pymeasure_compat.StorageWorker` (rows
into the HDF5 run file and into memory for the plots; shutdown, safe state read back, end
snapshot and status in the file, in that order, on finish, abort and error). Nothing of
pymeasure is patched. A pymeasure script changes its imports and passes the station::

    from daqapp.gui.managed import ManagedWindow, Results   # instead of pymeasure's

    class MainWindow(ManagedWindow):
        def __init__(self, station):
            super().__init__(procedure_class=CriticalCurrentIV, inputs=["current_max"],
                             displays=["current_max"], x_axis="current", y_axis="voltage",
                             station=station, output_dir="runs")

        def queue(self, procedure=None):
            procedure = procedure or self.make_procedure()
            results = Results(procedure, unique_filename(self.directory, ext="h5"))
            self.manager.queue(self.new_experiment(results))   # or self.make_experiment(...)
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path
from typing import Any

from pymeasure.display.listeners import Monitor
from pymeasure.display.manager import Experiment
from pymeasure.display.manager import Manager as PymeasureManager
from pymeasure.display.windows import ManagedWindow as PymeasureManagedWindow
from pymeasure.experiment import Procedure, unique_filename
from qtpy import QtCore, QtWidgets

from daqapp.errors import ConfigError, DaqappError
from daqapp.runner.pymeasure_compat import StorageResults, StorageWorker
from daqapp.runner.recording import unique_run_path
from daqapp.runner.station_lock import track_run

log = logging.getLogger(__name__)

#: pymeasure's name for what a queued Experiment records into: here the HDF5 run file.
Results = StorageResults

#: Seconds a closing window waits for an aborted run to reach the safe state.
CLOSE_TIMEOUT_S = 120.0


class Manager(PymeasureManager):
    """pymeasure's Manager (queue, browser, curves, signals) running each Experiment with a
    :class:`StorageWorker` on ``station``.

    ``port`` is pymeasure's ZMQ publisher port, off by default (pymeasure's 5888 binds every
    interface; the window gets status and progress through the Worker's queue anyway).
    """

    def __init__(self, widget_list: Any, browser: Any, station: Any = None,
                 metadata: dict[str, Any] | None = None, port: int | None = None,
                 log_level: int = logging.INFO, parent: Any = None) -> None:
        super().__init__(widget_list, browser, port=port, log_level=log_level, parent=parent)
        self.station = station
        self.metadata = dict(metadata or {})

    def queue(self, experiment: Experiment) -> None:
        """Queue ``experiment`` after checking it records into a run file; Results built
        without a station get this Manager's (and its metadata where they have none).

        Raises ``ConfigError`` for pymeasure's CSV ``Results`` and ``ConfigError`` /
        ``LimitError`` for parameters the station refuses, before anything is queued."""
        results = experiment.results
        if not isinstance(results, StorageResults):
            raise ConfigError(
                f"{experiment.data_filename}: {type(results).__name__} is pymeasure's CSV "
                "Results, which daqapp's Worker cannot record into; build the results with "
                "daqapp.gui.managed.Results(procedure, 'name.h5') or "
                "self.make_experiment(procedure)")
        if results.station is None and self.station is not None:
            results.attach_station(self.station)
        results.recorder.metadata = {**self.metadata, **results.recorder.metadata}
        track_run(results.station, results)  # the station lock names the open run file
        super().queue(experiment)

    def _failed(self) -> None:
        """A failed run holds the queue as an abort does (Resume runs the next); pymeasure
        went on with the next run as soon as another was queued."""
        self._start_on_add = self._is_continuous = False
        super()._failed()

    def make_worker(self, results: StorageResults) -> StorageWorker:
        return StorageWorker(results, port=self.port, log_level=self.log_level)

    def next(self) -> None:
        """pymeasure's ``Manager.next`` with :meth:`make_worker` for its hard-wired Worker."""
        if self.is_running():
            raise Exception("Another procedure is already running")
        if not self.experiments.has_next():
            return
        experiment = self.experiments.next()
        self._running_experiment = experiment
        self._worker = self.make_worker(experiment.results)
        self._worker.is_last = lambda: not self.experiments.has_next()
        self._monitor = Monitor(self._worker.monitor_queue)
        self._monitor.worker_running.connect(self._running)
        self._monitor.worker_failed.connect(self._failed)
        self._monitor.worker_abort_returned.connect(self._abort_returned)
        self._monitor.worker_finished.connect(self._finish)
        self._monitor.progress.connect(self._update_progress)
        self._monitor.status.connect(self._update_status)
        self._monitor.log.connect(self._update_log)
        self._monitor.start()
        self._worker.start()

    def wait_for_worker(self, timeout: float = CLOSE_TIMEOUT_S) -> bool:
        """Block until the running Worker has closed its file (safe state applied) and its
        Monitor has ended; True if nothing is left running. pymeasure's ``Worker.join``
        returns at once, hence the thread's own join."""
        worker, monitor = self._worker, getattr(self, "_monitor", None)  # pymeasure dels it
        if worker is not None:
            threading.Thread.join(worker, timeout)
        if monitor is not None:
            monitor.wait(int(timeout * 1000))
        return worker is None or not worker.is_alive()


class ManagedWindow(PymeasureManagedWindow):
    """pymeasure's ``ManagedWindow`` (same arguments) whose runs go to daqapp run files.

    Keyword-only additions: ``station`` (a connected station; None when the procedure drives
    its own instruments), ``output_dir`` (the file input's folder, default the current one)
    and ``metadata`` (sample, operator... stored in every run file). Subclasses write
    ``queue()`` as for pymeasure, building ``Results(procedure, filename)`` from this module,
    or call :meth:`make_experiment`; without an override, ``queue()`` uses the file input as
    pymeasure's does. Closing the window aborts a running procedure and waits until the
    station is in its safe state.
    """

    def __init__(self, procedure_class: type[Procedure], x_axis: str | None = None,
                 y_axis: str | None = None, linewidth: int = 1, log_fmt: str | None = None,
                 log_datefmt: str | None = None, *, station: Any = None,
                 output_dir: str | Path | None = None, metadata: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        self.station = station
        self.output_dir = Path(output_dir) if output_dir is not None else Path.cwd()
        self.metadata = dict(metadata or {})
        super().__init__(procedure_class, x_axis=x_axis, y_axis=y_axis, linewidth=linewidth,
                         log_fmt=log_fmt, log_datefmt=log_datefmt, **kwargs)
        if self.enable_file_input:
            self.file_input.extensions = ["h5"]
            self.directory = str(self.output_dir)
        # pymeasure's LogWidget blinks its tab on errors through ONE QTimer shared by every
        # LogWidget of the process (a class attribute): an error in one window blinked all
        # of them, those with no colour set raising in Qt's event loop. One timer per window.
        widget = self.log_widget
        widget._blink_qtimer.timeout.disconnect(widget._blink)
        widget._blink_qtimer = QtCore.QTimer(widget)
        widget._blink_qtimer.timeout.connect(widget._blink)

    def _setup_ui(self) -> None:
        super()._setup_ui()
        unused = self.manager  # pymeasure's, which would start its own Worker: never used
        self.manager = Manager(self.widget_list, self.browser, station=self.station,
                               metadata=self.metadata, log_level=self.log_level, parent=self)
        self.manager.abort_returned.connect(self.abort_returned)
        self.manager.queued.connect(self.queued)
        self.manager.running.connect(self.running)
        self.manager.finished.connect(self.finished)
        self.manager.failed.connect(self.failed)
        self.manager.log.connect(self.log.handle)
        unused.deleteLater()

    # ---- building what is queued --------------------------------------------------------
    def make_experiment(self, procedure: Procedure | None = None,
                        filename: str | Path | None = None) -> Experiment:
        """An Experiment recording ``procedure`` (default: the inputs') into ``filename``
        (default ``<folder>/<Procedure>_<date-time>.h5``) on this window's station; raises
        ConfigError/LimitError for parameters the station refuses."""
        if procedure is None:
            procedure = self.make_procedure()
        if filename is None:
            filename = unique_run_path(self._run_folder(), type(procedure).__name__)
        results = Results(procedure, filename, station=self.station)
        return self.new_experiment(results)

    def queue(self, procedure: Procedure | None = None) -> None:
        """pymeasure's default ``queue()`` (file input name and folder), into a run file."""
        if not self.enable_file_input:
            raise NotImplementedError("Queue method must be overwritten if the filename- and "
                                      "directory-inputs are disabled.")
        if procedure is None:
            procedure = self.make_procedure()
        if self.store_measurement:
            filename = unique_filename(self.directory, prefix=self.file_input.filename_base,
                                       datetimeformat="", procedure=procedure, ext="h5")
        else:
            folder = Path(tempfile.mkdtemp(prefix="daqapp-"))
            filename = folder / f"{type(procedure).__name__}.h5"
        self.manager.queue(self.make_experiment(procedure, filename))

    def load_run(self, filename: str | Path) -> Experiment:
        """A past run file in the browser and the plots, as pymeasure's Open does for CSV."""
        experiment = self.new_experiment(Results.load(filename, self.procedure_class))
        for curve in experiment.curve_list:
            if curve:
                curve.update_data()
        experiment.browser_item.progressbar.setValue(100)
        self.manager.load(experiment)
        return experiment

    def open_experiment(self) -> None:
        """The browser's Open button on run files (pymeasure's dialog previews CSV only and
        its loader raised on HDF5, inside a Qt slot: the end of a PyQt program)."""
        filenames, _ = QtWidgets.QFileDialog.getOpenFileNames(
            self, "Open run files", str(self._run_folder()), "daqapp run files (*.h5 *.hdf5)")
        for filename in filenames:
            if filename in self.manager.experiments:
                log.warning("%s is open already", Path(filename).name)
                continue
            try:
                self.load_run(filename)
            except (DaqappError, OSError) as exc:
                log.error("not opened: %s", exc)

    def _run_folder(self) -> Path:
        return Path(self.directory) if self.enable_file_input else self.output_dir

    def _queue(self, checked: bool = False) -> None:
        """The Queue button: a refused parameter or file name is shown, not raised into Qt
        (an exception escaping a slot ends a PyQt program)."""
        try:
            self.queue()
        except (DaqappError, ValueError) as exc:
            text = str(exc) or type(exc).__name__
            if not isinstance(exc, DaqappError):
                log.debug("queue refused", exc_info=True)
            log.error("not queued: %s", text)
            self.statusBar().showMessage(f"Not queued: {text}")

    # ---- end of runs --------------------------------------------------------------------
    def failed(self, experiment: Experiment) -> None:
        """pymeasure leaves the window as if still running after a failure; show it and
        hold the queue (Resume starts the next run) as after an abort."""
        log.error("%s: run %s: %s", Path(experiment.data_filename).name,
                  experiment.results.status, experiment.results.error)
        if self.manager.experiments.has_next():
            self.abort_button.setText("Resume")
            self.abort_button.clicked.disconnect()
            self.abort_button.clicked.connect(self.resume)
            self.abort_button.setEnabled(True)
        else:
            self.abort_button.setEnabled(False)
        self.browser_widget.clear_button.setEnabled(True)

    def shutdown(self, timeout: float = CLOSE_TIMEOUT_S) -> bool:
        """Abort a running procedure and wait until its file is closed with the station in
        its safe state; True if nothing is left running."""
        if self.manager.is_running():
            self.abort()
        return self.manager.wait_for_worker(timeout)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        if not self.shutdown():
            log.error("the run did not end within %.0f s of closing the window: check the "
                      "instruments by hand", CLOSE_TIMEOUT_S)
        # pymeasure leaves both running for good: its log widget on the root logger, and the
        # estimator's thread reading the inputs every 2 s; once this window's widgets are
        # deleted, each would raise in Qt's event loop
        logging.getLogger().removeHandler(self.log_widget.handler)
        if self.use_estimator:
            self.estimator.update_thread.join()
        super().closeEvent(event)


__all__ = ["Experiment", "Manager", "ManagedWindow", "Results"]
