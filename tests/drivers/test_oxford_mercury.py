"""Mercury iTC and iPS: the manual's READ/SET/STAT messages, the roles, and the emulators.

Protocol tests use pymeasure's ``expected_protocol`` with the exact messages of the Mercury
manuals (§8.3 iTC, §10.3 iPS): ``READ:DEV:MB1.T1:TEMP:SIG:TEMP`` answered
``STAT:DEV:MB1.T1:TEMP:SIG:TEMP:4.2134K``, every SET answered with its echo and ``:VALID``.
"""

from __future__ import annotations

import pytest
from pymeasure.test import expected_protocol

from daqapp.errors import InstrumentError, LimitError
from drivers.oxford_mercury import (
    MercuryiPS,
    MercuryIPSMagnet,
    MercuryiTC,
    MercuryITCTemperature,
)
from drivers.roles import HeaterStatus, MagnetState
from simulators.clock import SimClock
from simulators.cryostat import Cryostat
from simulators.faults import FaultBoard
from simulators.instruments.oxford_mercury import MercuryIPSEmulator, MercuryITCEmulator
from simulators.magnet import MagnetModel

LOOP = "DEV:MB1.T1:TEMP:LOOP"
IDN_25 = "IDN:OXFORD INSTRUMENTS:MERCURY IPS:123:2.5.09.000"
IDN_26 = "IDN:OXFORD INSTRUMENTS:MERCURY IPS:123:2.6.04.000"


def test_itc_reads_the_stage_temperature_and_its_loop():
    with expected_protocol(MercuryiTC, [
        ("READ:DEV:MB1.T1:TEMP:SIG:TEMP", "STAT:DEV:MB1.T1:TEMP:SIG:TEMP:4.2134K"),
        (f"READ:{LOOP}:TSET", f"STAT:{LOOP}:TSET:4.3000K"),
        (f"READ:{LOOP}:ENAB", f"STAT:{LOOP}:ENAB:ON"),
        ("READ:DEV:MB0.H1:HTR:VLIM", "STAT:DEV:MB0.H1:HTR:VLIM:40.0000"),
        ("READ:DEV:MB0.H1:HTR:SIG:VOLT", "STAT:DEV:MB0.H1:HTR:SIG:VOLT:4.0000V"),
    ]) as itc:
        role = MercuryITCTemperature(itc)
        assert role.temperature() == pytest.approx(4.2134)
        assert role.setpoint() == pytest.approx(4.3)
        assert role.heater_range() == 1
        assert role.heater_output() == pytest.approx(10.0)


def test_itc_ramped_setpoint_checks_limits_first_then_sends_rate_enable_target():
    with expected_protocol(MercuryiTC, [
        (f"SET:{LOOP}:RSET:2", f"STAT:SET:{LOOP}:RSET:2:VALID"),
        (f"SET:{LOOP}:RENA:ON", f"STAT:SET:{LOOP}:RENA:ON:VALID"),
        (f"SET:{LOOP}:TSET:20", f"STAT:SET:{LOOP}:TSET:20:VALID"),
        (f"SET:{LOOP}:RENA:OFF", f"STAT:SET:{LOOP}:RENA:OFF:VALID"),
        (f"SET:{LOOP}:TSET:5", f"STAT:SET:{LOOP}:TSET:5:VALID"),
    ]) as itc:
        role = MercuryITCTemperature(itc, temperature_max_k=300.0)
        with pytest.raises(LimitError, match="temperature setpoint"):
            role.set_setpoint(301.0)
        role.set_setpoint(20.0, 2.0)
        role.set_setpoint(5.0)


def test_itc_a_refused_set_raises_instead_of_passing_silently():
    with expected_protocol(MercuryiTC, [
        (f"SET:{LOOP}:TSET:5", f"STAT:SET:{LOOP}:TSET:5:INVALID"),
        ("SET:DEV:DB9.T1:TEMP:LOOP:TSET:5", "STAT:SET:DEV:DB9.T1:TEMP:LOOP:TSET:5:NOT_FOUND"),
    ]) as itc:
        with pytest.raises(InstrumentError, match="INVALID"):
            itc.TS_MB.control_loop_temperature_setpoint = 5
        with pytest.raises(InstrumentError, match="NOT_FOUND"):
            itc.sensor("DB9.T1").control_loop_temperature_setpoint = 5


