"""A tiny line-based socket fake of an instrument, for station connection tests.

It is not a simulator: it answers queries from a table (``default`` for anything else),
records every command it receives, and forwards ``SYST:COMM:SER:SEND`` payloads to a second
table so the 2182A-behind-6221 path can be exercised.
"""

from __future__ import annotations

import socket
import threading

import pytest


class FakeInstrument:
    def __init__(self, replies: dict[str, str], terminator: str = "\n",
                 greeting: tuple[str, ...] = (), serial_replies: dict[str, str] | None = None,
                 default: str = "0"):
        self.replies = replies
        self.terminator = terminator
        self.greeting = greeting
        self.serial_replies = serial_replies or {}
        self.default = default
        self.received: list[str] = []
        self._serial_last = ""
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def resource(self) -> str:
        return f"TCPIP::127.0.0.1::{self.port}::SOCKET"

    def _accept(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _answer(self, line: str) -> str | None:
        if line.startswith("SYST:COMM:SER:SEND"):
            self._serial_last = line.split(" ", 1)[1].strip().strip('"')
            return None
        if line == "SYST:COMM:SER:ENT?":
            return self.serial_replies.get(self._serial_last, self.default)
        if "?" not in line:
            return None
        return self.replies.get(line, self.default)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            for line in self.greeting:
                conn.sendall((line + self.terminator).encode())
            buffer = b""
            conn.settimeout(0.1)
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buffer += chunk.replace(b"\r", b"\n")
                while b"\n" in buffer:
                    raw, buffer = buffer.split(b"\n", 1)
                    line = raw.decode().strip()
                    if not line:
                        continue
                    self.received.append(line)
                    reply = self._answer(line)
                    if reply is not None:
                        conn.sendall((reply + self.terminator).encode())

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=2)


SR830_REPLIES = {"*IDN?": "Stanford_Research_Systems,SR830,s/n12345,ver1.07",
                 "FREQ?": "13.333", "SLVL?": "0.100", "SNAP? 1,2": "1.0e-06,2.0e-08",
                 "SENS?": "17", "OFLT?": "8", "OFSL?": "1", "HARM?": "1"}
K6221_REPLIES = {"*IDN?": "KEITHLEY INSTRUMENTS INC.,MODEL 6221,4559777,D04  /700x ",
                 ":SOUR:CURR?": "0.0", ":SOUR:CURR:COMP?": "10", "OUTPut?": "0",
                 ":SOUR:DELT:NVPR?": "1", ":SOUR:CURR:RANG:AUTO?": "1"}
K2182_SERIAL = {"*IDN?": "KEITHLEY INSTRUMENTS INC.,MODEL 2182A,1193143,C02 /A02",
                ":SENS:VOLT:NPLC?": "1", ":READ?": "+1.25E-06", ":FETC?": "+1.25E-06"}
LS336_REPLIES = {"*IDN?": "LSCI,MODEL336,LSA2CMQ/LSA2C8R,2.9", "KRDG? A": "+4.2153",
                 "SETP? 1": "+4.2000", "RAMP? 1": "0,+0.0000", "RAMPST? 1": "0",
                 "RANGE? 1": "1", "HTR? 1": "+12.50", "HTRST? 1": "0", "RDGST? A": "0",
                 "PID? 1": "+0050.0,+0020.0,+000.0", "OUTMODE? 1": "1,1,0",
                 "HTRSET? 1": "1,2,+0.000,1"}


@pytest.fixture
def fakes():
    """Factory of fake instruments, all closed at the end of the test."""
    made: list[FakeInstrument] = []

    def make(kind: str) -> FakeInstrument:
        if kind == "SR830":
            fake = FakeInstrument(SR830_REPLIES)
        elif kind == "Keithley6221":
            fake = FakeInstrument(K6221_REPLIES, serial_replies=K2182_SERIAL)
        elif kind == "LakeShore336":
            fake = FakeInstrument(LS336_REPLIES, terminator="\r\n")
        else:
            raise ValueError(kind)
        made.append(fake)
        return fake

    yield make
    for fake in made:
        fake.close()


@pytest.fixture
def closed_resource() -> str:
    """A loopback resource nobody listens on (bound, then closed)."""
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"TCPIP::127.0.0.1::{port}::SOCKET"
