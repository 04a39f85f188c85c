"""SR830 additions and fixes, checked message by message against instruments.md §1."""

import numpy as np
import pytest
from pymeasure.test import expected_protocol

from daqapp.errors import LimitError
from drivers.sr830 import SR830, SR830LockIn, parse_trca


def test_trca_reply_with_trailing_comma_is_parsed():
    values = parse_trca("-1.2e-09,+7.6e-09,")
    np.testing.assert_allclose(values, [-1.2e-9, 7.6e-9])


def test_ascii_buffer_read_checks_stored_points_then_reads_trca():
    with expected_protocol(SR830, [("SPTS?", "5"), ("TRCA? 2,1,3", "1.0e-06,2.0e-06,-3.5e-06,")]
                           ) as lia:
        np.testing.assert_allclose(lia.get_buffer_ascii(2, start=1, count=3),
                                   [1e-6, 2e-6, -3.5e-6])


def test_ascii_buffer_refuses_bins_past_the_stored_points():
    with expected_protocol(SR830, [("SPTS?", "2")]) as lia:
        with pytest.raises(LimitError, match="2 stored points"):
            lia.get_buffer_ascii(1, start=1, count=2)


def test_send_and_outx():
    with expected_protocol(SR830, [("SEND1", None), ("SEND?", "0"), ("OUTX1", None),
                                   ("OUTX?", "0")]) as lia:
        lia.buffer_end_mode = "loop"
        assert lia.buffer_end_mode == "shot"
        lia.output_interface = "gpib"
        assert lia.output_interface == "rs232"


def test_aux_output_uses_g_format_so_microvolts_survive():
    with expected_protocol(SR830, [("AUXV2,5e-07;", None), ("AUXV?2;", "0.000")]) as lia:
        lia.aux_out_2 = 5e-7
        assert lia.aux_out_2 == 0.0


def test_strict_validators_refuse_instead_of_clipping():
    with expected_protocol(SR830, []) as lia:
        with pytest.raises(ValueError):
            lia.sine_voltage = 6.0
        with pytest.raises(ValueError):
            lia.aux_out_1 = 11.0
        with pytest.raises(ValueError):
            lia.frequency = 2e5


def test_role_excitation_xy_and_sensitivity_rounding_up():
    pairs = [("FREQ1.33300e+01", None), ("SLVL0.100", None), ("SNAP? 1,2", "1.5e-06,-2.0e-07"),
             ("SENS17", None)]
    with expected_protocol(SR830, pairs) as lia:
        role = SR830LockIn(lia)
        role.set_excitation(0.1, 13.33)
        assert role.xy() == (1.5e-6, -2.0e-7)
        role.set_sensitivity(0.9e-3)  # next full scale up is 1 mV = index 17


def test_role_settle_time_from_tau_and_slope():
    with expected_protocol(SR830, [("OFLT?", "8"), ("OFSL?", "1")]) as lia:
        # 100 ms at 12 dB/oct settles to 99 % in 7 tau
        assert SR830LockIn(lia).settle_time() == pytest.approx(0.7)


def test_role_time_constant_rounds_up_and_slope_is_in_db_per_octave():
    with expected_protocol(SR830, [("OFLT8", None), ("OFSL3", None)]) as lia:
        role = SR830LockIn(lia)
        role.set_time_constant(0.05)  # next table value up is 100 ms = index 8
        role.set_filter_slope(24)
    with expected_protocol(SR830, []) as lia:
        role = SR830LockIn(lia)
        with pytest.raises(LimitError, match="filter_slope = 15 dB/oct; allowed 6, 12, 18, 24"):
            role.set_filter_slope(15)
        with pytest.raises(LimitError, match="time_constant"):
            role.set_time_constant(1e5)


def test_role_overload_reads_lias_bits_0_to_2():
    with expected_protocol(SR830, [("LIAS?", "8"), ("LIAS?", "4")]) as lia:
        role = SR830LockIn(lia)
        assert role.is_overloaded() is False  # reference unlock only
        assert role.is_overloaded() is True  # output overload


def test_role_limits_refused_before_sending():
    with expected_protocol(SR830, []) as lia:
        role = SR830LockIn(lia)
        with pytest.raises(LimitError, match="lockin excitation"):
            role.set_excitation(0.001, 13.0)
        with pytest.raises(LimitError, match="AUX channel"):
            role.set_aux_output(5, 0.0)


def test_safe_state_is_minimum_excitation_and_aux_zero():
    pairs = [("SLVL0.004", None)] + [(f"AUXV{ch},0;", None) for ch in (1, 2, 3, 4)]
    with expected_protocol(SR830, pairs) as lia:
        SR830LockIn(lia).to_safe_state()


def test_outx_sent_on_connect_when_the_station_names_the_interface():
    with expected_protocol(SR830, [("OUTX1", None)]) as lia:
        SR830LockIn(lia, output_interface="gpib")


def test_display_value_outr():
    with expected_protocol(SR830, [("OUTR? 2", "-12.5")]) as lia:
        assert lia.display_value(2) == -12.5
        with pytest.raises(ValueError):
            lia.display_value(3)
