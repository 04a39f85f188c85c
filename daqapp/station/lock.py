"""One driving process per station, and recovery of a station whose driver died.

Opening a station to drive it (``daqapp run``, ``campaign run|resume``, ``gui``, ``demo``,
``station check``) takes a lock file: which process holds the station (pid, host, process
start time, command line) and which run file it is writing. A second live process is refused
with one line naming that pid and command, so the CLI and the window never drive the same
instruments at once. The file is removed on every normal way out.

The holder keeps an exclusive ``flock`` on the file; the kernel drops it when the process
dies, even by SIGKILL or a power cut, so a lock file whose ``flock`` can be taken was left by
a dead process. The pid, boot id and process start time stored in it confirm that (a pid
reused by another process, or a reboot, is not the holder). The next open then logs it
loudly, marks the dead run file interrupted and puts the station in its safe state right
after connecting, before anything else moves (the window asks first).

Lock files live in ``$DAQAPP_STATE_DIR`` (tests), else ``$XDG_STATE_HOME/daqapp/stations``,
else ``~/.local/state/daqapp/stations``; one per station, named after it and keyed by the
station file's resolved path (or a simulated station's name).
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daqapp.errors import DaqappError

if TYPE_CHECKING:
    from daqapp.station.config import Station
    from daqapp.station.connected import ConnectedStation

log = logging.getLogger(__name__)

STATE_DIR_ENV = "DAQAPP_STATE_DIR"
FORMAT = "daqapp-station-lock"
VERSION = 1
LOCK_SUFFIX = ".lock"


class StationInUse(DaqappError):
    """Another live process drives this station (the CLI prints it as one line, exit 2)."""


# ---------------------------------------------------------------------------- where


def state_dir() -> Path:
    """Folder of the station lock files (created on first use)."""
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "daqapp" / "stations"


def station_key(station: Station) -> str:
    """What identifies a station: its file's resolved path, or a simulated station's name."""
    path = Path(station.path)
    if path.is_file():
        return str(path.resolve())
    return f"{station.path}|{station.name}"


def lock_path(station: Station) -> Path:
    """The lock file of ``station``: readable name plus a hash of :func:`station_key`."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", station.name).strip("-.")[:40] or "station"
    digest = hashlib.sha1(station_key(station).encode()).hexdigest()[:10]
    return state_dir() / f"{slug}-{digest}{LOCK_SUFFIX}"


# ---------------------------------------------------------------------------- who


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def boot_id() -> str:
    """This boot's id (Linux); a lock from an earlier boot was left by a power cut/reboot."""
    return (_read_text("/proc/sys/kernel/random/boot_id") or "").strip()


def process_start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (``/proc/PID/stat`` field 22)."""
    text = _read_text(f"/proc/{pid}/stat")
    if not text or ")" not in text:
        return None
    fields = text[text.rindex(")") + 2:].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def process_started_at(pid: int, ticks: int | None = None) -> float | None:
    """Wall-clock start of ``pid`` (epoch s), from its start ticks and the boot time."""
    ticks = process_start_ticks(pid) if ticks is None else ticks
    match = re.search(r"^btime (\d+)", _read_text("/proc/stat") or "", re.MULTILINE)
    if ticks is None or match is None:
        return None
    return int(match.group(1)) + ticks / os.sysconf("SC_CLK_TCK")


def _process_started_iso(pid: int, ticks: int | None) -> str:
    started = process_started_at(pid, ticks)
    if started is None:
        return ""
    return _dt.datetime.fromtimestamp(started).astimezone().isoformat(timespec="seconds")


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    except OverflowError:
        return False
    return True


def command_line(argv: list[str] | None = None) -> str:
    """The command as the operator typed it (``daqapp run ...`` rather than ``.../cli.py``)."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return ""
    head = Path(argv[0]).name
    if head in ("cli.py", "__main__.py", "daqapp"):
        head = "daqapp"
    return shlex.join([head, *argv[1:]])


