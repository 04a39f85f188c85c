"""SIGTERM and SIGHUP handled like an abort, in one place for every command.

``kill PID``, a logout, ``systemctl stop`` or a batch system's time limit send SIGTERM or
SIGHUP; Python's default is to die at once, leaving the current source on and the run file
"running". Inside :func:`termination_signals` the first such signal instead

* calls ``on_signal(reason)`` when given (the Qt window: abort the run, then quit), or
* raises :class:`Terminated` (a ``KeyboardInterrupt``) in the main thread, so the code that
  already turns Ctrl-C into "abort, safe state, close the file" does the same for it.

Every later signal is logged and ignored (until the process exits, so a kill that arrives as
the command returns does not change its exit code): a second ``kill`` cannot cut the safe
state short, and inside :func:`shielded` (the main thread's own safe state) even the first
one waits until the block is done. The command then exits with :func:`exit_code`
(128 + signal number).
Ctrl-C (SIGINT) is left to the commands: once = stop, twice = abort.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

HANDLED = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None))
                if s is not None)


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by the first SIGTERM/SIGHUP; ``reason`` names the signal."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.reason = f"terminated by {self.name}"
        super().__init__(self.reason)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _State:
    def __init__(self) -> None:
        self.depth = 0
        self.previous: dict[int, Any] = {}
        self.on_signal: Callable[[str], None] | None = None
        self.received: int | None = None
        self.raised = False
        self.shield_depth = 0


_state = _State()


def _handler(signum: int, frame: Any) -> None:
    name = signal.Signals(signum).name
    if _state.received is not None:
        log.warning("%s received again: ignored while the run ends in the safe state", name)
        return
    _state.received = signum
    log.warning("%s received: aborting into the safe state", name)
    if _state.on_signal is not None:
        _state.on_signal(Terminated(signum).reason)
        return
    if _state.shield_depth == 0:
        _state.raised = True
        raise Terminated(signum)


@contextlib.contextmanager
def termination_signals(on_signal: Callable[[str], None] | None = None) -> Iterator[None]:
    """Handle SIGTERM/SIGHUP as an abort inside the block (see the module text).

    Nested uses share the outermost installation (its ``on_signal`` stays); outside the main
    thread this does nothing (Python delivers signals to the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    outermost = _state.depth == 0
    if outermost:
        _state.received, _state.raised, _state.on_signal = None, False, on_signal
        _state.previous = {s: signal.signal(s, _handler) for s in HANDLED}
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
        if outermost:
            for signum, previous in _state.previous.items():
                # after a signal, later ones stay ignored until exit (SIG_IGN: also while the
                # interpreter shuts down, when Python's own handlers are already gone)
                signal.signal(signum, previous if _state.received is None else signal.SIG_IGN)
            _state.previous = {}
            _state.on_signal = None


@contextlib.contextmanager
def shielded(raise_after: bool = True) -> Iterator[None]:
    """A block the first signal must not interrupt (a safe state run in the main thread);
    a signal that came during it is raised when it ends (``raise_after``), or only recorded
    for :func:`exit_code` (a last safe state, after which the command ends anyway)."""
    _state.shield_depth += 1
    try:
        yield
    finally:
        _state.shield_depth -= 1
    if (raise_after and _state.shield_depth == 0 and _state.received is not None
            and not _state.raised and _state.on_signal is None and _state.depth > 0):
        _state.raised = True
        raise Terminated(_state.received)


def received() -> str | None:
    """The name of the termination signal received inside the current block, if any."""
    return signal.Signals(_state.received).name if _state.received is not None else None


def exit_code(default: int) -> int:
    """128 + the signal number after a termination signal, else ``default``."""
    return 128 + _state.received if _state.received is not None else default
