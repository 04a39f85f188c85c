"""Quantum Design PPMS through MultiPyVu: the unmodified MultiPyVu Client against the virtual
lab's MultiVu-compatible server, the approach modes and chamber on the lab's physics, and the
two roles sharing one instrument.
"""

from __future__ import annotations

import logging
import time

import pytest

MultiPyVu = pytest.importorskip("MultiPyVu")

from daqapp.errors import InstrumentError, LimitError  # noqa: E402
from daqapp.station import Station  # noqa: E402
from drivers.ppms import (  # noqa: E402
    PPMSLink,
    PPMSMagnet,
    PPMSTemperature,
    keep_host_logging,
    parse_resource,
)
from drivers.roles import MagnetState  # noqa: E402
from simulators.clock import SimClock  # noqa: E402
from simulators.cryostat import Cryostat  # noqa: E402
from simulators.faults import FaultBoard  # noqa: E402
from simulators.instruments.ppms import (  # noqa: E402
    MultiVuServer,
    PPMSEmulator,
    decode_messages,
    encode_message,
)
from simulators.magnet import MagnetModel  # noqa: E402


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """MultiPyVu's client writes QdMultiVu.log into the current directory, and (used
    directly, not through the role) reconfigures the process's logging: both are undone."""
    monkeypatch.chdir(tmp_path)
    with keep_host_logging():
        yield tmp_path


def stepped_emulator(flavor: str = "PPMS") -> PPMSEmulator:
    clock = SimClock(1e-6)
    magnet = MagnetModel(clock)
    magnet.switch = "on"
    return PPMSEmulator(Cryostat(clock, initial_K=300.0), magnet, clock, FaultBoard(),
                        lambda sigma: 0.0, flavor=flavor)


@pytest.fixture(scope="module")
def server():
    """A fast lab clock (the client's waits are real time) behind one MultiVu server."""
    clock = SimClock(300.0)
    magnet = MagnetModel(clock)
    magnet.switch = "on"
    faults = FaultBoard()
    emulator = PPMSEmulator(Cryostat(clock, initial_K=10.0), magnet, clock, faults,
                            lambda sigma: 0.0)
    server = MultiVuServer(emulator, faults)
    server.start()
    yield server
    server.stop()


def test_frames_are_length_header_and_json_as_multipyvu_sends_them():
    from MultiPyVu.SocketMessageClient import ClientMessage

    message = ClientMessage(("127.0.0.1", 1))
    request = message.create_request("TEMP?")
    message._queue_request(request, "utf-8")
    buffer = bytearray(message._send_buffer + encode_message({"id": "x", "action": "A"})[:5])
    assert decode_messages(buffer) == [request]
    assert len(buffer) == 5          # the incomplete second frame waits for more bytes


def test_the_multipyvu_client_runs_unchanged_against_the_emulated_server(server, in_tmp):
    client = MultiPyVu.Client(host="127.0.0.1", port=server.port)
    client.open()
    try:
        assert client.instrument_name == "PPMS"
        assert client.get_version() == MultiPyVu.__version__
        temperature, status = client.get_temperature()
        assert temperature == pytest.approx(10.0, abs=1.0)
        assert status in ("Stable", "Near", "Chasing")
        client.set_temperature(12.0, 20.0, client.temperature.approach_mode.no_overshoot)
        assert client.get_temperature_setpoints() == (12.0, 20.0, "no_overshoot")
        client.set_field(1000.0, 100.0, client.field.approach_mode.linear)
        assert client.get_field_setpoints() == (1000.0, 100.0, "linear", "driven")
        client.set_chamber(client.chamber.mode.vent_seal)
        assert client.get_chamber() == "Performing Vent/Seal"
        assert client.wait_for(0, 30, client.field.waitfor) == client.wait_status.good
        assert client.get_field() == (pytest.approx(1000.0), "Holding (driven)")
        assert client.is_steady(client.field.waitfor) is True
        # MultiVu takes one client: a second one is refused
        second = MultiPyVu.Client(host="127.0.0.1", port=server.port)
        with pytest.raises(ConnectionRefusedError, match="another client"):
            second.open()
        # a refusal reaches the client as MultiPyVuError (which also closes its connection)
        with pytest.raises(MultiPyVu.MultiPyVuError, match="Unknown command"):
            client._query_server("POSITION?")
        assert client._message is None
    finally:
        client.close_client()


