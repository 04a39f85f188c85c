"""What every emulator's parser shares about numeric arguments.

``float()`` accepts ``nan``, ``inf`` and ``1e999``; no instrument does. An argument like that is
refused as a bad parameter (each emulator sets its own error bit or queue entry), never stored.
"""

from __future__ import annotations

import math

#: Exceptions a handler raises on a malformed argument (a missing field, text where a number
#: belongs, a value no table holds): the command is refused with the instrument's error.
MALFORMED = (ValueError, IndexError, KeyError, TypeError, OverflowError, ZeroDivisionError)


def nonfinite_number(token: str) -> bool:
    """True for a token that parses as a float but is not finite (``nan``, ``inf``, ``1e999``)."""
    try:
        value = float(token)
    except (TypeError, ValueError):
        return False
    return not math.isfinite(value)


def any_nonfinite(tokens: list[str] | tuple[str, ...] | str, keywords: tuple[str, ...] = ()
                  ) -> bool:
    """True if any comma-separated token is a non-finite number; ``keywords`` (e.g. SCPI's
    ``INF`` count) are the instrument's own words and pass."""
    if isinstance(tokens, str):
        tokens = tokens.split(",")
    allowed = {k.upper() for k in keywords}
    return any(nonfinite_number(t) and t.strip().upper().lstrip("+-") not in allowed
               for t in tokens)
