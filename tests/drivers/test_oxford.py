"""IPS120-10 read-back fixes and the Oxford temperature/magnet roles (instruments.md §5-6)."""

import pytest
from pymeasure.test import expected_protocol

from daqapp.errors import LimitError
from drivers.oxford import IPS120_10, ITC503, IPS120Magnet, ITC503Temperature
from drivers.roles import MagnetState

# The roles put a legacy Oxford instrument in remote (unlocked) when they take it over.
REMOTE = [("C3", "C")]


def test_ips_measured_current_is_r2_and_target_current_r5():
    with expected_protocol(IPS120_10, [("R2", "R12.500"), ("R5", "R13.000"), ("R1", "R0.512"),
                                       ("I5.000000", "I")]) as ips:
        assert ips.current_measured == 12.5
        assert ips.current_setpoint == 13.0
        assert ips.supply_voltage == 0.512
        ips.current_setpoint = 5


def test_ips_status_states():
    # X m n A n C n H n M m n P m n: the sweep digit is the second after M (index 11).
    cases = [("X00A1C3H1M11P03", MagnetState.RAMPING),
             ("X00A1C3H1M10P03", MagnetState.HOLDING),
             ("X00A0C3H1M10P03", MagnetState.PAUSED),
             ("X00A2C3H1M11P03", MagnetState.ZEROING),
             ("X00A2C3H1M10P03", MagnetState.AT_ZERO),
             ("X10A0C3H1M10P03", MagnetState.QUENCH),
             ("X20A0C3H1M10P03", MagnetState.FAULT),
             ("X00A0C3H5M10P03", MagnetState.FAULT)]
    with expected_protocol(IPS120_10, REMOTE + [("X", reply) for reply, _ in cases]) as ips:
        role = IPS120Magnet(ips)
        for _, expected in cases:
            assert role.state() is expected


def test_ips_switch_heater_and_quench():
    with expected_protocol(IPS120_10, REMOTE + [("X", "X00A0C3H8M00P03"),
                                                ("X", "X00A0C3H1M00P03"),
                                       ("X", "X10A0C3H1M00P03")]) as ips:
        role = IPS120Magnet(ips)
        assert role.persistent_switch_heated() is None  # H8: no switch fitted
        assert role.persistent_switch_heated() is True
        assert role.is_quenched() is True


def test_ips_ramp_checks_limits_then_sets_rate_target_and_activity():
    pairs = REMOTE + [("T0.200000", "T"), ("J1.500000", "J"), ("A1", "A")]
    with expected_protocol(IPS120_10, pairs) as ips:
        role = IPS120Magnet(ips, max_field_t=7, max_ramp_t_per_min=0.3)
        role.ramp_to(1.5, 0.2)
        with pytest.raises(LimitError, match="magnet field"):
            role.ramp_to(8, 0.2)
        with pytest.raises(LimitError, match="magnet ramp rate"):
            role.ramp_to(1, 0.5)


@pytest.mark.parametrize("action,command", [("hold", "A0"), ("zero", "A2")])
def test_ips_safe_state(action, command):
    with expected_protocol(IPS120_10, REMOTE + [(command, command[0])]) as ips:
        IPS120Magnet(ips, safe_action=action).to_safe_state()


def test_itc_role_reads_sensor_and_steps_setpoint():
    pairs = REMOTE + [("R2", "R+4.2000"), ("S0", "S"), ("T4.500000", "T")]
    with expected_protocol(ITC503, pairs) as itc:
        role = ITC503Temperature(itc, sensor=2, temperature_max_k=300)
        assert role.temperature() == 4.2
        role.set_setpoint(4.5)


def test_itc_heater_range_maps_to_auto_mode():
    with expected_protocol(ITC503, REMOTE + [("X", "X0A1C3S00H1L0"), ("A1", "A")]) as itc:
        role = ITC503Temperature(itc)
        assert role.heater_range() == 1
        role.set_heater_range(1)
