"""Least-squares fits of normalised PCAR spectra with BTK/TK models, and model comparison.

Small lmfit-like objects written for this use: a :class:`BTKModel` holds named
:class:`Parameter` objects (fixable, bounded, or shared with another parameter); :meth:`guess`
starts from the spectrum itself; :func:`fit_spectrum` runs ``scipy.optimize.least_squares``
(TRF, bounds, ``x_scale='jac'``) from one or several starts and returns a :class:`FitResult`
carrying everything a lab notebook, the HDF5 run file and a later refit need: values, standard
errors, covariance and correlation, χ², χ²_red, AIC, BIC, the noise σ used, the bias window and
the convention (dimension). :func:`compare_models` ranks models by AIC and says when the data
cannot decide.

Why σ matters: AIC = χ² + 2k and BIC = χ² + k ln N are only meaningful with a real noise σ;
unless given, it is estimated from the residual of a local quartic through 9 neighbouring points
(:func:`estimate_noise`), which a smooth BTK curve does not contribute to.

Why a global stage: two-gap models have several minima of nearly equal χ² (d+d especially:
Δ2 can sit at a second shoulder or merge into Δ1). For s/d two-gap models a library of
single-gap spectra is combined pairwise with the closed-form optimal weight, the best distinct
seeds are refined on coarse grids (successive halving) and only the winner is polished at full
resolution: ~0.4 s for d+d and ~0.1 s for s+s at 1001 points on one core (``bench/btk.py``).

Why the Jacobian is semi-analytic (:func:`model_jacobian`): finite differences of the whole
model re-evaluate every channel for every column. The model is linear in the channel weights
and in the smearing, so only the channel a parameter belongs to is re-evaluated, on the
residual's own grid; Z needs no re-evaluation at all (it enters only through τ).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import least_squares

from daqapp.analysis.btk import K_B_MEV_PER_K, ChannelSpectra, Gap, screening_conductance

MODEL_ALIASES = {"s": ("s",), "d": ("d",), "s+s": ("s", "s"), "s+d": ("s", "d"),
                 "d+s": ("d", "s"), "d+d": ("d", "d")}
STANDARD_MODELS = ("s+s", "s+d", "d+s", "d+d")
_ALPHA_MAX = math.pi / 4
_DEFAULT_SEEDS = 4  # distinct (Δ1, Δ2) basins refined after the library screen
_SCREEN_POINTS = 201  # bias points kept for the global stage
_SCREEN_RESOLUTION = 2.0  # coarser energy/angle grids there (~3e-4 abs. error, ≪ noise)
_SCREEN_ALPHAS = (0.0, 0.15, 0.3, 0.45, 0.65, 1.0)  # × π/4: the ZBCP grows steeply with α
_COARSE_FIRST_STEPS = 15  # coarse-stage steps every seed gets before the cut
_COARSE_KEEP = 3  # seeds that continue to convergence on the coarse grids
_SCREEN_DELTAS = 14  # geometric Δ grid of the library
_DEFAULT_GAMMA_MIN = 1e-3


@dataclass
class Parameter:
    """A named model parameter: value, whether it varies, bounds, or a tie to another one."""

    name: str
    value: float
    vary: bool = True
    min: float = -math.inf
    max: float = math.inf
    shared_with: str | None = None
    stderr: float | None = None

    def set(self, value: float | None = None, vary: bool | None = None,
            min: float | None = None, max: float | None = None,  # noqa: A002
            shared_with: str | None = None) -> Parameter:
        """Change attributes in place (``None`` leaves an attribute alone); returns self."""
        if value is not None:
            self.value = float(value)
        if vary is not None:
            self.vary = bool(vary)
        if min is not None:
            self.min = float(min)
        if max is not None:
            self.max = float(max)
        if shared_with is not None:
            self.shared_with = shared_with or None
        return self


def parse_model(model: str | Sequence[str]) -> tuple[str, ...]:
    """``"s+d"`` → ("s", "d"); also "s+s+s" for n gaps, "s_aniso" components, or a tuple."""
    if isinstance(model, str):
        parts = tuple(p.strip() for p in model.lower().split("+"))
    else:
        parts = tuple(model)
    if not parts or any(p not in ("s", "d", "s_aniso") for p in parts):
        raise ValueError(f"model = {model!r} is not allowed (allowed: components 's', 'd' or "
                         "'s_aniso' joined by '+', e.g. 's+s', 'd+d', 's+s+s')")
    return parts


@dataclass
class ModelParts:
    """One evaluation of a :class:`BTKModel`, kept for its Jacobian.

    G = back·[(1 − p)·Σ wᵢSᵢ + p]: ``spectra`` are the channels' Sᵢ at weight 1 on the grid of
    ``channels`` (shared, so derivatives re-evaluate one channel on the same grid), ``dz``
    maps a channel number to ∂Sᵢ/∂Zᵢ, ``g_btk`` = Σ wᵢSᵢ, ``g_par`` adds the parallel normal
    channel, ``back`` is the background factor and ``model`` the result.
    """

    values: dict[str, float]
    shifted: np.ndarray
    channels: ChannelSpectra
    gaps: list[Gap]
    spectra: list[np.ndarray]
    dz: dict[int, np.ndarray]
    g_btk: np.ndarray
    g_par: np.ndarray
    back: np.ndarray
    model: np.ndarray


_GAP_FIELDS = ("delta", "gamma", "z", "alpha", "anisotropy")  # per-channel Gap attributes
_FORWARD_STEP = 1e-6  # relative step of the optimiser's one-channel differences (Δ, Γ, α)
_CENTRAL_STEP = 1e-5  # relative step of the covariance's central differences


def _split_name(name: str) -> tuple[str, int]:
    base = name.rstrip("0123456789")
    return base, int(name[len(base):]) if len(name) > len(base) else 0


def _weight_derivatives(model: BTKModel, values: dict[str, float], k: int) -> np.ndarray:
    """∂wᵢ/∂weight_k of the stick-breaking weights wᵢ = bᵢ∏ⱼ<ᵢ(1 − bⱼ), w_n = ∏ⱼ<ₙ(1 − bⱼ)."""
    n = len(model.components)
    b = [min(max(values[f"weight{j}"], 0.0), 1.0) for j in range(1, n)]
    out = np.zeros(n)
    for i in range(k - 1, n):  # channel index i (0-based); weights before k do not move
        left = math.prod(1.0 - b[j] for j in range(i) if j != k - 1)
        if i == k - 1:
            out[i] = left
        else:
            out[i] = -left * (b[i] if i < n - 1 else 1.0)
    return out


def model_jacobian(model: BTKModel, parts: ModelParts, names: Sequence[str], *,
                   central: bool = False) -> np.ndarray:
    """∂G/∂p at ``parts`` for the parameters ``names`` (columns), semi-analytic.

    Why not plain finite differences: each of their columns re-evaluates every channel.
    Here the weights and the background enter in closed form (∂G/∂w₁ = S₁ − S₂ for two
    channels), Z from the Andreev amplitudes already computed (``parts.dz``; Z enters only
    through τ), and Δ, Γ, α, anisotropy by a difference that re-evaluates only the channels
    that parameter belongs to, on the same grid and angular nodes — smearing is linear, so it
    commutes with the derivative. v0 and T (they move the grid itself) fall back to a full
    difference. ``central``: central differences (the covariance), else forward (the
    optimiser; the step goes down at an upper bound).
    """
    v = parts.values
    n_bias = parts.model.size
    pre = parts.back * (1.0 - v.get("p_normal", 0.0))
    owners: dict[str, list[str]] = {}
    for q in model.params:
        owners.setdefault(model._source(q), []).append(q)
    jac = np.zeros((n_bias, len(names)))
    rel = _CENTRAL_STEP if central else _FORWARD_STEP
    for col, name in enumerate(names):
        targets = owners.get(name, [name])
        split = [_split_name(q) for q in targets]
        if all(base in _GAP_FIELDS and i >= 1 for base, i in split):
            d_btk = np.zeros(n_bias)
            p = model.params[name]
            h = rel * max(abs(v[name]), 1e-2)
            for base, i in split:
                gap = parts.gaps[i - 1]
                if gap.weight == 0.0:
                    continue
                if base == "z" and i in parts.dz:
                    d_btk += gap.weight * parts.dz[i]
                    continue
                x0 = getattr(gap, base)
                up = x0 + h
                if central:
                    dn = x0 - h
                    if base != "alpha":  # α is periodic; the others have physical bounds
                        up, dn = min(up, p.max), max(dn, p.min)
                    s_dn = parts.channels.spectrum(replace(gap, **{base: dn}), nodes_of=gap)
                else:
                    dn, s_dn = x0, parts.spectra[i - 1]
                    if up > p.max:
                        up = x0 - h
                s_up = parts.channels.spectrum(replace(gap, **{base: up}), nodes_of=gap)
                d_btk += gap.weight * (s_up - s_dn) / (up - dn)
            jac[:, col] = pre * d_btk
        elif name.startswith("weight") and all(q.startswith("weight") for q in targets):
            d_btk = np.zeros(n_bias)
            for q in targets:
                dw = _weight_derivatives(model, v, _split_name(q)[1])
                for w_i, s_i in zip(dw, parts.spectra, strict=True):
                    if w_i:
                        d_btk += w_i * s_i
            jac[:, col] = pre * d_btk
        elif targets == ["p_normal"]:
            jac[:, col] = parts.back * (1.0 - parts.g_btk)
        elif targets == ["scale"] and v["scale"] != 0.0:
            jac[:, col] = parts.model / v["scale"]
        elif targets == ["slope"]:
            jac[:, col] = v["scale"] * parts.shifted * parts.g_par
        elif targets == ["curvature"]:
            jac[:, col] = v["scale"] * parts.shifted ** 2 * parts.g_par
        else:  # v0, temperature: the grid moves with them — difference the whole model
            jac[:, col] = _full_difference(model, parts, name, targets, central)
    return jac


def _full_difference(model: BTKModel, parts: ModelParts, name: str, targets: Sequence[str],
                     central: bool) -> np.ndarray:
    """∂G/∂``name`` by differencing the whole model (each side on its own grid)."""
    v = parts.values
    p = model.params[name]
    h = (_CENTRAL_STEP if central else _FORWARD_STEP) * max(abs(v[name]), 1e-2)
    up = min(v[name] + h, p.max)
    dn = max(v[name] - h, p.min) if central else v[name]
    if up <= dn:
        up, dn = v[name], v[name] - h
    bias = parts.shifted + v["v0"]

    def at(value: float) -> np.ndarray:
        if value == v[name]:
            return parts.model
        moved = dict(v)
        for q in targets:
            moved[q] = value
        return model.eval(bias, moved)

    return (at(up) - at(dn)) / (up - dn)


class BTKModel:
    """A composite BTK/TK conductance model with named parameters.

    Parameters per component i (1-based): ``delta{i}``, ``gamma{i}``, ``z{i}`` and, for angular
    gaps, ``alpha{i}`` (and ``anisotropy{i}`` for s_aniso); ``weight{i}`` for i < n, where for
    n > 2 weight{i} is the fraction of the conductance left by the earlier channels
    (stick-breaking, so every value in [0, 1] is valid). Global: ``p_normal``, a parallel
    normal (non-superconducting) conductance fraction p, G = (1 − p)·G_BTK + p — the seed
    paper's explanation of its ~22 % gap peaks; without it p is absorbed into w and Z —
    ``scale``, ``slope`` and ``curvature`` of a quadratic normal-state background
    (G_model = scale·(1 + slope·V + curvature·V²)·G(V − v0)), ``v0`` (bias offset, mV) and
    ``temperature`` (K); all are fixed unless you free them. Freeing the background fits a raw
    spectrum jointly, instead of dividing by a polynomial fitted where the BTK tail is not yet 1.

    ``modulation_mV`` (rms, not fitted: it is known from the run's excitation and wiring)
    makes :meth:`eval` return what a lock-in measures, the spectrum convolved with the
    modulation's semicircle (:mod:`daqapp.analysis.modulation`). The background multiplies
    the broadened curve: it is smooth on the scale of the excitation (its own broadening,
    curvature·V_rms²/2, is below the noise for any physical curvature).
    """

    def __init__(self, model: str | Sequence[str] = "s+s", temperature_K: float = 3.0,
                 dimension: int = 2, modulation_mV: float = 0.0) -> None:
        self.components = parse_model(model)
        if dimension not in (1, 2, 3):
            raise ValueError(f"dimension = {dimension!r} is not allowed (allowed: 1, 2 or 3)")
        self.dimension = int(dimension)
        self.modulation_mV = _checked_modulation(modulation_mV)
        if not (math.isfinite(temperature_K) and temperature_K >= 0):
            raise ValueError(f"temperature_K = {temperature_K!r} is outside the allowed range "
                             "0 to inf K")
        self.params: dict[str, Parameter] = {}
        n = len(self.components)
        for i, sym in enumerate(self.components, start=1):
            self._add(f"delta{i}", 10.0 / i, min=0.01, max=500.0)
            self._add(f"gamma{i}", 1.0, min=_DEFAULT_GAMMA_MIN, max=500.0)
            self._add(f"z{i}", 0.5, min=0.0, max=10.0)
            if sym in ("d", "s_aniso"):
                self._add(f"alpha{i}", 0.0, min=0.0, max=_ALPHA_MAX)
            if sym == "s_aniso":
                self._add(f"anisotropy{i}", 0.3, min=0.0, max=1.0)
            if i < n:
                self._add(f"weight{i}", 0.5 if n == 2 else 1.0 / (n - i + 1), min=0.0, max=1.0)
        # one α per model: later angular components share the first one's α by default
        alphas = [f"alpha{i}" for i in range(1, n + 1) if f"alpha{i}" in self.params]
        for name in alphas[1:]:
            self.params[name].shared_with = alphas[0]
        self._add("p_normal", 0.0, vary=False, min=0.0, max=1.0)
        self._add("scale", 1.0, vary=False, min=0.5, max=2.0)
        self._add("slope", 0.0, vary=False, min=-0.1, max=0.1)
        self._add("curvature", 0.0, vary=False, min=-0.01, max=0.01)
        self._add("v0", 0.0, vary=False, min=-5.0, max=5.0)
        self._add("temperature", float(temperature_K), vary=False, min=0.0, max=1000.0)

    @property
    def name(self) -> str:
        return "+".join(self.components)

    def _add(self, name: str, value: float, vary: bool = True, min: float = -math.inf,  # noqa: A002
             max: float = math.inf) -> None:
        self.params[name] = Parameter(name, float(value), vary, float(min), float(max))

    def __getitem__(self, name: str) -> Parameter:
        try:
            return self.params[name]
        except KeyError:
            raise KeyError(f"no parameter {name!r} in model {self.name} (parameters: "
                           f"{', '.join(self.params)})") from None

    def set(self, name: str, **kwargs) -> BTKModel:
        """Shortcut: ``model.set("z1", value=0.5, vary=False)``; returns the model."""
        self[name].set(**kwargs)
        return self

    def copy(self) -> BTKModel:
        new = BTKModel(self.components, self.params["temperature"].value, self.dimension,
                       self.modulation_mV)
        for k, p in self.params.items():
            new.params[k] = Parameter(p.name, p.value, p.vary, p.min, p.max, p.shared_with,
                                      p.stderr)
        return new

    # ----------------------------------------------------------------- evaluation
    def weights(self, values: dict[str, float]) -> list[float]:
        n = len(self.components)
        out, left = [], 1.0
        for i in range(1, n):
            w = left * min(max(values[f"weight{i}"], 0.0), 1.0)
            out.append(w)
            left -= w
        out.append(max(left, 0.0))
        s = sum(out)
        return [w / s for w in out]

    def gaps(self, values: dict[str, float] | None = None) -> list[Gap]:
        """The :class:`Gap` list for a parameter set (default: current values)."""
        v = self.values() if values is None else values
        ws = self.weights(v)
        out = []
        for i, sym in enumerate(self.components, start=1):
            out.append(Gap(delta=v[f"delta{i}"], gamma=v[f"gamma{i}"], z=v[f"z{i}"],
                           symmetry=sym, alpha=v.get(f"alpha{i}", 0.0), weight=ws[i - 1],
                           anisotropy=v.get(f"anisotropy{i}", 0.0)))
        return out

    def values(self) -> dict[str, float]:
        vals = {k: p.value for k, p in self.params.items()}
        return self._resolve_shared(vals)

    def _resolve_shared(self, vals: dict[str, float]) -> dict[str, float]:
        for k, p in self.params.items():
            if p.shared_with:
                vals[k] = vals[self[p.shared_with].name]
        return vals

    def eval(self, bias_mV, values: dict[str, float] | None = None, *,
             resolution: float = 1.0) -> np.ndarray:
        """Model conductance at ``bias_mV`` for ``values`` (default: current values).

        ``resolution`` > 1: coarser energy/angle grids (the fit's global stage only).
        """
        v = self.values() if values is None else values
        bias = np.asarray(bias_mV, dtype=float)
        return self.parts(bias.ravel(), v, resolution=resolution).model.reshape(bias.shape)

    def parts(self, bias_mV: np.ndarray, values: dict[str, float], *, resolution: float = 1.0,
              z_derivatives: bool = False) -> ModelParts:
        """The model at ``bias_mV`` (1-D) with the pieces its Jacobian reuses (see
        :class:`ModelParts`); ``z_derivatives``: also ∂Sᵢ/∂Zᵢ for the free Zᵢ."""
        v = values
        shifted = np.asarray(bias_mV, dtype=float) - v["v0"]
        gaps = self.gaps(v)
        channels = ChannelSpectra(shifted, v["temperature"], gaps, self.dimension,
                                  self.modulation_mV, resolution)
        spectra, dz = [], {}
        for i, gap in enumerate(gaps, start=1):
            if z_derivatives and self._source(f"z{i}") in self.free_names():
                s_i, dz[i] = channels.spectrum_and_dz(gap)
            else:
                s_i = channels.spectrum(gap)
            spectra.append(s_i)
        g_btk = sum(gap.weight * s_i for gap, s_i in zip(gaps, spectra, strict=True))
        p = v.get("p_normal", 0.0)
        g_par = (1.0 - p) * g_btk + p if p else g_btk
        back = self.background(shifted, v)
        return ModelParts(v, shifted, channels, gaps, spectra, dz, g_btk, g_par, back,
                          back * g_par)

    def _source(self, name: str) -> str:
        """The free parameter ``name`` takes its value from (itself unless shared)."""
        return self.params[name].shared_with or name

    @staticmethod
    def background(shifted_mV: np.ndarray, values: dict[str, float]) -> np.ndarray:
        """The normal-state factor scale·(1 + slope·V + curvature·V²) the BTK curve rides on."""
        v = values
        return v["scale"] * (1.0 + v["slope"] * shifted_mV + v["curvature"] * shifted_mV ** 2)

    def free_background(self) -> BTKModel:
        """Let scale, slope and curvature vary (fit a raw, un-normalised spectrum); chainable."""
        for name in ("scale", "slope", "curvature"):
            self.params[name].vary = True
        return self

    def free_names(self) -> list[str]:
        return [k for k, p in self.params.items() if p.vary and not p.shared_with]

    # ----------------------------------------------------------------- initial values
    def guess(self, bias_mV, conductance_data) -> BTKModel:
        """Set starting values of the *varying* parameters from the spectrum.

        Δ1 ≈ 0.85 × the outer conductance-peak bias (the peak moves above Δ with Γ and 2D/3D
        averaging), smaller gaps from inner peaks or shoulders (minima of d²G/dV²), Γ from the
        peak width, Z from G(0) relative to the peak and w from the relative feature heights.
        Fixed and shared parameters keep their values: a value the user fixed is a fact, not
        a starting point. A fixed ``p_normal`` is divided out of the data before guessing.
        Returns the model (changed in place) for chaining.
        """
        bias = np.asarray(bias_mV, dtype=float)
        g = np.asarray(conductance_data, dtype=float)
        p_norm = self.params["p_normal"]
        if p_norm.vary and not p_norm.shared_with:
            p_norm.value = 0.2 if p_norm.value == 0.0 else p_norm.value
        elif 0.0 < p_norm.value < 1.0:
            g = (g - p_norm.value) / (1.0 - p_norm.value)
        u, gs = _folded(bias, g)
        n = len(self.components)
        t = self.params["temperature"].value
        kt = 0.08617333262 * t
        energies = _feature_energies(u, gs, n)
        g0 = float(np.interp(0.0, u, gs))
        g_peak = float(np.interp(energies[0], u, gs))
        for i, e in enumerate(energies, start=1):
            delta = max(0.85 * e, 0.05)
            self._guess(f"delta{i}", delta)
            delta = self.params[f"delta{i}"].value
            width = _half_width(u, gs, e)
            gamma = max(0.5 * width - 1.75 * kt - 0.7 * self.modulation_mV, 0.05 * delta)
            self._guess(f"gamma{i}", min(gamma, 0.6 * delta))
            # Andreev enhancement at zero bias means small Z; a dip means a barrier.
            z = 0.3 if g0 >= 1.0 else min(0.3 + 1.2 * (g_peak - g0) / max(g_peak, 1e-3), 3.0)
            self._guess(f"z{i}", z)
        for i in range(1, n):
            self._guess(f"weight{i}", 0.5 if n == 2 else 1.0 / (n - i + 1))
        return self

    def _guess(self, name: str, value: float) -> None:
        """Set a starting value inside the bounds, only if ``name`` is free (not fixed/tied)."""
        p = self.params[name]
        if p.vary and not p.shared_with:
            p.value = min(max(float(value), p.min), p.max)


def _checked_modulation(modulation_mV: float) -> float:
    try:
        v = float(modulation_mV)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and 0.0 <= v <= 1e4):
        raise ValueError(f"modulation_mV = {modulation_mV!r} is outside the allowed range 0 to "
                         "1e4 mV rms (finite)")
    return v


def _folded(bias: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spectrum as a function of |V| (average of both branches) on a uniform grid."""
    order = np.argsort(bias)
    b, gg = bias[order], g[order]
    vmax = min(abs(b[0]), abs(b[-1])) if b[0] < 0 < b[-1] else float(np.max(np.abs(b)))
    npts = max(64, min(2000, int(np.sum(np.abs(b) <= vmax) // 2)))
    u = np.linspace(0.0, vmax, npts)
    pos = np.interp(u, b, gg)
    neg = np.interp(-u, b, gg)
    both = 0.5 * (pos + neg) if b[0] < 0 < b[-1] else np.interp(u, np.abs(b), gg)
    k = max(1, npts // 100)
    if k > 1:  # light smoothing: guesses should not chase noise
        kernel = np.ones(2 * k + 1) / (2 * k + 1)
        padded = np.concatenate([both[k:0:-1], both, both[-2:-k - 2:-1]])
        both = np.convolve(padded, kernel, mode="valid")
    return u, both


def _find_peaks(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of ``y`` and their topographic prominences (scipy.signal's definition).

    A small numpy version: importing scipy.signal costs seconds on a cold start, and the guess
    needs only this. −inf entries mask points out (they bound the bases like scipy's do).
    """
    y = np.asarray(y, dtype=float)
    if y.size < 3:
        return np.array([], dtype=int), np.array([])
    mid = y[1:-1]
    is_peak = np.isfinite(mid) & (mid > y[:-2]) & (mid >= y[2:])
    peaks = np.nonzero(is_peak)[0] + 1
    proms = np.empty(peaks.size)
    for k, p in enumerate(peaks):
        higher_left = np.nonzero(y[:p] > y[p])[0]
        lo = higher_left[-1] + 1 if higher_left.size else 0
        higher_right = np.nonzero(y[p + 1:] > y[p])[0]
        hi = p + 1 + higher_right[0] if higher_right.size else y.size
        left_min = np.min(y[lo:p + 1])
        right_min = np.min(y[p:hi])
        proms[k] = y[p] - max(left_min, right_min)
    return peaks, proms


def _feature_energies(u: np.ndarray, g: np.ndarray, n: int) -> list[float]:
    """n feature energies, largest first: conductance peaks, then d²G/dV² minima (shoulders)."""
    span = u[-1] - u[0]
    inner = u < 0.8 * u[-1]
    peaks, proms = _find_peaks(np.where(inner, g, -np.inf))
    cands: list[tuple[float, float]] = []
    for p, prom in zip(peaks, proms, strict=True):
        if prom >= 1e-3:
            cands.append((float(prom) * 10.0, float(u[p])))
    d2 = np.gradient(np.gradient(g, u), u)
    sh, sproms = _find_peaks(np.where(inner & (u > 0.02 * span), -d2, -np.inf))
    scale_d2 = max(float(np.max(np.abs(d2[inner]))), 1e-12)
    for p, prom in zip(sh, sproms, strict=True):
        cands.append((float(prom) / scale_d2, float(u[p])))
    cands.sort(reverse=True)
    chosen: list[float] = []
    for _, e in cands:
        if all(abs(e - c) > max(0.15 * max(e, c), 2 * (u[1] - u[0])) for c in chosen):
            chosen.append(e)
        if len(chosen) == n:
            break
    if not chosen:
        chosen = [float(u[int(np.argmax(g))]) or 0.1 * span]
    while len(chosen) < n:
        chosen.append(min(chosen) / 3.0)
    chosen.sort(reverse=True)
    return [max(c, 1e-3 * span) for c in chosen]


def _half_width(u: np.ndarray, g: np.ndarray, e: float) -> float:
    """Rough half width at half height of the feature at ``e`` above the high-bias level."""
    base = float(np.median(g[u > 0.8 * u[-1]])) if np.any(u > 0.8 * u[-1]) else 1.0
    top = float(np.interp(e, u, g))
    half = base + 0.5 * (top - base)
    above = np.where((u > e) & ((g - half) * np.sign(top - base) < 0))[0]
    if above.size:
        return float(u[above[0]] - e) * 2.0
    return 0.5 * e


# --------------------------------------------------------------------------- results

@dataclass
class FitResult:
    """Outcome of one fit; JSON-serialisable via :meth:`to_dict`."""

    model: str
    dimension: int
    param_names: list[str]
    params: dict[str, dict]
    covariance: np.ndarray
    chi2: float
    n_points: int
    n_varying: int
    noise_sigma: float
    noise_source: str
    bias_window_mV: tuple[float, float]
    temperature_K: float
    success: bool
    message: str
    nfev: int = 0
    elapsed_s: float = 0.0
    weights: list[float] = field(default_factory=list)
    modulation_mV: float = 0.0
    notes: list[str] = field(default_factory=list)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    constraints: list[str] = field(default_factory=list)

    @property
    def values(self) -> dict[str, float]:
        return {k: v["value"] for k, v in self.params.items()}

    @property
    def stderr(self) -> dict[str, float | None]:
        return {k: v["stderr"] for k, v in self.params.items()}

    @property
    def varying(self) -> list[str]:
        return [k for k, v in self.params.items() if v["vary"] and not v.get("shared_with")]

    @property
    def correlation(self) -> np.ndarray:
        c = np.asarray(self.covariance, dtype=float)
        if c.size == 0:
            return c
        d = np.sqrt(np.clip(np.diag(c), 0, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            r = c / np.outer(d, d)
        return np.where(np.isfinite(r), r, 0.0)

    @property
    def chi2_red(self) -> float:
        dof = self.n_points - self.n_varying
        return self.chi2 / dof if dof > 0 else math.nan

    @property
    def aic(self) -> float:
        return self.chi2 + 2.0 * self.n_varying

    @property
    def bic(self) -> float:
        return self.chi2 + self.n_varying * math.log(max(self.n_points, 1))

    def gaps(self) -> list[Gap]:
        model = self.to_model()
        return model.gaps(model.values())

    def to_model(self) -> BTKModel:
        """A model holding these values, e.g. to warm-start the next spectrum of a series."""
        m = BTKModel(self.model, self.temperature_K, self.dimension, self.modulation_mV)
        for k, p in self.params.items():
            if k in m.params:
                m.params[k].set(value=p["value"], vary=p["vary"], min=p["min"], max=p["max"])
                m.params[k].shared_with = p.get("shared_with")
                m.params[k].stderr = p["stderr"]
        return m

    def eval(self, bias_mV) -> np.ndarray:
        return self.to_model().eval(bias_mV)

    def to_dict(self) -> dict:
        def num(x):
            return None if x is None or not math.isfinite(float(x)) else float(x)
        cov = np.asarray(self.covariance, dtype=float)
        return {
            "model": self.model, "dimension": self.dimension,
            "convention": f"{self.dimension}D",
            "param_names": list(self.param_names),
            "params": {k: {"value": num(v["value"]), "stderr": num(v["stderr"]),
                           "vary": bool(v["vary"]), "min": num(v["min"]), "max": num(v["max"]),
                           "shared_with": v.get("shared_with")}
                       for k, v in self.params.items()},
            "varying": self.varying,
            "covariance": [[num(x) for x in row] for row in cov.tolist()],
            "correlation": [[num(x) for x in row] for row in self.correlation.tolist()],
            "chi2": num(self.chi2), "chi2_red": num(self.chi2_red), "aic": num(self.aic),
            "bic": num(self.bic), "n_points": int(self.n_points),
            "n_varying": int(self.n_varying), "noise_sigma": num(self.noise_sigma),
            "noise_source": self.noise_source,
            "bias_window_mV": [float(self.bias_window_mV[0]), float(self.bias_window_mV[1])],
            "temperature_K": float(self.temperature_K), "weights": list(self.weights),
            "success": bool(self.success), "message": self.message, "nfev": int(self.nfev),
            "elapsed_s": float(self.elapsed_s), "modulation_mV": float(self.modulation_mV),
            "notes": list(self.notes), "constraints": list(self.constraints),
            "intervals": {k: [num(lo), num(hi)] for k, (lo, hi) in self.intervals.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> FitResult:
        def f(x):
            return math.nan if x is None else float(x)
        params = {k: {"value": f(v["value"]), "stderr": v.get("stderr"), "vary": v["vary"],
                      "min": -math.inf if v.get("min") is None else v["min"],
                      "max": math.inf if v.get("max") is None else v["max"],
                      "shared_with": v.get("shared_with")}
                  for k, v in d["params"].items()}
        cov = np.array([[f(x) for x in row] for row in d.get("covariance", [])], dtype=float)
        return cls(model=d["model"], dimension=int(d["dimension"]),
                   param_names=list(d["param_names"]), params=params, covariance=cov,
                   chi2=f(d["chi2"]), n_points=int(d["n_points"]),
                   n_varying=int(d["n_varying"]), noise_sigma=f(d["noise_sigma"]),
                   noise_source=d.get("noise_source", ""),
                   bias_window_mV=tuple(d["bias_window_mV"]),
                   temperature_K=f(d["temperature_K"]), success=bool(d["success"]),
                   message=d.get("message", ""), nfev=int(d.get("nfev", 0)),
                   elapsed_s=float(d.get("elapsed_s", 0.0)), weights=list(d.get("weights", [])),
                   modulation_mV=float(d.get("modulation_mV", 0.0)),
                   notes=list(d.get("notes", [])),
                   constraints=list(d.get("constraints", [])),
                   intervals={k: (f(lo), f(hi)) for k, (lo, hi)
                              in d.get("intervals", {}).items()})

    def summary(self) -> str:
        """Readable table of parameters with errors and fit statistics."""
        lines = [f"model {self.model} ({self.dimension}D), T = {self.temperature_K:g} K, "
                 f"bias {self.bias_window_mV[0]:g} to {self.bias_window_mV[1]:g} mV, "
                 f"N = {self.n_points}, σ = {self.noise_sigma:.3g} ({self.noise_source})"]
        for k in self.param_names:
            p = self.params[k]
            if not p["vary"] and k in ("scale", "slope", "curvature", "v0"):
                continue
            if p.get("shared_with"):
                state = f"= {p['shared_with']}"
            elif not p["vary"]:
                state = "fixed"
            else:
                state = f"± {p['stderr']:.3g}" if p["stderr"] is not None else "undetermined"
            if k in self.intervals:
                lo, hi = self.intervals[k]
                state += f"  [{lo:.5g}, {hi:.5g}] profile"
            lines.append(f"  {k:<12s} {p['value']:12.5g}  {state}")
        if self.modulation_mV:
            lines.append(f"  lock-in modulation {self.modulation_mV:g} mV rms (in the model)")
        lines.append(f"  χ²_red = {self.chi2_red:.3f}, AIC = {self.aic:.1f}, "
                     f"BIC = {self.bic:.1f}, {'converged' if self.success else 'FAILED'}: "
                     f"{self.message}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


# --------------------------------------------------------------------------- noise

#: Window and order of the local polynomial whose residuals measure the noise (see below).
NOISE_WINDOW, NOISE_ORDER = 9, 4


def estimate_noise(bias_mV, conductance_data) -> float:
    """Noise σ of one point: residuals of a local quartic through 9 neighbours, scaled to σ.

    A Savitzky–Golay residual r = (1 − H)y of white noise has variance σ²(1 − h₀), h₀ its
    central weight, so no model is needed. The quartic follows gap structure that third
    differences (used before) read as noise: on the seed's 3 K spectrum at 121 points they
    put σ 31 % high (χ²_red 0.6 for the right model); this is within 3 %. Points in sharp
    features fall outside the 4-MAD clip. Works in point order, so a smoothly non-uniform
    bias grid (dense near zero) is fine.
    """
    bias = np.asarray(bias_mV, dtype=float)
    g = np.asarray(conductance_data, dtype=float)
    order = np.argsort(bias, kind="stable")
    gg = g[order]
    if gg.size < 2 * NOISE_WINDOW:
        return math.nan
    half = NOISE_WINDOW // 2
    # the central row of the local fit's projection (numpy only: scipy.signal is slow to load)
    offsets = np.vander(np.arange(-half, half + 1, dtype=float), NOISE_ORDER + 1)
    weights = (offsets @ np.linalg.pinv(offsets))[half]
    kernel = -weights
    kernel[half] += 1.0
    r = np.convolve(gg, kernel[::-1], mode="valid")
    h0 = float(weights[half])
    med = float(np.median(r))
    mad = 1.4826 * float(np.median(np.abs(r - med)))
    if mad > 0:
        r = r[np.abs(r - med) < 4.0 * mad]
        clip_bias = 0.99933  # RMS of a normal variable clipped at ±4σ, in units of σ
    else:
        clip_bias = 1.0
    return float(np.sqrt(np.mean(r * r) / (1.0 - h0)) / clip_bias)


# --------------------------------------------------------------------------- fitting

def _bounds(model: BTKModel, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    lo = np.array([model.params[n].min for n in names])
    hi = np.array([model.params[n].max for n in names])
    return lo, hi


def _clip_into(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    span = np.where(np.isfinite(hi - lo), hi - lo, 1.0)
    eps = 1e-9 * np.maximum(span, 1.0)
    return np.minimum(np.maximum(x, lo + eps), hi - eps)


def _start_points(model: BTKModel, names: list[str], n_starts: int) -> list[dict[str, float]]:
    """Starts around the guess: Γ, Z and w varied, Δ kept (it is well located by the peaks)."""
    base = model.values()
    if n_starts <= 1:
        return [base]
    n = len(model.components)
    variants = []
    factors = [(1.0, 1.0, None), (0.5, 0.6, 0.3), (1.6, 1.5, 0.7), (0.7, 2.0, 0.5),
               (1.3, 0.4, 0.4), (0.4, 1.0, 0.6)]
    for gf, zf, w in factors[:n_starts]:
        v = dict(base)
        for i in range(1, n + 1):
            if f"gamma{i}" in names:
                v[f"gamma{i}"] = base[f"gamma{i}"] * gf
            if f"z{i}" in names:
                v[f"z{i}"] = min(max(base[f"z{i}"] * zf, 0.05), 5.0)
            if f"alpha{i}" in names:
                v[f"alpha{i}"] = (0.1 + 0.6 * (len(variants) % 2)) * _ALPHA_MAX
        if w is not None and "weight1" in names:
            v["weight1"] = w
        variants.append(v)
    # a start with the smaller gap placed at the alternative shoulder guards against d+d's
    # known degeneracy (physics.md §3: Δ2 ends in different minima from different starts)
    if n >= 2 and "delta2" in names and len(variants) < n_starts + 1:
        v = dict(base)
        v["delta2"] = min(base["delta1"] * 0.6, max(base["delta2"] * 2.0, base["delta2"]))
        variants.append(v)
    return variants


def _dedupe(values: Iterable[float], rel: float = 0.06) -> list[float]:
    out: list[float] = []
    for v in sorted(values):
        if not out or v > out[-1] * (1.0 + rel) + 1e-12:
            out.append(v)
    return out


def _library_seeds(model: BTKModel, names: list[str], bias: np.ndarray, g: np.ndarray,
                   n_keep: int) -> list[dict[str, float]] | None:
    """Starts for a two-gap s/d model from a library of single-gap spectra (global stage).

    Each component's spectrum is computed once per candidate (Δ, Γ, Z, α) on a decimated bias
    grid and coarse grids; every pair is then combined with its least-squares weight in closed
    form (G = w·G1 + (1 − w)·G2 is linear in w), so N1 + N2 forward evaluations score N1 × N2
    starts. Returns the best ``n_keep`` parameter sets with distinct (Δ1, Δ2), or ``None``
    when the model is not a two-gap s/d model.
    """
    comps = model.components
    if len(comps) != 2 or any(c not in ("s", "d") for c in comps):
        return None
    base = model.values()
    step = max(1, bias.size // _SCREEN_POINTS)
    b, y = bias[step // 2::step], g[step // 2::step]
    shifted = b - base["v0"]
    # G = pre·[(1 − p)·(w·G1 + (1 − w)·G2) + p]: still linear in w after moving pre·p to y
    p_norm = base["p_normal"]
    pre = model.background(shifted, base) * (1.0 - p_norm)
    y = y - model.background(shifted, base) * p_norm
    t = base["temperature"]

    def cands(name: str, values: Iterable[float]) -> list[float]:
        p = model.params[name]
        if name not in names:
            return [base[name]]
        return _dedupe(min(max(float(v), p.min), p.max) for v in values)

    # Δ candidates: a geometric grid over the bias window (the guess can pick a noise bump)
    # plus the guessed feature energies; both components draw from the same list and share
    # one cache of spectra when they have the same symmetry.
    v_edge = float(np.max(np.abs(b)))
    d_lo = max(2.0 * K_B_MEV_PER_K * t, 0.02 * v_edge)
    grid = list(np.geomspace(d_lo, 0.85 * v_edge, _SCREEN_DELTAS)) if d_lo < 0.85 * v_edge \
        else [0.5 * v_edge]
    guesses = [base["delta1"], base["delta2"]]
    cache: dict[tuple, np.ndarray] = {}
    tables = []
    for i, sym in enumerate(comps, start=1):
        rows, specs = [], []
        g_f, z_v = ((0.1, 0.3, 0.6), (0.25, 0.6, 1.5)) if sym == "s" else \
            ((0.15, 0.45), (0.3, 1.0))
        for d in cands(f"delta{i}", grid + guesses):
            for gm in cands(f"gamma{i}", (d * f for f in g_f)):
                for z in cands(f"z{i}", z_v):
                    alphas = [0.0]
                    if sym == "d":
                        name = f"alpha{i}"
                        src = model.params[name].shared_with or name
                        alphas = cands(src, (f * _ALPHA_MAX for f in _SCREEN_ALPHAS))
                    for a in alphas:
                        key = (sym, d, gm, z, a)
                        if key not in cache:
                            gap = Gap(d, gm, z, sym, a, 1.0)
                            cache[key] = screening_conductance(shifted, t, [gap],
                                                               model.dimension,
                                                               _SCREEN_RESOLUTION,
                                                               model.modulation_mV)
                        specs.append(cache[key])
                        rows.append({f"delta{i}": d, f"gamma{i}": gm, f"z{i}": z,
                                     f"alpha{i}": a})
        tables.append((rows, pre * np.array(specs)))
    (rows1, a_mat), (rows2, b_mat) = tables
    ab = a_mat @ b_mat.T
    ya, yb = a_mat @ y, b_mat @ y
    aa, bb = np.einsum("ij,ij->i", a_mat, a_mat), np.einsum("ij,ij->i", b_mat, b_mat)
    c_d = ya[:, None] - yb[None, :] - ab + bb[None, :]  # <y − B, A − B>
    d_d = aa[:, None] - 2.0 * ab + bb[None, :]  # |A − B|²
    c_c = float(y @ y) - 2.0 * yb + bb  # |y − B|²
    pw = model.params["weight1"]
    if "weight1" in names:
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.clip(np.where(d_d > 0, c_d / d_d, 0.5), pw.min, pw.max)
    else:
        w = np.full(ab.shape, base["weight1"])
    chi = c_c[None, :] - 2.0 * w * c_d + w * w * d_d
    # Δ1 ≥ Δ2: each swap-symmetric pair once; for s+d against d+s it is what the names mean
    d1 = np.array([r["delta1"] for r in rows1])
    d2 = np.array([r["delta2"] for r in rows2])
    chi = np.where(d1[:, None] >= d2[None, :], chi, np.inf)
    if comps == ("d", "d") and model.params["alpha2"].shared_with == "alpha1":
        a1 = np.array([r["alpha1"] for r in rows1])
        a2 = np.array([r["alpha2"] for r in rows2])
        chi = np.where(np.isclose(a1[:, None], a2[None, :]), chi, np.inf)
    order = [np.unravel_index(f, chi.shape) for f in np.argsort(chi, axis=None)[:4000]]
    order = [(i, j) for i, j in order if np.isfinite(chi[i, j])]
    picked: list[tuple[int, int]] = []
    # the best pair for each α candidate first (α is the least visible, most degenerate
    # direction: a start on the wrong side of it ends in a wrong basin), then distinct Δs
    seen_alpha: set[float] = set()
    for i, j in order:
        a = round(rows1[i]["alpha1"], 6)
        if a not in seen_alpha:
            seen_alpha.add(a)
            picked.append((i, j))
    picked = picked[:n_keep]
    for i, j in order:
        if len(picked) >= n_keep:
            break
        if all(abs(rows1[i]["delta1"] / rows1[p]["delta1"] - 1) > 0.1
               or abs(rows2[j]["delta2"] / rows2[q]["delta2"] - 1) > 0.2 for p, q in picked):
            picked.append((i, j))
    seeds: list[dict[str, float]] = []
    for i, j in picked:
        v = dict(base)
        v.update({k: val for k, val in rows1[i].items() if k in v})
        v.update({k: val for k, val in rows2[j].items() if k in v})
        v["weight1"] = float(w[i, j])
        seeds.append(model._resolve_shared(v))
    return seeds or None


def fit_spectrum(bias_mV, conductance_data, model: BTKModel | str = "s+s", *,
                 temperature_K: float | None = None, dimension: int | None = None,
                 sigma: float | None = None, bias_window: tuple[float, float] | None = None,
                 guess: bool = True, n_starts: int | None = None,
                 warm_start: FitResult | BTKModel | None = None,
                 max_nfev: int | None = None, modulation_mV: float | None = None,
                 profile: bool | Sequence[str] = False) -> FitResult:
    """Fit a normalised spectrum and return a :class:`FitResult`.

    ``model``: a :class:`BTKModel` (its fixed/bounded/shared settings are honoured) or a name
    such as ``"s+s"``. ``sigma``: the noise of one point (default: estimated, see
    :func:`estimate_noise`). ``bias_window``: (min, max) mV range of points used.
    ``warm_start``: a previous result or model whose values start this fit (no guess).
    ``n_starts``: seeds refined after the global stage (default 4; 1 = the guess alone, the
    default with ``warm_start``). ``max_nfev`` bounds the final full-resolution polish.
    ``modulation_mV``: rms lock-in excitation across the junction (default: the model's
    ``modulation_mV``); the model is then broadened as the lock-in measures it.
    ``profile``: True (the gaps) or parameter names: add profile-likelihood 68.3 % intervals
    (``result.intervals``, see :func:`profile_interval`).

    Two-gap s/d models (s+s, s+d, d+s, d+d) get a global stage first (see
    :func:`_library_seeds`): the d+d model is degenerate (physics.md §3) and a local fit from
    a guess lands in whichever basin is nearest. By default Δ ≤ the bias edge, Γ ≤ Δ (fitted
    as Γ = ρΔ, 0 ≤ ρ ≤ 1, covariance transformed back to Γ) and Γ ≥ max(0.05 meV, k_BT/4):
    Γ ≪ k_BT is invisible after smearing but needs very fine grids. Bounds you set yourself
    are kept.
    """
    t0 = time.perf_counter()
    bias = np.asarray(bias_mV, dtype=float).ravel()
    g = np.asarray(conductance_data, dtype=float).ravel()
    if bias.shape != g.shape or bias.size < 8:
        raise ValueError(f"bias_mV and conductance must have the same length ≥ 8 "
                         f"(got {bias.size} and {g.size})")
    ok = np.isfinite(bias) & np.isfinite(g)
    bias, g = bias[ok], g[ok]
    if bias_window is not None:
        lo, hi = float(bias_window[0]), float(bias_window[1])
        if not lo < hi:
            raise ValueError(f"bias_window = {bias_window!r}: allowed is (min, max), min < max")
        keep = (bias >= lo) & (bias <= hi)
        bias, g = bias[keep], g[keep]
        if bias.size < 8:
            raise ValueError(f"bias_window = {bias_window!r} keeps {bias.size} points; "
                             "need at least 8")
    if isinstance(model, str):
        model = BTKModel(model, 3.0 if temperature_K is None else temperature_K,
                         2 if dimension is None else dimension)
    else:
        model = model.copy()
        if temperature_K is not None:
            model["temperature"].set(value=temperature_K)
        if dimension is not None:
            model.dimension = int(dimension)
    if modulation_mV is not None:
        model.modulation_mV = _checked_modulation(modulation_mV)
    if warm_start is not None:
        src = warm_start.to_model() if isinstance(warm_start, FitResult) else warm_start
        for k, p in src.params.items():
            if k in model.params and k != "temperature" and model.params[k].vary:
                model.params[k].value = min(max(p.value, model.params[k].min),
                                            model.params[k].max)
    elif guess:
        model.guess(bias, g)
    v_edge = float(np.max(np.abs(bias)))
    gamma_below_delta: list[int] = []  # components fitted with Γ = ρΔ, 0 ≤ ρ ≤ 1
    for i in range(1, len(model.components) + 1):
        p = model.params[f"delta{i}"]
        if p.max == 500.0 and p.vary:  # default bound: a gap beyond the data is unconstrained
            p.max = v_edge
            p.value = min(p.value, 0.9 * v_edge)
        p = model.params[f"gamma{i}"]
        if p.vary and p.min == _DEFAULT_GAMMA_MIN:
            # Γ ≪ k_BT is invisible after thermal smearing yet costs fine grids: floor it
            p.min = max(0.05, 0.25 * K_B_MEV_PER_K * model.params["temperature"].value)
            p.value = max(p.value, p.min)
        if p.vary and p.max == 500.0:
            p.max = v_edge
            p.value = min(p.value, p.max)
            if model.params[f"delta{i}"].vary and not p.shared_with:
                gamma_below_delta.append(i)
    if sigma is None:
        sigma = estimate_noise(bias, g)
        source = "estimated from point-to-point scatter"
    else:
        source = "given"
    if not (sigma and math.isfinite(sigma) and sigma > 0):
        sigma, source = 1.0, "unknown (σ = 1 used; χ² is a plain sum of squares)"
    constraints = [f"gamma{i}<=delta{i}" for i in gamma_below_delta]
    if len(model.components) == 2 and model.components[0] != model.components[1]:
        constraints.append("delta2<=delta1")
    prob = _Problem(model, bias, g, float(sigma), constraints)
    names = prob.names
    residual, to_internal = prob.residual, prob.pack

    if n_starts is None:
        two_gap = len(model.components) == 2 and set(model.components) <= {"s", "d"}
        n_starts = 1 if warm_start is not None else (
            _DEFAULT_SEEDS if two_gap else (3 if model.components.count("d") >= 2 else 1))
    seeds = _library_seeds(model, names, bias, g, n_starts) if n_starts > 1 else None
    nfev = 0
    if seeds is not None:
        # Global stage: a library of single-gap spectra combined pairwise with the optimal
        # weight, then the best distinct (Δ1, Δ2) seeds refined on a decimated bias grid and
        # coarse energy/angle grids; only the winner is polished at full resolution.
        step = max(1, bias.size // _SCREEN_POINTS)
        b_c, g_c = bias[step // 2::step], g[step // 2::step]

        coarse = _Problem(model, b_c, g_c, float(sigma), constraints, _SCREEN_RESOLUTION)

        def coarse_fit(x0: np.ndarray, n: int):
            return coarse.solve(x0, n, 1e-5)

        # successive halving: every seed gets a few steps, the better half continues
        sols = [coarse_fit(to_internal(v), _COARSE_FIRST_STEPS) for v in seeds]
        nfev += sum(sol.nfev + sol.njev for sol in sols)
        sols.sort(key=lambda sol: sol.cost)
        keep = _COARSE_KEEP
        refined = [sols[0].x]
        for sol in sols[:keep]:
            if sol.status == 0:  # stopped by the step budget, not converged: continue
                sol = coarse_fit(sol.x, 25)
                nfev += sol.nfev + sol.njev
            refined.append(sol.x)
        # rank the refined seeds at full resolution (the coarse grids may misrank near ties)
        full_cost = [float(np.sum(residual(x) ** 2)) for x in refined]
        nfev += len(refined)
        x_starts = [refined[int(np.argmin(full_cost))]]
    else:
        starts = _start_points(model, names, n_starts)
        # a cheap screen: one evaluation per start, then full fits from the best few
        scored = []
        for v in starts:
            x0 = to_internal(v)
            r = residual(x0)
            scored.append((float(r @ r), x0))
        scored.sort(key=lambda s: s[0])
        nfev += len(starts)
        x_starts = [x for _, x in scored[:1 if n_starts <= 3 else 2]]
    best = None
    tol = 1e-6 if seeds is not None else 1e-8  # seeded: already in the basin; Δχ² ~ 1e-3
    for x0 in x_starts:
        sol = prob.solve(x0, max_nfev or 100, tol)
        nfev += sol.nfev + sol.njev
        if best is None or sol.cost < best.cost:
            best = sol
    assert best is not None
    result = prob.result(best, nfev, source)
    if profile:
        wanted = [k for k in (("delta1", "delta2", "delta3") if profile is True else profile)
                  if k in result.varying]
        for k in wanted:
            result.intervals[k] = _profile(prob, result, k, _PROFILE_LEVEL)
        if wanted:
            result.notes.append(f"intervals: profile likelihood, {_PROFILE_LEVEL:.1%} "
                                f"(Δχ² ≤ {_delta_chi2(_PROFILE_LEVEL):.3g}), others refitted")
    result.elapsed_s = time.perf_counter() - t0
    return result


_PROFILE_LEVEL = 0.683
_DEGENERATE_SV = 1e-6  # singular value of the column-scaled Jacobian: cond(JᵀJ) > 1e12


class _Problem:
    """One least-squares problem: the free parameters, their internal coordinates, χ².

    Internal coordinates carry the physics constraints as box bounds: Γᵢ = ρᵢΔᵢ with
    ρᵢ ∈ [0, 1] ("gammaN<=deltaN") and Δ2 = qΔ1 with q ∈ [0, 1] ("delta2<=delta1": the
    labels keep their meaning — in d+s the d gap is Δ1 and the larger one; same-symmetry
    pairs are relabelled after the fit instead, see :func:`_relabelled`). Both work by
    name, so a profile that fixes Δ1 keeps Γ1 ≤ Δ1 and Δ2 ≤ Δ1. Errors are computed in the
    user's coordinates from a central-difference Jacobian at the solution.
    """

    def __init__(self, model: BTKModel, bias: np.ndarray, g: np.ndarray, sigma: float,
                 constraints: Sequence[str], resolution: float = 1.0) -> None:
        self.model, self.bias, self.g, self.sigma = model, bias, g, sigma
        self.resolution = resolution  # > 1: the coarse grids of the global stage
        self._last: tuple[bytes, ModelParts] | None = None
        self.constraints = list(constraints)
        self.names = model.free_names()
        if not self.names:
            raise ValueError(f"model {model.name} has no varying parameters")
        self.lo_orig, self.hi_orig = _bounds(model, self.names)
        self.ratios: list[tuple[str, str]] = []  # (internal ratio name, reference name)
        for c in self.constraints:
            small, big = c.split("<=")
            if small in self.names and big in model.params:
                self.ratios.append((small, big))
            elif big in self.names and small in model.params and not model[small].vary:
                i = self.names.index(big)  # the reference varies, the small one is fixed
                self.lo_orig[i] = max(self.lo_orig[i], model[small].value)
        self.lo, self.hi = self.lo_orig.copy(), self.hi_orig.copy()
        for small, _big in self.ratios:
            i = self.names.index(small)
            self.lo[i], self.hi[i] = 0.0, 1.0
        # references first: Δ2 = qΔ1 must be known before Γ2 = ρΔ2
        self.ratios.sort(key=lambda r: r[0].startswith("gamma"))

    def unpack(self, x: np.ndarray) -> dict[str, float]:
        m = self.model
        vals = {k: p.value for k, p in m.params.items()}
        vals.update(zip(self.names, (float(v) for v in x), strict=True))
        for small, big in self.ratios:
            p = m.params[small]
            vals[small] = min(max(vals[small] * vals[big], p.min), p.max)
        return m._resolve_shared(vals)

    def pack(self, values: dict[str, float]) -> np.ndarray:
        """Internal coordinates of a full value set (clipped into the bounds)."""
        vals = {k: float(values.get(k, p.value)) for k, p in self.model.params.items()}
        orig = _clip_into(np.array([vals[k] for k in self.names]), self.lo_orig, self.hi_orig)
        vals.update(zip(self.names, orig, strict=True))
        x = dict(vals)
        for small, big in self.ratios:
            x[small] = min(vals[small] / max(vals[big], 1e-12), 1.0)
        return _clip_into(np.array([x[k] for k in self.names]), self.lo, self.hi)

    def _parts(self, x: np.ndarray) -> ModelParts:
        """The model at x, kept for the Jacobian least_squares asks for at the same x next
        (keyed by the fixed values too: a profile changes them between solves)."""
        key = x.tobytes() + np.array([p.value for p in self.model.params.values()]).tobytes()
        if self._last is None or self._last[0] != key:
            parts = self.model.parts(self.bias, self.unpack(x), resolution=self.resolution,
                                     z_derivatives=True)
            self._last = (key, parts)
        return self._last[1]

    def residual(self, x: np.ndarray) -> np.ndarray:
        return (self._parts(x).model - self.g) / self.sigma

    def jac(self, x: np.ndarray) -> np.ndarray:
        """∂r/∂x in internal coordinates: :func:`model_jacobian` and the chain rule of the
        ratios (Γᵢ = ρᵢΔᵢ, Δ2 = qΔ1)."""
        parts = self._parts(x)
        j_user = model_jacobian(self.model, parts, self.names) / self.sigma
        if not self.ratios:
            return j_user
        idx = {k: i for i, k in enumerate(self.names)}
        d = np.eye(len(self.names))
        for small, big in self.ratios:  # references first, as in unpack
            i = idx[small]
            d[i] = x[i] * d[idx[big]] if big in idx else 0.0
            d[i, i] += parts.values[big]
        return j_user @ d

    def solve(self, x0: np.ndarray, max_nfev: int, tol: float):
        return least_squares(self.residual, _clip_into(x0, self.lo, self.hi), jac=self.jac,
                             bounds=(self.lo, self.hi), method="trf", x_scale="jac",
                             max_nfev=max_nfev, xtol=tol, ftol=tol, gtol=tol)

    def jacobian(self, values: dict[str, float]) -> np.ndarray:
        """∂r/∂p in the user's coordinates (the covariance): central differences where
        :func:`model_jacobian` differences, one-sided at a bound."""
        parts = self.model.parts(self.bias, values, resolution=self.resolution,
                                 z_derivatives=True)
        return model_jacobian(self.model, parts, self.names, central=True) / self.sigma

    def result(self, sol, nfev: int, source: str) -> FitResult:
        m, names = self.model, self.names
        values, swapped = _relabelled(m, self.unpack(sol.x))
        cov, notes = _covariance_notes(self.jacobian(values), names)
        stderr = np.sqrt(np.diag(cov)) if cov.size else np.array([])
        params = {}
        for k, p in m.params.items():
            src = k if k in names else (p.shared_with if p.shared_with in names else None)
            err = None
            if src is not None:
                e = float(stderr[names.index(src)])
                err = e if math.isfinite(e) else None
            params[k] = {"value": float(values[k]), "stderr": err, "vary": p.vary,
                         "min": p.min, "max": p.max, "shared_with": p.shared_with}
        message = sol.message
        if swapped:
            message += "; components relabelled so that delta1 > delta2"
        at_bound = [k for i, k in enumerate(names)
                    if np.isclose(values[k], self.lo_orig[i], atol=1e-6)
                    or np.isclose(values[k], self.hi_orig[i], atol=1e-6)]
        at_bound += [f"{s} = {b}" for s, b in self.ratios if s in names
                     and np.isclose(values[s], values[b], rtol=1e-6)]
        if at_bound:
            message += f"; at a bound: {', '.join(at_bound)}"
            notes.append(f"at a bound: {', '.join(at_bound)} — the error there is one-sided; "
                         "use the profile interval")
        return FitResult(model=m.name, dimension=m.dimension, param_names=list(m.params),
                         params=params, covariance=cov, chi2=2.0 * float(sol.cost),
                         n_points=int(self.bias.size), n_varying=len(names),
                         noise_sigma=float(self.sigma), noise_source=source,
                         bias_window_mV=(float(self.bias.min()), float(self.bias.max())),
                         temperature_K=float(values["temperature"]),
                         success=bool(sol.status > 0), message=message, nfev=int(nfev),
                         weights=m.weights(values), modulation_mV=m.modulation_mV,
                         notes=notes, constraints=list(self.constraints))


_SWAPPED = ("delta", "gamma", "z", "alpha", "anisotropy")


def _relabelled(model: BTKModel, values: dict[str, float]) -> tuple[dict[str, float], bool]:
    """Two same-symmetry gaps with Δ2 > Δ1, relabelled so Δ1 ≥ Δ2 (the model is symmetric).

    Same-symmetry models are not constrained while fitting (a free crossing costs fewer
    steps); only a symmetric set of fixed/free parameters is swapped, so a value the user
    fixed stays on its label. Mixed models (d+s) are constrained instead: there the labels
    are different physics.
    """
    comps = model.components
    if not (len(comps) == 2 and comps[0] == comps[1] and values["delta2"] > values["delta1"]):
        return values, False
    pairs = [(f"{b}1", f"{b}2") for b in _SWAPPED if f"{b}1" in values]
    if any(model[a].vary != model[b].vary for a, b in pairs) or not model["weight1"].vary:
        return values, False
    new = dict(values)
    for a, b in pairs:
        new[a], new[b] = values[b], values[a]
    new["weight1"] = 1.0 - values["weight1"]
    return new, True


def _covariance_notes(jac: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """(JᵀJ)⁻¹ with NaN for undetermined parameters, and a note naming them and why.

    Undetermined: the model does not depend on the parameter (a zero Jacobian column), or it
    lies along a direction the data cannot fix (a near-zero singular value of the
    column-scaled Jacobian: the covariance is singular there). Those get NaN variance —
    reported as stderr None, never ± 0; the others come from the pseudo-inverse, i.e. with
    the degenerate combination held at its best value.
    """
    k = len(names)
    notes: list[str] = []
    cov = np.full((k, k), np.nan)
    if k == 0:
        return cov, notes
    norms = np.linalg.norm(jac, axis=0)
    dead = ~np.isfinite(norms) | (norms <= 1e-10 * max(float(np.nanmax(norms)), 1e-300))
    if np.any(dead):
        notes.append(f"undetermined: {', '.join(n for n, d in zip(names, dead, strict=True) if d)}"
                     " — the model does not depend on it here (stderr None)")
    live = np.nonzero(~dead)[0]
    if live.size == 0:
        return cov, notes
    js = jac[:, live] / norms[live]
    _, sv, vt = np.linalg.svd(js, full_matrices=False)
    weak = sv < _DEGENERATE_SV * sv[0]
    degenerate = np.zeros(live.size, dtype=bool)
    for row in vt[weak]:
        degenerate |= np.abs(row) > 0.1
    inv_sv2 = np.where(weak, 0.0, 1.0 / np.where(weak, 1.0, sv) ** 2)
    sub = (vt.T * inv_sv2) @ vt / np.outer(norms[live], norms[live])
    sub[degenerate, :] = np.nan
    sub[:, degenerate] = np.nan
    cov[np.ix_(live, live)] = sub
    if np.any(degenerate):
        notes.append("undetermined: "
                     f"{', '.join(names[i] for i, d in zip(live, degenerate, strict=True) if d)}"
                     " — degenerate with each other (covariance singular; stderr None)")
    return cov, notes


def _delta_chi2(level: float) -> float:
    """Δχ² of a one-parameter profile interval at confidence ``level`` (1 for 68.3 %)."""
    from scipy.special import erfinv

    return float((math.sqrt(2.0) * erfinv(level)) ** 2)


def _profile(prob: _Problem, result: FitResult, name: str, level: float
             ) -> tuple[float, float]:
    """Profile-likelihood interval of ``name``: where min over the others of χ² − χ²_min ≤ q.

    Steps out from the best value (in units of its standard error, doubling) until Δχ²
    exceeds q, then brackets the crossing by secant steps on √Δχ² (linear for a parabola).
    An end that reaches a parameter bound is that bound (the data do not close the interval
    there; a note says so). A lower χ² met on the way is reported in the notes.
    """
    m = prob.model.copy()
    best_vals = result.values
    p = m[name]
    lo_b, hi_b = p.min, p.max
    for small, big in (c.split("<=") for c in prob.constraints):
        if name == small and big in best_vals:
            hi_b = min(hi_b, best_vals[big]) if not m[big].vary else hi_b
    p.vary = False
    constraints = list(prob.constraints)
    if len(m.components) == 2 and "delta2<=delta1" not in constraints:
        # same-symmetry pair: keep the labels of the best fit, or stepping Δ1 down would
        # walk into the relabelled copy of the minimum and never close the interval
        constraints.append("delta2<=delta1")
    sub = _Problem(m, prob.bias, prob.g, prob.sigma, constraints)
    q = _delta_chi2(level)
    chi0 = result.chi2
    x_best = sub.pack(best_vals)
    center = best_vals[name]
    err = result.stderr.get(name)
    h0 = err if err is not None and err > 0 else 0.05 * max(abs(center), 1e-2)

    def dchi(value: float, x0: np.ndarray) -> tuple[float, np.ndarray]:
        p.value = value
        sol = sub.solve(x0, 60, 1e-7)
        return 2.0 * float(sol.cost) - chi0, sol.x

    ends = []
    for sign in (-1.0, 1.0):
        bound = lo_b if sign < 0 else hi_b
        inner, d_inner, x_in = center, 0.0, x_best
        step = h0
        outer = None
        for _ in range(12):
            trial = center + sign * step
            if (trial - bound) * sign >= 0:
                trial = bound
            d, x_t = dchi(trial, x_in)
            if d < -0.01 * q:
                result.notes.append(f"profile of {name} met a lower χ² (by {-d:.3g}) at "
                                    f"{trial:.5g}: the fit was not at the global minimum")
            if d > q:
                outer, d_outer = trial, d
                break
            inner, d_inner, x_in = trial, max(d, 0.0), x_t
            if trial == bound:
                break
            step *= 2.0
        if outer is None:
            result.notes.append(f"profile interval of {name} reaches the bound {bound:g}: the "
                                "data do not close it on that side")
            ends.append(inner)
            continue
        for _ in range(8):  # secant on √Δχ², kept inside the bracket
            si, so = math.sqrt(d_inner), math.sqrt(d_outer)
            frac = (math.sqrt(q) - si) / (so - si) if so > si else 0.5
            trial = inner + min(max(frac, 0.1), 0.9) * (outer - inner)
            d, x_t = dchi(trial, x_in)
            if abs(d - q) < 0.02 * q:
                inner = outer = trial
                break
            if d < q:
                inner, d_inner, x_in = trial, max(d, 0.0), x_t
            else:
                outer, d_outer = trial, d
        ends.append(0.5 * (inner + outer))
    return float(ends[0]), float(ends[1])


def profile_interval(bias_mV, conductance_data, result: FitResult, name: str,
                     level: float = _PROFILE_LEVEL) -> tuple[float, float]:
    """Profile-likelihood confidence interval (low, high) of parameter ``name`` of ``result``.

    For each trial value of ``name`` the other free parameters are refitted; the interval is
    where χ² rises by less than q(level) above the best fit (q = 1 for 68.3 %). Unlike
    ±√(JᵀJ)⁻¹ it follows a curved, bounded or asymmetric χ² valley (the Δ-Γ-Z degeneracy).
    ``bias_mV``/``conductance_data``: the spectrum that was fitted (the fit's bias window is
    applied again). Notes about open ends or a lower minimum go into ``result.notes``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level = {level!r} is outside the allowed range 0 to 1 (exclusive)")
    if name not in result.varying:
        raise ValueError(f"{name!r} is not a varying parameter of this fit (varying: "
                         f"{', '.join(result.varying)})")
    bias = np.asarray(bias_mV, dtype=float).ravel()
    g = np.asarray(conductance_data, dtype=float).ravel()
    lo, hi = result.bias_window_mV
    keep = np.isfinite(bias) & np.isfinite(g) & (bias >= lo) & (bias <= hi)
    prob = _Problem(result.to_model(), bias[keep], g[keep], result.noise_sigma,
                    result.constraints)
    interval = _profile(prob, result, name, level)
    result.intervals[name] = interval
    return interval


# --------------------------------------------------------------------------- comparison

@dataclass
class ModelComparison:
    """Models ranked by AIC, with ΔAIC, ΔBIC, Akaike weights and a verdict."""

    results: list[FitResult]
    verdict: str

    def table(self) -> list[dict]:
        best_aic = min(r.aic for r in self.results)
        best_bic = min(r.bic for r in self.results)
        rel = np.array([math.exp(-0.5 * (r.aic - best_aic)) for r in self.results])
        w = rel / rel.sum()
        return [{"model": r.model, "n_varying": r.n_varying, "chi2_red": r.chi2_red,
                 "aic": r.aic, "bic": r.bic, "delta_aic": r.aic - best_aic,
                 "delta_bic": r.bic - best_bic, "akaike_weight": float(wi),
                 "delta1": r.values.get("delta1"), "delta2": r.values.get("delta2"),
                 "success": r.success}
                for r, wi in zip(self.results, w, strict=True)]

    def to_dict(self) -> dict:
        return {"ranking": self.table(), "verdict": self.verdict,
                "results": [r.to_dict() for r in self.results]}

    def summary(self) -> str:
        rows = [f"{'model':<8s}{'k':>3s}{'χ²_red':>9s}{'AIC':>11s}{'ΔAIC':>9s}{'ΔBIC':>9s}"
                f"{'weight':>8s}{'Δ1':>9s}{'Δ2':>9s}"]
        for t in self.table():
            d2 = "" if t["delta2"] is None else f"{t['delta2']:9.3f}"
            rows.append(f"{t['model']:<8s}{t['n_varying']:>3d}{t['chi2_red']:9.3f}"
                        f"{t['aic']:11.1f}{t['delta_aic']:9.1f}{t['delta_bic']:9.1f}"
                        f"{t['akaike_weight']:8.3f}{t['delta1']:9.3f}{d2}")
        rows.append(self.verdict)
        return "\n".join(rows)


def verdict(results: Sequence[FitResult]) -> str:
    """Burnham-Anderson reading of ΔAIC: < 2 undecided, 2-10 favoured, > 10 decisive.

    ΔAIC < 2 means the runner-up keeps > 37 % of the best model's likelihood weight, i.e. the
    data cannot tell them apart; > 10 leaves it < 0.7 %. BIC is checked too: when AIC and BIC
    pick different models the verdict says so (AIC favours extra parameters at large N).
    """
    ranked = sorted(results, key=lambda r: r.aic)
    best = ranked[0]
    if len(ranked) == 1:
        return f"only {best.model} was fitted"
    second = ranked[1]
    d = second.aic - best.aic
    bic_best = min(results, key=lambda r: r.bic)
    note = "" if bic_best.model == best.model else (
        f" (BIC prefers {bic_best.model}: the extra parameters are not clearly needed)")
    sigma_note = "" if best.noise_source == "given" else (
        " [σ estimated from the data; correlated lock-in noise makes ΔAIC overconfident]")
    if d < 2.0:
        tied = [r.model for r in ranked if r.aic - best.aic < 2.0]
        return (f"cannot decide: {', '.join(tied)} fit equally well (ΔAIC < 2)" + note
                + sigma_note)
    if d < 10.0:
        return (f"{best.model} favoured over {second.model} (ΔAIC = {d:.1f}; 2-10 is positive "
                "but not decisive)" + note + sigma_note)
    return f"{best.model} decisively preferred (ΔAIC = {d:.1f} > 10 to {second.model})" + note \
        + sigma_note


def compare_models(bias_mV, conductance_data,
                   models: Iterable[str | BTKModel] = STANDARD_MODELS, *,
                   temperature_K: float = 3.0, dimension: int = 2, sigma: float | None = None,
                   bias_window: tuple[float, float] | None = None) -> ModelComparison:
    """Fit each model to the same data with the same σ and rank them by AIC."""
    if sigma is None:
        sigma = estimate_noise(bias_mV, conductance_data)
    results = []
    for m in models:
        model = BTKModel(m, temperature_K, dimension) if isinstance(m, str) else m
        results.append(fit_spectrum(bias_mV, conductance_data, model, sigma=sigma,
                                    temperature_K=temperature_K, dimension=dimension,
                                    bias_window=bias_window))
    results.sort(key=lambda r: r.aic)
    return ModelComparison(results, verdict(results))


# --------------------------------------------------------------------------- temperature series

def fit_series(spectra: Sequence[tuple[np.ndarray, np.ndarray, float]],
               model: BTKModel | str = "s+s", *, dimension: int = 2,
               sigma: float | None = None,
               bias_window: tuple[float, float] | None = None) -> list[FitResult]:
    """Fit each (bias, G, T) spectrum in turn, each warm-started from the previous result.

    Order the spectra from low to high temperature: the well-resolved low-T gaps then guide
    the broadened high-T ones. Δ(T) → Tc is ``daqapp.analysis.gaps.fit_gap_temperature``.
    """
    results: list[FitResult] = []
    base = model if isinstance(model, BTKModel) else BTKModel(model, 3.0, dimension)
    for bias, g, t in spectra:
        m = base.copy()
        m["temperature"].set(value=float(t))
        prev = results[-1] if results else None
        results.append(fit_spectrum(bias, g, m, sigma=sigma, bias_window=bias_window,
                                    warm_start=prev))
    return results


@dataclass
class GlobalFitResult:
    """A joint fit of several spectra with some parameters shared by all of them.

    ``independent``: the per-spectrum fits it started from; ``sharing_test``: the F-test of
    the joint fit against them (Δχ², Δdof, F, p); ``notes``: warnings, e.g. when sharing
    raises χ² significantly (the shared parameters differ between the spectra).
    """

    shared: list[str]
    results: list[FitResult]
    chi2: float
    n_points: int
    n_varying: int
    independent: list[FitResult] = field(default_factory=list)
    sharing_test: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def aic(self) -> float:
        return self.chi2 + 2.0 * self.n_varying

    @property
    def bic(self) -> float:
        return self.chi2 + self.n_varying * math.log(max(self.n_points, 1))

    def to_dict(self) -> dict:
        return {"shared": list(self.shared), "chi2": self.chi2, "n_points": self.n_points,
                "n_varying": self.n_varying, "aic": self.aic, "bic": self.bic,
                "sharing_test": dict(self.sharing_test), "notes": list(self.notes),
                "results": [r.to_dict() for r in self.results],
                "independent": [r.to_dict() for r in self.independent]}


_SHARE_GROUPS = {"w": "weight", "weight": "weight", "z": "z", "gamma": "gamma",
                 "delta": "delta", "alpha": "alpha", "anisotropy": "anisotropy"}
_SHARING_P = 0.01  # F-test p below which sharing is reported as contradicted by the data


def _shared_names(model: BTKModel, share: Sequence[str]) -> list[str]:
    """Expand ``share`` ("w", "z", "gamma", … or exact names such as "z1") to free names."""
    free = model.free_names()
    out: list[str] = []
    for item in share:
        key = str(item).strip().lower()
        if key in _SHARE_GROUPS:
            base = _SHARE_GROUPS[key]
            found = [k for k in free if k.rstrip("0123456789") == base]
        elif key in model.params:
            found = [key] if key in free else []
        else:
            raise ValueError(f"share = {item!r} is not allowed (allowed: "
                             f"{', '.join(sorted(set(_SHARE_GROUPS)))} or a parameter name: "
                             f"{', '.join(free)})")
        out += [k for k in found if k not in out]
    return out


def fit_global(spectra: Sequence[tuple[np.ndarray, np.ndarray, float]],
               model: BTKModel | str = "s+s", *, share: Sequence[str] = ("w",),
               dimension: int = 2, sigma: float | None = None) -> GlobalFitResult:
    """Fit all spectra at once with the ``share``d parameters common to all of them.

    ``share``: groups ("w" weights, "z", "gamma", "alpha", "delta") or exact names ("z1").
    Default: w only — the channel weights are a property of the contact; Z and Γ change with
    temperature (Extended Data Table 3: Z1 falls 0.58 → 0.35), and sharing them forces the
    gaps to absorb the change. The joint fit is tested against the independent fits it
    starts from with an F-test (χ² scale-free, so an estimated σ does not decide it); when
    sharing raises χ² significantly (p < 0.01) ``notes`` says so.
    """
    singles = fit_series(spectra, model, dimension=dimension, sigma=sigma)
    models = [r.to_model() for r in singles]
    shared = _shared_names(models[0], share)
    probs = [_Problem(m, np.asarray(b, dtype=float), np.asarray(g, dtype=float),
                      r.noise_sigma,
                      [c for c in r.constraints if c.split("<=")[0] not in shared])
             for m, r, (b, g, _t) in zip(models, singles, spectra, strict=True)]
    names = probs[0].names
    local = [k for k in names if k not in shared]
    si = [names.index(k) for k in shared]
    li = [names.index(k) for k in local]
    ns, nl = len(shared), len(local)
    x_singles = [p.pack(r.values) for p, r in zip(probs, singles, strict=True)]
    x0 = np.concatenate([np.mean([x[si] for x in x_singles], axis=0) if ns else np.array([])]
                        + [x[li] for x in x_singles])
    lo = np.concatenate([probs[0].lo[si]] + [p.lo[li] for p in probs])
    hi = np.concatenate([probs[0].hi[si]] + [p.hi[li] for p in probs])

    def internal(x: np.ndarray, i: int) -> np.ndarray:
        xi = np.empty(len(names))
        xi[si] = x[:ns]
        xi[li] = x[ns + i * nl: ns + (i + 1) * nl]
        return xi

    def residual(x: np.ndarray) -> np.ndarray:
        return np.concatenate([p.residual(internal(x, i)) for i, p in enumerate(probs)])

    # each spectrum's local parameters touch only its own residuals: a sparse Jacobian
    # pattern lets the finite differences perturb all spectra's locals at once
    n_tot = [p.bias.size for p in probs]
    pattern = np.zeros((sum(n_tot), x0.size), dtype=bool)
    pattern[:, :ns] = True
    row = 0
    for i, n_i in enumerate(n_tot):
        pattern[row:row + n_i, ns + i * nl: ns + (i + 1) * nl] = True
        row += n_i
    sparse = len(probs) > 2
    sol = least_squares(residual, _clip_into(x0, lo, hi), bounds=(lo, hi), method="trf",
                        x_scale="jac", max_nfev=100,
                        jac_sparsity=pattern if sparse else None,
                        tr_solver="lsmr" if sparse else None)
    # covariance of the joint problem in the user's coordinates
    all_names = shared + [f"{k}[{i}]" for i in range(len(probs)) for k in local]
    jac = np.zeros((sum(n_tot), len(all_names)))
    row = 0
    vals = [p.unpack(internal(sol.x, i)) for i, p in enumerate(probs)]
    for i, p in enumerate(probs):
        ji = p.jacobian(vals[i])
        jac[row:row + n_tot[i], :ns] = ji[:, si]
        jac[row:row + n_tot[i], ns + i * nl: ns + (i + 1) * nl] = ji[:, li]
        row += n_tot[i]
    cov, cov_notes = _covariance_notes(jac, all_names)
    err = np.sqrt(np.diag(cov))
    results = []
    for i, p in enumerate(probs):
        cols = list(range(ns)) + list(range(ns + i * nl, ns + (i + 1) * nl))
        order = shared + local
        sub = cov[np.ix_(cols, cols)]
        params = {}
        for k, par in p.model.params.items():
            src = k if k in order else (par.shared_with if par.shared_with in order else None)
            e = float(err[cols[order.index(src)]]) if src is not None else math.nan
            params[k] = {"value": float(vals[i][k]), "stderr": e if math.isfinite(e) else None,
                         "vary": par.vary, "min": par.min, "max": par.max,
                         "shared_with": par.shared_with}
        r = p.residual(internal(sol.x, i))
        results.append(FitResult(
            model=p.model.name, dimension=p.model.dimension, param_names=list(p.model.params),
            params=params, covariance=sub, chi2=float(r @ r), n_points=int(p.bias.size),
            n_varying=len(order), noise_sigma=p.sigma, noise_source=singles[i].noise_source,
            bias_window_mV=singles[i].bias_window_mV, temperature_K=singles[i].temperature_K,
            success=bool(sol.status > 0),
            message=f"global fit, shared: {', '.join(shared) or 'nothing'}; {sol.message}",
            weights=p.model.weights(vals[i]), modulation_mV=p.model.modulation_mV,
            constraints=list(p.constraints)))
    n_points = int(sum(n_tot))
    chi2 = 2.0 * float(sol.cost)
    glob = GlobalFitResult(shared, results, chi2, n_points, int(sol.x.size), singles)
    glob.notes += cov_notes
    _sharing_test(glob)
    return glob


def _sharing_test(glob: GlobalFitResult) -> None:
    """F-test of the shared fit against the independent fits; a note when it fails."""
    from scipy.special import fdtrc

    chi_ind = float(sum(r.chi2 for r in glob.independent))
    k_ind = int(sum(r.n_varying for r in glob.independent))
    d_dof = k_ind - glob.n_varying
    dof = glob.n_points - k_ind
    if d_dof <= 0 or dof <= 0:
        glob.sharing_test = {"delta_chi2": glob.chi2 - chi_ind, "delta_dof": d_dof}
        return
    d_chi = glob.chi2 - chi_ind
    f = max(d_chi, 0.0) / d_dof / (chi_ind / dof)
    p = float(fdtrc(d_dof, dof, f))
    glob.sharing_test = {"delta_chi2": d_chi, "delta_dof": d_dof, "chi2_independent": chi_ind,
                         "F": f, "p": p}
    if d_chi < -1.0:
        glob.notes.append(f"the shared fit has a lower χ² than the independent fits (by "
                          f"{-d_chi:.3g}): some independent fits missed their minimum")
    if p < _SHARING_P:
        glob.notes.append(
            f"sharing {', '.join(glob.shared)} raises χ² by {d_chi:.4g} ({d_dof} fewer "
            f"parameters; F = {f:.3g}, p = {p:.2g} < {_SHARING_P:g}): the data contradict "
            "a common value — fit these parameters per spectrum")
