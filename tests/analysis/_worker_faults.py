"""Faults for code that runs in child processes: a task argument that kills the worker
unpickling it, once (test_batch); a read that never ends (the file probe, test_safe_files)."""

from __future__ import annotations

import os


def _die_once(marker: str, raw, client_pid: int):
    """Unpickled in a worker process, the first time: that worker dies there. (Unpickled in
    the client's process, where a LocalCluster's scheduler reads the task: stays as it was.)"""
    if os.getpid() == client_pid:
        return KillsItsFirstWorker(marker, raw, client_pid)
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return raw


class KillsItsFirstWorker:
    def __init__(self, marker: str, raw, client_pid: int) -> None:
        self.marker, self.raw, self.client_pid = marker, raw, client_pid

    def __reduce__(self):
        return (_die_once, (self.marker, self.raw, self.client_pid))


def read_forever(f) -> None:
    """What a corrupt global heap does inside HDF5, for the file probe's child (h5safe)."""
    import time

    while True:
        time.sleep(0.01)
