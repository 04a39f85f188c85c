"""SCPI parsing shared by the Keithley emulators: short/long forms, optional nodes, numeric
suffixes, ``;`` chains with path-relative headers, a leading ``:``, and the error queue."""

from __future__ import annotations

import math
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from simulators.instruments.numbers import MALFORMED, any_nonfinite

ERROR_TEXT = {
    0: "No error",
    -100: "Command error",
    -102: "Syntax error",
    -104: "Data type error",
    -109: "Missing parameter",
    -113: "Undefined header",
    -221: "Settings conflict",
    -222: "Data out of range",
    -224: "Illegal parameter value",
    -230: "Data corrupt or stale",
    -350: "Queue overflow",
    -363: "Input buffer overrun",
}


class ScpiError(Exception):
    """Raised by handlers; the emulator turns it into an error-queue entry."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(detail or ERROR_TEXT.get(code, "Error"))
        self.code = code


@dataclass
class _Node:
    short: str
    long: str
    optional: bool
    suffix: bool


def _compile(pattern: str) -> list[_Node]:
    nodes = []
    for raw in re.findall(r"\[?:?(?:[A-Za-z*]+#?|#N)\]?", pattern):
        optional = raw.startswith("[")
        word = raw.strip("[]:")
        if word == "#N":
            nodes.append(_Node("#N", "#N", optional, True))
            continue
        suffix = word.endswith("#")
        word = word.rstrip("#")
        short = "".join(c for c in word if c.isupper() or c == "*")
        nodes.append(_Node(short.upper(), word.upper(), optional, suffix))
    return nodes


_TOKEN = re.compile(r"([A-Z*]+)(\d*)")
_HEADER = re.compile(r"\s*(:?[A-Za-z0-9*:]+)(\?)?\s*(.*)$", re.S)
#: Headers remembered per emulator (what each resolved to); cleared when full, so a fuzzer's
#: endless new headers cannot grow it.
LOOKUP_CACHE_SIZE = 1024
_UNRESOLVED = object()


def _match(nodes: list[_Node], tokens: list[str], suffixes: list[int]) -> bool:
    if not nodes:
        return not tokens
    node = nodes[0]
    if tokens and node.short == "#N":
        if tokens[0].isdigit():
            suffixes.append(int(tokens[0]))
            if _match(nodes[1:], tokens[1:], suffixes):
                return True
            suffixes.pop()
    elif tokens:
        m = _TOKEN.fullmatch(tokens[0])
        if m:
            word, num = m.group(1), m.group(2)
            if word in (node.short, node.long) and (not num or node.suffix):
                suffixes.append(int(num) if num else 1) if node.suffix else None
                if _match(nodes[1:], tokens[1:], suffixes):
                    return True
                if node.suffix:
                    suffixes.pop()
    if node.optional:
        return _match(nodes[1:], tokens, suffixes)
    return False


@dataclass
class Command:
    nodes: list[_Node]
    setter: Callable | None
    getter: Callable | None


def split_chain(line: str) -> list[str]:
    """Split on ``;`` outside quotes; drop empty parts (trailing ``;``)."""
    parts, cur, quote = [], [], None
    for ch in line:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            cur.append(ch)
        elif ch == ";":
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    return [p for p in parts if p]


def parse_float(arg: str, low: float | None = None, high: float | None = None,
                default: float | None = None) -> float:
    """A SCPI numeric argument (also MIN, MAX, DEF, INF); -104/-222 on bad input."""
    a = arg.strip().upper()
    if a in ("MIN", "MINIMUM") and low is not None:
        return low
    if a in ("MAX", "MAXIMUM") and high is not None:
        return high
    if a in ("DEF", "DEFAULT") and default is not None:
        return default
    try:
        v = float(a)
    except ValueError:
        raise ScpiError(-104, f"Data type error; {arg!r}") from None
    if math.isnan(v):
        raise ScpiError(-104)
    if not math.isfinite(v):
        raise ScpiError(-222)
    if (low is not None and v < low) or (high is not None and v > high):
        raise ScpiError(-222)
    return v


def parse_bool(arg: str) -> bool:
    a = arg.strip().upper()
    if a in ("ON", "1", "1.0", "1.000000"):
        return True
    if a in ("OFF", "0", "0.0", "0.000000"):
        return False
    try:
        return bool(round(float(a)))
    except (ValueError, OverflowError):  # text, nan, inf
        raise ScpiError(-104) from None


def unquote(arg: str) -> str:
    a = arg.strip()
    if len(a) >= 2 and a[0] == a[-1] and a[0] in "\"'":
        return a[1:-1]
    return a


def fmt(value: float) -> str:
    """Keithley's reading format: ``+1.234567E-03``."""
    return f"{value:+.6E}"


