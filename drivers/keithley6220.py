"""Keithley 6220 DC current source: the 6221 driver without what the 6220 lacks.

The 6220 shares the 6221's DC source, delta mode with a 2182A over RS-232/Trigger Link,
buffer and status commands (pymeasure's ``Keithley6221`` plus this package's additions in
:mod:`drivers.keithley6221`), but has no waveform generator, no LAN port, and here no
differential-conductance (DCON) mode: those are refused before anything is sent, so a DCON
procedure queued on a 6220 stops with one clear line instead of an instrument error mid-run.
"""

from __future__ import annotations

from typing import Any

from daqapp.errors import ConfigError
from drivers.keithley6221 import DconSweep, Keithley6221, Keithley6221CurrentSource

NO_DCON = ("the Keithley 6220 has no differential-conductance (DCON) mode; measure dI/dV "
           "with the lock-in (didv-lockin) or on a 6221")


class Keithley6220(Keithley6221):
    """Keithley 6220: DC and delta mode; DCON and waveform calls raise ConfigError."""

    def __init__(self, adapter, name: str = "Keithley 6220", **kwargs):
        super().__init__(adapter, name, **kwargs)

    def configure_dcon(self, sweep: DconSweep) -> None:
        raise ConfigError(NO_DCON)

    def dcon_arm(self) -> None:
        raise ConfigError(NO_DCON)

    def waveform_arm(self) -> None:
        raise ConfigError("the Keithley 6220 has no waveform generator (a 6221 feature)")

    waveform_start = waveform_arm

    def configure_delta(self, high_a: float, delay_s: float = 0.002, count: int = 1000,
                        compliance_abort: bool = True) -> None:
        """Delta mode with the 2182A: ±``high_a`` alternating, ``count`` readings, buffer
        sized to match (pymeasure's delta properties, one transaction)."""
        with self.lock:
            self.delta_high_source = high_a
            self.delta_delay = delay_s
            self.delta_cycles = count
            self.delta_measurement_sets = 1
            self.delta_compliance_abort_enabled = compliance_abort
            self.trace_clear()
            self.trace_points = count


class Keithley6220CurrentSource(Keithley6221CurrentSource):
    """The current-source role on a 6220 (same limits and safe state as the 6221)."""

    driver_class = Keithley6220

    def configure_dcon(self, sweep: DconSweep) -> None:
        raise ConfigError(NO_DCON)

    def snapshot(self) -> dict[str, Any]:
        return {"model": "6220", **super().snapshot()}
