"""Sample presets (built-in and TOML) and the ``daqapp simulate`` command."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from daqapp.errors import ConfigError
from simulators.presets import BUILTIN_PRESETS, load_preset, preset_from_mapping
from simulators.sample import SampleModel

EXAMPLE = Path(__file__).resolve().parents[2] / "simulators" / "example_preset.toml"


def test_cell2_follows_the_seed_paper():
    model = SampleModel(load_preset("la3ni2o7-cell2"))
    gaps3 = model.gap_parameters(3.0)
    assert [g.delta_meV for g in gaps3] == [23.0, 6.0]
    assert [g.z for g in gaps3] == [0.58, 0.40]
    mid = model.gap_parameters(12.0)            # interpolated between the 10 K and 14 K rows
    assert mid[0].delta_meV == pytest.approx(22.9)
    assert model.gap_parameters(60.0)[0].delta_meV < 20.5   # BCS closing beyond 40 K
    assert model.gap_parameters(72.0)[0].delta_meV == 0.0
    assert model.hc2(0.0) == pytest.approx(97.7)
    assert model.resistance(4.0) == 0.0 and model.resistance(8.0) > 0.0   # zero below ~6 K
    r = [model.resistance(t) for t in (80.0, 100.0, 120.0, 140.0)]
    assert np.allclose(np.diff(r), np.diff(r)[0])                          # linear 70–140 K
    assert model.resistance(71.0) < model.normal_resistance(71.0)         # onset ~72 K
    assert model.resistance(40.0, 8.0) > model.resistance(40.0, 0.0)      # field broadens
    assert model.critical_current(0.0) == pytest.approx(2.03e-3)
    # three-terminal contact: slightly asymmetric spectra (a few percent at the largest bias)
    r_pos, r_neg = (float(model.differential_resistance(i, 80.0)) for i in (1.5e-4, -1.5e-4))
    assert 0.005 < abs(r_pos - r_neg) / r_pos < 0.05


def test_cell1_is_sharper_and_nb_is_conventional():
    cell1 = SampleModel(load_preset("la3ni2o7-cell1"))
    assert cell1.resistance(31.0) == 0.0 and cell1.resistance(34.0) > 0.0
    nb = SampleModel(load_preset("nb-foil"))
    (gap,) = nb.gap_parameters(1.5)
    assert (gap.delta_meV, gap.z, gap.gamma_meV) == (1.5, 0.43, 1.42)
    assert nb.gap_parameters(9.3)[0].delta_meV == 0.0


def test_user_preset_from_toml():
    preset = load_preset(EXAMPLE)
    assert preset.name == "la3ni2o7-cell2-softer-contact"
    assert preset.junction_normal_resistance_ohm == 120.0
    assert preset.transition_onset_K == BUILTIN_PRESETS["la3ni2o7-cell2"].transition_onset_K
    assert len(preset.gap_rows) == 2 and preset.gap_rows[0].z == (0.29, 0.20)


@pytest.mark.parametrize("data,message", [
    ({"base": "la3ni2o7-cell2", "colour": "red"}, "not a preset field"),
    ({"base": "la3ni2o7-cell2", "gap_weights": [0.5, 0.2]}, "sum to 1"),
    ({"base": "unobtainium"}, "base = 'unobtainium' is unknown"),
    ({"tc_K": 9.0}, "gap_rows missing"),
])
def test_bad_user_presets_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        preset_from_mapping(data, "x.toml")


def test_unknown_preset_name():
    with pytest.raises(ConfigError, match="built-in: la3ni2o7-cell1"):
        load_preset("graphene")


@pytest.mark.timeout(60)
def test_simulate_command_serves_and_exits_cleanly():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "daqapp.cli", "simulate", "--speed", "50",
                             "--seed", "2", "--fault", "magnet=quench"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = [proc.stdout.readline().split() for _ in range(5)]
        roles = {parts[0]: parts for parts in lines}
        assert set(roles) == {"lockin", "current_source", "nanovoltmeter", "temperature",
                              "magnet"}
        assert roles["current_source"][1] == "6221"
        resource = roles["temperature"][2]
        assert resource.startswith("TCPIP::127.0.0.1::") and resource.endswith("::SOCKET")
        port = int(resource.split("::")[2])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"*IDN?\n")
            assert sock.recv(100).startswith(b"LSCI,MODEL336")
        magnet_port = int(roles["magnet"][2].split("::")[2])
        with socket.create_connection(("127.0.0.1", magnet_port), timeout=5) as sock:
            data = b""
            while data.count(b"\r\n") < 2:
                data += sock.recv(100)
            sock.sendall(b"QU?\n")
            data = b""
            while not data.endswith(b"\r\n"):
                data += sock.recv(100)
            assert data == b"1\r\n"             # the --fault was applied
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err


def test_simulate_command_rejects_bad_input():
    result = subprocess.run([sys.executable, "-m", "daqapp.cli", "simulate", "--preset",
                             "graphene"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "graphene" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run([sys.executable, "-m", "daqapp.cli", "simulate", "--fault",
                             "lockin=quench"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "applies to role 'magnet'" in result.stderr
