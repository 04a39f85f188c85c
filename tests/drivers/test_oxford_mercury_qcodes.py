"""QCoDeS's own Mercury iPS driver, unchanged, against the Mercury iPS emulator.

``qcodes.instrument_drivers.oxford.OxfordMercuryiPS`` assumes a three-axis (vector) supply and
a LAN socket; the emulator serves GRPX/GRPY/GRPZ on 127.0.0.1, with GRPZ on the lab's magnet.
Both firmware generations are checked: before 2.6 the node is ``PSU``, from 2.6 ``SPSU``.
"""

from __future__ import annotations

import time

import pytest

qcodes_oxford = pytest.importorskip("qcodes.instrument_drivers.oxford")

from simulators.clock import SimClock  # noqa: E402
from simulators.faults import FaultBoard  # noqa: E402
from simulators.instruments.oxford_mercury import MercuryIPSEmulator  # noqa: E402
from simulators.magnet import MagnetModel  # noqa: E402
from simulators.server import InstrumentServer  # noqa: E402


@pytest.mark.parametrize("firmware", ["2.5.09.000", "2.6.04.000"])
def test_qcodes_mercury_ips_ramps_the_emulated_magnet(firmware):
    clock = SimClock(200.0)
    magnet = MagnetModel(clock)
    magnet.switch = "on"
    faults = FaultBoard()
    emulator = MercuryIPSEmulator(magnet, faults, axes=("GRPX", "GRPY", "GRPZ"),
                                  firmware=firmware)
    server = InstrumentServer(emulator, "magnet", faults)
    server.start()
    ips = None
    try:
        ips = qcodes_oxford.OxfordMercuryiPS(
            f"ips_{firmware.replace('.', '_')}", f"TCPIP::127.0.0.1::{server.port}::SOCKET",
            visalib="@py")
        assert ips.GRPZ.psu_string == ("SPSU" if firmware >= "2.6" else "PSU")
        assert ips.GRPZ.field() == 0.0
        assert ips.GRPZ.heater_switch() == "ON"
        ips.GRPZ.field_ramp_rate(0.5 / 60)          # T/s in QCoDeS, T/min on the wire
        assert ips.GRPZ.field_ramp_rate() == pytest.approx(0.5 / 60)
        ips.z_target(0.2)
        ips.ramp(mode="simul")
        deadline = time.monotonic() + 20
        while ips.GRPZ.ramp_status() == "TO SET" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ips.GRPZ.ramp_status() == "HOLD"
        assert ips.GRPZ.field() == pytest.approx(0.2)
        assert magnet.field == pytest.approx(0.2)      # the lab's magnet moved
        assert ips.GRPX.field() == 0.0                 # the other axes stayed put
    finally:
        if ips is not None:
            ips.close()
        server.stop()
