"""pymeasure 0.16's own drivers, unchanged, against the virtual lab over pyvisa-py sockets."""

from __future__ import annotations

import numpy as np
import pytest
from pymeasure.instruments.ami import AMI430
from pymeasure.instruments.keithley import Keithley2182, Keithley6221
from pymeasure.instruments.lakeshore import LakeShore3xx
from pymeasure.instruments.srs import SR830

from tests.simulators.conftest import open_session


def wait_until(condition, lab, sim_timeout: float = 600.0, step: float = 1.0) -> None:
    """Poll ``condition`` while simulated time passes (robust to a busy machine)."""
    end = lab.clock.now() + sim_timeout
    while not condition():
        assert lab.clock.now() < end, "condition not reached in simulated time"
        lab.clock.sleep(step)

pytestmark = pytest.mark.timeout(120)


def test_sr830_settings_round_trip_and_reads_the_junction(lab, rm):
    lia = SR830(open_session(rm, lab.endpoints["lockin"]))
    assert lia.id.startswith("Stanford_Research_Systems,SR830")
    lia.sine_voltage = 0.1
    lia.frequency = 123.45
    lia.sensitivity = 2e-3
    lia.time_constant = 0.03
    lia.filter_slope = 24
    lia.aux_out_1 = 2.0
    assert lia.sine_voltage == pytest.approx(0.1)
    assert lia.frequency == pytest.approx(123.45)
    assert lia.sensitivity == pytest.approx(2e-3)
    assert lia.time_constant == pytest.approx(0.03)
    assert lia.filter_slope == 24
    assert lia.aux_out_1 == pytest.approx(2.0)
    lab.clock.sleep(1.0)                       # > 10 τ at 24 dB/oct
    x, y = lia.xy
    # the model: I_ac ≈ SLVL/(R_b + dV/dI), X = I_ac·dV/dI at the DC operating point
    i_dc, _ = lab.bench.junction_dc()
    t, b = lab.bench.conditions()
    r_d = float(lab.sample.differential_resistance(i_dc, t, b))
    expected = 0.1 / (48e3 + r_d) * r_d
    assert x == pytest.approx(expected, rel=0.02)
    assert abs(y) < 0.02 * abs(x)
    assert lia.aux_in_1 == pytest.approx(lab.bench.junction_dc()[1], abs=1e-3)
    values = lia.snap("X", "Y", "R", "THETA")
    assert len(values) == 4 and values[2] == pytest.approx(np.hypot(values[0], values[1]),
                                                          rel=1e-3)
    lia.harmonic = 2
    assert lia.harmonic == 2


def test_keithley6221_dc_output_and_delta_mode(lab, rm):
    k = Keithley6221(open_session(rm, lab.endpoints["current_source"]))
    assert "MODEL 6221" in k.id
    k.reset()
    k.source_compliance = 5
    k.source_range = 1e-3
    k.source_current = 1e-4
    k.enable_source()
    assert k.source_enabled is True
    assert k.source_current == pytest.approx(1e-4)
    assert lab.bench.source_current_A == pytest.approx(1e-4)
    k.disable_source()
    assert k.delta_connected is True
    lab.cryostat.set_temperature(120.0)
    k.delta_unit = "Ohms"
    k.delta_high_source = 2e-4
    assert k.delta_low_source == pytest.approx(-2e-4)
    k.delta_delay = 0.002
    k.delta_cycles = 20
    k.delta_measurement_sets = 1
    k.delta_buffer_points = 20
    k.delta_arm()
    k.delta_start()
    assert k.ask("*OPC?").strip() == "1"      # the start has been processed
    lab.clock.sleep(22 * 0.0883)               # 22 conversions at NPLC 5 and 2 ms delay
    wait_until(lambda: int(k.ask("TRAC:POIN:ACT?")) == 20, lab)
    values = np.asarray(k.delta_values, dtype=float)
    readings = values[0::2]
    assert len(readings) == 20
    t = lab.cryostat.temperature
    # 120 K with the heater off drifts down slowly: compare with the model at the end
    assert np.median(readings) == pytest.approx(lab.sample.chord_resistance(t, 0.0, 2e-4),
                                                rel=0.03)
    assert k.delta_sense == pytest.approx(readings[-1])
    assert k.ask("SYST:ERR?").startswith("0,")


def test_keithley2182_reads_the_junction_dc_voltage(lab, rm):
    lia = SR830(open_session(rm, lab.endpoints["lockin"]))
    lia.aux_out_1 = 3.0
    nv = Keithley2182(open_session(rm, lab.endpoints["nanovoltmeter"]))
    assert "MODEL 2182A" in nv.id
    nv.reset()
    nv.ch_1.setup_voltage(nplc=1)
    assert nv.active_channel == 1
    assert nv.voltage_nplc == pytest.approx(1)
    v = nv.voltage
    assert v == pytest.approx(lab.bench.junction_dc()[1], rel=1e-3)
    nv.ch_1.voltage_range = 0.01
    assert nv.ch_1.voltage_range == pytest.approx(0.01)
    assert nv.voltage > 1e37                    # 11 mV on the 10 mV range overflows: +9.9E37
    nv.check_errors()


def test_lakeshore3xx_reads_and_controls(lab, rm):
    ls = LakeShore3xx(open_session(rm, lab.endpoints["temperature"]))
    assert ls.id.startswith("LSCI,MODEL336")
    assert ls.input_A.kelvin == pytest.approx(lab.cryostat.stage_temperature, abs=0.01)
    ls.output_1.setpoint = 8.0
    assert ls.output_1.setpoint == pytest.approx(8.0)
    ls.output_1.range = "medium"
    assert ls.output_1.range == "medium"
    lab.clock.sleep(5.0)
    assert ls.output_1.output > 0
    lab.clock.sleep(400.0)
    assert ls.input_A.kelvin == pytest.approx(8.0, abs=0.2)
    ls.output_1.range = "off"
    assert ls.output_1.output == 0


def test_ami430_greeting_ramp_and_status(lab, rm):
    ami = AMI430(open_session(rm, lab.endpoints["magnet"]))   # reads the two greeting lines
    assert ami.id.startswith("AMERICAN MAGNETICS INC.,MODEL 430")
    assert ami.coilconst == pytest.approx(1.0)                # 0.1 T/A = 1 kG/A
    ami.ramp_rate_current = 0.1
    assert ami.ramp_rate_current == [pytest.approx(0.1), pytest.approx(90.0)]
    ami.target_current = 2.0
    ami.ramp()
    lab.clock.sleep(5.0)
    assert ami.magnet_status == "RAMPING"
    lab.clock.sleep(40.0)
    assert ami.magnet_status == "HOLDING"
    assert ami.magnet_current == pytest.approx(2.0)
    assert ami.field == pytest.approx(2.0)                    # kG
    assert lab.magnet.field == pytest.approx(0.2)
    ami.zero()
    lab.clock.sleep(40.0)
    assert ami.magnet_status == "AT ZERO CURRENT"
