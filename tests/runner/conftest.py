"""A station made of in-process role objects that log every call, for run-control tests.

Run control must not depend on instrument physics, so these tests use plain objects that
implement the role protocols of ``drivers/roles.py`` and record the order of calls (to check
that shutdown precedes the safe state, and that nothing moves before limits are checked).
"""

from __future__ import annotations

import h5py
import pytest
from pymeasure.experiment import FloatParameter, IntegerParameter

from daqapp.errors import check_range
from daqapp.runner import ControlledProcedure


class CallLog(list):
    def names(self):
        return [c[0] for c in self]


class FakeTemperature:
    def __init__(self, calls):
        self.calls = calls
        self.kelvin = 3.0
        self.target = 3.0

    def identify(self):
        return "FAKE,T"

    def snapshot(self):
        return {"temperature_k": self.kelvin, "setpoint_k": self.target}

    def to_safe_state(self):
        self.calls.append(("temperature.to_safe_state",))

    def temperature(self):
        return self.kelvin

    def setpoint(self):
        return self.target


class FakeMagnet:
    def __init__(self, calls):
        self.calls = calls
        self.tesla = 0.0
        self.target = 0.0
        self.quenched = False

    def identify(self):
        return "FAKE,M"

    def snapshot(self):
        return {"field_t": self.tesla}

    def to_safe_state(self):
        self.calls.append(("magnet.to_safe_state",))

    def field(self):
        return self.tesla

    def target_field(self):
        return self.target

    def is_holding(self):
        return abs(self.tesla - self.target) < 1e-6

    def is_quenched(self):
        return self.quenched


class FakeSource:
    def __init__(self, calls):
        self.calls = calls
        self.amps = 0.0
        self.enabled = False

    def identify(self):
        return "FAKE,S"

    def snapshot(self):
        return {"current_a": self.amps, "enabled": self.enabled}

    def to_safe_state(self):
        self.calls.append(("source.to_safe_state",))
        self.amps, self.enabled = 0.0, False

    def set_current(self, amps):
        self.calls.append(("source.set_current", amps))
        self.amps = amps

    def enable(self):
        self.calls.append(("source.enable",))
        self.enabled = True

    def disable(self):
        self.enabled = False


class FakeStation:
    def __init__(self):
        self.calls = CallLog()
        self.roles = {"temperature": FakeTemperature(self.calls),
                      "magnet": FakeMagnet(self.calls),
                      "source": FakeSource(self.calls)}
        self.limits = {"max_current_a": 1e-3}

    def snapshot(self):
        return {name: role.snapshot() for name, role in self.roles.items()}

    def to_safe_state(self):
        self.calls.append(("station.to_safe_state",))
        for role in self.roles.values():
            role.to_safe_state()


class RampProcedure(ControlledProcedure):
    """Steps the source current, one record per step; hooks let tests act mid-run."""

    SUMMARY = "test ramp"
    COLUMNS = {"index": "", "current": "A", "temperature": "K"}
    points = IntegerParameter("Points", default=20, minimum=1, maximum=10_000)
    current_max = FloatParameter("Maximum current", units="A", default=1e-4)

    on_point = None  # callable(procedure, i) set by tests

    def check_limits(self, limits):
        check_range("current_max", self.current_max, 0, limits["max_current_a"], "A")

    def startup(self):
        self.role("source").enable()

    def execute(self):
        source = self.role("source")
        for i in range(self.points):
            if not self.checkpoint():
                break
            amps = self.current_max * i / max(1, self.points - 1)
            source.set_current(amps)
            if self.on_point is not None:
                self.on_point(i)
            self.record(index=i, current=amps,
                        temperature=self.role("temperature").temperature())
            self.progress(i + 1, self.points)

    def shutdown(self):
        self.station.calls.append(("procedure.shutdown",))

    def estimate_duration(self):
        return 0.01 * self.points


@pytest.fixture
def station():
    return FakeStation()


def read_run(path):
    """Everything a test checks in a run file: data via h5py directly, run attributes via
    the reader."""
    with h5py.File(path, "r") as f:
        data = {k: f["entry/data"][k][:] for k in f["entry/data"]}
        units = {k: f["entry/data"][k].attrs.get("units", "") for k in f["entry/data"]}
        log = [m.decode() if isinstance(m, bytes) else m for m in f["entry/log/message"][:]]
        snaps = f["entry/snapshots"]
        start = snaps["start"][()]
        end = snaps["end"][:] if snaps["end"].shape[0] else []
        stored = {"data": data, "units": units, "log": log, "start": start, "end": list(end)}
    from daqapp.storage import open_run

    with open_run(path) as run:  # the run attributes wherever the file format keeps them
        stored["attrs"] = dict(run.attrs)
    return stored


@pytest.fixture
def ramp_procedure():
    """The :class:`RampProcedure` class (importlib mode: tests cannot import conftest)."""
    return RampProcedure


@pytest.fixture(name="read_run")
def read_run_fixture():
    return read_run
