"""The virtual lab: sample, cryostat and magnet physics; instrument emulators on loopback TCP.

``from simulators import VirtualLab`` is the entry point (the README's); it is loaded on
first use so importing one emulator module does not start the whole lab's imports.
"""

from __future__ import annotations

from typing import Any

__all__ = ["VirtualLab"]


def __getattr__(name: str) -> Any:
    if name == "VirtualLab":
        from simulators.lab import VirtualLab

        return VirtualLab
    raise AttributeError(f"module 'simulators' has no attribute {name!r}")
