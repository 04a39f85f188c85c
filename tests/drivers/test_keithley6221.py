"""Keithley 6221 DCON, reading formats and 2182A pass-through, against instruments.md §2."""

import math

import numpy as np
import pytest
from pymeasure.test import expected_protocol

from daqapp.errors import InstrumentError, LimitError
from drivers.keithley6221 import (
    DCON_ELEMENTS,
    DconSweep,
    Keithley6221,
    Keithley6221CurrentSource,
    parse_readings,
)


def test_a_delta_burst_is_cleared_armed_and_started_in_one_message():
    with expected_protocol(Keithley6221, [("TRAC:CLE;:SOUR:DELT:ARM;:INIT:IMM", None),
                                          ("TRAC:POIN:ACT?", "5")]) as k:
        k.start_delta_burst()
        assert k.buffer_count() == 5


def test_dcon_settings_exact_messages():
    pairs = [("SOUR:DCON:STAR -1e-05", None), ("SOUR:DCON:STOP 1e-05", None),
             ("SOUR:DCON:STEP 1e-06", None), ("SOUR:DCON:DELT 2e-07", None),
             ("SOUR:DCON:DEL 0.002", None), ("SOUR:DCON:CAB ON", None),
             ("SOUR:DCON:STAR?", "-1.000000E-05"), ("SOUR:DCON:CAB?", "0"),
             ("SOUR:DCON:NVPR?", "1"), ("SOUR:DCON:NVZ?", "+1.2E-07"),
             ("SOUR:DCON:ARM", None), ("SOUR:DCON:ARM?", "1"), ("INIT:IMM", None),
             ("SOUR:SWE:ABOR", None), ("SOUR:DELT:ARM?", "0")]
    with expected_protocol(Keithley6221, pairs) as k:
        k.dcon_start = -10e-6
        k.dcon_stop = 10e-6
        k.dcon_step = 1e-6
        k.dcon_delta = 0.2e-6
        k.dcon_delay = 2e-3
        k.dcon_compliance_abort = True
        assert k.dcon_start == -1e-5
        assert k.dcon_compliance_abort is False
        assert k.dcon_nanovoltmeter_present is True
        assert k.dcon_voltage_zero == pytest.approx(1.2e-7)
        k.dcon_arm()
        assert k.dcon_armed is True
        k.initiate()
        k.sweep_abort()
        assert k.delta_armed is False


def test_configure_dcon_sizes_buffer_and_selects_elements():
    sweep = DconSweep(start_a=-2e-6, stop_a=2e-6, step_a=1e-6, delta_a=1e-7)
    pairs = [("SOUR:DCON:STAR -2e-06", None), ("SOUR:DCON:STOP 2e-06", None),
             ("SOUR:DCON:STEP 1e-06", None), ("SOUR:DCON:DELT 1e-07", None),
             ("SOUR:DCON:DEL 0.002", None), ("SOUR:DCON:CAB ON", None), ("TRAC:CLE", None),
             ("TRAC:POIN 5", None), ("FORM:ELEM READ,SOUR,AVOL,TST", None)]
    with expected_protocol(Keithley6221, pairs) as k:
        assert sweep.points == 5
        k.configure_dcon(sweep)


def test_dcon_sweep_limits_include_step_and_full_delta():
    with pytest.raises(LimitError, match="peak current"):
        DconSweep(start_a=-0.1, stop_a=0.1, step_a=0.004, delta_a=0.002).validate()
    # 1 mA + 0.1 mA step + 0.2 mA dI = 1.3 mA: over a 1.25 mA limit although start+step+dI/2 is not.
    sweep = DconSweep(start_a=-1e-3, stop_a=1e-3, step_a=1e-4, delta_a=2e-4)
    assert sweep.peak_current_a == pytest.approx(1.3e-3)
    with pytest.raises(LimitError, match="peak current 0.0013 A"):
        sweep.validate(max_current_a=1.25e-3)
    sweep.validate(max_current_a=1.31e-3)
    with pytest.raises(LimitError, match="65536"):
        DconSweep(start_a=-1e-3, stop_a=1e-3, step_a=1e-8, delta_a=1e-9).validate()