def _now_iso() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass(frozen=True)
class LockInfo:
    """What a lock file says: the holding process and what it is doing."""

    pid: int
    host: str
    boot_id: str
    start_ticks: int | None
    process_started: str
    command: str
    purpose: str
    station_name: str
    station_path: str
    run: str | None = None
    acquired: str = ""
    updated: str = ""
    previous: dict[str, Any] | None = None
    """The dead holder's lock this process found and is recovering (until it is done)."""

    @classmethod
    def for_this_process(cls, station: Station, purpose: str) -> LockInfo:
        pid = os.getpid()
        ticks = process_start_ticks(pid)
        now = _now_iso()
        return cls(pid=pid, host=socket.gethostname(), boot_id=boot_id(), start_ticks=ticks,
                   process_started=_process_started_iso(pid, ticks), command=command_line(),
                   purpose=purpose, station_name=station.name, station_path=station.path,
                   acquired=now, updated=now)

    @classmethod
    def from_dict(cls, data: Any) -> LockInfo:
        """Tolerant: a lock file is our own format, but may be half-written or hand-edited."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        pid = data.get("pid")
        if not isinstance(pid, int) or isinstance(pid, bool):
            raise ValueError(f"pid = {pid!r}")
        ticks = data.get("start_ticks")

        def text(key: str) -> str:
            value = data.get(key)
            return value if isinstance(value, str) else ""

        run = data.get("run")
        previous = data.get("previous")
        return cls(pid=pid, host=text("host"), boot_id=text("boot_id"),
                   start_ticks=ticks if isinstance(ticks, int) else None,
                   process_started=text("process_started"), command=text("command"),
                   purpose=text("purpose"), station_name=text("station_name"),
                   station_path=text("station_path"),
                   run=run if isinstance(run, str) and run else None,
                   acquired=text("acquired"), updated=text("updated"),
                   previous=previous if isinstance(previous, dict) else None)

    def to_dict(self) -> dict[str, Any]:
        out = {"format": FORMAT, "version": VERSION, **self.__dict__}
        if out["previous"] is None:
            del out["previous"]
        return out

    def describe(self) -> str:
        """``pid 1234 (daqapp run rt ...) on host since 10:02:03``."""
        since = self.process_started or self.acquired
        return (f"pid {self.pid} ({self.command or self.purpose or 'unknown command'}) on "
                f"{self.host or 'unknown host'}" + (f" since {since}" if since else ""))

    def holder_state(self) -> tuple[bool | None, str]:
        """(alive?, why): True/False, or None when it cannot be told (another host)."""
        if self.host and self.host != socket.gethostname():
            return None, f"held on another host ({self.host}); cannot check pid {self.pid}"
        here = boot_id()
        if self.boot_id and here and self.boot_id != here:
            return False, f"pid {self.pid} ran before this machine rebooted"
        if not pid_alive(self.pid):
            return False, f"pid {self.pid} is no longer running"
        if self.start_ticks is not None:
            ticks = process_start_ticks(self.pid)
            if ticks is not None and ticks != self.start_ticks:
                return False, f"pid {self.pid} is now another process (start time differs)"
        return True, f"pid {self.pid} is running"


@dataclass(frozen=True)
class StaleLock:
    """A lock left by a process that died while driving the station."""

    path: Path
    info: LockInfo
    reason: str
    earlier: tuple[LockInfo, ...] = ()
    """Holders before it that also died before their recovery was done."""

    @property
    def run_files(self) -> list[Path]:
        """Run files the dead holder(s) were writing, newest first."""
        return [Path(i.run) for i in (self.info, *self.earlier) if i.run]

    def describe(self) -> str:
        run = f"; it was writing {self.info.run}" if self.info.run else "; no run file open"
        return (f"station {self.info.station_name!r} was left by a dead process: "
                f"{self.info.describe()} ({self.reason}), lock taken "
                f"{self.info.acquired or '?'}{run}")


def _parse_lock(text: str, path: Path) -> tuple[LockInfo | None, str]:
    """(info, problem): ``problem`` is empty when the file parsed."""
    try:
        data = json.loads(text)
        return LockInfo.from_dict(data), ""
    except (ValueError, TypeError) as exc:
        return None, f"unreadable lock file {path} ({exc})"


def _stale_from(path: Path, info: LockInfo, reason: str) -> StaleLock:
    earlier: list[LockInfo] = []
    previous = info.previous
    while previous is not None and len(earlier) < 5:
        try:
            older = LockInfo.from_dict(previous)
        except ValueError:
            break
        earlier.append(older)
        previous = older.previous
    return StaleLock(path, info, reason, tuple(earlier))


def _unknown_holder(name: str, path: str, problem: str) -> LockInfo:
    """Stands in for a holder whose lock file cannot be read."""
    return LockInfo(pid=0, host="", boot_id="", start_ticks=None, process_started="",
                    command=problem, purpose="", station_name=name, station_path=path)


# ---------------------------------------------------------------------------- the lock


def _in_use_message(station: Station, info: LockInfo | None, path: Path, why: str = "") -> str:
    holder = info.describe() if info is not None else "another process (lock being written)"
    hint = f"; {why}" if why else ""
    return (f"station {station.name!r} is in use by {holder}{hint}; stop that process first "
            f"(lock {path})")


class StationLock:
    """The lock this process holds on one station; a context manager, released on exit.

    ``stale`` is the dead holder's lock found on acquiring (None if the station was free):
    the caller recovers from it (:func:`recover_stale`) and then calls :meth:`recovered`.
    """

    def __init__(self, station: Station, path: Path, fd: int, info: LockInfo,
                 stale: StaleLock | None) -> None:
        self.station = station
        self.path = path
        self.info = info
        self.stale = stale
        self._mutex = threading.Lock()  # set_run comes from the run's thread
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, station: Station, purpose: str) -> StationLock:
        """Take the station's lock or raise :class:`StationInUse` naming the holder."""
        path = lock_path(station)
        path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(20):  # bounded: only a release racing us makes it loop
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _flock_briefly(fd):
                os.close(fd)
                raise StationInUse(_in_use_message(station, _read_holder(path), path))
            try:
                if not _same_file(fd, path):  # the holder removed it as we opened it
                    os.close(fd)
                    continue
                old_text = _read_fd(fd)
                stale = None
                if old_text.strip():
                    old, problem = _parse_lock(old_text, path)
                    if old is None:
                        unknown = _unknown_holder(station.name, station.path, problem)
                        stale = StaleLock(path, unknown, problem)
                    else:
                        alive, why = old.holder_state()
                        if alive is not False:
                            # flock free but the holder may live: a lock on a filesystem
                            # without flock, or another host. Never take it over silently.
                            raise StationInUse(_in_use_message(station, old, path, why)
                                               + ("; if it is gone, `daqapp station unlock "
                                                  "--force` clears it" if alive is None else ""))
                        stale = _stale_from(path, old, why)
                info = LockInfo.for_this_process(station, purpose)
                if stale is not None:
                    info = _with(info, previous=stale.info.to_dict())
                lock = cls(station, path, fd, info, stale)
                lock._write()
                return lock
            except BaseException:
                os.close(fd)
                raise
        raise StationInUse(f"station {station.name!r}: could not take its lock {path} (it "
                           "kept changing); try again")

    @property
    def held(self) -> bool:
        return self._fd is not None

    def set_run(self, run_file: str | os.PathLike[str] | None) -> None:
        """Record the run file now being written (None when it has ended)."""
        run = str(Path(run_file).resolve()) if run_file is not None else None
        with self._mutex:
            if self._fd is not None and run != self.info.run:
                self.info = _with(self.info, run=run)
                self._write()

    def recovered(self) -> None:
        """The dead holder's leftovers are dealt with: forget them in the lock file."""
        with self._mutex:
            if self._fd is not None and self.info.previous is not None:
                self.info = _with(self.info, previous=None)
                self._write()

    def abandon(self) -> None:
        """Let go without having recovered: put the dead holder's record back (so the next
        open recovers the station again), or simply release if there was none."""
        if self.stale is None or self.stale.info.pid == 0:
            self.release()
            return
        with self._mutex:
            fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            payload = (json.dumps(self.stale.info.to_dict(), indent=1) + "\n").encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, payload, 0)
            os.fsync(fd)
        finally:
            os.close(fd)

    def release(self) -> None:
        """Remove the lock file and drop the ``flock``; safe to call twice."""
        with self._mutex:
            fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _same_file(fd, self.path):
                self.path.unlink()
        except OSError as exc:
            log.warning("station lock %s: could not remove it: %s", self.path, exc)
        finally:
            os.close(fd)

    def _write(self) -> None:
        assert self._fd is not None
        self.info = _with(self.info, updated=_now_iso())
        payload = (json.dumps(self.info.to_dict(), indent=1) + "\n").encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, payload, 0)
        os.fsync(self._fd)

    def __enter__(self) -> StationLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __del__(self) -> None:  # a forgotten lock must not outlive its object
        if getattr(self, "_fd", None) is not None:
            self.release()