class ScpiEmulator:
    """Base: command table, error queue, standard event status, ``*IDN?`` and friends."""

    reply_termination = "\n"
    idn = "SCPI,EMULATOR,0,0"
    #: instrument-specific renumbering of the standard SCPI errors (AMI uses its own codes)
    error_map: dict[int, tuple[int, str]] = {}

    def __init__(self) -> None:
        self._commands: list[Command] = []
        #: header tokens -> (command, suffixes) or None: a bus repeats the same few headers,
        #: and matching one against every registered pattern cost ~50 µs per command
        self._resolved: dict[tuple[str, ...], tuple[Command, tuple[int, ...]] | None] = {}
        self._errors: deque[tuple[int, str]] = deque()
        self.esr = 0
        self.ese = 0
        self.sre = 0
        self.lock = threading.RLock()
        self.add("*IDN", getter=lambda a, s: self.idn)
        self.add("*CLS", setter=lambda a, s: self.clear_status())
        self.add("*ESR", getter=lambda a, s: str(self._read_esr()))
        self.add("*ESE", setter=lambda a, s: setattr(self, "ese", int(parse_float(a, 0, 255))),
                 getter=lambda a, s: str(self.ese))
        self.add("*SRE", setter=lambda a, s: setattr(self, "sre", int(parse_float(a, 0, 255))),
                 getter=lambda a, s: str(self.sre))
        self.add("*STB", getter=lambda a, s: str(self.status_byte()))
        self.add("*OPC", setter=lambda a, s: setattr(self, "esr", self.esr | 1),
                 getter=lambda a, s: "1")
        self.add("*WAI", setter=lambda a, s: None)
        self.add("*TST", getter=lambda a, s: "0")
        self.add("*RST", setter=lambda a, s: self.reset())
        self.add("SYSTem:ERRor[:NEXT]", getter=lambda a, s: self.pop_error())
        self.add("SYSTem:ERRor:ALL", getter=lambda a, s: self._all_errors())
        self.add("SYSTem:ERRor:COUNt", getter=lambda a, s: str(len(self._errors)))
        self.add("SYSTem:ERRor:CLEar", setter=lambda a, s: self._errors.clear())
        self.add("STATus:QUEue[:NEXT]", getter=lambda a, s: self.pop_error())
        self.add("STATus:QUEue:CLEar", setter=lambda a, s: self._errors.clear())
        self.add("STATus:PRESet", setter=lambda a, s: self.status_preset())
        self.add("SYSTem:VERSion", getter=lambda a, s: "1999.0")
        self.add("SYSTem:PRESet", setter=lambda a, s: self.reset())

    # ----------------------------------------------------------------- registration
    def add(self, pattern: str, setter: Callable | None = None,
            getter: Callable | None = None) -> None:
        """Register a header; handlers take ``(args: str, suffixes: list[int])``."""
        self._commands.append(Command(_compile(pattern), setter, getter))
        self._resolved.clear()

    def _resolve(self, tokens: list[str]) -> tuple[Command, tuple[int, ...]] | None:
        """The first registered command whose pattern matches ``tokens``, with the numeric
        suffixes it read; remembered, since the table does not change while serving."""
        key = tuple(tokens)
        found = self._resolved.get(key, _UNRESOLVED)
        if found is not _UNRESOLVED:
            return found  # type: ignore[return-value]
        found = None
        for cmd in self._commands:
            suffixes: list[int] = []
            if _match(cmd.nodes, tokens, suffixes):
                found = (cmd, tuple(suffixes))
                break
        if len(self._resolved) >= LOOKUP_CACHE_SIZE:
            self._resolved.clear()
        self._resolved[key] = found
        return found

    # -------------------------------------------------------------------- status
    def push_error(self, code: int, text: str | None = None) -> None:
        if code in self.error_map:
            code, text = self.error_map[code]
        if len(self._errors) >= 10:
            self._errors[-1] = (-350, ERROR_TEXT[-350])
            return
        self._errors.append((code, text or ERROR_TEXT.get(code, "Error")))
        if -199 <= code <= -100:
            self.esr |= 32          # command error
        elif -299 <= code <= -200:
            self.esr |= 16          # execution error
        elif -399 <= code <= -300:
            self.esr |= 8           # device-dependent error
        else:
            self.esr |= 4           # query error

    def pop_error(self) -> str:
        if not self._errors:
            return '0,"No error"'
        code, text = self._errors.popleft()
        return f'{code},"{text}"'

    def _all_errors(self) -> str:
        out = []
        while self._errors:
            out.append(self.pop_error())
        return ",".join(out) if out else '0,"No error"'

    def _read_esr(self) -> int:
        v, self.esr = self.esr, 0
        return v

    def clear_status(self) -> None:
        self._errors.clear()
        self.esr = 0

    def status_byte(self) -> int:
        stb = 0
        if self._errors:
            stb |= 4
        if self.esr & self.ese:
            stb |= 32
        if stb & self.sre:
            stb |= 64
        return stb

    def status_preset(self) -> None:
        """``STAT:PRES``: subclasses with event-enable registers clear them."""

    def reset(self) -> None:
        """``*RST``: subclasses restore their defaults."""

    def input_overflow(self) -> None:
        """A line longer than the input buffer was discarded (-363, as SCPI instruments do)."""
        with self.lock:
            self.push_error(-363)

    def greeting(self) -> list[str]:
        return []

    # -------------------------------------------------------------------- dispatch
    def handle(self, line: str) -> list[str]:
        replies: list[str] = []
        prev_path: list[str] = []
        with self.lock:
            for part in split_chain(line):
                try:
                    reply, prev_path = self._dispatch(part, prev_path)
                except ScpiError as exc:
                    self.push_error(exc.code, str(exc))
                    continue
                except MALFORMED as exc:  # a field missing or unusable: refused, line goes on
                    self.push_error(-109 if isinstance(exc, IndexError) else -224)
                    continue
                if reply is not None:
                    replies.append(reply)
        return [";".join(replies)] if replies else []

    def _dispatch(self, part: str, prev_path: list[str]) -> tuple[str | None, list[str]]:
        m = _HEADER.match(part)
        if not m:
            raise ScpiError(-102)
        header, query, args = m.group(1), bool(m.group(2)), m.group(3).strip()
        absolute = header.startswith(":") or header.startswith("*")
        tokens = [t.upper() for t in header.strip(":").split(":") if t]
        candidates = [tokens]
        if not absolute and prev_path:
            candidates.insert(0, prev_path[:-1] + tokens)
        for toks in candidates:
            found = self._resolve(toks)
            if found is not None:
                cmd, suffixes = found
                handler = cmd.getter if query else cmd.setter
                if handler is None:
                    raise ScpiError(-113, "Undefined header")
                if any_nonfinite(args, keywords=("INF", "INFINITY")):
                    # NaN is no number at all (-104); an infinite one is out of range
                    raise ScpiError(-104 if "NAN" in args.upper() else -222)
                out = handler(args, list(suffixes))
                return (str(out) if query else None), toks
        raise ScpiError(-113)


class MeasurementEvents:
    """The Keithleys' measurement event register, summarised in status-byte bit 0 (MSB) and
    so able to raise SRQ; mixed in before :class:`ScpiEmulator`."""

    meas_event = 0
    meas_enable = 0

    def status_byte(self) -> int:
        stb = super().status_byte()  # type: ignore[misc]
        if self.meas_event & self.meas_enable:
            stb |= 1
        if stb & self.sre:  # type: ignore[attr-defined]
            stb |= 64
        return stb

    def clear_status(self) -> None:
        super().clear_status()  # type: ignore[misc]
        self.meas_event = 0
