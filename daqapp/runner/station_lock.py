"""Tell a station's lock which run file is being written, from the run's own events.

The station lock (:mod:`daqapp.station.lock`) records the open run file so that, after a
SIGKILL, the next process to open the station can mark that file interrupted. The lock knows
nothing of runs; this listener, subscribed by whoever starts a run, keeps it current, so
:class:`~daqapp.runner.run.Run` needs no knowledge of locks either.
"""

from __future__ import annotations

from typing import Any

from daqapp.runner import events


def track_run(station: Any, run: Any) -> None:
    """Subscribe to ``run`` so ``station.lock`` (if the station holds one) follows its file.

    The path is recorded when the run reports "running" (the file exists then) and cleared
    at its final status (the file is closed by then).
    """
    lock = getattr(station, "lock", None)
    if lock is None or not callable(getattr(lock, "set_run", None)):
        return

    def listen(event: events.RunEvent) -> None:
        if event.kind != events.STATUS:
            return
        status = event.payload.get("status")
        if status == events.RUNNING and run.path is not None:
            lock.set_run(run.path)
        elif status in events.STATUSES:
            lock.set_run(None)

    run.subscribe(listen)
