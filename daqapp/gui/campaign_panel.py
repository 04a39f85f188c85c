"""Campaigns in the window: open a campaign file or an interrupted folder, watch its steps,
pause, resume and abort — on the engine ``daqapp campaign run|resume`` uses.

The engine (:mod:`daqapp.campaign.executor`) runs on a background thread of the window's
process; nothing about a campaign is re-implemented here. What the panel shows comes from the
engine's own records: the steps table from the folder's ``manifest.json`` (the file
``daqapp campaign status`` reads, rewritten atomically on every change), the progress bar and
the ETA from the executor's :class:`~daqapp.campaign.progress.ProgressLine` (the CLI's line,
monotonic by construction). Each step's run is handed to the window before it starts, so its
live plots and on-line fits are the single-run queue's.

Stations: a campaign on the station the window drives (same station file, or the same
virtual-lab preset) uses the window's connection; any other station is connected and locked by
the engine itself, as the CLI does. A station another process holds is refused with one line
naming that process (pid, command).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from qtpy import QtCore, QtGui, QtWidgets

from daqapp.campaign import manifest as M
from daqapp.campaign.spec import format_duration
from daqapp.errors import ConfigError, DaqappError
from daqapp.gui.session import QueuedRun, follow_run

log = logging.getLogger(__name__)

HEADERS = ("step", "procedure", "T (K)", "B (T)", "status", "duration")
_STATUS_COLOURS = {M.FINISHED: "#006000", M.RUNNING: "#0050A0", M.SKIPPED: "#A06000",
                   M.FAILED: "#C00000", "interrupted": "#C00000"}
_REFRESH_MS = 500


# --------------------------------------------------------------------------- the engine side


class _LineStream:
    """The progress line's stream: each line it prints goes to ``emit`` (not a terminal)."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self._emit = emit

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                self._emit(line.strip())
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


