"""HDF5 run storage speed and memory, each figure printed beside its target.

1. Rows per second the RunWriter sustains for a 10-column record, appended as fast as the
   producing thread can (end to end: append → writer thread → file closed).
2. Peak RSS increase of a 10^6-point run, writer plus the in-memory RunBuffer the plots use.

Each measurement runs in a fresh subprocess, so one cannot inflate the other's memory.
Usage: ``python bench/storage.py [--rows N] [--memory-rows N]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

COLUMNS = {"bias_current": "A", "dc_voltage": "V", "x": "V", "y": "V", "dvdi": "ohm",
           "didv": "S", "temperature": "K", "field": "T", "time": "s", "sweep": ""}
TARGET_ROWS_PER_S = 50_000
TARGET_MEMORY_MB = 200.0
POINTS_PER_SWEEP = 1001


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def _write_run(path: str, rows: int, with_buffer: bool) -> dict:
    from daqapp.storage import RunBuffer, RunWriter

    w = RunWriter(path, procedure="bench.storage", parameters={"rows": {"value": rows,
                                                                        "units": ""}},
                  columns=COLUMNS, sweep_axis="dc_voltage")
    buf = None
    if with_buffer:
        buf = RunBuffer(COLUMNS)
        w.add_listener(buf)
    w.start(snapshot={"bench": True})
    t0 = time.perf_counter()
    for k in range(rows):
        i = k % POINTS_PER_SWEEP
        v = (i - 500) * 1e-5
        w.append({"bias_current": v / 48e3, "dc_voltage": v, "x": 1e-6 * (1 + v), "y": 1e-9,
                  "dvdi": 50.0 + v, "didv": 1 / (50.0 + v), "temperature": 2.0,
                  "field": 0.0, "time": k * 1e-3, "sweep": k // POINTS_PER_SWEEP})
    t_append = time.perf_counter() - t0
    w.finish()
    t_total = time.perf_counter() - t0
    return {"rows": w.rows_written, "t_append": t_append, "t_total": t_total,
            "buffer_rows": len(buf) if buf is not None else 0}


def _child(mode: str, rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.h5")
        import daqapp.storage  # noqa: F401 - import cost is not the run's memory

        base = _rss_mb()
        result = _write_run(path, rows, with_buffer=(mode == "memory"))
        result["rss_base_mb"] = base
        result["rss_peak_mb"] = _peak_mb()
        result["file_mb"] = os.path.getsize(path) / 2**20
    print(json.dumps(result))


def _run_child(mode: str, rows: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--rows", str(rows)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000, help="rows for the rate test")
    parser.add_argument("--memory-rows", type=int, default=1_000_000,
                        help="rows for the memory test (the target is for 10^6)")
    parser.add_argument("--child", choices=["rate", "memory"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.rows)
        return 0

    rate = _run_child("rate", args.rows)
    rows_per_s = rate["rows"] / rate["t_total"]
    append_us = rate["t_append"] / rate["rows"] * 1e6
    print(f"HDF5 writer, 10-column records, {rate['rows']:,} rows "
          f"(2-D sweeps of {POINTS_PER_SWEEP} points on)")
    print(f"  sustained rate    {rows_per_s:12,.0f} rows/s   target >= {TARGET_ROWS_PER_S:,} "
          f"rows/s   {_verdict(rows_per_s >= TARGET_ROWS_PER_S)}")
    print(f"  append() cost     {append_us:12.2f} us/row   (producer side, record built incl.)")

    mem = _run_child("memory", args.memory_rows)
    increase = mem["rss_peak_mb"] - mem["rss_base_mb"]
    print(f"{mem['rows']:,}-point run, writer + in-memory RunBuffer (plots)")
    print(f"  peak RSS increase {increase:12.1f} MB       target <= {TARGET_MEMORY_MB:.0f} MB"
          f"          {_verdict(increase <= TARGET_MEMORY_MB)}")
    print(f"  file size         {mem['file_mb']:12.1f} MB       "
          f"({mem['rows'] / mem['t_total']:,.0f} rows/s in this run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
