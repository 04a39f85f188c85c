"""A monitor thread polling temperature while a procedure talks must never interleave messages.

The fake connection records which thread wrote the query that is waiting for its reply; a write
from another thread before that reply is read, or a read by a thread that did not write the
query, is an interleaving. A short pause between write and read widens the window so an
unserialised driver is caught reliably (checked by the control test below).
"""

import threading
import time

from pymeasure.adapters import Adapter
from pymeasure.instruments.lakeshore.lakeshore3xx import LakeShore3xx

from drivers.keithley2182 import Keithley2182Via6221
from drivers.keithley6221 import Keithley6221
from drivers.lakeshore336 import LakeShore336, LakeShore336Temperature

REPLIES = {
    "KRDG?": "+4.2000", "SETP?": "+4.2000", "RAMP?": "1,+1.0000", "RAMPST?": "0",
    "RANGE?": "1", "HTR?": "+12.5", "HTRST?": "0", "RDGST?": "0", "PID?": "+50,+20,+0",
    "OUTMODE?": "1,1,0", "HTRSET?": "1,2,+0.000,1", "SYST:COMM:SER:ENT?": "+1.0E-06",
}


class InterleaveDetectingAdapter(Adapter):
    def __init__(self, gap_s: float = 0.0005):
        super().__init__()
        self.gap_s = gap_s
        self.pending: tuple[int, str] | None = None
        self.violations: list[str] = []
        self.queries = 0

    def _write(self, command, **kwargs):
        me = threading.get_ident()
        if self.pending is not None and self.pending[0] != me:
            self.violations.append(f"write {command!r} while {self.pending[1]!r} awaits a reply")
        if command.split(" ")[0] in REPLIES:
            self.pending = (me, command)
        time.sleep(self.gap_s)

    def _read(self, **kwargs):
        me = threading.get_ident()
        pending = self.pending
        if pending is None or pending[0] != me:
            self.violations.append(f"read by a thread that did not write {pending!r}")
            return "0"
        time.sleep(self.gap_s)
        self.pending = None
        self.queries += 1
        return REPLIES[pending[1].split(" ")[0]]


def _hammer(monitor, procedure, rounds=40):
    errors = []

    def run(fn):
        try:
            for _ in range(rounds):
                fn()
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f,)) for f in (monitor, procedure)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


def test_monitor_and_procedure_never_interleave_on_one_connection():
    adapter = InterleaveDetectingAdapter()
    role = LakeShore336Temperature(LakeShore336(adapter))

    def procedure():
        role.snapshot()
        role.set_setpoint(5.0, ramp_k_per_min=1.0)
        assert role.instrument.output_1.setpoint == 4.2  # raw pymeasure property access

    errors = _hammer(role.temperature, procedure)
    assert errors == []
    assert adapter.violations == []
    assert adapter.queries > 40 * 2


def test_unserialised_pymeasure_driver_does_interleave():
    """Control: the same hammering on pymeasure's own LakeShore3xx is caught by the detector."""
    adapter = InterleaveDetectingAdapter()
    ls = LakeShore3xx(adapter)
    _hammer(lambda: ls.input_A.kelvin, lambda: ls.output_1.setpoint, rounds=40)
    assert adapter.violations


def test_pass_through_nanovoltmeter_shares_the_current_source_lock():
    adapter = InterleaveDetectingAdapter()
    k6221 = Keithley6221(adapter)
    nv = Keithley2182Via6221(k6221, query_delay_s=0.001)
    assert nv.lock is k6221.lock
    # SEND then ENT? must stay together while another thread uses the 6221.
    errors = _hammer(nv.latest_voltage, lambda: k6221.serial_query(":FETC?", 0.001), rounds=20)
    assert errors == []
    assert adapter.violations == []
