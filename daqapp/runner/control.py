"""Stop, pause, resume, abort and suspend: the verbs an operator (or a rule) applies to a run.

Stop and abort are different (as in Bluesky): ``stop()`` lets the procedure finish the point it
is taking, save and shut down; ``abort()`` makes the next :meth:`RunControl.checkpoint` (or an
interruptible :meth:`RunControl.sleep`) raise :class:`RunAborted` so the run goes straight to the
safe state. Pause and suspend both block the procedure at its next checkpoint; a pause lasts
until ``resume()``, a suspension until every suspender's condition clears (or its timeout
fails the run).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from daqapp.runner.events import PAUSED, RUNNING, SUSPENDED
from daqapp.runner.roles import lab_time

log = logging.getLogger(__name__)


class RunAborted(Exception):
    """Raised inside the procedure when the operator aborts: unwinds to the safe state."""


class SuspendTimeout(RuntimeError):
    """A suspender's condition did not clear within its timeout: the run (or step) fails."""


class RunControl:
    """Thread-safe run state shared by the acquisition thread and whoever controls the run.

    ``station`` is what suspenders read; ``on_status(status, reason)`` is called (from the
    acquisition thread) whenever the run pauses, suspends or resumes.
    """

    #: Default seconds of instrument time (the station's clock: the virtual lab's, or the wall
    #: clock on a real station) between suspender checks while running. On the instruments'
    #: clock, not the wall clock, so a check is not skipped because the bus answered quickly:
    #: a condition that lasts this long is always seen before the next point (instrument
    #: reads cost time, so points closer than this share one check).
    CHECK_INTERVAL = 0.5
    #: Seconds between polls while paused or suspended.
    POLL_INTERVAL = 0.05

    def __init__(self, suspenders: Iterable[Any] = (), station: Any = None,
                 on_status: Callable[[str, str], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._abort = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._wake = threading.Event()
        self.suspenders: list[Any] = list(suspenders)
        self.station = station
        self.on_status = on_status
        self.check_interval = self.CHECK_INTERVAL
        self._last_check = -float("inf")
        self.suspended_seconds = 0.0
        self.abort_reason: str | None = None

    # ---- verbs (any thread) -------------------------------------------------------------
    def stop(self) -> None:
        """Finish the current point, save, shut down; the run ends with status "stopped"."""
        self._stop.set()
        self._resume.set()
        self._wake.set()

    def abort(self, reason: str | None = None) -> None:
        """Stop at once and go to the safe state; the run ends with status "aborted".

        ``reason`` (e.g. "SIGTERM") becomes the run's error text; the first one given wins."""
        if reason and self.abort_reason is None:
            self.abort_reason = reason
        self._abort.set()
        self._resume.set()
        self._wake.set()

    def pause(self) -> None:
        """Block the procedure at its next checkpoint until :meth:`resume`."""
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()
        self._wake.set()

    def add_suspender(self, suspender: Any) -> None:
        with self._lock:
            self.suspenders.append(suspender)

    def remove_suspender(self, suspender: Any) -> None:
        with self._lock:
            if suspender in self.suspenders:
                self.suspenders.remove(suspender)

    # ---- state --------------------------------------------------------------------------
    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def abort_requested(self) -> bool:
        return self._abort.is_set()

    @property
    def paused(self) -> bool:
        return not self._resume.is_set()

    def should_stop(self) -> bool:
        """pymeasure's ``Procedure.should_stop`` contract: True after stop or abort."""
        return self._stop.is_set() or self._abort.is_set()

    # ---- acquisition thread -------------------------------------------------------------
    def checkpoint(self) -> bool:
        """Call between points. Blocks while paused or suspended; raises :class:`RunAborted`
        on abort and :class:`SuspendTimeout` when a suspension outlasts its timeout.

        Returns False when the operator asked to stop (finish up and return), else True.
        """
        self._raise_if_aborted()
        if self.paused:
            self._status(PAUSED, "paused by operator")
            while not self._resume.wait(self.POLL_INTERVAL):
                self._raise_if_aborted()
            self._raise_if_aborted()
            self._status(RUNNING, "resumed by operator")
        self._check_suspenders()
        return not self._stop.is_set()

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (settling), returning early only on abort (then raising)."""
        deadline = time.monotonic() + max(0.0, seconds)
        while True:
            self._raise_if_aborted()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wake.wait(min(left, 0.1))
            self._wake.clear()

    def _raise_if_aborted(self) -> None:
        if self._abort.is_set():
            raise RunAborted(self.abort_reason or "aborted by operator")

    def _active_reason(self, force: bool = False) -> tuple[Any, str] | None:
        now = lab_time(self.station)
        if not force and now - self._last_check < self.check_interval:
            return None
        self._last_check = now
        with self._lock:
            suspenders = list(self.suspenders)
        for suspender in suspenders:
            reason = suspender.check(self.station)
            if reason:
                return suspender, reason
        return None

    def _check_suspenders(self) -> None:
        if not self.suspenders:
            return
        hit = self._active_reason()
        if hit is None:
            return
        suspender, reason = hit
        started = time.monotonic()
        log.warning("suspended: %s", reason)
        self._status(SUSPENDED, reason)
        timeout = getattr(suspender, "timeout", None)
        while True:
            self._raise_if_aborted()
            if self._stop.is_set():
                break  # stop wins over a suspension: finish up with what we have
            waited = time.monotonic() - started
            if timeout is not None and waited > timeout:
                self.suspended_seconds += waited
                raise SuspendTimeout(f"suspended for {waited:.0f} s, longer than the "
                                     f"{timeout:g} s allowed: {reason}")
            self._wake.wait(self.POLL_INTERVAL)
            self._wake.clear()
            hit = self._active_reason(force=True)
            if hit is None:
                break
            suspender, reason = hit
            timeout = getattr(suspender, "timeout", None)
        waited = time.monotonic() - started
        self.suspended_seconds += waited
        log.info("resumed after %.1f s suspended", waited)
        self._status(RUNNING, f"condition cleared after {waited:.1f} s")

    def _status(self, status: str, reason: str) -> None:
        if self.on_status is not None:
            self.on_status(status, reason)
