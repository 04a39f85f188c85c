"""HDF5 run storage: the RunWriter against plain h5py, measured side by side in one run.

Each figure is printed beside its target, as a ratio to a baseline measured in the same run:

1. Writer speed: rows per second from records to a closed file (the records are built before
   the clock starts: building them is the producer's cost, the same for both; both clocks start
   once the file and its datasets exist), for a 10-column
   spectrum record handed over in batches of 1024 rows (what the runner's row batcher does).
   Baseline: plain h5py, the same records and batches, one 1-D chunked resizable dataset per
   column (chunks of 4096 rows), each batch converted with ``np.fromiter`` and appended by one
   resize + slice assignment per column, SWMR on and a flush every 0.5 s like the writer's
   crash-safety promise. Target ≥ 0.7×.
2. Bytes per row of the finished file, against the baseline's file. Target ≤ 1.1×.
3. Writer slowdown while a SWMR reader process follows the file (``open_run`` + ``refresh``
   + read the new rows, every 50 ms), against the writer alone. Target ≤ 5 %. For scale, the
   same for the plain writer followed by a plain h5py SWMR reader. Printed twice: as wall-clock
   rate, and as the writer's own CPU time per row (on a machine whose cores are busy, any
   reader's CPU time is taken from the writer's wall clock, whatever the reader does).
4. Peak RSS increase of a 10^6-point run, writer plus the in-memory RunBuffer the plots use.

Writer and baseline runs are interleaved and repeated (``--repeats``, medians), each in a
fresh subprocess so neither inflates the other's memory or caches.
Usage: ``python bench/storage.py [--rows N] [--repeats N] [--memory-rows N]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

COLUMNS = {"bias_current": "A", "dc_voltage": "V", "x": "V", "y": "V", "dvdi": "ohm",
           "didv": "S", "temperature": "K", "field": "T", "time": "s", "sweep": ""}
POINTS_PER_SWEEP = 1001
BATCH_ROWS = 1024
CHUNK_ROWS = 4096
FLUSH_S = 0.5
POLL_S = 0.05
TARGET_SPEED = 0.7
TARGET_BYTES = 1.1
TARGET_READER_SLOWDOWN = 0.05
TARGET_MEMORY_MB = 200.0


def _record(k: int) -> dict[str, float]:
    i = k % POINTS_PER_SWEEP
    v = (i - 500) * 1e-5
    return {"bias_current": v / 48e3, "dc_voltage": v, "x": 1e-6 * (1 + v), "y": 1e-9,
            "dvdi": 50.0 + v, "didv": 1 / (50.0 + v), "temperature": 2.0,
            "field": 0.0, "time": 1.7e9 + k * 1e-3, "sweep": float(k // POINTS_PER_SWEEP)}


def _batches(rows: int):
    for lo in range(0, rows, BATCH_ROWS):
        yield [_record(k) for k in range(lo, min(rows, lo + BATCH_ROWS))]


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def _write_daqapp(path: str, rows: int, with_buffer: bool = False, ready: str = "") -> dict:
    """The RunWriter; the records are built before the clock starts, except for the memory
    run (whose point is what a long run holds, not the records waiting to be written)."""
    from daqapp.storage import RunBuffer, RunWriter

    w = RunWriter(path, procedure="bench.storage", parameters={"rows": {"value": rows,
                                                                        "units": ""}},
                  columns=COLUMNS, sweep_axis="dc_voltage", flush_interval=FLUSH_S)
    buf = None
    if with_buffer:
        buf = RunBuffer(COLUMNS)
        w.add_listener(buf)
    batches = _batches(rows) if with_buffer else list(_batches(rows))
    w.start(snapshot={"bench": True})
    _let_reader_in(ready)
    t0, c0 = time.perf_counter(), time.process_time()
    for batch in batches:
        w.extend(batch)
    w.finish()
    return {"rows": w.rows_written, "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0,
            "buffer_rows": len(buf) if buf is not None else 0}


def _write_plain(path: str, rows: int, ready: str = "") -> dict:
    """The baseline: what a careful hand-written h5py logger does."""
    import h5py
    import numpy as np

    batches = list(_batches(rows))
    f = h5py.File(path, "w", libver="latest")
    g = f.create_group("data")
    names = list(COLUMNS)
    ds = {n: g.create_dataset(n, shape=(0,), maxshape=(None,), dtype="f8",
                              chunks=(CHUNK_ROWS,), fillvalue=np.nan) for n in names}
    f.swmr_mode = True
    _let_reader_in(ready)
    t0, c0 = time.perf_counter(), time.process_time()  # as for the RunWriter after start()
    n_done = 0
    last_flush = time.monotonic()
    for batch in batches:
        n = len(batch)
        for name in names:
            col = np.fromiter((r[name] for r in batch), dtype="f8", count=n)
            d = ds[name]
            d.resize((n_done + n,))
            d[n_done:n_done + n] = col
        n_done += n
        if time.monotonic() - last_flush >= FLUSH_S:
            f.flush()
            last_flush = time.monotonic()
    f.close()
    return {"rows": n_done, "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0}


def _follow(path: str, ready: str, how: str) -> None:
    """A SWMR reader process: follow the run until it ends, then print what it saw.

    ``how`` = "daqapp" (``open_run`` + ``refresh`` + ``read_rows``) or "plain" (h5py SWMR
    reader: ``refresh`` + slice of every column). Imports happen before the clock starts.
    """
    import h5py

    from daqapp.storage import open_run

    print("imported", flush=True)
    while not os.path.exists(ready):
        time.sleep(0.005)
    polls = rows = 0
    if how == "daqapp":
        with open_run(path) as run:
            seen = 0
            while True:
                n = run.refresh()
                if n > seen:
                    rows += len(run.read_rows(seen, n)["didv"])
                    seen = n
                polls += 1
                if run.raw_status != "running":
                    break
                time.sleep(POLL_S)
    else:
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            ds = [f["data"][name] for name in COLUMNS]
            seen = 0
            while not os.path.exists(ready + ".done"):
                for d in ds:
                    d.refresh()
                n = min(d.shape[0] for d in ds)
                if n > seen:
                    rows += len([d[seen:n] for d in ds][0])
                    seen = n
                polls += 1
                time.sleep(POLL_S)
    print(json.dumps({"polls": polls, "rows_seen": rows}))


def _with_reader(path: str, rows: int, ready: str, how: str) -> dict:
    """Write ``rows`` (daqapp or plain) while a reader process follows the file."""
    reader = subprocess.Popen([sys.executable, __file__, "--follow", path, ready, how],
                              stdout=subprocess.PIPE, text=True)
    assert reader.stdout is not None
    assert reader.stdout.readline().strip() == "imported"
    if how == "daqapp":
        result = _write_daqapp(path, rows, ready=ready)
    else:
        result = _write_plain(path, rows, ready=ready)
        open(ready + ".done", "w").close()
    out, _ = reader.communicate(timeout=120)
    result["reader"] = json.loads(out.strip().splitlines()[-1])
    return result


def _let_reader_in(ready: str) -> None:
    """Tell a waiting reader process the file is there; give it time to open it."""
    if ready:
        open(ready, "w").close()
        time.sleep(0.2)


def _child(mode: str, rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.h5")
        import daqapp.storage  # noqa: F401 - import cost is not the run's memory

        ready = os.path.join(tmp, "ready")
        if mode == "plain":
            result = _write_plain(path, rows)
        elif mode in ("reader", "plain_reader"):
            result = _with_reader(path, rows, ready, "daqapp" if mode == "reader" else "plain")
        else:
            base = _rss_mb()
            result = _write_daqapp(path, rows, with_buffer=(mode == "memory"))
            result["rss_base_mb"] = base
            result["rss_peak_mb"] = _peak_mb()
        result["file_bytes"] = os.path.getsize(path)
    print(json.dumps(result))


def _run_child(mode: str, rows: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--rows", str(rows)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000, help="rows per writer run")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats (medians)")
    parser.add_argument("--memory-rows", type=int, default=1_000_000,
                        help="rows for the memory test (the target is for 10^6)")
    parser.add_argument("--child", choices=["rate", "plain", "reader", "plain_reader",
                                            "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--follow", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.follow:
        _follow(*args.follow)
        return 0
    if args.child:
        _child(args.child, args.rows)
        return 0

    runs: dict[str, list[dict]] = {"plain": [], "rate": [], "reader": [], "plain_reader": []}
    for _ in range(args.repeats):
        for mode in runs:
            runs[mode].append(_run_child(mode, args.rows))

    def rate(mode: str) -> float:
        return statistics.median(r["rows"] / r["seconds"] for r in runs[mode])

    def cpu_per_row(mode: str) -> float:
        return statistics.median(r["cpu_seconds"] / r["rows"] for r in runs[mode])

    def bytes_per_row(mode: str) -> float:
        return statistics.median(r["file_bytes"] / r["rows"] for r in runs[mode])

    plain, daq, followed = rate("plain"), rate("rate"), rate("reader")
    plain_followed = rate("plain_reader")
    speed = daq / plain
    size = bytes_per_row("rate") / bytes_per_row("plain")
    slowdown = 1.0 - followed / daq
    plain_slowdown = 1.0 - plain_followed / plain
    cpu_slowdown = cpu_per_row("reader") / cpu_per_row("rate") - 1.0
    plain_cpu_slowdown = cpu_per_row("plain_reader") / cpu_per_row("plain") - 1.0
    polls = statistics.median(r["reader"]["polls"] for r in runs["reader"])
    print(f"HDF5 writer, 10-column records, {args.rows:,} rows in batches of {BATCH_ROWS}, "
          f"sweeps of {POINTS_PER_SWEEP} points; medians of {args.repeats} interleaved runs")
    print(f"  plain h5py baseline {plain:12,.0f} rows/s   {bytes_per_row('plain'):7.2f} B/row")
    print(f"  daqapp RunWriter    {daq:12,.0f} rows/s   {bytes_per_row('rate'):7.2f} B/row")
    print(f"  writer speed        {speed:12.2f} x plain   target >= {TARGET_SPEED:.1f} x     "
          f"{_verdict(speed >= TARGET_SPEED)}")
    print(f"  bytes per row       {size:12.3f} x plain   target <= {TARGET_BYTES:.1f} x     "
          f"{_verdict(size <= TARGET_BYTES)}")
    print(f"  with a SWMR reader  {followed:12,.0f} rows/s   ({polls:.0f} polls of "
          f"{POLL_S * 1e3:.0f} ms)")
    print(f"  reader slowdown     {slowdown * 100:12.1f} %         target <= "
          f"{TARGET_READER_SLOWDOWN * 100:.0f} %         "
          f"{_verdict(slowdown <= TARGET_READER_SLOWDOWN)}   (wall clock)")
    print(f"  writer CPU per row  {cpu_slowdown * 100:+12.1f} %         target <= "
          f"{TARGET_READER_SLOWDOWN * 100:.0f} %         "
          f"{_verdict(cpu_slowdown <= TARGET_READER_SLOWDOWN)}   (the writer's own CPU time)")
    print(f"  for scale, plain h5py writer + plain h5py SWMR reader: {plain_followed:,.0f} "
          f"rows/s, slowdown {plain_slowdown * 100:.1f} % wall clock, "
          f"{plain_cpu_slowdown * 100:+.1f} % writer CPU")

    mem = _run_child("memory", args.memory_rows)
    increase = mem["rss_peak_mb"] - mem["rss_base_mb"]
    print(f"{mem['rows']:,}-point run, writer + in-memory RunBuffer (plots)")
    print(f"  peak RSS increase {increase:12.1f} MB       target <= {TARGET_MEMORY_MB:.0f} MB"
          f"          {_verdict(increase <= TARGET_MEMORY_MB)}")
    print(f"  file size         {mem['file_bytes'] / 2**20:12.1f} MB       "
          f"({mem['rows'] / mem['seconds']:,.0f} rows/s in this run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
