"""Thermal model of the cryostat: a heated stage linked to a 1.5 K bath, and the sample on it.

The stage (where the control thermometer and heater sit) has a heat capacity that grows with
temperature and a weak link to the bath; the diamond-anvil cell with the sample follows the
stage with its own lag. The loop is closed by whichever controller emulator is attached
(Lake Shore 336 or ITC503): its PID and ramp decide the heater power at every integration step,
so lag and overshoot come out of the physics rather than being scripted.
"""

from __future__ import annotations

import threading
from typing import Protocol

from simulators.clock import SimClock

BATH_K = 1.5
MAX_K = 325.0


class HeaterController(Protocol):
    """What the cryostat asks its controller at each integration step."""

    def heater_power(self, sim_time: float, stage_K: float, sample_K: float,
                     dt: float) -> float:
        """Heater power in W applied during the next ``dt`` seconds."""


class Cryostat:
    """Two-body thermal RC: stage (sensor A, heater) and sample (sensor B)."""

    def __init__(self, clock: SimClock, initial_K: float = BATH_K,
                 stage_heat_capacity_300K: float = 6.0, bath_link_W_per_K: float = 0.03,
                 sample_lag_s: float = 4.0) -> None:
        self.clock = clock
        self.c300 = stage_heat_capacity_300K
        self.g_bath = bath_link_W_per_K
        self.sample_lag_s = sample_lag_s
        self.controller: HeaterController | None = None
        self.extra_power_W = 0.0
        self._stage = max(float(initial_K), BATH_K)
        self._sample = self._stage
        self._last_power = 0.0
        self._t = clock.now()
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ model pieces
    def heat_capacity(self, temperature_K: float) -> float:
        """Stage heat capacity (J/K): small at base temperature, ~linear towards 300 K."""
        return self.c300 * (0.02 + temperature_K / 300.0)

    def bath_link(self, temperature_K: float) -> float:
        """Thermal conductance of the link to the bath (W/K)."""
        return self.g_bath * (1.0 + temperature_K / 600.0)

    def sample_time_constant(self, temperature_K: float) -> float:
        """Lag of the cell behind the stage (s); grows slowly with temperature."""
        return self.sample_lag_s * (1.0 + temperature_K / 60.0)

    # ------------------------------------------------------------------- integration
    def advance(self) -> None:
        """Integrate up to the clock's now (explicit Euler, step ≤ τ/10 and ≤ 1 s)."""
        with self._lock:
            now = self.clock.now()
            while self._t < now:
                ts = self._stage
                tau = self.heat_capacity(ts) / self.bath_link(ts)
                dt = min(now - self._t, 1.0, 0.1 * tau,
                         0.2 * self.sample_time_constant(self._sample))
                power = 0.0
                if self.controller is not None:
                    power = float(self.controller.heater_power(self._t, ts, self._sample, dt))
                    power = max(0.0, power)
                self._last_power = power
                flow = power + self.extra_power_W - self.bath_link(ts) * (ts - BATH_K)
                ts_new = min(max(ts + dt * flow / self.heat_capacity(ts), BATH_K), MAX_K)
                tau_s = self.sample_time_constant(self._sample)
                self._sample += (ts - self._sample) * min(1.0, dt / tau_s)
                self._stage = ts_new
                self._t += dt

    @property
    def stage_temperature(self) -> float:
        """Control thermometer (input A) temperature in K, noise-free."""
        self.advance()
        return self._stage

    @property
    def temperature(self) -> float:
        """Sample temperature in K (what R(T) and the spectra see), noise-free."""
        self.advance()
        return self._sample

    @property
    def heater_power(self) -> float:
        """Heater power (W) applied in the last integration step."""
        self.advance()
        return self._last_power

    def equilibrium_power(self, temperature_K: float) -> float:
        """Heater power that holds the stage at ``temperature_K`` (W)."""
        return self.bath_link(temperature_K) * (temperature_K - BATH_K)

    def set_temperature(self, temperature_K: float) -> None:
        """Put stage and sample at ``temperature_K`` at once (tests and presets)."""
        with self._lock:
            self.advance()
            self._stage = self._sample = min(max(float(temperature_K), BATH_K), MAX_K)
