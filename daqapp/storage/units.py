"""The one table of units a run file stores: spellings pint and UDUNITS parse.

Procedures and pymeasure parameters speak to people ("Ohm", "dB/oct", "NPLC"); a run file
speaks to programs (pint, UDUNITS, xarray, NeXus viewers). Every unit the writer stores goes
through :func:`stored_unit`, so a file never holds a spelling those programs refuse. A count
that is not a physical unit (a filter slope in dB per octave, an integration time in power-line
cycles) is stored dimensionless ("") with a description saying what it counts.
"""

from __future__ import annotations

#: The column every procedure fills with ``time.time()``: epoch seconds.
EPOCH_COLUMN = "time"
#: CF time units of epoch seconds; xarray decodes them to datetime64 ("s since" it refuses).
EPOCH_UNITS = "seconds since 1970-01-01T00:00:00Z"

#: spelling people use → (stored unit, description when the stored unit is a bare count)
SPELLINGS: dict[str, tuple[str, str]] = {
    "Ohm": ("ohm", ""),
    "Ω": ("ohm", ""),
    "kOhm": ("kohm", ""),
    "kΩ": ("kohm", ""),
    "MOhm": ("Mohm", ""),
    "MΩ": ("Mohm", ""),
    "mOhm": ("mohm", ""),
    "µV": ("uV", ""),
    "μV": ("uV", ""),
    "µA": ("uA", ""),
    "μA": ("uA", ""),
    "dB/oct": ("", "filter slope in dB per octave"),
    "NPLC": ("", "integration time in power-line cycles"),
}


def stored_unit(unit: str | None, column: str | None = None) -> tuple[str, str]:
    """(unit as stored, description) for ``unit``; epoch seconds get CF time units."""
    text = (unit or "").strip()
    if column == EPOCH_COLUMN and text == "s":
        return EPOCH_UNITS, "wall-clock time of the reading"
    return SPELLINGS.get(text, (text, ""))


def display_unit(stored: str) -> str:
    """The unit a program made of a stored one means to people (CF time back to "s")."""
    return "s" if stored == EPOCH_UNITS else stored
