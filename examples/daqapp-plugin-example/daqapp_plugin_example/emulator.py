"""Acme TC-1 emulator: the command set of :mod:`.driver` over daqapp's cryostat model.

It closes a PI loop on the virtual lab's :class:`simulators.cryostat.Cryostat` (the same
thermal physics the Lake Shore emulators drive), so a plug-in is tested against heating and
lag, not a table of replies. Serve it with :class:`simulators.server.InstrumentServer`.
"""

from __future__ import annotations

import threading

from simulators.cryostat import Cryostat

IDN = "ACME,TC-1,0001,1.0"
RANGE_POWER_W = {0: 0.0, 1: 0.5, 2: 5.0, 3: 50.0}


class AcmeTC1Emulator:
    reply_termination = "\n"
    role = "temperature"

    def __init__(self, cryostat: Cryostat) -> None:
        self.cryostat = cryostat
        self.lock = threading.RLock()
        self.target = self.setpoint = round(cryostat.stage_temperature, 3)
        self.rate = 0.0
        self.range = 0
        self.percent = 0.0
        self._integral = 0.0
        self.loop_gain = 0.0
        cryostat.controller = self

    def heater_power(self, sim_time: float, stage_K: float, sample_K: float,
                     dt: float) -> float:
        """The cryostat's integration step: ramp the setpoint, PI on the stage sensor."""
        if self.rate > 0 and self.setpoint != self.target:
            step = self.rate / 60.0 * dt
            diff = self.target - self.setpoint
            self.setpoint = self.target if abs(diff) <= step else self.setpoint + (
                step if diff > 0 else -step)
        if self.range == 0:
            self.percent, self._integral = 0.0, 0.0
            return 0.0
        error = self.setpoint - stage_K
        unclamped = 20.0 * (error + 0.05 * self._integral)
        if 0.0 < unclamped < 100.0:
            self._integral += error * dt
        self.percent = min(100.0, max(0.0, 20.0 * (error + 0.05 * self._integral)))
        full = RANGE_POWER_W[self.range]
        self.loop_gain = 20.0 * 2.0 * max(self.percent, 1.0) / 1e4 * full
        return (self.percent / 100.0) ** 2 * full

    def greeting(self) -> list[str]:
        return []

    def handle(self, line: str) -> list[str]:
        with self.lock:
            self.cryostat.advance()
            command, _, argument = line.strip().partition(" ")
            command = command.upper()
            replies = {
                "*IDN?": lambda: IDN,
                "TEMP?": lambda: f"{self.cryostat.stage_temperature:.4f}",
                "SETP?": lambda: f"{self.setpoint:.4f}",
                "RAMP?": lambda: f"{self.rate:g}",
                "RAMPING?": lambda: str(int(self.setpoint != self.target)),
                "HEAT?": lambda: f"{self.percent:.2f}",
                "RANGE?": lambda: str(self.range),
                "HSTAT?": lambda: "0",
            }
            if command in replies:
                return [replies[command]()]
            try:
                value = float(argument)
            except ValueError:
                return []
            if command == "SETP" and 0 <= value <= 400:
                self.target = value
                if self.rate <= 0:
                    self.setpoint = value
            elif command == "RAMP" and 0 <= value <= 50:
                self.rate = value
            elif command == "RANGE" and value in RANGE_POWER_W:
                self.range = int(value)
            return []
