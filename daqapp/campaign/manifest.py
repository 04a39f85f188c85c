"""The campaign manifest: the steps of a campaign and what became of each, kept on disk.

It is rewritten after every change of state, atomically (write a temporary file, fsync,
``os.replace``), so a kill or power cut leaves either the previous or the new manifest, never
a torn one. ``resume`` trusts only this file and the run files it names.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daqapp.errors import ConfigError, DataFileError

log = logging.getLogger(__name__)
MANIFEST_NAME = "manifest.json"
CAMPAIGN_COPY_NAME = "campaign.toml"
FORMAT = "daqapp-campaign-manifest"
VERSION = 1

# Step states. ``running`` on disk means the process died during that step.
PENDING, RUNNING, FINISHED, FAILED, SKIPPED = "pending", "running", "finished", "failed", \
    "skipped"
STEP_STATES = (PENDING, RUNNING, FINISHED, FAILED, SKIPPED)
DONE_STATES = (FINISHED, SKIPPED)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime())


def temp_path(path: Path, pid: int | None = None) -> Path:
    """The temporary file :func:`write_json_atomic` writes before replacing ``path``."""
    return path.with_name(f".{path.name}.{os.getpid() if pid is None else pid}.tmp")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` so that readers see the old or the new file only."""
    path = Path(path)
    tmp = temp_path(path)
    payload = json.dumps(data, indent=2, sort_keys=False, default=_json_default)
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(payload)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temp_files(path: Path) -> list[Path]:
    """Remove the temporary files of ``path`` that dead writers left behind.

    A kill between writing the temporary file and replacing ``path`` leaves
    ``.<name>.<pid>.tmp``; nothing else would ever remove it. A file is kept while its pid
    runs and that process started before the file was written (a pid since reused by a
    younger process did not write it).
    """
    from daqapp.station.lock import pid_alive, process_started_at

    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.tmp")
    removed = []
    for candidate in path.parent.glob(f".{path.name}.*.tmp"):
        match = pattern.fullmatch(candidate.name)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            written = candidate.stat().st_mtime
        except FileNotFoundError:
            continue
        if pid == os.getpid():
            continue  # our own write in progress
        if pid_alive(pid):
            started = process_started_at(pid)
            if started is None or started <= written + 1.0:
                continue
        try:
            candidate.unlink()
        except FileNotFoundError:
            continue
        log.warning("removed %s: a temporary file left by pid %d, killed while it wrote %s",
                    candidate.name, pid, path.name)
        removed.append(candidate)
    return removed


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


@dataclass
class StepRecord:
    """View of one manifest step entry (a dict on disk)."""

    key: str
    status: str
    file: str | None
    attempts: list[dict[str, Any]]


class Manifest:
    """The manifest of one campaign folder; thread-safe, every mutation is persisted."""

    def __init__(self, folder: Path, data: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / MANIFEST_NAME
        self.data = data
        self._lock = threading.RLock()

    # -- creation and loading
    @classmethod
    def create(cls, folder: Path, campaign_name: str, source_file: Path,
               steps: Iterable[dict[str, Any]], station: str,
               metadata: dict[str, Any] | None = None) -> Manifest:
        data = {
            "format": FORMAT,
            "version": VERSION,
            "campaign": {"name": campaign_name, "source": str(source_file),
                         "copy": CAMPAIGN_COPY_NAME, "station": station,
                         "metadata": dict(metadata or {})},
            "created": now_iso(),
            "updated": now_iso(),
            "status": PENDING,
            "sessions": [],
            "steps": [dict(step, status=PENDING, attempts=[], file=None) for step in steps],
        }
        manifest = cls(folder, data)
        manifest.save()
        return manifest

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        path = Path(folder) / MANIFEST_NAME
        if not path.is_file():
            raise DataFileError(f"{folder}: no {MANIFEST_NAME}: not a campaign folder")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataFileError(f"{path}: unreadable manifest ({exc})") from None
        if data.get("format") != FORMAT:
            raise DataFileError(f"{path}: not a daqapp campaign manifest")
        if data.get("version", 0) > VERSION:
            raise DataFileError(f"{path}: manifest version {data.get('version')} is newer than "
                                f"this daqapp understands ({VERSION})")
        for i, step in enumerate(data.get("steps", [])):
            if step.get("status") not in STEP_STATES:
                raise DataFileError(f"{path}: steps[{i}].status = {step.get('status')!r}")
        return cls(Path(folder), data)

    def save(self) -> None:
        with self._lock:
            self.data["updated"] = now_iso()
            write_json_atomic(self.path, self.data)

    # -- queries
    @property
    def steps(self) -> list[dict[str, Any]]:
        return self.data["steps"]

    @property
    def status(self) -> str:
        return self.data["status"]

    def step(self, key: str) -> dict[str, Any]:
        for step in self.steps:
            if step["key"] == key:
                return step
        raise KeyError(key)

    def first_unfinished(self) -> dict[str, Any] | None:
        for step in self.steps:
            if step["status"] not in DONE_STATES:
                return step
        return None

    def counts(self) -> dict[str, int]:
        result = {state: 0 for state in STEP_STATES}
        for step in self.steps:
            result[step["status"]] += 1
        return result

    def check_matches(self, keys: list[str]) -> None:
        """Refuse to resume if the campaign file no longer expands to the recorded steps."""
        recorded = [step["key"] for step in self.steps]
        if recorded != keys:
            missing = sorted(set(recorded) ^ set(keys))
            raise ConfigError(f"{self.folder}: the campaign file no longer matches its manifest "
                              f"(steps differ: {', '.join(missing[:5]) or 'order'}); "
                              "start a new campaign folder instead")

    # -- mutations
    def set_status(self, status: str, **extra: Any) -> None:
        with self._lock:
            self.data["status"] = status
            self.data.update(extra)
            self.save()

    def begin_session(self, pid: int, argv: list[str]) -> None:
        with self._lock:
            self.data["sessions"].append({"started": now_iso(), "pid": pid, "argv": argv})
            self.data["status"] = RUNNING
            self.save()

    def end_session(self, status: str, message: str = "") -> None:
        with self._lock:
            if self.data["sessions"]:
                self.data["sessions"][-1].update(ended=now_iso(), status=status,
                                                 message=message)
            self.data["status"] = status
            self.save()

    def update_step(self, key: str, **changes: Any) -> dict[str, Any]:
        with self._lock:
            step = self.step(key)
            step.update(changes)
            self.save()
            return step

    def start_attempt(self, key: str, staging: str | None) -> dict[str, Any]:
        with self._lock:
            step = self.step(key)
            attempt = {"number": len(step["attempts"]) + 1, "started": now_iso(),
                       "status": RUNNING, "staging": staging}
            step["attempts"].append(attempt)
            step["status"] = RUNNING
            self.save()
            return attempt

    def end_attempt(self, key: str, status: str, **details: Any) -> bool:
        """Close the step's last attempt if it is still running; False if it had ended (a
        kill between two saves must not overwrite how it ended)."""
        with self._lock:
            step = self.step(key)
            attempts = step["attempts"]
            if not attempts or attempts[-1].get("status") != RUNNING:
                return False
            attempts[-1].update(status=status, ended=now_iso(), **details)
            self.save()
            return True

    def last_attempt(self, key: str) -> dict[str, Any] | None:
        attempts = self.step(key)["attempts"]
        return attempts[-1] if attempts else None
