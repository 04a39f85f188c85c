"""Instruments in this process: the same drivers and emulators answer as over the sockets."""

from __future__ import annotations

import pytest

from daqapp.errors import InstrumentError
from daqapp.station import Station
from simulators.inprocess import InProcessAdapter, in_process


def test_every_role_answers_in_process_as_it_did_over_its_socket():
    with Station.simulated(speed=1e3, seed=4,
                           wiring={"dc_voltage_reader": "lockin_aux_in"}).connect() as conn:
        before = {role: a.identify() for role, a in conn.roles.items()}
        conn.lockin.instrument.write("SLVL 0.37")
        assert float(conn.lockin.instrument.ask("SLVL?")) == pytest.approx(0.37)  # applied
        assert in_process(conn) == [r for r in conn.roles if r != "nanovoltmeter"
                                    or conn.resolved.roles[r].driver != "Keithley2182_via_6221"]
        assert all(isinstance(a.instrument.adapter, InProcessAdapter)
                   for a in conn.roles.values())
        assert {role: a.identify() for role, a in conn.roles.items()} == before
        # the same emulator state: what was set over the socket reads back in-process
        assert float(conn.lockin.instrument.ask("SLVL?")) == pytest.approx(0.37)
        assert conn.to_safe_state().confirmed


def test_a_read_without_a_pending_reply_is_an_instrument_error():
    class Silent:
        def handle(self, line):
            return []

    adapter = InProcessAdapter(Silent())
    adapter.write("*RST")
    with pytest.raises(InstrumentError, match="nothing to read"):
        adapter.read()
