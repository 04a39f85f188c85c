"""Acquisition speed through the whole stack, daqapp's HDF5 path against pymeasure's CSV path.

One lock-in dI/dV spectrum procedure (``DifferentialConductanceLockIn``) runs on the virtual
lab at a speed factor of 10^4, so the instruments' own waits (lock-in settling, 2182A
integration) are effectively zero and what is measured is the stack: pymeasure driver →
pyvisa-py TCP socket → instrument emulator → procedure → storage. The same procedure, on the
same lab, is recorded twice in this one process:

* daqapp: ``daqapp.runner.Run`` → HDF5 ``RunWriter`` (writer thread, SWMR) + RunBuffer;
* pymeasure stock: ``pymeasure.experiment.Worker`` + ``Results`` (CSV via the Recorder).

Each is measured headless and with a live plot that refreshes every 0.1 s (pymeasure's plot
reads ``Results.data``, which re-reads the CSV; daqapp's reads the in-memory RunBuffer). The
drivers open their sockets with TCP_NODELAY (``drivers.base.disable_nagle``); ``--nagle`` turns
Nagle's algorithm back on to show what it costs. Then the same procedure with the instruments in
this process (``simulators.inprocess``: the same drivers and emulators, no sockets), where only
the stacks differ: daqapp, pymeasure's Worker, and the bare procedure loop.
Then ``bench/storage.py`` gives the rows/s the HDF5 writer sustains and the memory of a 10^6-
point run. Every figure is printed beside its target.

Usage: ``python bench/acquisition.py [--points N] [--repeats R] [--skip-storage]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import daqapp.runner.pymeasure_logging  # noqa: E402,F401 - before pymeasure is imported

#: The daqapp path must beat pymeasure's stock CSV path (ratio of points per second).
TARGET_SPEEDUP = 1.0
#: Points per second through the whole stack with instrument delays at zero (one core share).
TARGET_POINTS_PER_S = 100.0
PLOT_REFRESH_S = 0.1


def _procedure(points: int):
    from procedures.lockin_spectrum import DifferentialConductanceLockIn

    return DifferentialConductanceLockIn(points=points, directions="up", spacing="linear",
                                         time_constant=0.0, filter_slope=0)


class _Plotter(threading.Thread):
    """A live plot's refresh loop: every 0.1 s fetch the whole curve, as a plot widget does."""

    def __init__(self, fetch) -> None:
        super().__init__(daemon=True)
        self.fetch = fetch
        self.stop = threading.Event()
        self.refreshes = 0

    def run(self) -> None:
        while not self.stop.wait(PLOT_REFRESH_S):
            self.fetch()
            self.refreshes += 1


def steady_rate(times) -> float:
    """Points per second between the first and the last point (the ``time`` column), i.e.
    the acquisition loop alone, without the run's bookends (file creation, start and end
    snapshots, safe state), which pymeasure's stock path does not have."""
    times = [float(t) for t in times]
    return (len(times) - 1) / (times[-1] - times[0])


def run_daqapp(conn, folder: Path, points: int, plot: bool) -> tuple[float, int, float]:
    from daqapp.runner import Run, events
    from daqapp.storage import RunBuffer

    procedure = _procedure(points)
    buffer = RunBuffer(procedure.column_units())
    run = Run(procedure, station=conn, output_dir=folder)
    run.subscribe(lambda e: buffer.append(e.payload) if e.kind == events.RECORD else None)
    plotter = _Plotter(lambda: buffer.column("didv")) if plot else None
    if plotter:
        plotter.start()
    t0 = time.perf_counter()
    result = run.execute()
    elapsed = time.perf_counter() - t0
    if plotter:
        plotter.stop.set()
        plotter.join()
    if result.status != "finished":
        raise SystemExit(f"daqapp run failed: {result.error}")
    from daqapp.storage import open_run

    with open_run(result.path) as stored:
        rate = steady_rate(stored.column("time"))
    return elapsed, result.rows, rate


def run_pymeasure(conn, folder: Path, points: int, plot: bool) -> tuple[float, int, float]:
    from pymeasure.experiment import Results, Worker

    procedure = _procedure(points)
    procedure.station = conn
    procedure.validate()
    path = folder / f"pymeasure_{time.monotonic_ns()}.csv"
    t0 = time.perf_counter()
    results = Results(procedure, str(path))
    worker = Worker(results)
    plotter = _Plotter(lambda: results.data["didv"]) if plot else None
    if plotter:
        plotter.start()
    worker.start()
    worker.join(timeout=3600)
    elapsed = time.perf_counter() - t0
    if plotter:
        plotter.stop.set()
        plotter.join()
    conn.to_safe_state()  # pymeasure's Worker knows nothing of the station's safe state
    data = Results.load(str(path)).data
    if len(data) == 0:
        raise SystemExit("pymeasure run recorded no rows")
    return elapsed, len(data), steady_rate(data["time"])


