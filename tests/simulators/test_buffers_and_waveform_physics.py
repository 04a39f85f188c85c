"""Physics of the lazily evaluated SR830 buffer and of the 6221 waveform reaching the sample.

Frozen clock (speed 1e-6), jumped with ``clock.advance``: every time below is exact.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulators.instruments.sr830 import TIME_CONSTANTS, _trcl_bytes
from tests.simulators.conftest import ask


def _trca(lia, channel: int, count: int) -> np.ndarray:
    return np.array([float(v) for v in ask(lia, f"TRCA? {channel},0,{count}").rstrip(",")
                     .split(",")])


def test_buffered_points_follow_the_filter_through_a_step(frozen_lab):
    """Points computed only when read still show the RC response to a mid-scan step."""
    lab = frozen_lab
    lab.cryostat.set_temperature(80.0)              # normal state: dV/dI flat
    lia = lab.emulators["lockin"]
    lia.handle("SLVL0.004;OFLT8;OFSL0;SENS22;SRAT10;SEND0")   # τ = 100 ms, 6 dB/oct, 64 Hz
    tau = TIME_CONSTANTS[8]
    lab.clock.advance(3.0)
    t_start = lab.clock.now()
    lia.handle("REST;STRT")
    lab.clock.advance(2.0)
    lia.handle("SLVL 0.404")                        # a 100× step of the excitation
    lab.clock.advance(1.0)
    lia.handle("PAUS")
    n = int(ask(lia, "SPTS?"))
    assert n == 192                                 # 3 s at 64 Hz
    x = _trca(lia, 1, n)
    t = t_start + (np.arange(n) + 1) / 64.0
    before = x[t < t_start + 2.0]
    lab.clock.advance(20 * tau)
    final = float(ask(lia, "OUTP? 1"))
    x0 = float(np.mean(before))
    after = t > t_start + 2.0
    frac = (x[after] - x0) / (final - x0)
    expect = 1.0 - np.exp(-(t[after] - (t_start + 2.0)) / tau)
    np.testing.assert_allclose(frac, expect, atol=0.01)
    np.testing.assert_array_equal(_trca(lia, 1, n), x)        # the same points every read
    assert np.all(np.abs(_trca(lia, 2, n)) < 0.01 * abs(final))   # CH2 = Y ≈ 0


def test_triggered_points_are_taken_at_the_trigger(frozen_lab):
    lab = frozen_lab
    lia = lab.emulators["lockin"]
    lia.handle("SLVL0.1;OFLT8;OFSL3;SENS22;SRAT14;REST;STRT")
    lab.clock.advance(5.0)
    x_now = []
    for _ in range(3):
        lab.clock.advance(0.7)
        lia.handle("TRIG")
        x_now.append(float(ask(lia, "OUTP? 1")))
    assert int(ask(lia, "SPTS?")) == 3
    np.testing.assert_allclose(_trca(lia, 1, 3), x_now, rtol=1e-3)


def test_trcl_block_holds_no_lf_and_decodes_to_the_values(frozen_lab):
    # (16384 + 10)·2^-30: normalised, its mantissa's low byte would be 0x0A
    values = np.array([(16384 + 10) * 2.0 ** -30, -3.2e-5, 0.0, 7.7e-3, 1.0e-9, -0.98])
    raw = _trcl_bytes(values)
    assert len(raw) == 4 * len(values) and b"\n" not in raw
    pairs = np.frombuffer(raw, dtype="<i2")
    decoded = pairs[::2] * 2.0 ** (pairs[1::2] - 124)
    np.testing.assert_allclose(decoded, values, rtol=5e-4)

    lia = frozen_lab.emulators["lockin"]
    lia.handle("SLVL0.1;SRAT13;REST;STRT")
    frozen_lab.clock.advance(4.0)
    lia.handle("PAUS")
    n = int(ask(lia, "SPTS?"))
    block = lia.handle(f"TRCL? 1,0,{n}")[0]
    assert isinstance(block, bytes) and len(block) == 4 * n and b"\n" not in block
    pairs = np.frombuffer(block, dtype="<i2")
    np.testing.assert_allclose(pairs[::2] * 2.0 ** (pairs[1::2] - 124), _trca(lia, 1, n),
                               rtol=5e-4)
    floats = np.frombuffer(lia.handle(f"TRCB? 1,0,{n}")[0], dtype="<f4")
    np.testing.assert_allclose(floats, _trca(lia, 1, n), rtol=1e-5)


def _read_linked(lab, nplc: float) -> tuple[float, float]:
    """One reading of the 6221's 2182A and the lab time its integration window ended."""
    nv = lab.linked_nanovoltmeter
    nv.handle(f":SENS:VOLT:NPLC {nplc}")
    t_end = lab.clock.now()
    return float(nv.handle(":READ?")[0]), t_end