def test_itc_heater_ranges_are_loop_off_or_on_and_the_safe_state_turns_it_off():
    with expected_protocol(MercuryiTC, [
        (f"SET:{LOOP}:ENAB:ON", f"STAT:SET:{LOOP}:ENAB:ON:VALID"),
        (f"SET:{LOOP}:RENA:OFF", f"STAT:SET:{LOOP}:RENA:OFF:VALID"),
        (f"SET:{LOOP}:TSET:10", f"STAT:SET:{LOOP}:TSET:10:VALID"),
        (f"SET:{LOOP}:ENAB:OFF", f"STAT:SET:{LOOP}:ENAB:OFF:VALID"),
        (f"SET:{LOOP}:HSET:0", f"STAT:SET:{LOOP}:HSET:0:VALID"),
        (f"READ:{LOOP}:ENAB", f"STAT:{LOOP}:ENAB:OFF"),
        (f"READ:{LOOP}:TSET", f"STAT:{LOOP}:TSET:10.0000K"),
        (f"READ:{LOOP}:RENA", f"STAT:{LOOP}:RENA:OFF"),
    ]) as itc:
        role = MercuryITCTemperature(itc, safe_setpoint_k=10.0, safe_heater_range=0,
                                     heater_ranges_allowed=(0, 2))
        with pytest.raises(LimitError, match="heater range"):
            role.set_heater_range(1)
        role.set_heater_range(2)             # any allowed range above 0 is the loop on
        role.to_safe_state()
        check = role.verify_safe_state()
        assert check.ok, check.problems


def test_itc_needle_valve_manual_and_auto():
    with expected_protocol(MercuryiTC, [
        (f"SET:{LOOP}:FAUT:OFF", f"STAT:SET:{LOOP}:FAUT:OFF:VALID"),
        (f"SET:{LOOP}:FSET:35", f"STAT:SET:{LOOP}:FSET:35:VALID"),
        ("READ:DEV:DB4.G1:AUX:SIG:PERC", "STAT:DEV:DB4.G1:AUX:SIG:PERC:35.000%"),
        (f"SET:{LOOP}:FAUT:ON", f"STAT:SET:{LOOP}:FAUT:ON:VALID"),
    ]) as itc:
        role = MercuryITCTemperature(itc)
        role.set_needle_valve(35)
        assert role.needle_valve() == pytest.approx(35.0)
        role.set_needle_valve(None)
        with pytest.raises(LimitError, match="needle valve"):
            role.set_needle_valve(120)


@pytest.mark.parametrize("volts,amps,status", [("4.0000", "0.1000", HeaterStatus.OK),
                                               ("4.0000", "0.0000", HeaterStatus.OPEN),
                                               ("0.0000", "1.0000", HeaterStatus.SHORT)])
def test_itc_heater_status_from_its_voltage_and_current(volts, amps, status):
    with expected_protocol(MercuryiTC, [
        ("READ:DEV:MB0.H1:HTR:SIG:VOLT", f"STAT:DEV:MB0.H1:HTR:SIG:VOLT:{volts}V"),
        ("READ:DEV:MB0.H1:HTR:SIG:CURR", f"STAT:DEV:MB0.H1:HTR:SIG:CURR:{amps}A"),
    ]) as itc:
        assert MercuryITCTemperature(itc).heater_status() is status


@pytest.mark.parametrize("idn,node", [(IDN_25, "PSU"), (IDN_26, "SPSU")])
def test_ips_ramp_checks_limits_then_sets_rate_target_and_action(idn, node):
    psu = f"DEV:GRPZ:{node}"
    with expected_protocol(MercuryiPS, [
        ("*IDN?", idn),
        (f"READ:{psu}:ACTN", f"STAT:{psu}:ACTN:CLMP"),
        (f"SET:{psu}:ACTN:HOLD", f"STAT:SET:{psu}:ACTN:HOLD:VALID"),
        (f"SET:{psu}:SIG:RFST:0.2000", f"STAT:SET:{psu}:SIG:RFST:0.2000:VALID"),
        (f"SET:{psu}:SIG:FSET:1.5000", f"STAT:SET:{psu}:SIG:FSET:1.5000:VALID"),
        (f"SET:{psu}:ACTN:RTOS", f"STAT:SET:{psu}:ACTN:RTOS:VALID"),
    ]) as ips:
        role = MercuryIPSMagnet(ips, max_field_t=7, max_ramp_t_per_min=0.3)
        with pytest.raises(LimitError, match="magnet field"):
            role.ramp_to(8, 0.2)
        with pytest.raises(LimitError, match="magnet ramp rate"):
            role.ramp_to(1, 0.5)
        role.ramp_to(1.5, 0.2)


