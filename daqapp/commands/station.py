"""``daqapp station``: check a station's instruments, show its configuration, list drivers."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "station", help="check or show a station file (instruments, wiring, limits)",
        description="Validate a station file, connect to its instruments, or list the drivers "
                    "a station file may name.")
    sub = parser.add_subparsers(dest="station_command", metavar="ACTION", required=True)

    check = sub.add_parser("check", help="connect every role, print its IDN and state",
                           description="Connect to every role of FILE, print each IDN and a "
                                       "one-line state; exit 2 naming any role that fails.")
    check.add_argument("file", metavar="FILE", help="station file (TOML)")
    check.set_defaults(func=_check)

    show = sub.add_parser("show", help="print the validated, resolved station configuration",
                          description="Validate FILE without connecting and print the "
                                      "configuration with every default filled in.")
    show.add_argument("file", metavar="FILE", help="station file (TOML)")
    show.add_argument("--json", action="store_true", help="print JSON instead of a summary")
    show.set_defaults(func=_show)

    drivers = sub.add_parser("drivers", help="list the driver names a station file may use",
                             description="List driver names, the roles they fill, default "
                                         "terminators and their extra option keys.")
    drivers.set_defaults(func=_drivers)


def _check(args: argparse.Namespace) -> int:
    import logging

    from daqapp.errors import InstrumentError
    from daqapp.station import load_station

    if not getattr(args, "debug", False):
        logging.getLogger("pymeasure").setLevel(logging.WARNING)  # no "Initializing ..." lines

    station = load_station(args.file)
    failed: list[str] = []
    with station.connect(strict=False) as conn:
        print(f"station {station.name} ({station.path})"
              + (" — virtual lab" if station.simulation.simulated else ""))
        for role, cfg in conn.resolved.roles.items():
            adapter = conn.roles.get(role)
            if adapter is None:
                failed.append(role)
                print(f"  {role:<15} FAIL  {conn.failures.get(role, 'not connected')}")
                continue
            try:
                idn = adapter.identify()
                state = adapter.state_line()
            except Exception as exc:  # noqa: BLE001 - reported per role, then exit 2
                failed.append(role)
                print(f"  {role:<15} FAIL  {cfg.driver} at {adapter.resource}: "
                      f"{type(exc).__name__}: {exc}")
                continue
            print(f"  {role:<15} OK    {cfg.driver} at {adapter.resource}")
            print(f"  {'':<15}       IDN  {idn}")
            print(f"  {'':<15}       now  {state}")
    if failed:
        raise InstrumentError(f"station check failed for role(s): {', '.join(failed)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from daqapp.station import load_station

    station = load_station(args.file)
    config = station.to_dict()
    if args.json:
        print(json.dumps(config, indent=2))
        return 0
    print(f"station {station.name} ({station.path})")
    for role, cfg in config["roles"].items():
        extras = {k: v for k, v in cfg.items() if k not in ("role", "driver", "resource")
                  and v not in (None, {}, "")}
        print(f"  {role:<15} {cfg['driver']:<22} {cfg['resource'] or '-'}"
              + (f"  {extras}" if extras else ""))
    for table in ("wiring", "limits", "safe_state", "simulation"):
        print(f"[{table}]")
        for key, value in config[table].items():
            print(f"  {key} = {value!r}")
    return 0


def _drivers(args: argparse.Namespace) -> int:
    from drivers.registry import DRIVERS

    for name, spec in sorted(DRIVERS.items()):
        print(f"{name:<22} roles: {', '.join(spec.roles):<15} "
              f"read {spec.read_termination!r} write {spec.write_termination!r}  "
              f"{spec.description}")
        if spec.options:
            print(f"{'':<22} options: {', '.join(sorted(spec.options))}")
    return 0
