"""Thermal model of the cryostat: a heated stage linked to a 1.5 K bath, and the sample on it.

The stage (where the control thermometer and heater sit) has a heat capacity that grows with
temperature and a weak link to the bath; the diamond-anvil cell with the sample follows the
stage with its own lag. The loop is closed by whichever controller emulator is attached
(Lake Shore 336 or ITC503): its PID and ramp decide the heater power at every integration step,
so lag and overshoot come out of the physics rather than being scripted.
"""

from __future__ import annotations

import math
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
                 stage_heat_capacity_300K: float = 58.0, bath_link_W_per_K: float = 0.08,
                 sample_lag_s: float = 5.0, heater_lag_s: float = 3.0) -> None:
        self.clock = clock
        self.c300 = stage_heat_capacity_300K
        self.g_bath = bath_link_W_per_K
        self.sample_lag_s = sample_lag_s
        self.heater_lag_s = heater_lag_s
        self._delivered = 0.0
        self.controller: HeaterController | None = None
        self.extra_power_W = 0.0
        self._stage = max(float(initial_K), BATH_K)
        self._sample = self._stage
        self._last_power = 0.0
        self._t = clock.now()
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ model pieces
    def heat_capacity(self, temperature_K: float) -> float:
        """Stage + cell heat capacity (J/K): copper-like, Debye T³ at low T (θ_D ≈ 340 K),
        saturating towards 300 K, plus a small electronic/addenda term."""
        t = max(temperature_K, 0.1)
        x = t / 340.0
        debye = x ** 3 * 234.0 / (1.0 + 234.0 * x ** 3 / 3.0)
        return self.c300 * (debye / 2.86 + 0.002 * t / 10.0 + 0.001)

    def bath_link(self, temperature_K: float) -> float:
        """Thermal conductance of the link to the bath (W/K)."""
        return self.g_bath * (1.0 + temperature_K / 600.0)

    def sample_time_constant(self, temperature_K: float) -> float:
        """Lag of the cell behind the stage (s); grows with its heat capacity."""
        return self.sample_lag_s * (1.0 + temperature_K / 50.0)

    def heater_time_constant(self, temperature_K: float) -> float:
        """Diffusion lag from the heater winding to the thermometer (s)."""
        return self.heater_lag_s * (1.0 + temperature_K / 50.0)

    # ------------------------------------------------------------------- integration
    def advance(self) -> None:
        """Integrate up to the clock's now.

        Between controller updates the heater power is constant, so the stage relaxes
        exponentially towards its equilibrium (exact, stable for any step); the step is kept
        below half the closed loop's time constant C/(G + dP/dT of the PID) so the
        sampled PID behaves like the instrument's, not like a numerical artefact.
        """
        with self._lock:
            now = self.clock.now()
            while self._t < now:
                ts = self._stage
                c = self.heat_capacity(ts)
                g = self.bath_link(ts)
                gain = float(getattr(self.controller, "loop_gain", 0.0) or 0.0)
                tau_s = self.sample_time_constant(self._sample)
                tau_h = self.heater_time_constant(ts)
                dt = min(now - self._t, 2.0, max(0.1, 0.5 * c / (g + gain)), 0.5 * tau_s,
                         0.3 * tau_h)
                power = 0.0
                if self.controller is not None:
                    power = float(self.controller.heater_power(self._t, ts, self._sample, dt))
                    power = max(0.0, power)
                self._last_power = power
                self._delivered += (power - self._delivered) * (1.0 - math.exp(-dt / tau_h))
                t_eq = BATH_K + (self._delivered + self.extra_power_W) / g
                ts_new = t_eq + (ts - t_eq) * math.exp(-dt * g / c)
                ts_new = min(max(ts_new, BATH_K), MAX_K)
                mid = 0.5 * (ts + ts_new)
                self._sample += (mid - self._sample) * (1.0 - math.exp(-dt / tau_s))
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
            self._delivered = self.equilibrium_power(self._stage)