def test_ips_field_is_the_magnets_own_when_the_switch_is_cold_and_states():
    psu = "DEV:GRPZ:PSU"
    with expected_protocol(MercuryiPS, [
        ("*IDN?", IDN_25),
        (f"READ:{psu}:SIG:SWHT", f"STAT:{psu}:SIG:SWHT:OFF"),
        (f"READ:{psu}:SIG:PFLD", f"STAT:{psu}:SIG:PFLD:2.0000T"),
        ("READ:SYS:ALRM", "STAT:SYS:ALRM:"),
        (f"READ:{psu}:ACTN", f"STAT:{psu}:ACTN:RTOZ"),
        ("READ:SYS:ALRM", "STAT:SYS:ALRM:DEV:GRPZ:PSU:Magnet Quenched;"),
    ]) as ips:
        role = MercuryIPSMagnet(ips)
        assert role.field() == pytest.approx(2.0)
        assert role.state() is MagnetState.ZEROING
        assert role.state() is MagnetState.QUENCH


def test_ips_refused_set_raises():
    psu = "DEV:GRPZ:PSU"
    with expected_protocol(MercuryiPS, [
        ("*IDN?", IDN_25),
        (f"SET:{psu}:ACTN:RTOS", f"STAT:SET:{psu}:ACTN:RTOS:INVALID"),
    ]) as ips:
        with pytest.raises(InstrumentError, match="refused"):
            ips.action = "RTOS"


# ---- the emulators speak the same grammar ---------------------------------------------
@pytest.fixture
def itc():
    clock = SimClock(1e-6)
    return MercuryITCEmulator(Cryostat(clock, initial_K=4.2), clock, FaultBoard(),
                              lambda sigma: 0.0)


def test_itc_emulator_answers_the_manuals_messages(itc):
    assert itc.handle("*IDN?")[0].startswith("IDN:OXFORD INSTRUMENTS:MERCURY ITC:")
    assert itc.handle("READ:DEV:MB1.T1:TEMP:SIG:TEMP") == [
        "STAT:DEV:MB1.T1:TEMP:SIG:TEMP:4.2000K"]
    assert itc.handle(f"SET:{LOOP}:TSET:4.321") == [f"STAT:SET:{LOOP}:TSET:4.321:VALID"]
    assert itc.handle(f"READ:{LOOP}:TSET") == [f"STAT:{LOOP}:TSET:4.3210K"]
    assert itc.handle(f"SET:{LOOP}:TSET:-1") == [f"STAT:SET:{LOOP}:TSET:-1:INVALID"]
    assert itc.handle(f"SET:{LOOP}:ENAB:MAYBE") == [f"STAT:SET:{LOOP}:ENAB:MAYBE:INVALID"]
    for bad in ("nan", "inf", "-inf", "1e999", "4.2K", ""):
        assert itc.handle(f"SET:{LOOP}:TSET:{bad}")[0].endswith(":INVALID"), bad
    assert itc.handle(f"READ:{LOOP}:TSET") == [f"STAT:{LOOP}:TSET:4.3210K"]
    assert itc.handle("READ:DEV:DB9.T1:TEMP:SIG:TEMP") == [
        "STAT:DEV:DB9.T1:TEMP:SIG:TEMP:NOT_FOUND"]
    assert itc.handle("READ:DEV:MB1.T1:TEMP:SIG:TMP") == [
        "STAT:DEV:MB1.T1:TEMP:SIG:TMP:INVALID"]
    assert itc.handle("FETCH:DEV") == ["FETCH:INVALID"]
    assert itc.handle("READ:SYS:CAT")[0].startswith("STAT:SYS:CAT:DEV:MB1.T1:TEMP")


