"""A job needs only the roles it uses (and what they talk through): an R–T or I–V run on a
station whose lock-in sits on a GPIB bus this computer cannot reach runs (the lock-in noted as
not opened); a lock-in spectrum on the same station is refused naming the lock-in. Roles it
does not use but that answer are opened and put safe at its end (test_cli_verdict)."""

from __future__ import annotations

import pytest

from daqapp import cli
from daqapp.errors import ConfigError
from daqapp.station.connected import roles_to_open
from daqapp.storage import open_run
from simulators.lab import VirtualLab


def test_roles_pull_in_what_they_talk_through(station_without_a_reachable_lockin):
    from daqapp.station import load_station

    station = load_station(station_without_a_reachable_lockin[0])
    assert station.roles["nanovoltmeter"].driver == "Keithley2182_via_6221"
    assert roles_to_open(station, ("nanovoltmeter",)) == {"nanovoltmeter", "current_source"}
    assert roles_to_open(station, None) == set(station.roles)
    assert roles_to_open(station, ("temperature", "lockin")) == {"temperature", "lockin"}
    with pytest.raises(ConfigError, match="lokin.*allowed"):
        roles_to_open(station, ("lokin",))


def _term(text: str) -> str:
    return text.encode("unicode_escape").decode()


@pytest.fixture
def station_without_a_reachable_lockin(tmp_path):
    with VirtualLab(speed=50.0, seed=3) as lab:
        e = lab.endpoints
        role = {"current_source": "Keithley6221", "temperature": "LakeShore336",
                "magnet": "AMI430"}
        lines = ['[station]', 'name = "bench with the lock-in on GPIB"',
                 '[lockin]', 'driver = "SR830"', 'resource = "GPIB0::8::INSTR"',
                 '[nanovoltmeter]', 'driver = "Keithley2182_via_6221"']
        for name, driver in role.items():
            lines += [f"[{name}]", f'driver = "{driver}"', f'resource = "{e[name].resource}"',
                      f'read_termination = "{_term(e[name].read_termination)}"',
                      f'write_termination = "{_term(e[name].write_termination)}"']
        path = tmp_path / "station.toml"
        path.write_text("\n".join(lines) + "\n")
        yield path, lab


def test_an_iv_run_needs_no_lockin_and_a_spectrum_is_refused_naming_it(
        station_without_a_reachable_lockin, tmp_path, capsys, monkeypatch):
    path, lab = station_without_a_reachable_lockin
    monkeypatch.setenv("DAQAPP_STATE_DIR", str(tmp_path / "state"))
    out = tmp_path / "runs"
    code = cli.main(["run", "iv", "--station", str(path), "-o", str(out), "--no-progress",
                     "--set", "points=11", "--set", "settle=0", "--set", "current_max=1e-4"])
    assert code == 0, capsys.readouterr().err
    (run_file,) = out.glob("*.h5")
    with open_run(run_file) as run:
        assert run.status == "finished" and len(run.columns["current"]) >= 11
    assert lab.emulators["current_source"].output is False  # ended in its safe state
    with open_run(run_file) as run:
        start = run.snapshots["start"]
    roles = start["roles"]
    assert roles["lockin"]["resource"] == "GPIB0::8::INSTR"
    assert roles["lockin"]["not_opened"].startswith("not used by this job: ")
    assert "GPIB0::8::INSTR" in roles["lockin"]["not_opened"]   # and why it could not open
    assert "idn" in roles["current_source"]
    code = cli.main(["run", "didv-lockin", "--station", str(path), "-o", str(out),
                     "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0 and "lockin" in err and "GPIB0::8::INSTR" in err
