"""Oxford instruments over real serial links: emulators on pseudo-terminals, pyvisa-py ASRL.

The ITC503 and IPS120-10 (9600 8N2, CR) and the Mercury iTC/iPS (9600 8N1, LF) are served on
``os.openpty()`` pairs and opened as ``ASRL/dev/pts/N::INSTR`` by the daqapp drivers, which set
the instrument's framing on the port. Faults on the line: a garbled reply (line noise) is
retried, a silent instrument (timeouts) and a lost device (the pty closed mid-run) end in the
safe state with a verdict naming the role, while the other roles are confirmed.
"""

from __future__ import annotations

import os
import termios
import time

import pytest
import pyvisa

from daqapp.runner import Run, events
from daqapp.station import Station
from daqapp.storage import open_run
from procedures.rt import ResistanceTemperature
from simulators.faults import FaultBoard
from simulators.instruments.oxford import ITC503Emulator
from simulators.lab import VirtualLab
from simulators.serial_link import PtyServer

ROLE_TIMEOUT_S = 0.5
SAFE = {"magnet": "zero", "heater_setpoint_k": 10.0, "heater_range": 0}


def serial_station(temperature: str, magnet: str, speed: float = 500.0) -> Station:
    tables = {role: {"driver": driver, "timeout_s": ROLE_TIMEOUT_S}
              for role, driver in (("temperature", temperature), ("magnet", magnet))}
    ranges = [0, 1]
    return Station.simulated(
        speed=speed, seed=4, temperature_driver=temperature, magnet_driver=magnet,
        simulation={"simulated": True, "preset": "la3ni2o7-cell2", "speed": speed, "seed": 4,
                    "serial_roles": ["temperature", "magnet"]},
        limits={"heater_ranges_allowed": ranges}, safe_state=SAFE, **tables)


def verdicts(report) -> dict[str, bool]:
    return {v.role: v.confirmed for v in report.verdicts}


def test_pty_framing_is_set_by_pyvisa_py_as_on_a_real_port():
    faults = FaultBoard()
    lab = VirtualLab(speed=1e-6)
    server = PtyServer(ITC503Emulator(lab.cryostat, lab.clock, faults, lambda s: 0.0),
                       "temperature", faults)
    server.start()
    rm = pyvisa.ResourceManager("@py")
    try:
        assert server.resource.startswith("ASRL/dev/pts/")
        from drivers.oxford import ITC503

        itc = ITC503(server.resource, timeout=2000)
        assert itc.version.startswith("ITC503")
        fd = os.open(server.device, os.O_RDONLY | os.O_NOCTTY)
        try:
            attrs = termios.tcgetattr(fd)
        finally:
            os.close(fd)
        cflag = attrs[2]
        assert cflag & termios.CSTOPB            # two stop bits
        assert cflag & termios.CSIZE == termios.CS8
        assert not cflag & termios.PARENB
        assert attrs[4] == termios.B9600         # ispeed
        itc.adapter.close()
    finally:
        rm.close()
        server.stop()
    assert not os.path.exists(server.device)   # a closed pty's device node goes away


@pytest.mark.parametrize("temperature,magnet", [("ITC503", "IPS120_10"),
                                                ("MercuryiTC", "MercuryiPS")])
def test_roles_work_over_the_serial_link_and_the_safe_state_is_confirmed(temperature, magnet):
    with serial_station(temperature, magnet).connect() as conn:
        for role in ("temperature", "magnet"):
            assert conn.roles[role].resource.startswith("ASRL/dev/pts/")
        conn.temperature.set_heater_range(1)
        conn.temperature.set_setpoint(12.0)
        conn.magnet.ramp_to(0.1, 0.5)
        deadline = time.monotonic() + 10
        while not conn.magnet.is_holding() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert conn.magnet.field() == pytest.approx(0.1, abs=1e-3)
        assert conn.temperature.setpoint() == pytest.approx(12.0)
        report = conn.to_safe_state()
        assert report.confirmed, report.summary()
        assert conn.temperature.heater_range() == 0


def test_a_garbled_reply_is_retried_by_the_legacy_driver():
    with serial_station("ITC503", "IPS120_10", speed=1.0).connect() as conn:
        link = conn.lab.serial_link("temperature")
        first = conn.temperature.temperature()
        link.corrupt_next_reply()
        assert conn.temperature.temperature() == pytest.approx(first, abs=0.05)
        assert link._corrupt == 0   # the noise was consumed by the first try


def test_a_garbled_mercury_reply_in_the_safe_state_is_retried_after_a_reconnect():
    with serial_station("MercuryiTC", "MercuryiPS").connect() as conn:
        conn.temperature.set_heater_range(1)
        conn.lab.serial_link("temperature").corrupt_next_reply()
        report = conn.to_safe_state()
        assert report.confirmed, report.summary()
        verdict = report.verdict("temperature")
        assert any("after reconnect" in a for a in verdict.actions), verdict.actions


@pytest.mark.slow  # a silent instrument costs its timeouts (write, read-back, reconnect): ~5 s
def test_a_silent_serial_instrument_is_not_confirmed_and_named():
    with serial_station("ITC503", "IPS120_10").connect() as conn:
        conn.lab.faults.set("temperature", "no_reply")
        report = conn.to_safe_state()
        assert verdicts(report) == {"temperature": False, "magnet": True, "lockin": True,
                                    "current_source": True, "nanovoltmeter": True}
        line = report.verdict("temperature").line()
        assert line.startswith("temperature (ITC503): NOT CONFIRMED")
        assert "check by hand" in line


def test_a_lost_serial_device_mid_run_ends_in_the_safe_state_naming_the_role(tmp_path):
    station = serial_station("MercuryiTC", "MercuryiPS")
    with station.connect() as conn:
        procedure = ResistanceTemperature(t_start=3.0, t_stop=6.0, ramp_rate=10.0,
                                          interval=1.0, fields="0", hold_time=1.0)
        run = Run(procedure, station=conn, output_dir=tmp_path)
        link = conn.lab.serial_link("magnet")

        def on_event(event) -> None:
            if event.kind == events.RECORD and run.rows == 3:
                link.unplug()

        run.subscribe(on_event)
        result = run.execute()
        assert not os.path.exists(link.device)
    assert result.status == events.FAILED
    with open_run(result.path) as stored:
        verdict = stored.snapshots["end"]["safe_state_report"]
    confirmed = {entry["role"]: entry["confirmed"] for entry in verdict["roles"]}
    assert confirmed.pop("magnet") is False
    assert all(confirmed.values()), verdict["summary"]
    line = next(e["line"] for e in verdict["roles"] if e["role"] == "magnet")
    assert line.startswith("magnet (MercuryiPS): NOT CONFIRMED")
    assert "reconnect failed" in line


def test_serial_roles_are_checked():
    from daqapp.errors import ConfigError

    with pytest.raises(ConfigError, match="serial_roles"):
        VirtualLab(serial_roles=("heater",))
    with pytest.raises(ConfigError, match="MultiPyVu"):
        VirtualLab(temperature_model="ppms", serial_roles=("temperature",))
