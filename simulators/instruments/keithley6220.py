"""Keithley 6220 DC current source: the 6221 emulator without DCON and the waveform generator.

Same DC source, compliance, delta mode with the linked 2182A and buffer as the 6221 emulator
(one bench, one sample); the differential-conductance (``SOUR:DCON:*``), waveform
(``SOUR:WAVE:*``) and pulse-delta (``SOUR:PDEL:*``) headers do not exist on it, so they are
refused as SCPI error -113 (undefined header), as a 6220 refuses them.
"""

from __future__ import annotations

from collections.abc import Callable

from simulators.instruments.keithley6221 import Keithley6221Emulator

IDN = "KEITHLEY INSTRUMENTS INC.,MODEL 6220,4087654,D03  /700x "
ABSENT_HEADERS = ("DCONductance", ":WAVE", ":PDELta")


class Keithley6220Emulator(Keithley6221Emulator):
    idn = IDN

    def add(self, pattern: str, setter: Callable | None = None,
            getter: Callable | None = None) -> None:
        if any(header in pattern for header in ABSENT_HEADERS):
            return
        super().add(pattern, setter, getter)
