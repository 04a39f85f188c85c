"""Crash safety and live reading across processes: the two promises of the run file."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from daqapp.errors import DataFileError
from daqapp.storage import list_runs, open_run
from daqapp.storage import reader as reader_module
from daqapp.storage.recover import recover_run

CHILD = Path(__file__).with_name("swmr_child.py")


def _spawn(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(CHILD), str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    return proc


def _command(proc: subprocess.Popen, line: str) -> str:
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    return proc.stdout.readline().strip()


@pytest.mark.timeout(60)
def test_sigkill_leaves_readable_file_with_flushed_rows(tmp_path, monkeypatch):
    path = tmp_path / "killed.h5"
    proc = _spawn(path)
    try:
        assert _command(proc, "rows 120") == "flushed 120"
        proc.stdin.write("unflushed 7\n")
        proc.stdin.flush()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    with open_run(path) as run:
        assert run.raw_status == "running"
        assert run.status == "interrupted"
        assert not run.finished and not run.is_live
        n = run.n_rows
        assert 120 <= n <= 127
        # every row present is complete and in order, none garbled
        np.testing.assert_array_equal(run.column("didv"), np.arange(n, dtype=float))
        np.testing.assert_allclose(run.column("dc_voltage"), np.arange(n) * 1e-3)
        assert run.snapshots == {"start": {"lockin": {"idn": "SR830"}}, "end": None}
        assert run.parameters == {"step": {"value": 1e-3, "units": "V"}}
        sweeps = run.sweeps()
        assert [s.n_points for s in sweeps[:2]] == [50, 50]
        np.testing.assert_array_equal(sweeps[1].columns["didv"], np.arange(50, 100.0))
    # without OFD locks the heartbeat decides: fresh → running, stale → interrupted
    monkeypatch.setattr(reader_module, "writer_alive", lambda path: None)
    with open_run(path) as run:
        assert run.status == "running"
        monkeypatch.setattr(reader_module, "HEARTBEAT_STALE_S", 0.0)
        assert run.status == "interrupted"
    monkeypatch.undo()

    [summary] = list_runs(tmp_path)
    assert summary.status == "interrupted" and summary.n_rows == n

    # other tools refuse the killed file until it is recovered into a clean copy
    with pytest.raises(OSError):
        h5py.File(path, "r")
    fixed = recover_run(path).path
    with h5py.File(fixed, "r") as f:
        assert f["entry/daqapp"].attrs["status"] == "interrupted"
        assert f["entry/data/didv"].shape == (n,)
    with open_run(fixed) as run:
        assert run.status == "interrupted" and not run.finished
        np.testing.assert_array_equal(run.column("didv"), np.arange(n, dtype=float))
        assert run.sweeps()[1].n_points == 50


@pytest.mark.timeout(60)
def test_second_process_follows_growing_run(tmp_path):
    path = tmp_path / "live.h5"
    proc = _spawn(path)
    try:
        assert _command(proc, "rows 30") == "flushed 30"
        run = open_run(path)
        assert run.status == "running" and run.is_live
        assert run.n_rows == 30
        seen = [run.n_rows]
        handle = run.file
        for total in (75, 160):
            assert _command(proc, f"rows {total - seen[-1]}") == f"flushed {total}"
            seen.append(run.refresh())
            assert run.file is handle  # followed in place, not reopened per poll
            np.testing.assert_array_equal(run.column("didv"), np.arange(total, dtype=float))
            np.testing.assert_array_equal(run.read_rows(seen[-2])["didv"],
                                          np.arange(seen[-2], total, dtype=float))
        assert seen == [30, 75, 160]
        with pytest.raises(DataFileError, match="still being written"):
            recover_run(path, tmp_path / "copy.h5")
        assert [s.n_points for s in run.sweeps()] == [50, 50, 50, 10]
        assert run.sweep_segments()["offset"].tolist() == [0, 50, 100, 150]
        assert run.fit_list == [] and run.snapshots["end"] is None
        assert _command(proc, "finish") == "finished"
        proc.wait(10)
        run.refresh()
        assert run.status == "finished" and run.finished
        assert run.snapshots["end"] == {"lockin": {"idn": "SR830", "end": True}}
        assert run.n_rows == 160
        run.close()
    finally:
        if proc.poll() is None:
            proc.kill()
