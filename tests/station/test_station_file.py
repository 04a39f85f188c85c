"""Station file validation: every mistake is named with file, key and what is allowed."""

import json
from pathlib import Path

import pytest

from daqapp.errors import ConfigError
from daqapp.station import Station, load_station, parse_station

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

GOOD = """
[lockin]
driver = "SR830"
resource = "GPIB0::8::INSTR"

[temperature]
driver = "LakeShore336"
resource = "TCPIP::192.168.1.20::7777::SOCKET"
control_input = "B"
"""


def write(tmp_path, text, name="station.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_are_filled_in(tmp_path):
    st = load_station(write(tmp_path, GOOD))
    assert st.wiring.bias_resistor_ohm == 48e3
    assert st.wiring.dc_bias_source == "lockin_aux"
    assert st.safe_state.magnet == "hold"
    assert st.roles["temperature"].options == {"control_input": "B"}
    assert set(st.roles) == {"lockin", "temperature"}
    json.dumps(st.to_dict())  # serialisable for run files


@pytest.mark.parametrize("extra,key,allowed", [
    ("[lockn]\ndriver='SR830'\n", "[lockn]", "allowed tables are"),
    ("[wiring]\nbias_resistor = 1e3\n", "[wiring] bias_resistor", "bias_resistor_ohm"),
    ("[limits]\nmax_field_t = 30\n", "[limits] max_field_t", "allowed [0, 20] T"),
    ("[limits]\nmax_bias_current_a = 0\n", "[limits] max_bias_current_a", "(0, 0.105] A"),
    ("[limits]\ntemperature_min_k = 300\ntemperature_max_k = 10\n",
     "[limits] temperature_min_k", "must be below"),
    ("[limits]\nheater_ranges_allowed = [0, 9]\n", "[limits] heater_ranges_allowed", "0-5"),
    ("[wiring]\ndc_bias_source = 'battery'\n", "[wiring] dc_bias_source", "'current_source'"),
    ("[wiring]\ndc_bias_source = 'current_source'\n", "[wiring] dc_bias_source",
     "needs a [current_source] table"),
    ("[safe_state]\nmagnet = 'quench'\n", "[safe_state] magnet", "'hold', 'zero'"),
    ("[safe_state]\nheater_setpoint_k = 1000\n", "[safe_state] heater_setpoint_k", "320"),
    ("[safe_state]\nheater_range = 3\n[limits]\nheater_ranges_allowed = [0, 1]\n",
     "[safe_state] heater_range", "allowed 0, 1"),
    ("[simulation]\nspeed = -1\n", "[simulation] speed", "(0, 100000]"),
])
def test_wrong_tables_and_limits_are_named(tmp_path, extra, key, allowed):
    path = write(tmp_path, GOOD + extra)
    with pytest.raises(ConfigError) as err:
        load_station(path)
    message = str(err.value)
    assert str(path) in message
    assert key in message
    assert allowed in message


@pytest.mark.parametrize("table,key,allowed", [
    ("[magnet]\ndriver = 'AMI431'\nresource = 'x'\n", "[magnet] driver", "AMI430, IPS120_10"),
    ("[magnet]\ndriver = 'SR830'\nresource = 'x'\n", "cannot fill the magnet role", "AMI430"),
    ("[magnet]\nresource = 'x'\n", "[magnet] driver", "missing"),
    ("[magnet]\ndriver = 'AMI430'\n", "[magnet] resource", "VISA resource"),
    ("[magnet]\ndriver = 'AMI430'\nresource = 'x'\nbaud = 9600\n", "[magnet] baud",
     "timeout_s"),
    ("[current_source]\ndriver = 'Keithley6221'\nresource = 'x'\ntimeout_s = 0\n",
     "[current_source] timeout_s", "[0.05, 600] s"),
    ("[nanovoltmeter]\ndriver = 'Keithley2182_via_6221'\n", "[nanovoltmeter] driver",
     "no [current_source] table"),
    ("[nanovoltmeter]\ndriver = 'Keithley2182'\nresource = 'x'\nnplc = 500\n",
     "[nanovoltmeter] nplc", "[0.01, 60]"),
    ("[magnet]\ndriver = 'IPS120_10'\nresource = 'x'\nbaud_rate = 19200\n",
     "[magnet] baud_rate", "unknown key"),
])
def test_wrong_roles_are_named(tmp_path, table, key, allowed):
    path = write(tmp_path, GOOD + table)
    with pytest.raises(ConfigError) as err:
        load_station(path)
    assert key in str(err.value) and allowed in str(err.value)
    assert str(path) in str(err.value)


def test_temperature_option_values_are_checked(tmp_path):
    path = write(tmp_path, GOOD.replace('control_input = "B"', 'control_input = "E"'))
    with pytest.raises(ConfigError, match=r"\[temperature\] control_input: 'E' not allowed"):
        load_station(path)


def test_missing_file_bad_toml_and_empty_station(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_station(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_station(write(tmp_path, "[lockin\n"))
    with pytest.raises(ConfigError, match="no roles"):
        load_station(write(tmp_path, "[wiring]\n"))


def test_terminator_spellings(tmp_path):
    text = GOOD.replace('resource = "GPIB0::8::INSTR"',
                        'resource = "ASRL1::INSTR"\nread_termination = "CR"\n'
                        'write_termination = "\\\\r\\\\n"\nbaud_rate = 19200')
    st = load_station(write(tmp_path, text))
    assert st.roles["lockin"].read_termination == "\r"
    assert st.roles["lockin"].write_termination == "\r\n"
    assert st.roles["lockin"].baud_rate == 19200


def test_simulated_station_needs_no_resources():
    st = parse_station({"simulation": {"simulated": True, "speed": 50.0, "seed": 3}})
    assert set(st.roles) == {"lockin", "current_source", "nanovoltmeter", "temperature",
                             "magnet"}
    assert st.simulation.speed == 50.0 and st.simulation.seed == 3


def test_station_simulated_constructor_accepts_tables():
    st = Station.simulated(speed=100.0, seed=1, limits={"max_field_t": 5.0},
                           magnet_driver="IPS120_10")
    assert st.simulation.simulated and st.limits.max_field_t == 5.0
    assert st.roles["magnet"].driver == "IPS120_10"


@pytest.mark.parametrize("name", ["station-lab.toml", "station-simulated.toml"])
def test_example_station_files_validate(name):
    st = load_station(EXAMPLES / name)
    assert st.roles


def test_show_and_drivers_commands(tmp_path, capsys):
    from daqapp.cli import main

    path = write(tmp_path, GOOD)
    assert main(["station", "show", str(path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["roles"]["temperature"]["options"] == {"control_input": "B"}
    assert main(["station", "drivers"]) == 0
    assert "Keithley2182_via_6221" in capsys.readouterr().out


def test_cli_reports_a_wrong_file_in_one_line(tmp_path, capsys):
    from daqapp.cli import main

    path = write(tmp_path, GOOD + "[limits]\nmax_field_t = 30\n")
    assert main(["station", "check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "max_field_t" in err and str(path) in err
