"""Keithley 2182A nanovoltmeter: SCPI set, channel ranges, NPLC timing, overflow, REL.

A reading takes NPLC/f_line (twice with auto-zero on) plus overhead, times the trigger count,
on the lab clock. The same class serves the standalone 2182A (blocking ``:READ?``) and the one
behind the 6221's RS-232 port (the 6221 asks :meth:`execute` and waits for the reply itself).

The reading buffer follows the manual: ``TRAC:POIN`` 2–1024, ``TRAC:FEED SENS|CALC|NONE``,
``TRAC:FEED:CONT NEXT`` stores every following reading (triggered ones, and with
``INIT:CONT ON`` one per conversion time of the lab clock) until the buffer is full, then sets
BFL (measurement event bit 9) and returns to NEV. ``CALC2`` computes MEAN, SDEV (n−1), MAX, MIN
or PKPK over the stored readings (``IMM?``, or ``IMM`` then ``DATA?``); no readings: +9.91E37.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from simulators.clock import SimClock
from simulators.instruments.scpi import (
    MeasurementEvents,
    ScpiEmulator,
    ScpiError,
    parse_bool,
    parse_float,
    unquote,
)

IDN = "KEITHLEY INSTRUMENTS INC.,MODEL 2182A,1193143,C02 /A02"
OVERFLOW = "+9.9E37"
NO_DATA = "+9.91E37"             # Keithley's NAN: a statistic of an empty buffer
BUFFER_MAX = 1024
MEAS_BUFFER_FULL = 512           # measurement event bit 9 (BFL)
CALC2_FORMS = {"MEAN": "MEAN", "SDEV": "SDEV", "SDEVIATION": "SDEV", "MAX": "MAX",
               "MAXIMUM": "MAX", "MIN": "MIN", "MINIMUM": "MIN", "PKPK": "PKPK",
               "NONE": "NONE"}
CH1_RANGES = (0.01, 0.1, 1.0, 10.0, 100.0)
CH2_RANGES = (0.1, 1.0, 10.0)
LINE_FREQUENCY = 60.0


def _pick_range(value: float, ranges: tuple[float, ...]) -> float:
    for r in ranges:
        if value <= r * 1.0000001:
            return r
    return ranges[-1]


class Keithley2182Emulator(MeasurementEvents, ScpiEmulator):
    """``source(channel)`` gives the true voltage (V) across channel 1 or 2 now."""

    reply_termination = "\n"
    idn = IDN

    def __init__(self, clock: SimClock, source: Callable[[int], float],
                 noise: Callable[[float], float]) -> None:
        super().__init__()
        self.clock = clock
        self.source = source
        self.noise = noise
        self.reset()
        self._register()

    def reset(self) -> None:
        self.function = "VOLT:DC"
        self.channel = 1
        self.range = {1: 10.0, 2: 10.0}
        self.auto = {1: True, 2: True}
        self.nplc = 5.0
        self.azero = True
        self.ref = {1: 0.0, 2: 0.0}
        self.ref_on = {1: False, 2: False}
        self.trig_count = 1
        self.trig_delay = 0.0
        self.trig_source = "IMM"
        self.continuous = True
        self.latest: float | None = None
        self.fresh = False
        self.calc_form = "MEAN"
        self.calc_on = False
        self.calc_result: float | None = None
        self.last_batch: list[float] = []
        self.trace: list[float] = []
        self.trace_points = BUFFER_MAX
        self.trace_feed = "SENS"
        self.feed_control = "NEV"
        self._fill_from = 0.0           # lab time continuous storing (re)started
        self.meas_event = 0
        self.meas_enable = 0
        self.settings: dict[str, str] = {}

    # ---------------------------------------------------------------- measurement
    def conversion_time(self) -> float:
        """Seconds per reading: integration (×2 with auto-zero) plus settling overhead."""
        integ = self.nplc / LINE_FREQUENCY
        return integ * (2.0 if self.azero else 1.0) + 0.004

    def integration_time(self) -> float:
        """Seconds the A/D integrates one reading (NPLC line cycles)."""
        return self.nplc / LINE_FREQUENCY

    def reading_noise(self, ch: int, range_V: float | None = None) -> float:
        """Rms noise of one reading (V): ~6 nV p-p at NPLC 5 on 10 mV, growing with range."""
        rng = self.range[ch] if range_V is None else range_V
        return math.sqrt(5.0 / self.nplc) * (4e-9 + 1.2e-7 * rng)

    def measure_once(self) -> float | None:
        """One conversion on the active channel; None means overflow."""
        ch = self.channel if self.channel in (1, 2) else 0
        if self.function.startswith("TEMP") or ch == 0:
            return 23.5 + self.noise(0.02)
        true = self.source(ch)
        ranges = CH1_RANGES if ch == 1 else CH2_RANGES
        if self.auto[ch]:
            self.range[ch] = _pick_range(abs(true) / 1.2, ranges)
        value = true + self.noise(self.reading_noise(ch))
        if abs(value) > 1.2 * self.range[ch]:
            return None
        if self.ref_on[ch]:
            value -= self.ref[ch]
        return value

    def take_readings(self) -> tuple[list[float | None], float]:
        """Readings for one trigger cycle and how long they take (s)."""
        n = max(1, self.trig_count)
        values = [self.measure_once() for _ in range(n)]
        return values, n * (self.conversion_time() + self.trig_delay)

    @staticmethod
    def format_reading(v: float | None) -> str:
        return OVERFLOW if v is None else f"{v:+.9E}"

    # ------------------------------------------------------------------ dispatch
    def execute(self, line: str) -> tuple[list[str], float]:
        """Process a line; return replies and the time the instrument is busy (s)."""
        self._busy = 0.0
        self._fill_continuous()
        replies = ScpiEmulator.handle(self, line)
        return replies, self._busy

    def handle(self, line: str) -> list[str]:
        with self.lock:
            replies, busy = self.execute(line)
            self.clock.sleep(busy)
        return replies

    def _read(self, args, s) -> str:
        values, busy = self.take_readings()
        self._busy = getattr(self, "_busy", 0.0) + busy
        self._store(values)
        return ",".join(self.format_reading(v) for v in values)

    def _store(self, values: list[float | None]) -> None:
        self.latest = values[-1] if values[-1] is not None else math.inf
        self.last_batch = [v for v in values if v is not None]
        self.fresh = True
        if self.feed_control == "NEXT" and self.trace_feed != "NONE":
            for v in values:
                self.trace.append(math.inf if v is None else v)
                if len(self.trace) >= self.trace_points:
                    self.feed_control = "NEV"
                    self.meas_event |= MEAS_BUFFER_FULL
                    break

    def _fill_continuous(self) -> None:
        """With ``INIT:CONT ON`` the meter converts all the time: store the readings taken
        since the buffer was armed (at most the free space, so bounded per command)."""
        if not (self.continuous and self.feed_control == "NEXT" and self.trace_feed != "NONE"):
            return
        now = self.clock.now()
        due = int((now - self._fill_from) / self.conversion_time())
        due = min(due, self.trace_points - len(self.trace))
        if due <= 0:
            return
        self._fill_from += due * self.conversion_time()
        self._store([self.measure_once() for _ in range(due)])

    def _fetch(self, args, s) -> str:
        if self.latest is None:
            values, busy = self.take_readings()
            self._busy = getattr(self, "_busy", 0.0) + busy
            self._store(values)
        self.fresh = False
        return OVERFLOW if math.isinf(self.latest) else self.format_reading(self.latest)

    def _fresh(self, args, s) -> str:
        if not self.fresh:
            values, busy = self.take_readings()
            self._busy = getattr(self, "_busy", 0.0) + busy
            self._store(values)
        self.fresh = False
        return OVERFLOW if math.isinf(self.latest) else self.format_reading(self.latest)

    def _calc_immediate(self, args=None, s=None) -> None:
        """``CALC2:IMM``: the selected statistic of the stored readings (overflows excluded)."""
        data = [v for v in self.trace if math.isfinite(v)]
        if not self.calc_on or self.calc_form == "NONE" or not data:
            self.calc_result = None
            return
        form = self.calc_form
        if form == "MEAN":
            v = sum(data) / len(data)
        elif form == "MAX":
            v = max(data)
        elif form == "MIN":
            v = min(data)
        elif form == "PKPK":
            v = max(data) - min(data)
        else:
            m = sum(data) / len(data)
            v = math.sqrt(sum((x - m) ** 2 for x in data) / (len(data) - 1)) if len(
                data) > 1 else 0.0
        self.calc_result = v

    def _calc_data(self, args=None, s=None) -> str:
        return NO_DATA if self.calc_result is None else self.format_reading(self.calc_result)

    def _calc_query(self, args, s) -> str:
        self._calc_immediate()
        return self._calc_data()

    def _set_calc_form(self, args, s) -> None:
        form = CALC2_FORMS.get(args.strip().upper())
        if form is None:
            raise ScpiError(-224)
        self.calc_form = form

    def _set_feed_control(self, args, s) -> None:
        a = args.strip().upper()
        if a.startswith("NEXT"):
            if self.feed_control != "NEXT":
                self._fill_from = self.clock.now()
            self.feed_control = "NEXT"
        elif a.startswith("NEV"):
            self.feed_control = "NEV"
        else:
            raise ScpiError(-224)

    def _set_feed(self, args, s) -> None:
        a = args.strip().upper()
        for name in ("SENS", "CALC", "NONE"):
            if a.startswith(name):
                self.trace_feed = name
                return
        raise ScpiError(-224)

    def _clear_trace(self, args=None, s=None) -> None:
        self.trace = []
        self._fill_from = self.clock.now()

    def _meas_event_read(self, args, s) -> str:
        v, self.meas_event = self.meas_event, 0
        return str(v)


    def status_preset(self) -> None:
        self.meas_enable = 0

    def _set_function(self, args, s) -> None:
        f = unquote(args).upper()
        if f in ("VOLT", "VOLT:DC", "VOLTAGE", "VOLTAGE:DC"):
            self.function = "VOLT:DC"
        elif f in ("TEMP", "TEMPERATURE"):
            self.function = "TEMP"
        else:
            raise ScpiError(-224)

    def _set_channel(self, args, s) -> None:
        self.channel = int(parse_float(args, 0, 2))

    def _set_range(self, args, s) -> None:
        ch = s[0] if s else (self.channel if self.channel in (1, 2) else 1)
        ranges = CH1_RANGES if ch == 1 else CH2_RANGES
        value = parse_float(args, 0.0, 120.0 if ch == 1 else 12.0, default=ranges[-1])
        self.range[ch] = _pick_range(value, ranges)
        self.auto[ch] = False

    def _get_range(self, args, s) -> str:
        ch = s[0] if s else (self.channel if self.channel in (1, 2) else 1)
        return f"{self.range[ch]:g}"

    def _set_auto(self, args, s) -> None:
        ch = s[0] if s else (self.channel if self.channel in (1, 2) else 1)
        self.auto[ch] = parse_bool(args)

    def _get_auto(self, args, s) -> str:
        ch = s[0] if s else (self.channel if self.channel in (1, 2) else 1)
        return str(int(self.auto[ch]))

    def _store_setting(self, key: str, default: str):
        self.settings.setdefault(key, default)

        def setter(args, s):
            self.settings[key + (str(s[0]) if s else "")] = unquote(args)

        def getter(args, s):
            return self.settings.get(key + (str(s[0]) if s else ""), default)
        return setter, getter

    def _register(self) -> None:
        add = self.add
        add("READ", getter=self._read)
        add("MEASure[:VOLTage][:DC]", getter=self._read)
        add("FETCh", getter=self._fetch)
        add("[SENSe]:DATA:FRESh", getter=self._fresh)
        add("[SENSe]:DATA[:LATest]", getter=self._fetch)
        add("[SENSe]:FUNCtion", setter=self._set_function,
            getter=lambda a, s: f'"{self.function}"')
        add("[SENSe]:CHANnel", setter=self._set_channel, getter=lambda a, s: str(self.channel))
        for head in ("[SENSe]:VOLTage[:DC]:CHANnel#:RANGe[:UPPer]",
                     "[SENSe]:VOLTage[:DC]:RANGe[:UPPer]"):
            add(head, setter=self._set_range, getter=self._get_range)
        for head in ("[SENSe]:VOLTage[:DC]:CHANnel#:RANGe:AUTO",
                     "[SENSe]:VOLTage[:DC]:RANGe:AUTO"):
            add(head, setter=self._set_auto, getter=self._get_auto)
        add("[SENSe]:VOLTage[:DC]:NPLCycles",
            setter=lambda a, s: setattr(self, "nplc", parse_float(a, 0.01, 60.0, default=5.0)),
            getter=lambda a, s: f"{self.nplc:g}")
        add("[SENSe]:TEMPerature:NPLCycles",
            setter=lambda a, s: setattr(self, "nplc", parse_float(a, 0.01, 60.0, default=5.0)),
            getter=lambda a, s: f"{self.nplc:g}")
        add("[SENSe]:VOLTage[:DC]:APERture", getter=lambda a, s: f"{self.nplc / 60:g}")

        def set_ref(a, s):
            self.ref[s[0] if s else 1] = parse_float(a, -120.0, 120.0)

        def acq_ref(a, s):
            ch = s[0] if s else 1
            self.ref[ch] = self.source(ch)

        add("[SENSe]:VOLTage[:DC]:CHANnel#:REFerence", setter=set_ref,
            getter=lambda a, s: f"{self.ref[s[0]]:+.9E}")
        add("[SENSe]:VOLTage[:DC]:CHANnel#:REFerence:STATe",
            setter=lambda a, s: self.ref_on.__setitem__(s[0], parse_bool(a)),
            getter=lambda a, s: str(int(self.ref_on[s[0]])))
        add("[SENSe]:VOLTage[:DC]:CHANnel#:REFerence:ACQuire", setter=acq_ref)
        for key, default in (("[SENSe]:VOLTage[:DC]:DFILter[:STATe]", "1"),
                             ("[SENSe]:VOLTage[:DC]:DFILter:COUNt", "10"),
                             ("[SENSe]:VOLTage[:DC]:DFILter:TCONtrol", "MOV"),
                             ("[SENSe]:VOLTage[:DC]:DFILter:WINDow", "0.01"),
                             ("[SENSe]:VOLTage[:DC]:LPASs[:STATe]", "1"),
                             ("[SENSe]:VOLTage[:DC]:DIGits", "8"),
                             ("[SENSe]:TEMPerature:TCouple[:TYPE]", "J"),
                             ("[SENSe]:TEMPerature:TC", "J"),
                             ("[SENSe]:TEMPerature:CHANnel#:REFerence", "0"),
                             ("[SENSe]:TEMPerature:CHANnel#:REFerence:STATe", "0"),
                             ("[SENSe]:TEMPerature:RJUNction:RSELect", "SIM"),
                             ("[SENSe]:TEMPerature:RJUNction:SIMulated", "23"),
                             ("DISPlay:ENABle", "1"), ("UNIT:TEMPerature", "C"),
                             ("SAMPle:COUNt", "1"),
                             ("SYSTem:FAZero[:STATe]", "1"), ("FORMat[:DATA]", "ASC"),
                             ("STATus:OPERation:ENABle", "0"),
                             ("STATus:QUEStionable:ENABle", "0")):
            setter, getter = self._store_setting(key, default)
            add(key, setter=setter, getter=getter)
        add("[SENSe]:TEMPerature:RTEMperature", getter=lambda a, s: "+2.350000E+01")
        add("[SENSe]:TEMPerature:CHANnel#:REFerence:ACQuire", setter=lambda a, s: None)
        add("SYSTem:AZERo[:STATe]", setter=lambda a, s: setattr(self, "azero", parse_bool(a)),
            getter=lambda a, s: str(int(self.azero)))
        add("SYSTem:LFRequency", getter=lambda a, s: f"{LINE_FREQUENCY:g}")
        add("SYSTem:LFRequency:AUTO", setter=lambda a, s: None, getter=lambda a, s: "1")
        add("TRIGger:COUNt",
            setter=lambda a, s: setattr(self, "trig_count", int(parse_float(a, 1, 9999))),
            getter=lambda a, s: str(self.trig_count))
        add("TRIGger:DELay",
            setter=lambda a, s: setattr(self, "trig_delay", parse_float(a, 0, 99999.999)),
            getter=lambda a, s: f"{self.trig_delay:g}")
        add("TRIGger:DELay:AUTO", setter=lambda a, s: None, getter=lambda a, s: "0")
        add("TRIGger:SOURce",
            setter=lambda a, s: setattr(self, "trig_source", a.strip().upper()[:3]),
            getter=lambda a, s: self.trig_source)
        add("INITiate[:IMMediate]", setter=self._initiate)
        add("INITiate:CONTinuous",
            setter=lambda a, s: setattr(self, "continuous", parse_bool(a)),
            getter=lambda a, s: str(int(self.continuous)))
        add("ABORt", setter=lambda a, s: None)
        add("*TRG", setter=self._initiate)
        add("TRACe:CLEar", setter=self._clear_trace)
        add("TRACe:DATA", getter=lambda a, s: ",".join(self.format_reading(
            v if math.isfinite(v) else None) for v in self.trace))
        add("TRACe:POINts",
            setter=lambda a, s: setattr(self, "trace_points",
                                        int(parse_float(a, 2, BUFFER_MAX, default=BUFFER_MAX))),
            getter=lambda a, s: str(self.trace_points))
        add("TRACe:POINts:ACTual", getter=lambda a, s: str(len(self.trace)))
        add("TRACe:FEED", setter=self._set_feed, getter=lambda a, s: self.trace_feed)
        add("TRACe:FEED:CONTrol", setter=self._set_feed_control,
            getter=lambda a, s: self.feed_control)
        add("CALCulate#:FORMat", setter=self._calc2(self._set_calc_form),
            getter=self._calc2(lambda a, s: self.calc_form))
        add("CALCulate#:STATe",
            setter=self._calc2(lambda a, s: setattr(self, "calc_on", parse_bool(a))),
            getter=self._calc2(lambda a, s: str(int(self.calc_on))))
        add("CALCulate#:IMMediate", setter=self._calc2(self._calc_immediate),
            getter=self._calc2(self._calc_query))
        add("CALCulate#:DATA", getter=self._calc2(self._calc_data))
        add("STATus:MEASurement:ENABle",
            setter=lambda a, s: setattr(self, "meas_enable", int(parse_float(a, 0, 65535))),
            getter=lambda a, s: str(self.meas_enable))
        add("STATus:MEASurement[:EVENt]", getter=self._meas_event_read)
        add("STATus:OPERation[:EVENt]", getter=lambda a, s: "0")
        add("STATus:QUEStionable[:EVENt]", getter=lambda a, s: "0")

    @staticmethod
    def _calc2(handler):
        """Only CALC2 (buffer statistics) is emulated; CALC1 (mX+b, %) is not."""
        def f(args, s):
            if s and s[0] != 2:
                raise ScpiError(-113)
            return handler(args, s)
        return f

    def _initiate(self, args, s) -> None:
        values, busy = self.take_readings()
        self._busy = getattr(self, "_busy", 0.0) + busy
        self._store(values)
