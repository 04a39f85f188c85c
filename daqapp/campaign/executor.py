"""Running a campaign: position, stabilise, measure, record the outcome, and resume after a crash.

The campaign folder is the whole state: ``campaign.toml`` (a copy of the file that started it),
``manifest.json`` (every step and its attempts, rewritten atomically on each change),
``campaign.log``, and one run file per finished step, named after the step's key. A step is
marked ``running`` in the manifest *before* anything moves; if the process dies, ``resume``
finds that mark, moves the partial run file to ``partial/`` (kept, never overwritten) and runs
the step again. Finished and skipped steps are never repeated.

Every way out of a step that did not finish (fault, timeout, interrupt) passes through the
station's safe state; so does the end of the campaign, whatever it was.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from daqapp.campaign import manifest as M
from daqapp.campaign.progress import ProgressLine
from daqapp.campaign.spec import (
    UNBOUNDED_LIMITS,
    Campaign,
    PlannedStep,
    SuspendRule,
    load_campaign,
    with_estimates,
    zone_for,
)
from daqapp.errors import ConfigError, DaqappError
from daqapp.runner.watchdogs import check_heater, check_quench, wait_until
from daqapp.station.lock import StationInUse, check_free

log = logging.getLogger(__name__)

LOG_NAME = "campaign.log"
PARTIAL_DIR = "partial"


class StepFault(RuntimeError):
    """A step could not complete (temperature never stable, magnet quench, run failed)."""


class CampaignStopped(DaqappError):
    """The campaign stopped on a fault whose policy is ``stop`` (the manifest says which)."""


class CampaignAborted(KeyboardInterrupt):
    """The operator aborted from another thread (the window's *Abort*): the session ends as
    after Ctrl-C — the step's partial run kept, the station safe, the folder resumable."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class CampaignOutcome:
    """How a session ended: ``status`` (finished, stopped, interrupted) and step counts."""

    folder: Path
    status: str
    counts: dict[str, int]
    message: str = ""
    files: list[Path] = field(default_factory=list)
    safe_state: str = ""
    """The end-of-session safe state's one-line verdict ("" when no station was opened)."""

    @property
    def ok(self) -> bool:
        return self.status == M.FINISHED


# --------------------------------------------------------------------------- stations


def connect_station(campaign: Campaign) -> Any:
    """Connected station for ``campaign.station`` (starts the virtual lab when simulated),
    holding the station's lock (a dead previous driver is recovered first)."""
    from daqapp import station as station_module
    from daqapp.station.lock import connect_for_driving

    spec = campaign.station
    if spec.file is not None:
        station = station_module.load_station(spec.file)
    else:
        station = _simulated_station(campaign)
    return connect_for_driving(station, "campaign", roles=campaign_roles(campaign))


def campaign_roles(campaign: Campaign) -> set[str] | None:
    """The roles the campaign's steps use (None: every role): the temperature controller and
    magnet that position each step, and what each step's procedure declares it may use."""
    from daqapp.campaign.catalog import ProcedureCatalog

    catalog = ProcedureCatalog()
    roles = {"temperature", "magnet"}
    for step in campaign.steps:
        if step.procedure is None:
            continue
        try:
            declared = getattr(catalog.resolve(step.procedure), "ROLES", None)
        except ConfigError:
            return None
        if declared is None:
            return None
        roles |= set(declared)
    return roles


def _simulated_station(campaign: Campaign) -> Any:
    from daqapp import station as station_module

    spec = campaign.station
    kwargs: dict[str, Any] = {"speed": spec.speed, **spec.tables}
    if spec.seed is not None:
        kwargs["seed"] = spec.seed
    return station_module.Station.simulated(spec.preset or "la3ni2o7-cell2", **kwargs)


def unconnected_station(campaign: Campaign) -> Any:
    """The campaign's station as configured (wiring, limits), without connecting."""
    try:
        from daqapp import station as station_module

        if campaign.station.file is not None:
            return station_module.load_station(campaign.station.file)
        return _simulated_station(campaign)
    except (ImportError, AttributeError):
        return None


def station_limits_dict(campaign: Campaign) -> dict[str, float]:
    """Field/temperature limits of the station (file or virtual lab), before connecting."""
    try:
        from daqapp import station as station_module

        spec = campaign.station
        if spec.file is not None:
            station = station_module.load_station(spec.file)
        else:
            station = _simulated_station(campaign)
    except (ImportError, AttributeError):
        return {}
    limits = getattr(station, "limits", None)
    out: dict[str, float] = {}
    for key, names in (("field_T", ("max_field_t", "field_T", "max_field_T")),
                       ("temperature_max_K", ("temperature_max_k", "temperature_max_K")),
                       ("temperature_min_K", ("temperature_min_k", "temperature_min_K")),
                       ("field_rate_T_per_min", ("max_field_ramp_t_per_min",
                                                 "field_rate_T_per_min"))):
        for name in names:
            value = (limits.get(name) if isinstance(limits, dict)
                     else getattr(limits, name, None))
            if isinstance(value, int | float):
                out[key] = float(value)
                break
    ranges = getattr(limits, "heater_ranges_allowed", None)
    if ranges:
        out["heater_ranges_allowed"] = tuple(int(r) for r in ranges)
    return out


# --------------------------------------------------------------------------- executor


class CampaignExecutor:
    """Runs the unfinished steps of a campaign folder on a connected station.

    ``connect`` returns a connected station (``connect_station`` by default; tests inject
    their own); ``fitter(path) -> (dict, text) | None`` fits a finished spectrum run for the
    progress line and the manifest (runs in a background thread).
    """

    def __init__(self, campaign: Campaign, folder: Path, manifest: M.Manifest,
                 catalog: Any, connect: Callable[[Campaign], Any] | None = None,
                 progress: ProgressLine | None = None,
                 fitter: Callable[[Path], tuple[dict[str, Any], str] | None] | None = None
                 ) -> None:
        self.campaign = campaign
        self.folder = Path(folder)
        self.manifest = manifest
        self.catalog = catalog
        self.connect = connect or connect_station
        self.progress = progress
        self.fitter = fitter
        self.conn: Any = None
        self.safe_state_line = ""
        self._run: Any = None
        self._fit_queue: queue.Queue = queue.Queue()
        self._fit_thread: threading.Thread | None = None
        #: called with (step, run) on the executor's thread before each step's run starts
        #: (the window subscribes its plots and on-line fits here)
        self.run_listeners: list[Callable[[PlannedStep, Any], None]] = []
        self._running = threading.Event()  # cleared while paused
        self._running.set()
        self._abort_reason: str | None = None

    # -- verbs from another thread (the window); the CLI uses Ctrl-C and signals
    def pause(self) -> None:
        """Hold: a running measurement at its next point, else before the next step or
        measurement starts (a temperature being stabilised keeps stabilising)."""
        self._running.clear()
        run = self._run
        if run is not None:
            run.control.pause()
        log.warning("campaign paused by operator")

    def resume(self) -> None:
        self._running.set()
        run = self._run
        if run is not None:
            run.control.resume()
        log.info("campaign resumed by operator")

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def abort(self, reason: str = "aborted by operator") -> None:
        """End the session now: the running step's run is aborted (safe state), its attempt
        recorded as interrupted, and the folder left for resume."""
        self._abort_reason = reason
        self._running.set()
        run = self._run
        if run is not None:
            run.control.abort(reason)
        log.warning("campaign abort requested: %s", reason)

    def _raise_if_aborted(self) -> None:
        if self._abort_reason is not None:
            raise CampaignAborted(self._abort_reason)

    def _hold_while_paused(self) -> None:
        """Between steps and before a measurement: wait here while paused."""
        if self._running.is_set():
            self._raise_if_aborted()
            return
        if self.progress:
            self.progress.update(state="paused")
        while not self._running.wait(0.2):
            pass
        self._raise_if_aborted()

    # -- top level
    def execute(self) -> CampaignOutcome:
        from daqapp.runner.signals import shielded

        steps = {s.key: s for s in self.campaign.steps}
        self.manifest.begin_session(os.getpid(), sys.argv)
        status, message = M.FINISHED, ""
        try:
            self.conn = self.connect(self.campaign)
            for position, entry in enumerate(list(self.manifest.steps), start=1):
                if entry["status"] in M.DONE_STATES:
                    continue
                step = steps[entry["key"]]
                self._run_step_with_policy(step, position)
        except StationInUse as exc:  # another live process drives it: refuse, exit 2
            status, message = "stopped", str(exc)
            raise
        except CampaignStopped as exc:
            status, message = "stopped", str(exc)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (daqapp.runner.signals)
            reason = getattr(exc, "reason", "interrupted by operator")
            status, message = "interrupted", f"{reason} (resume to continue)"
        except DaqappError as exc:
            status, message = "stopped", str(exc)
        except Exception as exc:  # noqa: BLE001 - recorded in the manifest, then re-raised
            status, message = "stopped", f"{type(exc).__name__}: {exc}"
            log.exception("campaign stopped by an unexpected error")
        finally:  # a SIGTERM now must not cut the safe state or the manifest short
            with shielded(raise_after=False):
                unsafe = self._safe_state(last=True)
                if unsafe:
                    status = "stopped"
                    if unsafe not in message:
                        message = "; ".join(filter(None, [message, unsafe]))
                self._close_station()
                self._drop_queued_fits()
                self._fit_queue.put(None)
                if self._fit_thread is not None:
                    self._fit_thread.join(timeout=30)  # the preview in progress, if any
                counts = self.manifest.counts()
                if status == M.FINISHED and (counts[M.PENDING] or counts[M.RUNNING]
                                             or counts[M.FAILED]):
                    status = "stopped"
                self.manifest.end_session(status, message)
                log.info("campaign %s: %s %s", status, counts, message)
        files = [self.folder / e["file"] for e in self.manifest.steps if e.get("file")]
        return CampaignOutcome(self.folder, status, self.manifest.counts(), message, files,
                               self.safe_state_line)

    def _safe_state(self, last: bool = False) -> str | None:
        """Safe state of the whole station, read back; the verdict text if not confirmed.

        Shielded from SIGTERM/SIGHUP: a signal arriving now is raised after it (the campaign
        then ends), except for the ``last`` one, after which the session ends anyway."""
        from daqapp.runner.safe_state import apply_safe_state
        from daqapp.runner.signals import shielded

        if self.conn is None:
            return None
        with shielded(raise_after=not last):
            outcome = apply_safe_state(self.conn)
        self.safe_state_line = outcome.summary if outcome else ""
        if outcome is None or outcome.confirmed:
            log.info("station: %s", outcome.summary if outcome else "no station")
            return None
        log.error("station: %s", outcome.summary)
        self._say(outcome.summary)
        return outcome.summary

    def _close_station(self) -> None:
        close = getattr(self.conn, "close", None)
        if callable(close):
            try:
                close()
            except Exception as exc:  # noqa: BLE001
                log.warning("closing the station failed: %s", exc)

    # -- one step with its fault policy
    def _run_step_with_policy(self, step: PlannedStep, position: int | None = None) -> None:
        """``position``: the step's 1-based number in the campaign (for the progress line)."""
        policy = step.on_fault
        while True:
            self._hold_while_paused()
            if self.progress:
                self.progress.begin(step.key, step.estimate_s, position=position)
            # The manifest records the attempt first, the log names it after: a kill between
            # the two leaves an attempt that resume reports, never a logged start the
            # manifest does not count.
            attempt = self.manifest.start_attempt(step.key, f"{step.key}.h5" if step.procedure
                                                  else None)
            number = attempt["number"]
            log.info("step %s attempt %d: %s", step.key, number, step.describe())
            try:
                details = self._run_step(step)
            except KeyboardInterrupt:
                log.warning("step %s attempt %d interrupted", step.key, number)
                self._abandon_attempt(step, "interrupted", "interrupted by operator")
                raise
            except (StepFault, DaqappError, OSError) as exc:
                error = str(exc)
                log.error("step %s attempt %d failed: %s", step.key, number, error)
                self._abandon_attempt(step, M.FAILED, error)
                unsafe = self._safe_state()
                if unsafe:  # no retry, no next step on a station that may still be driving
                    self.manifest.update_step(step.key, status=M.FAILED, error=error)
                    if self.progress:
                        self.progress.end(step.key, "failed", step.estimate_s)
                    also = "" if unsafe in error else f"; {unsafe}"
                    raise CampaignStopped(f"step {step.key} failed: {error}{also}") from None
                failures = sum(1 for a in self.manifest.step(step.key)["attempts"]
                               if a.get("status") == M.FAILED)
                if failures <= policy.retries:
                    self._say(f"step {step.key} failed ({error}); retry {failures} of "
                              f"{policy.retries}")
                    self._reconnect_if_lost()
                    continue
                if policy.then == "skip":
                    self.manifest.update_step(step.key, status=M.SKIPPED, error=error)
                    self._say(f"step {step.key} skipped after {failures} failure(s): {error}")
                    if self.progress:
                        self.progress.end(step.key, "skipped", step.estimate_s)
                    return
                self.manifest.update_step(step.key, status=M.FAILED, error=error)
                if self.progress:
                    self.progress.end(step.key, "failed", step.estimate_s)
                raise CampaignStopped(f"step {step.key} failed: {error} (on_fault = stop)") \
                    from None
            self.manifest.end_attempt(step.key, M.FINISHED, **details)
            log.info("step %s attempt %d finished", step.key, number)
            self.manifest.update_step(step.key, status=M.FINISHED, error=None,
                                      file=details.get("file"), rows=details.get("rows"))
            if self.progress:
                self.progress.end(step.key, "done", step.estimate_s)
            if details.get("file") and self.fitter is not None and _is_spectrum(step):
                self._queue_fit(step, self.folder / details["file"])
            return

    def _abandon_attempt(self, step: PlannedStep, status: str, error: str) -> None:
        """Keep the partial file under ``partial/`` and record the attempt's end."""
        kept = keep_partial(self.folder, step.key, len(self.manifest.step(step.key)["attempts"]))
        self.manifest.end_attempt(step.key, status, error=error,
                                  partial_file=str(kept.relative_to(self.folder))
                                  if kept else None)
        self.manifest.update_step(step.key, status=M.PENDING, error=error)

    def _reconnect_if_lost(self) -> None:
        """After a fault, check every instrument answers; reconnect the station if not."""
        if self.conn is None:
            return
        try:
            for role in _roles(self.conn):
                role.identify()
            return
        except Exception as exc:  # noqa: BLE001 - any failure here means: reconnect
            log.warning("station lost (%s): reconnecting", exc)
        self._close_station()
        self.conn = None
        try:
            self.conn = self.connect(self.campaign)
        except DaqappError as exc:
            raise CampaignStopped(f"station lost and reconnect failed: {exc}") from None

    def _say(self, text: str) -> None:
        log.warning(text)
        if self.progress:
            self.progress.message(text)

    # -- the step itself
    def _run_step(self, step: PlannedStep) -> dict[str, Any]:
        started = time.time()
        if step.field_T is not None:
            self._set_field(step)
        if step.temperature_K is not None:
            self._set_temperature(step)
        details: dict[str, Any] = {"positioned_s": round(time.time() - started, 3)}
        if step.procedure is None:
            return details
        result = self._run_procedure(step)
        details.update(file=result.path.name if result.path else None, rows=result.rows,
                       duration_s=round(result.duration, 3), run_status=result.status)
        return details

    def _clock_holder(self) -> Any:
        """What carries the laboratory clock: the station, or its virtual lab."""
        if getattr(self.conn, "clock", None) is not None:
            return self.conn
        lab = getattr(self.conn, "lab", None)
        if getattr(lab, "clock", None) is not None:
            return lab
        return self.conn

    def _real_seconds(self, lab_seconds: float) -> float:
        from daqapp.runner.roles import lab_seconds_to_real

        return lab_seconds_to_real(self._clock_holder(), lab_seconds)

    def _lab_sleep(self, lab_seconds: float) -> None:
        self._raise_if_aborted()
        time.sleep(max(0.01, min(self._real_seconds(lab_seconds), 0.5)))

    def _lab_now(self) -> float:
        from daqapp.runner.roles import lab_time

        return lab_time(self._clock_holder())

    def _role(self, name: str) -> Any:
        from daqapp.runner.roles import station_role

        return station_role(self.conn, name)

    def _set_field(self, step: PlannedStep) -> None:
        magnet = self._role("magnet")
        target = float(step.field_T)
        start = float(magnet.field())
        if self.progress:
            self.progress.update(state=f"field → {target:g} T")
        if magnet.is_quenched():
            raise StepFault(f"magnet quenched at {start:.4g} T before ramping")
        expected = abs(target - start) / step.field_ramp_T_per_min * 60.0
        limit = 1.5 * expected + 300.0
        magnet.ramp_to(target, step.field_ramp_T_per_min)
        t0 = self._lab_now()

        def reached() -> bool:
            if expected > 0 and self.progress:
                self.progress.update(min(0.2, 0.2 * (self._lab_now() - t0) / expected))
            return magnet.is_holding() and abs(float(magnet.field()) - target) <= max(
                2e-3, 1e-3 * abs(target))

        wait_until(self._clock_holder(), reached, what=f"field did not reach {target:g} T",
                   timeout_s=limit, poll_s=2.0, sleep=self._lab_sleep,
                   checks=(lambda: check_quench(magnet),),
                   state=lambda: f"at {magnet.field():.4g} T")
        log.info("field %.4g T reached", target)

    def _set_temperature(self, step: PlannedStep) -> None:
        controller = self._role("temperature")
        target = float(step.temperature_K)
        band, hold, timeout = (step.stabilize.band_K, step.stabilize.time_s,
                               step.stabilize.timeout_s)
        if self.progress:
            self.progress.update(state=f"T → {target:g} K")
        self._prepare_heater(controller, target)
        controller.set_setpoint(target, step.ramp_K_per_min if step.temperature_mode == "ramp"
                                else None)
        ramp_time = 0.0
        if step.temperature_mode == "ramp" and step.ramp_K_per_min:
            ramp_time = abs(target - float(controller.temperature())) / step.ramp_K_per_min * 60
        in_band_since: list[float] = []
        magnet = None
        try:
            magnet = self._role("magnet")
        except ConfigError:
            magnet = None
        checks = [lambda: check_heater(controller)]
        if magnet is not None:
            checks.append(lambda: check_quench(magnet))

        def stable() -> bool:
            if not controller.is_stable(target, band):
                in_band_since.clear()
                return False
            if not in_band_since:
                in_band_since.append(self._lab_now())
            return self._lab_now() - in_band_since[0] >= hold

        wait_until(self._clock_holder(), stable,
                   what=f"temperature not stable at {target:g} K ± {band:g} K",
                   timeout_s=timeout + ramp_time, poll_s=1.0, sleep=self._lab_sleep,
                   checks=checks, state=lambda: f"at {controller.temperature():.4g} K")
        log.info("temperature %.4g K stable (±%g K for %g s)", target, band, hold)

    def _prepare_heater(self, controller: Any, target_k: float) -> None:
        """Heater range (and PID) for ``target_k`` from the campaign's zones.

        Needed before every step: the safe state at the end of each run turns the heater off.
        Without zones, a heater found off is switched to the highest range the station allows.
        """
        get = getattr(controller, "heater_range", None)
        put = getattr(controller, "set_heater_range", None)
        if not (callable(get) and callable(put)):
            return
        zone = zone_for(self.campaign.heater_zones, target_k)
        if zone is None:
            if int(get()) != 0:
                return
            limits = getattr(self.conn, "limits", None)
            allowed = tuple(getattr(limits, "heater_ranges_allowed", ()) or (0, 1, 2, 3))
            best = max(int(r) for r in allowed)
            if best > 0:
                put(best)
                log.info("heater range set to %d", best)
            return
        if zone.pid is not None:
            _set_pid(controller, zone.pid)
        if int(get()) != zone.range:
            put(zone.range)
        log.info("heater zone below %g K: range %d%s", zone.below_K, zone.range,
                 f", PID {zone.pid}" if zone.pid else "")

    def _prepare_for_procedure(self, step: PlannedStep) -> None:
        """Heater ready for the temperature the procedure starts at (its own ramps need it)."""
        try:
            controller = self._role("temperature")
        except ConfigError:
            return
        target = step.temperature_K
        for key in ("t_start", "temperature"):
            if target is None and isinstance(step.params.get(key), int | float):
                target = float(step.params[key])
        if target is None:
            target = float(controller.temperature())
        self._prepare_heater(controller, target)

    def _suspenders(self, step: PlannedStep) -> list[Any]:
        from daqapp.runner.suspenders import MagnetHoldingSuspender, TemperatureBandSuspender

        out = []
        for rule in self.campaign.suspend:
            timeout = max(0.05, self._real_seconds(rule.timeout_s))
            if rule.kind == "temperature":
                # Only a step that holds a temperature can be out of band; a ramp is not.
                if step.temperature_K is None:
                    continue
                out.append(TemperatureBandSuspender(
                    rule.band_K, target_k=step.temperature_K,
                    hold_s=step.stabilize.time_s / 4.0, timeout=timeout,
                    clock=self._lab_now))
            elif rule.kind == "magnet":
                # Only a step that set a field relies on the magnet holding it.
                if step.field_T is None:
                    continue
                try:
                    self._role("magnet")
                except ConfigError:
                    continue
                out.append(MagnetHoldingSuspender(timeout=timeout))
        return out

    def _run_procedure(self, step: PlannedStep) -> Any:
        from daqapp.runner import events
        from daqapp.runner.run import Run
        from daqapp.runner.station_lock import track_run

        try:
            procedure = self.catalog.build(step.procedure, step.params, station=self.conn)
        except DaqappError as exc:
            raise StepFault(f"{step.procedure}: {exc}") from None
        metadata = dict(self.campaign.metadata)
        metadata.update(campaign=self.campaign.name, campaign_step=step.key)
        if step.temperature_K is not None:
            metadata["target_temperature_K"] = step.temperature_K
        if step.field_T is not None:
            metadata["target_field_T"] = step.field_T
        target = self.folder / f"{step.key}.h5"
        if target.exists():  # a leftover of an attempt the manifest never saw end
            keep_partial(self.folder, step.key, len(self.manifest.step(step.key)["attempts"]))
        run = Run(procedure, station=self.conn, output_dir=self.folder,
                  filename=target.name, metadata=metadata, suspenders=self._suspenders(step))

        def listen(event: Any) -> None:
            if self.progress is None:
                return
            if event.kind == events.PROGRESS:
                self.progress.update(0.2 + 0.8 * float(event.payload) / 100.0)
            elif event.kind == events.STATUS and event.payload.get("status") in (
                    events.SUSPENDED, events.PAUSED):
                self._say(f"step {step.key} {event.payload['status']}: "
                          f"{event.payload.get('reason', '')}")
            elif event.kind == events.FIT:
                text = fit_text(event.payload.get("result", {}))
                if text:
                    self.progress.fit(text, step.key)

        run.subscribe(listen)
        track_run(self.conn, run)
        for hook in self.run_listeners:
            hook(step, run)
        self._prepare_for_procedure(step)
        if self.progress:
            self.progress.update(0.2, state=f"measuring ({step.procedure})")
        self._hold_while_paused()
        self._run = run
        if self.paused:  # paused between the hold and here: the run starts held
            run.control.pause()
        try:
            run.start()
        except DaqappError as exc:
            raise StepFault(f"{step.procedure}: {exc}") from None
        try:
            while run.wait(0.2) is None:
                pass
        except KeyboardInterrupt as exc:
            run.control.abort(getattr(exc, "reason", None))
            run.wait(60)
            raise
        finally:
            self._run = None
        self._raise_if_aborted()  # the run ended aborted because the operator said so
        result = run.result
        if not result.ok:
            raise StepFault(f"run {result.status}: {result.error or 'no error text'}")
        return result

    def _queue_fit(self, step: PlannedStep, path: Path) -> None:
        """Preview fits run one at a time on a daemon thread, off the acquisition path."""
        if self._fit_thread is None:
            def work() -> None:
                while True:
                    item = self._fit_queue.get()
                    if item is None:
                        return
                    while not self._fit_queue.empty():  # only the latest spectrum matters
                        newer = self._fit_queue.get()
                        if newer is None:
                            return
                        item = newer
                    self._fit_step(*item)

            self._fit_thread = threading.Thread(target=work, name="campaign-fit", daemon=True)
            self._fit_thread.start()
        self._fit_queue.put((step, path))

    def _drop_queued_fits(self) -> None:
        """At the end, previews not yet begun are not needed (the report fits what the
        campaign did not): the end waits at most for the one in progress."""
        while True:
            try:
                item = self._fit_queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                log.info("preview fit of %s dropped at the campaign's end", item[0].key)

    def _fit_step(self, step: PlannedStep, path: Path) -> None:
        try:
            found = self.fitter(path) if self.fitter else None
        except Exception as exc:  # noqa: BLE001 - the report refits; this is only a preview
            log.warning("quick fit of %s failed: %s", path.name, exc)
            return
        if not found:
            return
        values, text = found
        self.manifest.update_step(step.key, fit=values)
        if self.progress:
            self.progress.fit(text, step.key)
        log.info("fit %s: %s", step.key, text)


def _set_pid(controller: Any, pid: tuple[float, float, float]) -> None:
    """PID gains through the adapter (``set_pid``) or its Lake Shore output channel."""
    setter = getattr(controller, "set_pid", None)
    if callable(setter):
        setter(*pid)
        return
    output = getattr(controller, "output", None)
    if output is not None and hasattr(output, "pid"):
        lock = getattr(controller, "lock", None)
        if lock is not None:
            with lock:
                output.pid = pid
        else:
            output.pid = pid
        return
    log.warning("this temperature controller offers no PID setting; zone PID ignored")


def _is_spectrum(step: PlannedStep) -> bool:
    name = (step.procedure or "").lower()
    return any(word in name for word in ("spectrum", "dcon", "lockin", "calibration",
                                         "conductance"))


def _roles(conn: Any) -> list[Any]:
    roles = getattr(conn, "roles", None)
    if isinstance(roles, dict):
        return [r for r in roles.values() if hasattr(r, "identify")]
    return []


def fit_text(result: dict[str, Any]) -> str:
    """Short text of a fit result dict: the gaps with their errors."""
    params = result.get("parameters") or result.get("values") or {}
    errors = result.get("errors") or result.get("stderr") or {}
    parts = []
    for key in sorted(params):
        if key.lower().startswith("delta"):
            err = errors.get(key)
            value = params[key]
            if isinstance(value, dict):
                value, err = value.get("value"), value.get("error")
            if value is None:
                continue
            parts.append(f"{key}={value:.2f}" + (f"±{err:.2f}" if err else ""))
    return " ".join(parts)


def keep_partial(folder: Path, key: str, attempt: int) -> Path | None:
    """Move ``<key>.h5`` of an unfinished attempt to ``partial/`` under a name never reused."""
    source = Path(folder) / f"{key}.h5"
    if not source.exists():
        return None
    dest_dir = Path(folder) / PARTIAL_DIR
    dest_dir.mkdir(exist_ok=True)
    n = max(1, attempt)
    dest = dest_dir / f"{key}.attempt{n}.h5"
    while dest.exists():
        n += 1
        dest = dest_dir / f"{key}.attempt{n}.h5"
    os.replace(source, dest)
    log.warning("kept the partial run of %s as %s", key, dest.relative_to(folder))
    return dest


# --------------------------------------------------------------------------- entry points


def _attach_log(folder: Path, quiet_console: bool) -> Callable[[], None]:
    handler = logging.FileHandler(folder / LOG_NAME, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    old_root_level = root.level
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    changed = []
    if quiet_console:
        for h in root.handlers:
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) \
                    and h.level < logging.WARNING:
                changed.append((h, h.level))
                h.setLevel(logging.WARNING)

    def detach() -> None:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(old_root_level)
        for h, level in changed:
            h.setLevel(level)

    return detach


def _recover(folder: Path, manifest: M.Manifest) -> list[str]:
    """Turn steps a dead process left ``running`` back into pending, keeping their files.

    Also removes the manifest's temporary files a kill left behind (only those of dead
    pids). Each line logged names the step and the attempt, as the executor's log does.
    """
    recovered = [f"removed {p.name} (left by a killed process)"
                 for p in M.remove_stale_temp_files(manifest.path)]
    for entry in manifest.steps:
        if entry["status"] != M.RUNNING:
            continue
        key = entry["key"]
        last = manifest.last_attempt(key)
        number = last["number"] if last else 0
        final = folder / f"{key}.h5"
        status = _file_status(final)
        if status == "finished" and last is not None:
            # Killed after the run closed its file but before the manifest said so.
            manifest.end_attempt(key, M.FINISHED, file=final.name, recovered=True)
            manifest.update_step(key, status=M.FINISHED, file=final.name, error=None)
            recovered.append(f"step {key} attempt {number}: run file complete, marked "
                             "finished")
            continue
        kept = keep_partial(folder, key, number)
        ended = manifest.end_attempt(key, "interrupted", error="process ended during the step",
                                     partial_file=str(kept.relative_to(folder))
                                     if kept else None)
        if not ended and kept is not None and last is not None:
            # The attempt had ended (killed between two saves): keep how, add the file.
            last.setdefault("partial_file", str(kept.relative_to(folder)))
        how = "interrupted" if ended else f"had ended ({last['status']})" if last else \
            "never started"
        manifest.update_step(key, status=M.PENDING, error="interrupted")
        recovered.append(f"step {key} attempt {number} {how}" + (
            f", partial run kept as {kept.relative_to(folder)}" if kept else ""))
    for line in recovered:
        log.warning("resume: %s", line)
    return recovered


def _file_status(path: Path) -> str | None:
    if not path.exists():
        return None
    try:
        from daqapp.storage import open_run

        with open_run(path) as run:
            return run.status
    except Exception:  # noqa: BLE001 - unreadable means: not finished
        return "unreadable"


def prepare_folder(campaign: Campaign, folder: Path) -> M.Manifest:
    """Create a new campaign folder with its copy of the file and a fresh manifest."""
    folder = Path(folder)
    if (folder / M.MANIFEST_NAME).exists():
        raise ConfigError(f"{folder} already holds a campaign; use `daqapp campaign resume "
                          f"{folder}` or choose another --output")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / M.CAMPAIGN_COPY_NAME).write_text(campaign.source_text, encoding="utf-8")
    steps = [{"index": s.index, "key": s.key, "block": s.block, "procedure": s.procedure,
              "params": s.params, "field_T": s.field_T, "temperature_K": s.temperature_K,
              "estimate_s": round(s.estimate_s, 1)} for s in campaign.steps]
    return M.Manifest.create(folder, campaign.name, campaign.path, steps,
                             campaign.station.describe(), campaign.metadata)


