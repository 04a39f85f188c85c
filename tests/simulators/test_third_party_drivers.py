"""pymeasure's and QCoDeS's own drivers, unchanged, against the virtual lab over pyvisa-py.

Each driver is built from its resource string as its users build it (pymeasure with
``visa_library="@py"``, QCoDeS with ``visalib="@py"``), on 127.0.0.1. Only the connection is
configured: the terminators, a timeout, and for QCoDeS's SR830 binary buffer reads
``VI_ATTR_SUPPRESS_END_EN`` off, since a raw socket has no EOI to end a binary block (pyvisa-py
then takes a pause in the data as its end, as a GPIB END would be).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pymeasure.instruments.ami import AMI430
from pymeasure.instruments.keithley import Keithley2182, Keithley6221
from pymeasure.instruments.lakeshore import LakeShore3xx
from pymeasure.instruments.oxfordinstruments import ITC503
from pymeasure.instruments.srs import SR830
from pyvisa.constants import ResourceAttribute

from simulators.instruments.sr830 import BUFFER_SIZE
from simulators.lab import VirtualLab

pytestmark = pytest.mark.timeout(120)

QCODES_REASON = ("qcodes is a test-only validator (the 'test' extra): QCoDeS's own drivers "
                 "against the emulators")


@pytest.fixture
def lab():
    with VirtualLab(preset="la3ni2o7-cell2", speed=200.0, seed=11) as lab:
        yield lab


def pymeasure_driver(cls, lab, role: str, timeout_ms: int = 2000, **kwargs):
    """A pymeasure driver on the role's endpoint, built from the resource string."""
    ep = lab.endpoints[role]
    return cls(ep.resource, visa_library="@py", read_termination=ep.read_termination,
               write_termination=ep.write_termination, timeout=timeout_ms, **kwargs)


def synced(instrument) -> None:
    """Wait until every command written so far has been processed: a query's reply comes
    after them (writes alone may sit in the client's Nagle buffer for ~40 ms)."""
    instrument.ask("*IDN?")


def unanswered_queries(emulator) -> list[str]:
    """Record every query line an emulator leaves without a reply (a client would time out)."""
    missed: list[str] = []
    handle = emulator.handle

    def recording(line: str):
        replies = handle(line)
        if "?" in line and not replies:
            missed.append(line)
        return replies

    emulator.handle = recording
    return missed


def ascii_trace(lab, channel: int, start: int, count: int) -> np.ndarray:
    """The same bins through ``TRCA?``: the reference the binary transfers must reproduce."""
    reply = lab.emulators["lockin"].handle(f"TRCA? {channel},{start},{count}")[0]
    return np.array([float(v) for v in reply.rstrip(",").split(",")])


def expected_x(lab, slvl: float) -> float:
    """Lock-in X of the model at the DC operating point (R_d ≪ 48 kΩ: I_ac ≈ SLVL/R)."""
    i_dc, _ = lab.bench.junction_dc()
    t, b = lab.bench.conditions()
    r_d = float(lab.sample.differential_resistance(i_dc, t, b))
    return slvl / (48e3 + r_d) * r_d


# ------------------------------------------------------------------------------- SR830
def test_pymeasure_sr830_binary_buffer_fill_and_measure(lab):
    lia = pymeasure_driver(SR830, lab, "lockin", timeout_ms=500)
    lia.sine_voltage = 0.1
    lia.time_constant = 0.01
    lia.sample_frequency = 512
    lab.clock.sleep(1.0)
    x_model = expected_x(lab, 0.1)

    lia.write("REST;SEND0;STRT")
    synced(lia)
    lab.clock.sleep(2.0)
    lia.pause_buffer()
    n = lia.buffer_count
    assert n >= 1000
    ch1 = lia.get_buffer(1, 0, n)                     # TRCB?: n float32, nothing after them
    assert len(ch1) == n
    np.testing.assert_allclose(ch1, ascii_trace(lab, 1, 0, n), rtol=1e-5)
    assert lia.id.startswith("Stanford_Research_Systems")  # no stray LF left in the link

    lia.write("REST;STRT")
    ch1, ch2 = lia.fill_buffer(800)
    assert ch1.shape == ch2.shape == (800,)
    assert np.median(ch1) == pytest.approx(x_model, rel=0.01)
    assert np.all(np.abs(ch2) < 0.02 * abs(x_model))

    lia.reset_buffer()
    x_mean, x_std, y_mean, y_std = lia.buffer_measure(600)   # FAST2;STRD, then TRCB? reads
    assert x_mean == pytest.approx(x_model, rel=0.01)
    assert 0 < x_std < 0.01 * abs(x_model)
    assert abs(y_mean) < 0.02 * abs(x_model)


