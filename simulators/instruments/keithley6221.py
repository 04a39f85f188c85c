"""Keithley 6221 current source with its 2182A on the RS-232 link: DC output with compliance,
delta mode and differential conductance (DCON) generating readings from the sample model with
the manual's formulas, the trace buffer, ``FORM:ELEM``, and the serial pass-through.

Waveform output (``SOUR:WAVE:FUNC SIN|SQU|RAMP|ARBn``, ``AMPL`` peak, ``FREQ``, ``OFFS``,
``DCYC``, ``DUR:TIME|CYCL``, ``ARB:DATA``/``ARB:COPY``): ``ARM`` turns the output on at the
offset, ``INIT`` starts the waveform for its duration (then back at the offset), ``ABOR`` stops
it and turns the output off. The current reaches the bench (:class:`SourceWaveform`), so the
linked 2182A reads the sample voltage averaged over its integration window. Compliance is not
applied to the waveform.
"""

from __future__ import annotations

import math

import numpy as np

from simulators.bench import Bench, SourceWaveform
from simulators.clock import SimClock
from simulators.faults import FaultBoard
from simulators.instruments.keithley2182 import OVERFLOW, Keithley2182Emulator
from simulators.instruments.scpi import (
    MeasurementEvents,
    ScpiEmulator,
    ScpiError,
    parse_bool,
    parse_float,
    unquote,
)

IDN = "KEITHLEY INSTRUMENTS INC.,MODEL 6221,4559777,D04  /700x "
MAX_I = 0.105
BUFFER_MAX = 65536
ELEMENT_ORDER = ("READ", "TST", "SOUR", "AVOL", "COMP", "RNUM")
MEAS_COMPLIANCE = 8            # measurement condition/event bit 3
MEAS_BUFFER_FULL = 512         # bit 9 (pymeasure enables it for buffer waits)
OPEN_LOAD_OHM = 1e9
WAVE_FUNCTIONS = {"SIN": "SIN", "SINE": "SIN", "SQU": "SQU", "SQUARE": "SQU", "RAMP": "RAMP",
                  **{f"ARB{n}": f"ARB{n}" for n in range(5)}}
INF_REPLY = "+9.900000E+37"


