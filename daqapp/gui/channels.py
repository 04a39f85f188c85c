"""Which run columns each plot shows, and in which display units.

Procedures name their columns (``dc_voltage`` in V, ``didv`` in S, ``resistance`` in Ω, …) and
store SI-ish units; operators read spectra in mV and mS. This module is the one place that
maps a run's columns onto the standard plots, so a new procedure with the usual names gets
the usual plots, and any other column is still reachable from the custom plot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: display unit and factor from stored units, per physical kind
_SCALES: dict[str, dict[str, tuple[str, float]]] = {
    "voltage": {"v": ("mV", 1e3), "mv": ("mV", 1.0), "uv": ("mV", 1e-3), "µv": ("mV", 1e-3),
                "nv": ("mV", 1e-6)},
    "current": {"a": ("mA", 1e3), "ma": ("mA", 1.0), "ua": ("mA", 1e-3), "µa": ("mA", 1e-3),
                "na": ("mA", 1e-6)},
    "conductance": {"s": ("mS", 1e3), "ms": ("mS", 1.0), "us": ("mS", 1e-3),
                    "µs": ("mS", 1e-3)},
    "resistance": {"ohm": ("Ω", 1.0), "ω": ("Ω", 1.0), "kohm": ("Ω", 1e3), "mohm": ("Ω", 1e-3)},
}


@dataclass(frozen=True)
class Channel:
    """A column as a plot shows it: ``values * factor`` in ``unit``."""

    column: str
    label: str
    unit: str
    factor: float = 1.0


def display(column: str, stored_unit: str, label: str | None = None,
            kind: str | None = None) -> Channel:
    """The display form of a column of physical ``kind`` (voltage → mV, current → mA,
    conductance → mS, resistance → Ω); without a kind (or with a unit that is not of that
    kind) the stored unit is kept — "s" is seconds unless the kind says siemens."""
    key = (stored_unit or "").strip().lower().replace("Ω", "ohm").replace("ω", "ohm")
    table = _SCALES.get(kind or "", {})
    if key in table:
        unit, factor = table[key]
        return Channel(column, label or column, unit, factor)
    return Channel(column, label or column, stored_unit or "", 1.0)


def pick(units: Mapping[str, str], candidates: Sequence[str], label: str,
         kind: str | None = None) -> Channel | None:
    """The first candidate column present in ``units``, in display form; None if none is."""
    for name in candidates:
        if name in units:
            return display(name, units[name], label, kind)
    return None


BIAS = ("dc_voltage", "junction_voltage", "bias_voltage", "voltage_dc", "v_dc", "bias")
DIDV = ("didv", "dIdV", "conductance")
DVDI = ("dvdi", "dVdI")
CURRENT = ("current", "dc_current", "bias_current", "source_current", "i_dc")
VOLTAGE = ("voltage", "dc_voltage", "junction_voltage", "v_dc")
RESISTANCE = ("resistance", "r", "R")
TEMPERATURE = ("temperature", "temperature_K", "T")
FIELD = ("field", "field_T", "B")
TIME = ("time", "timestamp", "t")
SWEEP = ("sweep",)


@dataclass(frozen=True)
class PlotChannels:
    """The channels of the standard plots found in one run (None where a run has none)."""

    bias: Channel | None
    didv: Channel | None
    current: Channel | None
    voltage: Channel | None
    resistance: Channel | None
    temperature: Channel | None
    field: Channel | None
    time: Channel | None
    sweep: Channel | None

    @classmethod
    def find(cls, units: Mapping[str, str]) -> PlotChannels:
        didv = (pick(units, DIDV, "dI/dV", "conductance")
                or pick(units, DVDI, "dV/dI", "resistance"))
        return cls(
            bias=pick(units, BIAS, "Bias V", "voltage"),
            didv=didv,
            current=pick(units, CURRENT, "Current", "current"),
            voltage=pick(units, VOLTAGE, "Voltage", "voltage"),
            resistance=pick(units, RESISTANCE, "Resistance", "resistance"),
            temperature=pick(units, TEMPERATURE, "Temperature"),
            field=pick(units, FIELD, "Field"),
            time=pick(units, TIME, "Time"),
            sweep=pick(units, SWEEP, "Sweep"),
        )