def test_reading_tuples_parsed_in_instrument_order():
    # Instrument order is READ, TST, SOUR, AVOL whatever order FORM:ELEM was given in.
    reply = "1.0E-03,0.000,-1.0E-05,2.0E-06,+9.9E37,0.120,-9.0E-06,2.5E-06"
    data = parse_readings(reply, DCON_ELEMENTS)
    np.testing.assert_allclose(data["TST"], [0.0, 0.12])
    np.testing.assert_allclose(data["SOUR"], [-1e-5, -9e-6])
    np.testing.assert_allclose(data["AVOL"], [2e-6, 2.5e-6])
    assert data["READ"][0] == pytest.approx(1e-3)
    assert math.isnan(data["READ"][1])  # +9.9E37 overflow marker


def test_reading_tuple_count_mismatch_is_an_instrument_error():
    with pytest.raises(InstrumentError, match="multiple"):
        parse_readings("1,2,3", ("READ", "TST"))


def test_buffer_readings_query():
    with expected_protocol(Keithley6221, [("TRAC:DATA?", "1.5E-03,0.0,2.5E-03,0.1")]) as k:
        data = k.buffer_readings(("READ", "TST"))
        np.testing.assert_allclose(data["READ"], [1.5e-3, 2.5e-3])


def test_format_elements_round_trip_and_validation():
    with expected_protocol(Keithley6221, [("FORM:ELEM READ,TST", None),
                                          ("FORM:ELEM?", "READ,TST")]) as k:
        k.format_elements = ("read", "tst")
        assert k.format_elements == ("READ", "TST")
        with pytest.raises(ValueError, match="allowed"):
            k.format_elements = ("READ", "VOLT")


def test_serial_pass_through_to_2182a():
    pairs = [('SYST:COMM:SER:SEND ":SENS:VOLT:NPLC 1"', None),
             ('SYST:COMM:SER:SEND "*IDN?"', None),
             ("SYST:COMM:SER:ENT?", "KEITHLEY INSTRUMENTS INC.,MODEL 2182A,1193143,C02 /A02")]
    with expected_protocol(Keithley6221, pairs) as k:
        k.serial_send(":SENS:VOLT:NPLC 1")
        assert "MODEL 2182A" in k.serial_query("*IDN?", delay_s=0)


def test_source_current_is_strict_not_clipped():
    with expected_protocol(Keithley6221, []) as k:
        with pytest.raises(ValueError):
            k.source_current = 0.2
        with pytest.raises(ValueError):
            k.source_compliance = 200


def test_current_source_role_enforces_station_limits():
    with expected_protocol(Keithley6221, [(":SOUR:CURR 0.0002", None)]) as k:
        role = Keithley6221CurrentSource(k, max_current_a=1e-3, max_compliance_v=10)
        role.set_current(2e-4)
        with pytest.raises(LimitError, match="current_source current"):
            role.set_current(2e-3)
        with pytest.raises(LimitError, match="compliance"):
            role.set_compliance(20)


def test_current_source_compliance_bit():
    with expected_protocol(Keithley6221, [(":STAT:MEAS:COND?", "8"),
                                          (":STAT:MEAS:COND?", "0")]) as k:
        role = Keithley6221CurrentSource(k)
        assert role.in_compliance() is True
        assert role.in_compliance() is False


def test_current_source_safe_state_aborts_turns_off_and_zeroes():
    pairs = [("SOUR:SWE:ABOR", None), ("OUTPut 0", None), (":SOUR:CURR 0", None)]
    with expected_protocol(Keithley6221, pairs) as k:
        Keithley6221CurrentSource(k).to_safe_state()


def test_buffer_count_reads_actual_points():
    with expected_protocol(Keithley6221, [("TRAC:POIN:ACT?", "17")]) as k:
        assert k.buffer_count() == 17


def test_buffer_size_limited_to_65536():
    with expected_protocol(Keithley6221, [("TRAC:POIN 65536", None)]) as k:
        k.trace_points = 65536
        with pytest.raises(ValueError):
            k.trace_points = 65537