class Keithley6221Emulator(MeasurementEvents, ScpiEmulator):
    reply_termination = "\n"
    idn = IDN
    role = "current_source"

    def __init__(self, bench: Bench, clock: SimClock, faults: FaultBoard,
                 nanovoltmeter: Keithley2182Emulator | None) -> None:
        super().__init__()
        self.bench = bench
        self.clock = clock
        self.faults = faults
        self.nv = nanovoltmeter
        self._serial_reply: list[tuple[float, str]] = []
        self.reset()
        self._register()

    # -------------------------------------------------------------------- state
    def reset(self) -> None:
        self.output = False
        self.level = 0.0
        self.range = 2e-3
        self.auto_range = False
        self.compliance = 10.0
        self.source_delay = 0.001
        self.unit = "V"
        self.elements = ["READ", "TST"]
        self.tst_format = "ABS"
        self.trace_points = BUFFER_MAX
        self.trace: list[dict] = []
        self.meas_cond = 0
        self.meas_event = 0
        self.meas_enable = 0
        self.oper_enable = 0
        self.ques_enable = 0
        self.delta = {"HIGH": 1e-3, "LOW": -1e-3, "DEL": 0.002, "COUN": BUFFER_MAX,
                      "CAB": False, "CSW": False}
        self.dcon = {"STAR": -10e-6, "STOP": 10e-6, "STEP": 1e-6, "DELT": 1e-6,
                     "DEL": 0.002, "CAB": False}
        self.sweep_count = 1
        self.armed: str | None = None       # "DELT" or "DCON"
        self.run: dict | None = None
        self.settings: dict[str, str] = {}
        self.wave = {"FUNC": "SIN", "AMPL": 2e-12, "FREQ": 1e3, "OFFS": 0.0, "DCYC": 50.0,
                     "DUR": math.inf}
        self.arb_staged: tuple[float, ...] = ()
        self.arb_slots: dict[int, tuple[float, ...]] = {n: () for n in range(5)}
        self.wave_state: str | None = None   # None, "armed", "running"
        self.wave_start = 0.0
        self.latest: dict | None = None
        self.fresh = False
        if hasattr(self, "bench"):
            self._apply_output()

    # ------------------------------------------------------------ DC output physics
    def _load_resistance(self, current: float) -> float:
        if self.faults.is_active(self.role, "compliance"):
            return OPEN_LOAD_OHM
        return self.bench.load_resistance(current)

    def _waveform(self) -> SourceWaveform | None:
        """What the output puts on the bench while a waveform is armed or running."""
        if self.wave_state is None or not self.output:
            return None
        w = self.wave
        slot = int(w["FUNC"][3:]) if w["FUNC"].startswith("ARB") else None
        return SourceWaveform(
            w["FUNC"], w["AMPL"], w["FREQ"], w["OFFS"], w["DCYC"] / 100.0,
            self.wave_start if self.wave_state == "running" else None,
            self.wave_start + w["DUR"], self.arb_slots[slot] if slot is not None else ())

    def _apply_output(self) -> None:
        """Put the (compliance-limited) DC current, or the waveform, on the bench."""
        self.bench.set_source_waveform(self._waveform())
        if self.wave_state is not None:
            self.bench.set_source_current(0.0)
            return
        if not self.output or self.run is not None:
            self.bench.set_source_current(0.0)
            self.meas_cond &= ~MEAS_COMPLIANCE
            return
        i = self.level
        r = self._load_resistance(i)
        if abs(i) * r > self.compliance:
            i = math.copysign(self.compliance / r, i)
            self.meas_cond |= MEAS_COMPLIANCE
            self.meas_event |= MEAS_COMPLIANCE
        else:
            self.meas_cond &= ~MEAS_COMPLIANCE
        self.bench.set_source_current(i)

    def _in_compliance(self, current: float) -> bool:
        return abs(current) * self._load_resistance(current) > self.compliance

    # ------------------------------------------------------------ delta and DCON
    def _conversion_period(self, delay: float) -> float:
        nplc = self.nv.nplc if self.nv is not None else 1.0
        return delay + nplc / 60.0 + 0.003

    def _arm(self, kind: str) -> None:
        if self.wave_state is not None:
            raise ScpiError(-221, "Settings conflict; waveform armed")
        if self.nv is None:
            raise ScpiError(-221, "Settings conflict; no 2182A on RS-232")
        if kind == "DCON" and self.dcon["STEP"] <= 0:
            raise ScpiError(-221)
        self.armed = kind

    def _start(self) -> None:
        if self.wave_state is not None:
            raise ScpiError(-221, "Settings conflict; waveform armed")
        if self.armed is None:
            raise ScpiError(-221, "Settings conflict; not armed")
        kind = self.armed
        if kind == "DELT":
            high, low = self.delta["HIGH"], self.delta["LOW"]
            count = self.delta["COUN"] * self.sweep_count
            n_readings = min(count, BUFFER_MAX)
            delay = self.delta["DEL"]
            cab = self.delta["CAB"]
        else:
            start, stop, step, d_i = (self.dcon[k] for k in ("STAR", "STOP", "STEP", "DELT"))
            if step > abs(stop - start) and stop != start:
                step = abs(stop - start) / 99.0
            n_readings = int(round(abs(stop - start) / step)) + 1 if step > 0 else 1
            direction = 1.0 if stop >= start else -1.0
            base = start + direction * step * (np.arange(n_readings + 2) - 1)
            sign = np.where(np.arange(n_readings + 2) % 2 == 0, 1.0, -1.0)
            levels = base + sign * d_i
            delay = self.dcon["DEL"]
            cab = self.dcon["CAB"]
            high = low = 0.0
        self.trace = []
        self.run = {"kind": kind, "t0": self.clock.now(), "done_conv": 0,
                    "conv": [], "n_readings": n_readings,
                    "period": self._conversion_period(delay), "cab": cab,
                    "high": high, "low": low,
                    "levels": None if kind == "DELT" else levels,
                    "base": None if kind == "DELT" else base}
        self.bench.set_source_current(0.0)

    def _level(self, k: int) -> float:
        run = self.run
        if run["kind"] == "DELT":
            return run["high"] if k % 2 == 0 else run["low"]
        return float(run["levels"][k])

    def _advance_run(self) -> None:
        run = self.run
        if run is None:
            return
        total_conv = run["n_readings"] + 2
        due = int((self.clock.now() - run["t0"]) / run["period"])
        due = min(due, total_conv)
        new = range(run["done_conv"], due)
        if not len(new):
            return
        levels = np.array([self._level(k) for k in new])
        # one sample-model evaluation per distinct level (delta has only two)
        uniq, inv = np.unique(levels, return_inverse=True)
        volts = np.array([self.bench.sample_voltage(float(i)) for i in uniq])[inv]
        times = run["t0"] + (np.array(new) + 1) * run["period"]
        emf = self.bench.thermal_emf()
        if self.nv is not None and not self.nv.auto[1]:
            rng = self.nv.range[1]
        else:
            rng = _nv_range(max(float(np.max(np.abs(volts))), 1e-9))
        sigma = self.nv.reading_noise(1, rng) if self.nv is not None else 1e-8
        noise = self.bench.noise(sigma, len(levels))
        for k, level, v, t, e in zip(new, levels, volts, times, noise, strict=True):
            comp = self._in_compliance(level)
            if comp:
                self.meas_cond |= MEAS_COMPLIANCE
                self.meas_event |= MEAS_COMPLIANCE
                raw = math.copysign(self.compliance, level)
            else:
                raw = v + emf + e
            if abs(raw) > 1.2 * rng:
                raw = math.inf
            run["conv"].append((float(level), raw, float(t), comp))
            if comp and run["cab"]:
                self.push_error(-200, "Execution error; compliance abort")
                self._stop_run()
                return
            self._reading_from(k)
        run["done_conv"] = due
        if due >= total_conv:
            self._stop_run()

    def _reading_from(self, k: int) -> None:
        """After conversion k, reading n = k − 2 uses conversions n, n+1, n+2."""
        run = self.run
        n = k - 2
        if n < 0 or n >= run["n_readings"]:
            return
        (ix, x, _, cx), (iy, y, _, cy), (iz, z, tz, cz) = run["conv"][n:n + 3]
        bad = not all(map(math.isfinite, (x, y, z)))
        dv = (x - 2 * y + z) / 4.0 * (-1) ** n
        avol = (x + 2 * y + z) / 4.0
        if run["kind"] == "DELT":
            d_i = (run["high"] - run["low"]) / 2.0
            source = run["high"] if n % 2 == 0 else run["low"]
        else:
            d_i = self.dcon["DELT"]
            source = float(run["base"][n + 1])
        reading = math.inf if bad else self._in_units(dv, d_i, avol, source)
        t0 = run["conv"][2][2]
        entry = {"READ": reading, "TST": tz - t0, "SOUR": source,
                 "AVOL": math.inf if bad else avol, "COMP": int(cx or cy or cz),
                 "RNUM": n, "ABST": tz}
        self.latest = entry
        self.fresh = True
        if len(self.trace) < self.trace_points:
            self.trace.append(entry)
            if len(self.trace) >= self.trace_points:
                self.meas_event |= MEAS_BUFFER_FULL
                self.meas_cond |= MEAS_BUFFER_FULL

    def _in_units(self, dv: float, d_i: float, avol: float, source: float) -> float:
        if self.unit == "OHMS":
            return dv / d_i if d_i else math.inf
        if self.unit == "SIEM":
            return d_i / dv if dv else math.inf
        if self.unit == "W":
            return abs(avol * source)
        return dv

    def _stop_run(self) -> None:
        self.run = None
        self.armed = None
        self._apply_output()

    def _abort(self, args=None, s=None) -> None:
        self._advance_run()
        self.run = None
        self.armed = None
        self._apply_output()

    # ------------------------------------------------------------------ dispatch
    def handle(self, line: str) -> list[str]:
        with self.lock:
            self._advance_run()
            return super().handle(line)

    def _fmt_entry(self, e: dict) -> list[str]:
        out = []
        for el in ELEMENT_ORDER:
            if el not in self.elements:
                continue
            if el == "TST":
                out.append(f"{e['TST']:+.6E}")
            elif el in ("READ", "AVOL", "SOUR"):
                v = e[el]
                out.append(OVERFLOW if not math.isfinite(v) else f"{v:+.6E}")
            else:
                out.append(str(int(e[el])))
        return out

    def _trace_data(self, args, s) -> str:
        return ",".join(x for e in self.trace for x in self._fmt_entry(e))

    def _sense_data(self, args, s) -> str:
        if self.latest is None:
            raise ScpiError(-230)
        self.fresh = False
        v = self.latest["READ"]
        return OVERFLOW if not math.isfinite(v) else f"{v:+.6E}"

    def _sense_fresh(self, args, s) -> str:
        if not self.fresh:
            raise ScpiError(-230)
        return self._sense_data(args, s)

    def _set_level(self, args, s) -> None:
        self.level = parse_float(args, -MAX_I, MAX_I, default=0.0)
        if self.auto_range:
            self.range = _source_range(abs(self.level))
        elif abs(self.level) > self.range * 1.05:
            self.range = _source_range(abs(self.level))
        self._apply_output()

    def _set_output(self, args, s) -> None:
        self.output = parse_bool(args)
        self._apply_output()

    def _set_elements(self, args, s) -> None:
        items = [x.strip().upper() for x in args.split(",") if x.strip()]
        allowed = set(ELEMENT_ORDER) | {"ALL", "DEF", "UNIT"}
        for x in items:
            if x not in allowed:
                raise ScpiError(-224)
        if "ALL" in items:
            items = list(ELEMENT_ORDER)
        if "DEF" in items:
            items = ["READ", "TST"]
        self.elements = [e for e in ELEMENT_ORDER if e in items]

    def _serial_send(self, args, s) -> None:
        """Forward a command to the 2182A; a query's reply waits in the serial buffer."""
        if self.nv is None:
            return
        cmd = unquote(args)
        replies, busy = self.nv.execute(cmd)
        ready = self.clock.now() + busy + 0.01
        for r in replies:
            self._serial_reply.append((ready, r))

    def _serial_enter(self, args, s) -> str:
        if not self._serial_reply:
            return ""
        ready, reply = self._serial_reply.pop(0)
        wait = ready - self.clock.now()
        if wait > 0:
            self.clock.sleep(min(wait, 10.0))
        return reply

    def _store(self, key: str, default: str) -> None:
        self.settings.setdefault(key, default)

        def setter(a, s):
            self.settings[key] = unquote(a)

        self.add(key, setter=setter, getter=lambda a, s: self.settings.get(key, default))

    def _register(self) -> None:
        add = self.add
        add("OUTPut[:STATe]", setter=self._set_output, getter=lambda a, s: str(int(self.output)))
        add("[SOURce]:CURRent[:LEVel][:IMMediate][:AMPLitude]", setter=self._set_level,
            getter=lambda a, s: f"{self.level:+.6E}")
        add("[SOURce]:CURRent:RANGe",
            setter=lambda a, s: setattr(self, "range",
                                        _source_range(parse_float(a, -MAX_I, MAX_I))),
            getter=lambda a, s: f"{self.range:+.6E}")
        add("[SOURce]:CURRent:RANGe:AUTO",
            setter=lambda a, s: setattr(self, "auto_range", parse_bool(a)),
            getter=lambda a, s: str(int(self.auto_range)))

        def set_comp(a, s):
            self.compliance = parse_float(a, 0.1, 105.0, default=10.0)
            self._apply_output()

        add("[SOURce]:CURRent:COMPliance", setter=set_comp,
            getter=lambda a, s: f"{self.compliance:+.6E}")
        add("[SOURce]:DELay", setter=lambda a, s: setattr(
            self, "source_delay", parse_float(a, 0.001, 999999.999)),
            getter=lambda a, s: f"{self.source_delay:+.6E}")
        add("[SOURce]:CLEar[:IMMediate]", setter=lambda a, s: self._set_output("0", s))

        def delta_setter(key, low, high):
            def f(a, s):
                v = parse_float(a, low, high)
                self.delta[key] = v
                if key == "HIGH":
                    self.delta["LOW"] = -v
            return f

        add("[SOURce]:DELTa:HIGH", setter=delta_setter("HIGH", 0.0, MAX_I),
            getter=lambda a, s: f"{self.delta['HIGH']:+.6E}")
        add("[SOURce]:DELTa:LOW", setter=delta_setter("LOW", -MAX_I, 0.0),
            getter=lambda a, s: f"{self.delta['LOW']:+.6E}")
        add("[SOURce]:DELTa:DELay", setter=delta_setter("DEL", 0.0, 9999.999),
            getter=lambda a, s: f"{self.delta['DEL']:+.6E}")

        def count_setter(key: str):
            def f(a, s):
                if a.strip().upper().startswith("INF"):
                    v = BUFFER_MAX
                else:
                    v = int(parse_float(a, 1, BUFFER_MAX))
                if key == "SWE":
                    self.sweep_count = v
                else:
                    self.delta[key] = v
            return f

        add("[SOURce]:DELTa:COUNt", setter=count_setter("COUN"),
            getter=lambda a, s: f"{self.delta['COUN']:+.6E}")
        add("[SOURce]:SWEep:COUNt", setter=count_setter("SWE"),
            getter=lambda a, s: f"{self.sweep_count:+.6E}")
        for key in ("CAB", "CSW"):
            add(f"[SOURce]:DELTa:{'CABort' if key == 'CAB' else 'CSWitch'}",
                setter=lambda a, s, k=key: self.delta.__setitem__(k, parse_bool(a)),
                getter=lambda a, s, k=key: str(int(self.delta[k])))
        add("[SOURce]:DELTa:NVPResent", getter=lambda a, s: str(int(self.nv is not None)))
        add("[SOURce]:DELTa:ARM", setter=lambda a, s: self._arm("DELT"),
            getter=lambda a, s: str(int(self.armed == "DELT")))
        add("[SOURce]:SWEep:ABORt", setter=self._abort)
        add("ABORt", setter=self._abort)
        add("INITiate[:IMMediate]", setter=lambda a, s: self._start())

        def dcon_setter(key, low, high):
            def f(a, s):
                self.dcon[key] = parse_float(a, low, high)
            return f

        for key, name, low, high in (("STAR", "STARt", -MAX_I, MAX_I),
                                     ("STOP", "STOP", -MAX_I, MAX_I),
                                     ("STEP", "STEP", 0.0, MAX_I),
                                     ("DELT", "DELTa", 0.0, MAX_I),
                                     ("DEL", "DELay", 0.0, 9999.999)):
            add(f"[SOURce]:DCONductance:{name}", setter=dcon_setter(key, low, high),
                getter=lambda a, s, k=key: f"{self.dcon[k]:+.6E}")
        add("[SOURce]:DCONductance:CABort",
            setter=lambda a, s: self.dcon.__setitem__("CAB", parse_bool(a)),
            getter=lambda a, s: str(int(self.dcon["CAB"])))
        add("[SOURce]:DCONductance:NVPResent", getter=lambda a, s: str(int(self.nv is not None)))
        add("[SOURce]:DCONductance:NVZero", getter=lambda a, s: f"{self.bench.thermal_emf():+.6E}")
        add("[SOURce]:DCONductance:ARM", setter=lambda a, s: self._arm("DCON"),
            getter=lambda a, s: str(int(self.armed == "DCON")))
        add("[SENSe]:DATA[:LATest]", getter=self._sense_data)
        add("[SENSe]:DATA:FRESh", getter=self._sense_fresh)
        add("TRACe:POINts",
            setter=lambda a, s: setattr(self, "trace_points", int(parse_float(a, 1, BUFFER_MAX))),
            getter=lambda a, s: str(self.trace_points))
        add("TRACe:POINts:ACTual", getter=lambda a, s: str(len(self.trace)))
        add("TRACe:FREE", getter=lambda a, s: f"{(BUFFER_MAX - len(self.trace)) * 8},"
                                               f"{len(self.trace) * 8}")
        add("TRACe:CLEar", setter=lambda a, s: self.trace.clear())
        add("TRACe:DATA", getter=self._trace_data)
        add("TRACe:TSTamp:FORMat",
            setter=lambda a, s: setattr(self, "tst_format", a.strip().upper()[:4]),
            getter=lambda a, s: self.tst_format)
        add("FORMat:ELEMents", setter=self._set_elements, getter=lambda a, s: ",".join(
            self.elements))

        def set_unit(a, s):
            u = a.strip().upper()
            u = {"OHM": "OHMS", "SIEMENS": "SIEM", "VOLT": "V", "WATT": "W"}.get(u, u)
            if u not in ("V", "OHMS", "W", "SIEM"):
                raise ScpiError(-224)
            self.unit = u

        add("UNIT[:VOLTage][:DC]", setter=set_unit, getter=lambda a, s: self.unit)
        add("SYSTem:COMMunicate:SERial:SEND", setter=self._serial_send)
        add("SYSTem:COMMunicate:SERial:ENTer", getter=self._serial_enter)
        add("STATus:MEASurement[:EVENt]", getter=self._meas_event)
        add("STATus:MEASurement:CONDition", getter=lambda a, s: str(self._meas_condition()))
        add("STATus:MEASurement:ENABle",
            setter=lambda a, s: setattr(self, "meas_enable", int(parse_float(a, 0, 65535))),
            getter=lambda a, s: str(self.meas_enable))
        for reg in ("OPERation", "QUEStionable"):
            add(f"STATus:{reg}[:EVENt]", getter=lambda a, s: "0")
            add(f"STATus:{reg}:CONDition", getter=lambda a, s: "0")
            self._store(f"STATus:{reg}:ENABle", "0")
        for key, default in (("OUTPut:LTEarth", "0"), ("OUTPut:ISHield", "OLOW"),
                             ("OUTPut:RESPonse", "FAST"), ("[SOURce]:CURRent:FILTer", "0"),
                             ("DISPlay:ENABle", "1"), ("ARM:SOURce", "IMM"),
                             ("ARM:ILINe", "1"), ("ARM:OLINe", "2"), ("ARM:TIMer", "0.1"),
                             ("ARM:DIRection", "ACC"), ("ARM:OUTPut", "NONE"),
                             ("TRIGger:SOURce", "IMM"), ("TRIGger:ILINe", "1"),
                             ("TRIGger:OLINe", "2"), ("TRIGger:OUTPut", "NONE"),
                             ("TRIGger:DIRection", "ACC"),
                             ("TRACe:FEED", "SENS1"), ("TRACe:FEED:CONTrol", "NEXT"),
                             ("FORMat[:DATA]", "ASC"), ("FORMat:BORDer", "SWAP"),
                             ("[SOURce]:WAVE:RANGing", "BEST"), ("[SOURce]:WAVE:PMARker", "0"),
                             ("[SOURce]:WAVE:PMARker:STATe", "0"),
                             ("[SOURce]:WAVE:PMARker:OLINe", "1"),
                             ("[SOURce]:PDELta:HIGH", "0.001"), ("[SOURce]:PDELta:LOW", "0"),
                             ("[SOURce]:PDELta:WIDTh", "0.00011"),
                             ("SYSTem:COMMunicate:SERial:BAUD", "19200"),
                             ("SYSTem:COMMunicate:SERial:TERMinator", "LF"),
                             ("SYSTem:BEEPer[:STATe]", "1"), ("SYSTem:BEEPer:IMMediate", "0")):
            self._store(key, default)
        self._register_waveform()
        for key in ("*TRG", "SYSTem:KEY", "SYSTem:CLEar"):
            add(key, setter=lambda a, s: None)

    # ------------------------------------------------------------------ waveform
    def _wave_arm(self, args=None, s=None) -> None:
        if self.run is not None or self.armed is not None:
            raise ScpiError(-221, "Settings conflict; delta/DCON armed")
        if self.wave["FUNC"].startswith("ARB") and not self.arb_slots[int(
                self.wave["FUNC"][3:])]:
            raise ScpiError(-221, "Settings conflict; empty arbitrary waveform")
        self.wave_state = "armed"
        self.output = True
        self._apply_output()

    def _wave_init(self, args=None, s=None) -> None:
        if self.wave_state is None:
            raise ScpiError(-221, "Settings conflict; waveform not armed")
        self.wave_state = "running"
        self.wave_start = self.clock.now()
        self._apply_output()

    def _wave_abort(self, args=None, s=None) -> None:
        if self.wave_state is not None:
            self.wave_state = None
            self.output = False
            self._apply_output()

    def _wave_setter(self, key: str, low: float, high: float):
        def f(a, s):
            if self.wave_state is not None:
                raise ScpiError(-221, "Settings conflict; waveform armed")
            value = parse_float(a, low, high)
            amp = value if key == "AMPL" else self.wave["AMPL"]
            off = value if key == "OFFS" else self.wave["OFFS"]
            if key in ("AMPL", "OFFS") and abs(amp) + abs(off) > MAX_I:
                raise ScpiError(-222, "Data out of range; amplitude + offset > 105 mA")
            self.wave[key] = value
        return f

    def _set_wave_function(self, a, s) -> None:
        func = WAVE_FUNCTIONS.get(a.strip().upper())
        if func is None:
            raise ScpiError(-224)
        if self.wave_state is not None:
            raise ScpiError(-221, "Settings conflict; waveform armed")
        self.wave["FUNC"] = func

    def _set_duration(self, per_cycle: bool):
        def f(a, s):
            if a.strip().upper().startswith("INF"):
                self.wave["DUR"] = math.inf
                return
            if per_cycle:
                self.wave["DUR"] = parse_float(a, 1e-3, 99999999900) / self.wave["FREQ"]
            else:
                self.wave["DUR"] = parse_float(a, 100e-9, 999999.999)
        return f

    def _get_duration(self, per_cycle: bool):
        def f(a, s):
            d = self.wave["DUR"]
            if not math.isfinite(d):
                return INF_REPLY
            return f"{d * self.wave['FREQ'] if per_cycle else d:+.6E}"
        return f

    def _set_arb_data(self, a, s) -> None:
        points = tuple(parse_float(x, -1.0, 1.0) for x in a.split(",") if x.strip())
        if not 2 <= len(points) <= 65536:
            raise ScpiError(-222)
        self.arb_staged = points

    def _register_waveform(self) -> None:
        add = self.add
        add("[SOURce]:WAVE:FUNCtion", setter=self._set_wave_function,
            getter=lambda a, s: self.wave["FUNC"])
        for key, name, low, high in (("AMPL", "AMPLitude", 2e-12, MAX_I),
                                     ("FREQ", "FREQuency", 1e-3, 1e5),
                                     ("OFFS", "OFFSet", -MAX_I, MAX_I),
                                     ("DCYC", "DCYCle", 0.0, 100.0)):
            add(f"[SOURce]:WAVE:{name}", setter=self._wave_setter(key, low, high),
                getter=lambda a, s, k=key: f"{self.wave[k]:+.6E}")
        add("[SOURce]:WAVE:DURation:TIME", setter=self._set_duration(False),
            getter=self._get_duration(False))
        add("[SOURce]:WAVE:DURation:CYCLes", setter=self._set_duration(True),
            getter=self._get_duration(True))
        add("[SOURce]:WAVE:ARM", setter=self._wave_arm,
            getter=lambda a, s: str(int(self.wave_state is not None)))
        add("[SOURce]:WAVE:INITiate", setter=self._wave_init)
        add("[SOURce]:WAVE:ABORt", setter=self._wave_abort)
        add("[SOURce]:WAVE:ARB:DATA", setter=self._set_arb_data,
            getter=lambda a, s: ",".join(f"{v:+.6E}" for v in self.arb_staged))
        add("[SOURce]:WAVE:ARB:COPY", setter=lambda a, s: self.arb_slots.__setitem__(
            int(parse_float(a, 1, 4)), self.arb_staged))

    def _meas_condition(self) -> int:
        if self.output and self.run is None:
            self._apply_output()
        return self.meas_cond

    def _meas_event(self, args, s) -> str:
        self._meas_condition()
        v, self.meas_event = self.meas_event, 0
        return str(v)



def _nv_range(volts: float) -> float:
    """The 2182A channel-1 range auto-ranging would pick for ``volts``."""
    for r in (0.01, 0.1, 1.0, 10.0, 100.0):
        if volts <= r:
            return r
    return 100.0


def _source_range(value: float) -> float:
    for r in (2e-9, 20e-9, 200e-9, 2e-6, 20e-6, 200e-6, 2e-3, 20e-3, 100e-3):
        if abs(value) <= r * 1.0000001:
            return r
    return 100e-3