def default_output(campaign: Campaign) -> Path:
    if campaign.output is not None:
        return campaign.output
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path.cwd() / f"{campaign.path.stem}-{stamp}"


def with_speed(campaign: Campaign, speed: float | None) -> Campaign:
    """The campaign with its virtual lab's speed-up replaced (``daqapp demo --speed``)."""
    from dataclasses import replace

    if speed is None:
        return campaign
    if not campaign.station.simulated:
        raise ConfigError(f"{campaign.path}: a speed-up applies only to a simulated station")
    if not 0.01 <= speed <= 1e6:
        raise ConfigError(f"speed = {speed:g} is outside the allowed range 0.01 to 1e6")
    return replace(campaign, station=replace(campaign.station, speed=float(speed)))


def load_for_run(path: Path, catalog: Any, speed: float | None = None) -> Campaign:
    """Validate a campaign fully (station limits included) and attach estimates.

    The file is read once for its structure and the station it names, then validated against
    that station's limits only: a range check never quotes a default the station does not have.
    """
    structure = with_speed(load_campaign(path, limits=UNBOUNDED_LIMITS), speed)
    if getattr(catalog, "station", "absent") is None:
        catalog.station = unconnected_station(structure)
    limits = station_limits_dict(structure)
    campaign = with_speed(load_campaign(path, catalog=catalog, limits=limits or None), speed)
    return with_estimates(campaign, catalog)


