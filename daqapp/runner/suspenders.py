"""Suspend rules (Bluesky-style suspenders): conditions that pause acquisition until they clear.

A suspender is any object with ``check(station) -> str | None`` (the reason to hold, or None)
and a ``timeout`` in seconds (None: wait for ever). :class:`~daqapp.runner.control.RunControl`
evaluates them at the procedure's checkpoints; a condition that does not clear in time fails
the run with :class:`~daqapp.runner.control.SuspendTimeout`. A condition that can never clear by
waiting (a quenched magnet) raises at once: :class:`SuspenderFault`, or the
:class:`~daqapp.runner.watchdogs.RunFault` of a fault check, which names the cause.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from typing import Any

from daqapp.errors import ConfigError
from daqapp.runner.roles import station_role
from daqapp.runner.watchdogs import check_quench


class SuspenderFault(RuntimeError):
    """The watched condition is a fault that waiting cannot fix: fail the run now."""


class Suspender(abc.ABC):
    """Base class: subclasses implement :meth:`reason`; ``timeout`` None waits for ever."""

    def __init__(self, timeout: float | None = None) -> None:
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"suspender timeout = {timeout!r} s must be > 0 (or None)")
        self.timeout = timeout

    def check(self, station: Any) -> str | None:
        return self.reason(station)

    @abc.abstractmethod
    def reason(self, station: Any) -> str | None:
        """Why acquisition must wait now (one line for the log), or None to go on."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(timeout={self.timeout})"


class TemperatureBandSuspender(Suspender):
    """Hold acquisition while the sample temperature is outside ``target ± band``.

    ``target_k`` None follows the controller's setpoint (what a temperature series wants).
    After the temperature comes back, acquisition resumes only once it has stayed in band for
    ``hold_s`` seconds, so a spectrum is not taken on the tail of an excursion.
    """

    def __init__(self, band_k: float, target_k: float | None = None, hold_s: float = 0.0,
                 timeout: float | None = 1800.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(timeout)
        if not band_k > 0:
            raise ConfigError(f"temperature band = {band_k!r} K must be > 0")
        self.band_k = float(band_k)
        self.target_k = target_k
        self.hold_s = float(hold_s)
        self.clock = clock
        self._in_band_since: float | None = None
        self._was_out = False

    def reason(self, station: Any) -> str | None:
        controller = station_role(station, "temperature")
        temperature = controller.temperature()
        target = self.target_k if self.target_k is not None else controller.setpoint()
        if abs(temperature - target) > self.band_k:
            self._was_out = True
            self._in_band_since = None
            return (f"temperature {temperature:.4g} K outside {target:.4g} ± "
                    f"{self.band_k:g} K")
        if self._was_out and self.hold_s > 0:
            now = self.clock()
            if self._in_band_since is None:
                self._in_band_since = now
            if now - self._in_band_since < self.hold_s:
                return (f"temperature {temperature:.4g} K back in band, holding "
                        f"{self.hold_s:g} s before resuming")
        self._was_out = False
        return None


class MagnetHoldingSuspender(Suspender):
    """Hold acquisition while the magnet is ramping (not at its target); fail on a quench.

    ``timeout`` defaults to 1800 s like the temperature band's: a magnet that never comes
    back to holding must end the run, not hold it for ever."""

    def __init__(self, timeout: float | None = 1800.0) -> None:
        super().__init__(timeout)

    def reason(self, station: Any) -> str | None:
        magnet = station_role(station, "magnet")
        check_quench(magnet)
        if not magnet.is_holding():
            return (f"magnet not holding: {magnet.field():.4g} T, target "
                    f"{magnet.target_field():.4g} T")
        return None
