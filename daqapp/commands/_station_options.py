"""Command-line options shared by every command that talks to instruments.

``--station FILE`` or ``--simulate`` (with ``--preset``, ``--speed``, ``--seed``, ``--wiring``)
mean the same in ``daqapp run``, ``gui`` and ``campaign``; defining them once keeps the help,
the defaults and the error messages identical. This module is not a subcommand (leading ``_``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from daqapp.commands._types import finite_float, whole_number

TEXT_WIRING_KEYS = ("dc_bias_source", "dc_voltage_reader")


def add_station_options(parser: argparse.ArgumentParser, default_speed: float) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--station", type=Path, metavar="FILE", help="station file (TOML)")
    where.add_argument("--simulate", action="store_true",
                       help="use the in-process virtual lab instead of instruments")
    parser.add_argument("--preset", default="la3ni2o7-cell2",
                        help="virtual lab sample preset (with --simulate; default %(default)s)")
    parser.add_argument("--speed", type=finite_float(0.01, 1e6), default=default_speed,
                        help="virtual lab time speed-up (with --simulate; default %(default)s)")
    parser.add_argument("--seed", type=whole_number(0, 2**32 - 1), default=0,
                        help="virtual lab noise seed")
    parser.add_argument("--wiring", action="append", default=[], metavar="KEY=VALUE",
                        help="station wiring for --simulate, e.g. dc_bias_source=current_source")


def station_from_options(args: argparse.Namespace) -> Any:
    """The station *config* the options name (nothing is connected yet)."""
    from daqapp.errors import ConfigError
    from daqapp.station import Station, load_station

    if args.station is not None:
        if args.wiring:
            raise ConfigError("--wiring is for --simulate; edit [wiring] in the station file")
        return load_station(args.station)
    if not args.simulate:
        raise ConfigError("give --station FILE or --simulate")
    wiring: dict[str, Any] = {}
    for key, text in parse_pairs("--wiring", args.wiring).items():
        if key in TEXT_WIRING_KEYS:
            wiring[key] = text
            continue
        try:
            wiring[key] = int(text) if key.endswith("_channel") else float(text)
        except ValueError:
            kind = "a whole number" if key.endswith("_channel") else "a number"
            raise ConfigError(f"--wiring {key}={text}: expected {kind}") from None
    tables = {"wiring": wiring} if wiring else {}
    return Station.simulated(preset=args.preset, speed=args.speed, seed=args.seed, **tables)


def parse_pairs(option: str, items: list[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; a malformed item names the option."""
    from daqapp.errors import ConfigError

    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"{option} {item!r}: expected NAME=VALUE")
        pairs[name.strip()] = value.strip()
    return pairs
