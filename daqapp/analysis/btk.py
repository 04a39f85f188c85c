"""BTK / Tanaka-Kashiwaya normalised conductance of a normal-metal/superconductor point contact.

Forward model used by the fits, the virtual lab and user scripts. Units: bias and energies in
meV (= mV for electrons), temperature in K. The physics and its limiting cases are those of
``reference/physics.md`` (§2): for a trajectory at angle θ the electron-like quasiparticle sees
Δ₊ = Δ(θ), the hole-like one Δ₋ = Δ(π − θ); with z = E + iΓ, Ω = √(z − |Δ|)√(z + |Δ|) and the
stable g = |Δ|/(z + Ω),

    σ_S = [1 + τ|g₊|² + (τ − 1)|g₊g₋|²] / |1 + (τ − 1) g₊g₋ sgn(Δ₊Δ₋)|²,  τ = cos²θ/(cos²θ + Z²)

averaged over the Fermi surface with weight τ cosθ (2D, the seed paper's convention), at normal
incidence (1D) or over a hemisphere (3D), then convolved with −∂f/∂E.

Why it is fast *and* exact to ~1e-6: the thermal integral is evaluated as a trapezoid sum on a
uniform energy grid whose step is below k_BT and Γ/3 (but not below k_BT/64: see
:func:`_energy_step`). The integrand is analytic in a strip of
half-width min(πk_BT, Γ), so the trapezoid error falls as exp(−2π·strip/step) — far below 1e-4
without the fine grids and interpolation a naive code needs. G₀ is computed once on the half grid
E ≥ 0 and mirrored (particle-hole symmetry of real gaps); for s-wave g depends only on E, for
d-wave g₋(θ) = g₊(−θ) on a symmetric Gauss-Legendre grid. The kernel weights (they depend only on
the bias points, T and the grid) are cached.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

K_B_MEV_PER_K = 0.08617333262  # Boltzmann constant in meV/K

SYMMETRIES = ("s", "d", "s_aniso")
DIMENSIONS = (1, 2, 3)

_KERNEL_HALF_WIDTH_KT = 16.0  # −∂f/∂E truncated at ±16 k_BT: tail weight 2e-7
_MAX_ANGLES = 4096
_CHUNK = 250_000  # complex elements per block of the (E, θ) arrays: ~4 MB each, < 40 MB live
_MAX_WORK = 40_000_000  # E points × angular nodes; bounds time for extreme Γ ≪ k_BT
_KERNEL_BLOCK = 1_000_000  # bias × kernel-node elements per block of the thermal sum (8 MB)


@dataclass(frozen=True)
class Gap:
    """One conduction channel: gap amplitude, broadening, barrier, symmetry and weight.

    ``delta``, ``gamma`` in meV; ``z`` dimensionless; ``alpha`` (radians) is the angle between
    the interface normal and the gap's lobe direction (d-wave, anisotropic s); ``anisotropy``
    is a in Δ(θ) = Δ0[1 + a cos 4(θ − α)] for ``symmetry="s_aniso"``; ``weight`` is this channel's
    share of the normal-state conductance (the weights of a model sum to 1).
    """

    delta: float
    gamma: float
    z: float
    symmetry: str = "s"
    alpha: float = 0.0
    weight: float = 1.0
    anisotropy: float = field(default=0.0)

    def __post_init__(self) -> None:
        _check_finite("delta", self.delta, 0.0, math.inf, "meV")
        _check_finite("gamma", self.gamma, 0.0, math.inf, "meV")
        _check_finite("z", self.z, 0.0, 1e4, "")
        _check_finite("alpha", self.alpha, -math.inf, math.inf, "rad")
        _check_finite("weight", self.weight, 0.0, 1.0, "")
        _check_finite("anisotropy", self.anisotropy, -1.0, 1.0, "")
        if self.symmetry not in SYMMETRIES:
            raise ValueError(f"symmetry = {self.symmetry!r} is not allowed (allowed: "
                             f"{', '.join(repr(s) for s in SYMMETRIES)})")


def _check_finite(name: str, value: float, low: float, high: float, unit: str) -> None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} = {value!r} is not a number") from None
    if not math.isfinite(v) or not (low <= v <= high):
        lo = "-inf" if low == -math.inf else f"{low:g}"
        hi = "inf" if high == math.inf else f"{high:g}"
        u = f" {unit}" if unit else ""
        raise ValueError(f"{name} = {value!r}{u} is outside the allowed range {lo} to {hi}{u} "
                         "(finite)")


def _validate(bias_mV, temperature_K, gaps, dimension) -> tuple[np.ndarray, float, list[Gap]]:
    bias = np.asarray(bias_mV, dtype=float)
    if not np.all(np.isfinite(bias)):
        raise ValueError("bias_mV contains NaN or inf (allowed: finite values in mV)")
    _check_finite("temperature_K", temperature_K, 0.0, 1e5, "K")
    if dimension not in DIMENSIONS:
        raise ValueError(f"dimension = {dimension!r} is not allowed (allowed: 1, 2 or 3)")
    if isinstance(gaps, Gap):
        gaps = [gaps]
    gaps = list(gaps)
    if not gaps:
        raise ValueError("gaps is empty (allowed: one or more Gap objects)")
    for g in gaps:
        if not isinstance(g, Gap):
            raise ValueError(f"gaps must hold Gap objects, got {type(g).__name__}")
    total = sum(g.weight for g in gaps)
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"weights sum to {total:.6g}; allowed: weights summing to 1 (±1e-6)")
    return bias, float(temperature_K), gaps


# ----------------------------------------------------------------------------- angular grids

@lru_cache(maxsize=64)
def _gauss_legendre(n: int, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    from scipy.special import roots_legendre  # O(n²); numpy's leggauss is O(n³)

    x, w = roots_legendre(n)
    x = 0.5 * (b - a) * x + 0.5 * (b + a)
    w = 0.5 * (b - a) * w
    x.setflags(write=False)
    w.setflags(write=False)
    return x, w


def _n_angles(gap: Gap) -> int:
    """Gauss-Legendre nodes for an angle-dependent gap: features of width Γ/(2Δ) in θ."""
    if gap.symmetry == "s":
        return 48
    amp = gap.delta * (1.0 if gap.symmetry == "d" else 2.0 * abs(gap.anisotropy))
    gamma = max(gap.gamma, 1e-9)
    n = int(math.ceil(12.0 * amp / gamma))
    n = min(max(n, 48), _MAX_ANGLES)
    return 8 * int(math.ceil(n / 8))


def _tau(cos_t: np.ndarray, z: float) -> np.ndarray:
    c2 = cos_t * cos_t
    return c2 / (c2 + z * z)


@lru_cache(maxsize=256)
def _s_wave_weights(n: int, z: float, dimension: int) -> tuple[np.ndarray, np.ndarray]:
    """τ at each node and the normalised weights τ·cosθ(·sinθ) of the Fermi-surface average."""
    if dimension == 1:
        tau = np.array([1.0 / (1.0 + z * z)])
        w = np.array([1.0])
    else:
        theta, gw = _gauss_legendre(n, 0.0, math.pi / 2)  # σ_S(θ) = σ_S(−θ) for s-wave
        cos_t = np.cos(theta)
        tau = _tau(cos_t, z)
        w = gw * tau * cos_t * (np.sin(theta) if dimension == 3 else 1.0)
        w = w / w.sum()
    tau.setflags(write=False)
    w.setflags(write=False)
    return tau, w


@lru_cache(maxsize=256)
def _aniso_geometry(n: int, z: float, dimension: int, symmetry: str, alpha: float,
                    anisotropy: float):
    """Nodes for an angle-dependent gap: τ, weights, Δ₊/Δ0, Δ₋/Δ0 and the pairing of Δ₋ to Δ₊.

    Returns (tau, weights, d_plus, d_minus, mirror) where ``mirror`` is an index array with
    |Δ₋| = |Δ₊[mirror]| when such a pairing exists (2D symmetric grid), else ``None``.
    """
    def shape(psi: np.ndarray, sign: float) -> np.ndarray:
        if symmetry == "d":
            return np.cos(2.0 * (psi - sign * alpha))
        return 1.0 + anisotropy * np.cos(4.0 * (psi - sign * alpha))

    mirror = None
    if dimension == 1:
        psi = np.array([0.0])
        tau = np.array([1.0 / (1.0 + z * z)])
        w = np.array([1.0])
    elif dimension == 2:
        psi, gw = _gauss_legendre(n, -math.pi / 2, math.pi / 2)
        cos_t = np.cos(psi)
        tau = _tau(cos_t, z)
        w = gw * tau * cos_t
        mirror = np.arange(n)[::-1].copy()  # Δ₋(θ) = Δ(π − θ) = Δ₊(−θ) on symmetric nodes
    else:
        nt = min(n, 256)
        nphi = min(n, 256)
        theta, wt = _gauss_legendre(nt, 0.0, math.pi / 2)
        phi, wp = _gauss_legendre(nphi, 0.0, math.pi)  # φ → −φ leaves the in-plane angle alone
        th, ph = np.meshgrid(theta, phi, indexing="ij")
        cos_t = np.cos(th).ravel()
        psi = np.arctan2(np.sin(th) * np.cos(ph), np.cos(th)).ravel()
        tau = _tau(cos_t, z)
        w = (np.outer(wt, wp).ravel()) * tau * cos_t * np.sin(th).ravel()
    w = w / w.sum()
    d_plus = shape(psi, 1.0)
    d_minus = shape(np.pi - psi, 1.0)  # hole-like trajectory: in-plane angle π − ψ
    out = (tau, w, d_plus, d_minus, mirror)
    for a in out:
        if a is not None:
            a.setflags(write=False)
    return out


# ----------------------------------------------------------------------------- T = 0 spectra

def _g(energy: np.ndarray, gamma: float, abs_delta) -> np.ndarray:
    """Stable Andreev amplitude g = |Δ|/(z + Ω), retarded branch; 0 where the gap vanishes.

    Called on the half grid E ≥ 0 only (G₀ is mirrored), where z = E + iΓ lies in the first
    quadrant: there Im(z² − Δ²) = 2EΓ ≥ 0, so the principal √(z² − Δ²) *is* the retarded
    √(z − Δ)√(z + Δ) of physics.md §2.2 — one complex square root instead of two (they
    dominate the cost). For E < 0 the principal root would be the wrong branch (§4.1).
    """
    z = energy + 1j * gamma
    omega = np.sqrt(z * z - abs_delta * abs_delta)
    den = z + omega
    with np.errstate(divide="ignore", invalid="ignore"):
        g = abs_delta / den
    if np.ndim(g) and not np.all(np.isfinite(g)):
        g = np.where(np.isfinite(g), g, 0.0)
    return g


def _log_tau_slope(tau: np.ndarray, z: float) -> np.ndarray:
    """ℓ = (∂τ/∂Z)/τ = −2Z/(cos²θ + Z²) = −2(1 − τ)/Z: Z enters the model only through τ."""
    if z == 0.0:
        return np.zeros_like(tau)
    return -2.0 * (1.0 - tau) / z


def _g0_s(energy: np.ndarray, gap: Gap, dimension: int, dz: bool = False):
    """Zero-temperature conductance of an isotropic s-wave channel (g once per energy).

    ``dz``: also return ∂G₀/∂Z from the same g (σ and the average's weights depend on Z only
    through τ): (G₀, ∂G₀/∂Z).
    """
    block = _CHUNK // 48
    if energy.size > block:
        parts = [_g0_s(energy[i:i + block], gap, dimension, dz)
                 for i in range(0, energy.size, block)]
        if dz:
            return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        return np.concatenate(parts)
    tau, w = _s_wave_weights(48, gap.z, dimension)
    g = _g(energy, gap.gamma, gap.delta)
    g2 = g * g
    a = (g.real * g.real + g.imag * g.imag)  # |g|²
    b = a * a  # |g|⁴ = |g²|²
    c = g2.real
    tm1 = tau - 1.0
    num = 1.0 + np.multiply.outer(a, tau) + np.multiply.outer(b, tm1)
    den = 1.0 + 2.0 * np.multiply.outer(c, tm1) + np.multiply.outer(b, tm1 * tm1)
    sigma = num / den
    g0 = sigma @ w
    if not dz:
        return g0
    ell = _log_tau_slope(tau, gap.z)
    # ∂σ/∂τ = [∂num/∂τ − σ ∂den/∂τ]/den; ∂wₖ/∂Z = wₖ(ℓₖ − Σⱼwⱼℓⱼ)
    dsig = ((a + b)[:, None] - sigma * (2.0 * c[:, None] + 2.0 * np.multiply.outer(b, tm1))) / den
    d_g0 = dsig @ (w * tau * ell) + sigma @ (w * (ell - ell @ w))
    return g0, d_g0


def _angular_gap(gap: Gap, kt: float) -> Gap:
    """The gap whose Γ sets the angular node count: Γ, but at least k_BT/``_ANGLE_FLOOR_PER_KT``.

    Angular features are Γ/(2Δ) wide in θ; once Γ ≪ k_BT the thermal kernel washes out
    anything finer than k_BT/(2Δ), so Γ → 0 need not mean 4096 nodes (seconds per curve).
    """
    floor = kt / _ANGLE_FLOOR_PER_KT
    if gap.symmetry == "s" or gap.gamma >= floor:
        return gap
    return replace(gap, gamma=floor)


_ANGLE_FLOOR_PER_KT = 4.0


def _g0_aniso(energy: np.ndarray, gap: Gap, dimension: int,
              resolution: float = 1.0, dz: bool = False, kt: float = 0.0,
              nodes_of: Gap | None = None):
    """Zero-temperature conductance of an angle-dependent gap (d-wave or anisotropic s).

    ``dz``: also return ∂G₀/∂Z from the same g₊, g₋ (as :func:`_g0_s`). ``kt``: the thermal
    energy after which G₀ is smeared (floors the angular resolution, :func:`_angular_gap`).
    ``nodes_of``: take the node count from this gap instead (a finite difference in Δ or Γ
    must not cross a change of the quadrature).
    """
    n = _n_angles(_angular_gap(gap if nodes_of is None else nodes_of, kt))
    if resolution > 1.0:
        n = 8 * max(2, int(math.ceil(n / resolution / 8)))
    alpha = float(gap.alpha) % (math.pi / 2) if gap.symmetry == "d" else float(gap.alpha)
    tau, w, dp, dm, mirror = _aniso_geometry(n, gap.z, dimension, gap.symmetry, alpha,
                                             float(gap.anisotropy))
    n_nodes = tau.size
    block = max(1, _CHUNK // n_nodes)
    if energy.size > block:
        parts = [_g0_aniso(energy[i:i + block], gap, dimension, resolution, dz, kt, nodes_of)
                 for i in range(0, energy.size, block)]
        if dz:
            return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        return np.concatenate(parts)
    e = energy[:, None]
    gp = _g(e, gap.gamma, gap.delta * np.abs(dp)[None, :])
    if mirror is not None:
        gm = gp[:, mirror]
    else:
        gm = _g(e, gap.gamma, gap.delta * np.abs(dm)[None, :])
    sign = np.sign(dp * dm)
    gpgm = gp * gm
    tm1 = tau - 1.0
    a = gp.real ** 2 + gp.imag ** 2
    b = gpgm.real ** 2 + gpgm.imag ** 2
    num = 1.0 + tau * a + tm1 * b
    d = 1.0 + (tm1 * sign) * gpgm
    den = d.real ** 2 + d.imag ** 2
    sigma = num / den
    g0 = sigma @ w
    if not dz:
        return g0
    ell = _log_tau_slope(tau, gap.z)
    dden = (2.0 * sign) * (d.real * gpgm.real + d.imag * gpgm.imag)
    dsig = (a + b - sigma * dden) / den
    d_g0 = dsig @ (w * tau * ell) + sigma @ (w * (ell - ell @ w))
    return g0, d_g0


def _channel_g0(energy: np.ndarray, gap: Gap, dimension: int, resolution: float = 1.0,
                dz: bool = False, kt: float = 0.0, nodes_of: Gap | None = None):
    """G₀ of one channel at its own weight 1 (and ∂G₀/∂Z with ``dz``); ``kt``, ``nodes_of``
    as in :func:`_g0_aniso`."""
    if gap.delta == 0.0:
        one = np.ones(energy.shape)
        return (one, np.zeros(energy.shape)) if dz else one
    if gap.symmetry == "s":
        return _g0_s(energy, gap, dimension, dz)
    return _g0_aniso(energy, gap, dimension, resolution, dz, kt, nodes_of)


def _g0(energy: np.ndarray, gaps: list[Gap], dimension: int,
        resolution: float = 1.0, kt: float = 0.0) -> np.ndarray:
    """Unsmeared composite conductance Σ wᵢ Gᵢ(E) at energies E ≥ 0."""
    total = np.zeros(energy.shape, dtype=float)
    for gap in gaps:
        if gap.weight != 0.0:
            total += gap.weight * _channel_g0(energy, gap, dimension, resolution, kt=kt)
    return total


# ----------------------------------------------------------------------------- thermal smearing

def _kernel(x: np.ndarray, kt: float) -> np.ndarray:
    """−∂f/∂E at energy offset x (meV): 1/(4 k_BT cosh²(x/2k_BT)), overflow-safe."""
    u = np.exp(-np.abs(x) / kt)
    return u / (kt * (1.0 + u) ** 2)


_TABLE_STEPS_PER_KT = 64  # linear table of the combined kernel: error ≈ (k_BT/64)²/12·G″


@lru_cache(maxsize=32)
def _measurement_table(kt: float, modulation_mV: float) -> tuple[float, np.ndarray, np.ndarray]:
    """(step h, K, ΔK) of thermal ⊗ semicircle at x = 0, h, 2h, … (the kernel is even).

    The lock-in's semicircle (:mod:`daqapp.analysis.modulation`) convolved with −∂f/∂E, by a
    Gauss–Chebyshev sum over the semicircle. The result stays analytic within πk_BT of the
    real axis, so the trapezoid sum over the energy grid keeps its exponential accuracy;
    linear interpolation in the table adds only ≈ h²/12·G″ (integration by parts), ~1e-7.
    """
    from daqapp.analysis.modulation import modulation_nodes, nodes_for_smoothness

    offs, w = modulation_nodes(modulation_mV, nodes_for_smoothness(modulation_mV,
                                                                    math.pi * kt, 1e-9))
    h = kt / _TABLE_STEPS_PER_KT
    half = _KERNEL_HALF_WIDTH_KT * kt + float(np.max(offs))
    x = np.arange(int(math.ceil(half / h)) + 3) * h
    k = np.zeros(x.size)
    for o, wk in zip(offs, w, strict=True):
        k += wk * _kernel(x - o, kt)
    k[-1] = 0.0
    dk = np.append(np.diff(k), 0.0)
    for a in (k, dk):
        a.setflags(write=False)
    return h, k, dk


def _measured_kernel(x: np.ndarray, kt: float, modulation_mV: float) -> np.ndarray:
    """The weight of G₀(E) in the measured G(V) at x = V − E: −∂f/∂E, or it ⊗ the semicircle."""
    if modulation_mV == 0.0:
        return _kernel(x, kt)
    h, k, dk = _measurement_table(kt, modulation_mV)
    t = np.abs(x) * (1.0 / h)
    np.minimum(t, k.size - 1, out=t)
    i = t.astype(np.int64)
    return k[i] + (t - i) * dk[i]


_KERNEL_CACHE: OrderedDict = OrderedDict()
_KERNEL_CACHE_SIZE = 16


def _grid_kernel(bias: np.ndarray, kt: float, step: float, n_half: int,
                 modulation_mV: float = 0.0):
    """Indices into the mirrored half grid and trapezoid×kernel weights for each bias point."""
    key = (bias.tobytes(), kt, step, n_half, modulation_mV)
    hit = _KERNEL_CACHE.get(key)
    if hit is not None:
        _KERNEL_CACHE.move_to_end(key)
        return hit
    hit = _kernel_block(bias, kt, step, n_half, modulation_mV)
    _KERNEL_CACHE[key] = hit
    if len(_KERNEL_CACHE) > _KERNEL_CACHE_SIZE:
        _KERNEL_CACHE.popitem(last=False)
    return hit


def _half_width(kt: float, modulation_mV: float) -> float:
    """Support of the measured kernel: ±16 k_BT, widened by the modulation's peak √2·V_rms."""
    return _KERNEL_HALF_WIDTH_KT * kt + math.sqrt(2.0) * modulation_mV


