"""Errors a user can act on.

Every error raised for bad input names the parameter (or file and key) and what is allowed,
so the command line can print it as one line and exit 2 without a traceback.
"""

from __future__ import annotations

import math
import sys


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
        error = LimitError(f"{name} = {v:g}{u} is outside the allowed range {low:g} to "
                           f"{high:g}{u}")
        error.allowed = (name, low, high)  # for the effective (procedure ∩ station) range
        raise error
    return v


def number_rule(low: float | None = None, high: float | None = None, unit: str = "", *,
                integral: bool = False, zero_allowed: bool = False, low_open: bool = False,
                high_open: bool = False) -> str:
    """What :func:`check_number` accepts, in words: ``"a finite number in [0.001, 3600] s"``,
    ``"a whole number in [2, 100000]"``, ``"0 or a finite number in [1e-05, 30000] s"``,
    ``"a finite number > 0"``."""
    kind = "a whole number" if integral else "a finite number"
    u = f" {unit}" if unit else ""
    lo, hi = (_bound(v, integral) for v in (low, high))
    if low is not None and high is not None:
        text = f"{kind} in {'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}{u}"
    elif low is not None:
        text = f"{kind} {'>' if low_open else '>='} {lo}{u}"
    elif high is not None:
        text = f"{kind} {'<' if high_open else '<='} {hi}{u}"
    else:
        text = kind
    return f"0 or {text}" if zero_allowed else text


def shown_value(value: object, width: int = 40) -> str:
    """``value`` for a one-line message: plain text as typed, anything else (or text with
    control characters) as a repr, cut to about ``width`` characters."""
    if isinstance(value, str):
        text = value.strip()
        if text and text.isprintable() and len(text) <= width:
            return text
    text = repr(value)
    return text if len(text) <= width else text[:width] + "..."


def _bound(value: float | None, integral: bool) -> str:
    if value is None:
        return ""
    return f"{int(value)}" if integral else f"{value:g}"


def check_number(name: str, value: object, low: float | None = None,
                 high: float | None = None, unit: str = "", *, integral: bool = False,
                 zero_allowed: bool = False, low_open: bool = False,
                 high_open: bool = False) -> float:
    """``value`` as a float (an int if ``integral``) if it is a real, finite, normal number
    within the bounds; else :class:`LimitError` ``"name = nan: must be a finite number in
    [0, 10] s"``.

    One rule for every number a user gives (procedure parameters, campaign keys, command-line
    options), because ``low <= x <= high`` alone lets NaN through in pymeasure (``nan < low``
    is False), ``int()`` silently truncates 2.7, and a denormal such as 1e-320 is a positive
    duration no instrument can realise. ``zero_allowed`` admits an exact 0 below ``low``
    (the parameters where 0 means "off" or "automatic"). Strings are parsed (the command line
    and the window give text); booleans are refused (``True`` is not 1 A).
    """
    rule = number_rule(low, high, unit, integral=integral, zero_allowed=zero_allowed,
                       low_open=low_open, high_open=high_open)
    shown = shown_value(value)

    def refuse(why: str = "") -> LimitError:
        return LimitError(f"{name} = {shown}: must be {rule}{why}")

    if isinstance(value, bool) or value is None:
        raise refuse()
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise refuse() from None
    if not math.isfinite(number):
        raise refuse()
    if number != 0.0 and abs(number) < sys.float_info.min:
        raise refuse(f" ({shown} is a denormal, below the smallest normal float)")
    if integral and number != math.floor(number):
        raise refuse()
    if zero_allowed and number == 0.0:
        return 0 if integral else 0.0
    below = low is not None and (number <= low if low_open else number < low)
    above = high is not None and (number >= high if high_open else number > high)
    if below or above:
        if low is not None and high is not None and not (low_open or high_open):
            u = f" {unit}" if unit else ""
            shown_number = f"{number:g}"
            raise LimitError(f"{name} = {shown_number}{u} is outside the allowed range "
                             f"{low:g} to {high:g}{u}" + (" (or 0)" if zero_allowed else ""))
        raise refuse()
    return int(number) if integral else number
