"""One run's record fan-out: the HDF5 writer plus in-memory listeners, and the run's bookends.

Every record a procedure emits goes, in order, to the run file's writer (its own thread; the
append only enqueues) and to the subscribed listeners (plot buffers, fit worker, progress bar).
Nobody re-reads the file to plot. The recorder also writes the start and end snapshots, the
log and the final status, so both ways of running a procedure (``Run`` and pymeasure's Worker
via :mod:`daqapp.runner.pymeasure_compat`) produce identical files.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from daqapp.runner import events
from daqapp.runner.events import RunEvent

log = logging.getLogger(__name__)

#: Loggers whose records the run handler skips: run control writes its own lines directly
#: (the station's safe-state verdict lines too: the run writes them with the end snapshot).
_OWN_LOGGERS = ("daqapp.runner", "daqapp.station.connected")
#: Loggers raised to INFO during a run so the procedures' progress lines reach the run file.
_RUN_LOGGERS = ("procedures", "drivers")

WriterFactory = Callable[..., Any]


def default_writer_factory(path: Path, **kwargs: Any) -> Any:
    """The HDF5 ``RunWriter`` of :mod:`daqapp.storage`."""
    from daqapp.storage.writer import RunWriter

    return RunWriter(path, **kwargs)


def unique_run_path(output_dir: Path, stem: str, suffix: str = ".h5") -> Path:
    """``output_dir/<stem>_<YYYYmmdd-HHMMSS>[_n].h5`` that does not exist yet."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    base = f"{stem}_{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    path = output_dir / f"{base}{suffix}"
    n = 1
    while path.exists():
        n += 1
        path = output_dir / f"{base}_{n}{suffix}"
    return path


def safe_snapshot(station: Any) -> dict[str, Any]:
    """The station's snapshot; on a broken link, what could be read plus the error."""
    if station is None:
        return {}
    try:
        return dict(station.snapshot())
    except Exception as exc:  # noqa: BLE001 - an end snapshot must not hide the run's own error
        log.warning("snapshot failed: %s", exc)
        return {"error": f"snapshot failed: {type(exc).__name__}: {exc}"}


class _ThreadLogHandler(logging.Handler):
    """Copies log records made on the acquisition thread into the run file and event stream."""

    def __init__(self, recorder: RunRecorder, thread_id: int, level: int) -> None:
        super().__init__(level)
        self.recorder = recorder
        self.thread_id = thread_id

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread_id or record.name.startswith(_OWN_LOGGERS):
            return
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not kill the run
            message = str(record.msg)
        self.recorder.log(record.levelname, message)


class _RowBatcher:
    """Hands rows to the writer in batches at most ``interval`` seconds old.

    The HDF5 writer thread drains its queue as soon as one row is queued, so at lab rates
    (a point every few ms) every point became its own HDF5 write of every column, holding
    the GIL for milliseconds and slowing acquisition threefold. Listeners still get each row
    at once; the file gets them ≤ ``interval`` later (plus the writer's ≤ 0.5 s flush, inside
    the one-second crash-safety budget).
    """

    def __init__(self, writer: Any, interval: float = 0.4, max_rows: int = 1024) -> None:
        self.writer = writer
        self.interval = interval
        self.max_rows = max_rows
        self._rows: list[dict[str, float]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="run-row-batcher", daemon=True)
        self._thread.start()

    def add(self, row: dict[str, float]) -> None:
        if self._error is not None:
            raise self._error
        with self._lock:
            self._rows.append(row)
            full = len(self._rows) >= self.max_rows
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            rows, self._rows = self._rows, []
            if rows:  # one hand-over per batch (the writer checks a record shape once per run)
                self.writer.extend(rows)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the acquisition thread
                self._error = exc
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()
        if self._error is not None:
            raise self._error


class RunRecorder:
    """Writer + listeners for one run. Records and logs come from the acquisition thread;
    :meth:`fit` may come from a fit worker thread (the writer's queue is thread-safe)."""

    def __init__(self, path: Path, procedure: Any, station: Any = None,
                 metadata: dict[str, Any] | None = None,
                 writer_factory: WriterFactory | None = None,
                 listeners: Iterable[events.Listener] = ()) -> None:
        self.path = Path(path)
        self.procedure = procedure
        self.station = station
        self.metadata = dict(metadata or {})
        self.writer_factory = writer_factory or default_writer_factory
        self.listeners: list[events.Listener] = list(listeners)
        self.writer: Any = None
        self._batcher: _RowBatcher | None = None
        self.rows = 0
        self.columns = _column_units(procedure)
        self._log_handler: _ThreadLogHandler | None = None
        self._saved_levels: dict[str, int] = {}
        self.started = 0.0

    # ---- life cycle ---------------------------------------------------------------------
    def open(self) -> None:
        """Create the run file and store the start snapshot (instruments not yet touched)."""
        procedure = self.procedure
        parameters = (procedure.parameter_table() if hasattr(procedure, "parameter_table")
                      else {k: {"value": v, "units": ""}
                            for k, v in procedure.parameter_values().items()})
        cls = type(procedure)
        self.writer = self.writer_factory(
            self.path,
            procedure=f"{cls.__module__}.{cls.__qualname__}",
            parameters=parameters,
            metadata=self.metadata,
            columns=self.columns,
            sweep_axis=getattr(procedure, "SWEEP_AXIS", None),
        )
        self.started = time.time()
        self.writer.start(safe_snapshot(self.station))
        self._batcher = _RowBatcher(self.writer)
        self._log_handler = _ThreadLogHandler(self, threading.get_ident(), logging.INFO)
        logging.getLogger().addHandler(self._log_handler)
        self._saved_levels = {}
        for name in _RUN_LOGGERS:
            logger = logging.getLogger(name)
            if logger.getEffectiveLevel() > logging.INFO:
                self._saved_levels[name] = logger.level
                logger.setLevel(logging.INFO)

    def close(self, status: str, error: str | None = None,
              safe_state: dict[str, Any] | None = None) -> None:
        """End snapshot (after the safe state, with its verdict ``safe_state`` under
        ``"safe_state_report"``), final status and error; closes the file."""
        if self._log_handler is not None:
            logging.getLogger().removeHandler(self._log_handler)
            self._log_handler = None
            for name, level in self._saved_levels.items():
                logging.getLogger(name).setLevel(level)
        if self.writer is None:
            return
        snapshot = safe_snapshot(self.station)
        if safe_state is not None:
            from daqapp.runner.safe_state import SNAPSHOT_KEY

            snapshot[SNAPSHOT_KEY] = safe_state
        try:
            if self._batcher is not None:
                self._batcher.close()
        finally:
            self._batcher = None
            try:
                self.writer.finish(status, snapshot, error)
            finally:
                self.writer = None

    # ---- stream -------------------------------------------------------------------------
    def handle(self, topic: str, payload: Any) -> None:
        """pymeasure's ``emit(topic, payload)``: route to the file and the listeners."""
        if topic == "results":
            self.record(payload)
        elif topic == "batch results":
            keys = list(payload)
            for i in range(len(payload[keys[0]]) if keys else 0):
                self.record({k: payload[k][i] for k in keys})
        elif topic == "progress":
            self.publish(events.PROGRESS, float(payload))
        elif topic == "sweep_end":
            self.publish(events.SWEEP_END, dict(payload))
        elif topic == "fit":
            self.fit(payload["name"], payload["result"])
        elif topic == "log":
            level, message = payload if isinstance(payload, tuple) else ("INFO", str(payload))
            self.log(level, message)
        elif topic == "status":
            self.publish(events.STATUS, payload)

    def record(self, record: dict[str, Any]) -> None:
        row = {name: _number(value) for name, value in record.items()}
        unknown = [name for name in row if name not in self.columns]
        if unknown:  # fail here, in the procedure's thread, not later in the batcher
            raise ValueError(f"record key {unknown[0]!r} is not a column of "
                             f"{type(self.procedure).__name__} "
                             f"(columns: {', '.join(self.columns)})")
        self._batcher.add(row)
        self.rows += 1
        self.publish(events.RECORD, row)

    def fit(self, name: str, result: dict[str, Any]) -> None:
        self.writer.add_fit(name, result)
        self.publish(events.FIT, {"name": name, "result": result})

    def log(self, level: str, message: str) -> None:
        """Into the run file's log and to listeners (not to Python logging: no echo loop)."""
        if self.writer is not None:
            self.writer.log(level, message)
        self.publish(events.LOG, {"level": level, "message": message})

    def publish(self, kind: str, payload: Any) -> None:
        event = RunEvent(kind, payload)
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a broken plot must not stop acquisition
                log.exception("run listener %r failed; removing it", listener)
                if listener in self.listeners:  # another thread may have removed it already
                    self.listeners.remove(listener)


def _column_units(procedure: Any) -> dict[str, str]:
    getter = getattr(procedure, "column_units", None)
    if callable(getter):
        return dict(getter())
    from daqapp.runner.procedure import column_units_from_names

    return column_units_from_names(list(procedure.DATA_COLUMNS))


def _number(value: Any) -> float:
    """Records are floats in the file: bools -> 0/1, None -> NaN, numpy scalars unwrapped."""
    if value is None:
        return math.nan
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        magnitude = getattr(value, "magnitude", None)  # pint Quantity
        return float(magnitude) if magnitude is not None else math.nan
