"""SIGKILL a writer process at random instants, then read, recover and recover in place.

Two kinds of writer (this file run as a script): ``rows`` streams rows (with fits and log
lines added under SWMR) and reports every flush; ``fits`` finishes a run and then appends fits
to it without end, so the kill lands in ``append_fit`` or its fit-group write. Each killed file
must be readable by daqapp with every row the writer had reported flushed, must lose at most
1 s of rows, and both recoveries must give a file plain h5py opens with all of those rows.

6 kill instants by default; all 40 with ``DAQAPP_RELIABILITY_FULL=1``.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib.util
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

FULL = os.environ.get("DAQAPP_RELIABILITY_FULL") == "1"
N_KILLS = 40 if FULL else 6
#: Rows the writer appends per second (in steps of 10 ms).
RATE = 2000
MAX_LOSS_S = 1.0
FIT = {"model": "s", "params": {"delta1": {"value": 1.2, "stderr": 0.1, "vary": True}},
       "chi2_red": 1.1, "covariance": [[0.01]], "param_names": ["delta1"]}


def _instants() -> list[tuple[str, float]]:
    rng = random.Random(1616)
    return [("fits" if k % 3 == 2 else "rows", rng.uniform(0.3, 2.5)) for k in range(N_KILLS)]


def _env() -> dict[str, str]:
    root = str(Path(__file__).parents[2])
    return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _kill_at(path: Path, mode: str, after_s: float) -> tuple[int, float, float]:
    """Start a writer, SIGKILL it ``after_s`` s after its first row; (flushed, t_kill, t0)."""
    proc = subprocess.Popen([sys.executable, __file__, mode, str(path)], stdout=subprocess.PIPE,
                            text=True, env=_env())
    flushed = 0
    try:
        line = proc.stdout.readline().split()
        assert line[0] == "started", line
        t0 = float(line[1])
        os.set_blocking(proc.stdout.fileno(), False)
        deadline = time.monotonic() + after_s
        while time.monotonic() < deadline:
            time.sleep(0.005)
            for text in iter(proc.stdout.readline, ""):
                fields = text.split()
                if fields and fields[0] == "flushed":
                    flushed = max(flushed, int(fields[1]))
        t_kill = time.time()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
    for text in proc.stdout.read().splitlines() if proc.stdout else []:
        fields = text.split()
        if fields and fields[0] == "flushed":  # printed before the kill landed
            flushed = max(flushed, int(fields[1]))
    return flushed, t_kill, t0


def _check_plain(path: Path, flushed: int) -> int:
    """Plain h5py (and nexusformat, if installed) open it; every dataset reads; rows."""
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: obj[()] if isinstance(obj, h5py.Dataset) else None)
        index = f["entry/data/index"][()]
        assert f["entry/daqapp"].attrs["status"] in ("interrupted", "finished")
    assert index.shape[0] >= flushed
    np.testing.assert_array_equal(index, np.arange(index.shape[0], dtype=float))
    if importlib.util.find_spec("nexusformat") is not None:
        from nexusformat.nexus import nxload

        nxload(str(path)).nxfile.close()
    return int(index.shape[0])


@pytest.mark.timeout(180)
def test_sigkill_at_random_instants_is_read_and_recovered(tmp_path):
    from daqapp.storage import open_run
    from daqapp.storage.recover import needs_recovery, recover_run

    losses = []
    cases = _instants()
    for start in range(0, len(cases), 3):  # three writers at a time on two cores
        batch = cases[start:start + 3]
        results = []
        procs = []
        with cf.ThreadPoolExecutor(len(batch)) as pool:
            for k, (mode, after) in enumerate(batch, start=start):
                path = tmp_path / f"kill{k:02d}_{mode}.h5"
                procs.append((path, mode, after, pool.submit(_kill_at, path, mode, after)))
            for path, mode, after, fut in procs:
                results.append((path, mode, after, *fut.result()))
        for path, mode, after, flushed, t_kill, t0 in results:
            what = f"{path.name} killed after {after:.2f} s"
            with open_run(path) as run:
                n = run.n_rows
                assert n >= flushed, what
                np.testing.assert_array_equal(run.column("index"), np.arange(n, dtype=float))
                last = float(run.column("time")[-1]) if n else t0
                _ = (run.fit_list, run.log, run.sweeps())
            if mode == "rows":
                losses.append(t_kill - last)
                assert t_kill - last <= MAX_LOSS_S, f"{what}: lost {t_kill - last:.2f} s"
            else:
                assert n == 2000, what  # the run was complete before the fits began
            copy = recover_run(path, tmp_path / f"{path.stem}_copy.h5")
            assert _check_plain(copy.path, flushed) == n, what
            in_place = tmp_path / f"{path.stem}_inplace.h5"
            shutil.copy(path, in_place)
            if needs_recovery(in_place):
                recover_run(in_place, in_place=True)
            assert _check_plain(in_place, flushed) == n, what
            assert not needs_recovery(in_place)
    if losses:
        print(f"\nSIGKILL data loss over {len(losses)} kills: max {max(losses):.2f} s, "
              f"median {float(np.median(losses)):.2f} s")


# --------------------------------------------------------------------------- the writers
def _rows_writer(path: str) -> None:
    from daqapp.storage import RunWriter

    w = RunWriter(path, procedure="tests.kill_recovery", columns={
        "index": "", "time": "s", "dc_voltage": "V", "didv": "S", "sweep": ""},
        sweep_axis="dc_voltage")
    w.start(snapshot={"lockin": {"tau": 0.1}})
    print("started", time.time(), flush=True)
    i, reported = 0, 0
    next_step = time.monotonic()
    while True:
        for _ in range(RATE // 100):
            w.append({"index": float(i), "time": time.time(), "dc_voltage": (i % 200) * 1e-5,
                      "didv": 0.02 + 1e-6 * i, "sweep": i // 200})
            i += 1
        if i % 400 == 0:
            w.add_fit(f"sweep{i // 200}", FIT)
            w.log("INFO", f"sweep {i // 200} done")
        if w.rows_flushed > reported:
            reported = w.rows_flushed
            print("flushed", reported, flush=True)
        next_step += 0.01
        time.sleep(max(0.0, next_step - time.monotonic()))


def _fits_writer(path: str) -> None:
    from daqapp.storage import RunWriter, append_fit

    w = RunWriter(path, procedure="tests.kill_recovery", columns={
        "index": "", "time": "s", "dc_voltage": "V", "didv": "S", "sweep": ""},
        sweep_axis="dc_voltage")
    w.start()
    for i in range(2000):
        w.append({"index": float(i), "time": time.time(), "dc_voltage": (i % 200) * 1e-5,
                  "didv": 0.02, "sweep": i // 200})
    w.add_fit("sweep0", FIT)
    w.finish("finished")
    print("started", time.time(), flush=True)
    print("flushed", 2000, flush=True)
    k = 0
    while True:
        append_fit(path, f"refit{k % 5}", dict(FIT, chi2_red=1.0 + k))
        k += 1


if __name__ == "__main__":
    {"rows": _rows_writer, "fits": _fits_writer}[sys.argv[1]](sys.argv[2])
