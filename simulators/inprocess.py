"""The virtual lab's instruments without sockets: a pymeasure adapter that hands each message
straight to an emulator in this process.

For measuring the software stack alone (``bench/acquisition.py``: daqapp's run and storage
against pymeasure's Worker and a bare loop, with the same drivers and the same emulator physics,
but no TCP round trip per message) and for tests that need a driver without a server.

>>> with Station.simulated(speed=1e4).connect() as conn:  # doctest: +SKIP
...     in_process(conn)     # every role of the simulated station now talks in-process
"""

from __future__ import annotations

from collections import deque
from typing import Any

from pymeasure.adapters import Adapter

from daqapp.errors import InstrumentError


class InProcessAdapter(Adapter):
    """pymeasure ``Adapter`` whose writes go to ``emulator.handle`` and whose reads return the
    reply lines it gave, in order (the server's framing without the server)."""

    def __init__(self, emulator: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.emulator = emulator
        self._replies: deque[str] = deque()

    def _write(self, command: str, **kwargs: Any) -> None:
        for line in command.replace("\r", "\n").split("\n"):
            if line:
                self._replies.extend(self.emulator.handle(line))

    def _read(self, **kwargs: Any) -> str:
        if not self._replies:
            raise InstrumentError("in-process instrument: nothing to read (no reply pending)")
        return self._replies.popleft()

    def flush_read_buffer(self) -> None:
        self._replies.clear()

    def close(self) -> None:
        self._replies.clear()


def in_process(conn: Any) -> list[str]:
    """Point every role of a connected *simulated* station at its emulator in this process
    (closing its socket); returns the roles switched. Roles that talk through another role
    (a 2182A via the 6221) share their host's instrument, so they follow it."""
    from drivers.registry import DRIVERS

    lab = getattr(conn, "lab", None)
    if lab is None:
        raise ValueError("in_process needs a simulated station (its virtual lab runs here)")
    switched = []
    for role, adapter in conn.roles.items():
        if DRIVERS[conn.resolved.roles[role].driver].via_role is not None:
            continue
        adapter.instrument.adapter.close()
        adapter.instrument.adapter = InProcessAdapter(lab.emulators[role])
        switched.append(role)
    return switched
