"""pymeasure Procedures: the measurements an operator queues.

``PROCEDURES`` names each one for the command line, the GUI and campaign files; the classes are
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


def load(name: str) -> type[Any]:
    """The procedure class for a command-line name or a ``module:Class`` / dotted path."""
    target = PROCEDURES.get(name, name)
    if ":" not in target and "." in target:
        module_name, _, class_name = target.rpartition(".")
    elif ":" in target:
        module_name, class_name = target.split(":", 1)
    else:
        raise ConfigError(f"procedure {name!r} is unknown; known: {', '.join(PROCEDURES)}")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"procedure {name!r} cannot be loaded ({exc}); "
                          f"known: {', '.join(PROCEDURES)}") from None


def name_of(cls: type[Any]) -> str:
    """The command-line name of a procedure class (its dotted path if unregistered)."""
    for name, target in PROCEDURES.items():
        if target == f"{cls.__module__}:{cls.__qualname__}":
            return name
    return f"{cls.__module__}.{cls.__qualname__}"
