"""The run's event stream: what listeners (plot buffers, fit worker, GUI, CLI) receive.

One small immutable object per event, in the order the acquisition thread produced them, so a
listener never has to poll the procedure or re-read the run file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: ``payload`` is the record dict (column name -> value), as appended to the run file.
RECORD = "record"
#: ``payload`` is the percentage done, 0-100 (float).
PROGRESS = "progress"
#: ``payload`` is ``{"status": ..., "reason": ...}``; status is one of :data:`STATUSES`
#: or the transient ``"paused"`` / ``"suspended"``.
STATUS = "status"
#: ``payload`` is ``{"level": "INFO", "message": ...}``.
LOG = "log"
#: ``payload`` is ``{"sweep": index, ...}`` with the sweep's temperature, field, direction.
SWEEP_END = "sweep_end"
#: ``payload`` is ``{"name": ..., "result": {...}}`` as stored in the run file's fits group.
FIT = "fit"

KINDS = frozenset({RECORD, PROGRESS, STATUS, LOG, SWEEP_END, FIT})

#: Final statuses written to the run file; "running" is the status while it is open.
FINISHED, STOPPED, ABORTED, FAILED = "finished", "stopped", "aborted", "failed"
STATUSES = (FINISHED, STOPPED, ABORTED, FAILED)
#: Transient statuses sent as STATUS events only.
RUNNING, PAUSED, SUSPENDED = "running", "paused", "suspended"


@dataclass(frozen=True)
class RunEvent:
    """One event of a run: ``kind`` from :data:`KINDS`, its ``payload`` and wall time."""

    kind: str
    payload: Any
    time: float = field(default_factory=time.time)


Listener = Callable[[RunEvent], None]
