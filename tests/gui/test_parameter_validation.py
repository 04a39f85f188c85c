"""The window's parameter form refuses NaN, infinities and denormals with the validator's rule,
and its queue button queues nothing (no run, no file) while a field is wrong."""

from __future__ import annotations

import math

import pytest

from daqapp.errors import LimitError
from daqapp.gui.main_window import MainWindow
from daqapp.gui.params import ParameterForm
from daqapp.station import Station
from procedures.lockin_spectrum import DifferentialConductanceLockIn


@pytest.mark.parametrize("key, text, needle", [
    ("settle_time", "nan", "settle_time = nan: must be 0 or a finite number in [0.001, 3600] s"),
    ("settle_time", "1e-320", "settle_time = 1e-320"),
    ("time_constant", "inf", "time_constant = inf"),
    ("points", "2.5", "points = 2.5: must be a whole number in [2, 100000]"),
    ("excitation", "-nan", "excitation = -nan"),
])
def test_form_fields_refuse_non_finite_values(qtbot, key, text, needle):
    form = ParameterForm(DifferentialConductanceLockIn)
    qtbot.addWidget(form)
    assert form.is_valid()
    field = form.fields[key]
    with qtbot.waitSignal(form.validity_changed) as blocker:
        field.editor.setText(text)
    assert blocker.args == [False]
    assert needle in field.error.text() and not field.error.isHidden()
    with pytest.raises(LimitError, match=key):
        form.values()
    field.editor.setText("0" if key in ("settle_time", "time_constant") else "11")
    if key == "excitation":
        field.editor.setText("0.1")
    assert form.is_valid(), form.errors()


def test_zero_means_automatic_and_the_hint_says_so(qtbot):
    form = ParameterForm(DifferentialConductanceLockIn)
    qtbot.addWidget(form)
    assert "0 or 0.001 to 3600" in form.fields["settle_time"].hint.text()
    form.fields["settle_time"].editor.setText("0")
    assert form.values()["settle_time"] == 0.0


@pytest.fixture(scope="module")
def lab():
    with Station.simulated(speed=1000.0, seed=5).connect() as conn:
        yield conn


def test_queue_button_refuses_nan_and_nothing_is_queued_or_written(qtbot, lab, tmp_path):
    window = MainWindow(lab, output_dir=tmp_path, monitor_interval_s=0.5)
    qtbot.addWidget(window)
    form = window.select_procedure("didv-lockin")
    form.fields["settle_time"].editor.setText("nan")
    assert not window.queue_button.isEnabled()
    assert window.queue_current() is None
    assert "settle_time = nan" in window.statusBar().currentMessage()
    assert window.queue.items == []
    # the same rule behind the form: the queue itself refuses what a script hands it
    with pytest.raises(LimitError, match="settle_time = nan"):
        window.queue.enqueue(DifferentialConductanceLockIn, {"settle_time": math.nan})
    assert window.queue.items == [] and list(tmp_path.iterdir()) == []
    window.shutdown()
