"""One validation for every parameter of every procedure, and nothing reaches an instrument.

The procedures are discovered through the registry (``procedures.PROCEDURES`` / ``load``), so a
new procedure or parameter is covered without editing this file. Each is validated on a
recording station: every role is an object that logs any call made on it, so "refused before
anything moves" is checked as "no call was logged", whether the value was accepted or not.
"""

from __future__ import annotations

import math
import re
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymeasure.experiment import FloatParameter as PlainFloatParameter

import procedures
from daqapp.errors import ConfigError, DaqappError, LimitError, check_number
from daqapp.runner import ControlledProcedure, Run
from daqapp.runner.procedure import (
    FloatParameter,
    IntegerParameter,
    parameter_rule,
    validate_parameters,
)
from daqapp.station import Station
from procedures.common import FloatListParameter

DENORMALS = (1e-320, -1e-320, 5e-324, sys.float_info.min / 2)


class RecordingRole:
    """An instrument that answers nothing and records every call made on it."""

    def __init__(self, name: str, calls: list) -> None:
        self._name = name
        self._calls = calls

    def __getattr__(self, attribute: str):
        if attribute.startswith("__"):
            raise AttributeError(attribute)

        def call(*args, **kwargs):
            self._calls.append((self._name, attribute, args))
            return 0.0

        return call


class RecordingStation:
    """Limits and wiring of a real (virtual-lab) station file, instruments that record."""

    def __init__(self, **tables) -> None:
        config = Station.simulated(**tables)
        self.limits = config.limits
        self.wiring = config.wiring
        self.calls: list = []
        self.roles = {name: RecordingRole(name, self.calls)
                      for name in ("lockin", "source", "nanovoltmeter", "temperature",
                                   "magnet")}

    def role(self, name: str):
        return self.roles.get(name)


def station_for(name: str) -> RecordingStation:
    # the Nb calibration's ±0.75 mA needs the DC bias from the current source
    if name == "nb-calibration":
        return RecordingStation(wiring={"dc_bias_source": "current_source"})
    return RecordingStation()


def numeric_parameters() -> list[tuple[str, str]]:
    """(procedure, parameter) for every numeric parameter of every registered procedure."""
    found = []
    for name in procedures.PROCEDURES:
        for key, parameter in procedures.load(name)().parameter_objects().items():
            if parameter_rule(parameter) or isinstance(parameter, FloatListParameter):
                found.append((name, key))
    return found


NUMERIC = numeric_parameters()

#: Values a hostile or careless user gives: non-finite, denormal, huge, negative, wrong type.
hostile = st.one_of(
    st.sampled_from([math.nan, -math.nan, math.inf, -math.inf, *DENORMALS, 1e308, -1e308,
                     0.0, -0.0, 2.5, -1, True, False, None, "nan", "inf", "-inf", "1e-320",
                     "", "abc", "1e999", [1.0], {"a": 1}, "0:nan:1", "1, nan", "0:1:1e-300"]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e-300, max_value=1e-300),
    st.integers(min_value=-10**20, max_value=10**20),
    st.text(max_size=12),
)


def assert_accepted_value_is_sound(procedure, key: str) -> None:
    parameter = procedure._parameters[key]
    value = getattr(procedure, key)
    rule = parameter_rule(parameter)
    if rule:
        assert isinstance(value, int if rule["integral"] else float), (key, value)
        assert math.isfinite(value) and not isinstance(value, bool)
        assert value == 0 or abs(value) >= sys.float_info.min  # not a denormal
        low_ok = value >= rule["low"] or (rule["zero_allowed"] and value == 0)
        assert low_ok and value <= rule["high"], (key, value)
    else:  # a list parameter: every value finite and in its declared range
        for number in parameter.parse(value):
            assert math.isfinite(number)
            if parameter.minimum is not None:
                assert parameter.minimum <= number <= parameter.maximum


