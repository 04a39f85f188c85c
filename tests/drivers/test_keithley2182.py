"""2182A FETC? and the 2182A read through the 6221 pass-through (instruments.md §2-3)."""

import pytest
from pymeasure.test import expected_protocol

from daqapp.errors import InstrumentError
from drivers.keithley2182 import Keithley2182, Keithley2182Nanovoltmeter, Keithley2182Via6221
from drivers.keithley6221 import Keithley6221


def test_fetch_latest_reading():
    with expected_protocol(Keithley2182, [(":FETC?", "+1.234567E-06")]) as nv:
        assert nv.fetched_voltage == pytest.approx(1.234567e-6)


def test_role_voltage_rejects_overflow_marker():
    with expected_protocol(Keithley2182, [(":READ?", "+2.5E-07"), (":READ?", "+9.9E37")]) as nv:
        role = Keithley2182Nanovoltmeter(nv)
        assert role.voltage() == pytest.approx(2.5e-7)
        with pytest.raises(InstrumentError, match="invalid reading"):
            role.voltage()


def test_voltage_through_6221_sends_then_enters():
    pairs = [('SYST:COMM:SER:SEND ":SENS:VOLT:NPLC?"', None), ("SYST:COMM:SER:ENT?", "1.00"),
             ('SYST:COMM:SER:SEND ":READ?"', None), ("SYST:COMM:SER:ENT?", "-3.1E-06")]
    with expected_protocol(Keithley6221, pairs) as k:
        role = Keithley2182Via6221(k, query_delay_s=0, line_frequency_hz=1e9)
        assert role.voltage() == pytest.approx(-3.1e-6)


def test_empty_pass_through_reply_is_an_error():
    pairs = [('SYST:COMM:SER:SEND "*IDN?"', None), ("SYST:COMM:SER:ENT?", "")]
    with expected_protocol(Keithley6221, pairs) as k:
        with pytest.raises(InstrumentError, match="no reply"):
            Keithley2182Via6221(k, query_delay_s=0, reply_timeout_s=0).identify()


def test_reading_through_6221_is_polled_until_the_2182a_answers():
    """ENT? is empty while the 2182A integrates; the reading is taken when it arrives, with
    no fixed integration sleep (NPLC 10 at 50 Hz would be 0.4 s of sleeping)."""
    pairs = [('SYST:COMM:SER:SEND ":SENS:VOLT:NPLC?"', None), ("SYST:COMM:SER:ENT?", "10"),
             ('SYST:COMM:SER:SEND ":READ?"', None), ("SYST:COMM:SER:ENT?", ""),
             ("SYST:COMM:SER:ENT?", ""), ("SYST:COMM:SER:ENT?", "+4.2E-07")]
    with expected_protocol(Keithley6221, pairs) as k:
        role = Keithley2182Via6221(k, query_delay_s=0, reply_timeout_s=0, poll_s=0.05)
        assert role.voltage() == pytest.approx(4.2e-7)  # third fetch, after 0.1 s


def test_pass_through_gives_up_after_its_timeout():
    pairs = [('SYST:COMM:SER:SEND "*IDN?"', None)] + [("SYST:COMM:SER:ENT?", "")] * 3
    with expected_protocol(Keithley6221, pairs) as k:
        with pytest.raises(InstrumentError, match=r"no reply to \*IDN\? within 0.02 s"):
            Keithley2182Via6221(k, query_delay_s=0, reply_timeout_s=0.02,
                                poll_s=0.01).identify()
