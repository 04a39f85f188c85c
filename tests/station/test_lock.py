"""The station lock: one driving process per station, and recovery after its driver died.

Each test has its own lock folder (``DAQAPP_STATE_DIR``, set in tests/conftest.py). The
emulators' state is read at the virtual lab, as in tests/gui/test_main_window.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from daqapp import cli
from daqapp.runner import Run
from daqapp.runner.station_lock import track_run
from daqapp.station import Station, load_station
from daqapp.station import lock as L
from daqapp.storage import open_run

ROOT = Path(__file__).resolve().parents[2]
SAFE = {"source_output": False, "slvl": 0.004, "aux": [0.0, 0.0, 0.0, 0.0]}


def emulator_state(conn) -> dict:
    lockin = conn.lab.emulators["lockin"]
    return {"source_output": conn.lab.emulators["current_source"].output,
            "slvl": lockin.slvl, "aux": list(lockin.aux_out)}


def station() -> Station:
    return Station.simulated(speed=200.0, seed=3)


def impossible_pid() -> int:
    return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1


def write_lock(st: Station, **fields) -> Path:
    """A lock file as a process that is gone would have left it."""
    info = L.LockInfo.for_this_process(st, "run").to_dict()
    info.update(fields)
    path = L.lock_path(st)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))
    return path


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


HOLDER = """
import sys
from daqapp.station import Station
from daqapp.station.lock import StationLock
lock = StationLock.acquire(Station.simulated(speed=200.0, seed=3), "run")
print("held", flush=True)
sys.stdin.readline()
lock.release()
"""


@pytest.fixture
def holder():
    """Another live process holding the station's lock until the test ends."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env())
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.stdin.close()
    proc.wait(10)


# ---------------------------------------------------------------- acquire / refuse / release


def test_lock_records_the_process_and_is_removed_on_release():
    st = station()
    with L.StationLock.acquire(st, "run") as lock:
        data = json.loads(lock.path.read_text())
        assert data["pid"] == os.getpid()
        assert data["start_ticks"] == L.process_start_ticks(os.getpid())
        assert data["host"] and data["boot_id"] and data["command"]
        assert data["station_name"] == st.name and data["station_path"] == st.path
        assert data["run"] is None and lock.stale is None
        lock.set_run("some_run.h5")
        assert json.loads(lock.path.read_text())["run"] == str(Path("some_run.h5").resolve())
        lock.set_run(None)
        assert json.loads(lock.path.read_text())["run"] is None
        path = lock.path
    assert not path.exists()


def test_a_second_open_is_refused_naming_pid_and_command(holder):
    with pytest.raises(L.StationInUse) as refused:
        L.StationLock.acquire(station(), "gui")
    text = str(refused.value)
    assert f"pid {holder.pid}" in text and "-c" in text and "\n" not in text
    # the holder's lock is untouched by the refusal
    assert json.loads(L.lock_path(station()).read_text())["pid"] == holder.pid


