"""Each role's safe state, message by message: every write on its own, then the read-back."""

import pytest
from pymeasure.test import expected_protocol

from drivers.ami430 import AMI430, AMI430Magnet
from drivers.keithley6221 import Keithley6221, Keithley6221CurrentSource
from drivers.lakeshore336 import LakeShore336, LakeShore336Temperature
from drivers.sr830 import SR830, SR830LockIn

UNITS = [("CONF:FIELD:UNITS 1", None), ("CONF:RAMP:RATE:UNITS 1", None)]
AUX_ZERO = [(f"AUXV?{ch};", "0.000") for ch in (1, 2, 3, 4)]


def test_sr830_read_back_confirms_minimum_excitation_and_aux_zero():
    with expected_protocol(SR830, [("SLVL?", "0.004")] + AUX_ZERO) as lia:
        check = SR830LockIn(lia).verify_safe_state()
    assert check.ok and check.summary == "SLVL 0.004 V, AUX1-4 0 V"
    assert check.values["aux_out_3_v"] == 0.0


def test_sr830_read_back_names_a_bias_left_on():
    replies = [("SLVL?", "0.004"), ("AUXV?1;", "-6.000")] + AUX_ZERO[1:]
    with expected_protocol(SR830, replies) as lia:
        check = SR830LockIn(lia).verify_safe_state()
    assert not check.ok and check.wrong == ["AUX1 reads -6 V, not 0"]


def test_6221_read_back_finds_the_output_still_on():
    with expected_protocol(Keithley6221, [("OUTPut?", "1"), (":SOUR:CURR?", "0.0037")]) as k:
        check = Keithley6221CurrentSource(k).verify_safe_state()
    assert check.wrong == ["output is still ON", "source current reads 0.0037 A, not 0"]


def test_6221_read_back_confirms_off_and_zero():
    with expected_protocol(Keithley6221, [("OUTPut?", "0"), (":SOUR:CURR?", "0")]) as k:
        check = Keithley6221CurrentSource(k).verify_safe_state()
    assert check.ok and check.values == {"output_enabled": False, "current_a": 0.0}


def test_lakeshore_read_back_checks_range_and_setpoint():
    with expected_protocol(LakeShore336, [("RANGE? 1", "2"), ("SETP? 1", "20.0")]) as ls:
        role = LakeShore336Temperature(ls, safe_setpoint_k=10.0, safe_heater_range=0)
        check = role.verify_safe_state()
    assert check.wrong == ["heater range reads 2, not 0", "setpoint reads 20 K, not 10 K"]


@pytest.mark.parametrize("action,state,ok", [("zero", "6", True), ("zero", "2", False),
                                             ("hold", "3", True), ("hold", "1", False)])
def test_magnet_read_back_follows_the_station_policy(action, state, ok):
    pairs = UNITS + [("FIELD:MAG?", "0.3"), ("STATE?", state)]
    with expected_protocol(AMI430, pairs, expect_greeting=False) as ami:
        check = AMI430Magnet(ami, safe_action=action).verify_safe_state()
    assert check.ok is ok
    if not ok:
        assert check.wrong[0].startswith("magnet is ")


class _Flaky6221:
    """A 6221 whose first safe-state write fails: the others must still be sent."""

    def __init__(self):
        self.sent = []

    def sweep_abort(self):
        raise TimeoutError("no reply")

    def __setattr__(self, name, value):
        if name != "sent":
            self.sent.append((name, value))
        object.__setattr__(self, name, value)


def test_one_failed_write_does_not_skip_the_rest_of_the_role():
    flaky = _Flaky6221()
    role = Keithley6221CurrentSource.__new__(Keithley6221CurrentSource)
    role.instrument = flaky
    done, failed = role.apply_safe_state()
    assert flaky.sent == [("source_enabled", False), ("source_current", 0.0)]
    assert done == ["output off", "current 0 A"]
    assert failed == ["abort delta/DCON (SOUR:SWE:ABOR): TimeoutError: no reply"]


def test_a_silent_link_stops_the_read_back_after_the_first_timeout():
    calls = []

    def silent():
        calls.append(1)
        raise TimeoutError("VI_ERROR_TMO")

    from drivers.roles import Readback

    check = Readback("x")
    check.query("a", "SLVL?", silent)
    check.query("b", "AUXV?1", silent)
    assert len(calls) == 1 and check.values == {"a": None, "b": None}
    assert check.unanswered == ["no reply to SLVL? (TimeoutError: VI_ERROR_TMO)"]


def test_a_quenched_magnet_is_named_not_confirmed():
    pairs = UNITS + [("FIELD:MAG?", "0.12"), ("STATE?", "7")]
    with expected_protocol(AMI430, pairs, expect_greeting=False) as ami:
        check = AMI430Magnet(ami, safe_action="zero").verify_safe_state()
    assert check.wrong == ["the magnet QUENCHED: field decaying, supply in quench state"]
    assert check.values == {"field_t": 0.12, "state": "quench"}
