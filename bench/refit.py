"""Refit speed of a synthetic map: serial, ``--jobs N`` (a dask LocalCluster of N processes),
and a real dask scheduler + N ``dask worker`` processes (a nanny each, as any cluster starts
them) on 127.0.0.1 — started with the README's worker settings (dask's profiler off), and once
more with dask's defaults for comparison — each as a ratio to the serial run of its round,
median over interleaved rounds.

Run: ``PYTHONPATH=$PWD .venv/bin/python bench/refit.py`` (defaults: 8 contacts × 9
temperatures × 3 fields of Table 3–like raw s+s spectra, 401 points, 0.2 % noise; 2 workers).
Each contact is one task (its series, warm starts inside). Per-task overhead is the parallel
wall time beyond serial/N, per task; the projection for 10⁵ spectra on 64 workers uses the
measured per-fit cost and that overhead (tasks of the same size as here).
"""

from __future__ import annotations

import argparse
import importlib
import os
import socket
import statistics
import subprocess
import sys
import time

# every process single-threaded (as dask workers are), set before numpy loads its BLAS: the
# same cost per fit and the same numbers on each path (see daqapp.analysis.batch)
for _key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_key] = "1"

import numpy as np  # noqa: E402

from daqapp.analysis.batch import (  # noqa: E402
    QUIET_WORKER_ENV,
    SeriesItem,
    SeriesTask,
    run_batch,
)
from daqapp.analysis.btk import Gap, conductance  # noqa: E402
from daqapp.analysis.gaps import gap_bcs  # noqa: E402
from daqapp.analysis.spectroscopy import AnalysisOptions, RawSpectrum  # noqa: E402

TC_K, R_N = 38.0, 350.0


def synthetic_map(contacts: int, temperatures: int, fields: int, points: int,
                  noise: float) -> list[SeriesTask]:
    """Raw conductance (S) of two-gap contacts (Δ1 23, Δ2 6 meV at 0 K, BCS in T, 5 %/T
    smaller in field) on a quadratic normal state, with noise; one task per contact."""
    rng = np.random.default_rng(14)
    options = AnalysisOptions(models=("s+s",), v0_mV=None)
    v = np.linspace(-75, 75, points)
    tasks = []
    for c in range(contacts):
        items = []
        z1, z2, w = 0.58 - 0.02 * c, 0.40, 0.6 - 0.02 * c
        for t in np.linspace(3.0, 30.0, temperatures):
            for b in np.linspace(0.0, 2.0, fields):
                shrink = 1.0 - 0.05 * b
                d1 = float(gap_bcs(t, 23.0, TC_K)) * shrink
                d2 = float(gap_bcs(t, 6.0, TC_K)) * shrink
                g = conductance(v, float(t), [Gap(d1, 6.6, z1, weight=w),
                                              Gap(d2, 4.0, z2, weight=1 - w)])
                g = g * (1 + 3e-4 * v + 1.5e-5 * v * v) / R_N
                g = g * (1 + noise * rng.standard_normal(points))
                raw = RawSpectrum(v, g, temperature_K=float(t), field_T=float(b),
                                  label=f"c{c} {t:.1f} K {b:.1f} T", sweep=len(items))
                items.append(SeriesItem(raw, options, f"contact{c}.h5"))
        tasks.append(SeriesTask(f"contact{c}", items))
    return tasks


def numbers(outcomes) -> list:
    return [(r.contact, r.sweep, r.values, r.chi2) for o in outcomes for r in o.rows()]