def test_cli_run_on_a_station_in_use_exits_2_with_one_line(holder, tmp_path, capsys):
    rc = cli.main(["run", "iv", "--simulate", "--speed", "200", "--seed", "3",
                   "--output", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and f"in use by pid {holder.pid}" in err[0]
    assert not list(tmp_path.glob("*.h5"))  # nothing was created, nothing moved


def test_same_process_cannot_drive_one_station_twice():
    with L.connect_for_driving(station(), "gui") as conn:
        assert conn.lock is not None and conn.lock.held
        with pytest.raises(L.StationInUse):
            L.connect_for_driving(station(), "run")
    assert not L.lock_path(station()).exists()


def test_a_failed_connection_releases_the_lock(monkeypatch):
    import daqapp.station.connected as connected

    def broken(*args, **kwargs):
        raise connected.InstrumentError("lockin: no identification reply")

    monkeypatch.setattr(connected.ConnectedStation, "__init__", broken)
    with pytest.raises(connected.InstrumentError):
        L.connect_for_driving(station(), "run")
    assert not L.lock_path(station()).exists()


def test_the_run_file_follows_the_run(tmp_path):
    import procedures

    seen: list[str | None] = []
    with L.connect_for_driving(station(), "run") as conn:
        procedure = procedures.load("iv")()
        run = Run(procedure, station=conn, output_dir=tmp_path)
        track_run(conn, run)
        run.subscribe_records(
            lambda _r: seen.append(json.loads(conn.lock.path.read_text())["run"]))
        result = run.execute()
        assert result.ok
        assert set(seen) == {str(result.path.resolve())}
        assert json.loads(conn.lock.path.read_text())["run"] is None


# ---------------------------------------------------------------- stale locks


def test_lock_of_a_pid_that_cannot_exist_is_stale_and_the_station_is_put_safe():
    st = station()
    write_lock(st, pid=impossible_pid())
    stale = L.find_stale(st)
    assert stale is not None and "no longer running" in stale.reason
    lines: list[str] = []
    with L.connect_for_driving(st, "run", report=lines.append) as conn:
        assert emulator_state(conn) == SAFE  # the SR830 powers up at SLVL 1 V
        data = json.loads(conn.lock.path.read_text())
        assert data["pid"] == os.getpid() and "previous" not in data
    assert len(lines) == 1 and "put in its safe state" in lines[0]
    assert L.find_stale(st) is None and not L.lock_path(st).exists()


def test_declining_in_the_window_leaves_the_station_as_it_was():
    st = station()
    write_lock(st, pid=impossible_pid())
    asked = []
    lines: list[str] = []
    with L.connect_for_driving(st, "gui", ask=lambda s, c: asked.append(s) or False,
                               report=lines.append) as conn:
        assert emulator_state(conn)["slvl"] == 1.0  # untouched: the safe state came from
    assert asked and "NOT put in its safe state" in lines[0]  # the recovery, not connecting


def test_pid_reused_by_another_process_is_not_the_holder():
    st = station()
    ticks = L.process_start_ticks(os.getpid())
    write_lock(st, start_ticks=ticks + 12345)  # our pid, but "started" at another time
    stale = L.find_stale(st)
    assert stale is not None and "another process" in stale.reason
    with L.connect_for_driving(st, "run", report=lambda _line: None) as conn:
        assert emulator_state(conn) == SAFE


def test_lock_from_before_a_reboot_is_stale():
    st = station()
    write_lock(st, boot_id="00000000-dead-beef-0000-000000000000")
    assert "rebooted" in L.find_stale(st).reason


def test_unreadable_lock_file_counts_as_stale():
    st = station()
    path = L.lock_path(st)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"pid": ')  # killed while writing it
    with L.connect_for_driving(st, "run", report=lambda _line: None) as conn:
        assert emulator_state(conn) == SAFE


def test_a_lock_on_another_host_is_never_taken_over():
    st = station()
    write_lock(st, host="elsewhere.example", pid=impossible_pid())
    with pytest.raises(L.StationInUse, match="another host"):
        L.StationLock.acquire(st, "run")
    assert cli.main(["station", "unlock", str(L.lock_path(st))]) == 2
    assert cli.main(["station", "unlock", "--force", str(L.lock_path(st))]) == 0
    assert not L.lock_path(st).exists()


def _kill_a_run_mid_sweep(output: Path) -> tuple[int, Path]:
    """``daqapp run`` on the simulated station, SIGKILLed once rows are on disk."""
    proc = subprocess.Popen([sys.executable, "-m", "daqapp.cli", "run", "didv-lockin",
                             "--simulate", "--speed", "20", "--seed", "3", "--quiet",
                             "--output", str(output)], env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before it could be killed"
            files = list(output.glob("*.h5"))
            if files:
                try:
                    with open_run(files[0]) as reader:
                        if reader.n_rows >= 3:
                            break
                except Exception:  # noqa: BLE001 - created, not yet in SWMR mode
                    pass
            time.sleep(0.05)
        else:
            pytest.fail("the run never wrote rows")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    return proc.pid, files[0]


def test_sigkilled_run_next_open_marks_file_interrupted_and_puts_station_safe(tmp_path,
                                                                             capsys):
    pid, run_file = _kill_a_run_mid_sweep(tmp_path)
    st = station()
    stale = L.find_stale(st)
    assert stale is not None and stale.info.pid == pid
    assert stale.run_files == [run_file.resolve()]
    with open_run(run_file) as reader:
        assert reader.raw_status == "running"

    rc = cli.main(["station", "status"])
    out = capsys.readouterr().out
    assert rc == 0 and "stale" in out and str(run_file.resolve()) in out

    lines: list[str] = []
    with L.connect_for_driving(st, "run", report=lines.append) as conn:
        assert emulator_state(conn) == SAFE
    assert len(lines) == 1 and f"pid {pid}" in lines[0] and "in place" in lines[0]
    with open_run(run_file) as reader:
        assert reader.raw_status == "interrupted" and reader.n_rows >= 3
    with h5py.File(run_file, "r") as plain:  # plain HDF5 tools open it now
        assert "entry" in plain
    assert not L.lock_path(st).exists()


def test_station_unlock_clears_a_stale_lock_by_hand_and_refuses_a_live_one(holder, tmp_path,
                                                                          capsys):
    assert cli.main(["station", "unlock", str(L.lock_path(station()))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"pid {holder.pid}" in err[0]

    toml = tmp_path / "lab.toml"
    toml.write_text('[station]\nname = "lab"\n[simulation]\nsimulated = true\n'
                    '[lockin]\ndriver = "SR830"\n')
    lab = L.lock_path(load_station(toml))
    assert cli.main(["station", "status", str(toml)]) == 0
    assert "free" in capsys.readouterr().out
    write_lock(load_station(toml), pid=impossible_pid(), run=str(tmp_path / "gone.h5"))
    assert cli.main(["station", "unlock", str(toml)]) == 0
    out = capsys.readouterr().out
    assert "cleared the stale lock" in out and "no longer there" in out
    assert not lab.exists()


def test_recovery_cut_short_leaves_the_dead_holders_record_for_the_next_open():
    st = station()
    write_lock(st, pid=impossible_pid(), command="daqapp run rt")

    def interrupted(stale, conn):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        L.connect_for_driving(st, "gui", ask=interrupted)
    stale = L.find_stale(st)
    assert stale is not None and stale.info.command == "daqapp run rt"
    with L.connect_for_driving(st, "run", report=lambda _line: None) as conn:
        assert emulator_state(conn) == SAFE
