"""Loopback TCP serving of the emulators: one listening port per instrument, one thread per
client, line framing that accepts CR, LF or CRLF, and the generic faults applied on the wire.
The framing and the faults live in :class:`LineService`/:class:`LineSession`, which any
transport feeds bytes to (the pseudo-terminal link in :mod:`simulators.serial_link` too).

Bounded like an instrument's interface, whatever a client does: a line longer than
:data:`MAX_LINE_BYTES` is discarded with the emulator's input-overflow error (as a real input
buffer overruns), line splitting is linear in the bytes received, at most :data:`MAX_CLIENTS`
connections are served at once (a newcomer evicts the one idle longest, so a client that
connected and went silent cannot lock others out), and a client that stops reading its
replies is dropped after :data:`SEND_TIMEOUT_S`.
"""

from __future__ import annotations

import abc
import logging
import random
import re
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
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


class LineService:
    """What serving one emulator means on any transport: greeting, replies, generic faults.

    ``latency`` delays each reply, ``garbage`` replaces it with noise, ``no_reply`` swallows
    the line, ``frozen`` answers with the reply the same line got last time, ``drop`` ends
    the session (the transport decides what that looks like).
    """

    def __init__(self, emulator: LineEmulator, role: str, faults: FaultBoard) -> None:
        self.emulator = emulator
        self.role = role
        self.faults = faults
        self._rng = random.Random(zlib.crc32(role.encode()))
        self._last_replies: dict[str, list[str]] = {}

    def encode(self, lines: list[str]) -> bytes:
        """Reply lines as bytes on the wire, after the latency and garbage faults."""
        term = self.emulator.reply_termination
        latency = self.faults.active(self.role, "latency")
        if latency is not None:
            time.sleep(latency.value)
        if self.faults.is_active(self.role, "garbage"):
            lines = ["".join(self._rng.choice("#$%&?@!~^*") for _ in range(7))
                     for _ in lines]
        return b"".join(bytes(line) if isinstance(line, BinaryReply)
                        else (line + term).encode("latin-1", errors="replace")
                        for line in lines)

    def greeting(self) -> bytes:
        greet = self.emulator.greeting()
        return self.encode(greet) if greet else b""

    def overflow(self) -> bytes:
        """An overlong line was discarded: the emulator records its input-overflow error."""
        log.warning("%s: discarded a line longer than %d bytes", self.role, MAX_LINE_BYTES)
        overflow = getattr(self.emulator, "input_overflow", None)
        replies = overflow() if callable(overflow) else None
        return self.encode(replies) if replies else b""

    def line(self, raw: bytes) -> bytes | None:
        """Run one received line; the reply bytes, or None when the session must end."""
        line = raw.decode("latin-1").strip()
        if not line:
            return b""
        if self.faults.is_active(self.role, "drop"):
            return None
        if self.faults.is_active(self.role, "no_reply"):
            return b""
        if self.faults.is_active(self.role, "frozen"):
            replies = self._last_replies.get(line)
            return self.encode(replies) if replies else b""
        try:
            replies = self.emulator.handle(line)
        except Exception:  # noqa: BLE001 - an emulator bug must not kill the link
            log.exception("%s emulator failed on %r", self.role, line[:200])
            replies = []
        if not replies:
            return b""
        if len(line) <= FROZEN_CACHE_LINE_BYTES:
            if len(self._last_replies) >= FROZEN_CACHE_LINES:
                self._last_replies.clear()
            self._last_replies[line] = replies
        return self.encode(replies)


class LineSession:
    """One client's byte stream: split into lines (linear in the bytes received), overlong
    lines discarded, each line run through the service and its reply handed to ``send``."""

    def __init__(self, service: LineService, send: Callable[[bytes], None]) -> None:
        self.service = service
        self.send = send
        self.pending = bytearray()   # the start of a line whose terminator has not come yet
        self.discarding = False      # inside a line that overran MAX_LINE_BYTES

    def feed(self, chunk: bytes) -> bool:
        """Handle received bytes; False when the session must end (``drop`` fault)."""
        start = 0
        for match in _TERMINATOR.finditer(chunk):
            piece = chunk[start:match.start()]
            start = match.end()
            if self.discarding:
                self.discarding = False  # the overlong line ends here; nothing to run
                continue
            if len(self.pending) + len(piece) > MAX_LINE_BYTES:
                self.pending.clear()
                self._send(self.service.overflow())
                continue
            self.pending += piece
            raw = bytes(self.pending)
            self.pending.clear()
            reply = self.service.line(raw)
            if reply is None:
                return False
            self._send(reply)
        rest = chunk[start:]
        if self.discarding:
            return True
        if len(self.pending) + len(rest) > MAX_LINE_BYTES:
            self.pending.clear()
            self.discarding = True
            self._send(self.service.overflow())
        else:
            self.pending += rest
        return True

    def _send(self, data: bytes) -> None:
        if data:
            self.send(data)


