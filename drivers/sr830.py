"""Stanford Research SR830 lock-in: pymeasure's driver made socket-safe, plus the lock-in role.

Added to pymeasure 0.16.0: ASCII buffer transfer (``TRCA?``, which ends every value with a comma)
because ``TRCB?`` over a socket waits out a full timeout per call; ``SEND`` (one-shot/loop),
``OUTX`` (reply interface), ``OUTR?``. Fixed: AUX outputs written with ``%g`` (``%f`` zeroed values
below 1 µV) and strict validators instead of silent clipping on amplitude, frequency, phase and
AUX voltages; a default read terminator, without which pyvisa-py reads a socket to the timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.srs.sr830 import SR830 as _PymeasureSR830
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from daqapp.errors import LimitError, check_range
from drivers.base import RoleAdapter, SafeStep
from drivers.locking import SerializedInstrument
from drivers.roles import Readback

SLVL_MIN_V = 0.004
SLVL_MAX_V = 5.0
AUX_MAX_V = 10.5
# 99 % settling of cascaded RC stages, in time constants, per filter slope (dB/oct).
SETTLE_TAUS = {6: 5.0, 12: 7.0, 18: 9.0, 24: 10.0}
# LIAS bits 0-2: input/reserve, filter and output overload.
LIAS_OVERLOAD_MASK = 0b111


def _aux_out(channel: int) -> property:
    return Instrument.control(
        f"AUXV?{channel};", f"AUXV{channel},%g;",
        f"""Control Aux output {channel} in V (-10.5 to 10.5, 1 mV resolution, written %g).""",
        validator=strict_range, values=[-AUX_MAX_V, AUX_MAX_V],
    )


def parse_trca(reply: str) -> np.ndarray:
    """Values of a ``TRCA?`` reply; every value (the last too) is followed by a comma."""
    fields = [f for f in reply.strip().split(",") if f.strip()]
    return np.array([float(f) for f in fields], dtype=float)


class SR830(SerializedInstrument, _PymeasureSR830):
    """SR830 with LF read termination by default (GPIB and sockets; use CR on RS-232)."""

    def __init__(self, adapter, name: str = "Stanford Research Systems SR830", **kwargs):
        kwargs.setdefault("read_termination", "\n")
        super().__init__(adapter, name, **kwargs)

    sine_voltage = Instrument.control(
        "SLVL?", "SLVL%0.3f",
        """Control the sine output amplitude in V rms (0.004 to 5.0, strict).""",
        validator=strict_range, values=[SLVL_MIN_V, SLVL_MAX_V],
    )
    frequency = Instrument.control(
        "FREQ?", "FREQ%0.5e",
        """Control the internal reference frequency in Hz (0.001 to 102000, strict).""",
        validator=strict_range, values=[0.001, 102000],
    )
    phase = Instrument.control(
        "PHAS?", "PHAS%0.2f",
        """Control the reference phase in degrees (-360 to 729.99, strict).""",
        validator=strict_range, values=[-360, 729.99],
    )
    aux_out_1 = _aux_out(1)
    aux_out_2 = _aux_out(2)
    aux_out_3 = _aux_out(3)
    aux_out_4 = _aux_out(4)
    dac1, dac2, dac3, dac4 = aux_out_1, aux_out_2, aux_out_3, aux_out_4

    buffer_end_mode = Instrument.control(
        "SEND?", "SEND%d",
        """Control what the buffer does when full: 'shot' stops, 'loop' overwrites the oldest.""",
        validator=strict_discrete_set, values={"shot": 0, "loop": 1}, map_values=True,
    )
    output_interface = Instrument.control(
        "OUTX?", "OUTX%d",
        """Control the interface the SR830 answers on: 'rs232' or 'gpib'.""",
        validator=strict_discrete_set, values={"rs232": 0, "gpib": 1}, map_values=True,
    )

    def display_value(self, channel: int) -> float:
        """CH1 or CH2 display value (``OUTR? i``)."""
        strict_discrete_set(channel, (1, 2))
        return float(self.ask(f"OUTR? {channel}"))

    def get_buffer_ascii(self, channel: int = 1, start: int = 0, count: int | None = None
                         ) -> np.ndarray:
        """Read ``count`` stored points of display ``channel`` from bin ``start`` with ``TRCA?``.

        ``count`` defaults to all points from ``start``; asking past the stored points is an
        error on the instrument, so it is refused here first.
        """
        strict_discrete_set(channel, (1, 2))
        with self.lock:
            stored = int(self.ask("SPTS?"))
            if count is None:
                count = stored - start
            if start < 0 or count < 0 or start + count > stored:
                raise LimitError(f"TRCA? bins {start}..{start + count - 1} outside the "
                                 f"{stored} stored points")
            if count == 0:
                return np.empty(0)
            return parse_trca(self.ask(f"TRCA? {channel},{start},{count}"))


class LockInRole(RoleAdapter):
    """What the SRS lock-ins' role adapters share (pymeasure names the same properties on the
    SR830 and the SR860): reference, X/Y, filter settling, sensitivity, AUX outputs 1-4."""

    def excitation(self) -> float:
        return float(self.instrument.sine_voltage)

    def frequency(self) -> float:
        return float(self.instrument.frequency)

    def xy(self) -> tuple[float, float]:
        x, y = self.instrument.snap("X", "Y")
        return float(x), float(y)

    def time_constant(self) -> float:
        return float(self.instrument.time_constant)

    def settle_time(self) -> float:
        """The filter's settling: τ times the slope's factor (``filter_slope`` per model)."""
        with self.lock:
            tau = self.time_constant()
            slope = self.filter_slope()
        return tau * SETTLE_TAUS[slope]

    def sensitivity(self) -> float:
        return float(self.instrument.sensitivity)

    def set_aux_output(self, channel: int, volts: float) -> None:
        _check_aux_channel(channel)
        check_range(f"lockin AUX output {channel}", volts, -AUX_MAX_V, AUX_MAX_V, "V")
        setattr(self.instrument, f"aux_out_{channel}", volts)

    def aux_output(self, channel: int) -> float:
        _check_aux_channel(channel)
        return float(getattr(self.instrument, f"aux_out_{channel}"))

    def expect_aux_zero(self, check: Readback, query: Callable[[int], str]) -> None:
        """The safe state's read-back of AUX 1-4 (``query(ch)``: the command, for the log)."""
        for ch in (1, 2, 3, 4):
            volts = check.query(f"aux_out_{ch}_v", query(ch),
                                lambda ch=ch: self.aux_output(ch))
            if volts is not None:
                check.expect(abs(volts) < 5e-4, f"AUX{ch} reads {volts:g} V, not 0")