def test_temperature_approach_modes_on_the_cryostat():
    fast, slow = stepped_emulator(), stepped_emulator()
    for emulator, mode in ((fast, 0), (slow, 1)):
        emulator.command("TEMP", f"290.0,10.0,{mode}")
        emulator.clock.advance(62.0)           # 10 K at 10 K/min takes 60 s
        emulator.cryostat.advance()
    assert fast.t_working == pytest.approx(290.0)
    assert slow.t_working > 295.0             # no overshoot: the last 2 % (5.8 K) at a tenth
    assert slow.command("TEMP?", "").endswith(",K,Tracking")
    slow.clock.advance(900.0)
    assert slow.command("TEMP?", "").endswith(",K,Stable")


@pytest.mark.parametrize("approach,peak", [(0, 2000.0), (1, 2000.0), (2, 2200.0)])
def test_field_approach_modes(approach, peak):
    emulator = stepped_emulator()
    emulator.command("FIELD", f"2000.0,50.0,{approach},1")
    seen = []
    for _ in range(400):
        emulator.clock.advance(1.0)
        seen.append(emulator.field_oe())
        if emulator.field_state() == 4:
            break
    assert emulator.command("FIELD?", "") == "2000.0,Oe,Holding (driven)"
    assert max(seen) == pytest.approx(peak, abs=1.0)   # oscillate passes the target by 10 %
    if approach == 1:   # the last 1 % (20 Oe) at 5 Oe/s: 44 s where linear takes 40 s
        assert len(seen) >= 43


def test_persistent_mode_on_the_ppms_only():
    emulator = stepped_emulator()
    emulator.command("FIELD", "1000.0,100.0,0,0")
    assert emulator.command("FIELD?", "").endswith("Switch Warming") is False  # switch was on
    for _ in range(200):
        emulator.clock.advance(1.0)
        if emulator.field_state() == 1:
            break
    assert emulator.command("FIELD?", "") == "1000.0,Oe,Stable"
    assert emulator.magnet.switch == "off" and emulator.magnet.supply_current == 0.0
    dyna = stepped_emulator("DYNACOOL")
    with pytest.raises(Exception, match="driven mode"):
        dyna.command("FIELD", "1000.0,100.0,0,0")


@pytest.mark.parametrize("query", ["nan,10,0", "inf,10,0", "5,1e999,0", "5,10", "5,x,0"])
def test_malformed_set_points_are_refused_and_change_nothing(query):
    emulator = stepped_emulator()
    with pytest.raises(Exception, match="inputs|requires"):
        emulator.command("TEMP", query)
    assert emulator.t_target == pytest.approx(300.0)


def test_chamber_modes_take_their_time():
    emulator = stepped_emulator()
    emulator.command("CHAMBER", "1")
    assert emulator.command("CHAMBER?", "").endswith("Performing Purge/Seal")
    emulator.clock.advance(121.0)
    assert emulator.command("CHAMBER?", "").endswith("Purged and Sealed")
    emulator.command("CHAMBER", "5")
    emulator.clock.advance(301.0)
    assert emulator.command("CHAMBER?", "").endswith("HiVac")