def set_nagle(conn, on: bool) -> list[str]:
    """Nagle's algorithm on or off on every socket link (the drivers open them with it off,
    ``drivers.base.disable_nagle``; ``--nagle`` turns it on to show what it costs)."""
    from drivers.base import disable_nagle

    return [role for role, adapter in conn.roles.items()
            if disable_nagle(adapter.instrument, disable=not on)]


def run_bare(conn, points: int) -> tuple[float, int, float]:
    """The procedure's own loop and nothing else: rows appended to a list, no file, no
    snapshots, no safe state (the floor any recording stack adds to)."""
    procedure = _procedure(points)
    procedure.station = conn
    rows: list[dict] = []
    procedure.emit = lambda kind, payload=None, *a, **k: (
        rows.append(payload) if kind == "results" else None)
    t0 = time.perf_counter()
    procedure.startup()
    try:
        procedure.execute()
    finally:
        procedure.shutdown()
    elapsed = time.perf_counter() - t0
    return elapsed, len(rows), steady_rate([row["time"] for row in rows])


def measure_in_process(points: int, repeats: int) -> dict[str, float]:
    """Points/s with the instruments in this process (``simulators.inprocess``: the same
    drivers and emulator physics, no TCP round trip), where only the stacks differ: daqapp's
    Run + HDF5, pymeasure's Worker + CSV, and the bare loop. Interleaved, medians."""
    from daqapp.station import Station
    from simulators.inprocess import in_process

    rates: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, \
            Station.simulated(speed=1e4, wiring={"dc_voltage_reader": "lockin_aux_in"}) \
            .connect() as conn:
        in_process(conn)
        folder = Path(tmp)
        run_daqapp(conn, folder, 21, False)  # warm-up
        paths = [("daqapp", lambda: run_daqapp(conn, folder, points, False)),
                 ("pymeasure", lambda: run_pymeasure(conn, folder, points, False)),
                 ("bare loop", lambda: run_bare(conn, points))]
        for repeat in range(repeats):
            for name, runner in (paths if repeat % 2 == 0 else paths[::-1]):
                rates.setdefault(name, []).append(runner()[2])
    return {name: statistics.median(values) for name, values in rates.items()}


def measure(points: int, repeats: int, nodelay: bool) -> dict[str, float]:
    from daqapp.station import Station

    rates: dict[str, list[float]] = {}
    totals: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, \
            Station.simulated(speed=1e4, wiring={"dc_voltage_reader": "lockin_aux_in"}) \
            .connect() as conn:
        if not nodelay:
            set_nagle(conn, True)
        folder = Path(tmp)
        run_daqapp(conn, folder, 21, False)  # warm-up: imports, first h5py file, sockets
        paths = [("daqapp", run_daqapp), ("pymeasure", run_pymeasure)]
        for repeat in range(repeats):  # interleaved, order alternating, so drifts of the
            for plot in (False, True):  # shared machine hit both paths alike
                for name, runner in (paths if repeat % 2 == 0 else paths[::-1]):
                    elapsed, rows, rate = runner(conn, folder, points, plot)
                    key = f"{name}{'+plot' if plot else ''}"
                    rates.setdefault(key, []).append(rate)
                    totals.setdefault(key, []).append(elapsed)
    return ({key: statistics.median(values) for key, values in rates.items()},
            {key: statistics.median(values) for key, values in totals.items()},
            {key: (min(values), max(values)) for key, values in rates.items()})


def recording_cost(rows: int, plot: bool) -> dict[str, float]:
    """µs per point that recording costs the acquisition thread, and total CPU per point
    (all threads, so daqapp's writer thread counts), without instruments: the same record
    emitted ``rows`` times into each path. With ``plot``, a plot refreshes every 0.1 s
    meanwhile (pymeasure: ``Results.data`` re-reads the CSV; daqapp: the RunBuffer)."""
    from pymeasure.experiment import Results, Worker
    from pymeasure.experiment.listeners import Recorder

    from daqapp.runner.recording import RunRecorder
    from daqapp.storage import RunBuffer
    from procedures.lockin_spectrum import SPECTRUM_COLUMNS

    record = {name: 1.234567e-6 * (i + 1) for i, name in enumerate(SPECTRUM_COLUMNS)}
    record["sweep"] = 0
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        procedure = _procedure(rows)
        recorder = RunRecorder(Path(tmp) / "cost.h5", procedure, None, {})
        buffer = RunBuffer(procedure.column_units())
        recorder.listeners.append(lambda e: buffer.append(e.payload) if e.kind == "record"
                                  else None)
        recorder.open()
        plotter = _Plotter(lambda: buffer.column("didv")) if plot else None
        if plotter:
            plotter.start()
        cpu0, t0 = time.process_time(), time.perf_counter()
        for _ in range(rows):
            recorder.handle("results", record)
        out["daqapp_us"] = (time.perf_counter() - t0) / rows * 1e6
        if plotter:
            plotter.stop.set()
            plotter.join()
        recorder.close("finished")
        out["daqapp_cpu_us"] = (time.process_time() - cpu0) / rows * 1e6

        results = Results(_procedure(rows), str(Path(tmp) / "cost.csv"))
        worker = Worker(results)
        worker.recorder = Recorder(results, worker.recorder_queue)
        worker.recorder.start()
        plotter = _Plotter(lambda: results.data["didv"]) if plot else None
        if plotter:
            plotter.start()
        cpu0, t0 = time.process_time(), time.perf_counter()
        for _ in range(rows):
            worker.emit("results", record)
        out["pymeasure_us"] = (time.perf_counter() - t0) / rows * 1e6
        if plotter:
            plotter.stop.set()
            plotter.join()
        worker.recorder.stop()
        out["pymeasure_cpu_us"] = (time.process_time() - cpu0) / rows * 1e6
    return out


