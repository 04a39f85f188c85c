"""A minimal station and procedure for campaign tests: fast, deterministic, in-process.

The station's temperature controller approaches its setpoint exponentially on a clock that
runs ``speed`` times real time, the magnet ramps at its rate, and every role records whether
``to_safe_state`` was called. The procedure counts points with a short sleep between them and
can be told to fail on a given attempt (via a file, so a retry in the same process sees it).
"""

from __future__ import annotations

import time
from pathlib import Path

from pymeasure.experiment import FloatParameter, IntegerParameter, Parameter

from daqapp.campaign.catalog import ProcedureCatalog
from daqapp.runner.procedure import ControlledProcedure


class Clock:
    def __init__(self, speed: float = 100.0) -> None:
        self.speed = speed
        self.t0 = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self.t0) * self.speed

    def real_seconds(self, lab: float) -> float:
        return max(0.0, lab) / self.speed


class FakeController:
    def __init__(self, clock: Clock, tau_s: float = 20.0) -> None:
        self.clock, self.tau = clock, tau_s
        self._t, self._sp, self._since = 300.0, 300.0, clock.now()
        self.safe = 0
        self.setpoints: list[float] = []
        self.offset = 0.0  # a fault: the temperature never reaches the setpoint

    def _advance(self) -> None:
        now = self.clock.now()
        dt = now - self._since
        self._since = now
        self._t = self._sp + (self._t - self._sp) * pow(2.718281828, -dt / self.tau)

    def identify(self) -> str:
        return "FAKE,TC"

    def snapshot(self) -> dict:
        return {"setpoint": self._sp}

    def to_safe_state(self) -> None:
        self.safe += 1

    def temperature(self) -> float:
        self._advance()
        return self._t + self.offset

    def setpoint(self) -> float:
        return self._sp

    def set_setpoint(self, kelvin: float, ramp_k_per_min: float | None = None) -> None:
        self._advance()
        self._sp = kelvin
        self.setpoints.append(kelvin)

    def is_stable(self, target_k: float, band_k: float) -> bool:
        return abs(self.temperature() - target_k) <= band_k


class FakeMagnet:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._b0, self._target, self._rate, self._t0 = 0.0, 0.0, 1.0, clock.now()
        self.safe = 0
        self.quenched = False

    def identify(self) -> str:
        return "FAKE,MAGNET"

    def snapshot(self) -> dict:
        return {"target": self._target}

    def to_safe_state(self) -> None:
        self.safe += 1

    def field(self) -> float:
        dt_min = (self.clock.now() - self._t0) / 60.0
        step = self._rate * dt_min
        if abs(self._target - self._b0) <= step:
            return self._target
        return self._b0 + step * (1 if self._target > self._b0 else -1)

    def target_field(self) -> float:
        return self._target

    def ramp_to(self, tesla: float, rate_t_per_min: float) -> None:
        self._b0, self._target, self._rate, self._t0 = self.field(), tesla, rate_t_per_min, \
            self.clock.now()

    def is_holding(self) -> bool:
        return self.field() == self._target

    def is_quenched(self) -> bool:
        return self.quenched


class FakeStation:
    def __init__(self, speed: float = 200.0) -> None:
        self.clock = Clock(speed)
        self.temperature = FakeController(self.clock)
        self.magnet = FakeMagnet(self.clock)
        self.roles = {"temperature": self.temperature, "magnet": self.magnet}
        self.safe_calls = 0
        self.closed = False

    def snapshot(self) -> dict:
        return {k: r.snapshot() for k, r in self.roles.items()}

    def to_safe_state(self) -> None:
        self.safe_calls += 1
        for role in self.roles.values():
            role.to_safe_state()

    def close(self) -> None:
        self.closed = True


class CountingProcedure(ControlledProcedure):
    """Records ``points`` rows of (index, temperature, field), ``delay_s`` real seconds apart."""

    NAME = "count"
    COLUMNS = {"index": "", "temperature": "K", "field": "T"}
    points = IntegerParameter("Points", default=5, minimum=1, maximum=100000)
    delay_s = FloatParameter("Delay", units="s", default=0.0, minimum=0, maximum=10)
    fail_file = Parameter("Fail flag file", default="")

    def execute(self) -> None:
        flag = Path(self.fail_file) if self.fail_file else None
        for i in range(self.points):
            if not self.checkpoint():
                return
            if flag is not None and flag.exists() and i == self.points // 2:
                text = flag.read_text()
                remaining = int(text or "0")
                if remaining > 0:
                    flag.write_text(str(remaining - 1))
                    raise RuntimeError("injected fault")
            station = self.station
            self.record(index=float(i), temperature=station.temperature.temperature(),
                        field=station.magnet.field())
            self.progress(i + 1, self.points)
            if self.delay_s:
                time.sleep(self.delay_s)

    def estimate_duration(self) -> float:
        return float(self.points) * (1.0 + self.delay_s)


def catalog() -> ProcedureCatalog:
    return ProcedureCatalog({"count": CountingProcedure})


CAMPAIGN = """
[campaign]
name = "fake"
sample = "test sample"
[station]
simulated = true
preset = "fake"
speed = 200
[defaults]
stabilize = {{band_K = 0.5, time_s = 5, timeout_s = 2000}}
on_fault = {{retries = 1, then = "skip"}}
[[suspend]]
kind = "magnet"
timeout_s = 100
[[step]]
name = "series"
procedure = "count"
field_T = [0, 0.5]
temperature_K = [10, 20]
params = {{points = {points}, delay_s = {delay}, fail_file = "{fail}"}}
"""


def write_campaign(folder: Path, points: int = 5, delay: float = 0.0, fail: str = "") -> Path:
    path = folder / "fake.toml"
    path.write_text(CAMPAIGN.format(points=points, delay=delay, fail=fail))
    return path