def test_sr830_scan_left_running_costs_other_commands_nothing(lab):
    lia = pymeasure_driver(SR830, lab, "lockin", timeout_ms=1000)
    lia.write("REST;SEND1;SRAT13;STRT")               # 512 Hz loop scan, lab 200×: 10⁵ points/s
    synced(lia)
    lab.clock.sleep(60.0)                              # 30 000 points: the buffer has wrapped
    emulator = lab.emulators["lockin"]
    for _ in range(20):                                # every command is answered at once
        assert math.isfinite(lia.x)
        assert lia.buffer_count == BUFFER_SIZE
    # the stored intervals are pruned with the overwritten points: bounded, not growing
    assert len(emulator._segments) <= BUFFER_SIZE + 300
    lia.pause_buffer()
    synced(lia)
    values = ascii_trace(lab, 1, BUFFER_SIZE - 5, 5)
    assert values.shape == (5,) and np.all(np.isfinite(values))


def test_qcodes_sr830_databuffer_and_datatrace(lab):
    pytest.importorskip("qcodes", reason=QCODES_REASON)
    from qcodes.instrument_drivers.stanford_research import SR830 as QcodesSR830

    ep = lab.endpoints["lockin"]
    sr = QcodesSR830("sr830_3p", ep.resource, terminator="\n", timeout=1, visalib="@py")
    try:
        sr.visa_handle.set_visa_attribute(ResourceAttribute.suppress_end_enabled, False)
        sr.amplitude(0.1)
        sr.time_constant(0.01)
        sr.buffer_reset()
        sr.buffer_SR(64)
        sr.buffer_acq_mode("single shot")
        sr.buffer_start()
        sr.buffer_npts()                                # synchronised: the scan runs
        lab.clock.sleep(8.0)
        sr.buffer_pause()
        n = sr.buffer_npts()
        assert n >= 400
        sr.ch1_databuffer.prepare_buffer_readout()
        data = sr.ch1_databuffer()                      # TRCL?: 4 bytes a point, no LF after
        assert data.shape == (n,)
        np.testing.assert_allclose(data, ascii_trace(lab, 1, 0, n), rtol=1e-3)
        assert data.mean() == pytest.approx(expected_x(lab, 0.1), rel=0.01)

        sr.sweep_setpoints.sweep_array = np.arange(n)
        trace = sr.ch2_datatrace()
        np.testing.assert_allclose(trace, ascii_trace(lab, 2, 0, n), rtol=1e-3, atol=1e-12)
        assert sr.IDN()["model"] == "SR830"             # the link is clean after the blocks
    finally:
        sr.close()


# ------------------------------------------------------------------------------ 2182A
def test_pymeasure_keithley2182_buffer_statistics(lab):
    lab.emulators["lockin"].handle("AUXV1,3.0")
    nv = pymeasure_driver(Keithley2182, lab, "nanovoltmeter")
    assert nv.mean > 1e37                               # empty buffer: Keithley's NAN
    nv.reset()
    nv.ch_1.setup_voltage(nplc=1)
    nv.config_buffer(points=25)
    nv.start_buffer()
    nv.wait_for_buffer(timeout=20, interval=0.02)
    data = nv.buffer_data
    assert len(data) == 25
    assert np.mean(data) == pytest.approx(lab.bench.junction_dc()[1] + lab.bench.thermal_emf(),
                                          rel=1e-3)
    assert nv.mean == pytest.approx(np.mean(data), rel=1e-9)
    assert nv.maximum == pytest.approx(np.max(data), rel=1e-9)
    assert nv.minimum == pytest.approx(np.min(data), rel=1e-9)
    assert nv.standard_dev == pytest.approx(np.std(data, ddof=1), rel=1e-3)
    nv.check_errors()


# ------------------------------------------------------------------------------ ITC503
def test_pymeasure_itc503_gas_flow_status():
    with VirtualLab(speed=200.0, seed=11, temperature_model="itc503") as lab:
        itc = pymeasure_driver(ITC503, lab, "temperature")
        itc.control_mode = "RU"
        status = ITC503.FLOW_CONTROL_STATUS
        # pymeasure's own property casts the echoed reply "m8" to int and fails, as it would on
        # the instrument; its ask() (which checks the echo) and its IntFlag are used instead
        itc.temperature_setpoint = 1.0                 # below the stage: error negative
        flags = status(int(itc.ask("m")[1:]))
        assert status.TEMPERATURE_ERROR_SIGN in flags
        itc.temperature_setpoint = 200.0
        flags = status(int(itc.ask("m")[1:]))
        assert status.TEMPERATURE_ERROR_SIGN not in flags
        assert not flags & (status.FAST_COOLDOWN | status.SLOW_VALVE_ACTION)


