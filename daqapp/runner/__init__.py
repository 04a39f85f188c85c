"""Run control: record stream, stop/pause/abort, suspend rules, safe state.

``Run`` runs one procedure on one station into one HDF5 run file and fans each record out to
subscribers; ``RunControl`` holds the verbs; suspenders pause acquisition while a condition
(temperature out of band, magnet not holding) lasts. ``StorageWorker``/``StorageResults`` let
pymeasure's own Worker and Manager record into the same run files.
"""

import daqapp.runner.pymeasure_logging  # noqa: F401 - before pymeasure is imported
from daqapp.runner.control import RunAborted, RunControl, SuspendTimeout
from daqapp.runner.events import RunEvent
from daqapp.runner.procedure import ControlledProcedure
from daqapp.runner.run import Run, RunResult
from daqapp.runner.suspenders import (
    MagnetHoldingSuspender,
    Suspender,
    SuspenderFault,
    TemperatureBandSuspender,
)

__all__ = [
    "ControlledProcedure",
    "MagnetHoldingSuspender",
    "Run",
    "RunAborted",
    "RunControl",
    "RunEvent",
    "RunResult",
    "SuspendTimeout",
    "Suspender",
    "SuspenderFault",
    "TemperatureBandSuspender",
]
