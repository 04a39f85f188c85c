"""``daqapp station``: check a station's instruments, show its configuration, list drivers,
and show or clear the lock that keeps two processes from driving it at once."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


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
                             description="List the built-in drivers and those installed "
                                         "packages add (entry points daqapp.drivers): the "
                                         "roles they fill, default terminators, extra option "
                                         "keys, and where each comes from; a plug-in that "
                                         "cannot be used is listed with the reason.")
    drivers.set_defaults(func=_drivers)

    status = sub.add_parser(
        "status", help="show which process holds a station (or every station lock)",
        description="Show the lock of the station FILE (or, without FILE, every station lock "
        "in the state folder): the process driving it (pid, host, command, run file), or "
        "'stale' when that process died. Touches no instrument and no lock.",
        epilog="lock files live in $DAQAPP_STATE_DIR, else $XDG_STATE_HOME/daqapp/stations, "
        "else ~/.local/state/daqapp/stations")
    status.add_argument("file", metavar="FILE", nargs="?",
                        help="station file (TOML) or a lock file shown by `station status`")
    status.set_defaults(func=_status)

    unlock = sub.add_parser(
        "unlock", help="clear a stale station lock by hand (never a live one)",
        description="Remove the lock a dead process left on a station (FILE: its station "
        "file, or the lock file `station status` shows). The dead run file is marked "
        "interrupted; the instruments are not touched: open the station (station check, run, "
        "gui) to put it in its safe state. A lock held by a live process is refused.")
    unlock.add_argument("file", metavar="FILE",
                        help="station file (TOML) or a lock file shown by `station status`")
    unlock.add_argument("--force", action="store_true",
                        help="also clear a lock taken on another host (cannot be checked here)")
    unlock.set_defaults(func=_unlock)


def _check(args: argparse.Namespace) -> int:
    import logging

    from daqapp.errors import InstrumentError
    from daqapp.station import load_station
    from daqapp.station.lock import connect_for_driving

    if not getattr(args, "debug", False):
        logging.getLogger("pymeasure").setLevel(logging.WARNING)  # no "Initializing ..." lines

    station = load_station(args.file)
    failed: list[str] = []
    # Locked like a run: its queries must not interleave with a run's, and a station a dead
    # process was driving is put safe here too.
    with connect_for_driving(station, "check", strict=False) as conn:
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
    """Built-in drivers, then every ``daqapp.drivers`` entry point: usable ones with their
    roles and the distribution they come from, unusable ones with the reason."""
    from drivers.registry import BUILTIN_DRIVERS, DRIVERS, PROCEDURE_GROUP, entry_points

    def show(name: str, spec) -> None:
        print(f"{name:<22} roles: {', '.join(spec.roles):<15} "
              f"read {spec.read_termination!r} write {spec.write_termination!r}  "
              f"{spec.description}")
        if spec.options:
            print(f"{'':<22} options: {', '.join(sorted(spec.options))}")
        if spec.capabilities:
            print(f"{'':<22} modes: {', '.join(sorted(spec.capabilities))}")
        print(f"{'':<22} from: {spec.origin}")

    for name, spec in sorted(BUILTIN_DRIVERS.items()):
        show(name, spec)
    plugins = DRIVERS.plugin_status()
    print(f"plug-in drivers (entry points daqapp.drivers): {len(plugins) or 'none installed'}")
    for name, spec, where in plugins:
        if spec is None:
            print(f"{name:<22} UNUSABLE: {where}")
        else:
            show(name, spec)
    procedures = entry_points(PROCEDURE_GROUP)
    if procedures:
        print("plug-in procedures (entry points daqapp.procedures):")
        for name, ep in sorted(procedures.items()):
            dist = getattr(ep, "dist", None)
            origin = f"{dist.metadata['Name']} {dist.version}" if dist is not None else "?"
            print(f"{name:<22} {ep.value}  from: {origin}")
    print("a station file may also name an adapter class directly: "
          "driver = \"package.module:Class\"")
    return 0


def _lock_file(target: str) -> Path:
    """The lock file ``target`` names: a lock file itself, or a station file's lock."""
    from daqapp.station import load_station
    from daqapp.station.lock import LOCK_SUFFIX, lock_path

    path = Path(target)
    if path.suffix == LOCK_SUFFIX and path.is_file():
        return path
    return lock_path(load_station(path))


def _print_lock(state) -> None:
    info = state.info
    print(f"{state.path.name}: {state.label} — {state.reason}")
    if info is None:
        return
    print(f"  station  {info.station_name} ({info.station_path})")
    print(f"  holder   {info.describe()}")
    print(f"  purpose  {info.purpose or '?'}, lock taken {info.acquired or '?'}, "
          f"updated {info.updated or '?'}")
    print(f"  run file {info.run or 'none open'}")
    print(f"  lock     {state.path}")


def _status(args: argparse.Namespace) -> int:
    from daqapp.station.lock import all_locks, inspect_lock, state_dir

    if args.file is not None:
        path = _lock_file(args.file)
        state = inspect_lock(path)
        if not path.exists():
            print(f"free: no process holds this station (no {path})")
            return 0
        _print_lock(state)
        return 0
    locks = all_locks()
    if not locks:
        print(f"no station locks in {state_dir()}")
    for state in locks:
        _print_lock(state)
    return 0


def _unlock(args: argparse.Namespace) -> int:
    from daqapp.errors import ConfigError
    from daqapp.station.lock import clear_stale, mark_run_interrupted

    path = _lock_file(args.file)
    if not path.exists():
        raise ConfigError(f"{args.file}: this station is not locked (no {path})")
    stale = clear_stale(path, force=args.force)
    runs = [mark_run_interrupted(run_file) for run_file in stale.run_files]
    print(f"cleared the stale lock of {stale.info.describe()} ({stale.reason})"
          + (f"; {'; '.join(runs)}" if runs else "")
          + "; instruments untouched: open the station to put it in its safe state")
    return 0
