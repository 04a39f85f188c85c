"""Loopback TCP serving of the emulators: one listening port per instrument, one thread per
client, line framing that accepts CR, LF or CRLF, and the generic faults applied on the wire.

Bounded like an instrument's interface, whatever a client does: a line longer than
:data:`MAX_LINE_BYTES` is discarded with the emulator's input-overflow error (as a real input
buffer overruns), line splitting is linear in the bytes received, at most :data:`MAX_CLIENTS`
connections are served at once (a newcomer evicts the one idle longest, so a client that
connected and went silent cannot lock others out), and a client that stops reading its
replies is dropped after :data:`SEND_TIMEOUT_S`.
"""

from __future__ import annotations

import logging
import random
import re
import socket
import threading
import time
import zlib
from typing import Protocol

from simulators.faults import FaultBoard

log = logging.getLogger(__name__)

#: Longest line (bytes, without its terminator) an emulator accepts; longer ones are dropped.
MAX_LINE_BYTES = 64 * 1024
#: Pending connections the listening socket queues (a burst of clients is not refused).
LISTEN_BACKLOG = 256
#: Connections served at once; one more evicts the client idle the longest.
MAX_CLIENTS = 32
#: Seconds a reply may wait for a client that does not read before it is dropped.
SEND_TIMEOUT_S = 5.0
#: Bytes read per recv().
RECV_BYTES = 65536
#: Replies remembered per line for the ``frozen`` fault (short lines only, bounded count).
FROZEN_CACHE_LINES = 512
FROZEN_CACHE_LINE_BYTES = 256
_TERMINATOR = re.compile(rb"[\r\n]")


class BinaryReply(bytes):
    """A reply sent as exactly these bytes, without the emulator's reply terminator.

    A binary block (SR830 ``TRCB?``/``TRCL?``) has no terminator on the real instrument: on GPIB
    its last byte carries EOI. A socket has no EOI, so nothing at all follows the block.
    """


class LineEmulator(Protocol):
    """What the server needs from an emulator."""

    reply_termination: str

    def greeting(self) -> list[str]:
        """Lines sent to a client as soon as it connects (AMI 430); usually empty."""

    def handle(self, line: str) -> list[str]:
        """Process one received line (may hold several ``;`` commands); return reply lines
        (text, sent with ``reply_termination``, or :class:`BinaryReply` blocks, sent bare)."""


