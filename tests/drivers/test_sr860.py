"""SR860/SR865: the SR86x messages (pymeasure's plus the capture buffer), the wider tables
behind the lock-in role, and the emulator on the lab's bench (SR860 manual, chapter 4)."""

import time

import pytest
from pymeasure.test import expected_protocol

from daqapp.errors import LimitError
from daqapp.station.config import Station
from drivers.sr860 import SR860, SR865, SR860LockIn, SR865LockIn


def test_capture_buffer_messages():
    pairs = [("CAPTURELEN 64", None), ("CAPTURECFG 1", None), ("CAPTURERATE 3", None),
             ("CAPTURESTART ONE, IMM", None), ("CAPTURESTAT?", "3"), ("CAPTURESTOP", None),
             ("CAPTURECFG?", "1"), ("CAPTUREBYTES?", "24"),
             ("CAPTUREVAL? 0", "1.5e-05,-2e-07"), ("CAPTUREVAL? 1", "1.6e-05,-1e-07"),
             ("CAPTUREVAL? 2", "1.7e-05,0")]
    with expected_protocol(SR860, pairs) as lia:
        lia.capture_length_kb = 64
        lia.capture_config = "XY"
        lia.set_capture_rate_divider(3)
        lia.start_capture("ONE", "IMM")
        assert lia.capture_status == 3
        lia.stop_capture()
        data = lia.get_capture_ascii()
        assert data.shape == (3, 2) and data[2, 0] == pytest.approx(1.7e-5)
        with pytest.raises(ValueError):
            lia.start_capture("ALWAYS", "IMM")


def test_role_uses_the_wider_tables_and_zero_based_aux():
    pairs = [("SCAL 27", None), ("SCAL 0", None), ("OFLT 0", None), ("OFLT 21", None),
             ("OFSL 3", None), ("AUXV 0, 0.0005", None), ("OAUX? 3", "0.125"),
             ("SNAP? X, Y", "1.5e-06,2e-08"), ("LIAS?", "4")]
    with expected_protocol(SR860, pairs) as lia:
        role = SR860LockIn(lia)
        role.set_sensitivity(1e-9)          # 1 nV: below the SR830's 2 nV
        role.set_sensitivity(0.7)           # rounds up to 1 V
        role.set_time_constant(1e-6)        # 1 µs: below the SR830's 10 µs
        role.set_time_constant(30e3)
        role.set_filter_slope(24)
        role.set_aux_output(1, 5e-4)        # %g keeps what %f would zero
        assert role.aux_input(4) == 0.125
        assert role.xy() == (1.5e-6, 2e-8)
        assert role.is_overloaded()


def test_role_refuses_outside_each_model_before_sending():
    with expected_protocol(SR860, []) as lia:
        role = SR860LockIn(lia)
        with pytest.raises(LimitError, match="lockin frequency"):
            role.set_excitation(0.1, 600e3)              # SR860 stops at 500 kHz
        with pytest.raises(LimitError, match="lockin excitation"):
            role.set_excitation(2.5, 1e3)
        with pytest.raises(LimitError, match="filter_slope"):
            role.set_filter_slope(9)
        with pytest.raises(LimitError, match="AUX channel"):
            role.set_aux_output(0, 1.0)
    with expected_protocol(SR865, [("FREQ 1.500000e+06", None), ("SLVL 1.000000000e-01",
                                                                  None)]) as lia:
        SR865LockIn(lia).set_excitation(0.1, 1.5e6)


@pytest.fixture
def sr860_station():
    station = Station.simulated(speed=200.0, seed=5, lockin={"driver": "SR860"})
    with station.connect() as conn:
        yield conn


def test_emulated_sr860_follows_the_bench_and_captures(sr860_station):
    lockin = sr860_station.lockin
    assert lockin.identify().startswith("Stanford_Research_Systems,SR860")
    lockin.set_excitation(0.48, 777.0)
    lockin.set_time_constant(0.01)
    lockin.set_filter_slope(24)
    lockin.set_sensitivity(0.02)
    time.sleep(lockin.settle_time() / 200.0 + 0.05)
    x, y = lockin.xy()
    # 0.48 V through the 48 kΩ bias resistor: 10 µA rms into the contact (tens of ohms)
    junction = sr860_station.lab.bench
    v_model, _, _, _ = junction.junction_harmonic(1)
    assert x == pytest.approx(abs(v_model), rel=0.05)
    inst = lockin.instrument
    inst.capture_length_kb = 2
    inst.capture_config = "XY"
    inst.set_capture_rate_divider(2)
    rate = float(inst.capture_rate)
    assert rate == pytest.approx(float(inst.capture_rate_max) / 4)
    inst.start_capture("ONE", "IMM")
    deadline = time.monotonic() + 10
    while inst.capture_status & 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert inst.capture_status & 4                # one-shot filled and wrapped
    assert inst.capture_samples() == 2048 // 8
    data = inst.get_capture_ascii(20)
    assert data[:, 0] == pytest.approx(x, rel=0.05)
    report = sr860_station.to_safe_state()
    assert report.verdict("lockin").confirmed, report.summary()


def test_third_party_drivers_run_unchanged_against_the_emulators():
    """pymeasure's own SR860 and QCoDeS's SR860 and Lake Shore 335 talk to the lab as to the
    instruments (QCoDeS: a test-only validator)."""
    qcodes = pytest.importorskip("qcodes")
    from pymeasure.instruments.srs.sr860 import SR860 as PymeasureSR860
    from qcodes.instrument_drivers.Lakeshore import LakeshoreModel335
    from qcodes.instrument_drivers.stanford_research import SR860 as QcodesSR860

    from simulators.lab import VirtualLab

    with VirtualLab(lockin_model="sr860", temperature_model="ls335", speed=100.0) as lab:
        endpoints = lab.endpoints
        plain = PymeasureSR860(endpoints["lockin"].resource, read_termination="\n")
        plain.sine_voltage = 0.1
        plain.aux_out_1 = 0.5
        assert (plain.sine_voltage, plain.aux_out_1) == (0.1, 0.5)
        assert plain.sensitivity == 1.0 and plain.time_constant == 0.1
        assert len(plain.snap()) == 2
        plain.adapter.close()
        lockin = QcodesSR860("sr860_lab", endpoints["lockin"].resource, visalib="@py")
        controller = LakeshoreModel335("ls335_lab", endpoints["temperature"].resource,
                                       visalib="@py")
        try:
            assert lockin.IDN()["model"] == "SR860"
            assert lockin.X() == pytest.approx(0.1 * 0.00772, rel=0.2)  # 0.1 V through 48 kΩ
            lockin.buffer.capture_config("X,Y")
            assert lockin.buffer.capture_config() == "X,Y"
            assert controller.IDN()["model"] == "335"
            assert controller.A.temperature() == pytest.approx(1.5, abs=0.05)
            controller.output_1.output_range("low")
            assert controller.output_1.output_range() == "low"
        finally:
            lockin.close()
            controller.close()
            qcodes.instrument.Instrument.close_all()