def test_roles_share_one_link_and_check_limits_before_any_command(server, in_tmp):
    root = logging.getLogger()
    before = list(root.handlers)
    ours = logging.getLogger("daqapp.test.ppms")
    temperature = PPMSTemperature.open(f"127.0.0.1:{server.port}", timeout=3000,
                                       options={"temperature_max_k": 300.0})
    try:
        assert root.handlers == before and not ours.disabled   # logging left as it was
        magnet = PPMSMagnet(temperature.instrument, max_field_t=5.0, max_ramp_t_per_min=0.3)
        assert magnet.lock is temperature.lock
        target = server.emulator.h_target
        with pytest.raises(LimitError, match="magnet field"):
            magnet.ramp_to(6.0, 0.1)
        with pytest.raises(LimitError, match="magnet ramp rate"):
            magnet.ramp_to(1.0, 0.5)
        with pytest.raises(LimitError, match="temperature setpoint"):
            temperature.set_setpoint(301.0)
        assert server.emulator.h_target == target           # nothing reached the PPMS
        magnet.ramp_to(0.05, 0.3)
        assert magnet.target_field() == pytest.approx(0.05)
        deadline = time.monotonic() + 10
        while not magnet.is_holding() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert magnet.state() is MagnetState.HOLDING
        assert magnet.field() == pytest.approx(0.05)
        temperature.set_setpoint(11.0)
        assert temperature.setpoints() == (11.0, 10.0, "fast_settle")
        with pytest.raises(LimitError, match="heater range"):
            temperature.set_heater_range(0)
        assert temperature.heater_range() == 1
        assert temperature.snapshot()["chamber"]
    finally:
        temperature.close()
    with pytest.raises(InstrumentError, match="closed"):
        temperature.temperature()


def test_persistent_mode_is_refused_on_a_dynacool_before_connecting_twice(in_tmp):
    clock = SimClock(100.0)
    faults = FaultBoard()
    emulator = PPMSEmulator(Cryostat(clock), MagnetModel(clock), clock, faults,
                            lambda s: 0.0, flavor="DYNACOOL")
    server = MultiVuServer(emulator, faults)
    server.start()
    try:
        link = PPMSLink(f"127.0.0.1:{server.port}")
        try:
            with pytest.raises(LimitError, match="persistent"):
                PPMSMagnet(link, field_mode="persistent")
            assert PPMSMagnet(link).persistent_switch_heated() is None
        finally:
            link.close()
    finally:
        server.stop()


def test_resource_is_host_and_port():
    assert parse_resource("127.0.0.1:1234") == ("127.0.0.1", 1234)
    assert parse_resource("ppms-pc") == ("ppms-pc", 27183)
    with pytest.raises(InstrumentError, match="host:port"):
        parse_resource("ppms:notaport")


def ppms_station(**tables) -> Station:
    return Station.simulated(speed=300.0, seed=2, temperature_driver="PPMS",
                             magnet_driver="PPMS",
                             limits={"heater_ranges_allowed": [1], "temperature_min_k": 1.8},
                             safe_state={"magnet": "zero", "heater_setpoint_k": 10.0},
                             **tables)


def test_a_ppms_station_opens_one_client_for_both_roles_and_confirms_its_safe_state(in_tmp):
    with ppms_station().connect() as conn:
        assert conn.temperature.instrument is conn.magnet.instrument
        server = conn.lab._servers["temperature"]
        assert server is conn.lab._servers["magnet"]
        conn.magnet.ramp_to(0.02, 0.5)
        conn.temperature.set_setpoint(20.0)
        report = conn.to_safe_state()
        assert report.confirmed, report.summary()
        assert conn.temperature.setpoint() == pytest.approx(10.0)
        assert conn.magnet.state() in (MagnetState.ZEROING, MagnetState.AT_ZERO)


@pytest.mark.slow  # the silent server costs its timeouts and MultiPyVu's own waits: ~7 s
def test_a_silent_ppms_ends_both_roles_unconfirmed_without_ending_the_process(in_tmp):
    with ppms_station(temperature={"driver": "PPMS", "timeout_s": 0.5},
                      magnet={"driver": "PPMS", "timeout_s": 0.5}).connect() as conn:
        conn.lab.faults.set("temperature", "no_reply")
        report = conn.to_safe_state()    # a SystemExit inside MultiPyVu would end pytest
        by_role = {v.role: v for v in report.verdicts}
        assert not by_role["temperature"].confirmed and not by_role["magnet"].confirmed
        assert by_role["temperature"].line().startswith("temperature (PPMS): NOT CONFIRMED")
        assert by_role["magnet"].line().startswith("magnet (PPMS): NOT CONFIRMED")
        assert all(by_role[r].confirmed for r in ("lockin", "current_source", "nanovoltmeter"))
        conn.lab.faults.clear_all()
        report = conn.to_safe_state()   # the PPMS is back: one reconnect serves both roles
        assert report.confirmed, report.summary()
        assert conn.temperature.instrument is conn.magnet.instrument
