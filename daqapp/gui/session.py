"""The window's run queue: one ``Run`` at a time, its in-memory buffer, and Qt signals.

Runs execute in the runner's worker thread. Their events arrive on that thread; the queue
appends records to the run's :class:`~daqapp.storage.RunBuffer` right there (thread-safe, no
copy, no file re-read) and forwards everything else to the GUI thread through a queued Qt
signal, so widgets are only touched on the GUI thread. When a run ends, the next queued one
starts.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtpy import QtCore

from daqapp.runner import Run, RunEvent, events
from daqapp.storage import RunBuffer

log = logging.getLogger(__name__)

#: Every status a run can end with.
FINAL = frozenset(events.STATUSES)


@dataclass
class QueuedRun:
    """A run the operator asked for: what, with which values, and how it is going."""

    number: int
    procedure_class: type
    values: dict[str, Any]
    label: str
    estimate_s: float = float("nan")
    status: str = "queued"
    progress: float = 0.0
    started: float | None = None
    ended: float | None = None
    run: Run | None = None
    buffer: RunBuffer | None = None
    path: Path | None = None
    error: str | None = None
    listeners: list[Callable[[RunEvent], None]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status in FINAL

    def remaining_s(self, now: float | None = None) -> float:
        """Time left, from progress and elapsed time once both are meaningful, else the
        procedure's own estimate."""
        if self.started is None:
            return self.estimate_s
        now = time.time() if now is None else now
        elapsed = now - self.started
        if self.progress >= 2.0:
            return elapsed * (100.0 - self.progress) / self.progress
        return max(0.0, self.estimate_s - elapsed) if self.estimate_s == self.estimate_s \
            else float("nan")