def timed(tasks, **engine) -> tuple[float, list]:
    t0 = time.perf_counter()
    outcomes = run_batch(tasks, **engine)
    return time.perf_counter() - t0, outcomes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(workers: int, quiet_workers: bool) -> tuple[str, list[subprocess.Popen]]:
    """``dask scheduler`` and ``workers`` single-threaded ``dask worker`` processes on loopback,
    started as an administrator would (a nanny each, which sets MALLOC_TRIM_THRESHOLD_=65536:
    the fit task undoes its effect itself, see analysis.batch). ``quiet_workers``: with the
    README's environment (dask's profiler off, a 1 s tick); otherwise dask's defaults."""
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ)
    if quiet_workers:
        env.update(QUIET_WORKER_ENV)
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                               "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0"], **quiet)]
    procs += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"],
                               **quiet) for _ in range(workers)]
    with Client(address, timeout="30s") as client:
        client.wait_for_workers(workers, timeout=60)
        # long-lived workers: the imports are paid once, not per refit
        client.run(importlib.import_module, "daqapp.analysis.batch")
    return address, procs


def stop(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contacts", type=int, default=8)
    ap.add_argument("--temperatures", type=int, default=9)
    ap.add_argument("--fields", type=int, default=3)
    ap.add_argument("--points", type=int, default=401)
    ap.add_argument("--noise", type=float, default=0.002)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3,
                    help="interleaved rounds of every path; ratios are medians over rounds")
    ap.add_argument("--no-cluster", action="store_true", help="skip the dask scheduler runs")
    args = ap.parse_args()
    tasks = synthetic_map(args.contacts, args.temperatures, args.fields, args.points,
                          args.noise)
    n = sum(len(t) for t in tasks)
    print(f"map: {len(tasks)} contacts × {args.temperatures} T × {args.fields} B = {n} "
          f"spectra of {args.points} points, s+s; {os.cpu_count()} cores; "
          f"{args.repeats} interleaved rounds, each path's ratio to the serial run of its round")
    paths = [(f"--jobs {args.jobs} (LocalCluster)", {"jobs": args.jobs}, None)]
    if not args.no_cluster:
        paths += [(f"scheduler + {args.jobs} workers", None, True),
                  ("  same, dask's default workers", None, False)]
    reference = None
    serial_s: list[float] = []
    ratios: dict[str, list[float]] = {name: [] for name, _, _ in paths}
    times: dict[str, list[float]] = {name: [] for name, _, _ in paths}
    same = dict.fromkeys(times, True)
    for _ in range(args.repeats):
        t_serial, serial = timed(tasks)
        serial_s.append(t_serial)
        reference = numbers(serial) if reference is None else reference
        if numbers(serial) != reference:
            print("serial numbers DIFFER between rounds")
        for name, engine, quiet_workers in paths:
            procs: list[subprocess.Popen] = []
            if engine is None:  # a cluster started by hand, up before the clock starts
                address, procs = start_cluster(args.jobs, quiet_workers)
                engine = {"scheduler": address}
            try:
                t, outcomes = timed(tasks, **engine)
            finally:
                stop(procs)
            same[name] &= numbers(outcomes) == reference
            times[name].append(t)
            ratios[name].append(t_serial / t)
    t_serial = statistics.median(serial_s)
    per_fit = t_serial / n
    print(f"{'serial':31s} {n / t_serial:6.2f} fits/s  (1.00×)  {per_fit * 1e3:.0f} ms/fit")
    for name, _, _ in paths:
        t = statistics.median(times[name])
        ratio = statistics.median(ratios[name])
        overhead = max(t - t_serial / args.jobs, 0.0) / len(tasks)
        project = (1e5 * per_fit + 1e5 / (n / len(tasks)) * overhead) / 64
        rounds = ", ".join(f"{r:.2f}" for r in ratios[name])
        target = "" if name.startswith(" ") else \
            f"  target ≥ 1.70× {'met' if ratio >= 1.7 else 'MISSED'}"
        print(f"{name:31s} {n / t:6.2f} fits/s  ({ratio:.2f}×; rounds {rounds}){target}; "
              f"numbers {'identical' if same[name] else 'DIFFERENT'}; "
              f"overhead {overhead * 1e3:.0f} ms/task; "
              f"10⁵ spectra on 64 workers ≈ {project / 60:.0f} min")


if __name__ == "__main__":
    main()
