"""The safe HDF5 open, in-place recovery, the writer's exit hook and the text bounds."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from daqapp import cli
from daqapp.errors import DataFileError
from daqapp.storage import h5safe, load_spectra, open_run, read_table
from daqapp.storage.recover import needs_recovery, recover_run, recovery_hint
from daqapp.storage.spectra import MAX_POINTS_PER_SPECTRUM

CHILD = Path(__file__).with_name("swmr_child.py")


def _env() -> dict[str, str]:
    root = str(Path(__file__).parents[2])
    return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _killed(path: Path, rows: int = 120) -> Path:
    proc = subprocess.Popen([sys.executable, str(CHILD), str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert proc.stdout.readline().strip() == "started"
        proc.stdin.write(f"rows {rows}\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == f"flushed {rows}"
    finally:
        proc.kill()
        proc.wait(10)
    return path


def test_superblock_is_parsed_and_its_checksum_checked(spectrum_run, tmp_path):
    sb = h5safe.read_superblock(spectrum_run)
    assert sb.version == 3 and not sb.open_for_write
    assert sb.eof == os.path.getsize(spectrum_run)
    data = bytearray(spectrum_run.read_bytes())
    data[20] ^= 0x10  # inside the stored end-of-file address
    bad = tmp_path / "bad.h5"
    bad.write_bytes(bytes(data))
    with pytest.raises(DataFileError, match="checksum mismatch"):
        open_run(bad)
    (tmp_path / "text.h5").write_text("not hdf5 at all")
    with pytest.raises(DataFileError, match="no HDF5 signature"):
        open_run(tmp_path / "text.h5")


def test_escape_shows_control_characters():
    assert h5safe.escape("a\x1b[31mb\rc\td\n") == "a\\x1b[31mb\\x0dc\td\\n"
    assert h5safe.escape("Δ ≥ 1 µV") == "Δ ≥ 1 µV"


@pytest.mark.timeout(60)
def test_in_place_recovery_of_a_killed_run(tmp_path, capsys):
    path = _killed(tmp_path / "killed.h5")
    assert needs_recovery(path)
    with pytest.raises(OSError):
        h5py.File(path, "r")
    assert cli.main(["runs", "list", str(tmp_path)]) == 0
    assert "runs recover --in-place" in capsys.readouterr().out
    assert len(recovery_hint(tmp_path)) == 1
    assert cli.main(["runs", "recover", "--in-place", str(path)]) == 0
    assert "fixed in place" in capsys.readouterr().out
    assert not needs_recovery(path) and recovery_hint(tmp_path) == []
    with h5py.File(path, "r") as f:
        assert f["entry/daqapp"].attrs["status"] == "interrupted"
        np.testing.assert_array_equal(f["entry/data/didv"][()], np.arange(120.0))
    with open_run(path) as run:
        assert run.status == "interrupted" and run.n_rows == 120
    assert cli.main(["runs", "recover", "--in-place", str(path)]) == 2
    assert "nothing to recover" in capsys.readouterr().err


def test_recovery_never_overwrites_and_leaves_no_partial_file(spectrum_run, tmp_path):
    out = tmp_path / "out.h5"
    out.write_bytes(b"keep")
    with pytest.raises(DataFileError, match="already exists"):
        recover_run(spectrum_run, out)
    assert out.read_bytes() == b"keep"
    result = recover_run(spectrum_run, tmp_path / "copy.h5")
    assert result.n_rows == 53 and result.lost == []
    with open_run(result.path) as run:
        assert run.status == "finished" and len(run.sweeps()) == 3 and run.fits
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.timeout(60)
def test_unfinished_writer_ends_failed_at_exit_instead_of_hanging(tmp_path):
    path = tmp_path / "abandoned.h5"
    script = ("import sys\nfrom daqapp.storage import RunWriter\n"
              "w = RunWriter(sys.argv[1], procedure='x', columns={'v': 'V', 'sweep': ''}, "
              "sweep_axis='v')\nw.start()\n"
              "for i in range(50000): w.append({'v': float(i), 'sweep': i // 2})\n"
              "raise SystemExit('left without finish')\n")
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", script, str(path)], timeout=40, env=_env(),
                   capture_output=True)
    assert time.monotonic() - t0 < 40
    with open_run(path) as run:
        assert run.raw_status == "failed" and "without finishing" in run.attrs["error"]
        assert run.n_rows == 50000


def test_text_tables_name_the_bad_line_and_bound_spectra(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("bias (mV), dI/dV\n" + "1, 2\n" * 70000 + "3\n" + "4, 5\n")
    with pytest.raises(DataFileError, match="line 70002: 1 columns, expected 2"):
        read_table(bad)
    long = tmp_path / "long.txt"
    long.write_bytes(b"bias (mV)\tdI/dV\n" + b"0.5\t1.0\n" * (MAX_POINTS_PER_SPECTRUM + 1))
    with pytest.raises(DataFileError, match=f"at most {MAX_POINTS_PER_SPECTRUM} per spectrum"):
        load_spectra(long)


def test_a_hanging_read_is_abandoned_by_the_probe(spectrum_run, monkeypatch):
    # importable by the probe's child under this name
    from tests.analysis._worker_faults import read_forever

    monkeypatch.setattr(h5safe, "_probe_reads", read_forever)
    monkeypatch.setattr(h5safe, "PROBE_TIMEOUT_S", 0.5)
    monkeypatch.setattr(h5safe, "_PROBED", set())
    t0 = time.monotonic()
    with pytest.raises(DataFileError, match="does not end within 0.5 s"):
        open_run(spectrum_run)
    assert time.monotonic() - t0 < 3


def test_the_probe_never_forks_this_process(spectrum_run, monkeypatch):
    """A fork while another thread is inside OpenBLAS can deadlock in OpenBLAS's fork
    handler (the window froze so once: its fit thread was busy when the runs browser opened
    a file). The probe's children come from a forkserver instead."""
    def no_fork():
        raise AssertionError("os.fork called in the reading process")

    monkeypatch.setattr(h5safe, "_PROBED", set())
    monkeypatch.setattr(os, "fork", no_fork)
    with open_run(spectrum_run) as run:
        assert run.n_rows > 0
    assert len(h5safe._PROBED) == 1  # probed (in a child), and the verdict kept


def test_writer_keeps_fit_groups_apart_from_the_data(spectrum_run):
    with h5py.File(spectrum_run, "r") as f:
        assert "sweep0" in f["entry/fit_results"] and "sweep0" not in f["entry/fits"]


def test_ctrl_c_during_the_probe_kills_the_child(spectrum_run, monkeypatch):
    import signal

    from tests.analysis._worker_faults import read_forever

    started = []
    real_start = h5safe._start_probe

    def start(*args):
        child = real_start(*args)
        started.append(child.pid)
        return child

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    monkeypatch.setattr(h5safe, "_probe_reads", read_forever)
    monkeypatch.setattr(h5safe, "_PROBED", set())
    monkeypatch.setattr(h5safe, "_start_probe", start)
    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            open_run(spectrum_run)
        assert time.monotonic() - t0 < 1.5
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    [pid] = started
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left running
        os.kill(pid, 0)
