"""Lake Shore 336 temperature controller: its command set, CR LF replies, and the closed loop.

Output 1 drives the stage heater. At every cryostat integration step the emulator moves the
ramping setpoint and computes the PID output exactly as the front panel does, so lag, overshoot
and stabilisation are properties of the PID values an operator sets, not scripted curves.
"""

from __future__ import annotations

import math

from simulators.clock import SimClock
from simulators.cryostat import Cryostat
from simulators.faults import FaultBoard
from simulators.instruments.lakeshore_protocol import Bad as _Bad
from simulators.instruments.lakeshore_protocol import LakeShoreProtocol, lsnum

IDN = "LSCI,MODEL336,LSA2CMQ/LSA2C8R,2.9"
INPUTS = "ABCD"
RANGE_FACTOR = {0: 0.0, 1: 0.01, 2: 0.1, 3: 1.0}    # power fraction of Low/Med/High
MAX_CURRENT = {1: 0.707, 2: 1.0, 3: 1.141, 4: 2.0}
HEATER_OHM = {1: 25.0, 2: 50.0}


class _Output:
    def __init__(self, number: int) -> None:
        self.number = number
        self.setpoint = 0.0
        self.target = 0.0
        self.ramp_on = False
        self.rate = 0.0           # K/min
        self.ramping = False
        self.range = 0
        self.mode = 1 if number in (1, 2) else 0
        self.input = number if number <= 2 else 0
        self.powerup = 0
        self.p, self.i, self.d = 50.0, 20.0, 0.0
        self.mout = 0.0
        self.heater_res = 2
        self.max_current = 2
        self.user_current = 1.0
        self.display = 1
        self.integral = 0.0
        self.prev_error: float | None = None
        self.percent = 0.0
        self.status = 0           # 0 ok, 1 open, 2 short
        self.zones: dict[int, list[float]] = {}


