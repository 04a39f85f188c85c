"""Run control: every way a run ends is saved and leaves the safe state; verbs do what they say."""

from __future__ import annotations

import json
import threading

import pytest

from daqapp.errors import LimitError
from daqapp.runner import (
    MagnetHoldingSuspender,
    Run,
    TemperatureBandSuspender,
    events,
)


def make_run(procedure_class, station, tmp_path, **params):
    return Run(procedure_class(**params), station=station, output_dir=tmp_path,
               metadata={"sample": "Nb foil", "operator": "test"})


def test_finished_run_file_holds_rows_units_snapshots(station, read_run, ramp_procedure, tmp_path):
    run = make_run(ramp_procedure, station, tmp_path, points=7, current_max=5e-4)
    seen = []
    run.subscribe(seen.append)
    result = run.execute()
    assert result.status == "finished" and result.rows == 7 and result.error is None
    stored = read_run(result.path)
    assert stored["attrs"]["status"] == "finished"
    assert stored["attrs"]["sample"] == "Nb foil"
    assert stored["data"]["current"][-1] == pytest.approx(5e-4)
    assert stored["units"]["current"] == "A" and stored["units"]["temperature"] == "K"
    assert json.loads(stored["start"])["source"]["current_a"] == 0.0
    end = json.loads(stored["end"][0])
    assert end["source"]["enabled"] is False  # end snapshot taken after the safe state
    params = json.loads(stored["attrs"]["parameters"])
    assert params["current_max"] == {"value": 5e-4, "units": "A"}
    records = [e.payload for e in seen if e.kind == events.RECORD]
    assert [r["index"] for r in records] == list(range(7))
    progress = [e.payload for e in seen if e.kind == events.PROGRESS]
    assert progress[0] == 0.0 and progress[-1] == 100.0
    statuses = [e.payload["status"] for e in seen if e.kind == events.STATUS]
    assert statuses[0] == "running" and statuses[-1] == "finished"


def test_shutdown_precedes_safe_state_on_every_end(station, read_run, ramp_procedure, tmp_path):
    def boom(i):
        if i == 3:
            raise ConnectionResetError("lost connection to 6221")

    procedure = ramp_procedure(points=10)
    procedure.on_point = boom
    result = Run(procedure, station=station, output_dir=tmp_path).execute()
    assert result.status == "failed"
    assert "lost connection to 6221" in result.error
    names = station.calls.names()
    assert names.index("procedure.shutdown") < names.index("station.to_safe_state")
    stored = read_run(result.path)
    assert stored["attrs"]["status"] == "failed"
    assert "lost connection" in stored["attrs"]["error"]
    assert any("lost connection" in line for line in stored["log"])
    assert len(stored["data"]["index"]) == 3  # rows before the failure are kept


def test_stop_finishes_point_and_saves(station, read_run, ramp_procedure, tmp_path):
    run = make_run(ramp_procedure, station, tmp_path, points=50)
    procedure = run.procedure
    procedure.on_point = lambda i: run.control.stop() if i == 4 else None
    result = run.execute()
    assert result.status == "stopped" and result.rows == 5  # point 4 was completed
    stored = read_run(result.path)
    assert stored["attrs"]["status"] == "finished"
    assert any("stopped by operator" in line for line in stored["log"])
    assert station.calls.names().count("station.to_safe_state") == 1


def test_abort_goes_to_safe_state_at_once(station, read_run, ramp_procedure, tmp_path):
    run = make_run(ramp_procedure, station, tmp_path, points=50)

    def abort_then_settle(i):
        if i == 2:
            run.control.abort()
            run.procedure.sleep(30.0)  # interrupted at once, raising RunAborted

    run.procedure.on_point = abort_then_settle
    result = run.execute()
    assert result.status == "aborted" and result.rows == 2
    assert result.duration < 10
    assert read_run(result.path)["attrs"]["status"] == "aborted"
    assert station.roles["source"].enabled is False


def test_pause_blocks_until_resume(station, ramp_procedure, tmp_path):
    run = make_run(ramp_procedure, station, tmp_path, points=6)
    paused_at = threading.Event()
    rows_while_paused = []

    def pause(i):
        if i == 2:
            run.control.pause()
            paused_at.set()

    run.procedure.on_point = pause
    statuses = []
    run.subscribe(lambda e: statuses.append(e.payload["status"])
                  if e.kind == events.STATUS else None)
    run.start()
    assert paused_at.wait(10)
    threading.Event().wait(0.3)
    rows_while_paused.append(run.rows)
    threading.Event().wait(0.2)
    rows_while_paused.append(run.rows)
    run.control.resume()
    result = run.wait(timeout=30)
    assert rows_while_paused == [3, 3]
    assert result.status == "finished" and result.rows == 6
    assert "paused" in statuses and "running" in statuses


def test_limit_violation_raises_before_anything_moves(station, ramp_procedure, tmp_path):
    run = make_run(ramp_procedure, station, tmp_path, current_max=5e-3)
    with pytest.raises(LimitError, match=r"current_max = 0.005 A is outside .*0 to 0.001 A"):
        run.start()
    assert station.calls == []
    assert list(tmp_path.iterdir()) == []


