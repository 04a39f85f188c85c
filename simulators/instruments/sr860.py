"""Stanford Research SR860/SR865 lock-in: the SR86x command set over the SR830's filter physics.

The junction signal, the cascaded RC output filter, noise and overload are the SR830
emulator's (same bench, same clock); what differs is the instrument: ``SCAL`` (28 ranges,
1 V … 1 nV, index 0 = 1 V), ``OFLT`` (22 time constants, 1 µs … 30 ks), 0-based ``OUTP?``/
``SNAP?``/``AUXV``/``OAUX?`` with names (``X``, ``Y``, ``R``, ``THeta``, ``IN1`` …), sine output
1 nV … 2 V, a 500 kHz (SR860) or 2 MHz (SR865) reference, and the ``CAPTURE`` buffer: up to
4096 kB of float32 samples of X, X/Y, R/θ or X/Y/R/θ taken at ``CAPTURERATEMAX?``/2^n, read
back as ASCII (``CAPTUREVAL?``). ``CAPTUREGET?`` (a binary block the real unit sends without
a terminator) is not served: this line server ends every reply with LF, which would be left
in the reader's buffer after the block.
"""

from __future__ import annotations

import math
import re

from simulators.bench import Bench
from simulators.clock import SimClock
from simulators.faults import FaultBoard
from simulators.instruments.numbers import MALFORMED, nonfinite_number
from simulators.instruments.sr830 import SR830Emulator

