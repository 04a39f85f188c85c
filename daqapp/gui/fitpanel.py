"""On-line fit panel: model choice, parameter table with errors, and the model comparison.

It shows plain rows (:class:`daqapp.fitworker.ParameterRow`, :class:`ComparisonRow`) so it does
not depend on how the analysis engine spells its result objects, and it exports exactly what it
shows as CSV.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from qtpy import QtCore, QtWidgets

from daqapp.fitworker import MODELS, ComparisonRow, ParameterRow


def _fmt_value_error(value: float, error: float) -> tuple[str, str]:
    """Value rounded to the error's second significant digit, as physicists write it."""
    if not math.isfinite(value):
        return "—", ""
    if not (math.isfinite(error) and error > 0):
        return f"{value:.5g}", "—"
    digits = max(0, 1 - int(math.floor(math.log10(error))))
    digits = min(digits, 8)
    return f"{value:.{digits}f}", f"{error:.{digits}f}"


class FitPanel(QtWidgets.QWidget):
    """Model check boxes, the parameter table of the selected model, and the AIC/BIC ranking."""

    models_changed = QtCore.Signal(list)
    refit_requested = QtCore.Signal(list)

    PARAM_HEADERS = ("model", "parameter", "value", "± error", "unit")
    COMPARE_HEADERS = ("model", "χ²_red", "AIC", "ΔAIC", "BIC", "ΔBIC", "k")

    def __init__(self, models: Sequence[str] = ("s+s",),
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        boxes = QtWidgets.QHBoxLayout()
        boxes.setSpacing(6)
        boxes.addWidget(QtWidgets.QLabel("Models:"))
        self.model_boxes: dict[str, QtWidgets.QCheckBox] = {}
        for name in MODELS:
            box = QtWidgets.QCheckBox(name)
            box.setChecked(name in models)
            box.toggled.connect(self._on_models_toggled)
            boxes.addWidget(box)
            self.model_boxes[name] = box
        boxes.addStretch(1)
        layout.addLayout(boxes)
        buttons = QtWidgets.QHBoxLayout()
        self.refit_button = QtWidgets.QPushButton("Refit")
        self.refit_button.setToolTip("Fit the spectra shown again with the checked models")
        self.refit_button.clicked.connect(lambda: self.refit_requested.emit(self.models()))
        buttons.addWidget(self.refit_button)
        self.export_button = QtWidgets.QPushButton("Export CSV…")
        self.export_button.setToolTip("Save the parameter table and the model comparison")
        self.export_button.clicked.connect(self.export_dialog)
        buttons.addWidget(self.export_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.status = QtWidgets.QLabel("No fit yet.")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        self.param_table = self._table(self.PARAM_HEADERS)
        self.compare_table = self._table(self.COMPARE_HEADERS)
        split.addWidget(self.param_table)
        split.addWidget(self.compare_table)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([260, 90])
        layout.addWidget(split, 1)
        self._params: list[ParameterRow] = []
        self._compare: list[ComparisonRow] = []

    @staticmethod
    def _table(headers: Sequence[str]) -> QtWidgets.QTableWidget:
        table = QtWidgets.QTableWidget(0, len(headers))
        table.setHorizontalHeaderLabels(list(headers))
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setAlternatingRowColors(True)
        table.verticalHeader().setDefaultSectionSize(19)
        table.verticalHeader().setMinimumSectionSize(16)
        table.horizontalHeader().setSectionResizeMode(
            QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        return table

    def models(self) -> list[str]:
        return [name for name, box in self.model_boxes.items() if box.isChecked()]

    def set_models(self, models: Iterable[str]) -> None:
        wanted = set(models)
        for name, box in self.model_boxes.items():
            box.blockSignals(True)
            box.setChecked(name in wanted)
            box.blockSignals(False)
        self.models_changed.emit(self.models())

    def _on_models_toggled(self, _checked: bool) -> None:
        self.models_changed.emit(self.models())

    # -- content ---------------------------------------------------------------------------
    def show_fit(self, parameters: Sequence[ParameterRow], comparison: Sequence[ComparisonRow],
                 status: str) -> None:
        self._params = list(parameters)
        self._compare = list(comparison)
        self.status.setText(status)
        self.param_table.setRowCount(len(self._params))
        for i, row in enumerate(self._params):
            value, error = _fmt_value_error(row.value, row.error)
            cells = (row.model, row.name + (" (fixed)" if row.fixed else ""), value, error,
                     row.unit)
            for j, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                if j in (2, 3):
                    item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight
                                          | QtCore.Qt.AlignmentFlag.AlignVCenter)
                self.param_table.setItem(i, j, item)
        self.compare_table.setRowCount(len(self._compare))
        for i, row in enumerate(self._compare):
            cells = (row.model, f"{row.chi2_red:.3g}", f"{row.aic:.1f}", f"{row.delta_aic:.1f}",
                     f"{row.bic:.1f}", f"{row.delta_bic:.1f}", str(row.n_free))
            for j, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                if i == 0:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.compare_table.setItem(i, j, item)

    def parameter_rows(self) -> list[ParameterRow]:
        return list(self._params)

    def comparison_rows(self) -> list[ComparisonRow]:
        return list(self._compare)

    def export_csv(self, path: str | Path) -> Path:
        """Write the parameter table and the comparison below it, as shown."""
        path = Path(path)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["model", "parameter", "value", "error", "unit", "fixed",
                             "temperature_K", "sweep"])
            for r in self._params:
                writer.writerow([r.model, r.name, repr(r.value), repr(r.error), r.unit,
                                 int(r.fixed), repr(r.temperature_K), r.sweep])
            writer.writerow([])
            writer.writerow(["model", "chi2_red", "aic", "delta_aic", "bic", "delta_bic",
                             "n_free", "n_points"])
            for c in self._compare:
                writer.writerow([c.model, repr(c.chi2_red), repr(c.aic), repr(c.delta_aic),
                                 repr(c.bic), repr(c.delta_bic), c.n_free, c.n_points])
        return path

    def export_dialog(self) -> None:
        name, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export fit table", "fits.csv",
                                                        "CSV (*.csv)")
        if name:
            self.export_csv(name)