# ------------------------------------------------------------------------------ 6221
def test_pymeasure_keithley6221_waveform_reaches_the_sample(lab):
    lab.cryostat.set_temperature(120.0)                # ohmic sample
    k = pymeasure_driver(Keithley6221, lab, "current_source")
    k.reset()
    k.waveform_function = "sine"
    k.waveform_amplitude = 2e-4
    k.waveform_offset = 5e-5
    k.waveform_frequency = 1000
    k.waveform_duration_set_infinity()
    assert k.waveform_function == "sine"
    assert k.waveform_amplitude == pytest.approx(2e-4)
    assert k.waveform_offset == pytest.approx(5e-5)
    assert k.waveform_frequency == pytest.approx(1000)
    k.waveform_arm()
    k.waveform_start()
    synced(k)
    wave = lab.bench.source_waveform
    assert wave is not None and wave.t_start is not None
    now = lab.clock.now()
    assert lab.bench.source_current_at(now) == pytest.approx(
        5e-5 + 2e-4 * math.sin(2 * math.pi * 1000 * (now - wave.t_start)), abs=1e-12)
    # the linked 2182A (through the 6221's serial port) integrates 5 PLC = 83 cycles: it reads
    # the sample's mean voltage, R·offset for an ohmic sample
    k.write('SYST:COMM:SER:SEND ":SENS:VOLT:NPLC 5"')
    k.write('SYST:COMM:SER:SEND ":READ?"')
    reading = float(k.ask("SYST:COMM:SER:ENT?"))
    t, b = lab.bench.conditions()
    r = float(lab.sample.resistance(t, b))
    assert reading - lab.bench.thermal_emf() == pytest.approx(r * 5e-5, rel=0.02)
    k.waveform_abort()
    synced(k)
    assert lab.bench.source_waveform is None
    assert k.source_enabled is False
    k.check_errors()


# ---------------------------------------------------------------------------- LS336
def test_lakeshore336_outputs_3_4_answered(lab):
    missed = unanswered_queries(lab.emulators["temperature"])
    ls = pymeasure_driver(LakeShore3xx, lab, "temperature")
    assert ls.output_3.output == 0.0
    assert ls.output_4.output == 0.0
    assert missed == []


def test_qcodes_lakeshore336_snapshot_answers_every_query(lab):
    pytest.importorskip("qcodes", reason=QCODES_REASON)
    from qcodes.instrument_drivers.Lakeshore import LakeshoreModel336

    missed = unanswered_queries(lab.emulators["temperature"])
    ep = lab.endpoints["temperature"]
    ls = LakeshoreModel336("ls336_3p", ep.resource, terminator="\r\n", timeout=1,
                           visalib="@py")
    try:
        snap = ls.snapshot(update=True)
        assert missed == []                             # nothing left to time out
        outputs = snap["submodules"]
        for n in (1, 2, 3, 4):
            assert outputs[f"output_{n}"]["parameters"]["output"]["value"] is not None
        assert ls.A.temperature() == pytest.approx(lab.cryostat.stage_temperature, abs=0.01)
        ls.output_1.output_range("medium")
        ls.output_1.setpoint(8.0)
        assert ls.output_1.setpoint() == pytest.approx(8.0)
        lab.clock.sleep(5.0)
        assert ls.output_1.output() > 0
    finally:
        ls.close()


# ---------------------------------------------------------------------------- AMI 430
def test_pymeasure_ami430_reads_the_greeting(lab):
    ami = pymeasure_driver(AMI430, lab, "magnet")      # reads the two greeting lines first
    assert ami.id.startswith("AMERICAN MAGNETICS INC.,MODEL 430")


def test_qcodes_ami430_connects_with_its_default_device_clear_and_ramps(lab):
    pytest.importorskip("qcodes", reason=QCODES_REASON)
    from qcodes.instrument_drivers.american_magnetics import AMIModel430

    ep = lab.endpoints["magnet"]
    ami = AMIModel430("ami430_3p", ep.resource, timeout=2, visalib="@py")  # device_clear=True
    try:
        assert ami.IDN()["vendor"] == "AMERICAN MAGNETICS INC."
        ami.ramp_rate_units("seconds")
        ami.field_units("tesla")
        ami.ramp_rate(0.005)                            # T/s, under the driver's 0.06 A/s
        ami.ramping_state_check_interval(0.01)
        ami.set_field(0.05, block=True)
        assert ami.ramping_state() == "holding"
        assert ami.field() == pytest.approx(0.05, abs=1e-4)
        assert lab.magnet.field == pytest.approx(0.05, abs=1e-4)
    finally:
        ami.close()