@pytest.mark.parametrize("name, key", NUMERIC)
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=hostile)
def test_every_parameter_refuses_or_accepts_soundly_and_nothing_moves(name, key, value):
    station = station_for(name)
    procedure = procedures.load(name)()
    setattr(procedure, key, value)
    try:
        validate_parameters(procedure, station, name=name)
    except DaqappError as exc:
        message = str(exc)
        assert "\n" not in message
        # the parameter is named, or a cross-parameter/station rule that quotes it
        assert key in message or (message.startswith(f"{name}: ") and "=" in message), message
    else:
        assert_accepted_value_is_sound(procedure, key)
    assert station.calls == []


@pytest.mark.parametrize("name", list(procedures.PROCEDURES))
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_random_finite_combinations_are_refused_or_measurable(name, data):
    """Any mix of in-range values either is refused with one line, or gives a procedure
    whose plan and estimate can be computed (no int(nan), no division by zero later)."""
    station = station_for(name)
    procedure = procedures.load(name)()
    for key, parameter in procedure.parameter_objects().items():
        rule = parameter_rule(parameter)
        if rule and data.draw(st.booleans(), label=f"change {key}"):
            value = data.draw(st.floats(rule["low"], rule["high"]), label=key)
            setattr(procedure, key, round(value) if rule["integral"] else value)
    try:
        validate_parameters(procedure, station, name=name)
    except DaqappError as exc:
        assert "\n" not in str(exc)
        assert station.calls == []
    else:
        assert station.calls == []
        estimate = procedure.estimate_duration()  # may read a temperature; moves nothing
        assert math.isfinite(estimate) and estimate >= 0


@pytest.mark.parametrize("name, key, text", [
    ("didv-lockin", "settle_time", "nan"),
    ("didv-lockin", "settle_time", "1e-320"),
    ("didv-lockin", "time_constant", "1e-320"),
    ("rt", "hold_time", "nan"),
    ("rt", "band", "nan"),
    ("rt", "t_step", "nan"),
    ("iv", "nplc", "nan"),
    ("iv", "settle", "nan"),
    ("iv", "points", "2.5"),
    ("iv", "points", "inf"),
    ("rt", "fields", "0:nan:1"),
])
def test_the_reported_values_are_refused_naming_the_parameter(name, key, text):
    procedure = procedures.load(name)()
    setattr(procedure, key, text)
    with pytest.raises(LimitError) as caught:
        validate_parameters(procedure, station_for(name), name=name)
    message = str(caught.value)
    assert message.startswith(f"{name} parameter {key} = ")
    assert "must be" in message or "outside the allowed range" in message


@pytest.mark.parametrize("name, values, needle", [
    ("rt", {"mode": "step", "t_step": 0.001}, "temperature steps (allowed 1 to 10000)"),
    ("rt", {"interval": 0.01, "ramp_rate": 0.01}, "rows (allowed 1 to 1000000)"),
    ("rt", {"hold_time": 4000, "stabilize_timeout": 3000}, "must be shorter than"),
    ("rt", {"t_start": 4, "t_stop": 4}, "t_start and t_stop must differ"),
    ("didv-lockin", {"bias_start": 0, "bias_stop": 0}, "two different ends"),
    ("temperature-series", {"temperatures": ""}, "give at least one value"),
    ("nb-calibration", {"hold_time": 100, "stabilize_timeout": 50}, "must be shorter than"),
])
def test_parameters_must_agree_with_each_other(name, values, needle):
    procedure = procedures.load(name)()
    for key, value in values.items():
        setattr(procedure, key, value)
    with pytest.raises(DaqappError, match=re.escape(needle)):
        validate_parameters(procedure, station_for(name), name=name)


def test_a_station_without_a_usable_heater_range_refuses_temperature_procedures():
    station = RecordingStation(limits={"heater_ranges_allowed": [0]})
    for name in ("rt", "temperature-series"):
        with pytest.raises(LimitError, match="no heater range above 0"):
            validate_parameters(procedures.load(name)(), station, name=name)
    assert station.calls == []