SENSITIVITIES = [(1.0, 0.5, 0.2)[i % 3] * 10 ** -(i // 3) for i in range(28)]
TIME_CONSTANTS = [(1, 3)[i % 2] * 10 ** (i // 2) * 1e-6 for i in range(22)]
#: SNAP?/OUTP? parameter names (shortest form first letters upper case) -> index.
SNAP_NAMES = {"X": 0, "Y": 1, "R": 2, "THETA": 3, "TH": 3, "IN1": 4, "IN2": 5, "IN3": 6,
              "IN4": 7, "XNOISE": 8, "XNO": 8, "YNOISE": 9, "YNO": 9, "OUT1": 10, "OUT2": 11,
              "PHASE": 12, "PHA": 12, "SAMP": 13, "SAM": 13, "LEVEL": 14, "LEV": 14,
              "FINT": 15, "FI": 15, "FEXT": 16, "FE": 16}
CAPTURE_CONFIGS = {0: ("X",), 1: ("X", "Y"), 2: ("R", "T"), 3: ("X", "Y", "R", "T")}
CAPTURE_RATE_LIMIT = 1.25e6         # Hz, at the shortest time constants
CAPTURE_MAX_KB = 4096


class _Illegal(Exception):
    """ESR bit 5 (command error)."""


class _Execution(Exception):
    """ESR bit 4 (execution error: out of range, or not allowed now)."""


def _num(arg: str, low: float, high: float) -> float:
    if nonfinite_number(arg):
        raise _Execution(arg)
    v = float(arg)
    if not low <= v <= high:
        raise _Execution(arg)
    return v


def _int(arg: str, low: int, high: int) -> int:
    v = _num(arg, low, high)
    if abs(v - round(v)) > 1e-9:
        raise _Execution(arg)
    return int(round(v))


class SR860Emulator(SR830Emulator):
    """SR860 (``max_frequency`` 500 kHz) or SR865 (2 MHz): set ``model``."""

    SENSITIVITIES = SENSITIVITIES
    TIME_CONSTANTS = TIME_CONSTANTS

    def __init__(self, bench: Bench, clock: SimClock, faults: FaultBoard,
                 model: str = "SR860") -> None:
        if model not in ("SR860", "SR865"):
            raise ValueError(f"model = {model!r}; allowed 'SR860', 'SR865'")
        self.model = model
        self.max_frequency = 500e3 if model == "SR860" else 2e6
        self.idn = f"Stanford_Research_Systems,{model},003101,v1.47"
        super().__init__(bench, clock, faults)

    def reset(self) -> None:
        super().reset()
        self.sens = 0              # 1 V
        self.oflt = 10             # 100 ms
        self.ofsl = 1
        self.ivmd = 0
        self.irng = 0
        self.icur = 0
        self.soff = 0.0
        self.capture_kb = 256
        self.capture_cfg = 1
        self.capture_n = 0
        self._capture_reset()

    def _capture_reset(self) -> None:
        self.capture: list[tuple[float, ...]] = []
        self.capture_state = "idle"     # idle, waiting, running, stopped
        self.capture_wrapped = False
        self.capture_triggered = False
        self.capture_mode = "ONE"
        self.capture_trigger = "IMM"
        self._capture_t = 0.0
        self._capture_done = 0

    # ------------------------------------------------------------------- capture
    def capture_rate_max(self) -> float:
        """The fastest capture rate at the present time constant: 1.25 MHz/2^m, no more
        than about 10/τ (faster samples would only repeat the filtered output)."""
        tau = self.TIME_CONSTANTS[self.oflt]
        m = max(0, math.ceil(math.log2(CAPTURE_RATE_LIMIT * tau / 10.0)))
        return CAPTURE_RATE_LIMIT / 2 ** m

    def capture_rate(self) -> float:
        return self.capture_rate_max() / 2 ** self.capture_n

    def _capacity(self) -> int:
        return self.capture_kb * 1024 // (4 * len(CAPTURE_CONFIGS[self.capture_cfg]))

    def _fill_buffer(self) -> None:
        """Store the samples due since the capture started (the SR830's buffer is not here)."""
        if self.capture_state != "running" or self.capture_trigger == "SAMP":
            return
        due = int((self.clock.now() - self._capture_t) * self.capture_rate())
        due -= self._capture_done
        for _ in range(min(max(due, 0), self._capacity())):
            self._store_sample()
            if self.capture_state != "running":
                break
        self._capture_done += max(due, 0)

    def _store_sample(self) -> None:
        x, y, r, theta = self._outputs()
        values = {"X": x, "Y": y, "R": r, "T": theta}
        sample = tuple(values[k] for k in CAPTURE_CONFIGS[self.capture_cfg])
        if len(self.capture) >= self._capacity():
            self.capture_wrapped = True
            if self.capture_mode == "ONE":
                self.capture_state = "stopped"
                return
            self.capture.pop(0)
        self.capture.append(sample)

    def _capture_bytes(self) -> int:
        return len(self.capture) * 4 * len(CAPTURE_CONFIGS[self.capture_cfg])

    # -------------------------------------------------------------------- parser
    def handle(self, line: str) -> list[str]:
        replies: list[str] = []
        with self.lock:
            self._fill_buffer()
            for part in (p.strip() for p in line.split(";")):
                if not part:
                    continue
                try:
                    out = self._one(part)
                except _Illegal:
                    self.esr |= 32
                    continue
                except (_Execution, *MALFORMED):
                    self.esr |= 16
                    continue
                if out is not None:
                    replies.append(out)
        return replies

    def _one(self, part: str) -> str | None:
        m = re.fullmatch(r"(\*?[A-Za-z]+)\s*(\?)?\s*(.*)", part, re.S)
        if not m:
            raise _Illegal(part)
        name, query, rest = m.group(1).upper(), bool(m.group(2)), m.group(3)
        args = [a.strip() for a in rest.split(",")] if rest.strip() else []
        handler = getattr(self, "_k_" + name.replace("*", "star_").lower(), None)
        if handler is None:
            raise _Illegal(name)
        return handler(query, args)

    # ------------------------------------------------------------ common commands
    def _k_star_idn(self, q, a):
        return self.idn if q else None

    def _k_star_rst(self, q, a):
        self.reset()
        self.esr = 0

    def _k_star_cls(self, q, a):
        self.lias = 0
        self.esr = 0

    def _k_star_esr(self, q, a):
        v, self.esr = self.esr, 0
        return str(v)

    def _k_star_stb(self, q, a):
        return str(self._stb())

    def _k_star_opc(self, q, a):
        return "1" if q else None

    def _k_star_ese(self, q, a):
        if q:
            return str(self.ese)
        self.ese = _int(a[0], 0, 255)

    def _k_star_sre(self, q, a):
        if q:
            return str(self.sre)
        self.sre = _int(a[0], 0, 255)

    def _k_lias(self, q, a):
        if a:
            bit = _int(a[0], 0, 15)
            v = (self.lias >> bit) & 1
            self.lias &= ~(1 << bit)
            return str(v)
        v, self.lias = self.lias, 0
        return str(v)

    # ----------------------------------------------------------- reference, signal
    def _k_freq(self, q, a):
        if q:
            return f"{self.freq:.6g}"
        value = _num(a[0], 0.001, self.max_frequency)
        if value * self.harmonic > self.max_frequency:
            raise _Execution("FREQ x HARM")
        self.freq = value

    def _k_slvl(self, q, a):
        if q:
            return f"{self.slvl:.9g}"
        self.slvl = _num(a[0], 1e-9, 2.0)
        self.bench.set_sine(self.slvl)
        self._u_last = self._target()

    def _k_soff(self, q, a):
        if q:
            return f"{self.soff:.6g}"
        self.soff = _num(a[0], -5.0, 5.0)

    def _k_phas(self, q, a):
        if q:
            return f"{self.phase:.7g}"
        value = _num(a[0], -360000.0, 360000.0)
        self._commit()
        self.phase = (value + 180.0) % 360.0 - 180.0
        self._u_last = self._target()

    def _k_harm(self, q, a):
        if q:
            return str(self.harmonic)
        value = _int(a[0], 1, 99)
        if value * self.freq > self.max_frequency:
            raise _Execution("HARM")
        self._commit()
        self.harmonic = value
        self._u_last = self._target()

    def _setting(self, attr: str, low: int, high: int):
        def handler(q, a):
            if q:
                return str(getattr(self, attr))
            value = _int(a[0], low, high)
            if attr in ("oflt", "ofsl"):
                self._advance()
            setattr(self, attr, value)
        return handler

    def __getattr__(self, item: str):
        table = {"_k_scal": ("sens", 0, 27), "_k_oflt": ("oflt", 0, 21),
                 "_k_ofsl": ("ofsl", 0, 3), "_k_sync": ("sync", 0, 1),
                 "_k_ivmd": ("ivmd", 0, 1), "_k_isrc": ("isrc", 0, 1),
                 "_k_icpl": ("icpl", 0, 1), "_k_ignd": ("ignd", 0, 1),
                 "_k_irng": ("irng", 0, 4), "_k_icur": ("icur", 0, 1),
                 "_k_liae": ("liae", 0, 65535)}
        if item in table:
            return self._setting(*table[item])
        return super().__getattr__(item)

    # --------------------------------------------------------------------- outputs
    def _snap_code(self, arg: str) -> int:
        token = arg.strip().upper()
        if token in SNAP_NAMES:
            return SNAP_NAMES[token]
        return _int(token, 0, 16)

    def _value(self, code: int, outputs: tuple[float, float, float, float]) -> float:
        x, y, r, theta = outputs
        if code <= 3:
            return (x, y, r, theta)[code]
        if code <= 7:
            return self._aux_in(code - 3)
        if code in (8, 9):
            return abs(self.bench.noise(1e-9))
        if code in (10, 11):
            return self.aux_out[code - 10]
        return (self.phase, self.slvl, self.soff, self.freq, self.freq)[code - 12]

    def _k_outp(self, q, a):
        if not q or len(a) != 1:
            raise _Execution("OUTP")
        code = self._snap_code(a[0])
        if code > 3:
            raise _Execution(a[0])
        return f"{self._outputs()[code]:.6g}"

    def _k_snap(self, q, a):
        if not q or len(a) not in (2, 3):
            raise _Execution("SNAP")
        codes = [self._snap_code(x) for x in a]
        outputs = self._outputs()          # one instant for every value
        return ",".join(f"{self._value(c, outputs):.6g}" for c in codes)

    def _k_snapd(self, q, a):
        outputs = self._outputs()
        return ",".join(f"{v:.6g}" for v in outputs)

    def _k_auxv(self, q, a):
        channel = _int(a[0], 0, 3)
        if q:
            return f"{self.aux_out[channel]:.6g}"
        if len(a) != 2:
            raise _Execution("AUXV")
        value = round(_num(a[1], -10.5, 10.5), 3)
        self.aux_out[channel] = value
        if channel + 1 == self.bench.aux_bias_channel:
            self.bench.set_aux_bias(value)
            self._u_last = self._target()

    def _k_oaux(self, q, a):
        return f"{self._aux_in(_int(a[0], 0, 3) + 1):.6g}" if q else None

    # --------------------------------------------------------------------- capture
    def _k_capturelen(self, q, a):
        if q:
            return str(self.capture_kb)
        if self.capture_state in ("running", "waiting"):
            raise _Execution("CAPTURELEN while capturing")
        self.capture_kb = _int(a[0], 1, CAPTURE_MAX_KB)
        self._capture_reset()

    def _k_capturecfg(self, q, a):
        if q:
            return str(self.capture_cfg)
        token = a[0].strip().upper() if a else ""
        names = {"X": 0, "XY": 1, "RT": 2, "XYRT": 3}
        self.capture_cfg = names[token] if token in names else _int(token, 0, 3)
        self._capture_reset()

    def _k_captureratemax(self, q, a):
        return f"{self.capture_rate_max():.6g}"

    def _k_capturerate(self, q, a):
        if q:
            return f"{self.capture_rate():.6g}"
        if self.capture_state in ("running", "waiting"):
            raise _Execution("CAPTURERATE while capturing")
        self.capture_n = _int(a[0], 0, 20)

    def _k_capturestart(self, q, a):
        if len(a) != 2:
            raise _Execution("CAPTURESTART")
        mode, trigger = a[0].strip().upper(), a[1].strip().upper()
        modes = {"ONE": "ONE", "ONESHOT": "ONE", "0": "ONE", "CONT": "CONT",
                 "CONTINUOUS": "CONT", "1": "CONT"}
        triggers = {"IMM": "IMM", "IMMEDIATE": "IMM", "0": "IMM", "TRIG": "TRIG",
                    "TRIGSTART": "TRIG", "1": "TRIG", "SAMP": "SAMP", "SAMPPERTRIG": "SAMP",
                    "2": "SAMP"}
        if mode not in modes or trigger not in triggers:
            raise _Execution(",".join(a))
        self._capture_reset()
        self.capture_mode, self.capture_trigger = modes[mode], triggers[trigger]
        if self.capture_trigger == "IMM":
            self._start_capture()
        else:
            self.capture_state = "waiting"

    def _start_capture(self) -> None:
        self.capture_state = "running"
        self.capture_triggered = True
        self._capture_t = self.clock.now()
        self._capture_done = 0

    def _k_trig(self, q, a):
        """Remote trigger: starts a TRIG capture, or stores one sample of a SAMP capture."""
        if self.capture_state == "waiting":
            self._start_capture()
        if self.capture_state == "running" and self.capture_trigger == "SAMP":
            self._store_sample()

    def _k_capturestop(self, q, a):
        if self.capture_state in ("running", "waiting"):
            self.capture_state = "stopped"

    def _k_capturestat(self, q, a):
        return str(int(self.capture_state == "running") | 2 * int(self.capture_triggered)
                   | 4 * int(self.capture_wrapped))

    def _k_capturebytes(self, q, a):
        return str(self._capture_bytes())

    def _k_captureprog(self, q, a):
        if self.capture_state in ("running", "waiting"):
            raise _Execution("CAPTUREPROG? while capturing")
        if self.capture_wrapped:
            return str(self.capture_kb)
        return str(2 * math.ceil(self._capture_bytes() / 2048))

    def _k_captureval(self, q, a):
        n = _int(a[0], 0, 2 ** 31)
        width = len(CAPTURE_CONFIGS[self.capture_cfg])
        sample = self.capture[n] if n < len(self.capture) else (0.0,) * width
        return ",".join(f"{v:.7g}" for v in sample)
