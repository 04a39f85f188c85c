"""Superconducting magnet with its supply: ramp at a rate to a target, persistent switch, quench.

The supply current ramps linearly at the set rate; with the switch heater on (or no switch
fitted) the coil follows it, with the switch cold the coil keeps its persistent current. The
switch takes its heating/cooling time to change state. A quench dumps the coil current within a
fraction of a second and latches until reset. Supply emulators (AMI 430, IPS120-10) map this one
state onto their own status codes.
"""

from __future__ import annotations

import math
import threading

from simulators.clock import SimClock


class MagnetModel:
    """A solenoid (coil constant T/A) on a current supply, advanced lazily on the one clock."""

    def __init__(self, clock: SimClock, coil_constant_T_per_A: float = 0.1,
                 max_current_A: float = 90.0, inductance_H: float = 12.0,
                 switch_installed: bool = True, heat_time_s: float = 20.0,
                 cool_time_s: float = 20.0, ramp_rate_A_per_s: float = 0.05) -> None:
        self.clock = clock
        self.coil_constant = coil_constant_T_per_A
        self.max_current = max_current_A
        self.inductance = inductance_H
        self.switch_installed = switch_installed
        self.heat_time = heat_time_s
        self.cool_time = cool_time_s
        self.rate = ramp_rate_A_per_s
        self.target_current = 0.0
        self.supply_current = 0.0
        self.magnet_current = 0.0
        self.mode = "at_zero"          # ramping, holding, paused, zeroing, at_zero, quench
        self.switch = "off" if switch_installed else "on"   # off, heating, on, cooling
        self._switch_done = 0.0
        self.quenched = False
        self._quench_t = 0.0
        self._quench_i0 = 0.0
        self._t = clock.now()
        self._ramp_sign = 0
        self._lock = threading.RLock()

    # --------------------------------------------------------------------- evolution
    def advance(self) -> None:
        with self._lock:
            now = self.clock.now()
            dt = now - self._t
            if dt <= 0:
                return
            self._t = now
            if self.switch in ("heating", "cooling") and now >= self._switch_done:
                self.switch = "on" if self.switch == "heating" else "off"
            if self.quenched:
                decay = math.exp(-(now - self._quench_t) / 0.2)
                self.magnet_current = self._quench_i0 * decay
                self.supply_current = self.magnet_current
                return
            if self.mode in ("ramping", "zeroing"):
                goal = self.target_current if self.mode == "ramping" else 0.0
                step = self.rate * dt
                diff = goal - self.supply_current
                self._ramp_sign = (diff > 0) - (diff < 0)
                if abs(diff) <= step:
                    self.supply_current = goal
                    self.mode = "at_zero" if self.mode == "zeroing" else "holding"
                    self._ramp_sign = 0
                else:
                    self.supply_current += math.copysign(step, diff)
            else:
                self._ramp_sign = 0
            if self.switch == "on":
                self.magnet_current = self.supply_current

    # ---------------------------------------------------------------------- commands
    def ramp(self) -> None:
        """Ramp the supply to the target at the set rate."""
        with self._lock:
            self.advance()
            if not self.quenched:
                self.mode = "ramping"

    def pause(self) -> None:
        with self._lock:
            self.advance()
            if not self.quenched:
                self.mode = "paused"

    def zero(self) -> None:
        """Ramp the supply to zero at the set rate."""
        with self._lock:
            self.advance()
            if not self.quenched:
                self.mode = "zeroing"

    def set_target(self, current_A: float) -> None:
        with self._lock:
            self.advance()
            self.target_current = max(-self.max_current, min(self.max_current, current_A))

    def set_rate(self, rate_A_per_s: float) -> None:
        with self._lock:
            self.advance()
            self.rate = max(1e-6, float(rate_A_per_s))

    def set_switch_heater(self, on: bool) -> None:
        """Start heating (on) or cooling (off) the persistent switch."""
        with self._lock:
            self.advance()
            if not self.switch_installed:
                return
            if on and self.switch in ("off", "cooling"):
                self.switch = "heating"
                self._switch_done = self._t + self.heat_time
            elif not on and self.switch in ("on", "heating"):
                self.switch = "cooling"
                self._switch_done = self._t + self.cool_time

    def quench(self) -> None:
        """The coil goes normal: its current collapses and the supply latches the fault."""
        with self._lock:
            self.advance()
            if self.quenched:
                return
            self.quenched = True
            self.mode = "quench"
            self._quench_t = self._t
            self._quench_i0 = self.magnet_current

    def reset_quench(self) -> None:
        with self._lock:
            self.advance()
            if self.quenched:
                self.quenched = False
                self.magnet_current = self.supply_current = 0.0
                self.target_current = 0.0
                self.mode = "at_zero"

    # ----------------------------------------------------------------------- readings
    @property
    def field(self) -> float:
        """Field at the sample (T)."""
        self.advance()
        return self.magnet_current * self.coil_constant

    @property
    def supply_field(self) -> float:
        self.advance()
        return self.supply_current * self.coil_constant

    @property
    def ramping_direction(self) -> int:
        self.advance()
        return self._ramp_sign

    def supply_voltage(self) -> float:
        """Supply voltage (V): L·dI/dt while ramping with the switch open, lead drop otherwise."""
        self.advance()
        leads = 0.01 * self.supply_current
        if self._ramp_sign and self.switch == "on":
            return leads + self._ramp_sign * self.inductance * self.rate
        return leads
