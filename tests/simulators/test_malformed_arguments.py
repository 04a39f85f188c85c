"""Malformed numeric arguments: every emulator refuses them with its instrument's error (SR830
and Lake Shore ESR bits, SCPI error-queue entries, Oxford's ``?``), stores nothing, and runs the
rest of the line, as the real instruments do."""

from __future__ import annotations

import pytest

from simulators.lab import VirtualLab
from tests.simulators.conftest import ask

pytestmark = pytest.mark.timeout(60)

BAD_NUMBERS = ("nan", "NaN", "inf", "-inf", "1e999", "", "abc", "27", "2.5")


@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_sr830_bad_sensitivity_sets_execution_error_and_line_goes_on(frozen_lab, bad):
    sr830 = frozen_lab.emulators["lockin"]
    ask(sr830, "*ESR?")  # clear the power-on bit
    replies = sr830.handle(f"SENS {bad};*IDN?")
    assert replies and replies[-1].startswith("Stanford_Research_Systems,SR830")
    assert int(ask(sr830, "*ESR?")) & 16  # execution error
    assert ask(sr830, "SENS?") == "26"   # unchanged


@pytest.mark.parametrize("command", ["SLVL nan", "FREQ inf", "AUXV 1,nan", "AUXV 1", "OFLT",
                                     "SNAP? 1,nan", "PHAS 1e999", "HARM -inf", "TRCA? 1,0"])
def test_sr830_every_malformed_argument_is_refused(frozen_lab, command):
    sr830 = frozen_lab.emulators["lockin"]
    ask(sr830, "*ESR?")
    before = (ask(sr830, "SLVL?"), ask(sr830, "FREQ?"), ask(sr830, "AUXV? 1"))
    assert sr830.handle(f"{command};*IDN?")[-1].startswith("Stanford")
    assert int(ask(sr830, "*ESR?")) & 16
    assert (ask(sr830, "SLVL?"), ask(sr830, "FREQ?"), ask(sr830, "AUXV? 1")) == before


@pytest.mark.parametrize("command, code", [
    (":SOUR:CURR nan", -104), (":SOUR:CURR inf", -222), (":SOUR:CURR 1e999", -222),
    (":SOUR:CURR:COMP abc", -104), ("OUTP nan", -104), (":SOUR:DELT:HIGH -inf", -222),
    ("TRAC:POIN nan", -104),
])
def test_6221_bad_number_queues_scpi_error_and_line_goes_on(frozen_lab, command, code):
    k6221 = frozen_lab.emulators["current_source"]
    level = ask(k6221, ":SOUR:CURR?")
    assert ask(k6221, f"{command};*IDN?").startswith("KEITHLEY INSTRUMENTS INC.,MODEL 6221")
    assert ask(k6221, "SYST:ERR?").startswith(f"{code},")
    assert ask(k6221, "SYST:ERR?").startswith("0,")
    assert ask(k6221, ":SOUR:CURR?") == level
    assert not k6221.output


def test_6221_keeps_the_inf_count_keyword(frozen_lab):
    k6221 = frozen_lab.emulators["current_source"]
    k6221.handle(":SOUR:DELT:COUN INF")
    assert ask(k6221, "SYST:ERR?").startswith("0,")
    assert float(ask(k6221, ":SOUR:DELT:COUN?")) == 65536


def test_2182a_bad_nplc_is_refused(frozen_lab):
    nvm = frozen_lab.emulators["nanovoltmeter"]
    assert ask(nvm, ":SENS:VOLT:NPLC inf;*IDN?").endswith("C02 /A02")
    assert ask(nvm, "SYST:ERR?").startswith("-222,")
    assert float(ask(nvm, ":SENS:VOLT:NPLC?")) == 5.0


@pytest.mark.parametrize("command", ["SETP 1,nan", "SETP 1,inf", "RAMP 1,1,nan", "RANGE 1,nan",
                                     "PID 1,nan,5,0", "SETP 1", "MOUT 1,1e999"])
def test_lakeshore336_bad_number_sets_execution_error(frozen_lab, command):
    ls336 = frozen_lab.emulators["temperature"]
    ask(ls336, "*ESR?")
    before = (ask(ls336, "SETP? 1"), ask(ls336, "RAMP? 1"), ask(ls336, "RANGE? 1"),
              ask(ls336, "PID? 1"))
    assert ask(ls336, f"{command};*IDN?").startswith("LSCI,MODEL336")
    assert int(ask(ls336, "*ESR?")) & 16
    assert (ask(ls336, "SETP? 1"), ask(ls336, "RAMP? 1"), ask(ls336, "RANGE? 1"),
            ask(ls336, "PID? 1")) == before


def test_ami430_bad_target_is_refused(frozen_lab):
    ami = frozen_lab.emulators["magnet"]
    target = ask(ami, "FIELD:TARG?")
    assert ask(ami, "CONF:FIELD:TARG nan;*IDN?").startswith("AMERICAN MAGNETICS")
    assert ask(ami, "SYST:ERR?").startswith("-102,")  # AMI: "Invalid argument"
    assert ask(ami, "FIELD:TARG?") == target


@pytest.mark.parametrize("command", ["Tnan", "Tinf", "T1e999", "Onan", "Pnan"])
def test_itc503_bad_number_answers_question_mark(command):
    lab = VirtualLab(preset="la3ni2o7-cell2", speed=1e-6, seed=3, temperature_model="itc503")
    itc = lab.emulators["temperature"]
    ask(itc, "C3")
    setpoint = ask(itc, "R0")
    assert ask(itc, command) == "?" + command
    assert ask(itc, "R0") == setpoint


@pytest.mark.parametrize("command", ["Jnan", "Tinf", "Inan"])
def test_ips120_bad_number_answers_question_mark(command):
    lab = VirtualLab(preset="la3ni2o7-cell2", speed=1e-6, seed=3, magnet_model="ips120")
    ips = lab.emulators["magnet"]
    ask(ips, "C3")
    target = ask(ips, "R8")
    assert ask(ips, command) == "?" + command
    assert ask(ips, "R8") == target


def test_overlong_line_sets_each_instruments_overflow_error(frozen_lab):
    """What the server calls when it discards a line longer than its input buffer."""
    sr830 = frozen_lab.emulators["lockin"]
    ask(sr830, "*ESR?")
    sr830.input_overflow()
    assert int(ask(sr830, "*ESR?")) & 1  # input queue overflow
    k6221 = frozen_lab.emulators["current_source"]
    k6221.input_overflow()
    assert ask(k6221, "SYST:ERR?").startswith("-363,")
    ls336 = frozen_lab.emulators["temperature"]
    ask(ls336, "*ESR?")
    ls336.input_overflow()
    assert int(ask(ls336, "*ESR?")) & 32
