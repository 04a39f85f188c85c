"""Loopback TCP serving of the emulators: one listening port per instrument, one thread per
client, line framing that accepts CR, LF or CRLF, and the generic faults applied on the wire.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
import zlib
from typing import Protocol

from simulators.faults import FaultBoard

log = logging.getLogger(__name__)


class LineEmulator(Protocol):
    """What the server needs from an emulator."""

    reply_termination: str

    def greeting(self) -> list[str]:
        """Lines sent to a client as soon as it connects (AMI 430); usually empty."""

    def handle(self, line: str) -> list[str]:
        """Process one received line (may hold several ``;`` commands); return reply lines."""


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
        self._conns: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self._stopping = threading.Event()
        self._rng = random.Random(zlib.crc32(role.encode()))
        self.port = port

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        sock.listen(8)
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
        with self._conn_lock:
            conns = list(self._conns)
        for c in conns:
            _close(c)
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
                self._conns.add(conn)
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
        data = "".join(line + term for line in lines).encode("latin-1", errors="replace")
        if data:
            conn.sendall(data)

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            greet = self.emulator.greeting()
            if greet:
                self._send(conn, greet)
            conn.settimeout(0.2)
            while not self._stopping.is_set():
                try:
                    chunk = conn.recv(4096)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                buffer += chunk
                while True:
                    idx = [i for i in (buffer.find(b"\n"), buffer.find(b"\r")) if i >= 0]
                    if not idx:
                        break
                    cut = min(idx)
                    raw, buffer = buffer[:cut], buffer[cut + 1:]
                    line = raw.decode("latin-1").strip()
                    if not line:
                        continue
                    if self.faults.is_active(self.role, "drop"):
                        return
                    if self.faults.is_active(self.role, "no_reply"):
                        continue
                    try:
                        replies = self.emulator.handle(line)
                    except Exception:  # noqa: BLE001 - an emulator bug must not kill the link
                        log.exception("%s emulator failed on %r", self.role, line)
                        replies = []
                    if replies:
                        self._send(conn, replies)
        except OSError:
            return
        finally:
            with self._conn_lock:
                self._conns.discard(conn)
            _close(conn)


def _close(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        conn.close()
    except OSError:
        pass