def _kernel_block(bias: np.ndarray, kt: float, step: float, n_half: int,
                  modulation_mV: float = 0.0):
    half_width = _half_width(kt, modulation_mV)
    nk = int(math.ceil(2.0 * half_width / step)) + 2
    j0 = np.floor((bias - half_width) / step).astype(np.int64)
    j = j0[:, None] + np.arange(nk)[None, :]
    x = bias[:, None] - j * step
    weights = step * _measured_kernel(x, kt, modulation_mV)
    idx = np.abs(j)  # G₀(−E) = G₀(E)
    np.clip(idx, 0, n_half - 1, out=idx)
    return idx, weights


def _energy_step(temperature_K: float, gaps: list[Gap]) -> float:
    """Trapezoid step: below k_BT and Γ/3 so the analytic-strip error is < 1e-6, but never
    below k_BT/``_STEP_FLOOR_PER_KT``.

    Why the floor: the step followed Γ, so Γ → 0 meant an ever finer grid (Γ = 0 divided by
    zero; Γ = 1e-4 meV took seconds per curve). Once Γ ≪ k_BT the smooth thermal kernel, not
    Γ, limits what a grid must resolve: at k_BT/64 the Andreev regime (Z ≲ 1) stays within
    1e-4 of 16× finer grids even at Γ = 0 (tests/analysis/test_btk.py); a tunnel barrier's
    1/√(E − Δ) edge converges only slowly (the limit is stated in :func:`conductance`).
    """
    kt = K_B_MEV_PER_K * temperature_K
    gamma = min((g.gamma for g in gaps if g.weight > 0 and g.delta > 0), default=math.inf)
    if gamma >= 3.0 * kt:
        return kt
    # k_BT/n, not Γ/3 itself: the grid (and its kernel) stays put while Γ moves within a
    # bin, so a fit's model is smooth in Γ (no spurious grid term in its derivatives, up to
    # 1 % of a column when the step followed Γ) and the cached kernel serves every call
    if gamma * _STEP_FLOOR_PER_KT <= 3.0 * kt:
        return kt / _STEP_FLOOR_PER_KT
    return kt / math.ceil(3.0 * kt / gamma)


