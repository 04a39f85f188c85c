"""BTK forward-model and fit speed, and parameter recovery, beside their targets.

Run: ``.venv/bin/python bench/btk.py`` (one core: set OMP_NUM_THREADS=1 for a fair figure).
1001 bias points, ±100 mV, 3 K, 2D, the seed's Cell 2 parameters (Extended Data Table 3, 3 K),
weight 0.5, 0.3 % noise.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from daqapp.analysis.btk import Gap, conductance  # noqa: E402
from daqapp.analysis.fit import fit_spectrum  # noqa: E402

BIAS = np.linspace(-100, 100, 1001)
SS = [Gap(23.0, 6.6, 0.58, weight=0.5), Gap(6.0, 4.0, 0.4, weight=0.5)]
DD = [Gap(23.0, 6.6, 0.58, "d", 0.3, weight=0.5), Gap(6.0, 4.0, 0.4, "d", 0.3, weight=0.5)]


def best_time(fn, repeat: int = 30) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def line(what: str, value: float, unit: str, target: float) -> None:
    ok = "ok" if value <= target else "OVER"
    print(f"{what:<38s}{value:9.3g} {unit:<3s} target ≤ {target:g} {unit}  [{ok}]")


def main() -> None:
    line("forward s+s (1001 pts, 3 K, 2D)", 1e3 * best_time(lambda: conductance(BIAS, 3.0, SS)),
         "ms", 2.0)
    line("forward d+d (1001 pts, 3 K, 2D)", 1e3 * best_time(lambda: conductance(BIAS, 3.0, DD)),
         "ms", 5.0)
    rng = np.random.default_rng(0)
    g_ss = conductance(BIAS, 3.0, SS) + rng.normal(0, 0.003, BIAS.size)
    g_dd = conductance(BIAS, 3.0, DD) + rng.normal(0, 0.003, BIAS.size)
    fit_spectrum(BIAS[::4], g_ss[::4], "s", temperature_K=3.0)  # one-time imports (scipy.signal)
    t0 = time.perf_counter()
    r = fit_spectrum(BIAS, g_ss, "s+s", temperature_K=3.0)
    line("fit s+s", time.perf_counter() - t0, "s", 0.3)
    t0 = time.perf_counter()
    rd = fit_spectrum(BIAS, g_dd, "d+d", temperature_K=3.0)
    line("fit d+d (multi-start)", time.perf_counter() - t0, "s", 3.0)
    print("\nparameter recovery, s+s, 0.3 % noise, 10 noise draws (target |ΔΔ/Δ| ≤ 2 %):")
    errs1, errs2 = [], []
    for seed in range(10):
        g = conductance(BIAS, 3.0, SS) + np.random.default_rng(100 + seed).normal(
            0, 0.003, BIAS.size)
        res = fit_spectrum(BIAS, g, "s+s", temperature_K=3.0)
        errs1.append(res.values["delta1"] / 23.0 - 1)
        errs2.append(res.values["delta2"] / 6.0 - 1)
    e1, e2 = 100 * np.abs(errs1), 100 * np.abs(errs2)
    print(f"  Δ1: median {np.median(e1):.2f} %, worst {e1.max():.2f} %, within 2 %: "
          f"{int(np.sum(e1 <= 2))}/10")
    print(f"  Δ2: median {np.median(e2):.2f} %, worst {e2.max():.2f} %, within 2 %: "
          f"{int(np.sum(e2 <= 2))}/10")
    print(f"  first fit: Δ1 = {r.values['delta1']:.3f} ± {r.stderr['delta1']:.3f}, "
          f"Δ2 = {r.values['delta2']:.3f} ± {r.stderr['delta2']:.3f}, "
          f"χ²_red = {r.chi2_red:.3f}")
    print(f"d+d fit: Δ1 = {rd.values['delta1']:.3f}, Δ2 = {rd.values['delta2']:.3f}, "
          f"α = {rd.values['alpha1']:.3f} (true 23, 6, 0.3), χ²_red = {rd.chi2_red:.3f}")


if __name__ == "__main__":
    main()
