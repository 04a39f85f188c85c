"""A driver and a procedure from another package: the example package under examples/, made
visible as an installed distribution (a ``*.dist-info`` with its pyproject's entry points on
``sys.path``, which importlib.metadata finds as it finds a pip-installed one), then named in a
station file, listed by ``daqapp station drivers`` and driven on an emulated instrument."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from daqapp.cli import main
from daqapp.errors import ConfigError
from daqapp.station import load_station
from drivers.registry import DRIVERS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "daqapp-plugin-example"


def fake_distribution(where: Path, name: str, version: str,
                      groups: dict[str, dict[str, str]]) -> None:
    """What pip leaves in site-packages, reduced to what importlib.metadata reads."""
    info = where / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, entries in groups.items():
        lines.append(f"[{group}]")
        lines += [f"{key} = {value}" for key, value in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """The example package "installed": its code and its declared entry points."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    fake_distribution(tmp_path / "site", project["name"], project["version"],
                      project["entry-points"])
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    DRIVERS.refresh()
    yield tmp_path
    DRIVERS.refresh()


def station_file(folder: Path, driver: str, resource: str, role: str = "temperature") -> Path:
    path = folder / f"station-{abs(hash((driver, role)))}.toml"
    path.write_text(f'[station]\nname = "plug-in test"\n\n[{role}]\ndriver = "{driver}"\n'
                    f'resource = "{resource}"\n\n[limits]\ntemperature_max_k = 300\n'
                    '[safe_state]\nheater_range = 0\n')
    return path


@pytest.fixture
def acme(installed):
    """An Acme TC-1 emulator on loopback, over the lab's cryostat at 200x speed."""
    from daqapp_plugin_example.emulator import AcmeTC1Emulator

    from simulators.clock import SimClock
    from simulators.cryostat import Cryostat
    from simulators.faults import FaultBoard
    from simulators.server import InstrumentServer

    cryostat = Cryostat(SimClock(200.0))
    server = InstrumentServer(AcmeTC1Emulator(cryostat), "temperature", FaultBoard(), port=0)
    server.start()
    yield f"TCPIP::127.0.0.1::{server.port}::SOCKET", cryostat
    server.stop()


def test_drivers_lists_the_plugin_with_its_distribution(installed, capsys):
    assert main(["station", "drivers"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("AcmeTC1"))
    assert "roles: temperature" in line
    assert "daqapp-plugin-example 0.1.0 (entry point daqapp.drivers: AcmeTC1 = " \
           "daqapp_plugin_example.driver:AcmeTC1Temperature)" in out
    assert "acme-temperature-log" in out and "from: daqapp-plugin-example 0.1.0" in out
    assert "LakeShore350" in out and "from: built-in" in out


def test_a_station_file_uses_the_plugin_and_check_passes(acme, installed, capsys):
    resource, _ = acme
    path = station_file(installed, "AcmeTC1", resource)
    station = load_station(path)
    assert station.roles["temperature"].driver == "AcmeTC1"
    assert main(["station", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "temperature     OK    AcmeTC1" in out and "ACME,TC-1,0001,1.0" in out


def test_the_plugin_drives_the_cryostat_through_its_role(acme, installed):
    resource, cryostat = acme
    station = load_station(station_file(installed, "AcmeTC1", resource))
    with station.connect() as conn:
        controller = conn.temperature
        start = controller.temperature()
        controller.set_heater_range(3)
        controller.set_setpoint(6.0)
        deadline = time.monotonic() + 10
        while controller.temperature() < 5.0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert controller.temperature() > 5.0 > start
        report = conn.to_safe_state()
        assert report.confirmed, report.summary()
        assert controller.heater_range() == 0


def test_module_and_class_named_in_the_station_file(acme, installed):
    resource, _ = acme
    name = "daqapp_plugin_example.driver:AcmeTC1Temperature"
    station = load_station(station_file(installed, name, resource))
    assert DRIVERS[station.roles["temperature"].driver].origin == f"station file ({name})"
    with station.connect() as conn:
        assert conn.temperature.identify() == "ACME,TC-1,0001,1.0"


def test_broken_plugins_are_refused_by_name_and_reason_before_any_connection(installed,
                                                                            capsys):
    fake_distribution(installed / "site", "broken-plugins", "2.0", {"daqapp.drivers": {
        "Missing": "no_such_module:Adapter",
        "NotAnAdapter": "daqapp_plugin_example.emulator:AcmeTC1Emulator",
        "Raises": "daqapp_plugin_example.driver:NoSuchClass"}})
    importlib.invalidate_caches()
    nobody = "TCPIP::127.0.0.1::9::SOCKET"      # discard port: nothing would answer
    cases = {"Missing": "cannot import no_such_module (ModuleNotFoundError",
             "NotAnAdapter": "AcmeTC1Emulator implements no role's protocol",
             "Raises": "daqapp_plugin_example.driver has no NoSuchClass"}
    for name, reason in cases.items():
        path = station_file(installed, name, nobody)
        with pytest.raises(ConfigError) as err:
            load_station(path)
        message = str(err.value)
        assert f"[temperature] driver: plug-in {name!r} cannot be used: " in message
        assert reason in message and "\n" not in message
        assert main(["station", "check", str(path)]) == 2
        assert reason in capsys.readouterr().err
    with pytest.raises(ConfigError, match="AcmeTC1 cannot fill the magnet role"):
        load_station(station_file(installed, "AcmeTC1", nobody, role="magnet"))
    assert main(["station", "drivers"]) == 0
    out = capsys.readouterr().out
    assert "Missing                UNUSABLE: broken-plugins 2.0" in out


def test_the_plugin_procedure_is_found_by_run_and_campaigns(installed):
    import procedures
    from daqapp.campaign.catalog import discover_procedures

    cls = procedures.load("acme-temperature-log")
    assert cls.__name__ == "TemperatureLog"
    assert discover_procedures()["acme-temperature-log"] is cls
    from daqapp.gui.catalogue import discover_procedures as window_procedures

    assert window_procedures()["acme-temperature-log"] is cls  # the window's list too
    assert procedures.name_of(cls) == "acme-temperature-log"
    assert "didv-lockin" in procedures.available()


def test_the_example_package_protocol_tests_pass():
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(EXAMPLE / "tests")], capture_output=True, text=True,
                            timeout=120, cwd=EXAMPLE,
                            env={**__import__("os").environ,
                                 "PYTHONPATH": f"{EXAMPLE}:{EXAMPLE.parents[1]}"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
