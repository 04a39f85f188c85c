"""The sample under test: BTK point-contact spectra, R(T, B), critical current and I–V.

The junction's I–V is the integral of the model conductance (normalised BTK × polynomial
normal-state background × G_N), so any DC bias plus ac excitation gives DC and first-harmonic
voltages that agree with each other, as in a real contact. Spectra are computed on a bias grid
once per (temperature, field) bin and interpolated: the BTK model is never called per query.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from simulators.presets import SamplePreset

#: temperature / field bins of the spectrum cache (interpolated linearly between bins)
_T_BIN_K = 0.5
_B_BIN_T = 0.25
_CACHE_SIZE = 256
_GRID_POINTS = 1601


@dataclass(frozen=True)
class GapState:
    """BTK parameters of one gap at a given (T, B)."""

    delta_meV: float
    gamma_meV: float
    z: float
    weight: float


def _bcs_gap_ratio(t: float) -> float:
    """Δ(T)/Δ(0) of weak-coupling BCS, from the analysis package's solver."""
    from daqapp.analysis.gaps import bcs_gap_ratio

    return float(bcs_gap_ratio(t))


class _JunctionCurve:
    """One cached I–V of the junction at a (T, B) bin: V_j grid (V) and I grid (A)."""

    __slots__ = ("v", "i", "g")

    def __init__(self, v: np.ndarray, i: np.ndarray, g: np.ndarray) -> None:
        self.v, self.i, self.g = v, i, g

    def voltage(self, current: np.ndarray) -> np.ndarray:
        """Junction voltage for a current, extended linearly with the edge conductance."""
        current = np.asarray(current, dtype=float)
        v = np.interp(current, self.i, self.v)
        hi = current > self.i[-1]
        lo = current < self.i[0]
        if np.any(hi):
            v = np.where(hi, self.v[-1] + (current - self.i[-1]) / self.g[-1], v)
        if np.any(lo):
            v = np.where(lo, self.v[0] + (current - self.i[0]) / self.g[0], v)
        return v


