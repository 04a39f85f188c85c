"""A procedure a plug-in adds: log the temperature role's reading at a fixed interval.

Registered by the ``daqapp.procedures`` entry point ``acme-temperature-log``; it asks only for
the temperature role, so it runs on any station (an Acme TC-1, a Lake Shore, an ITC503).
"""

from __future__ import annotations

from typing import Any, ClassVar

from daqapp.runner import ControlledProcedure
from daqapp.runner.procedure import FloatParameter, IntegerParameter


class TemperatureLog(ControlledProcedure):
    SUMMARY = "temperature every interval, count times (example plug-in)"
    COLUMNS: ClassVar[dict[str, str]] = {"time": "s", "temperature": "K", "heater": "%"}

    count = IntegerParameter("Readings", default=10, minimum=1, maximum=100000)
    interval = FloatParameter("Interval", units="s", default=1.0, minimum=0.01, maximum=3600)

    def check_limits(self, limits: Any) -> None:
        """Nothing moves: no station limit applies."""

    def estimate_duration(self) -> float:
        return self.count * self.interval

    def execute(self) -> None:
        controller = self.role("temperature")
        for n in range(self.count):
            if self.should_stop():
                return
            self.record(time=n * self.interval, temperature=controller.temperature(),
                        heater=controller.heater_output())
            self.progress(n + 1, self.count)
            self.sleep(self.interval)
