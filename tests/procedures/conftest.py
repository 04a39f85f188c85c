"""Procedures end to end against the virtual lab: drivers over loopback sockets, HDF5 files.

Each test connects a simulated station (the in-process virtual lab at a high speed factor), runs
one procedure through ``daqapp.runner.Run`` and reads the run file back with the storage reader.
"""

from __future__ import annotations

import pytest

from daqapp.runner import Run
from daqapp.station import Station
from daqapp.storage import open_run


@pytest.fixture
def lab_station():
    """``lab_station(preset=..., speed=..., wiring={...}, limits={...})`` -> connected station."""
    opened = []

    def connect(preset: str = "la3ni2o7-cell2", speed: float = 2000.0, **tables):
        conn = Station.simulated(preset=preset, speed=speed, seed=1, **tables).connect()
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


@pytest.fixture
def run_procedure(tmp_path):
    """Run a procedure on a station into ``tmp_path``; returns (result, reader, events)."""
    readers = []

    def run(procedure, conn, listeners=(), **kwargs):
        events = []
        run = Run(procedure, station=conn, output_dir=tmp_path,
                  metadata={"sample": "virtual", "operator": "pytest"}, **kwargs)
        run.subscribe(events.append)
        for listener in listeners:
            run.subscribe(listener)
        result = run.execute()
        reader = open_run(result.path) if result.path else None
        if reader is not None:
            readers.append(reader)
        return result, reader, events

    yield run
    for reader in readers:
        reader.close()
