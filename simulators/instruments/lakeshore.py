"""Lake Shore 335, 340 and 350 emulators: the 336's closed loop with each model's differences.

The physics (cryostat, PID, ramp, zone table, heater faults) is the 336 emulator's, so a
controller swap changes the command set and not the thermal behaviour. What differs is data:
the inputs, the heater range table (a 340/350 has five ranges, each a factor 10 in power, so
its top three ranges are the 336's Low/Medium/High), and on the 340 the older grammar: ``CSET``
and ``CMODE`` instead of ``OUTMODE``, ``RANGE n``/``HTR?``/``HTRST?`` without an output, no
``HTRSET``, and zones without input and ramp rate.
"""

from __future__ import annotations

from simulators.instruments.lakeshore336 import LakeShore336Emulator
from simulators.instruments.lakeshore_protocol import Bad, Unknown, lsnum

FIVE_RANGES = {0: 0.0, 1: 1e-4, 2: 1e-3, 3: 1e-2, 4: 0.1, 5: 1.0}


class _Model(LakeShore336Emulator):
    """Outputs outside ``OUTPUT_RANGES`` do not exist on the model (ESR bit 4)."""

    def _out(self, arg: str, allowed=(1, 2, 3, 4)):
        return super()._out(arg, tuple(n for n in allowed if n in self.OUTPUT_RANGES))


class LakeShore335Emulator(_Model):
    IDN = "LSCI,MODEL335,LSA2B4C,2.4"
    INPUTS = "AB"
    OUTPUT_RANGES = {1: (0, 1, 2, 3), 2: (0, 1, 2, 3)}

    def _c_htrset(self, q, a):
        """``HTRSET out,type,res,max,user,disp``: the 335 puts the output type first."""
        o = self._out(a[0], (1, 2))
        if q:
            return (f"{getattr(o, 'output_type', 0)},{o.heater_res},{o.max_current},"
                    f"{lsnum(o.user_current, 4)},{o.display}")
        output_type = int(float(a[1]))
        if output_type not in ((0, 1) if o.number == 2 else (0,)):
            raise Bad(a[1])
        super()._c_htrset(q, [a[0], *a[2:]])
        o.output_type = output_type


class LakeShore350Emulator(_Model):
    IDN = "LSCI,MODEL350,LSA1Z9Q/#######,1.5"
    RANGE_FACTOR = FIVE_RANGES
    OUTPUT_RANGES = {1: (0, 1, 2, 3, 4, 5), 2: (0, 1, 2, 3, 4, 5), 3: (0, 1), 4: (0, 1)}


class LakeShore340Emulator(_Model):
    IDN = "LSCI,MODEL340,340123,061407"
    INPUTS = "AB"
    RANGE_FACTOR = FIVE_RANGES
    OUTPUT_RANGES = {1: (0, 1, 2, 3, 4, 5), 2: (0,)}
    #: CMODE -> the loop's mode: manual PID, zone, open loop; AutoTune runs as PID here.
    CMODE_TO_MODE = {1: 1, 2: 2, 3: 3, 4: 1, 5: 1, 6: 1}

    def reset(self) -> None:
        super().reset()
        for o in self.outputs.values():
            o.cset = [("A", "B")[o.number - 1] if o.number <= 2 else "A", 1,
                      int(o.number == 1), 0]
            o.cmode = 1
            self._apply_cset(o)

    def _apply_cset(self, o) -> None:
        o.input = "AB".index(o.cset[0]) + 1
        o.mode = self.CMODE_TO_MODE[o.cmode] if o.cset[2] else 0
        o.integral = 0.0

    # loop 1 is the only heater: these take no output number on the 340
    def _c_range(self, q, a):
        return super()._c_range(q, ["1", *a])

    def _c_htr(self, q, a):
        if a:
            raise Bad(",".join(a))
        return super()._c_htr(q, ["1"])

    def _c_htrst(self, q, a):
        return super()._c_htrst(q, ["1"])

    def _c_krdg(self, q, a):
        return f"{self._kelvin(self._input(a[0] if a else 'A')):+.4E}"

    def _c_cset(self, q, a):
        o = self._out(a[0], (1, 2))
        if q:
            return ",".join(str(v) for v in o.cset)
        inp = a[1].strip().upper() if len(a) > 1 and a[1] else o.cset[0]
        if inp not in self.INPUTS:
            raise Bad(a[1])
        rest = [int(float(x)) if x else old for x, old in zip(a[2:5], o.cset[1:], strict=False)]
        new = [inp, *rest, *o.cset[1 + len(rest):]]
        if new[1] not in (1, 2, 3) or new[2] not in (0, 1) or new[3] not in (0, 1):
            raise Bad(",".join(a))
        o.cset = new
        self._apply_cset(o)

    def _c_cmode(self, q, a):
        o = self._out(a[0], (1, 2))
        if q:
            return str(o.cmode)
        mode = int(float(a[1]))
        if mode not in self.CMODE_TO_MODE:
            raise Bad(a[1])
        o.cmode = mode
        self._apply_cset(o)

    def _c_outmode(self, q, a):
        raise Unknown("OUTMODE")      # a 336/350 command

    def _c_htrset(self, q, a):
        raise Unknown("HTRSET")       # the 340 sets its heater limit with CLIMIT

    def _c_zone(self, q, a):
        """``ZONE loop,zone,top,P,I,D,mout,range``: six values, no input or rate."""
        o = self._out(a[0], (1, 2))
        z = int(float(a[1]))
        if not 1 <= z <= 10:
            raise Bad(a[1])
        if q:
            e = o.zones.get(z, [0.0, 50.0, 20.0, 0.0, 0.0, 0])
            return (f"{lsnum(e[0], 6)},{lsnum(e[1], 5)},{lsnum(e[2], 5)},{lsnum(e[3], 4)},"
                    f"{lsnum(e[4], 4)},{int(e[5])}")
        values = [float(x) for x in a[2:8]]
        if len(values) != 6 or int(values[5]) not in self.OUTPUT_RANGES[1]:
            raise Bad(",".join(a))
        o.zones[z] = values