class BorrowedStation:
    """The window's connected station lent to a campaign: everything but ``close`` (the
    window keeps driving it, and keeps its lock, after the campaign)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def close(self) -> None:
        log.info("campaign ended; the window keeps its station connected")


def same_station(conn: Any, campaign: Any) -> bool:
    """True when ``campaign`` names the station ``conn`` (the window's) drives: same station
    file, or the same virtual-lab preset (what the station lock is keyed by)."""
    from daqapp.campaign.executor import unconnected_station
    from daqapp.station.lock import station_key

    config = getattr(conn, "station", None)
    wanted = unconnected_station(campaign)
    if config is None or wanted is None:
        return False
    return station_key(config) == station_key(wanted)


class CampaignRunner(QtCore.QObject):
    """One campaign at a time: the engine on a thread, its verbs and its runs as Qt signals.

    ``station``: the window's connected station (or None). Signals arrive on the GUI thread.
    """

    #: (QueuedRun, Run) of the step about to start: buffer filled, not started yet
    step_started = QtCore.Signal(object, object)
    #: (QueuedRun, RunEvent) for every non-record event of the step's run
    step_event = QtCore.Signal(object, object)
    #: one progress line, as the CLI prints it
    progress_line = QtCore.Signal(str)
    #: CampaignOutcome of a session that ran
    finished = QtCore.Signal(object)
    #: one line: why the campaign did not start (bad file, station in use)
    refused = QtCore.Signal(str)
    _hand_over = QtCore.Signal(object, object)
    _deliver = QtCore.Signal(object, object)
    _ended = QtCore.Signal(object, str)

    def __init__(self, station: Any = None, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.station = station
        self.executor: Any = None
        self.folder: Path | None = None
        self.thread: threading.Thread | None = None
        self.borrowed = False
        self.current: QueuedRun | None = None
        self._numbers = 0
        # the engine's thread waits until the window has subscribed to the run
        self._hand_over.connect(self._adopt_run,
                                QtCore.Qt.ConnectionType.BlockingQueuedConnection)
        self._deliver.connect(self._on_event, QtCore.Qt.ConnectionType.QueuedConnection)
        self._ended.connect(self._on_ended, QtCore.Qt.ConnectionType.QueuedConnection)

    @property
    def running(self) -> bool:
        return self.thread is not None

    # -- starting
    def connect_for(self, campaign: Any) -> Callable[[Any], Any] | None:
        """The window's station when the campaign names it, else None (the engine connects
        and locks the campaign's own station, refusing one another process holds)."""
        if self.station is not None and same_station(self.station, campaign):
            conn = self.station
            return lambda _campaign: BorrowedStation(conn)
        return None

    def check_station(self, campaign: Any) -> None:
        """Raise StationInUse naming the holder before anything is written."""
        from daqapp.campaign.executor import unconnected_station
        from daqapp.station.lock import check_free

        if self.connect_for(campaign) is not None:
            return
        station = unconnected_station(campaign)
        if station is not None:
            check_free(station)

    def start(self, path: Path, folder: Path, campaign: Any) -> None:
        """Run campaign file ``path`` (already validated as ``campaign``) into ``folder``."""
        from daqapp.campaign.executor import run_campaign

        connect = self.connect_for(campaign)
        speed = None
        if connect is not None:  # the window's virtual lab runs at its own speed-up
            simulation = getattr(getattr(self.station, "station", None), "simulation", None)
            if simulation is not None and simulation.simulated and campaign.station.simulated:
                speed = float(simulation.speed)
        self._launch(folder, connect, lambda **kw: run_campaign(path, output=folder,
                                                                speed=speed, **kw))

    def resume(self, folder: Path, campaign: Any) -> None:
        from daqapp.campaign.executor import resume_campaign

        self._launch(folder, self.connect_for(campaign),
                     lambda **kw: resume_campaign(folder, **kw))

    def _launch(self, folder: Path, connect: Callable[[Any], Any] | None,
                action: Callable[..., Any]) -> None:
        if self.running:
            raise ConfigError("a campaign is already running in this window; one at a time")
        from daqapp.campaign.catalog import ProcedureCatalog
        from daqapp.report.analyse import quick_fit_run

        self.folder = Path(folder)
        self.borrowed = connect is not None
        kwargs = dict(catalog=ProcedureCatalog(), connect=connect, show_progress=True,
                      fitter=quick_fit_run, quiet_console=False,
                      progress_stream=_LineStream(self.progress_line.emit),
                      on_start=self._on_start)

        def work() -> None:
            try:
                outcome = action(**kwargs)
            except DaqappError as exc:  # bad file, station in use: one line, no traceback
                self._ended.emit(None, str(exc))
            except Exception as exc:  # noqa: BLE001 - shown to the operator, logged in full
                log.exception("campaign could not run")
                self._ended.emit(None, f"{type(exc).__name__}: {exc}")
            else:
                self._ended.emit(outcome, "")

        self.thread = threading.Thread(target=work, name="campaign", daemon=True)
        self.thread.start()

    def _on_start(self, executor: Any) -> None:
        """Engine thread, before the first step: keep the executor, follow its runs."""
        self.executor = executor
        executor.run_listeners.append(lambda step, run: self._hand_over.emit(step, run))

    # -- a step's run (GUI thread, the engine waiting)
    def _adopt_run(self, step: Any, run: Any) -> None:
        self._numbers += 1
        procedure = run.procedure
        item = QueuedRun(self._numbers, type(procedure), dict(step.params), label=step.key,
                         estimate_s=step.estimate_s, status="starting", started=time.time(),
                         run=run)
        follow_run(item, run, procedure, self._deliver.emit)
        self.current = item
        self.step_started.emit(item, run)

    def _on_event(self, item: QueuedRun, event: Any) -> None:
        from daqapp.gui.session import FINAL

        if item.run is not None and item.path is None:
            item.path = item.run.path
        if event.kind == "progress":
            item.progress = float(event.payload)
        elif event.kind == "status":
            item.status = event.payload.get("status", item.status)
            if item.status in FINAL:
                item.ended = time.time()
                item.error = event.payload.get("reason") or None
        self.step_event.emit(item, event)

    def _on_ended(self, outcome: Any, message: str) -> None:
        if self.thread is not None:
            self.thread.join(timeout=5)
        self.thread = None
        self.executor = None
        if outcome is None:
            self.refused.emit(message)
        else:
            self.finished.emit(outcome)

    # -- verbs
    def pause(self) -> bool:
        if self.executor is None:
            return False
        self.executor.pause()
        return True

    def resume_paused(self) -> bool:
        if self.executor is None:
            return False
        self.executor.resume()
        return True

    @property
    def paused(self) -> bool:
        return self.executor is not None and self.executor.paused

    def abort(self, reason: str = "aborted by operator") -> bool:
        if self.executor is None:
            return False
        self.executor.abort(reason)
        return True

    def wait(self, timeout: float = 60.0) -> bool:
        """Block (processing Qt events, which the engine may wait on) until it has ended."""
        deadline = time.monotonic() + timeout
        app = QtCore.QCoreApplication.instance()
        while self.running and time.monotonic() < deadline:
            if app is not None:
                app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.01)
        return not self.running


