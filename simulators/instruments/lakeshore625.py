"""Lake Shore 625 magnet supply: Lake Shore grammar and CR LF replies over the magnet model.

The supply current ramps to ``SETI`` (or ``SETF`` / coil constant) at ``RATE`` at once, as the
625 does; ``STOP`` holds it where it is. The persistent switch heater follows ``PSH`` through
its warming/cooling time and refuses to turn on unless the output equals the current it was
turned off at (``PSHIS?``); a quench (the lab's ``quench`` fault) collapses the coil current
and latches operational error bit 5 until ``*RST``. ``QNCH`` settings are stored and read back.
"""

from __future__ import annotations

from simulators.faults import FaultBoard
from simulators.instruments.lakeshore_protocol import Bad, LakeShoreProtocol
from simulators.magnet import MagnetModel

IDN = "LSCI,MODEL625,6251143,1.1/1.0"
MAX_CURRENT_A = 60.1
PSHIS_UNKNOWN = 99.9999


def _n(v: float, decimals: int = 4) -> str:
    return f"{v:+.{decimals}f}"


class LakeShore625Emulator(LakeShoreProtocol):
    role = "magnet"
    IDN = IDN

    def __init__(self, magnet: MagnetModel, faults: FaultBoard) -> None:
        super().__init__()
        self.magnet = magnet
        self.faults = faults
        self.reset()

    def reset(self) -> None:
        m = self.magnet
        self.esr = 0
        self.limit = [min(MAX_CURRENT_A, m.max_current), 5.0, 99.999]
        self.compliance = 5.0
        self.field_units = 0
        self.psh_current_ma = 25.0
        self.psh_delay_s = m.heat_time
        self.quench_detect = [1, 1.0]
        self.pshis = PSHIS_UNKNOWN
        if m.quenched and not self.faults.is_active(self.role, "quench"):
            m.reset_quench()
        m.set_rate(min(m.rate, self.limit[2]))

    # ------------------------------------------------------------------ helpers
    def _coil(self) -> float:
        """Coil constant in the FLDS units (T/A or kG/A)."""
        c = self.magnet.coil_constant
        return c * 10.0 if self.field_units == 1 else c

    def _amps(self, arg: str) -> float:
        amps = float(arg)
        if abs(amps) > self.limit[0]:
            raise Bad(arg)
        return amps

    def _go(self, amps: float) -> None:
        m = self.magnet
        if m.quenched:
            raise Bad("quenched")
        m.set_target(amps)
        m.ramp()

    def _ramp_done(self) -> bool:
        m = self.magnet
        m.advance()
        return m.mode != "ramping" and m.mode != "zeroing"

    # ----------------------------------------------------------------- commands
    def _c_seti(self, q, a):
        if q:
            m = self.magnet
            m.advance()
            return _n(m.target_current)
        self._go(self._amps(a[0]))

    def _c_rdgi(self, q, a):
        m = self.magnet
        m.advance()
        return _n(m.supply_current)

    def _c_setv(self, q, a):
        if q:
            return _n(self.compliance)
        volts = float(a[0])
        if not 0.1 <= volts <= self.limit[1]:
            raise Bad(a[0])
        self.compliance = volts

    def _c_rdgv(self, q, a):
        return _n(self.magnet.supply_voltage())

    def _c_rate(self, q, a):
        if q:
            return _n(self.magnet.rate)
        rate = float(a[0])
        if not 1e-4 <= rate <= self.limit[2]:
            raise Bad(a[0])
        # inductive voltage L·dI/dt cannot exceed the compliance: the 625 slows the ramp
        self.magnet.set_rate(min(rate, self.compliance / self.magnet.inductance))

    def _c_limit(self, q, a):
        if q:
            return f"{_n(self.limit[0])},{_n(self.limit[1])},{_n(self.limit[2])}"
        amps, volts, rate = (float(x) for x in a[:3])
        if not (0 <= amps <= MAX_CURRENT_A and 0.1 <= volts <= 5.0 and 1e-4 <= rate <= 99.999):
            raise Bad(",".join(a))
        self.limit = [amps, volts, rate]

    def _c_flds(self, q, a):
        if q:
            return f"{self.field_units},{_n(self._coil(), 6)}"
        units, constant = int(float(a[0])), float(a[1])
        if units not in (0, 1) or not 1e-4 <= constant <= 999.99999:
            raise Bad(",".join(a))
        self.field_units = units
        self.magnet.coil_constant = constant / 10.0 if units == 1 else constant

    def _c_setf(self, q, a):
        if q:
            m = self.magnet
            m.advance()
            return _n(m.target_current * self._coil())
        self._go(self._amps(str(float(a[0]) / self._coil())))

    def _c_rdgf(self, q, a):
        """The computed field: output current × coil constant (not the coil's own current,
        which differs once the magnet is persistent)."""
        m = self.magnet
        m.advance()
        return _n(m.supply_current * self._coil())

    def _c_stop(self, q, a):
        m = self.magnet
        m.advance()
        m.set_target(m.supply_current)
        m.pause()
        m.mode = "holding"

    def _c_psh(self, q, a):
        m = self.magnet
        m.advance()
        if q:
            if not m.switch_installed:
                return "0"
            return str({"off": 0, "on": 1, "heating": 2, "cooling": 3}[m.switch])
        value = int(float(a[0]))
        if value not in (0, 1, 99) or not m.switch_installed:
            raise Bad(a[0])
        if value == 0:
            if m.switch in ("on", "heating"):
                self.pshis = m.supply_current
            m.set_switch_heater(False)
            return None
        if (value == 1 and abs(self.pshis - PSHIS_UNKNOWN) > 1e-3
                and abs(m.supply_current - self.pshis) > 0.01):
            raise Bad("PSH 1 with the output away from PSHIS")
        m.set_switch_heater(True)

    def _c_pshs(self, q, a):
        m = self.magnet
        if q:
            return f"{int(m.switch_installed)},{_n(self.psh_current_ma, 1)},{int(self.psh_delay_s)}"
        enable, milliamps, delay = int(float(a[0])), float(a[1]), float(a[2])
        if enable not in (0, 1) or not 10 <= milliamps <= 125 or not 5 <= delay <= 100:
            raise Bad(",".join(a))
        m.switch_installed = bool(enable)
        if not enable:
            m.switch = "on"
        self.psh_current_ma, self.psh_delay_s = milliamps, delay
        m.heat_time = m.cool_time = delay

    def _c_pshis(self, q, a):
        return _n(self.pshis)

    def _c_qnch(self, q, a):
        if q:
            return f"{self.quench_detect[0]},{_n(self.quench_detect[1])}"
        enable, step = int(float(a[0])), float(a[1])
        if enable not in (0, 1) or not 0.01 <= step <= 10.0:
            raise Bad(",".join(a))
        self.quench_detect = [enable, step]

    def _c_opst(self, q, a):
        return str(2 if self._ramp_done() else 0)

    def _c_erst(self, q, a):
        m = self.magnet
        m.advance()
        return f"0,{32 if m.quenched else 0},0"

    def _c_rseg(self, q, a):
        return "0" if q else None
