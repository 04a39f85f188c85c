"""AMI 430 state enum, quench, switch, greeting, role (instruments.md §6)."""

import pytest
from pymeasure.test import expected_protocol

from daqapp.errors import LimitError
from drivers.ami430 import AMI430, GREETING, AMI430Magnet, AMI430State
from drivers.roles import MagnetState

UNITS = [("CONF:FIELD:UNITS 1", None), ("CONF:RAMP:RATE:UNITS 1", None)]


def test_greeting_is_consumed_when_expected():
    with expected_protocol(AMI430, [(None, GREETING[0]), (None, GREETING[1]),
                                    ("*IDN?", "AMERICAN MAGNETICS INC.,MODEL 430,2.01")],
                           expect_greeting=True) as ami:
        assert ami.greeting == list(GREETING)
        assert ami.id.startswith("AMERICAN MAGNETICS")


def test_state_is_an_enum_and_quench_switch_are_bools():
    pairs = [("STATE?", "7"), ("QU?", "1"), ("PSwitch?", "0"), ("PSwitch:INSTalled?", "1"),
             ("QU 0", None)]
    with expected_protocol(AMI430, pairs, expect_greeting=False) as ami:
        assert ami.state is AMI430State.QUENCH
        assert ami.quenched is True
        assert ami.has_persistent_switch_enabled() is False  # pymeasure 0.16 said True
        assert ami.persistent_switch_installed is True
        ami.reset_quench()


def test_role_sets_tesla_per_minute_on_connect_and_ramps():
    pairs = UNITS + [("CONF:RAMP:RATE:FIELD 1,0.1,9", None), ("CONF:FIELD:TARG 2", None),
                     ("RAMP", None), ("STATE?", "1")]
    with expected_protocol(AMI430, pairs, expect_greeting=False) as ami:
        role = AMI430Magnet(ami, max_field_t=9, max_ramp_t_per_min=0.2)
        role.ramp_to(2, 0.1)
        assert role.state() is MagnetState.RAMPING
        with pytest.raises(LimitError, match="magnet ramp rate"):
            role.ramp_to(2, 1.0)


def test_role_switch_state_none_without_switch():
    pairs = UNITS + [("PSwitch:INSTalled?", "0"), ("PSwitch:INSTalled?", "1"), ("PSwitch?", "1")]
    with expected_protocol(AMI430, pairs, expect_greeting=False) as ami:
        role = AMI430Magnet(ami)
        assert role.persistent_switch_heated() is None
        assert role.persistent_switch_heated() is True


def test_role_quench_from_qu_or_state():
    pairs = UNITS + [("QU?", "0"), ("STATE?", "2"), ("QU?", "1")]
    with expected_protocol(AMI430, pairs, expect_greeting=False) as ami:
        role = AMI430Magnet(ami)
        assert role.is_quenched() is False
        assert role.is_quenched() is True


@pytest.mark.parametrize("action,command", [("hold", "PAUSE"), ("zero", "ZERO")])
def test_role_safe_state(action, command):
    with expected_protocol(AMI430, UNITS + [(command, None)], expect_greeting=False) as ami:
        AMI430Magnet(ami, safe_action=action).to_safe_state()


def test_no_greeting_read_on_a_non_socket_link():
    # expected_protocol gives no resource string: like GPIB/serial, no greeting is awaited
    with expected_protocol(AMI430, [("PERS?", "1")]) as ami:
        assert ami.greeting == []
        assert ami.persistent is True


def test_units_and_ramp_segment_queries():
    pairs = [("FIELD:UNITS?", "1"), ("RAMP:RATE:UNITS?", "0"),
             ("RAMP:RATE:FIELD:1?", "0.0500,9.0000")]
    with expected_protocol(AMI430, pairs, expect_greeting=False) as ami:
        assert ami.field_units == "T"
        assert ami.ramp_rate_units == "s"
        assert ami.ramp_rate_field == (0.05, 9.0)
