"""Options every command spells the same way: ``-o/--output``, ``--no-progress/--quiet``,
and renamed options that keep their old spelling as a deprecated alias.

One place, so ``daqapp run -o runs`` and ``daqapp campaign run -o out`` both work and
``--quiet`` means "no progress bar" wherever a progress bar is drawn. Not a subcommand
(leading ``_``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_output_option(parser: Any, help: str, default: Path | None = None,
                      metavar: str = "DIR") -> None:
    """``-o/--output`` (``dest="output"``) with the command's own meaning in ``help``."""
    parser.add_argument("-o", "--output", type=Path, default=default, metavar=metavar,
                        help=help)


def add_progress_option(parser: Any) -> None:
    """``--no-progress`` and its synonym ``--quiet``: no progress bar (``dest="no_progress"``)."""
    parser.add_argument("--no-progress", "--quiet", dest="no_progress", action="store_true",
                        help="no progress bar (--quiet is the same)")


class DeprecatedAlias(argparse.Action):
    """Stores into the renamed option's ``dest`` and warns once, on one line, that the
    spelling used is deprecated (e.g. ``simulate --temperature`` → ``--temperature-controller``)."""

    def __init__(self, option_strings: list[str], dest: str, new: str = "",
                 **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(f"{parser.prog}: warning: {option_string} is deprecated, use {self.new}",
              file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_renamed_option(parser: Any, new: str, old: str, **kwargs: Any) -> None:
    """``new`` as the documented option; ``old`` still works, with a deprecation line."""
    dest = new.lstrip("-").replace("-", "_")
    parser.add_argument(new, dest=dest, **kwargs)
    alias = {k: v for k, v in kwargs.items() if k in ("choices", "type", "metavar")}
    parser.add_argument(old, dest=dest, action=DeprecatedAlias, new=new,
                        default=argparse.SUPPRESS, help=f"deprecated spelling of {new}",
                        **alias)
