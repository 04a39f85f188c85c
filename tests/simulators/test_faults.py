"""Every injectable fault produces the symptom the real instrument shows."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import pyvisa
from pyvisa.errors import VisaIOError

from daqapp.errors import ConfigError
from simulators.faults import FaultBoard
from tests.simulators.conftest import ask, open_session

pytestmark = pytest.mark.timeout(120)


def test_no_reply_times_out_then_recovers(lab, rm):
    s = open_session(rm, lab.endpoints["lockin"], timeout_ms=300)
    lab.faults.set("lockin", "no_reply")
    with pytest.raises(VisaIOError) as exc:
        s.query("*IDN?")
    assert exc.value.error_code == pyvisa.constants.StatusCode.error_timeout
    lab.faults.clear("lockin", "no_reply")
    assert s.query("*IDN?").startswith("Stanford_Research_Systems")


def test_latency_delays_replies_beyond_a_short_timeout(lab, rm):
    lab.faults.set("temperature", "latency", 0.6)
    fast = open_session(rm, lab.endpoints["temperature"], timeout_ms=150)
    with pytest.raises(VisaIOError):
        fast.query("*IDN?")
    patient = open_session(rm, lab.endpoints["temperature"], timeout_ms=5000)
    assert patient.query("*IDN?").startswith("LSCI,MODEL336")


def test_dropped_connection_closes_the_socket(lab):
    ep = lab.endpoints["current_source"]
    with socket.create_connection((ep.host, ep.port), timeout=2) as sock:
        sock.sendall(b"*IDN?\n")
        assert b"MODEL 6221" in sock.recv(200)
        lab.faults.set("current_source", "drop")
        sock.settimeout(2)
        assert sock.recv(200) == b""            # the server closed the link
    with socket.create_connection((ep.host, ep.port), timeout=2) as sock:
        sock.settimeout(2)
        assert sock.recv(200) == b""            # new connections are refused too
    lab.faults.clear("current_source")
    with socket.create_connection((ep.host, ep.port), timeout=2) as sock:
        sock.sendall(b"*IDN?\n")
        assert b"MODEL 6221" in sock.recv(200)


def test_garbage_reply_is_not_a_number(lab, rm):
    s = open_session(rm, lab.endpoints["nanovoltmeter"])
    lab.faults.set("nanovoltmeter", "garbage")
    reply = s.query(":SENS:VOLT:NPLC?")
    with pytest.raises(ValueError):
        float(reply)
    lab.faults.clear("nanovoltmeter", "garbage")
    assert float(s.query(":SENS:VOLT:NPLC?")) == 5.0


def test_lockin_overload_sets_lias_and_saturates(frozen_lab):
    lia = frozen_lab.emulators["lockin"]
    lia.handle("SENS 20;LIAS?")
    assert ask(lia, "LIAS? 0") == "0"
    frozen_lab.faults.set("lockin", "overload")
    x = float(ask(lia, "OUTP?1"))
    assert abs(x) == pytest.approx(1.09 * 10e-3, rel=1e-3)
    assert int(ask(lia, "LIAS?")) & 1               # input overload, latched
    frozen_lab.faults.clear("lockin", "overload")
    frozen_lab.clock.advance(5.0)
    float(ask(lia, "OUTP?1"))
    assert int(ask(lia, "LIAS?")) & 1 == 0


def test_lockin_output_overload_when_signal_exceeds_sensitivity(frozen_lab):
    lab = frozen_lab
    lia = lab.emulators["lockin"]
    lia.handle("SLVL 1.0;SENS 10;*CLS")            # ~7 mV signal on the 5 µV range
    lab.clock.advance(5.0)
    float(ask(lia, "OUTP?1"))
    assert int(ask(lia, "LIAS?")) & 4


def test_6221_compliance_bit_and_delta_abort(frozen_lab):
    lab = frozen_lab
    k = lab.emulators["current_source"]
    k.handle("SOUR:CURR:COMP 5;SOUR:CURR 1e-3;OUTP ON")
    assert int(ask(k, "STAT:MEAS:COND?")) & 8 == 0
    lab.faults.set("current_source", "compliance")  # an open current lead
    assert int(ask(k, "STAT:MEAS:COND?")) & 8
    assert lab.bench.source_current_A == pytest.approx(5.0 / 1e9)
    k.handle("OUTP OFF;SOUR:DELT:HIGH 1e-3;SOUR:DELT:CAB ON;SOUR:DELT:COUN 10;"
             "SOUR:DELT:ARM;INIT")
    lab.clock.advance(5.0)
    assert ask(k, "SOUR:DELT:ARM?") == "0"           # aborted on compliance
    assert ask(k, "SYST:ERR?").startswith("-200")
    lab.faults.clear("current_source")
    k.handle("SOUR:DELT:CAB OFF;TRAC:CLE;SOUR:DELT:ARM;INIT")
    lab.clock.advance(5.0)
    readings = np.array(ask(k, "TRAC:DATA?").split(","), dtype=float)[0::2]
    assert len(readings) == 10 and np.all(np.abs(readings) < 1e-3)


def test_6221_compliance_without_abort_gives_overflow_readings(frozen_lab):
    lab = frozen_lab
    k = lab.emulators["current_source"]
    lab.faults.set("current_source", "compliance")
    k.handle("SOUR:DELT:HIGH 1e-3;SOUR:DELT:COUN 5;TRAC:POIN 5;SOUR:DELT:ARM;INIT")
    lab.clock.advance(5.0)
    assert ask(k, "TRAC:DATA?").split(",")[0] == "+9.9E37"


def test_magnet_quench_ami430(frozen_lab):
    lab = frozen_lab
    ami = lab.emulators["magnet"]
    ami.handle("CONF:FIELD:UNITS 1;CONF:RAMP:RATE:UNITS 1;CONF:RAMP:RATE:FIELD 1,1.0,9;"
               "CONF:FIELD:TARG 1.0;RAMP")
    lab.clock.advance(90.0)
    assert lab.magnet.field == pytest.approx(1.0)
    lab.faults.set("magnet", "quench")
    lab.clock.advance(2.0)
    assert ask(ami, "STATE?") == "7"
    assert ask(ami, "QU?") == "1"
    assert abs(float(ask(ami, "FIELD:MAG?"))) < 1e-3
    ami.handle("RAMP")
    assert ask(ami, "SYST:ERR?").startswith("-106")     # no ramp while quenched
    ami.handle("QU 0")
    assert ask(ami, "QU?") == "1"                       # the fault is still there
    lab.faults.clear("magnet", "quench")
    ami.handle("QU 0")
    assert ask(ami, "QU?") == "0"
    assert ask(ami, "STATE?") == "8"


def test_magnet_quench_ips120(frozen_lab):
    from simulators.lab import VirtualLab

    lab = VirtualLab(speed=1e-6, seed=1, magnet_model="ips120")
    ips = lab.emulators["magnet"]
    assert ask(ips, "J1.0") == "?J1.0"                  # LOCAL: settings refused
    for cmd in ("C3", "T1.0", "J1.0", "A1"):
        assert ask(ips, cmd) == cmd[0]
    lab.clock.advance(90.0)
    assert float(ask(ips, "R7")[1:]) == pytest.approx(1.0)
    lab.faults.set("magnet", "quench")
    lab.clock.advance(2.0)
    status = ask(ips, "X")
    assert status[1] == "1"                             # system status: quenched
    assert float(ask(ips, "R17")[1:]) == pytest.approx(10.0, rel=1e-3)   # trip current
    assert abs(float(ask(ips, "R7")[1:])) < 1e-3


def test_heater_open_and_short_lakeshore336(frozen_lab):
    lab = frozen_lab
    ls = lab.emulators["temperature"]
    lab.cryostat.set_temperature(20.0)
    ls.handle("SETP 1,20;RANGE 1,2")
    lab.clock.advance(300.0)
    assert ask(ls, "HTRST? 1") == "0"
    lab.faults.set("temperature", "heater_open")
    lab.clock.advance(60.0)
    assert ask(ls, "HTRST? 1") == "1"
    assert ask(ls, "RANGE? 1") == "0"                  # the 336 turns the output off
    assert lab.cryostat.stage_temperature < 15.0        # and the stage cools
    ls.handle("RANGE 1,2")
    assert ask(ls, "RANGE? 1") == "0"                  # refused while the load is open
    lab.faults.clear("temperature")
    lab.faults.set("temperature", "heater_short")
    assert ask(ls, "HTRST? 1") == "2"
    lab.faults.clear("temperature")
    ls.handle("RANGE 1,2")
    lab.clock.advance(300.0)
    assert ask(ls, "HTRST? 1") == "0"
    assert lab.cryostat.stage_temperature == pytest.approx(20.0, abs=0.05)


def test_heater_open_itc503_winds_up_and_does_not_heat():
    from simulators.lab import VirtualLab

    lab = VirtualLab(speed=1e-6, seed=1, temperature_model="itc503")
    itc = lab.emulators["temperature"]
    lab.faults.set("temperature", "heater_open")
    for cmd in ("C3", "A1", "T20"):
        assert ask(itc, cmd) == cmd[0]
    lab.clock.advance(300.0)
    assert float(ask(itc, "R5")[1:]) == pytest.approx(99.9)   # PID output saturated
    assert lab.cryostat.stage_temperature < 2.0               # but nothing warms up


def test_fault_spec_parsing_and_validation():
    assert FaultBoard.parse("lockin=no_reply") == ("lockin", "no_reply", 0.0)
    assert FaultBoard.parse("magnet=latency:0.25") == ("magnet", "latency", 0.25)
    with pytest.raises(ConfigError, match="applies to role 'magnet'"):
        FaultBoard.parse("lockin=quench")
    with pytest.raises(ConfigError, match="unknown"):
        FaultBoard.parse("lockin=melt")
    with pytest.raises(ConfigError, match="ROLE=KIND"):
        FaultBoard.parse("lockin")
