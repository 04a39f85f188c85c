"""`daqapp run`'s last line is the safe state's verdict; an unconfirmed one exits 1."""

from __future__ import annotations

from daqapp.commands.run import build_procedure, execute
from daqapp.station import Station


class MagnetGoesSilent:
    """A station config whose magnet stops answering right after connecting."""

    def __init__(self) -> None:
        drivers = {"lockin": "SR830", "current_source": "Keithley6221",
                   "nanovoltmeter": "Keithley2182", "temperature": "LakeShore336",
                   "magnet": "AMI430"}
        self.config = Station.simulated(speed=2000.0, seed=2, **{
            role: {"driver": driver, "timeout_s": 0.5} for role, driver in drivers.items()})

    def __getattr__(self, name):
        return getattr(self.config, name)

    def connect(self, **kwargs):
        conn = self.config.connect(**kwargs)
        conn.lab.faults.set("magnet", "no_reply")
        return conn


def test_unconfirmed_safe_state_is_the_last_line_and_exit_1(tmp_path, capsys):
    station = MagnetGoesSilent()
    procedure = build_procedure("iv", ["points=21", "directions=up"], station.config)
    code = execute(procedure, station, tmp_path, None, {}, quiet=True)
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 1
    assert lines[-1].startswith("safe state NOT CONFIRMED: magnet (AMI430): NOT CONFIRMED")
    assert lines[-1].endswith("— check by hand")
    assert lines[-2].startswith("failed: ")


def test_confirmed_safe_state_is_the_last_line_and_exit_0(tmp_path, capsys):
    config = Station.simulated(speed=2000.0, seed=2)
    procedure = build_procedure("iv", ["points=21", "directions=up"], config)
    assert execute(procedure, config, tmp_path, None, {}, quiet=True) == 0
    # an I-V run does not use the lock-in, but it answers, so it is put safe as well
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        "safe state confirmed (current_source, lockin, temperature, magnet, nanovoltmeter)")
