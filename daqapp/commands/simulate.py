"""``daqapp simulate``: serve the virtual lab on 127.0.0.1 until interrupted."""

from __future__ import annotations

import argparse

from daqapp.commands._options import add_renamed_option
from daqapp.commands._types import finite_float, whole_number
from simulators.lab import (
    CURRENT_SOURCE_MODELS,
    LOCKIN_MODELS,
    MAGNET_MODELS,
    TEMPERATURE_MODELS,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate", help="serve the virtual lab (emulated instruments on 127.0.0.1)",
        description="Start the physics-backed virtual lab and serve every emulated instrument\n"
        "on its own 127.0.0.1 TCP port; print one line per instrument\n"
        "(role model VISA-resource) and run until Ctrl-C or SIGTERM. Open the resources with\n"
        "pyvisa-py ('@py') and set the read termination the instrument uses\n"
        "(SR830 and Keithley LF, Lake Shore and AMI CR LF, Oxford CR, Mercury LF).\n"
        "--serial serves roles on pseudo-terminals instead (ASRL/dev/pts/N::INSTR, the\n"
        "instrument's RS-232 path); a PPMS is served as a MultiPyVu server (host:port).",
        epilog="examples:\n  daqapp simulate --speed 100\n"
        "  daqapp simulate --ports standard --fault lockin=no_reply\n"
        "  daqapp simulate --preset my_sample.toml --temperature-controller itc503 \\\n"
        "      --magnet-supply ips120\n"
        "  daqapp simulate --temperature-controller ls350 --magnet-supply ls625 --lockin sr860\n"
        "  daqapp simulate --temperature-controller mercury_itc --magnet-supply mercury_ips "
        "--serial\n"
        "  daqapp simulate --temperature-controller ppms    # temperature and field, MultiPyVu",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="la3ni2o7-cell2",
                        help="sample preset: la3ni2o7-cell2 (default), la3ni2o7-cell1, nb-foil, "
                        "or a .toml file")
    parser.add_argument("--speed", type=finite_float(0.01, 1e6), default=1.0,
                        help="simulated seconds per real second (default 1; 100-1000 "
                        "fast-forwards a campaign)")
    parser.add_argument("--seed", type=whole_number(0, 2**32 - 1), default=0,
                        help="noise seed (default 0)")
    parser.add_argument("--ports", choices=("ephemeral", "standard"), default="ephemeral",
                        help="ephemeral (default): free ports; standard: 6221 1394, LS336 7777, "
                        "AMI430 7180, SR830 18830, 2182A 12182, ITC503 15003, IPS120 15120, "
                        "SR860 18860, SR865 18865, 6220 16220, LS335 7335, LS340 7340, "
                        "LS350 7350, LS625 7625, Mercury iTC 7020, Mercury iPS 7021, "
                        "PPMS (MultiPyVu) 27183")
    # Instrument models, not physical values: ``fit --temperature`` is kelvin.
    add_renamed_option(parser, "--temperature-controller", "--temperature",
                       choices=TEMPERATURE_MODELS, default="ls336",
                       help="temperature controller to emulate (default ls336; ppms also "
                       "serves the field)")
    add_renamed_option(parser, "--magnet-supply", "--magnet",
                       choices=MAGNET_MODELS, default="ami430",
                       help="magnet supply to emulate (default ami430; ppms also serves the "
                       "temperature)")
    parser.add_argument("--lockin", choices=LOCKIN_MODELS, default="sr830",
                        help="lock-in to emulate (default sr830)")
    parser.add_argument("--current-source", choices=CURRENT_SOURCE_MODELS, default="6221",
                        help="current source to emulate (default 6221; the 6220 has no DCON)")
    parser.add_argument("--serial", nargs="*", default=None, metavar="ROLE",
                        choices=("lockin", "current_source", "nanovoltmeter", "temperature",
                                 "magnet"),
                        help="serve these roles on pseudo-terminals (RS-232) instead of "
                        "sockets; without roles: temperature and magnet")
    parser.add_argument("--initial-temperature", type=finite_float(0, 1500, "K", low_open=True),
                        default=None, metavar="K",
                        help="start the cryostat at this temperature (default: 1.5 K bath)")
    parser.add_argument("--list-presets", action="store_true",
                        help="print the built-in sample presets and exit")
    parser.add_argument("--fault", action="append", default=[], metavar="ROLE=KIND",
                        help="inject a fault at start (repeatable): KIND is latency[:SECONDS], "
                        "no_reply, drop, garbage, overload (lockin), compliance "
                        "(current_source), quench (magnet), heater_open, heater_short "
                        "(temperature)")
    parser.set_defaults(func=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    import signal
    import sys
    import threading

    from daqapp.errors import ConfigError
    from simulators.faults import FaultBoard
    from simulators.lab import VirtualLab
    from simulators.presets import BUILTIN_PRESETS

    if args.list_presets:
        for name in sorted(BUILTIN_PRESETS):
            print(f"{name:16s} {BUILTIN_PRESETS[name].description}")
        return 0

    faults = [FaultBoard.parse(spec) for spec in args.fault]
    if args.initial_temperature is not None and not 1.5 <= args.initial_temperature <= 300:
        raise ConfigError(f"--initial-temperature = {args.initial_temperature:g} K is outside "
                          "the allowed range 1.5 to 300 K")
    serial = () if args.serial is None else tuple(args.serial or ("temperature", "magnet"))
    lab = VirtualLab(preset=args.preset, speed=args.speed, seed=args.seed,
                     temperature_model=args.temperature_controller,
                     magnet_model=args.magnet_supply, lockin_model=args.lockin,
                     current_source_model=args.current_source,
                     ports=args.ports, initial_temperature_K=args.initial_temperature,
                     serial_roles=serial)
    stop = threading.Event()

    def on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    lab.start()
    try:
        for role, kind, value in faults:
            lab.faults.set(role, kind, value)
        for line in lab.describe():
            print(line)
        print(f"# preset {lab.preset.name}, speed {lab.speed:g}x, seed {args.seed}; "
              "Ctrl-C to stop", file=sys.stderr)
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        lab.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    print("# virtual lab stopped", file=sys.stderr)
    return 0