def test_station_limits_narrow_the_parameter_ranges():
    station = RecordingStation(limits={"max_field_t": 2.0})
    procedure = procedures.load("rt")()
    procedure.fields = "0, 3"
    with pytest.raises(LimitError, match="fields = 3 T is outside the allowed range -2 to 2"):
        validate_parameters(procedure, station, name="rt")


def test_zero_means_off_but_a_positive_value_below_the_floor_is_refused():
    procedure = procedures.load("didv-lockin")()
    procedure.time_constant = 0
    validate_parameters(procedure, station_for("didv-lockin"))
    procedure.time_constant = 1e-7  # below the SR830's 10 µs
    with pytest.raises(LimitError, match="time_constant = 1e-07 s is outside the allowed "
                                         "range 1e-05 to 30000 s"):
        validate_parameters(procedure, station_for("didv-lockin"))


def test_parameter_objects_refuse_by_themselves_for_pymeasure_windows():
    seconds = FloatParameter("Settle", units="s", minimum=1e-3, maximum=10, zero_allowed=True,
                             default=0.0)
    for bad in (math.nan, math.inf, 1e-320, True, "nan", "1e-4"):
        with pytest.raises(ValueError):
            seconds.value = bad
    seconds.value = "2.5 s"
    assert seconds.value == 2.5
    count = IntegerParameter("Points", minimum=2, maximum=100, default=5)
    for bad in (2.5, "2.5", math.nan, math.inf, False, 101):
        with pytest.raises(ValueError):
            count.value = bad
    count.value = "7"
    assert count.value == 7 and isinstance(count.value, int)
    count.value = 8.0
    assert count.value == 8


@pytest.mark.parametrize("value, kwargs, ok", [
    (math.nan, {}, False), (math.inf, {}, False), (-math.inf, {"low": -1e9}, False),
    (1e-320, {}, False), (0.0, {"low": 0}, True), (5, {"low": 0, "high": 10}, True),
    (2.5, {"integral": True}, False), ("3", {"integral": True}, True), (True, {}, False),
    (0, {"low": 1, "high": 2, "zero_allowed": True}, True),
    (0.5, {"low": 1, "high": 2, "zero_allowed": True}, False),
    (0, {"low": 0, "low_open": True}, False), ("1e999", {}, False), ([1], {}, False),
])
def test_check_number(value, kwargs, ok):
    if ok:
        assert math.isfinite(check_number("x", value, **kwargs))
    else:
        with pytest.raises(LimitError, match="^x = "):
            check_number("x", value, **kwargs)


class PlainParameters(ControlledProcedure):
    """A procedure declared with pymeasure's own FloatParameter (as a user might write)."""

    settle = PlainFloatParameter("Settle", units="s", minimum=0, maximum=10, default=1.0)

    def execute(self):
        self.role("source").set_current(1e-3)


def test_plain_pymeasure_parameters_get_the_same_rule(tmp_path):
    station = RecordingStation()
    procedure = PlainParameters()
    procedure.settle = math.nan
    run = Run(procedure, station=station, output_dir=tmp_path)
    with pytest.raises(LimitError, match="PlainParameters parameter settle = nan"):
        run.start()
    assert station.calls == [] and list(tmp_path.iterdir()) == []


def test_the_python_api_refuses_before_any_file_or_instrument(tmp_path):
    station = station_for("didv-lockin")
    procedure = procedures.load("didv-lockin")()
    procedure.settle_time = math.nan
    run = Run(procedure, station=station, output_dir=tmp_path)
    with pytest.raises(LimitError, match="settle_time = nan"):
        run.start()
    with pytest.raises(LimitError, match="settle_time = nan"):
        Run(procedure, station=station, output_dir=tmp_path).execute()
    assert station.calls == [] and list(tmp_path.iterdir()) == []


def test_an_unset_parameter_is_named():
    procedure = procedures.load("iv")()
    procedure.points = None
    with pytest.raises(ConfigError, match="iv parameter points .* is not set"):
        validate_parameters(procedure, station_for("iv"), name="iv")
