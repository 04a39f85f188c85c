"""Lake Shore 335, 340 and 350: each model's own messages (manuals: 335 §6, 340 §9, 350 §6),
the model differences the family adapter enforces, and the emulators' loop on the same
cryostat (instruments.md §4)."""

import pytest
from pymeasure.test import expected_protocol

from daqapp.errors import LimitError
from drivers.lakeshore import (
    LakeShore335,
    LakeShore335Temperature,
    LakeShore340,
    LakeShore340Temperature,
    LakeShore350,
    LakeShore350Temperature,
)
from simulators.lab import VirtualLab

LIMITS = {"temperature_min_k": 1.5, "temperature_max_k": 300.0}


def test_350_has_five_heater_ranges_and_336_zone_lines():
    pairs = [("RANGE 1,5", None), ("RANGE? 2", "4"),
             ("ZONE 1,1,45,10,20,0,0,4,0,2", None),
             ("ZONE? 1,1", "+45.000,+10.000,+20.000,+0.0,+0.0,4,0,+2.0"),
             ("OUTMODE 2,2,3,1", None)]
    with expected_protocol(LakeShore350, pairs) as ls:
        ls.output_1.range_index = 5
        assert ls.output_2.range_index == 4
        ls.output_1.set_zone(1, 45, 10, 20, 0, 4, ramp_k_per_min=2)
        assert ls.output_1.zone(1) == (45.0, 10.0, 20.0, 0.0, 0.0, 4.0, 0.0, 2.0)
        ls.output_2.output_mode = (2, 3, 1)
        with pytest.raises(ValueError):
            ls.output_1.range_index = 6


def test_335_htrset_leads_with_the_output_type_and_has_inputs_a_b_only():
    pairs = [("HTRSET 2,1,1,0,1,1", None), ("HTRSET? 1", "0,2,2,+1.000,1"),
             ("RANGE 1,3", None)]
    with expected_protocol(LakeShore335, pairs) as ls:
        ls.output_2.heater_setup = (1, 1, 0, 1, 1)
        assert ls.output_1.heater_setup == (0, 2, 2, 1.0, 1)
        ls.output_1.range_index = 3
        with pytest.raises(ValueError):
            ls.output_1.output_mode = (1, 3, 0)      # input C: not on a 335
        with pytest.raises(ValueError):
            ls.output_1.range_index = 4


def test_340_uses_cset_cmode_and_output_less_range_htr_htrst():
    pairs = [("CSET? 1", "A,1,1,0"), ("CSET 1,B,1,1,0", None), ("CMODE 1,2", None),
             ("CMODE? 1", "2"), ("RANGE 5", None), ("RANGE?", "5"), ("HTR?", "+012.5"),
             ("HTRST?", "0"), ("RAMP 1,1,3", None), ("SETP 1,20.000000", None),
             ("ZONE 1,2,80,50,20,0,0,5", None)]
    with expected_protocol(LakeShore340, pairs) as ls:
        assert ls.output_1.control_setup == ("A", 1, 1, 0)
        ls.output_1.control_setup = ("B", 1, 1, 0)
        ls.output_1.control_mode = 2
        assert ls.output_1.control_mode == 2
        ls.output_1.range_index = 5
        assert ls.output_1.range_index == 5
        assert ls.output_1.output == 12.5
        assert ls.output_1.heater_status == 0
        ls.output_1.ramp = (True, 3)
        ls.output_1.setpoint = 20
        ls.output_1.set_zone(2, 80, 50, 20, 0, 5)
        with pytest.raises(LimitError, match="no ramp rate"):
            ls.output_1.set_zone(3, 90, 50, 20, 0, 5, ramp_k_per_min=1)


def test_adapter_enforces_each_models_inputs_outputs_and_ranges():
    with expected_protocol(LakeShore335, []) as ls:
        with pytest.raises(LimitError, match="335 has inputs A, B"):
            LakeShore335Temperature(ls, control_input="C", **LIMITS)
    with expected_protocol(LakeShore340, []) as ls:        # refused before CSET goes out
        with pytest.raises(LimitError, match="340 heaters are 1"):
            LakeShore340Temperature(ls, output=2, **LIMITS)
    with expected_protocol(LakeShore350, [("RANGE 1,5", None)]) as ls:
        role = LakeShore350Temperature(ls, heater_ranges_allowed=(0, 3, 4, 5), **LIMITS)
        role.set_heater_range(5)
        with pytest.raises(LimitError, match="station allows 0, 3, 4, 5"):
            role.set_heater_range(2)
        with pytest.raises(LimitError, match="350 has 0, 1, 2, 3, 4, 5"):
            role.set_heater_range(6)
        with pytest.raises(LimitError, match="temperature setpoint"):
            role.set_setpoint(400)


def test_340_adapter_points_its_loop_at_the_control_input_in_kelvin():
    pairs = [("CSET? 1", "A,2,1,0"), ("CSET 1,B,1,1,0", None)]
    with expected_protocol(LakeShore340, pairs) as ls:
        LakeShore340Temperature(ls, control_input="B", **LIMITS)


def _settle(lab, emulator, minutes=30):
    for _ in range(minutes * 6):
        lab.clock.advance(10.0)
        emulator.handle("KRDG? A")


@pytest.mark.parametrize("model, top", [("ls335", 3), ("ls340", 5), ("ls350", 5)])
def test_each_model_closes_the_same_loop_on_the_same_cryostat(model, top):
    """Full power (the top range) and the same PID take every model to 20 K."""
    lab = VirtualLab(temperature_model=model, speed=1e-6, seed=2)
    ls = lab.emulators["temperature"]
    range_cmd = f"RANGE {top}" if model == "ls340" else f"RANGE 1,{top}"
    for line in ("PID 1,10,20,0", range_cmd, "SETP 1,20"):
        ls.handle(line)
    _settle(lab, ls)
    assert float(ls.handle("KRDG? A")[0]) == pytest.approx(20.0, abs=0.3)
    assert ls.handle("RANGE?" if model == "ls340" else "RANGE? 1") == [str(top)]


def test_model_grammar_differences_in_the_emulators():
    lab340 = VirtualLab(temperature_model="ls340", speed=1e-6)
    ls340 = lab340.emulators["temperature"]
    assert ls340.handle("*IDN?") == ["LSCI,MODEL340,340123,061407"]
    assert ls340.handle("OUTMODE? 1") == [] and int(ls340.handle("*ESR?")[0]) & 32
    ls340.handle("CSET 1,B,1,0,0")                     # loop off
    assert ls340.handle("CSET? 1") == ["B,1,0,0"]
    assert ls340.outputs[1].mode == 0
    lab335 = VirtualLab(temperature_model="ls335", speed=1e-6)
    ls335 = lab335.emulators["temperature"]
    assert ls335.handle("KRDG? C") == [] and int(ls335.handle("*ESR?")[0]) & 16
    assert ls335.handle("RANGE 1,4") == [] and int(ls335.handle("*ESR?")[0]) & 16
    lab350 = VirtualLab(temperature_model="ls350", speed=1e-6)
    ls350 = lab350.emulators["temperature"]
    ls350.handle("RANGE 2,5")
    assert ls350.handle("RANGE? 2") == ["5"]
