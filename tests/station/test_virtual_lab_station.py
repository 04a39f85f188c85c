"""A simulated station against the real virtual lab: same drivers, loopback sockets."""

import json
import socket
import threading

import pytest

from daqapp.station import Station, load_station
from drivers.roles import MagnetState


@pytest.fixture
def conn():
    station = Station.simulated(speed=100.0, seed=1,
                                wiring={"bias_resistor_ohm": 48e3, "bias_aux_channel": 1})
    with station.connect() as connected:
        yield connected


def test_every_role_identifies_and_snapshots(conn):
    snap = json.loads(json.dumps(conn.snapshot()))
    assert snap["simulated"] is True
    assert set(snap["roles"]) == {"lockin", "current_source", "nanovoltmeter", "temperature",
                                  "magnet"}
    for role, entry in snap["roles"].items():
        assert "error" not in entry, (role, entry)
    assert snap["roles"]["temperature"]["idn"].startswith("LSCI,MODEL336")
    assert snap["roles"]["magnet"]["settings"]["quenched"] is False


def test_every_socket_link_sends_without_nagle_delay(conn):
    # A write followed by a query must not wait for a delayed ACK: TCP_NODELAY on every role.
    for role in ("lockin", "current_source", "nanovoltmeter", "temperature", "magnet"):
        adapter = getattr(conn, role).instrument.adapter.connection
        sock = adapter.visalib.sessions[adapter.session].interface
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), role


def test_magnet_ramps_and_safe_state_holds_it(conn):
    conn.magnet.ramp_to(0.5, 0.3)
    assert conn.magnet.state() is MagnetState.RAMPING
    conn.current_source.set_current(1e-4)
    conn.current_source.enable()
    assert conn.to_safe_state().confirmed
    assert conn.magnet.state() is MagnetState.PAUSED
    assert conn.current_source.is_enabled() is False
    assert conn.current_source.current() == 0.0
    assert conn.lockin.excitation() == pytest.approx(0.004)
    assert conn.lockin.aux_output(1) == 0.0


def test_monitor_thread_and_procedure_share_the_links(conn):
    stop = threading.Event()
    readings, errors = [], []

    def monitor():
        try:
            while not stop.is_set():
                readings.append((conn.temperature.temperature(), conn.magnet.field()))
        except Exception as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    thread = threading.Thread(target=monitor)
    thread.start()
    try:
        for step in range(15):
            conn.lockin.set_aux_output(1, 0.01 * step)
            assert conn.lockin.aux_output(1) == pytest.approx(0.01 * step, abs=1e-3)
            x, _ = conn.lockin.xy()
            assert abs(x) < conn.lockin.sensitivity() * 1.1
            conn.temperature.snapshot()
    finally:
        stop.set()
        thread.join(timeout=30)
    assert errors == []
    assert readings and all(1.0 < t < 400 for t, _ in readings)


def test_example_simulated_station_file_connects():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "station-simulated.toml"
    with load_station(path).connect() as connected:
        assert connected.lab is not None
        assert connected.nanovoltmeter.identify().startswith("KEITHLEY")
    assert connected.lab is None


def test_oxford_models_swap_in_by_editing_the_station():
    station = Station.simulated(speed=100.0, seed=2, temperature_driver="ITC503",
                                magnet_driver="IPS120_10")
    with station.connect() as oxford:
        assert oxford.lab.temperature_model == "itc503"
        assert oxford.temperature.identify().startswith("ITC503")
        oxford.temperature.set_setpoint(4.0, ramp_k_per_min=1.0)
        assert oxford.temperature.is_ramping() is True
        oxford.magnet.ramp_to(0.2, 0.3)
        assert oxford.magnet.target_field() == pytest.approx(0.2)
        assert oxford.to_safe_state().confirmed
        assert oxford.magnet.state() is MagnetState.PAUSED
        assert oxford.temperature.is_ramping() is False


def test_dropped_6221_link_is_reopened_once_and_the_2182a_follows_it():
    station = Station.simulated(speed=100.0, seed=3, wiring={"dc_bias_source": "current_source"},
                                nanovoltmeter={"driver": "Keithley2182_via_6221"})
    with station.connect() as conn:
        conn.current_source.set_current(1e-4)
        conn.current_source.enable()
        conn.lab.faults.set("current_source", "drop")  # the server closes the connection
        conn.lab.faults.clear("current_source", "drop")  # and the instrument is back
        report = conn.to_safe_state()
        verdict = report.verdict("current_source")
        assert verdict.confirmed, verdict.problem
        assert any("after reconnect" in action for action in verdict.actions)
        emulator = conn.lab.emulators["current_source"]
        assert emulator.output is False and emulator.level == 0.0
        # the 2182A behind the 6221 talks through the new link
        assert conn.nanovoltmeter.instrument is conn.current_source.instrument
        assert conn.nanovoltmeter.identify().startswith("KEITHLEY")


def test_a_hung_link_is_abandoned_at_the_deadline_and_the_rest_go_on(conn, monkeypatch):
    import daqapp.station.connected as connected

    monkeypatch.setattr(connected, "SAFE_ROLE_DEADLINE_S", 0.5)
    held, release = threading.Event(), threading.Event()

    def hog():  # another thread stuck mid-transaction on the lock-in's connection
        with conn.lockin.lock:
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hog)
    thread.start()
    held.wait(5)
    try:
        conn.magnet.ramp_to(0.2, 0.3)
        report = conn.to_safe_state()
    finally:
        release.set()
        thread.join(10)
    lockin = report.verdict("lockin")
    assert not lockin.confirmed and "no answer within 0.5 s" in lockin.problem
    assert [v.role for v in report.unconfirmed] == ["lockin"]
    assert conn.magnet.state() is MagnetState.PAUSED
    assert report.duration_s < 5
