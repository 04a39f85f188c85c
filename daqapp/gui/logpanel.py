"""The window's log: every ``logging`` record of daqapp, drivers and procedures, thread-safe.

Records arrive from the acquisition, fit and monitor threads; a Qt signal carries them to the
GUI thread (queued connection), so the handler never touches a widget from another thread.
"""

from __future__ import annotations

import logging

from qtpy import QtCore, QtGui, QtWidgets

_COLOURS = {logging.WARNING: "#A06000", logging.ERROR: "#C00000", logging.CRITICAL: "#C00000"}


class _Emitter(QtCore.QObject):
    record = QtCore.Signal(int, str)


class QtLogHandler(logging.Handler):
    """A logging handler that forwards formatted records through a Qt signal."""

    def __init__(self) -> None:
        super().__init__()
        self.emitter = _Emitter()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s",
                                            "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.emitter.record.emit(record.levelno, self.format(record))
        except RuntimeError:  # the panel was deleted while a thread still logs
            pass


class LogPanel(QtWidgets.QPlainTextEdit):
    """Read-only, bounded log view attached to the root logger while it exists."""

    MAX_LINES = 20000

    def __init__(self, parent: QtWidgets.QWidget | None = None,
                 level: int = logging.INFO) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(self.MAX_LINES)
        self.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        self.setLineWrapMode(QtWidgets.QPlainTextEdit.LineWrapMode.NoWrap)
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

    def append_record(self, level: int, text: str) -> None:
        # every line as HTML with an explicit colour, so a red line never bleeds into the next
        colour = _COLOURS.get(level, "#000000")
        escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        self.appendHtml(f'<span style="color:{colour}; white-space:pre">{escaped}</span>')
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    def lines(self) -> list[str]:
        return self.toPlainText().splitlines()