_STEP_FLOOR_PER_KT = 64


def _work_per_energy(gaps: list[Gap], dimension: int, kt: float) -> int:
    total = 0
    for g in gaps:
        if g.symmetry == "s" or dimension == 1:
            total += 48
        else:
            n = _n_angles(_angular_gap(g, kt))
            total += n if dimension == 2 else min(n, 256) ** 2
    return max(total, 1)


class _Plan:
    """Where G₀ is needed (energies ≥ 0) and how it becomes the measured G at the biases.

    Why separate: thermal smearing and the lock-in's modulation are linear in G₀, so one
    plan serves every channel of a model and every derivative of it (∂G/∂p is the plan
    applied to ∂G₀/∂p) — the fit's Jacobian reuses the grid and kernel of its residual.
    ``smear`` takes G₀ − 1 as (n_energies,) or (n_energies, k) and returns G − 1.
    """

    def __init__(self, energies: np.ndarray, kind: str, data: tuple = (), kt: float = 0.0
                 ) -> None:
        self.energies = energies
        self.kt = kt  # the thermal energy G₀ is smeared over (floors the angular grid)
        self.kind = kind  # "identity", "nodes" (weights per bias), "grid", "grid-blocks"
        self.data = data

    def smear(self, g0m1: np.ndarray) -> np.ndarray:
        if self.kind == "identity":
            return g0m1
        if self.kind == "nodes":
            n_bias, w = self.data
            return np.tensordot(g0m1.reshape((n_bias, w.size) + g0m1.shape[1:]), w, (1, 0))
        if self.kind == "grid":
            idx, weights = self.data
            return _kernel_sum(g0m1, idx, weights)
        bias, kt, step, n_half, modulation_mV, rows = self.data
        out = np.empty((bias.size,) + g0m1.shape[1:])
        for i in range(0, bias.size, rows):  # wide kernel: block by block, not cached
            idx, weights = _kernel_block(bias[i:i + rows], kt, step, n_half, modulation_mV)
            out[i:i + rows] = _kernel_sum(g0m1, idx, weights)
        return out


