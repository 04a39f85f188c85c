"""Parameter entry built from a procedure's pymeasure Parameters, refusing bad values at the field.

Each numeric field shows its unit and its allowed range (the Parameter's own minimum/maximum
narrowed by the station's limits), turns red and says why as soon as the text leaves the
range, and the form will not hand out values while any field is wrong — so a typo never
reaches the queue, let alone an instrument.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from pymeasure.experiment.parameters import (
    BooleanParameter,
    FloatParameter,
    IntegerParameter,
    ListParameter,
    Parameter,
    VectorParameter,
)
from qtpy import QtCore, QtWidgets

from daqapp.errors import LimitError, check_number
from daqapp.runner.procedure import parameter_rule

_BAD_STYLE = "QLineEdit { background: #FFE0E0; border: 1px solid #C00000; }"
_HUGE = 1e8  # pymeasure's default bounds are ±1e9: treat anything this wide as "no limit"


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def station_ranges(procedure_class: type, station: Any) -> dict[str, tuple[float, float]]:
    """Each numeric parameter's range on ``station``: the procedure's own intersected with
    the station limit its ``check_limits`` applies (the same computation as the command line's
    messages and ``daqapp run --list``), so the form never shows a range the run refuses."""
    from daqapp.runner.procedure import effective_range
    from daqapp.runner.roles import station_limits

    try:
        probe = procedure_class()
    except Exception:  # noqa: BLE001 - a procedure that cannot be built bare: own ranges
        return {}
    probe.station = station
    limits = station_limits(station) if station is not None else None
    ranges = {}
    for key in procedure_parameters(procedure_class):
        span = effective_range(probe, key, limits)
        if span is not None:
            ranges[key] = (span[0], span[1])
    return ranges


def range_text(lo: float, hi: float, unit: str | None) -> str:
    u = f" {unit}" if unit else ""
    if abs(lo) >= _HUGE and abs(hi) >= _HUGE:
        return "any value"
    if abs(lo) >= _HUGE:
        return f"≤ {_fmt(hi)}{u}"
    if abs(hi) >= _HUGE:
        return f"≥ {_fmt(lo)}{u}"
    return f"{_fmt(lo)} to {_fmt(hi)}{u}"


class _Field(QtWidgets.QWidget):
    """One parameter row: editor, unit/range label, and an error line shown when invalid."""

    changed = QtCore.Signal()

    def __init__(self, key: str, parameter: Parameter,
                 allowed: tuple[float, float] | None) -> None:
        super().__init__()
        self.key = key
        self.parameter = parameter
        self.lo, self.hi = allowed or (float(getattr(parameter, "minimum", -math.inf)),
                                       float(getattr(parameter, "maximum", math.inf)))
        self.unit = getattr(parameter, "units", None) or ""
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(1)
        row = QtWidgets.QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        self.error = QtWidgets.QLabel()
        self.error.setStyleSheet("color: #C00000;")
        self.error.setWordWrap(True)
        self.error.hide()
        layout.addWidget(self.error)
        default = parameter.default
        if isinstance(parameter, BooleanParameter):
            self.editor: QtWidgets.QWidget = QtWidgets.QCheckBox()
            self.editor.setChecked(bool(default))
            self.editor.toggled.connect(self._on_change)
        elif isinstance(parameter, ListParameter):
            self.editor = QtWidgets.QComboBox()
            for choice in parameter.choices or ():
                self.editor.addItem(str(choice), choice)
            if default is not None:
                self.editor.setCurrentIndex(max(0, self.editor.findText(str(default))))
            self.editor.currentIndexChanged.connect(self._on_change)
        else:
            self.editor = QtWidgets.QLineEdit()
            if isinstance(default, (list, tuple)):
                self.editor.setText(", ".join(str(v) for v in default))
            elif default is not None:
                self.editor.setText(_fmt(default) if isinstance(default, float) else str(default))
            self.editor.textChanged.connect(self._on_change)
        row.addWidget(self.editor, 1)
        tip = parameter.description or parameter.name
        if self._numeric():
            zero = "0 or " if parameter_rule(parameter)["zero_allowed"] else ""
            hint = f"{self.unit}  [{zero}{range_text(self.lo, self.hi, None)}]".strip()
            tip += f"\nallowed: {zero}{range_text(self.lo, self.hi, self.unit)}"
        else:
            hint = self.unit
        self.hint = QtWidgets.QLabel(hint)
        self.hint.setStyleSheet("color: #555555;")
        row.addWidget(self.hint)
        self.setToolTip(tip)
        self.external_error: str | None = None

    def _numeric(self) -> bool:
        return isinstance(self.parameter, (FloatParameter, IntegerParameter))

    def value(self) -> Any:
        """The converted value; raises LimitError/ValueError naming the parameter."""
        p = self.parameter
        if isinstance(self.editor, QtWidgets.QCheckBox):
            return self.editor.isChecked()
        if isinstance(self.editor, QtWidgets.QComboBox):
            return self.editor.currentData()
        text = self.editor.text().strip()
        if self._numeric():
            if self.unit and text.endswith(self.unit):
                text = text[: -len(self.unit)].strip()
            # the procedure's own rule (finite, normal, whole where integral, 0 where it means
            # "off"), on the range narrowed by the station
            own = parameter_rule(p)
            try:
                return check_number(self.key, text, **{**own, "low": self.lo, "high": self.hi})
            except LimitError as exc:
                narrowed = (None not in (own["low"], own["high"])
                            and (own["low"], own["high"]) != (self.lo, self.hi))
                if narrowed and "outside the allowed range" in str(exc):
                    # as the command line words it: the station narrowed the procedure's range
                    unit = f" {self.unit}" if self.unit else ""
                    raise LimitError(f"{exc} on this station (procedure {own['low']:g} to "
                                     f"{own['high']:g}{unit})") from None
                raise
        if isinstance(p, VectorParameter):
            try:
                return p.convert("[" + text.strip("[]") + "]")
            except ValueError as exc:
                raise LimitError(f"{self.key}: {exc}") from None
        try:
            return p.convert(text)
        except ValueError as exc:
            raise LimitError(f"{self.key}: {exc}") from None

    def set_value(self, value: Any) -> None:
        if isinstance(self.editor, QtWidgets.QCheckBox):
            self.editor.setChecked(bool(value))
        elif isinstance(self.editor, QtWidgets.QComboBox):
            self.editor.setCurrentIndex(max(0, self.editor.findText(str(value))))
        elif isinstance(value, (list, tuple)):
            self.editor.setText(", ".join(str(v) for v in value))
        else:
            self.editor.setText(_fmt(value) if isinstance(value, float) else str(value))

    def validate(self) -> str | None:
        """Show and return the error message, or clear it and return None."""
        try:
            self.value()
            if self.external_error:
                raise LimitError(self.external_error)
        except (LimitError, ValueError) as exc:
            message = str(exc)
            self.error.setText(message)
            self.error.show()
            if isinstance(self.editor, QtWidgets.QLineEdit):
                self.editor.setStyleSheet(_BAD_STYLE)
            return message
        self.error.hide()
        if isinstance(self.editor, QtWidgets.QLineEdit):
            self.editor.setStyleSheet("")
        return None

    def _on_change(self, *_args) -> None:
        self.external_error = None
        self.validate()
        self.changed.emit()


class ParameterForm(QtWidgets.QWidget):
    """The editable parameters of one procedure class, with units, defaults and the ranges
    valid on ``station`` (procedure ∩ station limits; the procedure's own without one)."""

    validity_changed = QtCore.Signal(bool)

    def __init__(self, procedure_class: type, station: Any = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.procedure_class = procedure_class
        self.fields: dict[str, _Field] = {}
        layout = QtWidgets.QFormLayout(self)
        # labels above their fields (as pymeasure's inputs): a narrow dock never clips them
        layout.setRowWrapPolicy(QtWidgets.QFormLayout.RowWrapPolicy.WrapAllRows)
        layout.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        layout.setVerticalSpacing(2)
        ranges = station_ranges(procedure_class, station)
        for key, parameter in procedure_parameters(procedure_class).items():
            field = _Field(key, parameter, ranges.get(key))
            field.changed.connect(self._emit_validity)
            label = QtWidgets.QLabel(parameter.name)
            label.setToolTip(field.toolTip())
            layout.addRow(label, field)
            self.fields[key] = field

    def errors(self) -> list[str]:
        return [m for f in self.fields.values() if (m := f.validate()) is not None]

    def is_valid(self) -> bool:
        return not self.errors()

    def values(self) -> dict[str, Any]:
        """All values by attribute name; raises LimitError naming the first bad parameter."""
        return {key: field.value() for key, field in self.fields.items()}

    def set_values(self, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            if key in self.fields:
                self.fields[key].set_value(value)

    def set_external_error(self, message: str | None) -> None:
        """Show a limit the procedure or station reported (e.g. a station limit checked by the
        procedure's ``check_limits``) at the field the message names; None clears them."""
        for field in self.fields.values():
            field.external_error = None
        target = field_named_in(message, self.fields) if message else None
        if target is not None:
            self.fields[target].external_error = message
        for field in self.fields.values():
            field.validate()

    def _emit_validity(self) -> None:
        self.validity_changed.emit(self.is_valid())


def procedure_parameters(procedure_class: type) -> dict[str, Parameter]:
    """The class's pymeasure Parameters by attribute name, in declaration order."""
    found: dict[str, Parameter] = {}
    for klass in reversed(procedure_class.__mro__):
        for key, value in vars(klass).items():
            if isinstance(value, Parameter):
                found[key] = value
    return found


def field_named_in(message: str, keys) -> str | None:
    """The parameter a limit message is about: errors read ``name = value …``, possibly after
    the validator's ``"<procedure> parameter "`` or ``"<procedure>: "``."""
    head = message.split("=", 1)[0].strip()
    for candidate in (head.split(":")[0].strip(), re.split(r"[\s:]+", head)[-1]):
        if candidate in keys:
            return candidate
    for key in sorted(keys, key=len, reverse=True):
        if key in message:
            return key
    return None
