"""argparse types for numeric options: the project's one number rule, at the command line.

``type=float`` takes ``nan``, ``inf`` and ``1e-320`` (``report --series-resistance nan``,
``fit --sigma nan`` quietly became 1); ``type=int`` knows no range. Every numeric option of
every command uses :func:`finite_float` or :func:`whole_number` instead, which apply
:func:`daqapp.errors.check_number` (finite, normal, in range, whole where integral) and let
argparse print one line naming the option (see :class:`OneLineErrorParser`), e.g.
``daqapp fit: error: --sigma = nan: must be a finite number > 0``, with exit code 2.
This module is not a subcommand (leading ``_``).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

from daqapp.errors import LimitError, check_number, number_rule


def finite_float(low: float | None = None, high: float | None = None, unit: str = "", *,
                 low_open: bool = False, high_open: bool = False,
                 zero_allowed: bool = False) -> Callable[[str], float]:
    """An argparse ``type`` accepting a finite, normal number in the given bounds
    (``low_open``/``high_open`` exclude the bound itself: ``finite_float(0, low_open=True)``
    is "> 0")."""
    rule = {"low": low, "high": high, "unit": unit, "low_open": low_open,
            "high_open": high_open, "zero_allowed": zero_allowed}
    return _number_type(rule, integral=False)


def whole_number(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` accepting a whole number in ``[low, high]`` (``"5"``, ``"5.0"``;
    not ``"2.5"``, ``"nan"``)."""
    return _number_type({"low": low, "high": high}, integral=True)


def _number_type(rule: dict, integral: bool) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = check_number("", text, integral=integral, **rule)
        except LimitError:
            raise argparse.ArgumentTypeError(
                f"{text}: must be {number_rule(integral=integral, **rule)}") from None
        return int(value) if integral else value

    # argparse names the type in some messages and in --help of custom formatters
    convert.__name__ = "whole number" if integral else "number"
    return convert


#: argparse's wording of a refusal by :func:`finite_float` / :func:`whole_number`.
_NUMBER_REFUSED = re.compile(r"^argument (?P<option>\S+): (?P<value>.*?): (?P<rule>must be .*)$")


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (the project's rule for bad input),
    exit 2, instead of the usage block followed by the error; a refused number reads like
    every other refused number: ``daqapp fit: error: --sigma = nan: must be a finite number
    > 0 (see daqapp fit --help)``. Subcommand parsers inherit the class from the top level."""

    def error(self, message: str) -> None:  # type: ignore[override]
        refused = _NUMBER_REFUSED.match(message)
        if refused:
            message = f"{refused['option']} = {refused['value']}: {refused['rule']}"
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
