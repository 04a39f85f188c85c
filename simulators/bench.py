"""The wiring between the instruments and the sample: who drives which current where.

Junction circuit (dI/dV): the lock-in's sine output and one AUX output both feed the junction
through the bias resistor (48 kΩ by default); the 6221 can instead or also inject a DC current
there (``current_source_circuit="junction"``). The lock-in's A−B input, its AUX input 1 and the
standalone 2182A all sense the contact voltage.
Sample circuit (transport): the 6221 drives the sample's current leads and its linked 2182A
senses the voltage leads (``current_source_circuit="sample"``, the default). The 6221's
waveform output (:class:`SourceWaveform`) drives the same leads; a 2182A reading there is the
sample voltage averaged over its integration window, as the meter's A/D averages it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simulators.clock import SimClock
from simulators.cryostat import Cryostat
from simulators.magnet import MagnetModel
from simulators.sample import SampleModel

_PHASE_POINTS = 64
_NEWTON_STEPS = 6
_THETA = 2 * np.pi * (np.arange(_PHASE_POINTS) + 0.5) / _PHASE_POINTS
_WINDOW_POINTS = 256            # samples of a waveform current over one A/D window


@dataclass(frozen=True)
class SourceWaveform:
    """The 6221's waveform output: offset + amplitude (peak) × shape(phase).

    Armed but not started (``t_start`` None) or past ``t_end`` the output sits at the offset.
    Square: +1 for the first ``duty`` of each period, −1 after; ramp: rises from −1 to +1 over
    ``duty`` of the period and falls back over the rest; ``ARB``: the normalised points (−1…1),
    each held for 1/len of the period; sine starts at phase 0 going positive.
    """

    function: str
    amplitude: float
    frequency: float
    offset: float = 0.0
    duty: float = 0.5
    t_start: float | None = None
    t_end: float = math.inf
    points: tuple[float, ...] = ()

    def current(self, t) -> np.ndarray:
        """Output current (A) at lab time(s) ``t``."""
        t = np.asarray(t, dtype=float)
        if self.t_start is None:
            return np.full(t.shape, self.offset)
        phase = np.mod((t - self.t_start) * self.frequency, 1.0)
        if self.function == "SQU":
            shape = np.where(phase < self.duty, 1.0, -1.0)
        elif self.function == "RAMP":
            d = min(max(self.duty, 1e-9), 1.0 - 1e-9)
            shape = np.where(phase < d, -1.0 + 2.0 * phase / d,
                             1.0 - 2.0 * (phase - d) / (1.0 - d))
        elif self.function.startswith("ARB") and self.points:
            pts = np.asarray(self.points, dtype=float)
            shape = pts[np.minimum((phase * len(pts)).astype(int), len(pts) - 1)]
        else:
            shape = np.sin(2 * np.pi * phase)
        running = (t >= self.t_start) & (t < self.t_end)
        return self.offset + np.where(running, self.amplitude * shape, 0.0)


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
        self.source_current_A = 0.0      # the 6221's DC output now (0 when off)
        self.source_waveform: SourceWaveform | None = None   # its waveform output, if armed
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

    def set_source_waveform(self, waveform: SourceWaveform | None) -> None:
        if waveform != self.source_waveform:
            self._before_change()
        self.source_waveform = waveform

    def source_current_at(self, t) -> np.ndarray:
        """The 6221's total output current (A) at lab time(s) ``t``: DC plus waveform."""
        t = np.asarray(t, dtype=float)
        wave = self.source_waveform
        extra = wave.current(t) if wave is not None else 0.0
        return self.source_current_A + extra

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

        Returns (phasor V, ac current rms A, DC current A, DC voltage V). The lock-in's sine
        drives the contact through the bias resistor, so over one period the circuit
        I·R_b + V(I) = V_dc drive + √2·V_osc·sin θ is solved at every phase θ (Newton from
        the small-signal current) and the contact voltage's Fourier coefficient taken by the
        periodic trapezoid rule (exact for the band-limited part, error falls geometrically
        with the points): a finite excitation broadens the measured spectrum exactly as in
        the real circuit — like a voltage modulation when R_b ≪ R_contact, like a current
        modulation when R_b ≫ R_contact (the 48 kΩ station).
        """
        t, b = self.conditions()
        i_dc, v_dc = self.junction_dc()
        if self.sine_rms_V <= 0:
            return 0j, 0.0, i_dc, v_dc
        sin_t = np.sin(_THETA)
        current, v = self._circuit_current(i_dc, np.sqrt(2) * self.sine_rms_V * sin_t, t, b)
        n = int(harmonic)
        x = np.sqrt(2) / _PHASE_POINTS * float(np.sum(v * np.sin(n * _THETA)))
        y = np.sqrt(2) / _PHASE_POINTS * float(np.sum(v * np.cos(n * _THETA)))
        i_ac = np.sqrt(2) / _PHASE_POINTS * float(np.sum(current * sin_t))
        return complex(x, y), i_ac, i_dc, float(np.mean(v))

    def _circuit_current(self, i_dc: float, v_ac: np.ndarray, t: float, b: float
                         ) -> tuple[np.ndarray, np.ndarray]:
        """(current, contact voltage) when the source adds ``v_ac`` to the DC drive.

        Newton on f(I) = (I − I_dc)·R_b + V(I) − V(I_dc) − v_ac (monotonic: V(I) rises), from
        the small-signal start; a step that would not reduce |f| is halved (sharp Ic dips).
        Evaluations are batched (one model call per stage): the per-point cost stays ~1 ms.
        """
        rb = self.bias_resistor
        contact = self.sample.contact_voltage
        n = v_ac.size
        d0 = 1e-8
        v3 = contact(np.array([i_dc - d0, i_dc, i_dc + d0]), t, b)
        v0 = float(v3[1])
        r_d = max(float(v3[2] - v3[0]) / (2 * d0), 0.0)
        current = i_dc + v_ac / (rb + r_d)
        v = contact(current, t, b)
        f = (current - i_dc) * rb + v - v0 - v_ac
        tol = 1e-8 * max(float(np.max(np.abs(v_ac))), 1e-12)
        for _ in range(_NEWTON_STEPS):
            if float(np.max(np.abs(f))) <= tol:
                break
            h = 1e-6 * max(float(np.max(np.abs(current - i_dc))), 1e-9)
            both = contact(np.concatenate([current + h, current - h]), t, b)
            slope = rb + (both[:n] - both[n:]) / (2 * h)
            step = f / np.maximum(slope, 1e-3 * rb + 1e-12)
            trial = current - step
            v_new = contact(trial, t, b)
            f_new = (trial - i_dc) * rb + v_new - v0 - v_ac
            worse = np.abs(f_new) > np.abs(f)
            if np.any(worse):
                trial = np.where(worse, current - 0.5 * step, trial)
                v_new = contact(trial, t, b)
                f_new = (trial - i_dc) * rb + v_new - v0 - v_ac
            current, v, f = trial, v_new, f_new
        return current, v

    # -------------------------------------------------------------- sample circuit
    def sample_voltage(self, current_A: float) -> float:
        """Four-terminal voltage across the sample's voltage leads at ``current_A``."""
        t, b = self.conditions()
        if self.current_source_circuit == "junction":
            return float(self.sample.contact_voltage(current_A, t, b))
        return float(self.sample.transport_voltage(current_A, t, b))

    def sample_voltage_mean(self, window_s: float) -> float:
        """The four-terminal voltage averaged over the last ``window_s`` of lab time: what an
        integrating voltmeter reads while the 6221 puts out a waveform (the DC case is
        :meth:`sample_voltage` at the DC current)."""
        if self.source_waveform is None:
            return self.sample_voltage(self.source_current_A)
        now = self.clock.now()
        ts = now - window_s * (np.arange(_WINDOW_POINTS) + 0.5) / _WINDOW_POINTS
        current = self.source_current_at(ts)
        t, b = self.conditions()
        if self.current_source_circuit == "junction":
            v = self.sample.contact_voltage(current, t, b)
        else:
            v = self.sample.transport_voltage(current, t, b)
        return float(np.mean(v))

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
