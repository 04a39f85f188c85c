"""Lake Shore 336 ramp, PID, OUTMODE, HTRSET, HTRST?, RDGST? (instruments.md §4)."""

import pytest
from pymeasure.test import expected_protocol

from daqapp.errors import LimitError
from drivers.lakeshore336 import LakeShore336, LakeShore336Temperature
from drivers.roles import HeaterStatus


def test_ramp_set_and_query():
    with expected_protocol(LakeShore336, [("RAMP 1,1,2.5", None), ("RAMP? 1", "1,+2.5000"),
                                          ("RAMPST? 1", "1"), ("RAMP 2,0,0", None)]) as ls:
        ls.output_1.ramp = (True, 2.5)
        assert ls.output_1.ramp == (True, 2.5)
        assert ls.output_1.ramping is True
        ls.output_2.ramp = (False, 0)


def test_ramp_rate_out_of_range_is_refused():
    with expected_protocol(LakeShore336, []) as ls:
        with pytest.raises(ValueError, match="0.1 to 100"):
            ls.output_1.ramp = (True, 150)


def test_pid_outmode_htrset():
    pairs = [("PID 1,50,20,0", None), ("PID? 1", "+0150.0,+0005.0,+000.0"),
             ("OUTMODE 1,1,1,0", None), ("OUTMODE? 1", "1,1,0"),
             ("HTRSET 1,1,2,0,1", None), ("HTRSET? 1", "1,2,+0.000,1")]
    with expected_protocol(LakeShore336, pairs) as ls:
        ls.output_1.pid = (50, 20, 0)
        assert ls.output_1.pid == (150.0, 5.0, 0.0)
        ls.output_1.output_mode = (1, 1, 0)
        assert ls.output_1.output_mode == (1, 1, 0)
        ls.output_1.heater_setup = (1, 2, 0, 1)
        assert ls.output_1.heater_setup == (1, 2, 0.0, 1)
        with pytest.raises(ValueError):
            ls.output_1.pid = (0, 20, 0)


def test_heater_and_reading_status():
    with expected_protocol(LakeShore336, [("HTRST? 1", "1"), ("RDGST? B", "32")]) as ls:
        assert ls.output_1.heater_status == 1
        assert ls.input_B.reading_status == 32


def test_errors_come_from_esr_not_syst_err():
    with expected_protocol(LakeShore336, [("*ESR?", "16"), ("*ESR?", "0")]) as ls:
        assert ls.check_errors() == [(16, "execution error")]
        assert ls.check_errors() == []


def _role(ls, **kw):
    return LakeShore336Temperature(ls, control_input="A", output=1, temperature_min_k=1.5,
                                   temperature_max_k=300, heater_ranges_allowed=(0, 1, 2), **kw)


def test_role_setpoint_with_ramp_and_step():
    pairs = [("RAMP 1,1,1", None), ("SETP 1,10.000000", None),
             ("RAMP 1,0,0", None), ("SETP 1,4.200000", None)]
    with expected_protocol(LakeShore336, pairs) as ls:
        role = _role(ls)
        role.set_setpoint(10, ramp_k_per_min=1.0)
        role.set_setpoint(4.2)


def test_role_refuses_setpoint_and_range_outside_station_limits():
    with expected_protocol(LakeShore336, []) as ls:
        role = _role(ls)
        with pytest.raises(LimitError, match="temperature setpoint"):
            role.set_setpoint(350)
        with pytest.raises(LimitError, match="heater range"):
            role.set_heater_range(3)


def test_role_heater_status_and_reading_problems():
    with expected_protocol(LakeShore336, [("HTRST? 1", "2"), ("RDGST? A", "17")]) as ls:
        role = _role(ls)
        assert role.heater_status() is HeaterStatus.SHORT
        assert role.reading_problems() == ["invalid reading", "temperature under range"]


def test_role_stability_uses_krdg():
    with expected_protocol(LakeShore336, [("KRDG? A", "+4.2153"), ("KRDG? A", "+4.3000")]) as ls:
        role = _role(ls)
        assert role.is_stable(4.2, 0.02) is True
        assert role.is_stable(4.2, 0.02) is False


def test_role_safe_state_setpoint_and_heater_range():
    pairs = [("RAMP 1,0,0", None), ("SETP 1,300.000000", None), ("RANGE 1,0", None)]
    with expected_protocol(LakeShore336, pairs) as ls:
        _role(ls, safe_setpoint_k=300.0, safe_heater_range=0).to_safe_state()


def test_role_safe_state_heater_off_only():
    with expected_protocol(LakeShore336, [("RANGE 1,0", None)]) as ls:
        _role(ls).to_safe_state()
