"""What a run makes of the station's safe-state verdict, and SIGTERM/SIGHUP as an abort."""

from __future__ import annotations

import json
import os
import signal

import pytest

from daqapp.runner import Run, events, signals
from daqapp.runner.pymeasure_compat import StorageResults, StorageWorker
from drivers.roles import RoleVerdict, SafeStateReport


def report(lockin_ok: bool) -> SafeStateReport:
    source = RoleVerdict("source", "Keithley6221", True, ["output off"],
                         {"output_enabled": False}, None, "output OFF, 0 A")
    lockin = RoleVerdict("lockin", "SR830", lockin_ok, ["SLVL 0.004 V"],
                         {"sine_voltage_v": 0.004 if lockin_ok else None},
                         None if lockin_ok else "no reply to SLVL?", "SLVL 0.004 V")
    return SafeStateReport([source, lockin], 0.01)


@pytest.fixture
def verdict_station(station):
    """The fake station, answering its safe state with a read-back report."""
    state = {"lockin_ok": True}
    plain = station.to_safe_state

    def to_safe_state():
        plain()
        return report(state["lockin_ok"])

    station.to_safe_state = to_safe_state
    station.verdict = state
    return station


def test_confirmed_safe_state_is_stored_logged_and_returned(verdict_station, read_run,
                                                            ramp_procedure, tmp_path):
    result = Run(ramp_procedure(points=4), station=verdict_station,
                 output_dir=tmp_path).execute()
    assert result.status == events.FINISHED
    assert result.safe_state == "safe state confirmed (source, lockin)"
    stored = read_run(result.path)
    end = json.loads(stored["end"][0])
    assert end["safe_state_report"]["confirmed"] is True
    assert [r["line"] for r in end["safe_state_report"]["roles"]] == [
        "source (Keithley6221): output OFF, 0 A confirmed",
        "lockin (SR830): SLVL 0.004 V confirmed"]
    assert stored["log"][-1] == ("run ended: finished; safe state confirmed (source, lockin)")


def test_unconfirmed_safe_state_fails_a_finished_run(verdict_station, read_run,
                                                     ramp_procedure, tmp_path):
    verdict_station.verdict["lockin_ok"] = False
    result = Run(ramp_procedure(points=4), station=verdict_station,
                 output_dir=tmp_path).execute()
    assert result.status == events.FAILED and not result.ok
    assert "lockin (SR830): NOT CONFIRMED: no reply to SLVL? — check by hand" in result.error
    stored = read_run(result.path)
    assert stored["attrs"]["status"] == "failed"
    assert not any("instruments in safe state" in line for line in stored["log"])
    assert "safe state: lockin (SR830): NOT CONFIRMED" in " ".join(stored["log"])
    end = json.loads(stored["end"][0])
    assert end["safe_state_report"]["confirmed"] is False


def test_pymeasure_worker_fails_on_an_unconfirmed_safe_state(verdict_station, read_run,
                                                             ramp_procedure, tmp_path):
    verdict_station.verdict["lockin_ok"] = False
    path = tmp_path / "worker.h5"
    worker = StorageWorker(StorageResults(ramp_procedure(points=3), path,
                                          station=verdict_station))
    worker.start()
    worker.join(timeout=60)
    stored = read_run(path)
    assert stored["attrs"]["status"] == "failed"
    assert "NOT CONFIRMED" in stored["attrs"]["error"]
    assert json.loads(stored["end"][0])["safe_state_report"]["confirmed"] is False


def test_abort_reason_becomes_the_run_error(station, read_run, ramp_procedure, tmp_path):
    procedure = ramp_procedure(points=50)
    run = Run(procedure, station=station, output_dir=tmp_path)
    procedure.on_point = lambda i: run.control.abort("terminated by SIGTERM") if i == 2 else None
    result = run.execute()
    assert result.status == events.ABORTED and result.error == "terminated by SIGTERM"
    assert read_run(result.path)["attrs"]["error"] == "terminated by SIGTERM"


@pytest.fixture
def fresh_signals(monkeypatch):
    """Each test gets its own signal state; the process's handlers are put back after."""
    saved = {s: signal.getsignal(s) for s in signals.HANDLED}
    monkeypatch.setattr(signals, "_state", signals._State())
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def test_first_sigterm_raises_later_ones_are_ignored(fresh_signals):
    with pytest.raises(signals.Terminated) as caught:
        with signals.termination_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between bytecodes of the main thread
                pass
    assert caught.value.reason == "terminated by SIGTERM"
    os.kill(os.getpid(), signal.SIGTERM)  # still ignored: the process is ending anyway
    assert signals.exit_code(1) == 128 + signal.SIGTERM
    assert signals.received() == "SIGTERM"


def test_sighup_in_a_shielded_block_waits_for_its_end(fresh_signals):
    steps = []
    with pytest.raises(signals.Terminated):
        with signals.termination_signals():
            with signals.shielded():
                os.kill(os.getpid(), signal.SIGHUP)
                for _ in range(1000):
                    pass
                steps.append("safe state done")
            steps.append("not reached")
    assert steps == ["safe state done"]


def test_callback_mode_and_handlers_restored_without_a_signal(fresh_signals):
    before = signal.getsignal(signal.SIGTERM)
    with signals.termination_signals():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
    reasons = []
    with signals.termination_signals(on_signal=reasons.append):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass
    assert reasons == ["terminated by SIGTERM"]
    assert signals.exit_code(0) == 143