class InstrumentServer:
    """Serve one emulator on 127.0.0.1:port. ``port=0`` picks a free ephemeral port."""

    def __init__(self, emulator: LineEmulator, role: str, faults: FaultBoard,
                 port: int = 0, host: str = "127.0.0.1") -> None:
        self.emulator = emulator
        self.role = role
        self.faults = faults
        self.host = host
        self._requested_port = port
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: dict[socket.socket, float] = {}  # connection -> last activity
        self._conn_lock = threading.Lock()
        self._stopping = threading.Event()
        self._rng = random.Random(zlib.crc32(role.encode()))
        self._last_replies: dict[str, list[str]] = {}
        self.port = port

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        sock.listen(LISTEN_BACKLOG)
        sock.settimeout(0.2)
        self._sock = sock
        self.port = sock.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, name=f"sim-{self.role}-accept",
                             daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self, wait: bool = True) -> None:
        """Close the port and every client; ``wait`` joins the threads (at most 2 s each)."""
        self._stopping.set()
        if self._sock is not None:
            _close(self._sock)          # shutdown wakes a blocked accept() at once on Linux
        self.drop_clients()
        if wait:
            self.join()

    def join(self) -> None:
        for t in self._threads:
            t.join(timeout=2.0)

    def drop_clients(self) -> None:
        """Close every client connection (what a dropped link looks like to the client)."""
        with self._conn_lock:
            conns = list(self._conns)
        for c in conns:
            _close(c)

    # ------------------------------------------------------------------------ internals
    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.faults.is_active(self.role, "drop"):
                _close(conn)
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._conn_lock:
                idle = (min(self._conns, key=self._conns.__getitem__)
                        if len(self._conns) >= MAX_CLIENTS else None)
                if idle is not None:  # no longer served: its thread ends on the closed socket
                    del self._conns[idle]
                self._conns[conn] = time.monotonic()
            if idle is not None:
                log.info("%s: %d clients, dropping the one idle longest", self.role,
                         MAX_CLIENTS)
                _close(idle)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                 name=f"sim-{self.role}-client")
            t.start()
            self._threads = [x for x in self._threads if x.is_alive()] + [t]

    def _send(self, conn: socket.socket, lines: list[str]) -> None:
        term = self.emulator.reply_termination
        latency = self.faults.active(self.role, "latency")
        if latency is not None:
            time.sleep(latency.value)
        if self.faults.is_active(self.role, "garbage"):
            lines = ["".join(self._rng.choice("#$%&?@!~^*") for _ in range(7))
                     for _ in lines]
        data = b"".join(bytes(line) if isinstance(line, BinaryReply)
                        else (line + term).encode("latin-1", errors="replace")
                        for line in lines)
        if data:
            conn.settimeout(SEND_TIMEOUT_S)  # a client that never reads cannot hold us
            try:
                conn.sendall(data)
            finally:
                conn.settimeout(0.2)

    def _serve(self, conn: socket.socket) -> None:
        pending = bytearray()   # the start of a line whose terminator has not come yet
        discarding = False      # inside a line that overran MAX_LINE_BYTES
        try:
            greet = self.emulator.greeting()
            if greet:
                self._send(conn, greet)
            conn.settimeout(0.2)
            while not self._stopping.is_set():
                try:
                    chunk = conn.recv(RECV_BYTES)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                with self._conn_lock:
                    if conn in self._conns:
                        self._conns[conn] = time.monotonic()
                # each received byte is looked at once: the chunk is split, not the buffer
                start = 0
                for match in _TERMINATOR.finditer(chunk):
                    piece = chunk[start:match.start()]
                    start = match.end()
                    if discarding:
                        discarding = False  # the overlong line ends here; nothing to run
                        continue
                    if len(pending) + len(piece) > MAX_LINE_BYTES:
                        pending.clear()
                        self._overflow(conn)
                        continue
                    pending += piece
                    raw = bytes(pending)
                    pending.clear()
                    if not self._line(conn, raw):
                        return
                rest = chunk[start:]
                if discarding:
                    continue
                if len(pending) + len(rest) > MAX_LINE_BYTES:
                    pending.clear()
                    discarding = True
                    self._overflow(conn)
                else:
                    pending += rest
        except OSError:
            return
        finally:
            with self._conn_lock:
                self._conns.pop(conn, None)
            _close(conn)

    def _overflow(self, conn: socket.socket) -> None:
        """An overlong line was discarded: the emulator records its input-overflow error."""
        log.warning("%s: discarded a line longer than %d bytes", self.role, MAX_LINE_BYTES)
        overflow = getattr(self.emulator, "input_overflow", None)
        replies = overflow() if callable(overflow) else None
        if replies:
            self._send(conn, replies)

    def _line(self, conn: socket.socket, raw: bytes) -> bool:
        """Run one received line; False when the connection must close (``drop`` fault)."""
        line = raw.decode("latin-1").strip()
        if not line:
            return True
        if self.faults.is_active(self.role, "drop"):
            return False
        if self.faults.is_active(self.role, "no_reply"):
            return True
        if self.faults.is_active(self.role, "frozen"):
            replies = self._last_replies.get(line)
            if replies:
                self._send(conn, replies)
            return True
        try:
            replies = self.emulator.handle(line)
        except Exception:  # noqa: BLE001 - an emulator bug must not kill the link
            log.exception("%s emulator failed on %r", self.role, line[:200])
            replies = []
        if replies:
            if len(line) <= FROZEN_CACHE_LINE_BYTES:
                if len(self._last_replies) >= FROZEN_CACHE_LINES:
                    self._last_replies.clear()
                self._last_replies[line] = replies
            self._send(conn, replies)
        return True


def _close(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        conn.close()
    except OSError:
        pass
