"""One clock for the whole virtual lab: simulated time runs at ``speed`` × real time.

Every model (sample, cryostat, magnet, lock-in filter, 2182A integration) reads this clock, so a
factor of 100–1000 fast-forwards a whole campaign while all instrument waits keep their ratios.
"""

from __future__ import annotations

import threading
import time

from daqapp.errors import ConfigError


class SimClock:
    """Simulated seconds since the lab started; ``speed`` simulated seconds per real second."""

    def __init__(self, speed: float = 1.0) -> None:
        if not (speed > 0 and speed <= 1e6):
            raise ConfigError(f"speed = {speed!r} is outside the allowed range >0 to 1e6")
        self.speed = float(speed)
        self._t0 = time.monotonic()
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Simulated seconds elapsed since the clock was created (plus any :meth:`advance`)."""
        with self._lock:
            return (time.monotonic() - self._t0) * self.speed + self._offset

    def advance(self, sim_seconds: float) -> None:
        """Jump simulated time forward (tests use it to skip waits without sleeping)."""
        if sim_seconds < 0:
            raise ValueError(f"sim_seconds = {sim_seconds} must be >= 0")
        with self._lock:
            self._offset += sim_seconds

    def real_seconds(self, sim_seconds: float) -> float:
        """Real seconds that correspond to ``sim_seconds`` of simulated time."""
        return max(0.0, sim_seconds) / self.speed

    @property
    def stepped(self) -> bool:
        """True for a practically frozen clock (speed ≤ 1e-3): waits jump time instead."""
        return self.speed <= 1e-3

    def sleep(self, sim_seconds: float) -> None:
        """Block the caller until ``sim_seconds`` of simulated time have passed.

        On a stepped clock (tests) the wait is done by jumping simulated time forward, so an
        instrument's own waits (2182A integration, serial replies) never block the test.
        """
        if sim_seconds <= 0:
            return
        if self.stepped:
            self.advance(sim_seconds)
            return
        end = self.now() + sim_seconds
        while True:
            left = end - self.now()
            if left <= 0:
                return
            time.sleep(min(self.real_seconds(left), 0.05))
