"""The Lake Shore command grammar every emulated Lake Shore shares (335/336/340/350, 625).

``NAME[?] arg,arg`` commands, ``;`` chains answered on one line joined by ``;`` (as Lake
Shore's own driver expects), CR LF replies, no reply to a command, and the standard event
register: an unknown command sets bit 5, a bad parameter bit 4, and the rest of the line goes
on. Each instrument adds ``_c_<name>`` handlers and its physics.
"""

from __future__ import annotations

import math
import re
import threading

from simulators.instruments.numbers import MALFORMED, any_nonfinite


class Unknown(Exception):
    """Illegal command: sets ESR bit 5 and produces no reply."""


class Bad(Exception):
    """Parameter out of range: ESR bit 4."""


def lsnum(v: float, sig: int = 5) -> str:
    """Lake Shore reply style: sign and fixed point with ``sig`` significant digits."""
    if v == 0 or not math.isfinite(v):
        return "+0.0000"
    dec = max(0, sig - 1 - int(math.floor(math.log10(abs(v)))))
    return f"{v:+.{dec}f}"


class LakeShoreProtocol:
    """Parser and IEEE-488.2 common commands; subclasses set ``IDN`` and their handlers."""

    reply_termination = "\r\n"
    IDN = "LSCI,MODEL000,0,0"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.esr = 0
        self.ese = 0
        self.sre = 0

    def advance(self) -> None:
        """Bring the instrument's physics up to the lab clock before a line is handled."""

    def greeting(self) -> list[str]:
        return []

    def handle(self, line: str) -> list[str]:
        replies: list[str] = []
        with self.lock:
            self.advance()
            for part in (p.strip() for p in line.split(";")):
                if not part:
                    continue
                try:
                    out = self._one(part)
                except Unknown:
                    self.esr |= 32
                    continue
                except (Bad, *MALFORMED):  # ESR bit 4, execution error; the line goes on
                    self.esr |= 16
                    continue
                if out is not None:
                    replies.append(out)
        return [";".join(replies)] if replies else []

    def _one(self, part: str) -> str | None:
        m = re.fullmatch(r"(\*?[A-Za-z]+)(\?)?\s*(.*)", part, re.S)
        if not m:
            raise Unknown(part)
        name, query, rest = m.group(1).upper(), bool(m.group(2)), m.group(3).strip()
        args = [a.strip() for a in rest.split(",")] if rest else []
        handler = getattr(self, "_c_" + name.replace("*", "star_").lower(), None)
        if handler is None:
            raise Unknown(name)
        if any_nonfinite(args):
            raise Bad(rest)
        return handler(query, args)

    def input_overflow(self) -> None:
        """A line longer than the input buffer was discarded: ESR bit 5 (command error)."""
        with self.lock:
            self.esr |= 32

    # ----------------------------------------------------------- common commands
    def _c_star_idn(self, q, a):
        return self.IDN if q else None

    def _c_star_rst(self, q, a):
        self.reset()

    def reset(self) -> None:
        self.esr = 0

    def _c_star_cls(self, q, a):
        self.esr = 0

    def _c_star_esr(self, q, a):
        v, self.esr = self.esr, 0
        return str(v)

    def _c_star_ese(self, q, a):
        if q:
            return str(self.ese)
        self.ese = int(float(a[0]))

    def _c_star_sre(self, q, a):
        if q:
            return str(self.sre)
        self.sre = int(float(a[0]))

    def _c_star_stb(self, q, a):
        stb = 32 if self.esr & self.ese else 0
        return str(stb)

    def _c_star_opc(self, q, a):
        if q:
            return "1"
        self.esr |= 1

    def _c_star_tst(self, q, a):
        return "0"

    def _c_star_wai(self, q, a):
        return None
