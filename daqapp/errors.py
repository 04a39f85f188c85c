"""Errors a user can act on.

Every error raised for bad input names the parameter (or file and key) and what is allowed,
so the command line can print it as one line and exit 2 without a traceback.
"""

from __future__ import annotations


class DaqappError(Exception):
    """Base of the errors the command line reports as one line with exit code 2."""


class ConfigError(DaqappError, ValueError):
    """A station, campaign or parameter file is wrong; the message names file, key and rule."""


class LimitError(DaqappError, ValueError):
    """A requested value breaks a station limit; raised before any instrument is touched."""


class InstrumentError(DaqappError):
    """An instrument did not answer, answered nonsense, or reported a fault."""


class DataFileError(DaqappError):
    """A data file cannot be read; the message says which file and why."""


def check_range(name: str, value: float, low: float, high: float, unit: str = "") -> float:
    """Return ``value`` if within ``[low, high]``, else raise naming the parameter and range."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise LimitError(f"{name} = {value!r} is not a number (allowed {low:g} to {high:g}"
                         f"{' ' + unit if unit else ''})") from None
    if not (low <= v <= high):  # also rejects NaN
        u = f" {unit}" if unit else ""
        raise LimitError(f"{name} = {v:g}{u} is outside the allowed range {low:g} to {high:g}{u}")
    return v