def _verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=500, help="points per spectrum")
    parser.add_argument("--repeats", type=int, default=3, help="runs per path (median kept)")
    parser.add_argument("--cost-rows", type=int, default=50_000,
                        help="records for the per-point recording cost")
    parser.add_argument("--storage-rows", type=int, default=300_000,
                        help="rows for the HDF5 writer rate (bench/storage.py)")
    parser.add_argument("--nagle", action="store_true",
                        help="leave Nagle's algorithm on (sockets as the drivers open them)")
    parser.add_argument("--skip-storage", action="store_true",
                        help="skip the HDF5 writer rate and 10^6-point memory figures")
    args = parser.parse_args()

    print(f"Lock-in dI/dV spectrum, {args.points} points, virtual lab at speed 10^4 "
          f"(instrument delays ~0), median of {args.repeats}, TCP_NODELAY "
          f"{'off (Nagle on)' if args.nagle else 'on'}")
    rates, totals, spread = measure(args.points, args.repeats, nodelay=not args.nagle)
    for plot in (False, True):
        suffix = "+plot" if plot else ""
        ours, theirs = rates[f"daqapp{suffix}"], rates[f"pymeasure{suffix}"]
        label = "with a live plot refreshed every 0.1 s" if plot else "headless"
        print(f"  {label} (acquisition loop, first to last point):")
        print(f"    daqapp (HDF5 RunWriter)      {ours:10.1f} points/s   target >= "
              f"{TARGET_POINTS_PER_S:.0f} points/s   {_verdict(ours >= TARGET_POINTS_PER_S)}")
        print(f"    pymeasure (Worker + CSV)     {theirs:10.1f} points/s")
        low, high = spread[f"daqapp{suffix}"]
        plow, phigh = spread[f"pymeasure{suffix}"]
        print(f"    run-to-run range             daqapp {low:.0f}-{high:.0f}, pymeasure "
              f"{plow:.0f}-{phigh:.0f} points/s (shared machine)")
        print(f"    speed-up daqapp / pymeasure  {ours / theirs:10.2f} x        target >  "
              f"{TARGET_SPEEDUP:.0f} x           {_verdict(ours / theirs > TARGET_SPEEDUP)}")
        print(f"    whole run incl. bookends     daqapp {totals[f'daqapp{suffix}']:.2f} s "
              f"(file, start/end snapshots of 5 instruments, safe state), pymeasure "
              f"{totals[f'pymeasure{suffix}']:.2f} s (none of these)")
    inproc = measure_in_process(args.points, args.repeats)
    print(f"Instruments in this process (same drivers and emulators, no sockets), "
          f"{args.points} points, median of {args.repeats}: only the stacks differ")
    for name, rate in inproc.items():
        print(f"    {name:28s} {rate:10.1f} points/s   {rate / inproc['bare loop']:5.2f} x "
              "the bare loop")
    print(f"    speed-up daqapp / pymeasure  {inproc['daqapp'] / inproc['pymeasure']:10.2f} x")
    for plot in (False, True):
        cost = recording_cost(args.cost_rows, plot)
        print(f"Recording cost per point, {args.cost_rows:,} records of the spectrum's 14 "
              f"columns, no instruments, {'plot refreshed every 0.1 s' if plot else 'no plot'}")
        print(f"  acquisition thread   daqapp {cost['daqapp_us']:8.1f} us   pymeasure "
              f"{cost['pymeasure_us']:8.1f} us   target daqapp < pymeasure   "
              f"{_verdict(cost['daqapp_us'] < cost['pymeasure_us'])}")
        print(f"  all threads (CPU)    daqapp {cost['daqapp_cpu_us']:8.1f} us   pymeasure "
              f"{cost['pymeasure_cpu_us']:8.1f} us   (daqapp incl. its HDF5 writer thread)")
    sys.stdout.flush()
    if not args.skip_storage:
        storage = ROOT / "bench" / "storage.py"
        subprocess.run([sys.executable, str(storage), "--rows", str(args.storage_rows)],
                       check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
