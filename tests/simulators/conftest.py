"""Fixtures for the virtual-lab tests: a started lab and pyvisa-py sessions to it."""

from __future__ import annotations

import pytest
import pyvisa

from simulators.lab import VirtualLab


@pytest.fixture
def lab():
    """A lab at 200× on ephemeral ports (pymeasure drivers over real sockets)."""
    with VirtualLab(preset="la3ni2o7-cell2", speed=200.0, seed=1) as lab:
        yield lab


@pytest.fixture
def frozen_lab():
    """A lab whose clock only moves when the test (or an instrument wait) advances it.

    Physics tests drive the emulators in-process and jump the clock, so they are fast and do
    not depend on how busy the machine is.
    """
    lab = VirtualLab(preset="la3ni2o7-cell2", speed=1e-6, seed=3)
    yield lab
    lab.stop()


@pytest.fixture(scope="session")
def rm():
    manager = pyvisa.ResourceManager("@py")
    yield manager
    manager.close()


def open_session(rm, endpoint, timeout_ms: int = 3000):
    """A pyvisa-py session to an endpoint with the instrument's terminators."""
    return rm.open_resource(endpoint.resource, read_termination=endpoint.read_termination,
                            write_termination=endpoint.write_termination, timeout=timeout_ms)


def ask(emulator, line: str) -> str:
    """One reply line from an emulator (in-process, no socket)."""
    replies = emulator.handle(line)
    assert len(replies) == 1, f"{line!r} gave {replies!r}"
    return replies[0]