class RunQueue(QtCore.QObject):
    """Queue of runs on one station; emits Qt signals on the GUI thread."""

    #: (QueuedRun, RunEvent) for every non-record event of the current run
    event = QtCore.Signal(object, object)
    #: QueuedRun that just started (its buffer exists, records may follow)
    run_started = QtCore.Signal(object)
    #: QueuedRun that just ended (status final)
    run_ended = QtCore.Signal(object)
    queue_changed = QtCore.Signal()
    _deliver = QtCore.Signal(object, object)

    def __init__(self, station: Any, output_dir: str | Path,
                 metadata: Mapping[str, Any] | None = None,
                 run_listeners: list[Callable[[QueuedRun, Run], None]] | None = None,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.station = station
        self.output_dir = Path(output_dir)
        self.metadata = dict(metadata or {})
        #: called with (queued, run) before a run starts: the fit worker subscribes here
        self.run_listeners = list(run_listeners or [])
        self.items: list[QueuedRun] = []
        self.current: QueuedRun | None = None
        self.paused_after_current = False
        self._numbers = itertools.count(1)
        self._deliver.connect(self._on_event, QtCore.Qt.ConnectionType.QueuedConnection)

    # -- building and queueing -------------------------------------------------------------
    def make_procedure(self, procedure_class: type, values: Mapping[str, Any]) -> Any:
        procedure = procedure_class(station=self.station)
        for key, value in values.items():
            setattr(procedure, key, value)
        return procedure

    def enqueue(self, procedure_class: type, values: Mapping[str, Any]) -> QueuedRun:
        """Check the values against the procedure's and the station's limits, then queue.

        Raises ConfigError/LimitError naming the parameter; nothing is queued then.
        """
        procedure = self.make_procedure(procedure_class, values)
        Run(procedure, station=self.station, output_dir=self.output_dir).validate()
        estimate = _estimate(procedure)
        item = QueuedRun(next(self._numbers), procedure_class, dict(values),
                         label=procedure_class.__name__, estimate_s=estimate)
        self.items.append(item)
        log.info("queued #%d %s (%s)", item.number, item.label,
                 ", ".join(f"{k}={v}" for k, v in values.items()))
        self.queue_changed.emit()
        if self.current is None:
            self.start_next()
        return item

    def remove(self, item: QueuedRun) -> None:
        """Drop a run that has not started yet."""
        if item.status == "queued" and item in self.items:
            self.items.remove(item)
            self.queue_changed.emit()

    def pending(self) -> list[QueuedRun]:
        return [i for i in self.items if i.status == "queued"]

    def total_remaining_s(self) -> float:
        total = 0.0
        for item in self.items:
            if item.finished:
                continue
            left = item.remaining_s()
            if left == left:
                total += left
        return total

    # -- running ---------------------------------------------------------------------------
    def start_next(self) -> QueuedRun | None:
        if self.current is not None or self.paused_after_current:
            return None
        pending = self.pending()
        if not pending:
            return None
        item = pending[0]
        procedure = self.make_procedure(item.procedure_class, item.values)
        run = Run(procedure, station=self.station, output_dir=self.output_dir,
                  metadata=self.metadata)
        follow_run(item, run, procedure, self._deliver.emit)
        for hook in self.run_listeners:
            hook(item, run)
        self.current = item
        item.status = "starting"
        item.started = time.time()
        try:
            run.start()
        except Exception as exc:  # noqa: BLE001 - limits changed since queueing, or similar
            item.status = events.FAILED
            item.error = str(exc)
            item.ended = time.time()
            self.current = None
            log.error("run #%d %s refused: %s", item.number, item.label, exc)
            self.run_ended.emit(item)
            self.queue_changed.emit()
            return self.start_next()
        item.path = run.path
        self.run_started.emit(item)
        self.queue_changed.emit()
        return item

    def _on_event(self, item: QueuedRun, event: RunEvent) -> None:
        if item.run is not None and item.path is None:
            item.path = item.run.path
        if event.kind == events.PROGRESS:
            item.progress = float(event.payload)
        elif event.kind == events.STATUS:
            status = event.payload.get("status", "")
            item.status = status
            reason = event.payload.get("reason", "")
            if status in FINAL:
                item.ended = time.time()
                item.error = reason or None
                if item.run is not None and item.run.result is not None:
                    item.path = item.run.result.path
                log_fn = log.info if status in (events.FINISHED, events.STOPPED) else log.warning
                log_fn("run #%d %s %s%s", item.number, item.label, status,
                       f": {reason}" if reason else "")
        self.event.emit(item, event)
        if event.kind == events.STATUS and item.finished and item is self.current:
            self.current = None
            self.run_ended.emit(item)
            self.queue_changed.emit()
            self.start_next()
        elif event.kind == events.STATUS:
            self.queue_changed.emit()

    # -- verbs on the current run ----------------------------------------------------------
    def _control(self):
        if self.current is None or self.current.run is None:
            return None
        return self.current.run.control

    def stop(self) -> bool:
        """Finish the current point, save, shut down; the queue then continues."""
        control = self._control()
        if control is None:
            return False
        log.info("stop requested for run #%d (finishing the point)", self.current.number)
        control.stop()
        return True

    def pause(self) -> bool:
        control = self._control()
        if control is None:
            return False
        log.info("pause requested for run #%d", self.current.number)
        control.pause()
        return True

    def resume(self) -> bool:
        control = self._control()
        if control is None:
            return False
        log.info("resume requested for run #%d", self.current.number)
        control.resume()
        return True

    def abort(self, clear_queue: bool = True) -> bool:
        """Abort the current run (safe state); by default also drop the queued runs, since an
        operator who aborts wants the instruments to stay put."""
        control = self._control()
        if clear_queue:
            dropped = self.pending()
            for item in dropped:
                self.items.remove(item)
            if dropped:
                log.warning("abort: %d queued run(s) removed", len(dropped))
                self.queue_changed.emit()
        if control is None:
            return False
        log.warning("ABORT requested for run #%d: going to the safe state", self.current.number)
        control.abort()
        return True

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block (processing Qt events) until no run is active; for scripts and tests."""
        deadline = time.monotonic() + timeout
        app = QtCore.QCoreApplication.instance()
        while time.monotonic() < deadline:
            if app is not None:
                app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
            if self.current is None and not self.pending():
                return True
            time.sleep(0.01)
        return False


def follow_run(item: QueuedRun, run: Run, procedure: Any,
               deliver: Callable[[QueuedRun, RunEvent], None]) -> None:
    """``run``'s events into ``item`` (a queued run or a campaign step): records into its
    buffer on the run's thread (no signal per row), every event to its extra listeners, the
    other events to ``deliver`` (a signal to the window's thread)."""
    item.run = run
    item.buffer = buffer = RunBuffer(_columns(procedure))

    def listener(event: RunEvent) -> None:
        if event.kind == events.RECORD:
            buffer.append(event.payload)
            for extra in item.listeners:
                extra(event)
            return
        for extra in item.listeners:
            extra(event)
        deliver(item, event)

    run.subscribe(listener)


def _columns(procedure: Any) -> dict[str, str]:
    getter = getattr(procedure, "column_units", None)
    if callable(getter):
        return dict(getter())
    return {name: "" for name in getattr(procedure, "DATA_COLUMNS", [])}


def _estimate(procedure: Any) -> float:
    estimate = getattr(procedure, "estimate_duration", None)
    if not callable(estimate):
        return float("nan")
    try:
        seconds = float(estimate())
    except Exception:  # noqa: BLE001 - an estimate must never block queueing
        return float("nan")
    from daqapp.runner.roles import lab_seconds_to_real

    return lab_seconds_to_real(getattr(procedure, "station", None), seconds)
