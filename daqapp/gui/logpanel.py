"""The window's log: every ``logging`` record of daqapp, drivers and procedures, thread-safe.

Records arrive from the acquisition, fit and monitor threads; a Qt signal carries them to the
GUI thread (queued connection), so the handler never touches a widget from another thread.

A run copies the log records of its acquisition thread into its event stream (and file); the
window shows a run's log events only when no record with that text has just come through
here, so each line appears once. Long lines wrap at the panel's width instead of running out
of sight.
"""

from __future__ import annotations

import collections
import logging
import threading

from qtpy import QtCore, QtGui, QtWidgets

_COLOURS = {logging.WARNING: "#A06000", logging.ERROR: "#C00000", logging.CRITICAL: "#C00000"}


class _Emitter(QtCore.QObject):
    record = QtCore.Signal(int, str)


class QtLogHandler(logging.Handler):
    """A logging handler that forwards formatted records through a Qt signal."""

    #: messages remembered to recognise a run's copy of a record already shown
    RECENT = 500

    def __init__(self) -> None:
        super().__init__()
        self.emitter = _Emitter()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s",
                                            "%H:%M:%S"))
        self._recent: collections.deque[str] = collections.deque(maxlen=self.RECENT)
        self._recent_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - the formatter below reports a bad format string
            message = str(record.msg)
        with self._recent_lock:  # before the run's copy of it can be delivered
            self._recent.append(message)
        try:
            self.emitter.record.emit(record.levelno, self.format(record))
        except RuntimeError:  # the panel was deleted while a thread still logs
            pass

    def seen(self, message: str) -> bool:
        """True if a record with this text came through lately (so a run's copy of it is a
        duplicate)."""
        with self._recent_lock:
            return message in self._recent


class LogPanel(QtWidgets.QPlainTextEdit):
    """Read-only, bounded log view attached to the root logger while it exists."""

    MAX_LINES = 20000

    def __init__(self, parent: QtWidgets.QWidget | None = None,
                 level: int = logging.INFO) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(self.MAX_LINES)
        self.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        self.setLineWrapMode(QtWidgets.QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.handler = QtLogHandler()
        self.handler.setLevel(level)
        self.handler.emitter.record.connect(self.append_record)
        root = logging.getLogger()
        root.addHandler(self.handler)
        if root.level > level or root.level == logging.NOTSET:
            root.setLevel(level)
        self.destroyed.connect(lambda *_: root.removeHandler(self.handler))

    def detach(self) -> None:
        logging.getLogger().removeHandler(self.handler)

    def log_run_event(self, source: str, level: str, message: str) -> bool:
        """A run's log event: logged (logger ``run``, ``source`` first) unless the record it
        was copied from is already shown; True when logged."""
        if self.handler.seen(message):
            return False
        number = getattr(logging, str(level).upper(), logging.INFO)
        logging.getLogger("run").log(number if isinstance(number, int) else logging.INFO,
                                     "%s %s", source, message)
        return True

    def append_record(self, level: int, text: str) -> None:
        # every line as HTML with an explicit colour, so a red line never bleeds into the next
        colour = _COLOURS.get(level, "#000000")
        escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        self.appendHtml(f'<span style="color:{colour}; white-space:pre">{escaped}</span>')
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    def lines(self) -> list[str]:
        return self.toPlainText().splitlines()
