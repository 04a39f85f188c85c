"""The ``daqapp`` command: discovers subcommands and turns user errors into one line and exit 2."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
import traceback

from daqapp import __version__
from daqapp.errors import DaqappError

EXIT_USAGE = 2

#: pymeasure's import-time notices about optional extras daqapp does not use (its ZMQ/TCP
#: listeners and IPython notebook display), printed on every start once logging is set up.
_PYMEASURE_IMPORT_NOTICES = {
    "pymeasure.experiment.listeners": "ZMQ and cloudpickle are required",
    "pymeasure.experiment.workers": "ZMQ and cloudpickle are required",
    "pymeasure.display.listeners": "ZMQ and cloudpickle are required",
    "pymeasure.experiment.experiment": "IPython could not be imported",
}


class _DropNotice(logging.Filter):
    """Drops one known message of one logger; everything else that logger says passes."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def silence_pymeasure_import_notices() -> None:
    """Filter those notices on their own loggers (before pymeasure is imported: the filter
    is on the logger object pymeasure's ``getLogger(__name__)`` will return)."""
    for name, prefix in _PYMEASURE_IMPORT_NOTICES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNotice) for f in logger.filters):
            logger.addFilter(_DropNotice(prefix))


silence_pymeasure_import_notices()


def build_parser() -> argparse.ArgumentParser:
    from daqapp.commands._types import OneLineErrorParser

    parser = OneLineErrorParser(
        prog="daqapp",
        description="Andreev reflection (dI/dV) and transport measurements: instruments, "
        "virtual lab, HDF5 runs and BTK analysis.",
    )
    parser.add_argument("--version", action="version", version=f"daqapp {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import daqapp.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP before a run started
        print(f"daqapp: {getattr(exc, 'reason', 'interrupted')}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 130))
    except BrokenPipeError:
        # Output piped into `head` and friends: not an error of ours. Silence the flush at exit.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 0
    except (DaqappError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"daqapp {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - last resort: one line unless --debug
        if args.debug:
            traceback.print_exc()
        print(f"daqapp {args.command}: unexpected error: {type(exc).__name__}: {exc} "
              "(run with --debug for the traceback)", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