class LakeShore336Emulator(LakeShoreProtocol):
    role = "temperature"
    IDN = IDN
    INPUTS = INPUTS
    RANGE_FACTOR = RANGE_FACTOR
    #: Heater range indices each output accepts.
    OUTPUT_RANGES = {1: (0, 1, 2, 3), 2: (0, 1, 2, 3), 3: (0, 1), 4: (0, 1)}

    def __init__(self, cryostat: Cryostat, clock: SimClock, faults: FaultBoard,
                 noise) -> None:
        super().__init__()
        self.cryostat = cryostat
        self.clock = clock
        self.faults = faults
        self.noise = noise
        self.loop_gain = 0.0
        self.reset()
        cryostat.controller = self

    def reset(self) -> None:
        self.outputs = {n: _Output(n) for n in (1, 2, 3, 4)}
        t = self.cryostat.stage_temperature
        for o in self.outputs.values():
            o.setpoint = o.target = round(t, 3)
        self.intype = {c: [3, 1, 0, 1, 1] if c in "AB" else [0, 0, 0, 0, 1]
                       for c in self.INPUTS}
        self.inname = {"A": "Stage", "B": "Cell", "C": "Input C", "D": "Input D"}
        self.tlimit = {c: 0.0 for c in self.INPUTS}
        self.esr = 0
        self.ese = 0
        self.sre = 0
        self.tune = 0

    # -------------------------------------------------------------- the control loop
    def heater_power(self, sim_time: float, stage_K: float, sample_K: float,
                     dt: float) -> float:
        """PID and ramp of outputs 1–2 for one integration step; returns heater power W."""
        total = 0.0
        self.loop_gain = 0.0
        for n in (1, 2):
            o = self.outputs[n]
            self._ramp(o, dt)
            fault = self._heater_fault()
            if n == 1 and fault:
                if o.range:
                    o.range = 0
                o.status = fault
            if o.range == 0 or o.mode == 0:
                o.percent = 0.0
                o.integral = 0.0
                continue
            measured = {1: stage_K, 2: sample_K}.get(o.input)
            if o.mode == 3 or measured is None:
                pct = o.mout
            else:
                p, i, d = o.p, o.i, o.d
                if o.mode == 2:
                    zone = self._zone(o)
                    if zone is not None:
                        p, i, d = zone[1], zone[2], zone[3]
                        if zone[5]:
                            o.range = int(zone[5])
                error = o.setpoint - measured
                deriv = 0.0 if o.prev_error is None else (error - o.prev_error) / dt
                o.prev_error = error
                t_d = (d / 100.0) * (1000.0 / max(i, 0.1)) / 4.0
                unclamped = p * (error + (i / 1000.0) * o.integral + t_d * deriv) + o.mout
                # conditional integration: no wind-up while the output is saturated
                if (0.0 < unclamped < 100.0) or (unclamped >= 100.0 and error < 0) or (
                        unclamped <= 0.0 and error > 0):
                    o.integral += error * dt
                pct = p * (error + (i / 1000.0) * o.integral + t_d * deriv) + o.mout
            o.percent = min(100.0, max(0.0, pct))
            if n == 1:
                i_max = MAX_CURRENT.get(o.max_current, o.user_current)
                if o.max_current == 0:
                    i_max = o.user_current
                full = i_max ** 2 * HEATER_OHM[o.heater_res] * self.RANGE_FACTOR[o.range]
                total += (o.percent / 100.0) ** 2 * full
                if o.mode in (1, 2) and measured is not None:
                    # dP/dT of the proportional action: tells the cryostat how finely to step
                    self.loop_gain += o.p * 2.0 * max(o.percent, 1.0) / 1e4 * full
            else:
                # output 2: the small heater on the cell (25 Ω, 1 A max, same ranges)
                total += (o.percent / 100.0) ** 2 * 25.0 * self.RANGE_FACTOR[o.range] * 0.1
        return total

    def _zone(self, o: _Output):
        for z in sorted(o.zones):
            entry = o.zones[z]
            if o.setpoint <= entry[0]:
                return entry
        return None

    @staticmethod
    def _ramp(o: _Output, dt: float) -> None:
        if not o.ramping:
            return
        step = o.rate / 60.0 * dt
        diff = o.target - o.setpoint
        if abs(diff) <= step:
            o.setpoint = o.target
            o.ramping = False
        else:
            o.setpoint += math.copysign(step, diff)

    def _heater_fault(self) -> int:
        if self.faults.is_active(self.role, "heater_open"):
            return 1
        if self.faults.is_active(self.role, "heater_short"):
            return 2
        return 0

    # ---------------------------------------------------------------- readings
    def _kelvin(self, ch: str) -> float:
        if self.intype[ch][0] == 0:
            return 0.0
        if ch == "A":
            t = self.cryostat.stage_temperature
        elif ch == "B":
            t = self.cryostat.temperature
        else:
            return 0.0
        return t + self.noise(2e-4 + 2e-5 * t)

    @staticmethod
    def _sensor_ohms(t: float) -> float:
        """Cernox-like resistance (Ω) of a temperature (K)."""
        return 40.0 + 3.0e4 * max(t, 0.5) ** -1.25 if t > 0 else 0.0

    # ------------------------------------------------------------------ parser
    def advance(self) -> None:
        self.cryostat.advance()

    def _out(self, arg: str, allowed=(1, 2, 3, 4)) -> _Output:
        n = int(float(arg))
        if n not in allowed:
            raise _Bad(arg)
        return self.outputs[n]

    def _input(self, arg: str) -> str:
        a = arg.strip().upper()
        if a not in self.INPUTS:
            raise _Bad(arg)
        return a

    # ---------------------------------------------------------------- readings
    def _c_krdg(self, q, a):
        if a and a[0] == "0":
            return ",".join(lsnum(self._kelvin(c)) for c in self.INPUTS)
        return lsnum(self._kelvin(self._input(a[0] if a else "A")))

    def _c_crdg(self, q, a):
        if a and a[0] == "0":
            return ",".join(lsnum(self._kelvin(c) - 273.15) for c in self.INPUTS)
        ch = self._input(a[0] if a else "A")
        k = self._kelvin(ch)
        return lsnum(k - 273.15 if k else 0.0)

    def _c_srdg(self, q, a):
        if a and a[0] == "0":
            return ",".join(lsnum(self._sensor_ohms(self._kelvin(c))) for c in self.INPUTS)
        return lsnum(self._sensor_ohms(self._kelvin(self._input(a[0] if a else "A"))))

    def _c_rdgst(self, q, a):
        ch = self._input(a[0] if a else "A")
        return "0" if self.intype[ch][0] else "1"

    # ---------------------------------------------------------------- outputs
    def _c_setp(self, q, a):
        o = self._out(a[0])
        if q:
            return lsnum(o.setpoint, 6)
        value = float(a[1])
        if not (0.0 <= value <= 1500.0):
            raise _Bad(a[1])
        o.target = value
        if o.ramp_on and o.rate > 0:
            o.ramping = o.target != o.setpoint
        else:
            o.setpoint = value
            o.ramping = False

    def _c_ramp(self, q, a):
        o = self._out(a[0])
        if q:
            return f"{int(o.ramp_on)},{lsnum(o.rate, 4) if o.rate else '+0.0'}"
        on = int(float(a[1]))
        rate = float(a[2]) if len(a) > 2 else o.rate
        if on not in (0, 1) or not (0.0 <= rate <= 100.0):
            raise _Bad(",".join(a))
        o.ramp_on, o.rate = bool(on), rate
        if not o.ramp_on:
            o.ramping = False

    def _c_rampst(self, q, a):
        return str(int(self._out(a[0]).ramping))

    def _c_range(self, q, a):
        o = self._out(a[0])
        if q:
            return str(o.range)
        r = int(float(a[1]))
        if r not in self.OUTPUT_RANGES[o.number]:
            raise _Bad(a[1])
        fault = self._heater_fault() if o.number == 1 else 0
        if fault and r:
            o.status = fault
            o.range = 0
            return None
        o.range = r
        if r:
            o.status = 0

    def _c_htr(self, q, a):
        """Output in % of range. Outputs 3–4 (voltage outputs) answer their AOUT? value, as
        QCoDeS's snapshot asks ``HTR?`` of all four outputs (the manual lists 1–2)."""
        o = self._out(a[0])
        return lsnum(o.percent, 5) if o.percent else "+0.0000"

    def _c_aout(self, q, a):
        return lsnum(self._out(a[0], (3, 4)).percent, 5)

    def _c_htrst(self, q, a):
        o = self._out(a[0], (1, 2))
        if o.number == 1 and self._heater_fault():
            o.status = self._heater_fault()
        return str(o.status)

    def _c_mout(self, q, a):
        o = self._out(a[0])
        if q:
            return lsnum(o.mout, 5) if o.mout else "+0.0000"
        value = float(a[1])
        if not (0.0 <= value <= 100.0):
            raise _Bad(a[1])
        o.mout = value

    def _c_pid(self, q, a):
        o = self._out(a[0], (1, 2))
        if q:
            return f"{o.p:+07.1f},{o.i:+07.1f},{o.d:+06.1f}"
        p, i, d = (float(x) for x in a[1:4])
        if not (0.1 <= p <= 1000 and 0.1 <= i <= 1000 and 0 <= d <= 200):
            raise _Bad(",".join(a))
        o.p, o.i, o.d = p, i, d

    def _c_outmode(self, q, a):
        o = self._out(a[0])
        if q:
            return f"{o.mode},{o.input},{o.powerup}"
        mode, inp = int(float(a[1])), int(float(a[2]))
        if not (0 <= mode <= 5 and 0 <= inp <= 8):
            raise _Bad(",".join(a))
        o.mode, o.input = mode, inp
        if len(a) > 3:
            o.powerup = int(float(a[3]))
        o.integral = 0.0

    def _c_htrset(self, q, a):
        if q and int(float(a[0])) in (3, 4):
            # a voltage output has no heater setup; answered (all zero) rather than left to
            # time out, since QCoDeS's snapshot asks HTRSET? of every output
            return "0,0,+0.000,0"
        o = self._out(a[0], (1, 2))
        if q:
            return f"{o.heater_res},{o.max_current},{lsnum(o.user_current, 4)},{o.display}"
        o.heater_res = int(float(a[1]))
        o.max_current = int(float(a[2]))
        o.user_current = float(a[3]) if len(a) > 3 else o.user_current
        o.display = int(float(a[4])) if len(a) > 4 else o.display
        if o.heater_res not in (1, 2) or o.max_current not in (0, 1, 2, 3, 4):
            raise _Bad(",".join(a))

    def _c_zone(self, q, a):
        o = self._out(a[0], (1, 2))
        z = int(float(a[1]))
        if not 1 <= z <= 10:
            raise _Bad(a[1])
        if q:
            e = o.zones.get(z, [0.0, 50.0, 20.0, 0.0, 0.0, 0, 0, 0.0])
            return (f"{lsnum(e[0], 6)},{lsnum(e[1], 5)},{lsnum(e[2], 5)},{lsnum(e[3], 4)},"
                    f"{lsnum(e[4], 4)},{int(e[5])},{int(e[6])},{lsnum(e[7], 4)}")
        o.zones[z] = [float(x) for x in a[2:10]]

    def _c_intype(self, q, a):
        ch = self._input(a[0])
        if q:
            return ",".join(str(v) for v in self.intype[ch])
        self.intype[ch] = [int(float(x)) for x in a[1:6]]

    def _c_inname(self, q, a):
        ch = self._input(a[0])
        if q:
            return self.inname[ch]
        self.inname[ch] = a[1].strip('"')[:15]

    def _c_incrv(self, q, a):
        ch = self._input(a[0])
        return "21" if q and ch in "AB" else ("0" if q else None)

    def _c_crvhdr(self, q, a):
        return "CX-1050-SD     ,X12345    ,3,+325.000,1" if q else None

    def _c_tlimit(self, q, a):
        ch = self._input(a[0])
        if q:
            return lsnum(self.tlimit[ch], 6)
        self.tlimit[ch] = float(a[1])

    def _c_atune(self, q, a):
        o = self._out(a[0], (1, 2))
        self.tune = o.number

    def _c_tunest(self, q, a):
        return "0,0,0,0"

    def _c_alarm(self, q, a):
        return "0,0,+0.0000,+0.0000,+0.0000,0,0,0" if q else None

    def _c_alarmst(self, q, a):
        return "0,0"

    def _c_emul(self, q, a):
        return "0" if q else None
