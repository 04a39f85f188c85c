"""The wiring between the instruments and the sample: who drives which current where.

Junction circuit (dI/dV): the lock-in's sine output and one AUX output both feed the junction
through the bias resistor (48 kΩ by default); the 6221 can instead or also inject a DC current
there (``current_source_circuit="junction"``). The lock-in's A−B input, its AUX input 1 and the
standalone 2182A all sense the contact voltage.
Sample circuit (transport): the 6221 drives the sample's current leads and its linked 2182A
senses the voltage leads (``current_source_circuit="sample"``, the default).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from simulators.clock import SimClock
from simulators.cryostat import Cryostat
from simulators.magnet import MagnetModel
from simulators.sample import SampleModel

_PHASE_POINTS = 64
_THETA = 2 * np.pi * (np.arange(_PHASE_POINTS) + 0.5) / _PHASE_POINTS


class Bench:
    """Drive state of both circuits and the solved operating point of the junction."""

    def __init__(self, clock: SimClock, sample: SampleModel, cryostat: Cryostat,
                 magnet: MagnetModel, rng: np.random.Generator,
                 bias_resistor_ohm: float = 48e3, aux_bias_channel: int = 1,
                 current_source_circuit: str = "sample", bias_divider: float = 1.0,
                 dc_voltage_aux_channel: int = 1, dc_voltage_gain: float = 1.0) -> None:
        if current_source_circuit not in ("sample", "junction"):
            raise ValueError(f"current_source_circuit = {current_source_circuit!r} "
                             "(allowed: 'sample', 'junction')")
        self.clock = clock
        self.sample = sample
        self.cryostat = cryostat
        self.magnet = magnet
        self.rng = rng
        self.rng_lock = threading.Lock()
        self.bias_resistor = float(bias_resistor_ohm)
        self.aux_bias_channel = int(aux_bias_channel)
        self.current_source_circuit = current_source_circuit
        self.bias_divider = float(bias_divider)
        self.dc_voltage_aux_channel = int(dc_voltage_aux_channel)
        self.dc_voltage_gain = float(dc_voltage_gain)
        # drive state
        self.external_reference = False   # nothing is cabled to the lock-in's REF IN
        self.sine_rms_V = 0.0
        self.aux_bias_V = 0.0
        self.source_current_A = 0.0      # what the 6221 is putting out now (0 when off)
        self._listeners: list[Callable[[], None]] = []

    # ---------------------------------------------------------------- change notices
    def add_listener(self, callback: Callable[[], None]) -> None:
        """``callback()`` runs *before* any drive changes (the lock-in filter catches up)."""
        self._listeners.append(callback)

    def _before_change(self) -> None:
        for cb in list(self._listeners):
            cb()

    def set_sine(self, volts_rms: float) -> None:
        self._before_change()
        self.sine_rms_V = float(volts_rms)

    def set_aux_bias(self, volts: float) -> None:
        self._before_change()
        self.aux_bias_V = float(volts)

    def set_source_current(self, amps: float) -> None:
        if amps != self.source_current_A:
            self._before_change()
        self.source_current_A = float(amps)

    def noise(self, sigma: float, size=None):
        with self.rng_lock:
            return self.rng.normal(0.0, sigma, size)

    # ------------------------------------------------------------------ conditions
    def conditions(self) -> tuple[float, float]:
        """(sample temperature K, field T) now."""
        return self.cryostat.temperature, self.magnet.field

    # ----------------------------------------------------------- junction circuit
    def _junction_source_current(self) -> float:
        return self.source_current_A if self.current_source_circuit == "junction" else 0.0

    def junction_dc(self) -> tuple[float, float]:
        """DC operating point (current A, contact voltage V) of the junction circuit.

        Solves I·R_b + V(I) = V_aux + I_src·R_b by bisection: V(I) rises monotonically.
        """
        t, b = self.conditions()
        rb = self.bias_resistor
        drive = self.aux_bias_V * self.bias_divider + self._junction_source_current() * rb
        if drive == 0.0:
            return 0.0, 0.0
        lo, hi = sorted((0.0, drive / rb))
        # two vectorised passes (257 points each) bracket the root to ~1e-5 of the span,
        # a final linear interpolation makes it exact to the model's smoothness
        for _ in range(2):
            grid = np.linspace(lo, hi, 257)
            f = grid * rb + self.sample.contact_voltage(grid, t, b) - drive
            k = int(np.searchsorted(f, 0.0))
            k = min(max(k, 1), len(grid) - 1)
            lo, hi = grid[k - 1], grid[k]
        f_lo = lo * rb + float(self.sample.contact_voltage(lo, t, b)) - drive
        f_hi = hi * rb + float(self.sample.contact_voltage(hi, t, b)) - drive
        i = lo if f_hi == f_lo else lo - f_lo * (hi - lo) / (f_hi - f_lo)
        return float(i), float(self.sample.contact_voltage(i, t, b))

    def junction_harmonic(self, harmonic: int = 1) -> tuple[complex, float, float, float]:
        """Contact voltage at ``harmonic`` × f as a complex rms phasor (X + iY, sine ref).

        Returns (phasor V, ac current rms A, DC current A, DC voltage V). The contact
        voltage is evaluated over one full period of I_dc + √2·I_ac·sin θ, so large
        excitations smear the spectrum exactly as in a real measurement.
        """
        t, b = self.conditions()
        i_dc, v_dc = self.junction_dc()
        if self.sine_rms_V <= 0:
            return 0j, 0.0, i_dc, v_dc
        r_d = float(self.sample.differential_resistance(i_dc, t, b))
        i_ac = self.sine_rms_V / (self.bias_resistor + max(r_d, 0.0))
        v = self.sample.contact_voltage(i_dc + np.sqrt(2) * i_ac * np.sin(_THETA), t, b)
        n = int(harmonic)
        x = np.sqrt(2) / _PHASE_POINTS * float(np.sum(v * np.sin(n * _THETA)))
        y = np.sqrt(2) / _PHASE_POINTS * float(np.sum(v * np.cos(n * _THETA)))
        return complex(x, y), i_ac, i_dc, float(np.mean(v))

    # -------------------------------------------------------------- sample circuit
    def sample_voltage(self, current_A: float) -> float:
        """Four-terminal voltage across the sample's voltage leads at ``current_A``."""
        t, b = self.conditions()
        if self.current_source_circuit == "junction":
            return float(self.sample.contact_voltage(current_A, t, b))
        return float(self.sample.transport_voltage(current_A, t, b))

    def load_resistance(self, current_A: float) -> float:
        """Resistance the 6221 sees between its output terminals (for compliance)."""
        t, b = self.conditions()
        if self.current_source_circuit == "junction":
            v = float(self.sample.contact_voltage(current_A, t, b))
        else:
            # current leads: contact resistances plus the sample
            v = float(self.sample.transport_voltage(current_A, t, b)) + 20.0 * current_A
        return abs(v / current_A) if current_A else 20.0

    def thermal_emf(self) -> float:
        """Slowly drifting thermoelectric offset in the voltage leads (V)."""
        p = self.sample.preset
        return p.thermal_emf_V + p.thermal_emf_drift_V_per_s * (self.clock.now() % 3600.0)
