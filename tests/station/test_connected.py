"""Connecting a station to (fake) instruments over pyvisa-py sockets: IDN, snapshot, safe state."""

import json

import pytest

from daqapp.errors import InstrumentError
from daqapp.station import parse_station


def station_for(lockin, k6221, ls336, **extra):
    data = {
        "lockin": {"driver": "SR830", "resource": lockin, "timeout_s": 2},
        "current_source": {"driver": "Keithley6221", "resource": k6221, "timeout_s": 2},
        "nanovoltmeter": {"driver": "Keithley2182_via_6221", "query_delay_s": 0.0},
        "temperature": {"driver": "LakeShore336", "resource": ls336, "timeout_s": 2},
        "safe_state": {"heater_setpoint_k": 10.0, "heater_range": 0},
        "limits": {"max_current_a": 1e-3},
        **extra,
    }
    return parse_station(data, "test-station.toml")


@pytest.fixture
def bench(fakes):
    return fakes("SR830"), fakes("Keithley6221"), fakes("LakeShore336")


def test_connect_identify_and_read_through_sockets(bench):
    lockin, k6221, ls336 = bench
    with station_for(lockin.resource, k6221.resource, ls336.resource).connect() as conn:
        assert conn.lockin.identify().startswith("Stanford_Research_Systems,SR830")
        assert conn.temperature.temperature() == pytest.approx(4.2153)
        assert conn.nanovoltmeter.voltage() == pytest.approx(1.25e-6)
        assert "MODEL 2182A" in conn.nanovoltmeter.identify()
        assert conn.magnet is None
        assert conn.wiring.bias_resistor_ohm == 48e3
        assert conn.limits.max_current_a == 1e-3
    # 2182A queries went through the 6221 pass-through, on the 6221's socket
    assert 'SYST:COMM:SER:SEND ":READ?"' in k6221.received


def test_snapshot_is_json_serialisable_and_names_every_role(bench):
    lockin, k6221, ls336 = bench
    with station_for(lockin.resource, k6221.resource, ls336.resource).connect() as conn:
        snap = conn.snapshot()
    text = json.dumps(snap)
    assert json.loads(text)["roles"]["temperature"]["idn"].startswith("LSCI,MODEL336")
    roles = snap["roles"]
    assert set(roles) == {"lockin", "current_source", "nanovoltmeter", "temperature"}
    assert roles["lockin"]["settings"]["sensitivity_v"] == pytest.approx(1e-3)
    assert roles["temperature"]["settings"]["pid"] == [50.0, 20.0, 0.0]
    assert roles["current_source"]["settings"]["limits"]["max_current_a"] == 1e-3
    assert roles["nanovoltmeter"]["driver"] == "Keithley2182_via_6221"
    assert snap["safe_state"]["heater_setpoint_k"] == 10.0


def test_station_limits_reach_the_role_adapters(bench):
    lockin, k6221, ls336 = bench
    from daqapp.errors import LimitError
    with station_for(lockin.resource, k6221.resource, ls336.resource).connect() as conn:
        with pytest.raises(LimitError, match="current_source current"):
            conn.current_source.set_current(2e-3)
        with pytest.raises(LimitError, match="temperature setpoint"):
            conn.temperature.set_setpoint(400)
    assert not any(c.startswith(":SOUR:CURR 0.002") for c in k6221.received)


def _after(received: list[str], first: str) -> list[str]:
    return received[received.index(first):]