def run_campaign(path: Path, output: Path | None = None, catalog: Any = None,
                 connect: Callable[[Campaign], Any] | None = None, show_progress: bool = True,
                 fitter: Callable[[Path], Any] | None = None,
                 quiet_console: bool = True, speed: float | None = None,
                 progress_stream: TextIO | None = None,
                 on_start: Callable[[CampaignExecutor], None] | None = None
                 ) -> CampaignOutcome:
    """Validate ``path`` entirely, create the campaign folder and run every step.

    ``speed`` overrides the virtual lab's speed-up (kept in the manifest for ``resume``).
    ``progress_stream``: where the progress line goes (default stderr); ``on_start`` is
    called with the executor before its first step (the window keeps it to pause, resume
    and abort, and subscribes to its runs).
    """
    from daqapp.campaign.catalog import ProcedureCatalog

    catalog = catalog or ProcedureCatalog()
    campaign = load_for_run(Path(path), catalog, speed=speed)
    _refuse_if_in_use(campaign, connect)
    folder = Path(output) if output else default_output(campaign)
    manifest = prepare_folder(campaign, folder)
    if speed is not None:
        manifest.data["overrides"] = {"speed": float(speed)}
        manifest.save()
    return _execute(campaign, folder, manifest, catalog, connect, show_progress, fitter,
                    quiet_console, progress_stream, on_start)


