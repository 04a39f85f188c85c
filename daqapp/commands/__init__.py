"""Subcommands of the ``daqapp`` command.

Each module here defines ``register(subparsers)``: it adds one subcommand (with its own
``--help``) and sets ``func`` on the parser to a callable ``func(args) -> int``. The CLI finds
the modules by listing this package, so adding a command is adding a file.
"""