class SampleModel:
    """Physics of one preset; thread-safe (the spectrum cache is guarded by a lock)."""

    def __init__(self, preset: SamplePreset, conductance_model=None) -> None:
        self.preset = preset
        self._conductance_model = conductance_model
        self._cache: OrderedDict[tuple[float, float], _JunctionCurve] = OrderedDict()
        self._r_cache: dict[tuple[float, float], float] = {}
        self._lock = threading.Lock()
        delta_max = max(max(r.delta_meV) for r in preset.gap_rows)
        gamma_max = max(max(r.gamma_meV) for r in preset.gap_rows)
        self.bias_span_mV = float(max(6.0 * delta_max + 4.0 * gamma_max, 10.0))
        self._hc2_t, self._hc2_h = self._hc2_shape()
        # local-Tc distribution of the percolating transition: cumulative normal fraction x**p
        p = preset.transition_exponent
        u = (np.arange(400) + 0.5) / 400.0
        self._local_tc = preset.transition_zero_K + (
            preset.transition_onset_K - preset.transition_zero_K) * u
        w = (u + 0.5 / 400) ** p - (u - 0.5 / 400).clip(0) ** p
        self._local_w = w / w.sum()

    # ----------------------------------------------------------------- gaps and spectra
    def gap_parameters(self, temperature_K: float, field_T: float = 0.0) -> list[GapState]:
        """Δ, Γ, Z of each gap: the preset's table interpolated in T, BCS closing beyond it,
        and pair breaking in field (Δ ∝ √(1 − B/Hc2(T)))."""
        p = self.preset
        rows = p.gap_rows
        t = float(temperature_K)
        temps = np.array([r.temperature_K for r in rows])
        n = len(p.gap_weights)
        if t >= p.tc_K:
            return [GapState(0.0, rows[-1].gamma_meV[i], rows[-1].z[i], p.gap_weights[i])
                    for i in range(n)]
        hc2 = self.hc2(t)
        pair = math.sqrt(max(0.0, 1.0 - abs(field_T) / hc2)) if hc2 > 0 else 0.0
        out = []
        for i in range(n):
            d = np.array([r.delta_meV[i] for r in rows])
            g = np.array([r.gamma_meV[i] for r in rows])
            z = np.array([r.z[i] for r in rows])
            if t <= temps[-1]:
                delta = float(np.interp(t, temps, d))
                gamma = float(np.interp(t, temps, g))
                zz = float(np.interp(t, temps, z))
            else:
                last = temps[-1]
                ratio = _bcs_gap_ratio(t / p.tc_K) / max(_bcs_gap_ratio(last / p.tc_K), 1e-12)
                delta, gamma, zz = d[-1] * ratio, g[-1], z[-1]
            out.append(GapState(delta * pair, gamma, zz, p.gap_weights[i]))
        return out

    def normalized_conductance(self, bias_mV, temperature_K: float,
                               field_T: float = 0.0) -> np.ndarray:
        """G/G_N of the contact from the BTK model (no background, no series resistance)."""
        bias = np.atleast_1d(np.asarray(bias_mV, dtype=float))
        gaps = self.gap_parameters(temperature_K, field_T)
        if all(g.delta_meV <= 0 for g in gaps):
            return np.ones_like(bias)
        model = self._conductance_model or _btk_weighted
        return np.asarray(model(bias, float(temperature_K), gaps, self.preset.dimension),
                          dtype=float)

    def background(self, bias_mV) -> np.ndarray:
        """Normal-state conductance shape G_N(V)/G_N(0): the polynomial background."""
        v = np.asarray(bias_mV, dtype=float)
        p = self.preset
        return 1.0 + p.background_linear_per_mV * v + p.background_quadratic_per_mV2 * v * v

    def _curve(self, temperature_K: float, field_T: float) -> _JunctionCurve:
        key = (round(temperature_K, 6), round(field_T, 6))
        with self._lock:
            curve = self._cache.get(key)
            if curve is not None:
                self._cache.move_to_end(key)
                return curve
        span = self.bias_span_mV
        v_mV = np.linspace(-span, span, _GRID_POINTS)
        g_norm = self.normalized_conductance(v_mV, temperature_K, field_T)
        g = g_norm * self.background(v_mV) / self.preset.junction_normal_resistance_ohm
        g = np.maximum(g, 1e-9)
        v = v_mV * 1e-3
        i = np.concatenate([[0.0], np.cumsum(0.5 * (g[1:] + g[:-1]) * np.diff(v))])
        i -= np.interp(0.0, v, i)
        curve = _JunctionCurve(v, i, g)
        with self._lock:
            self._cache[key] = curve
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return curve

    def _bins(self, temperature_K: float, field_T: float):
        t = max(float(temperature_K), 0.05)
        b = abs(float(field_T))
        t0 = math.floor(t / _T_BIN_K) * _T_BIN_K
        b0 = math.floor(b / _B_BIN_T) * _B_BIN_T
        wt = (t - t0) / _T_BIN_K
        wb = (b - b0) / _B_BIN_T
        return [(max(t0, 0.05), b0, (1 - wt) * (1 - wb)), (t0 + _T_BIN_K, b0, wt * (1 - wb)),
                (max(t0, 0.05), b0 + _B_BIN_T, (1 - wt) * wb),
                (t0 + _T_BIN_K, b0 + _B_BIN_T, wt * wb)]

    def junction_voltage(self, current_A, temperature_K: float, field_T: float = 0.0):
        """Voltage across the bare junction (V) carrying ``current_A``."""
        current = np.asarray(current_A, dtype=float)
        total = np.zeros_like(current)
        for t, b, w in self._bins(temperature_K, field_T):
            if w > 1e-12:
                total = total + w * self._curve(t, b).voltage(current)
        return total

    def contact_voltage(self, current_A, temperature_K: float, field_T: float = 0.0):
        """What the three-terminal contact measurement sees: junction + lead/series resistance
        + the superconducting region under the contact, whose switching where the current
        crosses its critical current gives the well-known dips in dI/dV."""
        p = self.preset
        current = np.asarray(current_A, dtype=float)
        v = self.junction_voltage(current, temperature_K, field_T)
        v = v + p.series_resistance_ohm * current
        if p.series_heating_per_A:
            # thermovoltage of the Joule-heated series lead: even in I, so dV/dI gets an odd
            # part (asymmetric spectra); saturates above 1 mA so V(I) stays monotonic
            i0 = 1e-3
            v = v + p.series_resistance_ohm * p.series_heating_per_A * i0 * i0 * np.log1p(
                (current / i0) ** 2)
        if p.spreading_resistance_ohm:
            v = v + self.spreading_voltage(current, temperature_K, field_T)
        return v

    def spreading_critical_current(self, temperature_K: float, field_T: float = 0.0) -> float:
        """Ic (A) of the small superconducting region under the contact (δTc pinning form)."""
        p = self.preset
        bulk = self.critical_current(temperature_K, field_T)
        return bulk * p.spreading_ic0_A / p.ic0_A if p.ic0_A > 0 else 0.0

    def spreading_voltage(self, current_A, temperature_K: float, field_T: float = 0.0):
        """Voltage (V) of the region under the contact: its low-current resistive share of
        R_spread below its Ic, switching abruptly to the full R_spread above it. Current-biased,
        the switch is a sharp peak in dV/dI (a dip in dI/dV) at the crossing."""
        p = self.preset
        current = np.asarray(current_A, dtype=float)
        scale = self.normal_resistance(temperature_K) / self.normal_resistance(
            p.transition_onset_K)
        r_spread = p.spreading_resistance_ohm * scale
        fraction = min(1.0, self.resistance(temperature_K, field_T)
                       / max(self.normal_resistance(temperature_K), 1e-12))
        ic = self.spreading_critical_current(temperature_K, field_T)
        if ic <= 0 or fraction >= 1.0:
            return r_spread * current
        x = np.abs(current) / ic
        switched = 0.5 * (1.0 + np.tanh((x - 1.0) / 0.05))
        return r_spread * current * (fraction + (1.0 - fraction) * switched)

    def differential_resistance(self, current_A, temperature_K: float,
                                field_T: float = 0.0, delta_A: float = 1e-8):
        """dV/dI (Ω) of the contact at ``current_A`` (central difference)."""
        current = np.asarray(current_A, dtype=float)
        hi = self.contact_voltage(current + delta_A, temperature_K, field_T)
        lo = self.contact_voltage(current - delta_A, temperature_K, field_T)
        return (hi - lo) / (2 * delta_A)

    # ---------------------------------------------------------------------- transport
    def _hc2_shape(self) -> tuple[np.ndarray, np.ndarray]:
        """Reduced two-band (Gurevich) Hc2(t)/Hc2(0) on a t grid, from the analysis package."""
        from daqapp.analysis.hc2 import gurevich_hc2

        p = self.preset
        t = np.linspace(0.0, 1.0, 201)
        tc = p.transition_onset_K
        temps = np.clip(t, 0.005, 0.999) * tc
        # the shape h(t) = Hc2(t)/Hc2(0) does not depend on D1; it is rescaled to hc2_0_T
        h = np.asarray(gurevich_hc2(temps, tc, 1e-4, p.hc2_eta, p.hc2_lambdas), dtype=float)
        h = np.nan_to_num(h, nan=0.0).clip(0)
        h[-1] = 0.0
        if h[0] <= 0:
            h = 1.0 - t * t
        return t, h / h[0]

    def hc2(self, temperature_K: float) -> float:
        """Upper critical field μ0Hc2(T) (T) at the resistive onset."""
        p = self.preset
        t = float(temperature_K) / p.transition_onset_K
        if t >= 1:
            return 0.0
        return p.hc2_0_T * float(np.interp(t, self._hc2_t, self._hc2_h))

    def normal_resistance(self, temperature_K: float) -> float:
        """Normal-state R_N(T): linear strange metal, bending sub-linearly at high T."""
        p = self.preset
        t = float(temperature_K)
        r = p.r0_ohm + p.r_slope_ohm_per_K * t
        if t > p.r_linear_until_K and p.r_curvature_per_K:
            x = t - p.r_linear_until_K
            r -= p.r_slope_ohm_per_K * x * x * p.r_curvature_per_K / (1 + p.r_curvature_per_K * x)
        return r

    def normal_fraction(self, temperature_K: float, field_T: float = 0.0) -> float:
        """Share of the current path that is normal: regions with local Tc in field below T.

        Each region's Hc2 scales with its local Tc (common slope), so a field suppresses the
        low-Tc tail most: the transition broadens and zero resistance moves down, as in Fig. 1c.
        """
        p = self.preset
        t = float(temperature_K)
        b = abs(float(field_T))
        tc_local = self._local_tc
        if b > 0:
            hc2_local = p.hc2_0_T * tc_local / p.transition_onset_K
            reduced = np.clip(b / hc2_local, 0.0, 1.0)
            # invert h(t) = reduced for each region: t* = where the field equals Hc2
            t_star = np.interp(reduced, self._hc2_h[::-1], self._hc2_t[::-1])
            tc_local = tc_local * t_star
        return float(np.sum(self._local_w[tc_local <= t]))

    def resistance(self, temperature_K: float, field_T: float = 0.0) -> float:
        """Low-current four-terminal resistance R(T, B) (Ω)."""
        key = (float(temperature_K), float(field_T))
        hit = self._r_cache.get(key)
        if hit is None:
            hit = self.normal_resistance(key[0]) * self.normal_fraction(key[0], key[1])
            if len(self._r_cache) > 4096:
                self._r_cache.clear()
            self._r_cache[key] = hit
        return hit

    def critical_current(self, temperature_K: float, field_T: float = 0.0) -> float:
        """Ic(T, B) in A: δTc vortex pinning (1 − t²)^{7/6}(1 + t²)^{5/6}, reduced in field."""
        p = self.preset
        t = float(temperature_K) / p.ic_tc_K
        if t >= 1:
            return 0.0
        ic = p.ic0_A * (1 - t * t) ** (7 / 6) * (1 + t * t) ** (5 / 6)
        b = abs(float(field_T))
        if b > 0:
            hc2 = p.hc2_0_T * p.ic_tc_K / p.transition_onset_K * float(
                np.interp(t, self._hc2_t, self._hc2_h))
            ic *= max(0.0, 1.0 - b / hc2) ** 2 if hc2 > 0 else 0.0
        return ic

    def depairing_current(self, temperature_K: float, field_T: float = 0.0) -> float:
        """Current scale (A) on which the filamentary superconducting paths are driven normal:
        I_d0·(1 − T/T_on(B))^1.5, vanishing at the (field-suppressed) resistive onset."""
        p = self.preset
        onset = p.transition_onset_K
        b = abs(float(field_T))
        if b > 0:
            onset *= float(np.interp(min(b / p.hc2_0_T, 1.0), self._hc2_h[::-1],
                                     self._hc2_t[::-1]))
        x = 1.0 - float(temperature_K) / onset if onset > 0 else 0.0
        return p.depairing_current_A * x ** 1.5 if x > 0 else 0.0

    def transport_voltage(self, current_A, temperature_K: float, field_T: float = 0.0):
        """Four-terminal sample voltage (V).

        V = R(T,B)·I + (R_N − R)·sign(I)·u²/(u + I_d), u = √(I² − Ic²) beyond Ic: zero voltage
        below Ic where R = 0, ohmic R(T,B) at small currents, and a flux-flow rise to the
        normal state when the current greatly exceeds Ic + I_d.
        """
        current = np.asarray(current_A, dtype=float)
        r_lin = self.resistance(temperature_K, field_T)
        r_n = self.normal_resistance(temperature_K)
        ic = self.critical_current(temperature_K, field_T)
        i_d = self.depairing_current(temperature_K, field_T)
        u = np.sqrt(np.clip(current * current - ic * ic, 0.0, None))
        flow = u * u / (u + i_d) if i_d > 0 else u
        return r_lin * current + (r_n - r_lin) * np.sign(current) * flow

    def chord_resistance(self, temperature_K: float, field_T: float = 0.0,
                         current_A: float = 2e-4) -> float:
        """(V(I) − V(−I))/2I: what a delta-mode measurement at ±I reports (Ω)."""
        v = self.transport_voltage(np.array([current_A, -current_A]), temperature_K, field_T)
        return float((v[0] - v[1]) / (2 * current_A))


def _btk_weighted(bias_mV: np.ndarray, temperature_K: float, gaps: list[GapState],
                  dimension: int) -> np.ndarray:
    """Weighted two-channel conductance from the analysis package's BTK forward model."""
    from daqapp.analysis import btk

    model_gaps = [btk.Gap(delta=g.delta_meV, gamma=g.gamma_meV, z=g.z, weight=g.weight)
                  for g in gaps]
    return btk.conductance(bias_mV, temperature_K, model_gaps, dimension=dimension)