def test_square_wave_current_reaches_the_sample(frozen_lab):
    """A fast 2182A reading (0.01 PLC) follows the instantaneous square-wave current."""
    lab = frozen_lab
    lab.cryostat.set_temperature(120.0)
    k = lab.emulators["current_source"]
    k.handle("SOUR:WAVE:FUNC SQU;SOUR:WAVE:AMPL 1e-4;SOUR:WAVE:OFFS 2e-5;SOUR:WAVE:FREQ 1;"
             "SOUR:WAVE:DCYC 50;SOUR:WAVE:ARM;SOUR:WAVE:INIT")
    t0 = lab.bench.source_waveform.t_start
    for phase, level in ((0.25, 1.2e-4), (0.75, -0.8e-4), (1.25, 1.2e-4)):
        lab.clock.advance(t0 + phase - lab.clock.now())
        v, t_end = _read_linked(lab, 0.01)
        t, b = lab.bench.conditions()
        expected = float(lab.sample.transport_voltage(level, t, b))
        sigma = lab.linked_nanovoltmeter.reading_noise(1)       # ~0.1 µV at 0.01 PLC
        assert v - lab.bench.thermal_emf() == pytest.approx(expected, abs=6 * sigma)
        assert abs(expected) > 300 * sigma
    k.handle("SOUR:WAVE:ABOR")
    assert lab.bench.source_waveform is None and ask(k, "OUTP?") == "0"


def test_sine_wave_is_averaged_over_the_integration_window(frozen_lab):
    """Below Ic the sample shows no voltage: a 1 kHz sine with 1 mA offset and 3 mA amplitude
    crosses Ic = 2 mA, and a 5 PLC reading is the window mean of V(I(t)), not V(1 mA) = 0."""
    lab = frozen_lab
    lab.cryostat.set_temperature(3.0)
    k = lab.emulators["current_source"]
    k.handle("SOUR:WAVE:FUNC SIN;SOUR:WAVE:AMPL 3e-3;SOUR:WAVE:OFFS 1e-3;SOUR:WAVE:FREQ 1000;"
             "SOUR:WAVE:ARM;SOUR:WAVE:INIT")
    lab.clock.advance(1.0)
    v, t_end = _read_linked(lab, 5)
    wave = lab.bench.source_waveform
    ts = np.linspace(t_end - 5 / 60.0, t_end, 200_001)
    current = 1e-3 + 3e-3 * np.sin(2 * math.pi * 1000 * (ts - wave.t_start))
    t, b = lab.bench.conditions()
    expected = float(np.mean(lab.sample.transport_voltage(current, t, b)))
    assert float(lab.sample.transport_voltage(1e-3, t, b)) == 0.0
    assert expected > 1e-5
    assert v - lab.bench.thermal_emf() == pytest.approx(expected, rel=0.01)


def test_waveform_settings_are_checked(frozen_lab):
    k = frozen_lab.emulators["current_source"]
    k.handle("SOUR:WAVE:AMPL 0.1;SOUR:WAVE:OFFS 0.01")      # 110 mA peak: refused
    assert ask(k, "SYST:ERR?").startswith("-222")
    k.handle("SOUR:WAVE:INIT")                               # not armed
    assert ask(k, "SYST:ERR?").startswith("-221")
    k.handle("SOUR:WAVE:ARM;SOUR:DELT:ARM")                  # waveform and delta exclude
    assert ask(k, "SYST:ERR?").startswith("-221")
    assert ask(k, "SOUR:WAVE:ARM?") == "1"
