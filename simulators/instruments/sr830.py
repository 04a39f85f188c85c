"""Stanford Research SR830 DSP lock-in: command set, status registers, filter and buffer.

The outputs follow the junction's first-harmonic voltage through 1–4 cascaded RC stages of the
set time constant (6–24 dB/oct), solved exactly between events on the lab clock, so a reading
taken 5–10 τ after a bias step has settled and one taken at 1 τ has not.

The data buffer is computed lazily: while a scan runs, each filter interval that holds a sample
time is recorded (its start state and input, O(1) per command), the point count is arithmetic on
the lab clock, and the values are evaluated, vectorised and outside the command lock, only when a
``TRC?`` asks for them. A client that leaves a 512 Hz scan running at any lab speed therefore
costs every other command nothing; the noise of point k is drawn from a generator seeded by the
scan and k, so reading a point twice gives the same value.
"""

from __future__ import annotations

import bisect
import cmath
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simulators.bench import Bench
from simulators.clock import SimClock
from simulators.faults import FaultBoard
from simulators.instruments.numbers import MALFORMED, nonfinite_number
from simulators.server import BinaryReply

IDN = "Stanford_Research_Systems,SR830,s/n48237,ver1.07"
SENSITIVITIES = [(2, 5, 10)[i % 3] * 10 ** (i // 3) * 1e-9 for i in range(27)]
TIME_CONSTANTS = [(10, 30)[i % 2] * 10 ** (i // 2) * 1e-6 for i in range(20)]
ENBW_FACTOR = (1 / 4, 1 / 8, 3 / 32, 5 / 64)        # ENBW·τ for 6, 12, 18, 24 dB/oct
RESERVE_HEADROOM = (1e3, 1e2, 1e1)                   # high reserve, normal, low noise
INPUT_NOISE = 6e-9                                   # V/√Hz
BUFFER_SIZE = 16383
STRD_DELAY_S = 0.5                                   # STRD starts the scan after 0.5 s
AUX_IN_NOISE = 30e-6                                 # V rms on an Aux input
_NOISE_CHUNK = 1024                                  # buffer points per seeded noise block


class _IllegalCommand(Exception):
    """ESR bit 5."""


class _Execution(Exception):
    """ESR bit 4: parameter out of range."""


def _int(arg: str, low: int, high: int) -> int:
    if nonfinite_number(arg):
        raise _Execution(arg)
    try:
        v = float(arg)
    except ValueError:
        raise _Execution(arg) from None
    i = int(round(v))
    if abs(v - i) > 1e-6 or not (low <= i <= high):
        raise _Execution(arg)
    return i


def _float(arg: str, low: float, high: float) -> float:
    if nonfinite_number(arg):
        raise _Execution(arg)
    try:
        v = float(arg)
    except ValueError:
        raise _Execution(arg) from None
    if not (low <= v <= high) or math.isnan(v):
        raise _Execution(arg)
    return v


def _g(v: float) -> str:
    """SR830 number format: as short as the value allows, e.g. ``-1.01026`` or ``1.2e-09``."""
    return f"{v:.6g}"


@dataclass(frozen=True)
class _Segment:
    """One filter interval [t0, t1] of a running scan: the stages' start deviation from the
    (constant) input ``u`` and every setting a buffered point taken inside it depends on."""

    t0: float
    t1: float
    u: complex
    dev: tuple[complex, complex, complex, complex]
    tau: float
    stages: int
    sigma: float            # input noise (V rms in the ENBW, in the input's units)
    contact: float          # contact-noise factor: σ += contact · |z|
    mode: int               # 0 normal, 1 input overload (saturated), 2 reference unlocked
    fs: float
    aux: tuple[float, float, float, float]    # true Aux In voltages
    sources: tuple[int, int]                  # DDEF source of CH1, CH2


@dataclass(frozen=True)
class _Run:
    """Consecutive buffer points k0 ≤ k < k1 (k1 None: still running) at ``rate`` Hz from t0
    (point k0 at t0 + 1/rate); ``rate`` 0 is one triggered point taken at t0."""

    t0: float
    rate: float
    k0: int
    k1: int | None


class SR830Emulator:
    reply_termination = "\n"
    role = "lockin"
    #: Full scale (V) and time constant (s) of each ``SENS``/``OFLT`` index (an SR860 has its
    #: own tables over the same filter physics).
    SENSITIVITIES = SENSITIVITIES
    TIME_CONSTANTS = TIME_CONSTANTS

    def __init__(self, bench: Bench, clock: SimClock, faults: FaultBoard) -> None:
        self.bench = bench
        self.clock = clock
        self.faults = faults
        self.lock = threading.RLock()
        self._stages: list[complex] = []
        self._u_last = 0j
        self._v_dc = 0.0
        self._t_last = clock.now()
        self.reset()
        bench.add_listener(self._commit)

    # ---------------------------------------------------------------------- settings
    def reset(self) -> None:
        """``*RST`` defaults from the manual."""
        self.freq = 1000.0
        self.phase = 0.0
        self.harmonic = 1
        self.slvl = 1.0
        self.fmod = 1
        self.rslp = 0
        self.isrc = 0
        self.ignd = 0
        self.icpl = 0
        self.ilin = 0
        self.sens = 26
        self.rmod = 1
        self.oflt = 10
        self.ofsl = 1
        self.sync = 0
        self.ddef = {1: [0, 0], 2: [0, 0]}
        self.fpop = {1: 0, 2: 0}
        self.oexp = {1: [0.0, 0], 2: [0.0, 0], 3: [0.0, 0]}
        self.aux_out = [0.0, 0.0, 0.0, 0.0]
        self.outx = 1
        self.srat = 4
        self.send_mode = 1
        self.tstr = 0
        self._clear_buffer()
        self.lias = 0
        self.liae = 0
        self.errs = 0
        self.erre = 0
        self.esr = 128              # power-on
        self.ese = 0
        self.sre = 0
        self.saved: dict[int, dict] = {}
        self.bench.set_sine(self.slvl)
        self.bench.set_aux_bias(0.0)
        with self.lock:
            self._stages = [0j] * 4
            self._t_last = self.clock.now()
            self._u_last = self._target()
            self._stages = [self._u_last] * 4

    # ------------------------------------------------------------------- the filter
    def _target(self) -> complex:
        """Noise-free demodulated signal now (X + iY, V rms) before the output filter."""
        v, _, _, self._v_dc = self.bench.junction_harmonic(self.harmonic)
        # A and A−B both see the contact voltage (B sits on the grounded junction lead);
        # the current inputs see it through their 1 MΩ / 100 MΩ transimpedance
        if self.isrc in (2, 3):
            v = v / (1e6 if self.isrc == 2 else 1e8)
        return v * cmath.exp(-1j * math.radians(self.phase))

    def _advance(self) -> None:
        """Bring the cascaded RC stages up to now with the input held piecewise constant."""
        now = self.clock.now()
        dt = now - self._t_last
        if dt <= 0:
            return
        u_now = self._target()
        u = 0.5 * (u_now + self._u_last)
        tau = self.TIME_CONSTANTS[self.oflt]
        x = dt / tau
        decay = math.exp(-x) if x < 700 else 0.0
        old = [s - u for s in self._stages]
        if self._holds_sample(self._t_last, now):
            self._record(self._t_last, now, u, old)
        new = []
        for k in range(4):
            acc = 0j
            term = 1.0
            for j in range(k, -1, -1):
                acc += old[j] * term
                term *= x / (k - j + 1)
            new.append(u + acc * decay)
        self._stages = new
        self._t_last = now
        self._u_last = u_now

    def _commit(self) -> None:
        """Called by the bench before any drive changes: settle the filter under the old one."""
        with self.lock:
            self._advance()

    def _outputs(self) -> tuple[float, float, float, float]:
        """X, Y, R, θ with noise, after the filter; sets overload bits."""
        self._advance()
        n_stages = self.ofsl + 1
        z = self._stages[n_stages - 1]
        tau = self.TIME_CONSTANTS[self.oflt]
        enbw = ENBW_FACTOR[self.ofsl] / tau
        scale = 1.0 if self.isrc in (0, 1) else (1e-6 if self.isrc == 2 else 1e-8)
        sigma = INPUT_NOISE * scale * math.sqrt(enbw)
        sigma += self.bench.sample.preset.contact_noise_relative * abs(z) * math.sqrt(
            min(1.0, enbw))
        noise = self.bench.noise(sigma, 2)
        x = z.real + noise[0]
        y = z.imag + noise[1]
        fs = self.SENSITIVITIES[self.sens] * scale
        overload_input = False
        if self.fmod == 0 and not self.bench.external_reference:
            # external reference selected with nothing on REF IN: the PLL cannot lock
            self.lias |= 8
            x, y = self.bench.noise(3.0 * sigma + 0.05 * fs, 2)
        if self.faults.is_active(self.role, "overload"):
            overload_input = True
        else:
            amp = abs(self._u_last)
            headroom = self.SENSITIVITIES[self.sens] * RESERVE_HEADROOM[self.rmod]
            if amp > min(1.0, headroom) * scale:
                overload_input = True
        if overload_input:
            self.lias |= 1
            sat = 1.09 * fs
            x = math.copysign(sat, self.bench.noise(1.0))
            y = math.copysign(sat, self.bench.noise(1.0))
        r = math.hypot(x, y)
        theta = math.degrees(math.atan2(y, x))
        for idx, val in ((1, x), (2, y), (3, r)):
            off, exp_ = self.oexp[idx]
            shown = (val - off / 100.0 * fs) * 10 ** exp_
            if abs(shown) > fs:
                self.lias |= 4
        return x, y, r, theta

    # -------------------------------------------------------------------- the buffer
    def _clear_buffer(self) -> None:
        """``REST``: no points, no scan."""
        self.scan = "stopped"       # stopped, running, paused, done
        self._runs: list[_Run] = []
        self._segments: list[_Segment] = []
        self._seg_t1: list[float] = []
        self._seen_points = 0
        with self.bench.rng_lock:
            self._scan_seed = int(self.bench.rng.integers(2 ** 62))

    def _rate(self) -> float:
        return 0.0625 * 2 ** self.srat if self.srat < 14 else 0.0

    def _total(self, now: float | None = None) -> int:
        """Points taken up to ``now`` (default: the time the filter was last brought to, so
        every counted point lies inside a recorded interval; in loop mode this can exceed
        what the buffer holds)."""
        if now is None:
            now = self._t_last
        if not self._runs:
            return 0
        run = self._runs[-1]
        if run.k1 is not None:
            return run.k1
        count = max(0, math.floor((now - run.t0) * run.rate + 1e-9))
        total = run.k0 + count
        return min(total, BUFFER_SIZE) if self.send_mode == 0 else total

    def _update_scan(self) -> None:
        """End a one-shot scan whose buffer is full, flag new points (LIAS bit 6) and drop the
        intervals that only held points a loop scan has overwritten."""
        total = self._total()
        if total > self._seen_points:
            self.lias |= 64
            self._seen_points = total
        if self.scan != "running" or not self._runs or self._runs[-1].k1 is not None:
            return
        if self.send_mode == 0 and total >= BUFFER_SIZE:
            self._close_run(BUFFER_SIZE)
            self.scan = "done"
        elif total > BUFFER_SIZE:
            oldest = float(self._sample_times(np.array([total - BUFFER_SIZE]))[0])
            drop = bisect.bisect_left(self._seg_t1, oldest)
            if drop > 256:
                del self._segments[:drop], self._seg_t1[:drop]
            keep = [r for r in self._runs if r.k1 is None or r.k1 > total - BUFFER_SIZE]
            self._runs = keep

    def _close_run(self, k1: int) -> None:
        run = self._runs[-1]
        self._runs[-1] = _Run(run.t0, run.rate, run.k0, k1)

    def _open_run(self, t0: float) -> None:
        total = self._total()
        if self._runs and self._runs[-1].k1 is None:
            self._close_run(total)
        if self._rate() > 0:
            self._runs.append(_Run(t0, self._rate(), total, None))

    def _holds_sample(self, t0: float, t1: float) -> bool:
        """Whether the running scan takes a point in (t0, t1] (the interval must be kept)."""
        if self.scan != "running" or not self._runs:
            return False
        run = self._runs[-1]
        if run.k1 is not None or t1 < run.t0:
            return False
        j = max(0, math.floor((t0 - run.t0) * run.rate + 1e-9))   # points at or before t0
        if self.send_mode == 0 and run.k0 + j >= BUFFER_SIZE:
            return False
        return run.t0 + (j + 1) / run.rate <= t1 + 1e-12

    def _record(self, t0: float, t1: float, u: complex, dev: list[complex]) -> None:
        """Keep one filter interval with everything a point inside it depends on."""
        tau = TIME_CONSTANTS[self.oflt]
        enbw = ENBW_FACTOR[self.ofsl] / tau
        scale = 1.0 if self.isrc in (0, 1) else (1e-6 if self.isrc == 2 else 1e-8)
        fs = SENSITIVITIES[self.sens] * scale
        mode = 0
        if self.fmod == 0 and not self.bench.external_reference:
            mode = 2
        elif self.faults.is_active(self.role, "overload") or abs(u) > min(
                1.0, SENSITIVITIES[self.sens] * RESERVE_HEADROOM[self.rmod]) * scale:
            mode = 1
        aux = [0.0, 0.0, 0.0, 0.0]
        aux[self.bench.dc_voltage_aux_channel - 1] = max(-10.5, min(
            10.5, self._v_dc * self.bench.dc_voltage_gain))
        seg = _Segment(t0, t1, u, tuple(dev), tau, self.ofsl + 1,
                       INPUT_NOISE * scale * math.sqrt(enbw),
                       self.bench.sample.preset.contact_noise_relative * math.sqrt(
                           min(1.0, enbw)),
                       mode, fs, tuple(aux), (self.ddef[1][0], self.ddef[2][0]))
        self._segments.append(seg)
        self._seg_t1.append(t1)

    def _record_now(self) -> None:
        """A triggered point: the filter state now, as an interval of zero length."""
        self._advance()
        self._record(self._t_last, self._t_last, 0j, list(self._stages))

    def _sample_times(self, ks: np.ndarray) -> np.ndarray:
        """Lab time of each absolute point index."""
        k0s = np.array([r.k0 for r in self._runs])
        idx = np.clip(np.searchsorted(k0s, ks, side="right") - 1, 0, len(self._runs) - 1)
        t0 = np.array([r.t0 for r in self._runs])[idx]
        rate = np.array([r.rate for r in self._runs])[idx]
        step = np.where(rate > 0, (ks - k0s[idx] + 1) / np.where(rate > 0, rate, 1.0), 0.0)
        return t0 + step

    def _stored(self) -> int:
        return min(self._total(), BUFFER_SIZE)

    def _points(self, channel: int, start: int, count: int) -> Callable[[], np.ndarray]:
        """Display ``channel`` of bins start…start+count−1, evaluated later, outside the lock.

        Only the bins' lab times and the intervals holding them are taken here (under the
        lock); the returned function does the vectorised filter and noise arithmetic.
        """
        total = self._total()
        first = total - min(total, BUFFER_SIZE)
        ks = np.arange(first + start, first + start + count)
        times = self._sample_times(ks)
        lo = bisect.bisect_left(self._seg_t1, float(times.min()) - 1e-9)
        hi = min(bisect.bisect_left(self._seg_t1, float(times.max()) - 1e-9) + 1,
                 len(self._segments))
        segments = self._segments[lo:hi]
        seed = self._scan_seed
        return lambda: _evaluate(segments, ks, times, channel, seed)

    def _display(self, channel: int) -> float:
        x, y, r, theta = self._outputs()
        src = self.ddef[channel][0]
        if channel == 1:
            return (x, r, abs(self.bench.noise(1e-9)), self._aux_in(1), self._aux_in(2))[src]
        return (y, theta, abs(self.bench.noise(1e-9)), self._aux_in(3), self._aux_in(4))[src]

    def _aux_in(self, channel: int) -> float:
        """The wired AUX input reads the contact's DC voltage (× preamp gain); others are open."""
        if channel == self.bench.dc_voltage_aux_channel:
            _, _, _, v_dc = self.bench.junction_harmonic(self.harmonic)
            v = max(-10.5, min(10.5, v_dc * self.bench.dc_voltage_gain)) + self.bench.noise(30e-6)
        else:
            v = self.bench.noise(30e-6)
        return round(v * 3000.0) / 3000.0

    def _snap_value(self, code: int, outputs: tuple[float, float, float, float]) -> float:
        x, y, r, theta = outputs
        if code in (1, 2, 3, 4):
            return (x, y, r, theta)[code - 1]
        if code in (5, 6, 7, 8):
            return self._aux_in(code - 4)
        if code == 9:
            return self.freq
        if code in (10, 11):
            return self._display(code - 9)
        raise _Execution(str(code))

    # ---------------------------------------------------------------------- status
    def _stb(self) -> int:
        stb = 2                        # IFC: no command executing
        if self.scan != "running":
            stb |= 1
        if self.errs & self.erre:
            stb |= 4
        if self.lias & self.liae:
            stb |= 8
        if self.esr & self.ese:
            stb |= 32
        if stb & self.sre:
            stb |= 64
        return stb

    @staticmethod
    def _bit_query(reg: int, args: list[str]) -> str:
        if args:
            return str((reg >> _int(args[0], 0, 7)) & 1)
        return str(reg)

    # ----------------------------------------------------------------- the parser
    def greeting(self) -> list[str]:
        return []

    def handle(self, line: str) -> list[str | BinaryReply]:
        """Run a ``;`` chain; buffer transfers are evaluated after the lock is released."""
        replies: list = []
        with self.lock:
            self._advance()
            self._update_scan()
            for part in (p.strip() for p in line.split(";")):
                if not part:
                    continue
                try:
                    out = self._one(part)
                except _IllegalCommand:
                    self.esr |= 32
                    continue
                except (_Execution, *MALFORMED):  # ESR bit 4; the rest of the line goes on
                    self.esr |= 16
                    continue
                if out is not None:
                    replies.append(out)
        return [r() if callable(r) else r for r in replies]

    def input_overflow(self) -> None:
        """A line longer than the input buffer was discarded: ESR bit 0 (input queue
        overflow)."""
        with self.lock:
            self.esr |= 1

    def _one(self, part: str) -> str | None:
        m = re.fullmatch(r"(\*?[A-Za-z]{3,4})\s*(\?)?\s*(.*)", part, re.S)
        if not m:
            raise _IllegalCommand(part)
        name, query, rest = m.group(1).upper(), bool(m.group(2)), m.group(3)
        args = [a.strip() for a in rest.replace(" ", "").split(",")] if rest.strip() else []
        handler = getattr(self, "_c_" + name.replace("*", "star_").lower(), None)
        if handler is None:
            raise _IllegalCommand(name)
        return handler(query, args)

    # simple indexed settings: name -> (attribute, low, high, affects_signal)
    _INDEXED = {
        "SENS": ("sens", 0, 26, False), "OFLT": ("oflt", 0, 19, False),
        "OFSL": ("ofsl", 0, 3, False), "RMOD": ("rmod", 0, 2, False),
        "ISRC": ("isrc", 0, 3, True), "IGND": ("ignd", 0, 1, False),
        "ICPL": ("icpl", 0, 1, False), "ILIN": ("ilin", 0, 3, False),
        "FMOD": ("fmod", 0, 1, False), "RSLP": ("rslp", 0, 2, False),
        "SYNC": ("sync", 0, 1, False), "SRAT": ("srat", 0, 14, False),
        "SEND": ("send_mode", 0, 1, False), "TSTR": ("tstr", 0, 1, False),
        "OUTX": ("outx", 0, 1, False), "HARM": ("harmonic", 1, 19999, True),
        "LIAE": ("liae", 0, 255, False), "ERRE": ("erre", 0, 255, False),
    }

    def __getattr__(self, item: str):
        if item.startswith("_c_") and item[3:].upper() in self._INDEXED:
            attr, low, high, signal = self._INDEXED[item[3:].upper()]

            def handler(query: bool, args: list[str]) -> str | None:
                if query:
                    return str(getattr(self, attr))
                if not args:
                    raise _Execution("missing")
                if attr in ("liae", "erre") and len(args) == 2:
                    bit, val = _int(args[0], 0, 7), _int(args[1], 0, 1)
                    cur = getattr(self, attr)
                    setattr(self, attr, (cur | (1 << bit)) if val else (cur & ~(1 << bit)))
                    return None
                value = _int(args[0], low, high)
                if attr == "harmonic" and value * self.freq > 102000:
                    raise _Execution("harmonic")
                if attr == "oflt" and value > 13 and self.freq * self.harmonic > 200.0:
                    raise _Execution("time constant > 30 s above 200 Hz")
                self._advance()            # the interval so far ran on the old setting
                setattr(self, attr, value)
                if signal:
                    self._u_last = self._target()
                if attr == "srat" and self.scan == "running":
                    self._open_run(self._t_last)
                if attr == "harmonic":
                    self._limit_time_constant()
                return None
            return handler
        raise AttributeError(item)

    def _c_star_idn(self, query, args):
        return IDN if query else None

    def _c_star_cls(self, query, args):
        self.lias = self.errs = 0
        self.esr = 0

    def _c_star_rst(self, query, args):
        self.reset()
        self.esr = 0

    def _c_star_esr(self, query, args):
        if args:
            return str((self.esr >> _int(args[0], 0, 7)) & 1)
        v, self.esr = self.esr, 0
        return str(v)

    def _c_star_ese(self, query, args):
        if query:
            return str(self.ese)
        self.ese = _int(args[0], 0, 255) if len(args) == 1 else self.ese

    def _c_star_sre(self, query, args):
        if query:
            return str(self.sre)
        self.sre = _int(args[0], 0, 255) if len(args) == 1 else self.sre

    def _c_star_stb(self, query, args):
        return self._bit_query(self._stb(), args)

    def _c_star_psc(self, query, args):
        return "0" if query else None

    def _c_star_trg(self, query, args):
        return self._c_trig(False, [])

    def _read_and_clear(self, register: str, args: list[str]) -> str:
        """A latched status register's query: the bit asked (or the whole byte), which the
        read then clears (LIAS?, ERRS?)."""
        value = getattr(self, register)
        if args:
            bit = _int(args[0], 0, 7)
            setattr(self, register, value & ~(1 << bit))
            return str((value >> bit) & 1)
        setattr(self, register, 0)
        return str(value)

    def _c_lias(self, query, args):
        return self._read_and_clear("lias", args)

    def _c_errs(self, query, args):
        return self._read_and_clear("errs", args)

    def _c_freq(self, query, args):
        if query:
            return _g(self.freq)
        value = _float(args[0], 0.001, 102000.0)
        if value * self.harmonic > 102000:
            raise _Execution("freq")
        self.freq = value
        self._limit_time_constant()

    def _limit_time_constant(self) -> None:
        """Above 200 Hz detection frequency τ > 30 s is not allowed: the unit lowers τ itself
        and flags it (LIAS bit 5), crossing 200 Hz sets bit 4."""
        detect = self.freq * self.harmonic
        above = detect > 200.0
        if above != getattr(self, "_above_200", above):
            self.lias |= 16
        self._above_200 = above
        if above and self.oflt > 13:
            self._advance()
            self.oflt = 13
            self.lias |= 32

    def _c_phas(self, query, args):
        if query:
            return _g(self.phase)
        value = _float(args[0], -360.0, 729.99)
        self._commit()
        self.phase = (value + 180.0) % 360.0 - 180.0
        self._u_last = self._target()

    def _c_slvl(self, query, args):
        if query:
            return _g(self.slvl)
        value = round(_float(args[0], 0.004, 5.0) / 0.002) * 0.002
        self.slvl = round(value, 3)
        self.bench.set_sine(self.slvl)
        self._u_last = self._target()

    def _c_auxv(self, query, args):
        if query:
            ch = _int(args[0], 1, 4)
            return _g(self.aux_out[ch - 1])
        if len(args) != 2:
            raise _Execution("AUXV")
        ch = _int(args[0], 1, 4)
        value = round(_float(args[1], -10.5, 10.5), 3)
        self.aux_out[ch - 1] = value
        if ch == self.bench.aux_bias_channel:
            self.bench.set_aux_bias(value)
            self._u_last = self._target()

    def _c_oaux(self, query, args):
        return _g(self._aux_in(_int(args[0], 1, 4))) if query else None

    def _c_outp(self, query, args):
        if not query or not args:
            raise _Execution("OUTP")
        code = _int(args[0], 1, 4)
        return _g(self._outputs()[code - 1])

    def _c_outr(self, query, args):
        if not query or not args:
            raise _Execution("OUTR")
        return _g(self._display(_int(args[0], 1, 2)))

    def _c_snap(self, query, args):
        if not query or not (2 <= len(args) <= 6):
            raise _Execution("SNAP")
        codes = [_int(a, 1, 11) for a in args]
        outputs = self._outputs()          # one instant for every value of the snapshot
        return ",".join(_g(self._snap_value(c, outputs)) for c in codes)

    def _c_ddef(self, query, args):
        if query:
            ch = _int(args[0], 1, 2)
            return f"{self.ddef[ch][0]},{self.ddef[ch][1]}"
        if len(args) != 3:
            raise _Execution("DDEF")
        ch = _int(args[0], 1, 2)
        self.ddef[ch] = [_int(args[1], 0, 4), _int(args[2], 0, 2)]

    def _c_fpop(self, query, args):
        if query:
            return str(self.fpop[_int(args[0], 1, 2)])
        self.fpop[_int(args[0], 1, 2)] = _int(args[1], 0, 1)

    def _c_oexp(self, query, args):
        if query:
            i = _int(args[0], 1, 3)
            return f"{self.oexp[i][0]:.2f},{self.oexp[i][1]}"
        if len(args) != 3:
            raise _Execution("OEXP")
        i = _int(args[0], 1, 3)
        self.oexp[i] = [_float(args[1], -105.0, 105.0), _int(args[2], 0, 2)]

    def _c_aoff(self, query, args):
        i = _int(args[0], 1, 3)
        x, y, r, _ = self._outputs()
        fs = SENSITIVITIES[self.sens]
        self.oexp[i][0] = max(-105.0, min(105.0, 100.0 * (x, y, r)[i - 1] / fs))

    def _c_agan(self, query, args):
        _, _, r, _ = self._outputs()
        idx = next((i for i, s in enumerate(SENSITIVITIES) if s > 1.25 * r), 26)
        self.sens = idx
        self.lias &= ~4

    def _c_arsv(self, query, args):
        self.rmod = 1

    def _c_aphs(self, query, args):
        self._advance()
        z = self._stages[self.ofsl]
        self._commit()
        self.phase = (self.phase + math.degrees(cmath.phase(z)) + 180.0) % 360.0 - 180.0
        self._u_last = self._target()
        self._stages = [s * cmath.exp(-1j * cmath.phase(z)) for s in self._stages]

    def _c_rest(self, query, args):
        self._advance()
        self._clear_buffer()

    def _c_strt(self, query, args, delay: float = 0.0):
        self._advance()
        if self.scan in ("stopped", "done"):
            self._clear_buffer()
        if self.scan != "running":
            self.scan = "running"
            self._open_run(self._t_last + delay)

    def _c_paus(self, query, args):
        self._advance()
        if self.scan == "running":
            if self._runs and self._runs[-1].k1 is None:
                self._close_run(self._total())
            self.scan = "paused"

    def _c_trig(self, query, args):
        if self.srat == 14 and self.scan == "running":
            total = self._total()
            if total < BUFFER_SIZE or self.send_mode == 1:
                self._record_now()
                self._runs.append(_Run(self._t_last, 0.0, total, total + 1))
            elif self.send_mode == 0:
                self.scan = "done"
        elif self.tstr and self.scan in ("stopped", "done"):
            self._c_strt(False, [])

    def _c_spts(self, query, args):
        return str(self._stored()) if query else None

    def _c_trca(self, query, args):
        values = self._points(*self._trace_args(args))
        return lambda: "".join(f"{_g(float(v))}," for v in values())

    def _c_trcl(self, query, args):
        values = self._points(*self._trace_args(args))
        return lambda: BinaryReply(_trcl_bytes(values()))

    def _c_trcb(self, query, args):
        values = self._points(*self._trace_args(args))
        return lambda: BinaryReply(np.asarray(values(), dtype="<f4").tobytes())

    def _trace_args(self, args: list[str]) -> tuple[int, int, int]:
        if len(args) != 3:
            raise _Execution("TRC")
        ch = _int(args[0], 1, 2)
        start = _int(args[1], 0, BUFFER_SIZE - 1)
        count = _int(args[2], 1, BUFFER_SIZE)
        if start + count > self._stored():
            raise _Execution("TRC range")
        return ch, start, count

    def _c_fast(self, query, args):
        return "0" if query else None

    def _c_strd(self, query, args):
        self._c_strt(False, [], delay=STRD_DELAY_S)

    def _c_sset(self, query, args):
        self.saved[_int(args[0], 1, 9)] = {k: getattr(self, k) for k in (
            "freq", "phase", "harmonic", "slvl", "sens", "oflt", "ofsl", "rmod", "isrc")}

    def _c_rset(self, query, args):
        n = _int(args[0], 1, 9)
        if n not in self.saved:
            raise _Execution("RSET")
        self._commit()
        for k, v in self.saved[n].items():
            setattr(self, k, v)
        self.bench.set_sine(self.slvl)
        self._u_last = self._target()

    def _c_locl(self, query, args):
        return "0" if query else None

    def _c_ovrm(self, query, args):
        return "0" if query else None

    def _c_alrm(self, query, args):
        return "0" if query else None

    def _c_kclk(self, query, args):
        return "0" if query else None



def _evaluate(segments: list[_Segment], ks: np.ndarray, times: np.ndarray, channel: int,
              seed: int) -> np.ndarray:
    """Display values of buffer points ``ks`` taken at ``times`` inside ``segments``.

    Each stage of the RC cascade, started from its deviation ``dev_j`` at t0 with the input
    held at u, is u + e^{−x} Σ_{j≤k} dev_j x^{k−j}/(k−j)! at x = (t − t0)/τ (as in
    :meth:`SR830Emulator._advance`). Noise comes from blocks seeded by (scan, k // block).
    """
    t1 = np.array([s.t1 for s in segments])
    sel = np.clip(np.searchsorted(t1, times - 1e-9, side="left"), 0, len(segments) - 1)

    def col(name, dtype=float):
        return np.array([getattr(s, name) for s in segments], dtype=dtype)[sel]

    t0, tau, u = col("t0"), col("tau"), col("u", complex)
    dev = np.array([s.dev for s in segments], dtype=complex)[sel]
    x = np.maximum(times - t0, 0.0) / tau
    decay = np.exp(-np.minimum(x, 700.0))
    stage_out = []
    for k in range(4):
        acc = np.zeros(len(ks), dtype=complex)
        term = np.ones(len(ks))
        for j in range(k, -1, -1):
            acc += dev[:, j] * term
            term = term * x / (k - j + 1)
        stage_out.append(u + acc * decay)
    z = np.choose(col("stages", int) - 1, stage_out)
    normals = _point_normals(ks, seed)
    sigma = col("sigma") + col("contact") * np.abs(z)
    fs, mode = col("fs"), col("mode", int)
    xr = np.where(mode == 1, np.copysign(1.09 * fs, normals[:, 0]),
                  np.where(mode == 2, normals[:, 0] * (3 * sigma + 0.05 * fs),
                           z.real + sigma * normals[:, 0]))
    yi = np.where(mode == 1, np.copysign(1.09 * fs, normals[:, 1]),
                  np.where(mode == 2, normals[:, 1] * (3 * sigma + 0.05 * fs),
                           z.imag + sigma * normals[:, 1]))
    aux = np.array([s.aux for s in segments])[sel]
    src = np.array([s.sources[channel - 1] for s in segments])[sel]
    first_aux = 0 if channel == 1 else 2
    aux_a = np.round((aux[:, first_aux] + AUX_IN_NOISE * normals[:, 2]) * 3000.0) / 3000.0
    aux_b = np.round((aux[:, first_aux + 1] + AUX_IN_NOISE * normals[:, 2]) * 3000.0) / 3000.0
    if channel == 1:
        main, second = xr, np.hypot(xr, yi)
    else:
        main, second = yi, np.degrees(np.arctan2(yi, xr))
    return np.choose(src, [main, second, np.abs(1e-9 * normals[:, 3]), aux_a, aux_b])


def _point_normals(ks: np.ndarray, seed: int) -> np.ndarray:
    """Four standard normals per absolute point index, the same whenever they are asked."""
    out = np.empty((len(ks), 4))
    blocks = ks // _NOISE_CHUNK
    for block in np.unique(blocks):
        rows = blocks == block
        draws = np.random.default_rng([seed, int(block)]).standard_normal((_NOISE_CHUNK, 4))
        out[rows] = draws[ks[rows] % _NOISE_CHUNK]
    return out


def _trcl_bytes(values: np.ndarray) -> bytes:
    """``TRCL?`` points: int16 mantissa m and int16 exponent e, value = m·2^(e−124), LSB first.

    The format is not normalised, so of the few exact-enough (m, e) pairs for a value the
    first whose four bytes hold no LF is sent: a socket client that stops reading at LF (it
    has no EOI to go by) then still receives the whole block.
    """
    v = np.asarray(values, dtype=float)
    nonzero = v != 0
    base = np.where(nonzero, np.floor(np.log2(np.where(nonzero, np.abs(v), 1.0))) - 14, 0)
    result: np.ndarray | None = None
    done = np.zeros(len(v), dtype=bool)
    for shift in range(4):                    # the fewest bits dropped that avoids an LF
        e = base + shift
        m = np.where(nonzero, np.round(v / 2.0 ** e), 0)
        big = np.abs(m) > 32767
        m, e = np.where(big, np.round(m / 2), m), np.where(big, e + 1, e)
        pairs = np.stack([m, np.where(nonzero, e + 124, 124)], axis=1).astype("<i2")
        clean = ~np.any(pairs.view(np.uint8).reshape(len(v), 4) == 0x0A, axis=1)
        if result is None:
            result = pairs.copy()
        take = clean & ~done
        result[take] = pairs[take]
        done |= clean
    return result.tobytes() if result is not None else b""