def resume_campaign(folder: Path, catalog: Any = None,
                    connect: Callable[[Campaign], Any] | None = None,
                    show_progress: bool = True, fitter: Callable[[Path], Any] | None = None,
                    quiet_console: bool = True, progress_stream: TextIO | None = None,
                    on_start: Callable[[CampaignExecutor], None] | None = None
                    ) -> CampaignOutcome:
    """Continue a campaign folder with its first unfinished step; never repeat finished ones.

    ``progress_stream`` and ``on_start`` as for :func:`run_campaign`."""
    from daqapp.campaign.catalog import ProcedureCatalog

    folder = Path(folder)
    manifest = M.Manifest.load(folder)
    catalog = catalog or ProcedureCatalog()
    copy = folder / M.CAMPAIGN_COPY_NAME
    if not copy.is_file():
        raise ConfigError(f"{folder}: {M.CAMPAIGN_COPY_NAME} is missing; cannot resume")
    source = Path(manifest.data["campaign"].get("source", copy))
    text = copy.read_text(encoding="utf-8")
    from daqapp.campaign.spec import parse_campaign

    # Parse the stored copy as if it sat where the original did, so relative paths (station
    # file) resolve as they did when the campaign started.
    where = source if source.parent.is_dir() else copy
    if getattr(catalog, "station", "absent") is None:
        catalog.station = unconnected_station(parse_campaign(text, where))
    campaign = parse_campaign(text, where, catalog=catalog)
    campaign = with_speed(campaign, manifest.data.get("overrides", {}).get("speed"))
    campaign = with_estimates(campaign, catalog)
    manifest.check_matches([s.key for s in campaign.steps])
    _refuse_if_in_use(campaign, connect)
    detach = _attach_log(folder, quiet_console)
    try:
        _recover(folder, manifest)
    finally:
        detach()
    if manifest.first_unfinished() is None:
        return CampaignOutcome(folder, M.FINISHED, manifest.counts(),
                               "nothing to do: every step is finished or skipped",
                               [folder / e["file"] for e in manifest.steps if e.get("file")])
    return _execute(campaign, folder, manifest, catalog, connect, show_progress, fitter,
                    quiet_console, progress_stream, on_start)