# --------------------------------------------------------------------------- the panel


def _seconds_between(start: str | None, end: str | None) -> float:
    try:
        return (datetime.fromisoformat(end or "") - datetime.fromisoformat(start or "")) \
            .total_seconds()
    except ValueError:
        return math.nan


def step_duration_text(entry: Mapping[str, Any], speed: float, now: float | None = None
                       ) -> str:
    """What the duration column says: time taken (finished), so far (running), or the
    estimate in wall-clock time (pending)."""
    attempts = entry.get("attempts") or []
    last = attempts[-1] if attempts else None
    if entry.get("status") in M.DONE_STATES and last is not None:
        taken = sum(float(last.get(k) or 0.0) for k in ("positioned_s", "duration_s"))
        if not taken:
            taken = _seconds_between(last.get("started"), last.get("ended"))
        return format_duration(taken) if taken == taken else ""
    if entry.get("status") == M.RUNNING and last is not None and not last.get("ended"):
        started = _seconds_between(last.get("started"),
                                   datetime.fromtimestamp(now or time.time()).astimezone()
                                   .isoformat())
        if started == started:
            return f"{format_duration(max(0.0, started))} so far"
    estimate = float(entry.get("estimate_s") or 0.0) / max(speed, 1e-9)
    return f"≈ {format_duration(estimate)}" if estimate > 0 else ""


def step_name(entry: Mapping[str, Any]) -> str:
    """Number and block of a step ("13 spectrum"): its T and B have columns of their own
    (the full key, which names the run file, is the cell's tooltip)."""
    index, block = entry.get("index"), entry.get("block")
    if isinstance(index, int) and block:
        return f"{index + 1} {block}"
    return str(entry.get("key", ""))


def _fmt_position(value: Any) -> str:
    return "—" if value is None else f"{float(value):g}"


