"""A browser of the run files in a folder (storage ``list_runs``), newest first.

The status comes first and is always as wide as its longest word ("interrupted"), so a
narrow dock never shows "fini" or "abo"; procedures are shown by the short names the
window and campaigns use (``didv-lockin``), not their class names.
"""

from __future__ import annotations

from pathlib import Path

from qtpy import QtCore, QtGui, QtWidgets

from daqapp.errors import DataFileError
from daqapp.storage import list_runs

_STATUS_COLOURS = {"finished": "#006000", "running": "#0050A0", "aborted": "#A06000",
                   "failed": "#C00000", "interrupted": "#C00000", "unreadable": "#C00000"}


class ElidedLabel(QtWidgets.QLabel):
    """A one-line label that shows "…" in the middle when narrower than its text (a path)."""

    def minimumSizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt API
        hint = super().minimumSizeHint()
        return QtCore.QSize(min(hint.width(), 60), hint.height())

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 - Qt API
        painter = QtGui.QPainter(self)
        text = self.fontMetrics().elidedText(self.text(), QtCore.Qt.TextElideMode.ElideMiddle,
                                             self.width())
        painter.drawText(self.rect(), int(self.alignment()), text)


class RunsBrowser(QtWidgets.QWidget):
    """Table of past runs; double-click (or *Replay*) opens one in the replay viewer."""

    open_requested = QtCore.Signal(list)
    HEADERS = ("status", "start", "procedure", "points", "sample", "file")
    STATUS_COLUMN = 0

    def __init__(self, folder: str | Path, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.folder = Path(folder)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        row = QtWidgets.QHBoxLayout()
        self.folder_label = ElidedLabel()
        align = QtCore.Qt.AlignmentFlag
        self.folder_label.setAlignment(align.AlignLeft | align.AlignVCenter)
        self.folder_label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored,
                                        QtWidgets.QSizePolicy.Policy.Preferred)
        row.addWidget(self.folder_label, 1)
        choose = QtWidgets.QPushButton("Folder…")
        choose.clicked.connect(self._choose_folder)
        row.addWidget(choose)
        refresh = QtWidgets.QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        row.addWidget(refresh)
        self.replay_button = QtWidgets.QPushButton("Replay")
        self.replay_button.setToolTip("Open the selected runs in the replay viewer")
        self.replay_button.clicked.connect(self._open_selected)
        row.addWidget(self.replay_button)
        layout.addLayout(row)
        self.table = QtWidgets.QTableWidget(0, len(self.HEADERS))
        self.table.setHorizontalHeaderLabels(list(self.HEADERS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.horizontalHeader().setSectionResizeMode(
            QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self._short_names: dict[str, str] | None = None
        self.table.doubleClicked.connect(lambda _index: self._open_selected())
        layout.addWidget(self.table, 1)
        self.refresh()

    def set_folder(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.refresh()

    def _choose_folder(self) -> None:
        name = QtWidgets.QFileDialog.getExistingDirectory(self, "Run folder", str(self.folder))
        if name:
            self.set_folder(name)

    def refresh(self) -> None:
        self.folder_label.setText(str(self.folder))
        self.folder_label.setToolTip(str(self.folder.resolve()))
        try:
            runs = list_runs(self.folder) if self.folder.is_dir() else []
        except DataFileError:
            runs = []
        runs = list(reversed(runs))
        self.table.setRowCount(len(runs))
        for i, run in enumerate(runs):
            procedure = self.short_name(run.procedure.rsplit(".", 1)[-1])
            cells = (run.status, run.start[:19].replace("T", " "), procedure, str(run.n_rows),
                     run.sample, Path(run.path).name)
            for j, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                item.setData(QtCore.Qt.ItemDataRole.UserRole, run.path)
                if run.error:
                    item.setToolTip(run.error)
                if j == self.STATUS_COLUMN and run.status in _STATUS_COLOURS:
                    item.setForeground(QtGui.QBrush(QtGui.QColor(_STATUS_COLOURS[run.status])))
                self.table.setItem(i, j, item)

        self.table.resizeColumnsToContents()

    def short_name(self, class_name: str) -> str:
        """The procedure's name in the window and in campaigns (its class name if none)."""
        if self._short_names is None:
            try:
                from daqapp.gui.catalogue import discover_procedures

                self._short_names = {cls.__name__: key
                                     for key, cls in discover_procedures().items()}
            except Exception:  # noqa: BLE001 - a browser of files must open without them
                self._short_names = {}
        return self._short_names.get(class_name, class_name)

    def paths(self) -> list[str]:
        return [self.table.item(i, 0).data(QtCore.Qt.ItemDataRole.UserRole)
                for i in range(self.table.rowCount())]

    def _open_selected(self) -> None:
        rows = sorted({index.row() for index in self.table.selectedIndexes()})
        paths = [self.table.item(r, 0).data(QtCore.Qt.ItemDataRole.UserRole) for r in rows]
        if paths:
            self.open_requested.emit(paths)
