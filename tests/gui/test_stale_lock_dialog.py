"""``daqapp gui`` on a station a dead process was driving: the operator is asked first, with
the facts, and "Put safe now" is the default answer."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from qtpy import QtWidgets

from daqapp import cli
from daqapp.commands import gui as gui_command
from daqapp.station import Station
from daqapp.station import lock as L


def leave_stale_lock(tmp_path: Path) -> L.StaleLock:
    st = Station.simulated()  # what `daqapp gui --simulate` opens (speed does not matter)
    info = L.LockInfo.for_this_process(st, "run").to_dict()
    info.update(pid=int(Path("/proc/sys/kernel/pid_max").read_text()) + 1,
                command="daqapp run didv-lockin --simulate", run=str(tmp_path / "gone.h5"))
    path = L.lock_path(st)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))
    stale = L.find_stale(st)
    assert stale is not None
    return stale


@pytest.fixture
def answered(monkeypatch, qapp):
    """Run ``daqapp gui`` with the dialog answered by ``choose(box)``; returns the boxes."""
    monkeypatch.setattr(QtWidgets.QApplication, "exec", lambda self: 0)

    def run(tmp_path: Path, choose) -> list[QtWidgets.QMessageBox]:
        boxes: list[QtWidgets.QMessageBox] = []

        def exec(box: QtWidgets.QMessageBox) -> int:
            boxes.append(box)
            choose(box).click()
            return 0

        monkeypatch.setattr(QtWidgets.QMessageBox, "exec", exec)
        assert cli.main(["gui", "--simulate", "--output", str(tmp_path / "runs")]) == 0
        return boxes

    return run


def test_dialog_states_the_facts_with_put_safe_as_default(tmp_path, qapp):
    stale = leave_stale_lock(tmp_path)
    box = gui_command.stale_lock_dialog(stale)
    assert box.defaultButton().text() == gui_command.PUT_SAFE
    assert box.escapeButton() is box.defaultButton()
    text = box.informativeText()
    assert f"pid {stale.info.pid}" in text and "daqapp run didv-lockin" in text
    assert str(tmp_path / "gone.h5") in text


def test_gui_puts_the_station_safe_when_the_operator_accepts(tmp_path, answered, caplog):
    leave_stale_lock(tmp_path)
    with caplog.at_level(logging.WARNING, logger="daqapp.station.lock"):
        boxes = answered(tmp_path, lambda box: box.defaultButton())
    assert len(boxes) == 1
    assert "put in its safe state after its previous driver" in caplog.text
    assert not L.lock_path(Station.simulated()).exists()  # released when the window closed


def test_gui_leaves_the_station_when_the_operator_declines(tmp_path, answered, caplog):
    leave_stale_lock(tmp_path)
    with caplog.at_level(logging.WARNING):
        answered(tmp_path, lambda box: next(b for b in box.buttons()
                                            if b.text() == gui_command.LEAVE))
    assert "NOT put in its safe state (the operator declined)" in caplog.text
    assert "operator left station" in caplog.text


def test_the_window_keeps_the_lock_and_its_run_file(tmp_path, monkeypatch, qapp):
    import procedures
    from daqapp.gui.main_window import MainWindow

    recorded: list[str | None] = []
    results = []

    def exec(app) -> int:
        window = next(w for w in QtWidgets.QApplication.topLevelWidgets()  # this one:
                      if isinstance(w, MainWindow) and w.queue.station.lock is not None)
        lock = window.queue.station.lock
        window.queue.run_listeners.append(lambda _item, run: run.subscribe_records(
            lambda _r: recorded.append(json.loads(lock.path.read_text())["run"])))
        item = window.queue.enqueue(procedures.load("iv"), {})
        assert window.queue.wait_idle(60)
        results.append((item.path, json.loads(lock.path.read_text())["run"]))
        window.close()
        return 0

    monkeypatch.setattr(QtWidgets.QApplication, "exec", exec)
    assert cli.main(["gui", "--simulate", "--speed", "1000", "--output",
                     str(tmp_path / "runs")]) == 0
    (path, after), = results
    assert path is not None and set(recorded) == {str(path.resolve())}
    assert after is None
    assert not L.lock_path(Station.simulated()).exists()
