"""Physics of the virtual lab seen through the emulators' own command sets.

The clock is frozen (speed 1e-6) and jumped with ``clock.advance``, so every wait is exact and
the tests do not depend on machine load.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulators.instruments.sr830 import TIME_CONSTANTS
from tests.simulators.conftest import ask


def _lockin_setup(lab, slvl=0.01, oflt=8, ofsl=3, sens=17):
    lia = lab.emulators["lockin"]
    lia.handle(f"SLVL{slvl};OFLT{oflt};OFSL{ofsl};SENS{sens};PHAS0;HARM1")
    return lia


def _expected_x(lab, slvl):
    """I_ac · dV/dI of the model at the solved DC operating point."""
    t, b = lab.bench.conditions()
    i_dc, _ = lab.bench.junction_dc()
    r_d = float(lab.sample.differential_resistance(i_dc, t, b))
    return slvl / (lab.bench.bias_resistor + r_d) * r_d


def test_lockin_x_follows_model_dvdi_as_bias_steps(frozen_lab):
    lab = frozen_lab
    lab.cryostat.set_temperature(3.0)
    lia = _lockin_setup(lab, slvl=0.01)
    tau = TIME_CONSTANTS[8]                     # 100 ms, 24 dB/oct: settle 10 τ
    lia.handle("AUXV1,-4.0")
    lab.clock.advance(5.0)                      # forget the power-on excitation (1 V)
    measured, expected = [], []
    for aux in np.linspace(-4.0, 4.0, 17):
        lia.handle(f"AUXV1,{aux:.3f}")
        lab.clock.advance(10 * tau)
        x, y = (float(v) for v in ask(lia, "SNAP? 1,2").split(","))
        measured.append(x)
        expected.append(_expected_x(lab, 0.01))
        assert abs(y) < 0.01 * abs(x)
    measured, expected = np.array(measured), np.array(expected)
    np.testing.assert_allclose(measured, expected, rtol=5e-3)
    # the spectrum is not flat: the gaps show as a dip of dV/dI at zero bias and structure
    assert expected.max() / expected.min() > 1.05


def test_lockin_settling_follows_tau_and_slope(frozen_lab):
    lab = frozen_lab
    _hold_temperature(lab, 80.0)                 # normal state: dV/dI flat, step is clean
    for ofsl, stages in ((0, 1), (3, 4)):
        lia = _lockin_setup(lab, slvl=0.004, oflt=10, ofsl=ofsl)  # τ = 1 s
        lab.clock.advance(100.0)
        x0 = float(ask(lia, "OUTP? 1"))
        lia.handle("SLVL 0.404")                 # a 100× bigger excitation: a step in X
        final = _expected_x(lab, 0.404)
        for n_tau in (1.0, 5.0):
            lab.clock.advance(n_tau - (1.0 if n_tau == 5.0 else 0.0))
            x = float(ask(lia, "OUTP? 1"))
            frac = (x - x0) / (final - x0)
            k = np.arange(stages)
            expect = 1 - math.exp(-n_tau) * sum(n_tau ** j / math.factorial(j) for j in k)
            assert frac == pytest.approx(expect, abs=0.01), (ofsl, n_tau)
        lab.clock.advance(20.0)
        assert float(ask(lia, "OUTP? 1")) == pytest.approx(final, rel=2e-3)


def test_large_excitation_smears_the_spectrum(frozen_lab):
    """Consistency of DC and ac: at zero bias a big ac amplitude averages dV/dI over the gap."""
    lab = frozen_lab
    lab.cryostat.set_temperature(3.0)
    small = _lockin_setup(lab, slvl=0.004)
    lab.clock.advance(5.0)
    r_small = float(ask(small, "OUTP?1")) / (0.004 / 48e3)
    small.handle("SLVL 5.0")                     # 100 µA rms: sweeps ±140 µA over the gap
    lab.clock.advance(5.0)
    i_ac = 5.0 / 48e3
    r_big = float(ask(small, "OUTP?1")) / i_ac
    assert r_small != pytest.approx(r_big, rel=0.01)
    # the big-signal value is the first Fourier coefficient of V(I_dc + √2 I_ac sin θ)
    theta = 2 * np.pi * (np.arange(4096) + 0.5) / 4096
    t, b = lab.bench.conditions()
    v = lab.sample.contact_voltage(np.sqrt(2) * i_ac * np.sin(theta), t, b)
    fundamental = np.sqrt(2) / 4096 * np.sum(v * np.sin(theta)) / i_ac
    assert r_big == pytest.approx(fundamental, rel=0.02)


def _hold_temperature(lab, kelvin):
    ls = lab.emulators["temperature"]
    lab.cryostat.set_temperature(kelvin)
    rng = 1 if kelvin < 6 else (2 if kelvin < 40 else 3)
    ls.handle(f"SETP 1,{kelvin};RANGE 1,{rng}")
    lab.clock.advance(1200.0)
    assert lab.cryostat.temperature == pytest.approx(kelvin, abs=0.02)


@pytest.mark.parametrize("kelvin,field", [(20.0, 0.0), (50.0, 0.0), (50.0, 8.0), (120.0, 0.0)])
def test_delta_mode_resistance_follows_r_t_b(frozen_lab, kelvin, field):
    lab = frozen_lab
    if field:
        lab.magnet.set_target(field / lab.magnet.coil_constant)
        lab.magnet.set_rate(100.0)
        lab.magnet.ramp()
    _hold_temperature(lab, kelvin)
    assert lab.magnet.field == pytest.approx(field)
    k = lab.emulators["current_source"]
    k.handle("*RST;UNIT OHMS;SOUR:DELT:HIGH 2e-4;SOUR:DELT:DEL 0.002;SOUR:DELT:COUN 50;"
             "TRAC:POIN 50;SOUR:DELT:ARM;INIT:IMM")
    lab.clock.advance(60.0)
    values = np.array(ask(k, "TRAC:DATA?").split(","), dtype=float)
    readings = values[0::2]
    assert len(readings) == 50
    expected = lab.sample.chord_resistance(lab.cryostat.temperature, field, 2e-4)
    assert np.mean(readings) == pytest.approx(expected, rel=0.01, abs=2e-4)
    assert lab.sample.resistance(kelvin, field) == pytest.approx(expected, rel=0.2, abs=1e-3)
    assert ask(k, "SOUR:DELT:ARM?") == "0"       # the run ended by itself


def test_delta_cancels_thermal_emf_that_dc_reading_shows(frozen_lab):
    lab = frozen_lab
    _hold_temperature(lab, 3.0)                  # R = 0 below ~6 K
    k = lab.emulators["current_source"]
    k.handle("SOUR:DELT:HIGH 1e-4;SOUR:DELT:COUN 20;TRAC:POIN 20;SOUR:DELT:ARM;INIT")
    lab.clock.advance(30.0)
    readings = np.array(ask(k, "TRAC:DATA?").split(","), dtype=float)[0::2]
    assert abs(np.mean(readings)) < 5e-8        # V of the sample is zero, the EMF cancels
    replies, _ = lab.linked_nanovoltmeter.execute(":READ?")
    assert float(replies[0]) == pytest.approx(lab.bench.thermal_emf(), abs=3e-8)
    assert lab.bench.thermal_emf() > 1e-6


def test_dcon_gives_differential_conductance_of_the_sample(frozen_lab):
    lab = frozen_lab
    _hold_temperature(lab, 120.0)                # ohmic: dV/dI = R_N(T)
    k = lab.emulators["current_source"]
    k.handle("UNIT SIEM;FORM:ELEM READ,SOUR,AVOL,TST;SOUR:DCON:STAR -1e-3;SOUR:DCON:STOP 1e-3;"
             "SOUR:DCON:STEP 1e-4;SOUR:DCON:DELT 2e-5;SOUR:DCON:DEL 0.002;TRAC:POIN 21;"
             "SOUR:DCON:ARM;INIT:IMM")
    lab.clock.advance(40.0)
    data = np.array(ask(k, "TRAC:DATA?").split(","), dtype=float).reshape(-1, 4)
    assert data.shape == (21, 4)
    # the 6221 sends reading, timestamp, source, average voltage whatever FORM:ELEM's order
    dg, tst, source, avol = data.T
    assert np.all(np.diff(tst) > 0)
    np.testing.assert_allclose(source, np.linspace(-1e-3, 1e-3, 21), atol=1e-12)
    r_n = lab.sample.normal_resistance(lab.cryostat.temperature)
    np.testing.assert_allclose(dg, 1.0 / r_n, rtol=0.02)
    np.testing.assert_allclose(avol - lab.bench.thermal_emf(), source * r_n, atol=2e-6)


def test_iv_shows_critical_current(frozen_lab):
    lab = frozen_lab
    _hold_temperature(lab, 3.0)
    k = lab.emulators["current_source"]
    nv = lab.linked_nanovoltmeter
    k.handle("SOUR:CURR:COMP 10;OUTP ON")
    volts = []
    currents = np.linspace(0.5e-3, 5e-3, 10)
    for i in currents:
        k.handle(f"SOUR:CURR {i:g}")
        replies, _ = nv.execute(":READ?")
        volts.append(float(replies[0]) - lab.bench.thermal_emf())
    volts = np.array(volts)
    ic = lab.sample.critical_current(lab.cryostat.temperature)
    assert 1.5e-3 < ic < 2.1e-3
    assert np.all(np.abs(volts[currents < ic]) < 1e-7)
    assert np.all(volts[currents > ic * 1.1] > 1e-6)


def test_temperature_follows_setpoint_with_lag_and_overshoot(frozen_lab):
    lab = frozen_lab
    ls = lab.emulators["temperature"]
    _hold_temperature(lab, 50.0)
    ls.handle("SETP 1,100")
    times, stage, sample = [], [], []
    for n in range(1, 241):
        lab.clock.advance(2.5)
        times.append(2.5 * n)
        stage.append(float(ask(ls, "KRDG? A")))
        sample.append(lab.cryostat.temperature)
    stage, sample = np.array(stage), np.array(sample)
    # lag: the heater power needs time to warm copper; the cell trails the thermometer
    assert stage[3] < 70.0
    assert sample[3] < stage[3] - 5.0
    first_90 = int(np.argmax(stage > 90.0))
    assert sample[first_90] < stage[first_90] - 5.0
    # overshoot of the default PID (50, 20, 0), a few percent of the step, then it settles
    assert 100.5 < stage.max() < 110.0
    assert 100.2 < sample.max() < stage.max()
    assert abs(stage[-1] - 100.0) < 0.05 and abs(sample[-1] - 100.0) < 0.05
    assert ask(ls, "PID? 1") == "+0050.0,+0020.0,+000.0"


def test_temperature_ramp_moves_the_setpoint_at_the_rate(frozen_lab):
    lab = frozen_lab
    ls = lab.emulators["temperature"]
    _hold_temperature(lab, 10.0)
    ls.handle("RANGE 1,3;RAMP 1,1,5.0;SETP 1,40")
    lab.clock.advance(120.0)
    assert ask(ls, "RAMPST? 1") == "1"
    assert float(ask(ls, "SETP? 1")) == pytest.approx(20.0, abs=0.01)
    assert lab.cryostat.stage_temperature == pytest.approx(20.0, abs=1.0)
    lab.clock.advance(600.0)
    assert ask(ls, "RAMPST? 1") == "0"
    assert lab.cryostat.temperature == pytest.approx(40.0, abs=0.1)


def test_field_ramps_at_the_set_rate_ami430(frozen_lab):
    lab = frozen_lab
    ami = lab.emulators["magnet"]
    ami.handle("CONF:FIELD:UNITS 1;CONF:RAMP:RATE:UNITS 1;CONF:RAMP:RATE:FIELD 1,0.5,9;"
               "CONF:FIELD:TARG 2.0;RAMP")
    assert ask(ami, "RAMP:RATE:FIELD:1?") == "0.500000000,9.000000000"
    lab.clock.advance(60.0)
    assert float(ask(ami, "FIELD:MAG?")) == pytest.approx(0.5, abs=1e-6)
    assert ask(ami, "STATE?") == "1"
    lab.clock.advance(120.0)
    assert float(ask(ami, "FIELD:MAG?")) == pytest.approx(1.5, abs=1e-6)
    lab.clock.advance(120.0)
    assert ask(ami, "STATE?") == "2"
    assert lab.magnet.field == pytest.approx(2.0)
    ami.handle("PAUSE")
    assert ask(ami, "STATE?") == "3"


def test_persistent_switch_heats_and_cools_ami430(frozen_lab):
    lab = frozen_lab
    ami = lab.emulators["magnet"]
    ami.handle("CONF:FIELD:UNITS 1;CONF:RAMP:RATE:UNITS 1;CONF:RAMP:RATE:FIELD 1,1.0,9;"
               "CONF:FIELD:TARG 1.0;RAMP")
    lab.clock.advance(90.0)
    ami.handle("PS 0")
    assert ask(ami, "STATE?") == "10"            # cooling switch
    lab.clock.advance(30.0)
    assert ask(ami, "PERS?") == "1"
    ami.handle("ZERO")
    lab.clock.advance(90.0)
    assert float(ask(ami, "CURR:SUPP?")) == pytest.approx(0.0, abs=1e-6)
    assert lab.magnet.field == pytest.approx(1.0)    # persistent current holds the field
    ami.handle("PS 1")                           # refused: supply does not match the coil
    assert ask(ami, "SYST:ERR?").startswith("-106")


def test_seeded_runs_are_reproducible():
    from simulators.lab import VirtualLab

    def run(seed):
        lab = VirtualLab(speed=1e-6, seed=seed)
        lia = _lockin_setup(lab, slvl=0.1)
        out = []
        for aux in (0.5, 1.0, 1.5):
            lia.handle(f"AUXV1,{aux}")
            lab.clock.advance(2.0)
            out.append(ask(lia, "SNAP?1,2"))
        return out

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_critical_current_dips_where_the_contact_current_crosses_ic(frozen_lab):
    lab = frozen_lab
    lia = _lockin_setup(lab, slvl=0.01)
    for kelvin in (3.0, 30.0):
        _hold_temperature(lab, kelvin)
        ic = lab.sample.spreading_critical_current(lab.cryostat.temperature)
        currents, dvdi = [], []
        for aux in np.linspace(0.5, 10.5, 81):
            lia.handle(f"AUXV1,{aux:.3f}")
            lab.clock.advance(1.0)
            x = float(ask(lia, "OUTP?1"))
            i_dc, _ = lab.bench.junction_dc()
            currents.append(i_dc)
            dvdi.append(x / (0.01 / 48e3))
        currents, dvdi = np.array(currents), np.array(dvdi)
        # sharpness: each point against the mean of its neighbours 4 steps away
        sharp = dvdi[4:-4] / (0.5 * (dvdi[:-8] + dvdi[8:]))
        peak = int(np.argmax(sharp)) + 4
        if ic < currents.max():
            # dI/dV dip = dV/dI spike where the region under the contact switches
            assert currents[peak] == pytest.approx(ic, rel=0.08)
            assert sharp.max() > 1.1
        else:
            assert sharp.max() < 1.02               # the Andreev structure is smooth
    assert lab.sample.spreading_critical_current(3.0) > 2.2e-4 > ic


def _conductance_seen_by_lockin(lab, auxes, slvl):
    """(V_dc mV, dI/dV·R_N, X mV rms) the way the spectrum procedure computes them."""
    bench = lab.bench
    bench.set_sine(slvl)
    rb = bench.bias_resistor
    rows = []
    for aux in auxes:
        bench.set_aux_bias(float(aux))
        phasor, i_ac, _, v_dc = bench.junction_harmonic(1)
        x = phasor.real
        assert i_ac == pytest.approx((slvl - x) / rb, rel=1e-6)  # I₁ = (V_osc − X)/R_b
        assert abs(phasor.imag) < 1e-9 * abs(x)
        rows.append((v_dc * 1e3, i_ac / x * lab.preset.junction_normal_resistance_ohm,
                     x * 1e3))
    return np.array(rows).T


@pytest.mark.parametrize("r_junction,r_bias,v_rms_mV,tol", [
    (1e7, 1e3, 2.0, 1e-4),      # voltage bias: exactly the semicircle kernel (2.4e-5)
    # the 48 kΩ station biases with a current: the voltage kernel still reproduces it to
    # 2e-4 at 2 mV rms and 9e-4 at 5 mV rms (measured), below 0.3 % lock-in noise
    (350.0, 48e3, 2.0, 3e-4),
    (350.0, 48e3, 5.0, 1.2e-3),
])
def test_lockin_measures_the_modulation_broadened_conductance(r_junction, r_bias, v_rms_mV,
                                                              tol):
    """The simulator's circuit solve (θ-quadrature of the junction's response to the sine
    through R_b) against daqapp.analysis.modulation's semicircle kernel: two independent
    implementations of the same first harmonic."""
    from daqapp.analysis.modulation import broaden
    from simulators.lab import VirtualLab
    from simulators.presets import preset_from_mapping

    preset = preset_from_mapping({"base": "la3ni2o7-cell2",
                                  "junction_normal_resistance_ohm": r_junction,
                                  "series_resistance_ohm": 0.0, "spreading_resistance_ohm": 0.0,
                                  "series_heating_per_A": 0.0}, "test")
    lab = VirtualLab(preset=preset, speed=1e-6, seed=3, bias_resistor_ohm=r_bias)
    lab.cryostat.set_temperature(3.0)
    slvl = v_rms_mV * 1e-3 * (r_bias + r_junction) / r_junction
    span = 40e-3 * (r_bias + r_junction) / r_junction  # drive for about ±40 mV
    v, g_meas, x = _conductance_seen_by_lockin(lab, np.linspace(-span, span, 21), slvl)
    sample = lab.sample

    def g_true(bias_mV):
        return sample.normalized_conductance(bias_mV, 3.0) * sample.background(bias_mV)

    expected = np.array([broaden(np.array([vi]), g_true, xi, n_nodes=96)[0]
                         for vi, xi in zip(v, x, strict=True)])
    np.testing.assert_allclose(g_meas, expected, atol=tol)
    # and the broadening itself is well above that agreement (and above lock-in noise)
    assert np.max(np.abs(g_true(v) - expected)) > 10 * tol
    assert 0.7 * v_rms_mV < np.median(x) < 1.3 * v_rms_mV  # X = the ac voltage across it
