"""``Run``: one procedure on one station into one run file, with Bluesky-like verbs.

Usage::

    run = Run(procedure, station=conn, output_dir=Path("runs"), metadata={"sample": "Nb"})
    run.subscribe(buffer.handle)        # listener(event); see daqapp.runner.events
    run.start()                         # worker thread; or result = run.execute() to block
    run.control.pause(); run.control.resume(); run.control.stop(); run.control.abort()
    result = run.wait()                 # RunResult(status, path, rows, error, duration)

Whatever ends the run (finish, stop, abort, an exception, a lost connection or timeout, a
suspension that outlasted its timeout), the same bookends run in the same order:
``procedure.shutdown()``, then ``station.to_safe_state()`` (read back, one verdict per role),
then the end snapshot with that verdict, the status and the error text go into the file. A run
whose safe state is not confirmed ends "failed", whatever ended it, with the verdict in its
error text. Rows already taken are kept. Limits are checked in :meth:`Run.validate` before the
file is created and before any instrument is touched.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daqapp.errors import DaqappError, DataFileError
from daqapp.runner import events
from daqapp.runner.control import RunAborted, RunControl
from daqapp.runner.events import RunEvent
from daqapp.runner.recording import RunRecorder, WriterFactory, unique_run_path
from daqapp.runner.safe_state import SafeStateOutcome, apply_safe_state

log = logging.getLogger(__name__)

#: Status a run file gets for each way a run ends (the file's vocabulary has no "stopped":
#: a stopped run finished its last point and saved, so it is "finished" with a log line).
FILE_STATUS = {events.FINISHED: "finished", events.STOPPED: "finished",
               events.ABORTED: "aborted", events.FAILED: "failed"}


@dataclass(frozen=True)
class RunResult:
    """How a run ended: ``status`` (finished, stopped, aborted, failed), the run file, the
    number of rows written, the error text (None if none), the wall-clock duration in s and
    the safe state's one-line verdict (None without a station)."""

    status: str
    path: Path | None
    rows: int
    error: str | None
    duration: float
    safe_state: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in (events.FINISHED, events.STOPPED)