def _kernel_sum(g0m1: np.ndarray, idx: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Σⱼ weights[i, j]·G₀[idx[i, j]] for each bias i (and each column of a 2-D G₀)."""
    if g0m1.ndim == 1:
        return np.einsum("ij,ij->i", np.take(g0m1, idx), weights)
    # column by column: the 3-index einsum is ~9× slower than two of these
    return np.stack([np.einsum("ij,ij->i", np.take(col, idx), weights)
                     for col in g0m1.T], axis=1)


def _plan(bias: np.ndarray, temperature_K: float, gaps: list[Gap], dimension: int,
          resolution: float = 1.0, modulation_mV: float = 0.0) -> _Plan:
    """The energy grid and smearing weights for these biases, T, modulation and gaps (their
    Γ set the step); ``resolution`` > 1 coarsens the energy step (screening)."""
    if temperature_K == 0.0:
        if modulation_mV == 0.0:
            return _Plan(np.abs(bias), "identity")
        # no thermal kernel to fold the semicircle into: quadrature nodes resolving Γ
        from daqapp.analysis.modulation import modulation_nodes, nodes_for_smoothness

        gammas = [g.gamma for g in gaps if g.weight > 0 and g.delta > 0] or [1.0]
        n = nodes_for_smoothness(modulation_mV, max(min(gammas), 1e-3), 1e-6)
        offs, w = modulation_nodes(modulation_mV, n)
        return _Plan(np.abs(bias[:, None] + offs[None, :]).ravel(), "nodes", (bias.size, w))
    kt = K_B_MEV_PER_K * temperature_K
    step = _energy_step(temperature_K, gaps) * resolution
    half_width = _half_width(kt, modulation_mV)
    e_max = float(np.max(np.abs(bias))) + half_width + 2.0 * step
    per_e = _work_per_energy(gaps, dimension, kt)
    nk = 2.0 * half_width / step + 2
    n_half = int(math.ceil(e_max / step)) + 2
    local_cost = bias.size * nk
    if min(n_half, local_cost) * per_e > _MAX_WORK:
        # Γ ≪ k_BT over a wide bias range: coarsen to the work budget (documented limit).
        step = max(step, e_max * per_e / _MAX_WORK, 2.0 * half_width * per_e * bias.size
                   / _MAX_WORK if local_cost < n_half else 0.0)
        n_half = int(math.ceil(e_max / step)) + 2
        nk = 2.0 * half_width / step + 2
        local_cost = bias.size * nk
    if local_cost < n_half:
        # Few biases, or k_BT tiny against the bias range: quadrature nodes around each bias
        # (G₀ itself is evaluated in blocks, so the arrays stay a few MB).
        m = int(math.ceil(half_width / step))
        offs = np.arange(-m, m + 1) * step
        w = step * _measured_kernel(offs, kt, modulation_mV)
        return _Plan(np.abs(bias[:, None] + offs[None, :]).ravel(), "nodes", (bias.size, w), kt)
    energies = np.arange(n_half) * step
    nk_int = int(math.ceil(2.0 * half_width / step)) + 2
    if bias.size * nk_int <= _KERNEL_BLOCK:
        return _Plan(energies, "grid", _grid_kernel(bias, kt, step, n_half, modulation_mV), kt)
    rows = max(1, _KERNEL_BLOCK // nk_int)
    return _Plan(energies, "grid-blocks", (bias, kt, step, n_half, modulation_mV, rows), kt)


# ----------------------------------------------------------------------------- public API

def conductance(bias_mV, temperature_K: float, gaps, dimension: int = 2,
                modulation_mV: float = 0.0) -> np.ndarray:
    """Normalised conductance G(V) = (dI/dV)/(dI/dV)_N of a multi-channel N/S point contact.

    ``bias_mV``: array (or scalar) of junction bias in mV. ``temperature_K`` ≥ 0; 0 means no
    thermal smearing. ``gaps``: one :class:`Gap` or a sequence whose weights sum to 1.
    ``dimension``: 1 (normal incidence), 2 (cylindrical Fermi surface, in-plane injection; the
    seed paper's convention) or 3 (spherical). Z and the weights are convention-dependent.
    ``modulation_mV``: rms lock-in excitation across the junction; > 0 returns what the
    lock-in measures, G convolved with the semicircle of :mod:`daqapp.analysis.modulation`
    (folded into the thermal kernel, so it costs little and needs no bias grid of its own).
    Returns an array of the shape of ``bias_mV``. Raises ``ValueError`` for invalid input.

    Working memory stays below ~60 MB whatever Γ and T (energy, angle and thermal sums are
    processed in blocks). Γ = 0 is allowed: below Γ ≈ k_BT/20 the energy step stays at
    k_BT/64 and the angular nodes at those of Γ = k_BT/4, within 1e-4 of finer grids in the
    Andreev regime (Z ≲ 1); with a tunnel barrier (Z ≳ 2) and Γ ≪ k_BT the DOS's
    1/√(E − Δ) edge is not resolved at that step: errors near eV = Δ of 1e-2 (Z = 3) to 0.1
    (Z = 10, 1D), where Γ = 1e-4 meV used to cost seconds of fine grid instead. Such Γ
    has no visible effect after thermal smearing; fits keep Γ ≥ k_BT/4 by default and never
    reach this regime. Limit: if a grid would still need more than 4e7 energy × angle
    evaluations (wide bias ranges at high T), the step is widened to that budget and the
    1e-4 accuracy is no longer guaranteed.
    """
    return _measured(bias_mV, temperature_K, gaps, dimension, 1.0, modulation_mV)


def _measured(bias_mV, temperature_K: float, gaps, dimension: int, resolution: float,
              modulation_mV: float) -> np.ndarray:
    bias, temperature, gaps = _validate(bias_mV, temperature_K, gaps, dimension)
    _check_finite("modulation_mV", modulation_mV, 0.0, 1e4, "mV rms")
    shape = bias.shape
    flat = bias.ravel()
    if flat.size == 0:
        return np.zeros(shape)
    plan = _plan(flat, temperature, gaps, dimension, resolution, float(modulation_mV))
    g0 = _g0(plan.energies, gaps, dimension, resolution, plan.kt)
    return (plan.smear(g0 - 1.0) + 1.0).reshape(shape)


class ChannelSpectra:
    """Each channel's measured spectrum Sᵢ(V) (at weight 1) on one model's shared grid.

    Why: G = Σ wᵢSᵢ is linear in the weights and every smearing is linear in G₀, so a fit's
    Jacobian needs only per-channel pieces on the grid of its residual: ∂G/∂w from the Sᵢ
    themselves, ∂G/∂Zᵢ from the same Andreev amplitudes (Z enters only through τ), and a
    change of Δᵢ, Γᵢ or α re-evaluates that channel alone (:meth:`spectrum` with a changed
    :class:`Gap`). The grid is fixed by the ``gaps`` given here, so finite differences on it
    see no grid change. ``resolution`` > 1: the coarse grids of :func:`screening_conductance`.
    """

    def __init__(self, bias_mV, temperature_K: float, gaps, dimension: int = 2,
                 modulation_mV: float = 0.0, resolution: float = 1.0) -> None:
        bias, temperature, self.gaps = _validate(bias_mV, temperature_K, gaps, dimension)
        _check_finite("modulation_mV", modulation_mV, 0.0, 1e4, "mV rms")
        self.bias = bias.ravel()
        self.dimension = dimension
        self.resolution = max(1.0, float(resolution)) if temperature > 0 else 1.0
        self.plan = _plan(self.bias, temperature, self.gaps, dimension, self.resolution,
                          float(modulation_mV))

    def spectrum(self, gap: Gap, nodes_of: Gap | None = None) -> np.ndarray:
        """S(V) of ``gap`` at weight 1 (its own weight is ignored) on this grid; ``nodes_of``:
        the gap whose angular node count to use (the unperturbed one, for a difference)."""
        g0 = _channel_g0(self.plan.energies, gap, self.dimension, self.resolution,
                         kt=self.plan.kt, nodes_of=nodes_of)
        return self.plan.smear(g0 - 1.0) + 1.0

    def spectrum_and_dz(self, gap: Gap) -> tuple[np.ndarray, np.ndarray]:
        """(S, ∂S/∂Z) of ``gap`` on this grid, from one evaluation of its amplitudes."""
        g0, dz = _channel_g0(self.plan.energies, gap, self.dimension, self.resolution,
                             dz=True, kt=self.plan.kt)
        both = self.plan.smear(np.stack([g0 - 1.0, dz], axis=1))
        return both[:, 0] + 1.0, both[:, 1]


def screening_conductance(bias_mV, temperature_K: float, gaps, dimension: int = 2,
                          resolution: float = 3.0, modulation_mV: float = 0.0) -> np.ndarray:
    """:func:`conductance` on grids ``resolution`` times coarser (energy step, angular nodes).

    For the global search stage of fits, where only the ranking of many candidate parameter
    sets matters: ~3× faster for d-wave at a few 1e-3 absolute error. Not for final values.
    """
    if float(temperature_K) == 0.0:
        return conductance(bias_mV, temperature_K, gaps, dimension, modulation_mV)
    return _measured(bias_mV, temperature_K, gaps, dimension, max(1.0, float(resolution)),
                     modulation_mV)


def zero_temperature_conductance(energy_meV, gaps, dimension: int = 2) -> np.ndarray:
    """G₀(E) before thermal smearing (same as ``conductance(E, 0, gaps)``)."""
    return conductance(energy_meV, 0.0, gaps, dimension)


def current(bias_mV, temperature_K: float, gaps, dimension: int = 2) -> np.ndarray:
    """Normalised current I·R_N (mV) = ∫₀^V G(V′) dV′, consistent with :func:`conductance`.

    A simulated junction uses this for its DC I–V so that the lock-in's dI/dV is exactly
    ``conductance``. I is odd in V; for |V| ≫ Δ it tends to V + sign(V)·R_N·I_exc (excess
    current). Evaluated with a Simpson rule on a uniform grid fine against Γ and k_BT, then
    interpolated with a cubic spline.
    """
    from scipy.integrate import cumulative_simpson
    from scipy.interpolate import CubicSpline

    bias, temperature, gaps = _validate(bias_mV, temperature_K, gaps, dimension)
    shape = bias.shape
    flat = np.abs(bias.ravel())
    if flat.size == 0:
        return np.zeros(shape)
    v_max = float(flat.max())
    if v_max == 0.0:
        return np.zeros(shape)
    scale = K_B_MEV_PER_K * temperature
    gammas = [g.gamma for g in gaps if g.delta > 0 and g.weight > 0]
    if gammas:
        scale = max(scale, min(gammas)) if scale > 0 else min(gammas)
    if scale <= 0:
        scale = max(min((g.delta for g in gaps if g.delta > 0), default=1.0), 1e-3) * 0.01
    step = min(scale / 8.0, v_max / 64.0)
    n = int(min(max(math.ceil(v_max / step), 64), 200_000)) + 1
    grid = np.linspace(0.0, v_max, n)
    g = conductance(grid, temperature, gaps, dimension)
    integral = cumulative_simpson(g, x=grid, initial=0.0)
    spline = CubicSpline(grid, integral)
    out = np.sign(bias.ravel()) * spline(flat)
    return out.reshape(shape)


def dynes_dos(energy_meV, delta: float, gamma: float) -> np.ndarray:
    """Dynes density of states Re[z/√(z² − Δ²)], z = E + iΓ: the Z → ∞ limit of G₀."""
    e = np.asarray(energy_meV, dtype=float)
    z = np.abs(e) + 1j * gamma
    return np.real(z / (np.sqrt(z - delta) * np.sqrt(z + delta)))
