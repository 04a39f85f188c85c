"""Stanford Research SR860/SR865 lock-in: pymeasure's SR860 made socket-safe, plus the role.

Added to pymeasure 0.16.0: the ``CAPTURE`` buffer (length, configuration, rate, start/stop,
status, bytes, ASCII read-back with ``CAPTUREVAL?``, which unlike the binary ``CAPTUREGET?``
block is safe on a termchar-terminated socket) and ``LIAS?``. Fixed: a default LF read
terminator (pyvisa-py reads a socket to the timeout without one), AUX outputs written with
``%g`` (pymeasure's ``%f`` zeroes values below 1 µV), and strict ranges on the sine amplitude
(1 nV to 2 V) and frequency (SR860 500 kHz, SR865 2 MHz) instead of silent truncation.

The role speaks the SR830's units (AUX channels 1-4, dB/oct), so a station swaps an SR830 for
an SR86x in its file. The wider tables are the SR86x's: sensitivity 1 nV to 1 V (28 ranges)
and time constant 1 µs to 30 ks (22).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.srs.sr860 import SR860 as _PymeasureSR860
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from daqapp.errors import LimitError, check_range
from drivers.base import SafeStep
from drivers.locking import SerializedInstrument
from drivers.roles import Readback
from drivers.sr830 import AUX_MAX_V, LIAS_OVERLOAD_MASK, LockInRole, _check_aux_channel

SLVL_MIN_V = 1e-9
SLVL_MAX_V = 2.0
SLOPES_DB = (6, 12, 18, 24)
#: CAPTURECFG codes and the quantities each sample holds.
CAPTURE_CONFIGS = {"X": 0, "XY": 1, "RT": 2, "XYRT": 3}
CAPTURE_WIDTH = {0: 1, 1: 2, 2: 2, 3: 4}
CAPTURE_MAX_KB = 4096


def _aux_out(channel: int) -> property:
    return Instrument.control(
        f"AUXV? {channel}", f"AUXV {channel}, %g",
        f"""Control Aux output {channel + 1} (SR860 index {channel}) in V (±10.5, %g).""",
        validator=strict_range, values=[-AUX_MAX_V, AUX_MAX_V],
    )


class SR860(SerializedInstrument, _PymeasureSR860):
    """SR860 with LF read termination, strict excitation ranges and the capture buffer."""

    MAX_FREQUENCY: ClassVar[float] = 500e3

    def __init__(self, adapter, name: str = "Stanford Research Systems SR860", **kwargs):
        kwargs.setdefault("read_termination", "\n")
        super().__init__(adapter, name, **kwargs)

    sine_voltage = Instrument.control(
        "SLVL?", "SLVL %0.9e",
        """Control the sine output amplitude in V rms (1 nV to 2 V, strict).""",
        validator=strict_range, values=[SLVL_MIN_V, SLVL_MAX_V],
    )
    frequency = Instrument.control(
        "FREQ?", "FREQ %0.6e",
        """Control the internal reference frequency in Hz (1 mHz to 500 kHz, strict).""",
        validator=strict_range, values=[0.001, MAX_FREQUENCY],
    )
    aux_out_1 = _aux_out(0)
    aux_out_2 = _aux_out(1)
    aux_out_3 = _aux_out(2)
    aux_out_4 = _aux_out(3)
    status = Instrument.measurement(
        "LIAS?", """Get and clear the latched lock-in status (bits 0-2: input, filter and
        output overload).""", cast=int,
    )

    capture_length_kb = Instrument.control(
        "CAPTURELEN?", "CAPTURELEN %d",
        """Control the capture buffer length in kB (1 to 4096).""",
        validator=strict_range, values=[1, CAPTURE_MAX_KB], cast=int,
    )
    capture_config = Instrument.control(
        "CAPTURECFG?", "CAPTURECFG %d",
        """Control what each capture sample holds: 'X', 'XY', 'RT' or 'XYRT'.""",
        validator=strict_discrete_set, values=CAPTURE_CONFIGS, map_values=True, cast=int,
    )
    capture_rate_max = Instrument.measurement(
        "CAPTURERATEMAX?", """Get the fastest capture rate (Hz) at the present time constant.""",
    )
    capture_rate = Instrument.measurement(
        "CAPTURERATE?", """Get the capture rate in Hz.""",
    )
    capture_status = Instrument.measurement(
        "CAPTURESTAT?", """Get the capture status bits (1 capturing, 2 triggered, 4 wrapped).""",
        cast=int,
    )
    capture_bytes = Instrument.measurement(
        "CAPTUREBYTES?", """Get the number of bytes captured so far.""", cast=int,
    )

    def set_capture_rate_divider(self, n: int) -> None:
        """Capture at ``CAPTURERATEMAX?``/2^n (n 0-20)."""
        strict_range(int(n), (0, 20))
        self.write(f"CAPTURERATE {int(n)}")

    def start_capture(self, mode: str = "ONE", trigger: str = "IMM") -> None:
        """``CAPTURESTART mode, trigger``: mode ONE (stop when full) or CONT (wrap); trigger
        IMM (now), TRIG (at a trigger) or SAMP (one sample per trigger)."""
        strict_discrete_set(mode, ("ONE", "CONT"))
        strict_discrete_set(trigger, ("IMM", "TRIG", "SAMP"))
        self.write(f"CAPTURESTART {mode}, {trigger}")

    def stop_capture(self) -> None:
        self.write("CAPTURESTOP")

    def capture_width(self) -> int:
        """Values per capture sample (1, 2 or 4, from ``CAPTURECFG?``)."""
        return CAPTURE_WIDTH[CAPTURE_CONFIGS[self.capture_config]]

    def capture_samples(self, width: int | None = None) -> int:
        """Whole samples in the buffer (``CAPTUREBYTES?`` over the sample width)."""
        with self.lock:
            return self.capture_bytes // (4 * (width or self.capture_width()))

    def get_capture_ascii(self, count: int | None = None) -> np.ndarray:
        """``count`` samples (default: all stored) from the oldest, one ``CAPTUREVAL? n`` each,
        as an array of shape (count, width)."""
        with self.lock:
            width = self.capture_width()
            stored = self.capture_samples(width)
            count = stored if count is None else int(count)
            if not 0 <= count <= stored:
                raise LimitError(f"capture read of {count} samples; {stored} are stored")
            rows = [[float(v) for v in self.ask(f"CAPTUREVAL? {n}").split(",")]
                    for n in range(count)]
        return np.array(rows, dtype=float).reshape(count, width)


class SR865(SR860):
    """SR865/SR865A: the SR860's commands with a 2 MHz (865A: 4 MHz) reference."""

    MAX_FREQUENCY = 2e6
    frequency = Instrument.control(
        "FREQ?", "FREQ %0.6e",
        """Control the internal reference frequency in Hz (1 mHz to 2 MHz, strict).""",
        validator=strict_range, values=[0.001, MAX_FREQUENCY],
    )

    def __init__(self, adapter, name: str = "Stanford Research Systems SR865", **kwargs):
        super().__init__(adapter, name, **kwargs)


