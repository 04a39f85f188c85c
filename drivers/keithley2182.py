"""Keithley 2182A nanovoltmeter, directly or through the 6221's RS-232 pass-through.

Added to pymeasure 0.16.0: ``FETC?`` (latest reading without a new trigger) and rejection of
the +9.9E37 overflow marker. In delta/DCON set-ups the 2182A's RS-232 port is taken by the 6221,
so :class:`Keithley2182Via6221` reaches it with ``SYST:COMM:SER:SEND``/``ENT?`` over the 6221's
own connection (and therefore under the 6221's lock).
"""

from __future__ import annotations

from typing import Any

from pymeasure.instruments import Instrument
from pymeasure.instruments.keithley.keithley2182 import Keithley2182 as _PymeasureKeithley2182
from pymeasure.instruments.keithley.keithley2182 import Keithley2182Channel

from daqapp.errors import InstrumentError, check_range
from drivers.base import RoleAdapter, finite
from drivers.keithley6221 import Keithley6221
from drivers.locking import SerializedChannel, SerializedInstrument


class Keithley2182SerializedChannel(SerializedChannel, Keithley2182Channel):
    """A 2182A input channel whose queries hold the connection lock."""


class Keithley2182(SerializedInstrument, _PymeasureKeithley2182):
    """2182A with ``FETC?``."""

    ch_1 = Instrument.ChannelCreator(Keithley2182SerializedChannel, 1)
    ch_2 = Instrument.ChannelCreator(Keithley2182SerializedChannel, 2)

    fetched_voltage = Instrument.measurement(
        ":FETC?", """Get the latest reading in V without triggering a new one.""",
    )


class Keithley2182Nanovoltmeter(RoleAdapter):
    """The nanovoltmeter role on a 2182A connected directly (GPIB or RS-232)."""

    driver_class = Keithley2182

    def __init__(self, instrument: Keithley2182, resource: str = "", nplc: float | None = None
                 ) -> None:
        super().__init__(instrument, resource)
        if nplc is not None:
            check_range("nanovoltmeter nplc", nplc, 0.01, 60)
            self.instrument.voltage_nplc = nplc

    def voltage(self) -> float:
        return finite(self.instrument.voltage, "2182A :READ?")

    def latest_voltage(self) -> float:
        return finite(self.instrument.fetched_voltage, "2182A :FETC?")

    def snapshot(self) -> dict[str, Any]:
        inst = self.instrument
        with self.lock:
            return {
                "active_channel": int(inst.active_channel),
                "nplc": float(inst.voltage_nplc),
                "ch1_range_v": float(inst.ch_1.voltage_range),
                "ch1_auto_range": bool(inst.ch_1.voltage_range_auto_enabled),
            }

    def state_line(self) -> str:
        return f"V {self.voltage():.6g} V"


class Keithley2182Via6221(RoleAdapter):
    """The nanovoltmeter role on a 2182A reached through a 6221's RS-232 pass-through.

    ``query_delay_s`` is the pause between forwarding a query and the first fetch of the
    reply (the RS-232 transfer). The reply is then polled for, up to ``reply_timeout_s``
    (plus, for a triggered ``:READ?``, a generous bound on the integration time from NPLC):
    the 2182A's answer arriving is what says the reading is ready, so no fixed integration
    sleep is spent on the wall clock, whatever clock the instrument runs on.
    """

    driver_class = Keithley6221

    def __init__(self, instrument: Keithley6221, resource: str = "",
                 query_delay_s: float = 0.05, line_frequency_hz: float = 50.0,
                 reply_timeout_s: float = 1.0, poll_s: float = 0.005) -> None:
        super().__init__(instrument, resource)
        check_range("2182A via 6221 reply_timeout_s", reply_timeout_s, 0.0, 600.0, "s")
        self.query_delay_s = float(query_delay_s)
        self.line_frequency_hz = float(line_frequency_hz)
        self.reply_timeout_s = float(reply_timeout_s)
        self.poll_s = float(poll_s)
        self._nplc: float | None = None

    def ask(self, command: str, extra_timeout_s: float = 0.0) -> str:
        """A 2182A query through the 6221; the 6221 lock is held for SEND and ENT? together."""
        timeout = self.reply_timeout_s + extra_timeout_s
        reply = self.instrument.serial_query(command, self.query_delay_s, timeout_s=timeout,
                                             poll_s=self.poll_s)
        if not reply:
            raise InstrumentError(f"2182A (via 6221) gave no reply to {command} within "
                                  f"{self.query_delay_s + timeout:.3g} s")
        return reply

    def nplc(self) -> float:
        if self._nplc is None:
            self._nplc = float(self.ask(":SENS:VOLT:NPLC?"))
        return self._nplc

    def identify(self) -> str:
        return self.ask("*IDN?")

    def voltage(self) -> float:
        with self.lock:
            # a triggered reading takes the integration (twice with autozero) and then some:
            # allow four times that before calling it lost, but use the reply when it comes
            integration = self.nplc() / self.line_frequency_hz
            return finite(float(self.ask(":READ?", extra_timeout_s=4 * integration)),
                          "2182A (via 6221) :READ?")

    def latest_voltage(self) -> float:
        return finite(float(self.ask(":FETC?")), "2182A (via 6221) :FETC?")

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"via": "Keithley6221 RS-232 pass-through", "nplc": self.nplc(),
                    "nanovoltmeter_present": bool(self.instrument.delta_connected)}

    def state_line(self) -> str:
        return f"V {self.voltage():.6g} V (via 6221)"

    def close(self) -> None:
        """The connection belongs to the current-source role; it closes it."""