def _refuse_if_in_use(campaign: Campaign, connect: Callable[[Campaign], Any] | None) -> None:
    """Before anything is written: refuse a station another live process drives."""
    if connect is not None:
        return  # an injected station (tests) has no lock
    station = unconnected_station(campaign)
    if station is not None:
        check_free(station)


def _execute(campaign: Campaign, folder: Path, manifest: M.Manifest, catalog: Any,
             connect: Callable[[Campaign], Any] | None, show_progress: bool,
             fitter: Callable[[Path], Any] | None, quiet_console: bool,
             progress_stream: TextIO | None = None,
             on_start: Callable[[CampaignExecutor], None] | None = None) -> CampaignOutcome:
    progress = None
    if show_progress:
        done = [e["key"] for e in manifest.steps if e["status"] in M.DONE_STATES]
        speed = campaign.station.speed if campaign.station.simulated else 1.0
        scale = 1.0 / speed
        # Estimates on the progress line are wall-clock: laboratory time over the speed-up.
        # Steps finished in an earlier session count with their estimate, so a resumed
        # campaign's percentage starts where the last session left it.
        progress_steps = {s.key: s.estimate_s * scale for s in campaign.steps}
        progress = ProgressLine(len(manifest.steps), campaign.total_estimate_s * scale,
                                stream=progress_stream, done=len(done),
                                done_estimate_s=sum(progress_steps.get(k, 0.0) for k in done))
    from daqapp.runner.signals import termination_signals

    detach = _attach_log(folder, quiet_console)
    try:
        log.info("campaign %r in %s (%d steps, %s)", campaign.name, folder,
                 len(campaign.steps), campaign.station.describe())
        executor = CampaignExecutor(campaign, folder, manifest, catalog, connect,
                                    progress=progress, fitter=fitter)
        if progress is not None:
            executor.campaign = _scaled(campaign, progress_steps)
        if on_start is not None:
            on_start(executor)
        with termination_signals():  # SIGTERM/SIGHUP: abort the step, safe state, resumable
            return executor.execute()
    finally:
        detach()


def _scaled(campaign: Campaign, estimates: dict[str, float]) -> Campaign:
    from dataclasses import replace

    return replace(campaign, steps=tuple(replace(s, estimate_s=estimates[s.key])
                                         for s in campaign.steps))


__all__ = ["CampaignAborted", "CampaignExecutor", "CampaignOutcome", "CampaignStopped",
           "StepFault",
           "SuspendRule", "connect_station", "keep_partial", "prepare_folder",
           "resume_campaign", "run_campaign"]