class CampaignPanel(QtWidgets.QWidget):
    """The *Campaign* dock: the steps of the open campaign and its verbs (see the module)."""

    #: the steps table changed (manifest re-read); for tests and the window's labels
    refreshed = QtCore.Signal()

    def __init__(self, runner: CampaignRunner, output_dir: Path,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.output_dir = Path(output_dir)
        self.campaign: Any = None
        self.campaign_path: Path | None = None
        self.folder: Path | None = None
        self.entries: list[dict[str, Any]] = []
        self.message = ""
        self.outcome_text = ""  # how the last session ended, until another starts
        self.shown_fractions: list[float] = []  # every percentage shown, in order
        self._speed_of: Any = None
        self._speed = 1.0
        self._build()
        runner.progress_line.connect(self._on_progress_line)
        runner.finished.connect(self._on_finished)
        runner.refused.connect(self._on_refused)
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(_REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()
        self._update_buttons()

    def _build(self) -> None:
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.title_label = QtWidgets.QLabel("No campaign open (File → Open campaign…)")
        self.title_label.setWordWrap(True)
        self.title_label.setStyleSheet("font-weight: bold;")
        layout.addWidget(self.title_label)
        self.table = QtWidgets.QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(list(HEADERS))
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        # three steps at the least: the panel shares its dock area with Queue and Runs, and a
        # taller minimum squeezed the Measurement form to one field; opening a campaign
        # makes the area tall enough for its steps (MainWindow._show_campaign_dock)
        self.table.setMinimumHeight(3 * 20 + 26)
        layout.addWidget(self.table, 1)
        row = QtWidgets.QHBoxLayout()
        self.start_button = QtWidgets.QPushButton("▶ Start")
        self.start_button.setToolTip("Run the open campaign's unfinished steps")
        self.start_button.clicked.connect(self._start_clicked)
        self.pause_button = QtWidgets.QPushButton("❚❚ Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Hold the measurement at its next point (or before the "
                                     "next step starts); press again to resume")
        self.pause_button.toggled.connect(self._pause_toggled)
        self.abort_button = QtWidgets.QPushButton("⚠ Abort")
        self.abort_button.setToolTip("Abort the step (safe state), keep its partial run, and "
                                     "leave the folder for Resume")
        self.abort_button.clicked.connect(lambda: self.runner.abort())
        for w in (self.start_button, self.pause_button, self.abort_button):
            row.addWidget(w)
        row.addStretch(1)
        layout.addLayout(row)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("%p %")
        layout.addWidget(self.progress)
        self.state_label = QtWidgets.QLabel("")
        self.state_label.setWordWrap(True)
        layout.addWidget(self.state_label)
        self.fit_label = QtWidgets.QLabel("")
        self.fit_label.setWordWrap(True)
        self.fit_label.setStyleSheet("color: #444444;")
        layout.addWidget(self.fit_label)
        self.message_label = QtWidgets.QLabel("")
        self.message_label.setWordWrap(True)
        self.message_label.setStyleSheet("color: #C00000;")
        layout.addWidget(self.message_label)

    # -- opening
    def open_campaign(self, path: str | Path) -> bool:
        """Validate a campaign file as ``campaign run`` does and show its steps (not run)."""
        from daqapp.campaign.catalog import ProcedureCatalog
        from daqapp.campaign.executor import load_for_run

        if self.runner.running:
            self.notify("a campaign is running; open another one when it has ended")
            return False
        try:
            campaign = load_for_run(Path(path), ProcedureCatalog())
        except DaqappError as exc:
            self.notify(str(exc))
            return False
        self.campaign, self.campaign_path, self.folder = campaign, Path(path), None
        self.entries = [{"index": s.index, "block": s.block, "key": s.key,
                         "procedure": s.procedure, "field_T": s.field_T,
                         "temperature_K": s.temperature_K, "status": M.PENDING,
                         "estimate_s": s.estimate_s, "attempts": []} for s in campaign.steps]
        self._set_message("")
        self.outcome_text = ""
        self._show_title()
        self.refresh()
        return True

    def open_folder(self, folder: str | Path) -> bool:
        """Show an (interrupted) campaign folder's steps as its manifest records them."""
        from daqapp.campaign.catalog import ProcedureCatalog
        from daqapp.campaign.spec import parse_campaign

        if self.runner.running:
            self.notify("a campaign is running; resume another one when it has ended")
            return False
        folder = Path(folder)
        try:
            manifest = M.Manifest.load(folder)
            copy = folder / M.CAMPAIGN_COPY_NAME
            if not copy.is_file():
                raise ConfigError(f"{folder}: {M.CAMPAIGN_COPY_NAME} is missing; cannot resume")
            source = Path(manifest.data["campaign"].get("source", copy))
            where = source if source.parent.is_dir() else copy
            campaign = parse_campaign(copy.read_text(encoding="utf-8"), where,
                                      catalog=ProcedureCatalog())
        except DaqappError as exc:
            self.notify(str(exc))
            return False
        overrides = manifest.data.get("overrides", {})
        if "speed" in overrides and campaign.station.simulated:
            from daqapp.campaign.executor import with_speed

            campaign = with_speed(campaign, overrides["speed"])
        self.campaign, self.campaign_path, self.folder = campaign, None, folder
        self.entries = manifest.steps
        self._set_message("")
        self.outcome_text = ""
        self._show_title()
        self.refresh()
        return True

    def _show_title(self) -> None:
        campaign = self.campaign
        where = f" — {self.folder}" if self.folder else f" — {self.campaign_path}"
        self.title_label.setText(f"{campaign.name} — {len(campaign.steps)} steps")
        self.title_label.setToolTip(f"{campaign.station.describe()}{where}")

    @property
    def speed(self) -> float:
        """Laboratory seconds per wall second of the station the campaign will run on."""
        if self.campaign is None or not self.campaign.station.simulated:
            return 1.0
        if self._speed_of is not self.campaign:  # worked out once per campaign opened
            self._speed_of, self._speed = self.campaign, float(self.campaign.station.speed)
            if self.runner.connect_for(self.campaign) is not None:  # the window's lab
                simulation = getattr(getattr(self.runner.station, "station", None),
                                     "simulation", None)
                if simulation is not None and simulation.simulated:
                    self._speed = float(simulation.speed)
        return self._speed

    def default_folder(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        stem = self.campaign_path.stem if self.campaign_path else "campaign"
        return self.output_dir / f"{stem}-{stamp}"

    # -- verbs
    def start(self, folder: str | Path | None = None, busy: str = "") -> bool:
        """Run the open campaign (a file: into ``folder``, new; a folder: resume it).

        ``busy``: why the window's station cannot take a campaign now ("" = it can)."""
        if self.campaign is None:
            self.notify("open a campaign file or folder first")
            return False
        if self.runner.running:
            self.notify("a campaign is already running; one at a time per station")
            return False
        if busy and self.runner.connect_for(self.campaign) is not None:
            self.notify(busy)
            return False
        try:
            self.runner.check_station(self.campaign)
            if self.folder is None:
                target = Path(folder) if folder else self.default_folder()
                if (target / M.MANIFEST_NAME).exists():
                    raise ConfigError(f"{target} already holds a campaign; use File → Resume "
                                      "campaign folder… or choose another folder")
                self.runner.start(self.campaign_path, target, self.campaign)
                self.folder = target
            else:
                self.runner.resume(self.folder, self.campaign)
        except DaqappError as exc:
            self.notify(str(exc))
            return False
        self._set_message("")
        self.outcome_text = ""
        self.shown_fractions.clear()
        self._show_title()
        self._update_buttons()
        return True

    def _start_clicked(self) -> None:
        window = self.window()
        busy = window.campaign_blocker() if hasattr(window, "campaign_blocker") else ""
        if self.folder is not None or self.campaign is None:
            self.start(busy=busy)
            return
        folder = QtWidgets.QFileDialog.getExistingDirectory(
            self, "Folder to create the campaign folder in", str(self.output_dir))
        if folder:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            stem = self.campaign_path.stem if self.campaign_path else "campaign"
            self.start(Path(folder) / f"{stem}-{stamp}", busy=busy)

    def _pause_toggled(self, paused: bool) -> None:
        if paused:
            if self.runner.pause():
                self.pause_button.setText("▶ Resume")
            else:
                self.pause_button.setChecked(False)
        else:
            self.runner.resume_paused()
            self.pause_button.setText("❚❚ Pause")

    def set_paused(self, paused: bool) -> None:
        """Pause or resume the running campaign, as the button does."""
        self.pause_button.setChecked(paused)

    def notify(self, text: str) -> None:
        """One line the operator must see: in the panel and the status bar, no traceback."""
        self._set_message(text)
        log.warning("campaign: %s", text)
        window = self.window()
        if isinstance(window, QtWidgets.QMainWindow):
            window.statusBar().showMessage(text, 15000)
        self._update_buttons()

    def _set_message(self, text: str) -> None:
        self.message = text
        self.message_label.setText(text)
        self.message_label.setVisible(bool(text))

    # -- what is shown
    def refresh(self) -> None:
        """Re-read the manifest (while running or once a folder is open) and redraw."""
        if self.folder is not None and (self.folder / M.MANIFEST_NAME).is_file():
            try:
                self.entries = M.Manifest.load(self.folder).steps
            except DaqappError as exc:  # being replaced right now: keep the last view
                log.debug("manifest not read: %s", exc)
        self._fill_table()
        self._show_progress()
        self._update_buttons()
        self.refreshed.emit()

    def _fill_table(self) -> None:
        entries = self.entries
        if self.table.rowCount() != len(entries):
            self.table.setRowCount(len(entries))
        speed = self.speed
        current = None
        for i, entry in enumerate(entries):
            status = entry.get("status", "")
            attempts = entry.get("attempts") or []
            if status == M.PENDING and attempts and attempts[-1].get("status") == "interrupted":
                status = "interrupted"
            cells = (step_name(entry), entry.get("procedure") or "position only",
                     _fmt_position(entry.get("temperature_K")),
                     _fmt_position(entry.get("field_T")), status,
                     step_duration_text(entry, speed))
            for j, text in enumerate(cells):
                item = self.table.item(i, j)
                if item is None:
                    item = QtWidgets.QTableWidgetItem()
                    self.table.setItem(i, j, item)
                if item.text() != text:
                    item.setText(text)
                if j == 0:
                    item.setToolTip(str(entry.get("key", "")))
                if j == 4:
                    item.setForeground(QtGui.QBrush(QtGui.QColor(
                        _STATUS_COLOURS.get(status, "#000000"))))
                    if entry.get("error"):
                        item.setToolTip(str(entry["error"]))
            if entry.get("status") == M.RUNNING and current is None:
                current = i
        if current is not None and self.runner.running:
            self.table.scrollToItem(self.table.item(current, 0))

    def fraction(self) -> float:
        """Share of the estimated work done: the engine's own (monotonic) figure while it
        runs, else the finished steps' estimates over all."""
        executor = self.runner.executor
        if executor is not None and executor.progress is not None:
            return executor.progress.fraction()
        total = sum(float(e.get("estimate_s") or 0.0) for e in self.entries)
        done = sum(float(e.get("estimate_s") or 0.0) for e in self.entries
                   if e.get("status") in M.DONE_STATES)
        return done / total if total > 0 else 0.0

    def eta_s(self) -> float:
        executor = self.runner.executor
        if executor is not None and executor.progress is not None:
            return executor.progress.eta_s()
        return sum(float(e.get("estimate_s") or 0.0) for e in self.entries
                   if e.get("status") not in M.DONE_STATES) / max(self.speed, 1e-9)

    def status_text(self) -> str:
        """The one-line state of the campaign: step n/N, what it does, ETA."""
        executor = self.runner.executor
        progress = executor.progress if executor is not None else None
        if progress is None:
            if self.outcome_text:
                return self.outcome_text
            if not self.entries:
                return ""
            counts = {s: sum(1 for e in self.entries if e.get("status") == s)
                      for s in M.STEP_STATES}
            left = len(self.entries) - counts[M.FINISHED] - counts[M.SKIPPED]
            text = f"{counts[M.FINISHED]} of {len(self.entries)} steps finished"
            if counts[M.SKIPPED]:
                text += f", {counts[M.SKIPPED]} skipped"
            if left:
                text += f"; {left} to run, ≈ {format_duration(self.eta_s())}"
            return text
        state = "PAUSED" if executor.paused else progress.state
        return (f"step {progress.current}/{progress.total} {progress.step_key}: {state} — "
                f"ETA {format_duration(progress.eta_s())}")

    def _show_progress(self) -> None:
        fraction = self.fraction()
        if self.runner.running:
            self.shown_fractions.append(fraction)
        self.progress.setValue(int(round(1000 * fraction)))
        self.state_label.setText(self.status_text())
        executor = self.runner.executor
        if executor is not None and executor.progress is not None \
                and executor.progress.latest_fit:
            self.fit_label.setText(f"latest fit {executor.progress.latest_fit}")

    def _on_progress_line(self, line: str) -> None:
        log.debug("campaign progress: %s", line)

    def _on_finished(self, outcome: Any) -> None:
        counts = outcome.counts
        text = (f"campaign {outcome.status}: {counts.get(M.FINISHED, 0)} finished, "
                f"{counts.get(M.SKIPPED, 0)} skipped, {counts.get(M.FAILED, 0)} failed")
        if outcome.message:
            text += f" — {outcome.message}"
        if outcome.status != M.FINISHED:
            text += " (File → Resume campaign folder… continues it)"
        self.pause_button.blockSignals(True)
        self.pause_button.setChecked(False)
        self.pause_button.setText("❚❚ Pause")
        self.pause_button.blockSignals(False)
        self.outcome_text = text
        self.refresh()
        window = self.window()
        if isinstance(window, QtWidgets.QMainWindow):
            window.statusBar().showMessage(text + (f"; {outcome.safe_state}"
                                                   if outcome.safe_state else ""), 30000)
        if outcome.status != M.FINISHED:
            self._set_message(text)
        log.info("%s", text)

    def _on_refused(self, text: str) -> None:
        """The engine refused before creating the folder: the file stays open, not a folder."""
        if self.campaign_path is not None and self.folder is not None \
                and not (self.folder / M.MANIFEST_NAME).exists():
            self.folder = None
            self._show_title()
        self.notify(text)

    def _update_buttons(self) -> None:
        running = self.runner.running
        self.start_button.setEnabled(self.campaign is not None and not running)
        done = bool(self.entries) and all(e.get("status") in M.DONE_STATES
                                          for e in self.entries)
        self.start_button.setText("Running…" if running else
                                  "▶ Resume" if self.folder is not None else "▶ Start")
        if done and not running:
            self.start_button.setEnabled(False)
        self.pause_button.setEnabled(running)
        self.abort_button.setEnabled(running)


# --------------------------------------------------------------------------- queue → campaign


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"value {value!r} cannot be written to a campaign file")
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"value {value!r} ({type(value).__name__}) cannot be written to a "
                      "campaign file")


def queue_campaign_text(runs: Sequence[tuple[str, Mapping[str, Any]]], station: Any,
                        name: str, metadata: Mapping[str, Any] | None = None) -> str:
    """Campaign TOML running ``runs`` ((procedure key, values) in order) on ``station`` (a
    :class:`~daqapp.station.Station`); what ``daqapp campaign run`` accepts."""
    if not runs:
        raise ConfigError("the queue is empty: nothing to save as a campaign")
    lines = ["# Saved from the daqapp window's queue (File → Save queue as campaign…).",
             "[campaign]", f"name = {_toml_value(name)}"]
    for key in ("sample", "cell", "operator", "description"):
        value = (metadata or {}).get(key)
        if isinstance(value, str) and value:
            lines.append(f"{key} = {_toml_value(value)}")
    lines += ["", "[station]"]
    simulation = getattr(station, "simulation", None)
    if simulation is not None and simulation.simulated:
        lines += ["simulated = true", f"preset = {_toml_value(simulation.preset)}",
                  f"speed = {_toml_value(float(simulation.speed))}",
                  f"seed = {int(simulation.seed)}"]
    else:
        path = Path(getattr(station, "path", "") or "")
        if not path.is_file():
            raise ConfigError("the window's station has no station file to name in a campaign")
        lines.append(f"file = {_toml_value(str(path.resolve()))}")
    for number, (procedure, values) in enumerate(runs, start=1):
        lines += ["", "[[step]]", f'name = "{number:02d}-{procedure}"',
                  f"procedure = {_toml_value(procedure)}"]
        params = {k: v for k, v in values.items() if v is not None}
        if params:
            lines.append("params = { " + ", ".join(f"{k} = {_toml_value(v)}"
                                                   for k, v in params.items()) + " }")
    return "\n".join(lines) + "\n"


def save_queue_as_campaign(path: str | Path, runs: Sequence[tuple[str, Mapping[str, Any]]],
                           station: Any, name: str,
                           metadata: Mapping[str, Any] | None = None) -> Path:
    """Write the campaign file, validated by the loader ``campaign run`` uses (station limits
    included) before it replaces anything at ``path``; raises ConfigError naming the key."""
    from daqapp.campaign.catalog import ProcedureCatalog
    from daqapp.campaign.executor import load_for_run

    path = Path(path)
    text = queue_campaign_text(runs, station, name, metadata)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staging.write_text(text, encoding="utf-8")
    try:
        load_for_run(staging, ProcedureCatalog())
    except DaqappError as exc:
        staging.unlink()
        raise ConfigError(str(exc).replace(str(staging), str(path))) from None
    os.replace(staging, path)
    return path