class SR860LockIn(LockInRole):
    """The lock-in role on an SR860 (AUX channels 1-4 here are the unit's 0-3)."""

    driver_class: ClassVar[type] = SR860

    def set_excitation(self, volts_rms: float, frequency_hz: float) -> None:
        check_range("lockin excitation", volts_rms, SLVL_MIN_V, SLVL_MAX_V, "V rms")
        check_range("lockin frequency", frequency_hz, 0.001, self.driver_class.MAX_FREQUENCY,
                    "Hz")
        with self.lock:
            self.instrument.frequency = frequency_hz
            self.instrument.sine_voltage = volts_rms

    def set_time_constant(self, seconds: float) -> None:
        """Smallest table τ ≥ ``seconds`` (1 µs … 30 ks); refused outside that range."""
        table = _PymeasureSR860.TIME_CONSTANTS
        check_range("lockin time_constant", seconds, table[0], table[-1], "s")
        self.instrument.time_constant = next(t for t in table if t >= seconds * (1 - 1e-9))

    def filter_slope(self) -> int:
        return SLOPES_DB[int(self.instrument.filter_slope)]

    def set_filter_slope(self, db_per_octave: int) -> None:
        if int(db_per_octave) not in SLOPES_DB:
            raise LimitError(f"lockin filter_slope = {db_per_octave} dB/oct; allowed 6, 12, 18, 24")
        self.instrument.filter_slope = SLOPES_DB.index(int(db_per_octave))

    def set_sensitivity(self, volts: float) -> None:
        """Smallest full scale ≥ ``volts`` (1 nV … 1 V)."""
        table = sorted(_PymeasureSR860.SENSITIVITIES)
        check_range("lockin sensitivity", volts, 0.0, table[-1], "V")
        full_scale = next(s for s in table if s >= float(volts) * (1 - 1e-9))
        self.instrument.write(f"SCAL {_PymeasureSR860.SENSITIVITIES.index(full_scale)}")

    def is_overloaded(self) -> bool:
        return bool(self.instrument.status & LIAS_OVERLOAD_MASK)

    def aux_input(self, channel: int) -> float:
        _check_aux_channel(channel)
        return float(self.instrument.ask(f"OAUX? {channel - 1}"))

    def snapshot(self) -> dict[str, Any]:
        inst = self.instrument
        with self.lock:
            return {
                "frequency_hz": self.frequency(),
                "sine_voltage_v": self.excitation(),
                "phase_deg": float(inst.phase),
                "harmonic": int(inst.harmonic),
                "sensitivity_v": self.sensitivity(),
                "time_constant_s": self.time_constant(),
                "filter_slope_db_oct": self.filter_slope(),
                "aux_out_v": [self.aux_output(ch) for ch in (1, 2, 3, 4)],
                "capture": {"length_kb": int(inst.capture_length_kb),
                            "config": str(inst.capture_config),
                            "rate_hz": float(inst.capture_rate),
                            "status": int(inst.capture_status)},
            }

    def state_line(self) -> str:
        x, y = self.xy()
        return (f"SLVL {self.excitation():.4g} V, f {self.frequency():g} Hz, "
                f"X {x:.4g} V, Y {y:.4g} V")

    def safe_state_steps(self) -> list[SafeStep]:
        """Capture stopped, excitation to its 1 nV minimum, every AUX output to 0 V."""
        inst = self.instrument
        steps: list[SafeStep] = [("capture stop", inst.stop_capture),
                                 (f"SLVL {SLVL_MIN_V:g} V",
                                  lambda: setattr(inst, "sine_voltage", SLVL_MIN_V))]
        for ch in (1, 2, 3, 4):
            steps.append((f"AUX{ch} 0 V", lambda ch=ch: setattr(inst, f"aux_out_{ch}", 0.0)))
        return steps

    def verify_safe_state(self) -> Readback:
        check = Readback(f"SLVL {SLVL_MIN_V:g} V, AUX1-4 0 V")
        slvl = check.query("sine_voltage_v", "SLVL?", self.excitation)
        if slvl is not None:
            check.expect(slvl <= 2 * SLVL_MIN_V,
                         f"SLVL reads {slvl:g} V, not the {SLVL_MIN_V:g} V minimum")
        self.expect_aux_zero(check, lambda ch: f"AUXV? {ch - 1}")
        return check


class SR865LockIn(SR860LockIn):
    """The lock-in role on an SR865/SR865A (2 MHz reference)."""

    driver_class = SR865