def test_existing_run_file_is_refused_before_anything_moves(station, ramp_procedure,
                                                            tmp_path):
    from daqapp.errors import DataFileError

    (tmp_path / "taken.h5").write_bytes(b"")
    run = Run(ramp_procedure(), station=station, output_dir=tmp_path, filename="taken.h5")
    with pytest.raises(DataFileError, match="already exists"):
        run.start()
    assert station.calls == []


def test_temperature_suspender_holds_and_resumes(station, read_run, ramp_procedure, tmp_path):
    controller = station.roles["temperature"]
    suspender = TemperatureBandSuspender(band_k=0.05, timeout=30)
    run = Run(ramp_procedure(points=8), station=station, output_dir=tmp_path,
              suspenders=[suspender])
    seen = []
    run.subscribe(seen.append)

    def excursion(i):
        if i == 3:
            controller.kelvin = 3.5  # out of band before point 4's checkpoint

    def back_in_band(event):  # event-driven: no race between a timer and the next check
        if event.kind == events.STATUS and event.payload["status"] == events.SUSPENDED:
            controller.kelvin = 3.01

    run.subscribe(back_in_band)
    run.procedure.on_point = excursion
    run.control.check_interval = 0.0
    result = run.execute()
    assert result.status == "finished" and result.rows == 8
    kinds = [(e.kind, e.payload) for e in seen if e.kind == events.STATUS]
    assert any(p["status"] == "suspended" and "outside 3 ± 0.05 K" in p["reason"]
               for _, p in kinds)
    recorded = [e.payload["temperature"] for e in seen if e.kind == events.RECORD]
    # point 3 was taken before the excursion was seen; none was taken while out of band
    assert recorded[3] == 3.5 and all(abs(t - 3.0) <= 0.05 for t in recorded[4:])
    assert any("suspended" in line for line in read_run(result.path)["log"])


def test_suspension_timeout_fails_run(station, ramp_procedure, tmp_path):
    station.roles["temperature"].kelvin = 10.0
    run = Run(ramp_procedure(points=5), station=station, output_dir=tmp_path,
              suspenders=[TemperatureBandSuspender(band_k=0.1, target_k=3.0, timeout=0.2)])
    run.control.check_interval = 0.0
    result = run.execute()
    assert result.status == "failed" and result.rows == 0
    assert "longer than the 0.2 s allowed" in result.error
    assert station.calls.names()[-4:].count("station.to_safe_state") == 1


def test_magnet_quench_fails_at_once(station, ramp_procedure, tmp_path):
    magnet = station.roles["magnet"]
    run = Run(ramp_procedure(points=5), station=station, output_dir=tmp_path,
              suspenders=[MagnetHoldingSuspender(timeout=60)])
    run.procedure.on_point = lambda i: setattr(magnet, "quenched", i == 1)
    run.control.check_interval = 0.0
    result = run.execute()
    assert result.status == "failed" and "quenched" in result.error
    assert result.rows == 2 and result.duration < 30


def test_records_reach_an_in_memory_buffer(station, ramp_procedure, tmp_path):
    from daqapp.storage import RunBuffer

    procedure = ramp_procedure(points=9, current_max=8e-4)
    buffer = RunBuffer(procedure.column_units())
    run = Run(procedure, station=station, output_dir=tmp_path)
    run.subscribe_records(buffer.append)
    run.execute()
    assert len(buffer) == 9
    assert buffer.column("current")[-1] == pytest.approx(8e-4)


def test_fit_from_another_thread_lands_in_file_and_events(station, read_run, ramp_procedure,
                                                          tmp_path):
    run = make_run(ramp_procedure, station, tmp_path, points=4)
    stored = []
    seen = []
    run.subscribe(seen.append)

    def fit_from_worker_thread(i):
        if i == 2:
            worker = threading.Thread(target=lambda: stored.append(
                run.add_fit("btk_sweep0", {"model": "s", "delta_meV": 1.5})))
            worker.start()
            worker.join()

    run.procedure.on_point = fit_from_worker_thread
    result = run.execute()
    assert stored == [True]
    assert run.add_fit("late", {"model": "s"}) is False  # file closed: caller appends itself
    from daqapp.storage import open_run

    with open_run(result.path) as reader:
        assert reader.fits["btk_sweep0"]["delta_meV"] == 1.5
    assert [e.payload["name"] for e in seen if e.kind == events.FIT] == ["btk_sweep0"]


def test_broken_listener_does_not_stop_acquisition(station, ramp_procedure, tmp_path):
    run = make_run(ramp_procedure, station, tmp_path, points=5)

    def broken(event):
        raise RuntimeError("plot widget gone")

    good = []
    run.subscribe(broken)
    run.subscribe(good.append)
    result = run.execute()
    assert result.status == "finished"
    assert sum(1 for e in good if e.kind == events.RECORD) == 5
