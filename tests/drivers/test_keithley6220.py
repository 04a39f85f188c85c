"""Keithley 6220: delta mode as on the 6221, no DCON: a DCON procedure queued on it is
refused at validation (before anything moves), and the emulated 6220 refuses the headers."""

import time

import pytest
from pymeasure.test import expected_protocol

import procedures
from daqapp.cli import main
from daqapp.errors import ConfigError
from daqapp.runner.procedure import validate_parameters
from daqapp.station.config import Station
from drivers.keithley6220 import Keithley6220, Keithley6220CurrentSource
from drivers.keithley6221 import DconSweep


def test_delta_set_up_messages_and_dcon_refused_without_a_message():
    pairs = [(":SOUR:DELT:HIGH 0.0001", None), (":SOUR:DELT:DELay 0.002", None),
             (":SOUR:DELT:COUN 10", None), (":SOUR:SWEep:COUN 1", None),
             (":SOUR:DELT:CAB ON", None), ("TRAC:CLE", None), ("TRAC:POIN 10", None)]
    with expected_protocol(Keithley6220, pairs) as k:
        k.configure_delta(1e-4, delay_s=0.002, count=10)
        with pytest.raises(ConfigError, match="no differential-conductance"):
            k.configure_dcon(DconSweep(-1e-5, 1e-5, 1e-6, 1e-6))
        with pytest.raises(ConfigError, match="waveform"):
            k.waveform_arm()
    with expected_protocol(Keithley6220, []) as k:
        with pytest.raises(ConfigError, match="didv-lockin"):
            Keithley6220CurrentSource(k).configure_dcon(DconSweep(-1e-5, 1e-5, 1e-6, 1e-6))


def _station_6220(tmp_path):
    path = tmp_path / "station-6220.toml"
    path.write_text('[simulation]\nsimulated = true\nspeed = 200.0\n\n'
                    '[current_source]\ndriver = "Keithley6220"\n\n'
                    '[lockin]\ndriver = "SR830"\n')
    return path


def test_a_dcon_procedure_is_refused_on_a_6220_station_before_anything_moves(tmp_path,
                                                                              capsys):
    from daqapp.station import load_station

    station = load_station(_station_6220(tmp_path))
    with pytest.raises(ConfigError, match="didv-dcon: needs DCON, which the Keithley6220 in "
                                          r"\[current_source\] does not have"):
        validate_parameters(procedures.load("didv-dcon")(), station, name="didv-dcon")
    # the lock-in spectrum still runs there, and DCON still on a 6221
    validate_parameters(procedures.load("didv-lockin")(), station)
    validate_parameters(procedures.load("didv-dcon")(), Station.simulated())
    code = main(["run", "didv-dcon", "--station", str(_station_6220(tmp_path)),
                 "-o", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs DCON" in err[0] and "didv-lockin" in err[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_emulated_6220_runs_delta_and_refuses_dcon_headers():
    station = Station.simulated(speed=500.0, current_source={"driver": "Keithley6220"})
    with station.connect() as conn:
        source = conn.current_source
        assert "MODEL 6220" in source.identify()
        inst = source.instrument
        inst.write("SOUR:DCON:STAR -1e-5")
        assert inst.ask("SYST:ERR?").startswith("-113")
        source.set_compliance(2.0)
        inst.configure_delta(1e-4, count=20)
        inst.delta_arm()
        inst.delta_start()
        deadline = time.monotonic() + 10
        while inst.buffer_count() < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        readings = inst.buffer_readings(("READ", "TST"))["READ"]
        assert len(readings) == 20
        # the film at the 1.5 K bath is superconducting: delta mode reads no resistance
        # beyond the 2182A's noise (the thermal EMF it cancels would be µV-sized)
        assert abs(readings.mean() / 1e-4) < 0.5
        assert conn.temperature.temperature() < 2.0
        inst.sweep_abort()
        assert conn.to_safe_state().verdict("current_source").confirmed