def _with(info: LockInfo, **changes: Any) -> LockInfo:
    return replace(info, **changes)


def _flock_briefly(fd: int, tries: int = 5) -> bool:
    """Exclusive ``flock`` or False; retried for a moment, since ``station status`` holds a
    shared one for the instant it reads the file."""
    for attempt in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
        if attempt < tries - 1:
            time.sleep(0.02)
    return False


def _same_file(fd: int, path: Path) -> bool:
    try:
        mine, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def _read_fd(fd: int) -> str:
    chunks = []
    offset = 0
    while True:
        chunk = os.pread(fd, 65536, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
        if offset > 1 << 20:  # a lock file is a few hundred bytes; do not read a monster
            break
    return b"".join(chunks).decode("utf-8", "replace")


def _read_holder(path: Path) -> LockInfo | None:
    """The holder of a busy lock (retried: it may be rewriting the file this instant)."""
    for _ in range(5):
        try:
            info, _problem = _parse_lock(path.read_text(encoding="utf-8", errors="replace"),
                                         path)
        except OSError:
            info = None
        if info is not None:
            return info
        time.sleep(0.02)
    return None


# ---------------------------------------------------------------------------- inspecting


@dataclass(frozen=True)
class LockState:
    """A lock file seen from outside: its holder and whether that holder is alive."""

    path: Path
    info: LockInfo | None
    alive: bool | None
    reason: str

    @property
    def label(self) -> str:
        return {True: "in use", False: "stale", None: "unknown"}[self.alive]


def inspect_lock(path: Path) -> LockState:
    """Look at one lock file without changing it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return LockState(path, None, False, "no lock file")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return LockState(path, _read_holder(path), True, "held by a running process")
        info, problem = _parse_lock(_read_fd(fd), path)
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    if info is None:
        return LockState(path, None, False, problem or "empty lock file")
    alive, why = info.holder_state()
    return LockState(path, info, alive, why)


def find_stale(station: Station) -> StaleLock | None:
    """The stale lock of ``station`` if its last driver died, else None (free or live)."""
    state = inspect_lock(lock_path(station))
    if state.alive is not False or not state.path.exists():
        return None
    info = state.info or _unknown_holder(station.name, station.path, state.reason)
    return _stale_from(state.path, info, state.reason)


def check_free(station: Station) -> None:
    """Raise :class:`StationInUse` if a live process holds ``station`` (before preparing
    anything, e.g. a campaign folder; the lock itself is taken on connecting)."""
    state = inspect_lock(lock_path(station))
    if state.alive is not False:
        raise StationInUse(_in_use_message(station, state.info, state.path,
                                           "" if state.alive else state.reason))


def all_locks() -> list[LockState]:
    """Every lock file in :func:`state_dir`."""
    folder = state_dir()
    if not folder.is_dir():
        return []
    return [inspect_lock(p) for p in sorted(folder.glob(f"*{LOCK_SUFFIX}"))]


def clear_stale(path: Path, force: bool = False) -> StaleLock:
    """Remove a stale lock file by hand and return what it said; a live one is refused
    (``force`` only for a holder on another host, which cannot be checked from here)."""
    state = inspect_lock(path)
    if state.alive is True or (state.alive is None and not force):
        holder = state.info.describe() if state.info else "a live process"
        extra = " (add --force if that host's process is gone)" if state.alive is None else ""
        raise StationInUse(f"{path}: held by {holder}; {state.reason}{extra}")
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody may take it meanwhile
        if _same_file(fd, path):
            path.unlink()
    except OSError as exc:
        raise StationInUse(f"{path}: taken by another process just now ({exc})") from None
    finally:
        os.close(fd)
    info = state.info or _unknown_holder("?", "?", state.reason)
    return _stale_from(path, info, state.reason)


# ---------------------------------------------------------------------------- recovery


def mark_run_interrupted(run_file: Path) -> str:
    """Deal with the run file a dead process left; returns one phrase saying what was done.

    A file still saying "running" with no writer left is recovered in place by
    :func:`daqapp.storage.recover.recover_run` (write flags cleared, status ``interrupted``),
    so every HDF5 tool opens it and no second copy of the run is left beside it. A campaign
    step's file (its metadata names the step) is left to ``campaign resume``, which keeps it
    under ``partial/`` and runs the step again.
    """
    from daqapp.storage import open_run
    from daqapp.storage.recover import recover_run

    if not run_file.exists():
        return f"its run file {run_file} is no longer there (moved or deleted)"
    try:
        with open_run(run_file) as run:
            raw, live = run.raw_status, run.is_live
            campaign_step = run.metadata.get("campaign_step")
    except Exception as exc:  # noqa: BLE001 - an unreadable file is reported, not fatal
        return f"its run file {run_file} cannot be read ({type(exc).__name__}: {exc})"
    if raw != "running":
        return f"its run file {run_file.name} had ended ({raw})"
    if live:
        return f"its run file {run_file.name} is still being written by another process"
    if campaign_step:
        return (f"run file {run_file.name} is interrupted; `daqapp campaign resume "
                f"{run_file.parent}` keeps it under partial/ and runs the step again")
    try:
        recovery = recover_run(run_file, in_place=True)
    except Exception as exc:  # noqa: BLE001 - e.g. truncated: the copy path is by hand
        return (f"run file {run_file.name} is interrupted (not recovered: {exc}; try "
                f"`daqapp runs recover {run_file}`)")
    lost = f", {len(recovery.lost)} unreadable part(s) listed in it" if recovery.lost else ""
    return f"run file {run_file.name} marked interrupted in place ({recovery.n_rows} rows{lost})"


def safe_state_text(result: Any) -> tuple[bool, str]:
    """(all confirmed?, text) from what :meth:`ConnectedStation.to_safe_state` returns: a
    :class:`drivers.roles.SafeStateReport` (or, from an older station object, the list of errors
    it met)."""
    if isinstance(result, (list, tuple)):
        problems = [str(p) for p in result]
        return not problems, ("put in its safe state" if not problems else
                              f"safe state INCOMPLETE: {'; '.join(problems)}")
    if result is None:
        return False, "safe state NOT CONFIRMED: the station returned no verdict; check by hand"
    if result.confirmed:
        return True, "put in its safe state"
    return False, result.summary()


@dataclass
class Recovery:
    """What :func:`recover_stale` did, in the one line it logs (the CLI shows it)."""

    stale: StaleLock
    runs: list[str] = field(default_factory=list)
    put_safe: bool | None = None
    """True: safe state confirmed; False: attempted, not confirmed; None: not attempted."""
    safe_text: str = ""

    def line(self) -> str:
        info = self.stale.info
        what = self.safe_text or "NOT put in its safe state (the operator declined)"
        runs = "; ".join(self.runs)
        return (f"station {info.station_name!r}: {what} after its previous driver (pid "
                f"{info.pid}, {info.command or 'unknown command'}) died"
                + (f"; {runs}" if runs else ""))


AskOperator = Callable[[StaleLock, "ConnectedStation"], bool]


def recover_stale(stale: StaleLock, conn: ConnectedStation,
                  ask: AskOperator | None = None) -> Recovery:
    """After a dead holder: mark its run file(s) interrupted and put the station safe.

    ``ask(stale, conn)`` (the window's dialog) decides whether to apply the safe state;
    without it the safe state is applied at once. Nothing else may move before this returns.
    """
    log.warning("STATION RECOVERY: %s", stale.describe())
    recovery = Recovery(stale)
    for run_file in stale.run_files:
        recovery.runs.append(mark_run_interrupted(run_file))
    if ask is None or ask(stale, conn):
        ok, recovery.safe_text = safe_state_text(conn.to_safe_state())
        recovery.put_safe = ok
    (log.warning if recovery.put_safe else log.error)("STATION RECOVERY: %s", recovery.line())
    return recovery


# ---------------------------------------------------------------------------- the hook


def connect_for_driving(station: Station, purpose: str, strict: bool = True,
                        ask: AskOperator | None = None,
                        report: Callable[[str], None] | None = None,
                        roles: Collection[str] | None = None) -> ConnectedStation:
    """Lock ``station``, connect it and recover from a dead previous driver; the lock is
    released when the returned station is closed.

    The one line saying what a recovery did is logged (stderr in the CLI, the campaign log)
    and also given to ``report`` if set. ``roles``: open only these (and what they talk
    through), unless a dead driver is being recovered.
    """
    lock = StationLock.acquire(station, purpose)
    try:
        kwargs: dict[str, Any] = {} if strict else {"strict": False}
        if roles is not None and lock.stale is None:
            # a job opens only the roles it uses; after a dead driver, every role is opened
            # so the recovery's safe state covers what that driver may have left on
            kwargs["roles"] = roles
        conn = station.connect(**kwargs)
    except BaseException:
        lock.release()
        raise
    conn.lock = lock
    if lock.stale is not None:
        try:
            recovery = recover_stale(lock.stale, conn, ask)
        except BaseException:  # e.g. Ctrl-C at the question: the next open recovers again
            conn.lock = None
            conn.close()
            lock.abandon()
            raise
        lock.recovered()
        if report is not None:
            report(recovery.line())
    return conn


__all__ = ["LockInfo", "LockState", "Recovery", "STATE_DIR_ENV", "StaleLock", "StationInUse",
           "StationLock", "all_locks", "check_free", "clear_stale", "connect_for_driving",
           "find_stale", "inspect_lock", "lock_path", "recover_stale", "state_dir"]
