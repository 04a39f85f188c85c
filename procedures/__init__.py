"""pymeasure Procedures: the measurements an operator queues.

``PROCEDURES`` names each one for the command line, the GUI and campaign files; other packages
add theirs through the ``daqapp.procedures`` entry points (``available``). The classes are
imported on demand (``load``) so listing names stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

import daqapp.runner.pymeasure_logging  # noqa: F401 - before pymeasure is imported
from daqapp.errors import ConfigError

#: Command-line name -> "module:Class".
PROCEDURES: dict[str, str] = {
    "didv-lockin": "procedures.lockin_spectrum:DifferentialConductanceLockIn",
    "didv-dcon": "procedures.dcon:DifferentialConductanceDcon",
    "iv": "procedures.iv:CriticalCurrentIV",
    "rt": "procedures.rt:ResistanceTemperature",
    "temperature-series": "procedures.series:TemperatureSeries",
    "field-sweep": "procedures.series:FieldSweep",
    "nb-calibration": "procedures.series:NbCalibration",
}


def available() -> dict[str, str]:
    """The built-in procedures, then those other installed packages add through the
    ``daqapp.procedures`` entry-point group (a plug-in never replaces a built-in name)."""
    from drivers.registry import plugin_procedures

    plugins = plugin_procedures()
    return {**PROCEDURES, **{k: v for k, v in plugins.items() if k not in PROCEDURES}}


def load(name: str) -> type[Any]:
    """The procedure class for a command-line name (built-in or plug-in) or a
    ``module:Class`` / dotted path."""
    target = PROCEDURES.get(name) or available().get(name, name)
    if ":" not in target and "." in target:
        module_name, _, class_name = target.rpartition(".")
    elif ":" in target:
        module_name, class_name = target.split(":", 1)
    else:
        raise ConfigError(f"procedure {name!r} is unknown; known: {', '.join(available())}")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, class_name)
    except Exception as exc:  # noqa: BLE001 - a plug-in's import may fail any way
        raise ConfigError(f"procedure {name!r} cannot be loaded ({type(exc).__name__}: "
                          f"{exc}); known: {', '.join(available())}") from None


def name_of(cls: type[Any]) -> str:
    """The command-line name of a procedure class (its dotted path if unregistered)."""
    for name, target in available().items():
        if target == f"{cls.__module__}:{cls.__qualname__}":
            return name
    return f"{cls.__module__}.{cls.__qualname__}"