class Run:
    """Runs ``procedure`` on ``station``; records go to the run file and the subscribers."""

    def __init__(self, procedure: Any, station: Any = None, output_dir: Path | str = ".",
                 filename: str | None = None, metadata: dict[str, Any] | None = None,
                 suspenders: Iterable[Any] = (),
                 writer_factory: WriterFactory | None = None) -> None:
        self.procedure = procedure
        self.station = station
        self.output_dir = Path(output_dir)
        self.filename = filename
        self.metadata = dict(metadata or {})
        self.control = RunControl(suspenders, station=station, on_status=self._on_control_status)
        self.writer_factory = writer_factory
        self.path: Path | None = None
        self.status = "queued"
        self._listeners: list[events.Listener] = []
        self._recorder: RunRecorder | None = None
        self._thread: threading.Thread | None = None
        self._result: RunResult | None = None
        self._done = threading.Event()
        self._validated = False

    # ---- public API ---------------------------------------------------------------------
    def subscribe(self, listener: events.Listener) -> events.Listener:
        """Call ``listener(event)`` for every event; returns it (to unsubscribe later)."""
        self._listeners.append(listener)
        if self._recorder is not None:
            self._recorder.listeners.append(listener)
        return listener

    def subscribe_records(self, callback: Callable[[dict[str, float]], Any]) -> events.Listener:
        """Call ``callback(record)`` for each record only, e.g. ``RunBuffer.append`` of the
        plots; returns the listener (for :meth:`unsubscribe`)."""

        def records_only(event: RunEvent) -> None:
            if event.kind == events.RECORD:
                callback(event.payload)

        return self.subscribe(records_only)

    def unsubscribe(self, listener: events.Listener) -> None:
        for group in (self._listeners, self._recorder.listeners if self._recorder else []):
            if listener in group:
                group.remove(listener)

    def validate(self) -> None:
        """Check parameters and station limits; raises ConfigError/LimitError naming the
        parameter. Touches no instrument and creates no file."""
        if self.filename and (self.output_dir / self.filename).exists():
            raise DataFileError(f"{self.output_dir / self.filename}: run file already exists; "
                                "choose another name (runs are never overwritten)")
        from daqapp.runner.procedure import validate_parameters

        self.procedure.station = self.station
        self.procedure.control = self.control
        validate_parameters(self.procedure, self.station)
        self._validated = True

    def start(self) -> None:
        """Validate (raising here, in the caller's thread) and run in a worker thread."""
        if self._thread is not None:
            raise RuntimeError("this Run was already started; make a new Run to run again")
        self.validate()
        self._thread = threading.Thread(target=self.execute, name=f"run-{self._name()}",
                                        daemon=True)
        self._thread.start()

    def execute(self) -> RunResult:
        """Run in the calling thread until the end; returns the :class:`RunResult`.

        Raises only for invalid parameters/limits (before anything is created or moved);
        every other failure ends as a "failed" result with the error text."""
        if not self._validated:
            self.validate()
        try:
            return self._execute()
        finally:
            self._done.set()

    def wait(self, timeout: float | None = None) -> RunResult | None:
        """Block until the run ends (None if ``timeout`` passes first)."""
        if not self._done.wait(timeout):
            return None
        return self._result

    def add_fit(self, name: str, result: dict[str, Any]) -> bool:
        """Store a fit result in the open run file and tell listeners (any thread; the fit
        worker calls it). False once the file is closed: use ``daqapp.storage.append_fit``
        on :attr:`path` then."""
        recorder = self._recorder
        if recorder is None or recorder.writer is None:
            return False
        try:
            recorder.fit(name, result)
        except RuntimeError:  # the run ended between the check and the write
            return False
        return True

    @property
    def recorder(self) -> RunRecorder | None:
        """The run's record fan-out (its ``writer`` is the open RunWriter), None before start."""
        return self._recorder

    @property
    def thread_id(self) -> int | None:
        """Identity of the acquisition thread (for log filters), None before :meth:`start`."""
        return self._thread.ident if self._thread is not None else None

    @property
    def result(self) -> RunResult | None:
        return self._result

    @property
    def rows(self) -> int:
        return self._recorder.rows if self._recorder else 0

    # ---- internals ----------------------------------------------------------------------
    def _name(self) -> str:
        return type(self.procedure).__name__

    def _execute(self) -> RunResult:
        started = time.time()
        self.path = (self.output_dir / self.filename if self.filename
                     else unique_run_path(self.output_dir, self._name()))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        recorder = RunRecorder(self.path, self.procedure, self.station, self.metadata,
                               self.writer_factory, self._listeners)
        self._recorder = recorder
        procedure = self.procedure
        procedure.emit = recorder.handle
        procedure.should_stop = self.control.should_stop
        procedure.is_last = lambda: True
        status, error = events.FAILED, None
        opened = False
        try:
            recorder.open()
            opened = True
            self._set_status(events.RUNNING, "started")
            recorder.publish(events.PROGRESS, 0.0)
            procedure.startup()
            procedure.evaluate_metadata()
            procedure.execute()
            if self.control.abort_requested:
                raise RunAborted(self.control.abort_reason or "aborted by operator")
            status = events.STOPPED if self.control.stop_requested else events.FINISHED
        except RunAborted as exc:
            status, error = events.ABORTED, self.control.abort_reason or str(exc)
        except (KeyboardInterrupt, SystemExit):
            status, error = events.ABORTED, "interrupted"
        except Exception as exc:  # noqa: BLE001 - every failure ends in the safe state
            status = events.FAILED
            error = _describe(exc)
            if not isinstance(exc, DaqappError):
                log.debug("run failed:\n%s", traceback.format_exc())
        finally:
            status, error, safe = self._bookend(recorder, status, error, opened)
        if status == events.FINISHED:
            recorder.publish(events.PROGRESS, 100.0)
        self._set_status(status, error or "")
        self._result = RunResult(status, self.path if opened else None, recorder.rows, error,
                                 time.time() - started, safe.summary if safe else None)
        return self._result

    def _bookend(self, recorder: RunRecorder, status: str, error: str | None, opened: bool
                 ) -> tuple[str, str | None, SafeStateOutcome | None]:
        """shutdown -> safe state -> end snapshot/status/error, each step protected.

        Returns the final status (failed when the safe state is not confirmed), the error
        text and the safe state's outcome."""
        problems = [error] if error else []
        try:
            self.procedure.shutdown()
        except Exception as exc:  # noqa: BLE001
            problems.append(f"shutdown failed: {_describe(exc)}")
        run_problems = "; ".join(problems)
        ended_as = status
        safe = apply_safe_state(self.station)
        if safe is not None and not safe.confirmed:
            status = events.FAILED
            problems.append(safe.summary)
        text = "; ".join(problems) or None
        if opened:
            if ended_as == events.STOPPED:
                recorder.log("INFO", f"stopped by operator after {recorder.rows} points")
            elif ended_as == events.ABORTED:
                recorder.log("WARNING", f"aborted after {recorder.rows} points: {run_problems}")
            elif run_problems:
                recorder.log("ERROR", run_problems)
            for level, message in (safe.log_lines() if safe else []):
                recorder.log(level, message)
            recorder.log("ERROR" if status == events.FAILED else "INFO",
                         f"run ended: {status}; "
                         f"{safe.summary if safe else 'no station (no safe state)'}")
            try:
                recorder.close(FILE_STATUS[status], text,
                               safe_state=safe.to_dict() if safe else None)
            except Exception as exc:  # noqa: BLE001 - report, the data are already flushed
                log.error("closing the run file failed: %s", exc)
                text = "; ".join(filter(None, [text, f"closing run file: {_describe(exc)}"]))
        return status, text, safe

    def _set_status(self, status: str, reason: str) -> None:
        self.status = status
        if self._recorder is not None:
            self._recorder.publish(events.STATUS, {"status": status, "reason": reason})

    def _on_control_status(self, status: str, reason: str) -> None:
        if self._recorder is not None:
            level = "WARNING" if status == events.SUSPENDED else "INFO"
            self._recorder.log(level, f"{status}: {reason}")
        self._set_status(status, reason)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, DaqappError):
        return text
    return f"{type(exc).__name__}: {text}"
