"""The plain-numpy baseline of ``bench/btk.py``: the same BTK/TK model and fit, written
straight from the paper's equations (physics.md §2.2–2.5, §3) in the obvious way.

Tanaka–Kashiwaya σ_S on a (E ≥ 0, θ) grid with Gauss–Legendre angles (2D, weight τ·cosθ), the
stable g = Δ/(z + Ω) (for s-wave once per E, by broadcasting), the thermal kernel as a
precomputed sparse (V × E) matrix folded onto E ≥ 0 (G₀ is even), and
``scipy.optimize.least_squares`` (TRF, bounds, ``x_scale='jac'``, 2-point Jacobian). What a
careful user writes in half an hour — no daqapp code. Parameters: per gap Δ, Γ, Z (and one
shared α for d-wave), then the weight w of gap 1.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import csr_matrix
from scipy.special import roots_legendre

K_B = 0.08617333262  # meV/K


class PlainModel:
    def __init__(self, bias: np.ndarray, temperature_K: float, symmetries: tuple[str, ...],
                 n_theta: int = 48, step_per_kt: float = 1.0) -> None:
        kt = K_B * temperature_K
        self.e = np.arange(0.0, abs(bias).max() + 16 * kt, kt / step_per_kt)
        x = np.abs(np.concatenate([-self.e[:0:-1], self.e])[None, :] - bias[:, None]) / kt
        k = (self.e[1] - self.e[0]) * np.exp(-x) / (kt * (1 + np.exp(-x)) ** 2)  # −∂f/∂E
        n = self.e.size
        k = k[:, n - 1:] + np.pad(k[:, :n - 1][:, ::-1], ((0, 0), (1, 0)))  # E < 0 → |E|
        self.k = csr_matrix(np.where(k > 1e-12 * k.max(), k, 0.0))  # the ±16 k_BT band
        th, self.gw = roots_legendre(n_theta)
        self.th = th * np.pi / 2
        self.gw = self.gw * np.pi / 2
        self.sym = symmetries

    def g0(self, delta, gamma, z, alpha, sym) -> np.ndarray:
        c = np.cos(self.th)
        tau = c ** 2 / (c ** 2 + z ** 2)
        if sym == "d":
            dp, dm = delta * np.cos(2 * (self.th - alpha)), delta * np.cos(2 * (self.th + alpha))
        else:
            dp = dm = np.array([delta])  # broadcast: g once per energy
        zz = self.e[:, None] + 1j * gamma
        gp = np.abs(dp) / (zz + np.sqrt(zz - np.abs(dp)) * np.sqrt(zz + np.abs(dp)))
        gm = np.abs(dm) / (zz + np.sqrt(zz - np.abs(dm)) * np.sqrt(zz + np.abs(dm)))
        num = 1 + tau * np.abs(gp) ** 2 + (tau - 1) * np.abs(gp * gm) ** 2
        sigma = num / np.abs(1 + (tau - 1) * np.sign(dp * dm) * gp * gm) ** 2
        w = self.gw * tau * c
        return sigma @ w / w.sum()

    def __call__(self, p: np.ndarray) -> np.ndarray:
        alpha = p[6] if len(p) > 7 else 0.0
        g = p[-1] * self.g0(p[0], p[1], p[2], alpha, self.sym[0]) \
            + (1 - p[-1]) * self.g0(p[3], p[4], p[5], alpha, self.sym[1])
        return 1 + self.k @ (g - 1)


def plain_fit(bias: np.ndarray, g: np.ndarray, sigma: float, temperature_K: float,
              model: str, start: np.ndarray):
    """Least-squares fit from ``start``; returns the scipy result (``2·cost`` is χ²)."""
    f = PlainModel(bias, temperature_K, tuple(model.split("+")))
    vmax, gmin = abs(bias).max(), 0.25 * K_B * temperature_K
    lo = [0.01, gmin, 0, 0.01, gmin, 0] + ([0] if model == "d+d" else []) + [0]
    hi = [vmax, vmax, 10, vmax, vmax, 10] + ([np.pi / 4] if model == "d+d" else []) + [1]
    return least_squares(lambda p: (f(p) - g) / sigma, np.clip(start, lo, hi),
                         bounds=(lo, hi), method="trf", x_scale="jac")
