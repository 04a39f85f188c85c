"""The operator window: queue procedures, watch them live, fit on-line, keep an eye on the cryostat.

Layout (all panels are docks the operator can move, tab or float):
left — *Measurement* (procedure, parameters, queue button), *Queue*, *Campaign*, *Runs* (past
runs), *Instruments* (monitor); centre — dI/dV with the fit; right — *Fits* and *Δ(T)*;
bottom — I–V, R–T, temperature/field against time, a free X/Y plot, and the *Log*.
Run verbs (stop, pause/resume, abort), the progress and the time left sit in the tool bar; while
a campaign runs they act on it (:mod:`daqapp.gui.campaign_panel`), and each of its steps is
drawn and fitted like a queued run.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qtpy import QtCore, QtGui, QtWidgets

from daqapp.errors import DaqappError
from daqapp.fitworker import FitUpdate, FitWorker
from daqapp.gui.campaign_panel import CampaignPanel, CampaignRunner, save_queue_as_campaign
from daqapp.gui.catalogue import discover_procedures, summary
from daqapp.gui.fitpanel import FitPanel
from daqapp.gui.logpanel import LogPanel
from daqapp.gui.monitor import InstrumentPoller, MonitorPanel, MonitorReading
from daqapp.gui.params import ParameterForm
from daqapp.gui.plotset import PlotSet
from daqapp.gui.runs_browser import RunsBrowser
from daqapp.gui.session import QueuedRun, RunQueue
from daqapp.runner import events
from daqapp.runner.procedure import format_duration
from daqapp.runner.roles import lab_seconds_to_real

log = logging.getLogger(__name__)

DEFAULT_SIZE = (1600, 1000)


class _Bridge(QtCore.QObject):
    """Carries callbacks from worker threads to the GUI thread."""

    fit = QtCore.Signal(object)
    reading = QtCore.Signal(object)


class MainWindow(QtWidgets.QMainWindow):
    """The operator GUI on one station (connected roles) and one output folder."""

    def __init__(self, station: Any = None, output_dir: str | Path = "runs",
                 procedures: Mapping[str, type] | None = None,
                 models: Sequence[str] = ("s+s",), dimension: int = 2,
                 monitor_interval_s: float = 1.0, redraw_hz: float = 10.0,
                 metadata: Mapping[str, Any] | None = None, title: str = "daqapp",
                 fitter: Any = None, settings: QtCore.QSettings | None = None) -> None:
        """``settings``: where the dock layout and each procedure's last queued values are
        kept between sessions (the ``daqapp gui`` command passes the user's; None: not kept).
        """
        super().__init__()
        self.setWindowTitle(title)
        self.settings = settings
        self.station = station
        self.output_dir = Path(output_dir)
        self.procedures = dict(procedures) if procedures is not None else discover_procedures()
        self.bridge = _Bridge(self)
        self.queue = RunQueue(station, self.output_dir, metadata,
                              run_listeners=[self._before_run], parent=self)
        self.fitter = fitter
        self.fitworker = FitWorker(models=models, dimension=dimension, fitter=fitter)
        self.fitworker.add_listener(self.bridge.fit.emit)
        self.bridge.fit.connect(self._on_fit)
        self.bridge.reading.connect(self._on_reading)
        self.shown: QueuedRun | None = None
        self.last_fit: FitUpdate | None = None
        self._monitor_dirty = False
        self.replay_windows: list[QtWidgets.QWidget] = []
        self.campaign = CampaignRunner(station, parent=self)
        self.campaign.step_started.connect(self._on_campaign_step)
        self.campaign.step_event.connect(self._on_campaign_event)
        self.campaign.finished.connect(lambda _outcome: self._on_campaign_ended())
        self.campaign.refused.connect(lambda _text: self._on_campaign_ended())

        self.plots = PlotSet(self)
        self.setCentralWidget(self._framed(self.plots.didv, "dI/dV against bias (live fit in red)"))
        self._build_toolbar()
        self._build_docks(models)
        self._build_menu()
        self.statusBar().showMessage(f"Runs are saved in {self.output_dir.resolve()}")

        self.queue.event.connect(self._on_run_event)
        self.queue.run_started.connect(self._on_run_started)
        self.queue.run_ended.connect(self._on_run_ended)
        self.queue.queue_changed.connect(self._refresh_queue)

        self.redraw_timer = QtCore.QTimer(self)
        self.redraw_timer.setInterval(max(50, int(1000 / redraw_hz)))  # capped redraw rate
        self.redraw_timer.timeout.connect(self._redraw)
        self.redraw_timer.start()

        self.poller: InstrumentPoller | None = None
        if station is not None:
            self.poller = InstrumentPoller(station, self.bridge.reading.emit, monitor_interval_s)
            self.poller.start()
        self.resize(*DEFAULT_SIZE)
        self._default_state = self.saveState()
        self._restore_layout()
        self._update_buttons()

    # ----------------------------------------------------------------------------- building
    @staticmethod
    def _framed(widget: QtWidgets.QWidget, tip: str) -> QtWidgets.QWidget:
        widget.setToolTip(tip)
        return widget

    def _build_toolbar(self) -> None:
        bar = self.addToolBar("Run")
        bar.setObjectName("run-toolbar")
        bar.setMovable(False)
        self.stop_button = QtWidgets.QPushButton("■ Stop")
        self.stop_button.setToolTip("Finish the point being taken, save, and end the run")
        self.stop_button.clicked.connect(self.queue.stop)
        self.pause_button = QtWidgets.QPushButton("❚❚ Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Hold the run at its next point; press again to resume")
        self.pause_button.toggled.connect(self._pause_toggled)
        self.abort_button = QtWidgets.QPushButton("⚠ Abort")
        self.abort_button.setToolTip("Stop at once, put every instrument in the safe state and "
                                     "drop the queued runs")
        self.abort_button.setStyleSheet(
            "QPushButton { background: #C00000; color: white; font-weight: bold; "
            "padding: 3px 10px; } QPushButton:disabled { background: #E8B0B0; }")
        self.abort_button.clicked.connect(self.abort)
        for w in (self.stop_button, self.pause_button, self.abort_button):
            bar.addWidget(w)
        bar.addSeparator()
        self.run_label = QtWidgets.QLabel("Idle")
        self.run_label.setMinimumWidth(220)
        bar.addWidget(self.run_label)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFixedWidth(200)
        self.progress.setFormat("%p %")
        bar.addWidget(self.progress)
        self.eta_label = QtWidgets.QLabel("")
        self.eta_label.setMinimumWidth(200)
        bar.addWidget(self.eta_label)

    def _dock(self, title: str, widget: QtWidgets.QWidget, area: QtCore.Qt.DockWidgetArea,
              name: str) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        self.docks[name] = dock
        return dock

    def _build_docks(self, models: Sequence[str]) -> None:
        self.docks: dict[str, QtWidgets.QDockWidget] = {}
        self.setDockNestingEnabled(True)
        area = QtCore.Qt.DockWidgetArea
        left, right = area.LeftDockWidgetArea, area.RightDockWidgetArea
        bottom = area.BottomDockWidgetArea
        self.setCorner(QtCore.Qt.Corner.BottomLeftCorner, left)
        self.setCorner(QtCore.Qt.Corner.BottomRightCorner, bottom)

        self._dock("Measurement", self._build_measurement(), left, "measurement")
        self.queue_panel = self._build_queue_panel()
        self._dock("Queue", self.queue_panel, left, "queue")
        self.runs_browser = RunsBrowser(self.output_dir)
        self.runs_browser.open_requested.connect(self.open_replay)
        self._dock("Runs", self.runs_browser, left, "runs")
        self.campaign_panel = CampaignPanel(self.campaign, self.output_dir)
        # in a scroll area: the panel's own minimum height (steps table, buttons, progress)
        # would otherwise set the height of the Queue/Runs area and squeeze the form above
        campaign_area = QtWidgets.QScrollArea()
        campaign_area.setWidgetResizable(True)
        campaign_area.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        campaign_area.setWidget(self.campaign_panel)
        self._dock("Campaign", campaign_area, left, "campaign")
        self.tabifyDockWidget(self.docks["queue"], self.docks["campaign"])
        self.tabifyDockWidget(self.docks["campaign"], self.docks["runs"])
        self.docks["queue"].raise_()
        self.monitor = MonitorPanel()
        self._dock("Instruments", self.monitor, left, "monitor")

        self.fit_panel = FitPanel(models)
        self.fit_panel.models_changed.connect(self._models_changed)
        self.fit_panel.refit_requested.connect(self._refit_shown)
        self._dock("Fits", self.fit_panel, right, "fits")
        self._dock("Δ(T) and BCS fit", self.plots.gap, right, "gap")

        self._dock("I–V", self.plots.iv, bottom, "iv")
        self._dock("Temperature and field", self.plots.tb, bottom, "tb")
        self.log_panel = LogPanel()
        self._dock("Log", self.log_panel, bottom, "log")
        self.splitDockWidget(self.docks["iv"], self.docks["tb"], QtCore.Qt.Orientation.Horizontal)
        self.splitDockWidget(self.docks["tb"], self.docks["log"], QtCore.Qt.Orientation.Horizontal)
        self._dock("R–T", self.plots.rt, bottom, "rt")
        self._dock("X–Y", self.plots.custom, bottom, "custom")
        self.tabifyDockWidget(self.docks["iv"], self.docks["rt"])
        self.tabifyDockWidget(self.docks["rt"], self.docks["custom"])
        self.docks["iv"].raise_()

        self.resizeDocks([self.docks["measurement"], self.docks["fits"]], [400, 440],
                         QtCore.Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["measurement"], self.docks["queue"],
                          self.docks["monitor"]], [440, 200, 250], QtCore.Qt.Orientation.Vertical)
        self.resizeDocks([self.docks["iv"]], [250], QtCore.Qt.Orientation.Vertical)
        self.resizeDocks([self.docks["fits"], self.docks["gap"]], [420, 250],
                         QtCore.Qt.Orientation.Vertical)
        self.resizeDocks([self.docks["iv"], self.docks["tb"], self.docks["log"]],
                         [360, 400, 460], QtCore.Qt.Orientation.Horizontal)

    def _build_measurement(self) -> QtWidgets.QWidget:
        panel = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(panel)
        layout.setContentsMargins(4, 4, 4, 4)
        self.procedure_combo = QtWidgets.QComboBox()
        for name in self.procedures:
            self.procedure_combo.addItem(name)
        self.procedure_combo.currentTextChanged.connect(self._procedure_changed)
        layout.addWidget(self.procedure_combo)
        self.procedure_summary = QtWidgets.QLabel()
        self.procedure_summary.setWordWrap(True)
        self.procedure_summary.setStyleSheet("color: #444444;")
        layout.addWidget(self.procedure_summary)
        self.form_area = QtWidgets.QScrollArea()
        self.form_area.setWidgetResizable(True)
        self.form_area.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        layout.addWidget(self.form_area, 1)
        row = QtWidgets.QHBoxLayout()
        self.estimate_label = QtWidgets.QLabel("")
        row.addWidget(self.estimate_label, 1)
        self.queue_button = QtWidgets.QPushButton("Queue run")
        self.queue_button.setDefault(True)
        self.queue_button.clicked.connect(self.queue_current)
        row.addWidget(self.queue_button)
        layout.addLayout(row)
        self.form: ParameterForm | None = None
        self._procedure_changed(self.procedure_combo.currentText())
        return panel

    def _build_queue_panel(self) -> QtWidgets.QWidget:
        panel = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(panel)
        layout.setContentsMargins(4, 4, 4, 4)
        self.queue_list = QtWidgets.QListWidget()
        layout.addWidget(self.queue_list, 1)
        row = QtWidgets.QHBoxLayout()
        self.remove_button = QtWidgets.QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected run (if it has not started)")
        self.remove_button.clicked.connect(self._remove_selected)
        row.addWidget(self.remove_button)
        self.hold_box = QtWidgets.QCheckBox("Hold queue after this run")
        self.hold_box.toggled.connect(self._hold_toggled)
        row.addWidget(self.hold_box)
        row.addStretch(1)
        self.queue_total = QtWidgets.QLabel("")
        row.addWidget(self.queue_total)
        layout.addLayout(row)
        return panel

    def _build_menu(self) -> None:
        menu = self.menuBar().addMenu("&File")
        act = menu.addAction("Open run for replay…")
        act.setShortcut(QtGui.QKeySequence.StandardKey.Open)
        act.triggered.connect(self._open_dialog)
        menu.addSeparator()
        menu.addAction("Open campaign…", self._open_campaign_dialog)
        menu.addAction("Resume campaign folder…", self._resume_campaign_dialog)
        menu.addAction("Save queue as campaign…", self._save_queue_dialog)
        menu.addSeparator()
        act = menu.addAction("Export plots (PNG/SVG)…")
        act.triggered.connect(self._export_dialog)
        act = menu.addAction("Export fit table (CSV)…")
        act.triggered.connect(self.fit_panel.export_dialog)
        menu.addSeparator()
        menu.addAction("Quit", self.close)
        view = self.menuBar().addMenu("&View")
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())
        view.addSeparator()
        view.addAction("Reset layout", self.reset_layout)

    # ----------------------------------------------------------------------------- procedures
    def _procedure_changed(self, name: str) -> None:
        cls = self.procedures.get(name)
        if cls is None:
            self.procedure_summary.setText("No procedures found." if not self.procedures else "")
            self.form_area.setWidget(QtWidgets.QWidget())
            self.form = None
            self._update_buttons()
            return
        self.procedure_summary.setText(summary(cls))
        self.form = ParameterForm(cls, station=self.station)
        remembered = self._remembered_values(name)
        if remembered:
            self.form.set_values(remembered)
        self.form.validity_changed.connect(lambda _ok: self._check_form())
        self.form_area.setWidget(self.form)
        self._check_form()

    def select_procedure(self, name: str) -> ParameterForm:
        """Show ``name``'s parameters (as if the operator picked it) and return the form."""
        index = self.procedure_combo.findText(name)
        if index < 0:
            raise DaqappError(f"procedure {name!r} is not available "
                              f"(available: {', '.join(self.procedures)})")
        self.procedure_combo.setCurrentIndex(index)
        self._procedure_changed(name)
        assert self.form is not None
        return self.form

    def _check_form(self) -> bool:
        """Field-level check plus the procedure's own station-limit check (no instrument I/O)."""
        form = self.form
        if form is None:
            return False
        form.set_external_error(None)
        if form.errors():
            self.estimate_label.setText("")
            self._update_buttons()
            return False
        try:
            procedure = self.queue.make_procedure(form.procedure_class, form.values())
            from daqapp.runner import Run

            Run(procedure, station=self.station, output_dir=self.output_dir).validate()
        except DaqappError as exc:
            form.set_external_error(str(exc))
            self.estimate_label.setText("")
            self._update_buttons()
            return False
        estimate = procedure.estimate_duration() if hasattr(procedure, "estimate_duration") \
            else math.nan
        real = lab_seconds_to_real(self.station, estimate) if estimate == estimate else estimate
        text = f"≈ {format_duration(real)}" if real == real else ""
        if real == real and abs(real - estimate) > 1.0:
            text += f" (lab clock {format_duration(estimate)})"
        self.estimate_label.setText(text)
        self._update_buttons()
        return True

    def queue_current(self) -> QueuedRun | None:
        """Queue the procedure shown with the values in its form (refused if any is bad)."""
        if self.form is None or not self._check_form():
            errors = self.form.errors() if self.form is not None else ["no procedure"]
            self.statusBar().showMessage("Not queued: " + "; ".join(errors), 10000)
            return None
        try:
            item = self.queue.enqueue(self.form.procedure_class, self.form.values())
        except DaqappError as exc:
            self.form.set_external_error(str(exc))
            self.statusBar().showMessage(f"Not queued: {exc}", 10000)
            return None
        self.statusBar().showMessage(f"Queued #{item.number} {item.label}", 5000)
        self._remember_values(self.procedure_combo.currentText(), item.values)
        return item

    # ----------------------------------------------------------------------------- run verbs
    def abort(self) -> None:
        if self.campaign.running:
            self.campaign.abort()
            self.run_label.setText("ABORTING the campaign: going to the safe state")
            return
        if self.queue.current is None:
            self.statusBar().showMessage("Nothing to abort", 5000)
            return
        self.queue.abort()
        self.run_label.setText(f"ABORTING #{self.queue.current.number}: going to the safe state")

    def _pause_toggled(self, paused: bool) -> None:
        if self.campaign.running:
            self.campaign_panel.set_paused(paused)
            self.pause_button.setText("▶ Resume" if paused else "❚❚ Pause")
            return
        if paused:
            if self.queue.pause():
                self.pause_button.setText("▶ Resume")
            else:
                self.pause_button.setChecked(False)
        else:
            self.queue.resume()
            self.pause_button.setText("❚❚ Pause")

    def _hold_toggled(self, hold: bool) -> None:
        self.queue.paused_after_current = hold
        if not hold:
            self.queue.start_next()

    def _remove_selected(self) -> None:
        for entry in self.queue_list.selectedItems():
            item = entry.data(QtCore.Qt.ItemDataRole.UserRole)
            self.queue.remove(item)

    def _update_buttons(self) -> None:
        running = self.queue.current is not None
        campaign = self.campaign.running
        for w in (self.pause_button, self.abort_button):
            w.setEnabled(running or campaign)
        self.stop_button.setEnabled(running and not campaign)
        valid = self.form is not None and not self.form.errors()
        self.queue_button.setEnabled(valid)

    # ----------------------------------------------------------------------------- run events
    def _before_run(self, item: QueuedRun, run: Any) -> None:
        """Called on the GUI thread just before a run starts: the fit worker follows it."""
        new_series = None  # auto: a run of the same contact continues the Δ(T) series
        self.fitworker.attach(run, units=item.buffer.units if item.buffer else None,
                              new_series=new_series)
        item.listeners.append(self._mark_overload)
        if self.poller is not None:
            self.poller.run_active.set()

    def _mark_overload(self, event: Any) -> None:
        """The lock-in overload as the run saw it (the monitor leaves the latch to the run):
        a point that needed sensitivity steps overloaded first."""
        if event.kind == events.RECORD:
            for key in ("overload_steps", "overload"):
                value = event.payload.get(key)
                if value is not None and value == value:
                    self.monitor.show_run_overload(bool(value))
                    return

    def _on_run_started(self, item: QueuedRun) -> None:
        self.shown = item
        self.last_fit = None
        self.plots.clear_run()
        self.fit_panel.show_fit([], [], f"Run #{item.number} {item.label}: waiting for the "
                                        "first complete spectrum")
        self.pause_button.setChecked(False)
        self._update_buttons()
        self._update_run_label()

    def _leave_run(self) -> None:
        """What a finished run or campaign hands back: the monitor's idle polling, no overload
        shown, the pause button released (without its signal: nothing to resume)."""
        if self.poller is not None and self.queue.current is None:
            self.poller.run_active.clear()
        self.monitor.show_run_overload(None)
        self.pause_button.blockSignals(True)
        self.pause_button.setChecked(False)
        self.pause_button.setText("❚❚ Pause")
        self.pause_button.blockSignals(False)

    def _on_run_ended(self, item: QueuedRun) -> None:
        self._leave_run()
        self._update_buttons()
        self._update_run_label(item)
        self.runs_browser.refresh()
        self._redraw(force=True)

    def _on_run_event(self, item: QueuedRun, event: Any) -> None:
        if event.kind == events.STATUS:
            status = event.payload.get("status", "")
            reason = event.payload.get("reason", "")
            if status == events.PAUSED:
                self.run_label.setText(f"#{item.number} {item.label}: PAUSED")
            elif status == events.SUSPENDED:
                self.run_label.setText(f"#{item.number} {item.label}: SUSPENDED — {reason}")
            else:
                self._update_run_label(item)
        elif event.kind == events.LOG:
            self.log_panel.log_run_event(f"#{item.number}", event.payload.get("level", "INFO"),
                                         str(event.payload.get("message", "")))
        elif event.kind == events.PROGRESS:
            self.progress.setValue(int(10 * item.progress))

    def _update_run_label(self, item: QueuedRun | None = None) -> None:
        item = item or self.queue.current
        if item is None:
            self.run_label.setText("Idle")
            return
        text = f"#{item.number} {item.label}: {item.status}"
        if item.finished and item.error:
            text += f" — {item.error}"
        result = item.run.result if item.finished and item.run is not None else None
        if result is not None and result.safe_state and result.safe_state not in text:
            # the read-back verdict: short when confirmed, every unconfirmed role when not
            confirmed = result.safe_state.startswith("safe state confirmed")
            text += " — " + ("safe state confirmed" if confirmed else result.safe_state)
            self.statusBar().showMessage(result.safe_state)
        self.run_label.setText(text)
        self.run_label.setToolTip(str(item.path or ""))
        if item.finished and item.status == events.FINISHED:
            self.progress.setValue(1000)

    def _refresh_queue(self) -> None:
        self.queue_list.clear()
        for item in self.queue.items[-200:]:
            left = item.remaining_s()
            when = (f"≈ {format_duration(left)}" if not item.finished and left == left else "")
            text = f"#{item.number} {item.label} — {item.status} {when}".rstrip()
            entry = QtWidgets.QListWidgetItem(text)
            entry.setData(QtCore.Qt.ItemDataRole.UserRole, item)
            entry.setToolTip(", ".join(f"{k} = {v}" for k, v in item.values.items())
                             + (f"\n{item.path}" if item.path else "")
                             + (f"\n{item.error}" if item.error else ""))
            if item.status in (events.ABORTED, events.FAILED):
                entry.setForeground(QtGui.QBrush(QtGui.QColor("#C00000")))
            elif item.status == "queued":
                entry.setForeground(QtGui.QBrush(QtGui.QColor("#555555")))
            self.queue_list.addItem(entry)
        total = self.queue.total_remaining_s()
        self.queue_total.setText(f"queue ≈ {format_duration(total)}" if total > 0 else "")
        self._update_buttons()

    # ----------------------------------------------------------------------------- campaigns
    def campaign_blocker(self) -> str:
        """Why a campaign cannot use the window's station now ("" when it can)."""
        current = self.queue.current
        if current is not None:
            return (f"queued run #{current.number} {current.label} is running on this "
                    "station; let it end (or abort it) before starting a campaign")
        return ""

    def _show_campaign_dock(self) -> None:
        """The Campaign tab in front, tall enough for its steps table."""
        dock = self.docks["campaign"]
        dock.show()
        dock.raise_()
        self.resizeDocks([self.docks["measurement"], dock], [150, 560],
                         QtCore.Qt.Orientation.Vertical)
        self.resizeDocks([dock], [430], QtCore.Qt.Orientation.Horizontal)

    def open_campaign(self, path: str | Path) -> bool:
        """Show a campaign file's steps (validated as ``campaign run`` does); not started."""
        self._show_campaign_dock()
        return self.campaign_panel.open_campaign(path)

    def resume_campaign_folder(self, folder: str | Path) -> bool:
        """Open an interrupted campaign folder and resume it at its first unfinished step."""
        self._show_campaign_dock()
        return self.campaign_panel.open_folder(folder) and self.start_campaign()

    def start_campaign(self, folder: str | Path | None = None) -> bool:
        """Start the open campaign (into ``folder``, or a new one under the output folder)."""
        started = self.campaign_panel.start(folder, busy=self.campaign_blocker())
        if started:
            if self.campaign.borrowed:  # the queue's runs wait for the campaign to end
                self.queue.paused_after_current = True
            if self.poller is not None and self.campaign.borrowed:
                self.poller.run_active.set()
            self.run_label.setText(f"campaign {self.campaign_panel.campaign.name}: starting")
        self._update_buttons()
        return started

    def _open_campaign_dialog(self) -> None:
        name, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open campaign",
                                                        str(self.output_dir),
                                                        "Campaign files (*.toml)")
        if name and self.open_campaign(name):
            self.statusBar().showMessage("Campaign checked; press Start in the Campaign "
                                         "panel to run it", 10000)

    def _resume_campaign_dialog(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Resume campaign folder",
                                                            str(self.output_dir))
        if folder:
            self.resume_campaign_folder(folder)

    def queued_runs(self) -> list[tuple[str, dict[str, Any]]]:
        """(procedure name, values) of every run in the Queue list, in order."""
        names = {cls: name for name, cls in self.procedures.items()}
        return [(names.get(item.procedure_class, item.procedure_class.__name__),
                 dict(item.values)) for item in self.queue.items]

    def save_queue_as_campaign(self, path: str | Path, name: str | None = None) -> Path:
        """The Queue list as a campaign file ``daqapp campaign run`` accepts (validated)."""
        config = getattr(self.station, "station", None)
        if config is None:
            raise DaqappError("no station: a campaign needs the station it runs on")
        path = Path(path)
        return save_queue_as_campaign(path, self.queued_runs(), config,
                                      name or path.stem, self.queue.metadata)

    def _save_queue_dialog(self) -> None:
        name, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save queue as campaign",
                                                        str(self.output_dir / "queue.toml"),
                                                        "Campaign files (*.toml)")
        if not name:
            return
        try:
            path = self.save_queue_as_campaign(name)
        except DaqappError as exc:
            self.statusBar().showMessage(f"Not saved: {exc}", 15000)
            return
        self.statusBar().showMessage(f"Saved {len(self.queue.items)} runs as campaign {path} "
                                     f"(daqapp campaign run {path})", 15000)

    def _on_campaign_step(self, item: QueuedRun, run: Any) -> None:
        """A campaign step's run is about to start: plots and on-line fits follow it."""
        self.fitworker.attach(run, units=item.buffer.units if item.buffer else None)
        item.listeners.append(self._mark_overload)
        self.shown = item
        self.last_fit = None
        self.plots.clear_run()
        self.fit_panel.show_fit([], [], f"Step {item.label}: waiting for the first complete "
                                        "spectrum")

    def _on_campaign_event(self, item: QueuedRun, event: Any) -> None:
        if event.kind == events.LOG:
            self.log_panel.log_run_event(item.label, event.payload.get("level", "INFO"),
                                         str(event.payload.get("message", "")))

    def _on_campaign_ended(self) -> None:
        self.queue.paused_after_current = self.hold_box.isChecked()
        self._leave_run()
        self.run_label.setText("Idle")
        self.runs_browser.refresh()
        self._redraw(force=True)
        self._update_buttons()
        self.queue.start_next()

    # ----------------------------------------------------------------------------- redraw
    #: share of the GUI thread's time plot redraws may take; beyond it the rate drops
    REDRAW_BUDGET = 0.25

    def _redraw(self, force: bool = False) -> None:
        item = self.shown
        now = time.monotonic()
        if item is not None and item.buffer is not None and (
                force or now >= getattr(self, "_next_redraw", 0.0)):
            started = time.perf_counter()
            self.plots.show_buffer(item.buffer, item.started, force=force)
            took = time.perf_counter() - started
            # a huge run makes a redraw slow: wait long enough that the window stays usable
            self._next_redraw = now + took * (1.0 / self.REDRAW_BUDGET - 1.0)
        if self._monitor_dirty:
            self.plots.draw_monitor()
            self._monitor_dirty = False
        current = self.queue.current
        now = time.monotonic()
        if current is not None and now - getattr(self, "_queue_refreshed", 0.0) > 1.0:
            self._queue_refreshed = now
            self._refresh_queue()  # keeps the time left of each queued run current
        if self.campaign.running:
            fraction = self.campaign_panel.fraction()
            self.progress.setValue(int(round(1000 * fraction)))
            self.eta_label.setText(f"campaign ≈ {format_duration(self.campaign_panel.eta_s())}"
                                   " left")
            if not self.run_label.text().startswith("ABORTING"):
                self.run_label.setText(self.campaign_panel.status_text().split(" — ")[0])
            paused = self.campaign.paused  # the panel's button may have changed it
            if self.pause_button.isChecked() != paused:
                self.pause_button.blockSignals(True)
                self.pause_button.setChecked(paused)
                self.pause_button.setText("▶ Resume" if paused else "❚❚ Pause")
                self.pause_button.blockSignals(False)
        elif current is not None:
            left = current.remaining_s()
            elapsed = time.time() - (current.started or time.time())
            self.progress.setValue(int(10 * current.progress))
            self.eta_label.setText(f"elapsed {format_duration(elapsed)}, left "
                                   f"≈ {format_duration(left)}" if left == left else
                                   f"elapsed {format_duration(elapsed)}")
        else:
            self.eta_label.setText("")

    def _on_reading(self, reading: MonitorReading) -> None:
        self.monitor.show_reading(reading)
        self.plots.add_monitor(reading)
        self._monitor_dirty = True

    # ----------------------------------------------------------------------------- fits
    def _on_fit(self, update: FitUpdate) -> None:
        self.last_fit = update
        if update.attached and update.attached != self.fitworker.attached:
            # the run before's last spectrum, fitted after this run began: its numbers and
            # Δ(T) point count, but it is not drawn over this run's dI/dV
            self.fit_panel.show_fit(update.parameters, update.comparison,
                                    f"previous run: {update.status}")
            self.plots.show_gaps(update)
            return
        self.fit_panel.show_fit(update.parameters, update.comparison, update.status)
        self.plots.show_fit(update)

    def _models_changed(self, models: list[str]) -> None:
        if models:
            self.fitworker.set_models(models)
            log.info("on-line fit models: %s", ", ".join(models))

    def _refit_shown(self, models: list[str]) -> None:
        item = self.shown
        if item is None or item.buffer is None or not models:
            return
        from daqapp.gui.replay import spectra_from_columns

        spectra = spectra_from_columns(item.buffer.snapshot(), item.buffer.units)
        store = self.fitworker.store
        self.fitworker.refit(spectra, models, store)

    # ----------------------------------------------------------------------------- replay, export
    def open_replay(self, paths: Sequence[str]) -> QtWidgets.QWidget:
        from daqapp.gui.replay import ReplayWindow

        window = ReplayWindow(paths, models=self.fit_panel.models(), fitter=self.fitter,
                              dimension=self.fitworker.dimension)
        window.show()
        self.replay_windows.append(window)
        return window

    def _open_dialog(self) -> None:
        names, _ = QtWidgets.QFileDialog.getOpenFileNames(self, "Open run files",
                                                          str(self.output_dir),
                                                          "Run files (*.h5 *.hdf5 *.nxs)")
        if names:
            self.open_replay(names)

    def export_plots(self, folder: str | Path, suffix: str = ".png") -> list[Path]:
        """Every plot as ``<folder>/<name><suffix>`` (PNG or SVG)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return [plot.export(folder / f"{name}{suffix}")
                for name, plot in self.plots.plots().items()]

    def _export_dialog(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Export plots to folder",
                                                            str(self.output_dir))
        if folder:
            written = self.export_plots(folder, ".png") + self.export_plots(folder, ".svg")
            self.statusBar().showMessage(f"Wrote {len(written)} figures to {folder}", 8000)

    # ----------------------------------------------------------------------------- closing
    def shutdown(self) -> None:
        """Abort any run or campaign (safe state), stop the monitor and the fit worker."""
        if self.campaign.running:
            self.campaign.abort("window closed")
            self.campaign.wait(60)
        if self.queue.current is not None:
            self.queue.abort()
            self.queue.wait_idle(30)
        if self.poller is not None:
            self.poller.stop()
        self.fitworker.stop()
        self.redraw_timer.stop()
        self.log_panel.detach()
        for window in self.replay_windows:
            window.close()

    # ----------------------------------------------------------------------------- settings
    def _restore_layout(self) -> None:
        if self.settings is None:
            return
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    def save_layout(self) -> None:
        if self.settings is not None:
            self.settings.setValue("window/geometry", self.saveGeometry())
            self.settings.setValue("window/state", self.saveState())

    def reset_layout(self) -> None:
        """Docks back where they start, window at its default size."""
        self.restoreState(self._default_state)
        self.resize(*DEFAULT_SIZE)

    def _remember_values(self, name: str, values: Mapping[str, Any]) -> None:
        if self.settings is None or not name:
            return
        import json

        try:
            self.settings.setValue(f"procedures/{name}", json.dumps(dict(values)))
        except (TypeError, ValueError):
            log.debug("values of %s not kept: not JSON", name)

    def _remembered_values(self, name: str) -> dict[str, Any]:
        if self.settings is None:
            return {}
        import json

        text = self.settings.value(f"procedures/{name}")
        try:
            values = json.loads(text) if text else {}
        except (TypeError, ValueError):
            return {}
        return values if isinstance(values, dict) else {}

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt API
        if self.queue.current is not None or self.campaign.running:
            answer = QtWidgets.QMessageBox.question(
                self, "Run in progress",
                "A run or a campaign is in progress. Abort it (instruments to the safe "
                "state; a campaign can be resumed later) and quit?",
                QtWidgets.QMessageBox.StandardButton.Abort
                | QtWidgets.QMessageBox.StandardButton.Cancel)
            if answer != QtWidgets.QMessageBox.StandardButton.Abort:
                event.ignore()
                return
        self.save_layout()
        self.shutdown()
        event.accept()
