"""Serving an emulator on a pseudo-terminal: the RS-232 path of a real Oxford instrument.

``os.openpty()`` gives a master/slave pair; a thread reads the master and hands the bytes to
the same :class:`simulators.server.LineSession` the TCP server uses (framing, overlong lines,
the generic faults), so a driver opening ``ASRL/dev/pts/N::INSTR`` through pyvisa-py (which
sets the baud rate, data bits, parity and stop bits on the slave, as on a real port) meets the
instrument it would meet on a socket. The slave is put in raw mode first: a terminal's line
discipline would otherwise echo commands and turn CR into LF.

A serial line has no connection to drop: the ``drop`` fault makes the instrument deaf (input
discarded, nothing sent). :meth:`PtyServer.unplug` is a lost device: the pty is closed and its
``/dev/pts/N`` disappears, as a USB-serial adapter pulled out mid-run does.
:meth:`PtyServer.corrupt_next_reply` is line noise on the cable: the next reply arrives
garbled, the ones after it clean.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import tty

from simulators.faults import FaultBoard
from simulators.server import RECV_BYTES, LineEmulator, LineService, LineSession

log = logging.getLogger(__name__)

#: Seconds the reader thread waits in select() before it looks at the stop flag.
POLL_S = 0.1


class PtyServer:
    """Serve one emulator on a fresh pseudo-terminal; :attr:`device` is the slave's path."""

    def __init__(self, emulator: LineEmulator, role: str, faults: FaultBoard) -> None:
        self.emulator = emulator
        self.role = role
        self.faults = faults
        self.service = LineService(emulator, role, faults)
        self.device = ""
        self._master: int | None = None
        self._slave: int | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._corrupt = 0
        self._write_lock = threading.Lock()

    @property
    def resource(self) -> str:
        """The VISA resource of the slave end, e.g. ``ASRL/dev/pts/5::INSTR``."""
        return f"ASRL{self.device}::INSTR"

    def start(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)           # no echo, no CR -> LF, no line buffering
        self._master, self._slave = master, slave
        # the server keeps the slave open: with no process holding it, reads on the master
        # would fail with EIO between two clients
        self.device = os.ttyname(slave)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, name=f"sim-{self.role}-pty",
                                        daemon=True)
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        """Close the pseudo-terminal (the device node goes away); idempotent."""
        self._stopping.set()
        if wait:
            self.join()

    def join(self) -> None:
        """Wait for the reader thread, then close the pty (after ``stop``)."""
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._close_fds()

    def unplug(self) -> None:
        """A lost device: the link closes under the client mid-run."""
        log.info("%s: serial device %s unplugged", self.role, self.device)
        self.stop()

    def drop_clients(self) -> None:
        """Nothing to drop on a serial line (the ``drop`` fault makes it deaf instead)."""

    def corrupt_next_reply(self, count: int = 1) -> None:
        """Line noise: garble the next ``count`` replies."""
        with self._write_lock:
            self._corrupt += int(count)

    # ------------------------------------------------------------------ internals
    def _close_fds(self) -> None:
        for name in ("_master", "_slave"):
            fd = getattr(self, name)
            setattr(self, name, None)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _send(self, data: bytes) -> None:
        master = self._master
        if master is None:
            return
        with self._write_lock:
            if self._corrupt:
                self._corrupt -= 1
                term = self.emulator.reply_termination.encode()
                data = bytes(b ^ 0x5A if b not in term else b for b in data)
            view = memoryview(data)
            while view:
                written = os.write(master, view)
                view = view[written:]

    def _serve(self, *_: object) -> None:
        session = LineSession(self.service, self._send)
        try:
            greet = self.service.greeting()
            if greet:
                self._send(greet)
            while not self._stopping.is_set():
                master = self._master
                if master is None:
                    return
                ready, _, _ = select.select([master], [], [], POLL_S)
                if not ready:
                    continue
                chunk = os.read(master, RECV_BYTES)
                if not chunk:
                    continue
                if self.faults.is_active(self.role, "drop"):
                    session.pending.clear()
                    continue
                session.feed(chunk)
        except OSError as exc:  # the pty was closed under us (unplug/stop)
            if not self._stopping.is_set():
                log.warning("%s: serial link ended: %s", self.role, exc)
