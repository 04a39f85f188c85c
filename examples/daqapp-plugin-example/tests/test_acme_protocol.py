"""The Acme TC-1 driver sends exactly the documented messages (pymeasure's expected_protocol)."""

import pytest
from daqapp_plugin_example.driver import AcmeTC1, AcmeTC1Temperature
from pymeasure.test import expected_protocol

from daqapp.errors import LimitError


def test_readings_and_setpoint():
    with expected_protocol(AcmeTC1, [("TEMP?", "4.2153"), ("SETP 10", None),
                                     ("SETP?", "10.0000"), ("RANGE?", "2")]) as inst:
        assert inst.temperature == pytest.approx(4.2153)
        inst.setpoint = 10
        assert inst.setpoint == 10.0
        assert inst.heater_range == 2


def test_role_ramps_then_sets_and_refuses_outside_the_station():
    with expected_protocol(AcmeTC1, [("RAMP 2", None), ("SETP 20", None)]) as inst:
        role = AcmeTC1Temperature(inst, temperature_max_k=300)
        role.set_setpoint(20, 2)
        with pytest.raises(LimitError, match="temperature setpoint"):
            role.set_setpoint(350)
