"""Lake Shore 625: the manual's messages, limits refused before any command, the persistent
switch and quench logic, and the emulated supply on the lab's magnet (instruments.md §6)."""

import time

import pytest
from pymeasure.test import expected_protocol

from daqapp.errors import InstrumentError, LimitError
from daqapp.station.config import Station
from drivers.lakeshore625 import LakeShore625, LakeShore625Magnet, SwitchHeater
from drivers.roles import MagnetState

CONNECT = [("FLDS 0,0.15", None), ("FLDS?", "0,+0.150000"),
           ("LIMIT?", "+60.1000,+5.0000,+0.5000")]


def _magnet(inst, **kw):
    return LakeShore625Magnet(inst, coil_constant_t_per_a=0.15, max_field_t=9.0,
                              max_ramp_t_per_min=0.5, **kw)


def test_driver_messages():
    pairs = [("SETI 12.5", None), ("RDGI?", "+12.4998"), ("RATE 0.05", None),
             ("LIMIT 60,5,1", None), ("PSHS 1,25,20", None), ("PSHS?", "1,+25.0,20"),
             ("QNCH 1,1.5", None), ("OPST?", "2"), ("ERST?", "0,32,0"), ("STOP", None),
             ("PSH 1", None), ("PSH?", "2"), ("PSHIS?", "+3.0000")]
    with expected_protocol(LakeShore625, pairs) as inst:
        inst.current_setpoint = 12.5
        assert inst.current == pytest.approx(12.4998)
        inst.ramp_rate = 0.05
        inst.limits = (60, 5, 1)
        inst.switch_setup = (1, 25, 20)
        assert inst.switch_setup == (True, 25.0, 20.0)
        inst.quench_setup = (1, 1.5)
        assert inst.operation_status == 2
        assert inst.error_status == (0, 32, 0)
        inst.stop_ramp()
        inst.switch_heater = 1
        assert inst.switch_heater is SwitchHeater.WARMING
        assert inst.switch_off_current == 3.0
        with pytest.raises(ValueError):
            inst.current_setpoint = 61


def test_field_and_rate_limits_are_refused_before_any_command():
    with expected_protocol(LakeShore625, CONNECT) as inst:   # nothing after connecting
        magnet = _magnet(inst)
        with pytest.raises(LimitError, match="magnet field"):
            magnet.ramp_to(9.5, 0.1)                  # the station's 9 T
        with pytest.raises(LimitError, match="magnet ramp rate"):
            magnet.ramp_to(1.0, 0.6)                  # the station's 0.5 T/min
    with expected_protocol(LakeShore625, [*CONNECT[:2], ("LIMIT?", "+40.0000,+5.0,+0.0050")]
                           ) as inst:
        magnet = _magnet(inst)
        with pytest.raises(LimitError, match="needs 53.33 A; the 625's current limit is 40 A"):
            magnet.ramp_to(8.0, 0.01)
        with pytest.raises(LimitError, match="625's rate limit is 0.005 A/s"):
            magnet.ramp_to(1.0, 0.1)                  # 0.011 A/s


def test_a_ramp_goes_out_as_rate_then_field_setpoint():
    pairs = [*CONNECT, ("ERST?", "0,0,0"), ("PSHS?", "1,+25.0,20"), ("PSH?", "1"),
             ("RATE 0.0333333", None), ("SETF 2", None)]
    with expected_protocol(LakeShore625, pairs) as inst:
        _magnet(inst).ramp_to(2.0, 0.3)


def test_no_ramp_after_a_quench_or_with_the_switch_cold():
    with expected_protocol(LakeShore625, [*CONNECT, ("ERST?", "0,32,0")]) as inst:
        with pytest.raises(InstrumentError, match="quench detected"):
            _magnet(inst).ramp_to(1.0, 0.1)
    pairs = [*CONNECT, ("ERST?", "0,0,0"), ("PSHS?", "1,+25.0,20"), ("PSH?", "0")]
    with expected_protocol(LakeShore625, pairs) as inst:
        with pytest.raises(InstrumentError, match="switch heater is off"):
            _magnet(inst).ramp_to(1.0, 0.1)
    pairs = [*CONNECT, ("PSHS?", "1,+25.0,20"), ("PSHIS?", "+20.0000"), ("RDGI?", "+0.0000")]
    with expected_protocol(LakeShore625, pairs) as inst:
        with pytest.raises(LimitError, match="ramp the supply to 20 A first"):
            _magnet(inst).set_switch_heater(True)


@pytest.fixture
def ls625_station():
    station = Station.simulated(speed=400.0, seed=4, magnet_driver="LakeShore625",
                                magnet={"driver": "LakeShore625",
                                        "coil_constant_t_per_a": 0.15})
    with station.connect() as conn:
        yield conn


def _wait(predicate, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def test_emulated_625_ramps_the_lab_magnet_holds_and_goes_persistent(ls625_station):
    magnet = ls625_station.magnet
    assert magnet.state() is MagnetState.AT_ZERO
    magnet.ramp_to(0.6, 0.5)
    assert magnet.state() is MagnetState.RAMPING
    assert _wait(magnet.is_holding)
    assert magnet.field() == pytest.approx(0.6, abs=1e-3)
    assert ls625_station.lab.magnet.field == pytest.approx(0.6, abs=1e-3)
    # persistent: heater off, leads to zero, the magnet keeps its field
    magnet.set_switch_heater(False)
    assert magnet.state() is MagnetState.COOLING_SWITCH
    assert magnet.persistent_switch_heated() is False
    assert _wait(lambda: magnet.instrument.switch_heater is SwitchHeater.OFF)
    magnet.ramp_to_zero()
    assert magnet.state() is MagnetState.ZEROING
    assert _wait(lambda: magnet.state() is MagnetState.AT_ZERO)
    assert ls625_station.lab.magnet.field == pytest.approx(0.6, abs=1e-3)
    # RDGF? follows the (now zero) output; the role reports the persistent field
    assert float(magnet.instrument.field) == pytest.approx(0.0, abs=1e-3)
    assert magnet.field() == pytest.approx(0.6, abs=1e-3)
    with pytest.raises(InstrumentError, match="switch heater is off"):
        magnet.ramp_to(1.0, 0.5)
    with pytest.raises(LimitError, match="ramp the supply to 4 A first"):
        magnet.set_switch_heater(True)


def test_a_quench_latches_and_the_safe_state_reports_it(ls625_station):
    magnet = ls625_station.magnet
    magnet.ramp_to(0.3, 0.5)
    assert _wait(magnet.is_holding)
    ls625_station.lab.faults.set("magnet", "quench", True)
    assert magnet.is_quenched() and magnet.state() is MagnetState.QUENCH
    with pytest.raises(InstrumentError, match="quench detected"):
        magnet.ramp_to(0.5, 0.1)
    verdict = ls625_station.to_safe_state().verdict("magnet")
    assert not verdict.confirmed and "QUENCHED" in verdict.problem