class LoopbackServer(abc.ABC):
    """What every emulated instrument's TCP port shares: a listening socket on loopback, an
    accept loop, one thread per client, a registry of clients (each with its last activity;
    beyond ``max_clients`` a newcomer evicts the one idle longest) and a stop that closes
    them all. Subclasses serve a connection (:meth:`serve`) and may refuse one at accept
    (:meth:`refuse`, e.g. the ``drop`` fault)."""

    #: prefix of the accept and client thread names
    thread_name = "sim"
    listen_backlog = LISTEN_BACKLOG
    #: connections served at once (None: no bound)
    max_clients: int | None = None
    #: bytes read per recv()
    recv_bytes = RECV_BYTES

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self._requested_port = port
        self.port = port
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: dict[socket.socket, float] = {}  # connection -> last activity
        self._conn_lock = threading.Lock()
        self._stopping = threading.Event()

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        sock.listen(self.listen_backlog)
        sock.settimeout(0.2)
        self._sock = sock
        self.port = sock.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, name=f"{self.thread_name}-accept",
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

    def refuse(self) -> bool:
        """True to close a new connection at once (the ``drop`` fault)."""
        return False

    @abc.abstractmethod
    def serve(self, conn: socket.socket) -> None:
        """Serve one client until it or the server ends (runs in the client's thread)."""

    def chunks(self, conn: socket.socket) -> Iterator[bytes]:
        """What the client sends, as it arrives, until it closes or the server stops; each
        chunk marks the client active."""
        conn.settimeout(0.2)
        while not self._stopping.is_set():
            try:
                chunk = conn.recv(self.recv_bytes)
            except TimeoutError:
                continue
            if not chunk:
                return
            self.touch(conn)
            yield chunk

    def touch(self, conn: socket.socket) -> None:
        """The client was active now (the eviction order)."""
        with self._conn_lock:
            if conn in self._conns:
                self._conns[conn] = time.monotonic()

    def forget(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._conns.pop(conn, None)

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
            if self.refuse():
                _close(conn)
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._conn_lock:
                idle = (min(self._conns, key=self._conns.__getitem__)
                        if self.max_clients is not None
                        and len(self._conns) >= self.max_clients else None)
                if idle is not None:  # no longer served: its thread ends on the closed socket
                    del self._conns[idle]
                self._conns[conn] = time.monotonic()
            if idle is not None:
                log.info("%s: %d clients, dropping the one idle longest", self.thread_name,
                         self.max_clients)
                _close(idle)
            t = threading.Thread(target=self._serve_and_close, args=(conn,), daemon=True,
                                 name=f"{self.thread_name}-client")
            t.start()
            self._threads = [x for x in self._threads if x.is_alive()] + [t]

    def _serve_and_close(self, conn: socket.socket) -> None:
        try:
            self.serve(conn)
        finally:
            self.forget(conn)
            _close(conn)


class InstrumentServer(LoopbackServer):
    """Serve one emulator on 127.0.0.1:port. ``port=0`` picks a free ephemeral port."""

    max_clients = MAX_CLIENTS

    def __init__(self, emulator: LineEmulator, role: str, faults: FaultBoard,
                 port: int = 0, host: str = "127.0.0.1") -> None:
        super().__init__(port, host)
        self.emulator = emulator
        self.role = role
        self.faults = faults
        self.service = LineService(emulator, role, faults)
        self.thread_name = f"sim-{role}"

    def refuse(self) -> bool:
        return self.faults.is_active(self.role, "drop")

    def _sender(self, conn: socket.socket) -> Callable[[bytes], None]:
        def send(data: bytes) -> None:
            conn.settimeout(SEND_TIMEOUT_S)  # a client that never reads cannot hold us
            try:
                conn.sendall(data)
            finally:
                conn.settimeout(0.2)
        return send

    def serve(self, conn: socket.socket) -> None:
        session = LineSession(self.service, self._sender(conn))
        try:
            greet = self.service.greeting()
            if greet:
                session.send(greet)
            for chunk in self.chunks(conn):
                if not session.feed(chunk):
                    return
        except OSError:
            return


def _close(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        conn.close()
    except OSError:
        pass
