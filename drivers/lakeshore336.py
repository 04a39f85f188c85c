"""Lake Shore 336 temperature controller: the family driver of :mod:`drivers.lakeshore` with
four inputs, heater outputs 1-2 (Off/Low/Medium/High) and analog outputs 3-4.

Added to pymeasure 0.16.0 (on the family's channels): ``RAMP``/``RAMP?``, ``RAMPST?``, ``PID``,
``OUTMODE``, ``HTRSET``, ``HTRST?``, ``ZONE`` on the outputs and ``RDGST?`` on the inputs.
Fixed: SCPIMixin's ``SYST:ERR?`` is not a Lake Shore command (it times out), so errors are read
from the standard event register.
"""

from __future__ import annotations

from pymeasure.instruments import Instrument

from drivers.lakeshore import (
    ESR_ERROR_BITS,
    HEATER_STATUS,
    INPUT_NUMBERS,
    RAMP_RATE_MAX,
    RAMP_RATE_MIN,
    READING_FLAGS,
    LakeShoreFamily,
    LakeShoreInput,
    LakeShoreOutput,
    LakeShoreTemperature,
)

# The 336's channels are the family's (kept under these names for existing imports).
LakeShore336Input = LakeShoreInput
LakeShore336Output = LakeShoreOutput

__all__ = ["ESR_ERROR_BITS", "HEATER_STATUS", "INPUT_NUMBERS", "RAMP_RATE_MAX",
           "RAMP_RATE_MIN", "READING_FLAGS", "LakeShore336", "LakeShore336Input",
           "LakeShore336Output", "LakeShore336Temperature"]


class LakeShore336(LakeShoreFamily):
    """Lake Shore 336 with ramp, PID, output mode, heater set-up and reading status."""

    input_A = Instrument.ChannelCreator(LakeShoreInput, "A")
    input_B = Instrument.ChannelCreator(LakeShoreInput, "B")
    input_C = Instrument.ChannelCreator(LakeShoreInput, "C")
    input_D = Instrument.ChannelCreator(LakeShoreInput, "D")
    output_1 = Instrument.ChannelCreator(LakeShoreOutput, 1)
    output_2 = Instrument.ChannelCreator(LakeShoreOutput, 2)
    output_3 = Instrument.ChannelCreator(LakeShoreOutput, 3)
    output_4 = Instrument.ChannelCreator(LakeShoreOutput, 4)

    def __init__(self, adapter, name: str = "Lake Shore 336", **kwargs):
        super().__init__(adapter, name, **kwargs)


class LakeShore336Temperature(LakeShoreTemperature):
    """The temperature role on a Lake Shore 336: one control input and one heater output.

    Limits and the safe state come from the station file: the temperature range, the heater
    ranges an operator may select, and the setpoint/range applied by :meth:`to_safe_state`.
    """

    driver_class = LakeShore336
    MODEL = "336"