def test_safe_state_sends_the_design_md_messages_and_reads_them_back(bench):
    lockin, k6221, ls336 = bench
    conn = station_for(lockin.resource, k6221.resource, ls336.resource).connect()
    try:
        report = conn.to_safe_state()
    finally:
        conn.close()
    assert [v.role for v in report.verdicts] == ["current_source", "lockin", "temperature",
                                                 "nanovoltmeter"]
    assert _after(k6221.received, "SOUR:SWE:ABOR")[:4] == \
        ["SOUR:SWE:ABOR", "OUTPut 0", ":SOUR:CURR 0", "OUTPut?"]
    assert _after(lockin.received, "SLVL0.004")[:6] == \
        ["SLVL0.004", "AUXV1,0;", "AUXV2,0;", "AUXV3,0;", "AUXV4,0;", "SLVL?"]
    assert _after(ls336.received, "RAMP 1,0,0")[:3] == \
        ["RAMP 1,0,0", "SETP 1,10.000000", "RANGE 1,0"]
    # the 6221 fake reads back output 0 and 0 A: confirmed
    assert report.verdict("current_source").confirmed
    assert report.verdict("current_source").line() == \
        "current_source (Keithley6221): output OFF, 0 A confirmed"
    # these fakes answer from a fixed table, so the read-back says what they really report
    lockin_verdict = report.verdict("lockin")
    assert not lockin_verdict.confirmed and "SLVL reads 0.1 V" in lockin_verdict.problem
    assert lockin_verdict.line().endswith("— check by hand")
    assert "heater range reads 1" in report.verdict("temperature").problem
    assert not report.confirmed
    assert report.summary().startswith("safe state NOT CONFIRMED: lockin (SR830)")


def test_safe_state_never_raises_and_reports_dead_roles(bench):
    lockin, k6221, ls336 = bench
    conn = station_for(lockin.resource, k6221.resource, ls336.resource).connect()
    try:
        lockin.close()
        conn.lockin.instrument.adapter.connection.timeout = 200
        conn.lockin.instrument.adapter.close()
        report = conn.to_safe_state()
    finally:
        conn.close()
    assert [v.role for v in report.unconfirmed] != []
    dead = report.verdict("lockin")
    assert not dead.confirmed and "reconnect failed" in dead.problem
    assert report.verdict("current_source").confirmed


def test_unreachable_role_is_named_and_opened_roles_are_closed(bench, closed_resource):
    lockin, k6221, _ = bench
    station = station_for(lockin.resource, k6221.resource, closed_resource)
    with pytest.raises(InstrumentError, match=r"temperature \(LakeShore336 at TCPIP"):
        station.connect()
    conn = station.connect(strict=False)
    try:
        assert conn.temperature is None and "temperature" in conn.failures
        assert conn.lockin is not None
        assert "error" in conn.snapshot()["roles"]["temperature"]
    finally:
        conn.close()


def test_station_check_command(bench, closed_resource, tmp_path, capsys):
    from daqapp.cli import main

    lockin, k6221, ls336 = bench
    text = (f'[lockin]\ndriver = "SR830"\nresource = "{lockin.resource}"\ntimeout_s = 2\n'
            f'[temperature]\ndriver = "LakeShore336"\nresource = "{ls336.resource}"\n')
    good = tmp_path / "good.toml"
    good.write_text(text)
    assert main(["station", "check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "LSCI,MODEL336" in out and "T 4.2153 K" in out and "X 1e-06 V" in out

    bad = tmp_path / "bad.toml"
    bad.write_text(text + f'[magnet]\ndriver = "AMI430"\nresource = "{closed_resource}"\n'
                          'timeout_s = 1\n')
    assert main(["station", "check", str(bad)]) == 2
    captured = capsys.readouterr()
    assert "magnet" in captured.err and "failed" in captured.err
    assert "magnet          FAIL" in captured.out


def test_a_role_that_never_connected_is_tried_once_and_reported(bench, closed_resource):
    lockin, k6221, _ = bench
    conn = station_for(lockin.resource, k6221.resource, closed_resource).connect(strict=False)
    try:
        report = conn.to_safe_state()
    finally:
        conn.close()
    verdict = report.verdict("temperature")
    assert not verdict.confirmed
    assert verdict.problem.startswith("not connected (temperature (LakeShore336 at TCPIP")
    assert "reconnect failed" in verdict.problem
    assert report.verdict("current_source").confirmed