def test_itc_emulator_heater_is_percent_of_vlim_into_res(itc):
    itc.handle(f"SET:{LOOP}:HSET:50")
    assert itc.handle("READ:DEV:MB0.H1:HTR:SIG:VOLT") == ["STAT:DEV:MB0.H1:HTR:SIG:VOLT:20.0000V"]
    assert itc.handle("READ:DEV:MB0.H1:HTR:SIG:POWR") == ["STAT:DEV:MB0.H1:HTR:SIG:POWR:10.0000W"]
    assert itc.heater_power(0.0, 4.2, 4.2, 0.1) == pytest.approx(10.0)
    itc.faults.set("temperature", "heater_open")
    assert itc.heater_power(0.0, 4.2, 4.2, 0.1) == 0.0
    assert itc.handle("READ:DEV:MB0.H1:HTR:SIG:CURR") == ["STAT:DEV:MB0.H1:HTR:SIG:CURR:0.0000A"]


def test_itc_emulator_loop_holds_a_setpoint_on_the_cryostat():
    clock = SimClock(1e-6)
    cryostat = Cryostat(clock, initial_K=4.2)
    itc = MercuryITCEmulator(cryostat, clock, FaultBoard(), lambda sigma: 0.0)
    itc.handle(f"SET:{LOOP}:TSET:20")
    itc.handle(f"SET:{LOOP}:ENAB:ON")
    clock.advance(1800.0)
    assert cryostat.stage_temperature == pytest.approx(20.0, abs=0.05)
    # ramped: the working set point moves at RSET K/min
    itc.handle(f"SET:{LOOP}:RSET:2")
    itc.handle(f"SET:{LOOP}:RENA:ON")
    itc.handle(f"SET:{LOOP}:TSET:30")
    clock.advance(150.0)
    cryostat.advance()
    assert itc.working == pytest.approx(25.0, abs=0.3)


def test_ips_emulator_ramps_the_lab_magnet_and_holds_when_done():
    clock = SimClock(1e-6)
    magnet = MagnetModel(clock)
    magnet.switch = "on"
    ips = MercuryIPSEmulator(magnet, FaultBoard())
    psu = "DEV:GRPZ:PSU"
    assert ips.handle(f"SET:{psu}:SIG:RFST:0.6") == [f"STAT:SET:{psu}:SIG:RFST:0.6:VALID"]
    assert ips.handle(f"SET:{psu}:SIG:FSET:0.3") == [f"STAT:SET:{psu}:SIG:FSET:0.3:VALID"]
    assert ips.handle(f"SET:{psu}:ACTN:RTOS") == [f"STAT:SET:{psu}:ACTN:RTOS:VALID"]
    clock.advance(15.0)
    assert ips.handle(f"READ:{psu}:SIG:FLD") == [f"STAT:{psu}:SIG:FLD:0.1500T"]
    assert ips.handle(f"READ:{psu}:ACTN") == [f"STAT:{psu}:ACTN:RTOS"]
    clock.advance(60.0)
    assert ips.handle(f"READ:{psu}:ACTN") == [f"STAT:{psu}:ACTN:HOLD"]
    assert magnet.field == pytest.approx(0.3)
    assert ips.handle("READ:DEV:GRPZ:SPSU:SIG:FLD") == [
        "STAT:DEV:GRPZ:SPSU:SIG:FLD:INVALID"]  # firmware 2.5: the node is PSU
    magnet.quench()
    ips.on_quench()
    assert "Quench" in ips.handle("READ:SYS:ALRM")[0]
    assert ips.handle(f"SET:{psu}:ACTN:RTOS")[0].endswith(":INVALID")  # clamped


def test_pymeasures_own_mercuryitc_runs_unchanged_against_the_emulator():
    from pymeasure.instruments.oxfordinstruments import MercuryiTC as PymeasureMercuryiTC

    from simulators.lab import VirtualLab

    with VirtualLab(temperature_model="mercury_itc", speed=100.0) as lab:
        itc = PymeasureMercuryiTC(lab.endpoints["temperature"].resource, timeout=3000)
        try:
            assert itc.identity.startswith("IDN:OXFORD INSTRUMENTS:MERCURY ITC")
            assert itc.TS_MB.temperature == pytest.approx(1.5, abs=0.05)
            itc.TS_MB.control_loop_temperature_setpoint = 4.2
            assert itc.TS_MB.control_loop_temperature_setpoint == pytest.approx(4.2)
            itc.TS_MB.control_loop_PID_enabled = True
            assert itc.TS_MB.control_loop_PID_enabled is True
            itc.HTR_MB.voltage_limit = 20
            assert itc.HTR_MB.voltage_limit == pytest.approx(20.0)
            assert itc.HTR_MB.power >= 0.0
        finally:
            itc.adapter.close()
