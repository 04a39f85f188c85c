"""Putting a station in its safe state at the end of a run, and what the run makes of it.

Every way a run ends (``Run``, pymeasure's Worker, a campaign step or the campaign's end) calls
:func:`apply_safe_state`: it never raises, and it turns whatever the station answers into one
:class:`SafeStateOutcome`. A connected station returns a
:class:`drivers.roles.SafeStateReport` (a read-back verdict per role); simpler stations (test
doubles) may return a list of errors or nothing, which is "applied, not read back".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from drivers.roles import SafeStateReport

log = logging.getLogger(__name__)

#: Key of the verdict in the run file's end snapshot (``/entry/snapshots/end``).
SNAPSHOT_KEY = "safe_state_report"


@dataclass(frozen=True)
class SafeStateOutcome:
    """The safe state as the run records it.

    ``confirmed`` is False only when something is known not to be safe (a role not
    confirmed, errors reported, the call itself failing); a station that reports nothing
    gives ``confirmed=True, read_back=False``.
    """

    confirmed: bool
    read_back: bool
    summary: str
    lines: tuple[str, ...] = ()
    unconfirmed_lines: tuple[str, ...] = ()
    report: SafeStateReport | None = None

    def log_lines(self) -> list[tuple[str, str]]:
        """(level, message) per role for the run file's log: ERROR where not confirmed."""
        bad = set(self.unconfirmed_lines)
        return [("ERROR" if line in bad else "INFO", f"safe state: {line}")
                for line in self.lines]

    def to_dict(self) -> dict[str, Any]:
        if self.report is not None:
            return self.report.to_dict()
        return {"confirmed": self.confirmed, "read_back": self.read_back,
                "summary": self.summary, "roles": []}


def apply_safe_state(station: Any) -> SafeStateOutcome | None:
    """``station.to_safe_state()``, interpreted; None without a station. Never raises."""
    if station is None:
        return None
    try:
        answer = station.to_safe_state()
    except Exception as exc:  # noqa: BLE001 - the run must still close its file
        text = f"safe state failed: {type(exc).__name__}: {exc} — check every instrument by hand"
        log.error(text)
        return SafeStateOutcome(False, False, text, (text,), (text,))
    if isinstance(answer, SafeStateReport):
        lines = tuple(answer.lines())
        bad = tuple(v.line() for v in answer.unconfirmed)
        return SafeStateOutcome(answer.confirmed, True, answer.summary(), lines, bad, answer)
    if isinstance(answer, (list, tuple)) and answer:
        text = f"safe state incomplete: {'; '.join(map(str, answer))} — check by hand"
        log.error(text)
        return SafeStateOutcome(False, False, text, (text,), (text,))
    return SafeStateOutcome(True, False, "safe state applied (not read back)")