class SR830LockIn(LockInRole):
    """The lock-in role on an SR830.

    ``output_interface`` ('gpib' or 'rs232') is sent as ``OUTX`` on connect when given; the
    SR830 answers only on the interface it was told to use.
    """

    driver_class = SR830

    def __init__(self, instrument: SR830, resource: str = "",
                 output_interface: str | None = None) -> None:
        super().__init__(instrument, resource)
        if output_interface is not None:
            self.instrument.output_interface = output_interface

    def set_excitation(self, volts_rms: float, frequency_hz: float) -> None:
        check_range("lockin excitation", volts_rms, SLVL_MIN_V, SLVL_MAX_V, "V rms")
        check_range("lockin frequency", frequency_hz, 0.001, 102000, "Hz")
        with self.lock:
            self.instrument.frequency = frequency_hz
            self.instrument.sine_voltage = volts_rms

    def filter_slope(self) -> int:
        return int(self.instrument.filter_slope)

    def set_time_constant(self, seconds: float) -> None:
        """Smallest table τ ≥ ``seconds`` (10 µs … 30 ks); refused outside that range."""
        check_range("lockin time_constant", seconds, 10e-6, 30e3, "s")
        self.instrument.time_constant = float(seconds)

    def set_filter_slope(self, db_per_octave: int) -> None:
        if int(db_per_octave) not in SETTLE_TAUS:
            raise LimitError(f"lockin filter_slope = {db_per_octave} dB/oct; allowed 6, 12, 18, 24")
        self.instrument.filter_slope = int(db_per_octave)

    def set_sensitivity(self, volts: float) -> None:
        table = _PymeasureSR830.SENSITIVITIES
        check_range("lockin sensitivity", volts, 0.0, table[-1], "V")
        index = next(i for i, s in enumerate(table) if s >= float(volts) * (1 - 1e-9))
        self.instrument.write(f"SENS{index}")

    def is_overloaded(self) -> bool:
        return bool(int(self.instrument.ask("LIAS?")) & LIAS_OVERLOAD_MASK)

    def aux_input(self, channel: int) -> float:
        _check_aux_channel(channel)
        return float(self.instrument.ask(f"OAUX?{channel};"))

    def snapshot(self) -> dict[str, Any]:
        inst = self.instrument
        with self.lock:
            return {
                "frequency_hz": float(inst.frequency),
                "sine_voltage_v": float(inst.sine_voltage),
                "phase_deg": float(inst.phase),
                "harmonic": int(inst.harmonic),
                "sensitivity_v": self.sensitivity(),
                "time_constant_s": self.time_constant(),
                "filter_slope_db_oct": self.filter_slope(),
                "input_config": str(inst.input_config),
                "reserve": str(inst.reserve),
                "aux_out_v": [self.aux_output(ch) for ch in (1, 2, 3, 4)],
            }

    def state_line(self) -> str:
        x, y = self.xy()
        return (f"SLVL {self.excitation():.3f} V, f {self.frequency():g} Hz, "
                f"X {x:.4g} V, Y {y:.4g} V")

    def safe_state_steps(self) -> list[SafeStep]:
        """Excitation to its 4 mV minimum and every AUX output to 0 V (DC bias off)."""
        inst = self.instrument
        steps: list[SafeStep] = [(f"SLVL {SLVL_MIN_V:g} V",
                                  lambda: setattr(inst, "sine_voltage", SLVL_MIN_V))]
        for ch in (1, 2, 3, 4):
            steps.append((f"AUX{ch} 0 V",
                          lambda ch=ch: setattr(inst, f"aux_out_{ch}", 0.0)))
        return steps

    def verify_safe_state(self) -> Readback:
        check = Readback(f"SLVL {SLVL_MIN_V:g} V, AUX1-4 0 V")
        slvl = check.query("sine_voltage_v", "SLVL?", self.excitation)
        if slvl is not None:
            check.expect(abs(slvl - SLVL_MIN_V) < 5e-4,
                         f"SLVL reads {slvl:g} V, not the {SLVL_MIN_V:g} V minimum")
        self.expect_aux_zero(check, lambda ch: f"AUXV?{ch}")
        return check


def _check_aux_channel(channel: int) -> None:
    if channel not in (1, 2, 3, 4):
        raise LimitError(f"lockin AUX channel = {channel!r}; allowed 1, 2, 3, 4")
