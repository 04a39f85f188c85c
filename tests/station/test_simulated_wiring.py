"""How a simulated station is pointed at the virtual lab, checked with a stand-in lab.

The stand-in follows the ``simulators.lab.VirtualLab`` contract (constructor keywords,
``start``/``stop``, ``endpoints[role]`` with resource and terminators) but serves the socket
fakes, so this checks the station side of the contract independently of the emulators.
"""

import sys
import types
from dataclasses import replace

import pytest

from daqapp.station import Station
from simulators.lab import Endpoint  # the real contract type, served by a stand-in lab


def without_magnet(station):
    return replace(station, roles={r: c for r, c in station.roles.items() if r != "magnet"})


@pytest.fixture
def stand_in_lab(fakes, monkeypatch):
    servers = {"lockin": fakes("SR830"), "current_source": fakes("Keithley6221"),
               "temperature": fakes("LakeShore336")}
    made = []

    class VirtualLab:
        def __init__(self, **kwargs):
            self.kwargs = kwargs
            self.running = False
            made.append(self)

        def start(self):
            self.running = True

        def stop(self):
            self.running = False

        @property
        def endpoints(self):
            terms = {"temperature": "\r\n"}
            return {role: Endpoint(role, "fake", "127.0.0.1", s.port, s.resource,
                                   terms.get(role, "\n"), "\n")
                    for role, s in servers.items()}

    module = types.ModuleType("simulators.lab")
    module.VirtualLab = VirtualLab
    monkeypatch.setitem(sys.modules, "simulators.lab", module)
    return made, servers


def test_simulated_station_starts_the_lab_and_uses_its_endpoints(stand_in_lab):
    made, servers = stand_in_lab
    station = Station.simulated(preset="la3ni2o7-cell2", speed=100.0, seed=1)
    station = without_magnet(station)
    conn = station.connect()
    try:
        lab = made[0]
        assert lab.running and conn.lab is lab
        assert lab.kwargs == {"preset": "la3ni2o7-cell2", "speed": 100.0, "seed": 1,
                              "temperature_model": "ls336"}  # stand-in takes no wiring
        assert conn.temperature.resource == servers["temperature"].resource
        assert conn.temperature.temperature() == pytest.approx(4.2153)
        # the lab serves no separate 2182A: it is read behind the 6221, as on the bench
        assert conn.resolved.roles["nanovoltmeter"].driver == "Keithley2182_via_6221"
        assert conn.nanovoltmeter.voltage() == pytest.approx(1.25e-6)
        assert conn.snapshot()["simulated"] is True
    finally:
        conn.close()
    assert not lab.running and conn.lab is None


def test_lab_is_stopped_when_a_role_fails(stand_in_lab):
    made, servers = stand_in_lab
    servers["lockin"].close()
    station = Station.simulated(speed=10.0, lockin={"driver": "SR830", "timeout_s": 0.5})
    station = without_magnet(station)
    with pytest.raises(Exception, match="lockin"):
        station.connect()
    assert made and not made[0].running
