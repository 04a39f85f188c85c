"""R–T in delta mode (6221 + 2182A, seed: 0.2 mA), ramped or stepped, at a list of fields.

Delta mode alternates the current and combines three 2182A conversions per reading, which
cancels thermal EMFs and their drift: R = V_delta / I. Two ways to take the temperature axis:

* ``ramp``: the controller ramps from start to stop at the given rate and the resistance is
  read on the fly every ``interval`` seconds (each row has the temperature read next to it);
* ``step``: go to each temperature, wait until stable (band and hold time), average
  ``readings`` values.

Each field of the list (the paper: 0–8 T) gives one sweep of the 2-D datasets. Without the
6221's delta mode (``method = reversal``) the same is done by reversing a DC current by hand.
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar

import numpy as np
from pymeasure.experiment import ListParameter

from daqapp.errors import ConfigError
from daqapp.runner import ControlledProcedure
from daqapp.runner.procedure import FloatParameter, IntegerParameter
from daqapp.runner.roles import lab_time
from daqapp.runner.watchdogs import (
    ConditionTimeout,
    check_heater,
    check_source_compliance,
    wait_until,
)
from procedures.common import (
    VOLTMETERS,
    FloatListParameter,
    boost_heater_if_saturated,
    check_compliance,
    check_count,
    check_current,
    check_field,
    check_field_rate,
    check_heater_range,
    check_hold,
    check_temperature,
    check_temperature_rate,
    go_to_temperature,
    heater_range_for,
    log,
    parse_list,
    ramp_time_s,
    read_field,
    set_heater_for,
    set_source_current,
    start_fault_watch,
    stuck_watch,
    temperature_checks,
    transport_voltmeter,
    wait_for_field,
    wait_for_temperature,
    wall_time,
)

#: Seconds per 2182A conversion before the instrument is asked (its power-on NPLC 5 at 60 Hz
#: plus overhead): estimates only; a run reads the linked 2182A's NPLC and line frequency.
DELTA_CONVERSION_S = 5 / 60 + 0.003
#: Seconds a delta conversion takes beyond its integration (settling, the A/D's own time).
CONVERSION_OVERHEAD_S = 0.003
#: Seconds per delta reading assumed in estimates.
DELTA_READING_S = 0.07
#: Rows of a ramp after which its rate so far is checked against the one asked.
EARLY_RATE_ROWS = 20
#: Most temperature steps (step mode) and rows (ramp mode) of one sweep.
MAX_STEPS = 10_000
MAX_RAMP_ROWS = 1_000_000


class ResistanceTemperature(ControlledProcedure):
    """R(T) with the delta method, ramped or stepped, for each field of a list."""

    #: delta mode / DC sweeps: no lock-in
    ROLES: ClassVar[tuple[str, ...] | None] = ("current_source", "nanovoltmeter", "temperature",
                                               "magnet")
    SUMMARY = "R-T in delta mode (6221 + 2182A), ramped or stepped, at a list of fields"
    COLUMNS: ClassVar[dict[str, str]] = {
        "temperature": "K", "resistance": "Ohm", "voltage": "V", "current": "A",
        "setpoint": "K", "field": "T", "time": "s", "sweep": "",
    }
    SWEEP_AXIS: ClassVar[str | None] = "temperature"

    current = FloatParameter("Delta current", units="A", default=2e-4, minimum=1e-9,
                             maximum=0.105)
    t_start = FloatParameter("Start temperature", units="K", default=100.0, minimum=0.0,
                             maximum=400.0)
    t_stop = FloatParameter("Stop temperature", units="K", default=2.0, minimum=0.0,
                            maximum=400.0)
    mode = ListParameter("Temperature mode", choices=["ramp", "step"], default="ramp")
    ramp_rate = FloatParameter("Ramp rate", units="K/min", default=2.0, minimum=0.01,
                               maximum=100.0)
    approach_rate = FloatParameter("Approach rate to t_start (0 = the ramp rate)",
                                   units="K/min", default=0.0, minimum=0.01, maximum=100.0,
                                   zero_allowed=True)
    interval = FloatParameter("Reading interval (ramp mode)", units="s", default=2.0,
                              minimum=0.01, maximum=3600.0)
    t_step = FloatParameter("Temperature step (step mode)", units="K", default=1.0,
                            minimum=1e-3, maximum=100.0)
    band = FloatParameter("Stability band (step mode)", units="K", default=0.05,
                          minimum=1e-4, maximum=10.0)
    hold_time = FloatParameter("Stable time (step mode)", units="s", default=30.0,
                               minimum=1e-3, maximum=36_000.0, zero_allowed=True)
    readings = IntegerParameter("Readings averaged (step mode)", default=5, minimum=1,
                                maximum=10_000)
    stabilize_timeout = FloatParameter("Stabilisation timeout", units="s", default=3600.0,
                                       minimum=1.0, maximum=86_400.0)
    fields = FloatListParameter("Fields (list or start to stop by step)", units="T", default="0",
                                minimum=-20.0, maximum=20.0)
    field_rate = FloatParameter("Field ramp rate", units="T/min", default=0.2, minimum=1e-4,
                                maximum=10.0)
    method = ListParameter("Method", choices=["delta", "reversal"], default="delta")
    voltmeter = ListParameter("Voltmeter (reversal method)", choices=list(VOLTMETERS),
                              default="linked")
    delta_delay = FloatParameter("Delta delay", units="s", default=0.002, minimum=0.001,
                                 maximum=10.0)
    delta_count = IntegerParameter("Delta readings per point (median)", default=5, minimum=1,
                                   maximum=1000)
    compliance = FloatParameter("Compliance", units="V", default=10.0, minimum=0.1,
                                maximum=105.0)

    # ---- declarations ---------------------------------------------------------------------
    def field_list(self) -> list[float]:
        values = parse_list("fields", self.fields)
        if not values:
            raise ConfigError("fields: give at least one field (e.g. '0' or '0, 2, 4, 8')")
        return values

    def temperature_steps(self) -> np.ndarray:
        count = int(math.floor(abs(self.t_stop - self.t_start) / self.t_step + 1e-9)) + 1
        steps = self.t_start + np.sign(self.t_stop - self.t_start) * self.t_step * np.arange(
            count)
        if not math.isclose(steps[-1], self.t_stop):
            steps = np.append(steps, self.t_stop)
        return steps

    def check_limits(self, limits: Any) -> None:
        check_current("current", self.current, limits)
        check_compliance("compliance", self.compliance, limits)
        check_temperature("t_start", self.t_start, limits)
        check_temperature("t_stop", self.t_stop, limits)
        if self.t_start == self.t_stop:
            raise ConfigError("t_start and t_stop must differ")
        check_temperature_rate("ramp_rate", self.ramp_rate, limits)
        if self.approach_rate:
            check_temperature_rate("approach_rate", self.approach_rate, limits)
        span = abs(self.t_stop - self.t_start)
        if self.mode == "step":
            check_count("t_start to t_stop by t_step", span / self.t_step + 1, MAX_STEPS,
                        "temperature steps")
        else:
            check_count("ramp_rate x interval over t_start to t_stop",
                        span / self.ramp_step() + 1, MAX_RAMP_ROWS, "rows")
        check_hold(self.hold_time, self.stabilize_timeout)
        check_heater_range("t_start/t_stop", max(self.t_start, self.t_stop), limits)
        if self.mode == "ramp" and self.ramp_step() > span / 2:
            raise ConfigError(f"ramp_rate × interval = {self.ramp_step():.4g} K between rows "
                              f"leaves fewer than 2 rows on the {span:g} K ramp; lower the "
                              f"rate or the interval")
        fields = self.field_list()
        for tesla in fields:
            check_field("fields", tesla, limits)
        if any(f != 0 for f in fields):
            check_field_rate("field_rate", self.field_rate, limits)
            if self.station is not None and self.role("magnet", required=False) is None:
                raise ConfigError("fields: nonzero fields need a 'magnet' on the station")

    def starting_point(self) -> dict[str, tuple[str, float]]:
        return {"field_T": ("fields", self.field_list()[0]),
                "temperature_K": ("t_start", self.t_start)}

    def estimate_duration(self) -> float:
        span = abs(self.t_stop - self.t_start)
        if self.mode == "ramp":  # paced: one row per step, each at least a reading long
            rows = math.ceil(span / self.ramp_step())
            per_field = rows * max(self.interval, self.reading_time())
        else:
            steps = len(self.temperature_steps())
            per_field = (ramp_time_s(0, span, self.ramp_rate) + steps * (
                self.hold_time + self.readings * DELTA_READING_S))
        fields = self.field_list()
        field_time = sum(ramp_time_s(a, b, self.field_rate)
                         for a, b in zip([0.0, *fields[:-1]], fields, strict=True))
        back = ramp_time_s(self.t_stop, self.t_start, self.start_rate()) * (len(fields) - 1)
        return len(fields) * per_field + field_time + back

    # ---- resistance readings -------------------------------------------------------------
    def start_source(self) -> None:
        source = self.role("source")
        self._source = source
        source.set_compliance(self.compliance)
        if self.method == "delta":
            instrument = source.instrument
            if not instrument.delta_connected:
                raise ConfigError("method = delta: the 6221 sees no 2182A on RS-232 "
                                  "(SOUR:DELT:NVPR? = 0); use method = reversal")
            instrument.sweep_abort()
            instrument.delta_unit = "V"
            instrument.delta_high_source = self.current
            instrument.delta_delay = self.delta_delay
            instrument.delta_measurement_sets = 1
            instrument.delta_cycles = self.delta_count
            instrument.delta_buffer_points = int(self.delta_count)
            instrument.format_elements = ("READ", "TST")
            self._conversion_s = self._linked_conversion_s()
        else:
            self._nvm = transport_voltmeter(self, self.voltmeter)
            set_source_current(source, self.current)
            source.enable()
        start_fault_watch(self, source=source, amps=self.current,
                          field_dependent=any(f != 0 for f in self.field_list()))
        self._stuck = stuck_watch("sample voltage", self)
        # a ramp moves the set point: a thermometer that does not move at all (0.1 mK, the
        # controller's last digit) while it moves by 10 mK has stopped reading
        self._thermometer_stuck = stuck_watch("temperature reading", self, resolution=1e-4,
                                              unit="K", set_resolution=0.01)

    def _linked_conversion_s(self) -> float:
        """Seconds per delta conversion of the 2182A on the 6221's RS-232 link: its NPLC over
        its line frequency, plus overhead. A burst is waited for that long before its buffer
        is read: with NPLC 5 a guess of NPLC 1 polled the buffer four more times per row."""
        try:
            linked = transport_voltmeter(self, "linked")
            nplc = linked.nplc()
            hertz = float(linked.ask(":SYST:LFR?"))
        except Exception as exc:  # noqa: BLE001 - an estimate; the poll still finds the end
            log.info("delta mode: 2182A NPLC not read (%s); assuming %.3g s per conversion",
                     exc, DELTA_CONVERSION_S)
            return DELTA_CONVERSION_S
        if not (math.isfinite(nplc) and nplc > 0 and math.isfinite(hertz) and hertz > 0):
            return DELTA_CONVERSION_S
        return nplc / hertz + CONVERSION_OVERHEAD_S

    def read_voltage(self) -> float:
        """One delta voltage (R·I): the median of a burst of ``delta_count`` delta readings
        (a fresh arm each time, so every value belongs to this point), or a manual reversal."""
        if self.method == "delta":
            return self._delta_burst()
        set_source_current(self._source, self.current)
        self.sleep(self.delta_delay)
        v_plus = float(self._nvm.voltage())
        set_source_current(self._source, -self.current)
        self.sleep(self.delta_delay)
        v_minus = float(self._nvm.voltage())
        return (v_plus - v_minus) / 2

    def _delta_burst(self) -> float:
        instrument = self._source.instrument
        count = int(self.delta_count)
        instrument.start_delta_burst()  # into the buffer sized to the burst at the start
        expected = self.reading_time()
        self.sleep(expected)
        stored = {"count": 0, "polls": 0}

        def filled() -> bool:
            stored["count"] = instrument.buffer_count()
            return stored["count"] >= count

        def late() -> None:
            # compliance is read once the burst is in (below); the whole watch runs again only
            # when the buffer is late, to name a cause before the timeout does
            stored["polls"] += 1
            if stored["polls"] > 1:
                self.fault_watch.run(force=True)

        try:  # not stopped by a stop request: a burst is one point, finished once begun
            wait_until(self.station, filled, what=f"delta mode: {count} readings not stored",
                       timeout_s=10 * expected + 30, poll_s=expected / 4, sleep=self.sleep,
                       checks=(late,), state=lambda: f"{stored['count']} of {count} stored")
        except ConditionTimeout:
            instrument.sweep_abort()
            raise
        # the 6221 latches compliance in its measurement event register: one read tells
        # whether any conversion of this burst was in compliance, before the row is recorded
        check_source_compliance(self._source, self.current)
        readings = instrument.buffer_readings(("READ", "TST"))["READ"]
        if not np.isfinite(readings).all():
            self.fault_watch.run(force=True)  # overflow readings: compliance is the usual cause
        return float(np.nanmedian(readings)) if np.isfinite(readings).any() else math.nan

    def record_point(self, temperature: float, setpoint: float, sweep: int,
                     volts: float | None = None) -> None:
        volts = self.read_voltage() if volts is None else volts
        self._stuck.feed(setpoint, volts)
        self.record(temperature=temperature, resistance=volts / self.current, voltage=volts,
                    current=self.current, setpoint=setpoint, field=read_field(self),
                    time=wall_time(), sweep=sweep)

    # ---- measurement ----------------------------------------------------------------------
    def execute(self) -> None:
        controller = self.role("temperature")
        magnet = self.role("magnet", required=False)
        fields = self.field_list()
        self.start_source()
        for sweep, tesla in enumerate(fields):
            if magnet is not None and (tesla != 0 or abs(magnet.field()) > 1e-4):
                magnet.ramp_to(tesla, self.field_rate)
                wait_for_field(self, tesla, 600 + ramp_time_s(magnet.field(), tesla,
                                                              self.field_rate))
            log.info("R-T sweep %d at %g T: %s from %g K to %g K", sweep, tesla, self.mode,
                     self.t_start, self.t_stop)
            go_to_temperature(self, self.t_start, self.start_rate())
            if self.mode == "ramp":  # one heater range for the whole ramp, see _ramp_heater
                self._ramp_heater(controller)
            wait_for_temperature(self, self.t_start, max(self.band, 0.1), self.hold_time,
                                 self.stabilize_timeout + ramp_time_s(
                                     controller.temperature(), self.t_start, self.start_rate()))
            completed = (self._ramp(controller, sweep, len(fields)) if self.mode == "ramp"
                         else self._steps(controller, sweep, len(fields)))
            self.end_sweep(sweep, field=tesla, mode=self.mode)
            if not completed:
                return

    def start_rate(self) -> float:
        """K/min to the start temperature: nothing is recorded on the way, so a campaign may
        go faster than the measured ramp (the stability hold at t_start comes after)."""
        return self.approach_rate or self.ramp_rate

    def ramp_step(self) -> float:
        """Kelvin the set point moves between two rows of a ramp (ramp rate × interval)."""
        return self.ramp_rate / 60.0 * self.interval

    def reading_time(self) -> float:
        """Instrument seconds one delta reading needs at least (conversions and delays)."""
        conversion = getattr(self, "_conversion_s", DELTA_CONVERSION_S)
        if self.method == "delta":
            return (self.delta_count + 2) * (self.delta_delay + conversion)
        return 2 * (self.delta_delay + conversion)

    def _ramp(self, controller: Any, sweep: int, n_sweeps: int) -> bool:
        """Ramp-paced readings: after each row's temperature reading the set point is moved
        on by one :meth:`ramp_step` (ramped at ``ramp_rate``, so it moves smoothly), and the
        next row is read a full ``interval`` after the controller took that step. Rows are
        therefore exactly one step apart on the set point, whatever the readings cost.

        With a continuous ramp to ``t_stop`` a row that took longer than the interval (a slow
        bus, a loaded computer, a long delta burst) let the temperature run on unrecorded and
        a transition could fall between two rows; here such a row holds the ramp at the end
        of its step instead: the ramp is slower than asked, and the log says so.
        """
        station = self.station
        direction = 1.0 if self.t_stop > self.t_start else -1.0
        step = self.ramp_step()
        span = abs(self.t_stop - self.t_start)
        tolerance = max(self.band, 0.1)
        target = self.t_start
        reached_at = None
        steps = 0
        first_step: tuple[float, float] | None = None  # (lab time, set point) of the first step
        # each row begins at a checkpoint, which runs the fault watch (compliance, quench) as
        # a suspender: the row itself adds only the heater (without run control, all of them)
        checks = ((lambda: check_heater(controller),) if self.control is not None
                  else temperature_checks(self))
        self._stuck.reset()
        self._thermometer_stuck.reset()
        while True:
            if not self.checkpoint():
                return False
            for check in checks:  # an open heater never reaches t_stop: fail now
                check()
            began = lab_time(station)
            kelvin = controller.temperature()
            setpoint = controller.setpoint()  # the previous step is complete: its end
            if target != self.t_stop:  # the next step starts right after this row's reading
                target = (self.t_stop if abs(self.t_stop - target) <= step * (1 + 1e-9)
                          else target + direction * step)
                controller.set_setpoint(target, self.ramp_rate)
                controller.is_ramping()  # answered only after the controller took the step
            stepped_at = lab_time(station)
            if first_step is None:
                first_step = (stepped_at, target)
            elif target == self.t_stop and reached_at is None:
                self._log_ramp_rate(sweep, first_step, (stepped_at, target))
            self._thermometer_stuck.feed(target, kelvin)
            boost_heater_if_saturated(self, kelvin, setpoint, self.band)
            self.record_point(kelvin, setpoint, sweep)
            self.progress(sweep + min(1.0, abs(setpoint - self.t_start) / span), n_sweeps)
            if target == self.t_stop:  # the last step is commanded: bounded from here on
                reached_at = began if reached_at is None else reached_at
                if not controller.is_ramping() and abs(kelvin - self.t_stop) <= tolerance:
                    return True
                if began - reached_at > self.stabilize_timeout:
                    raise ConditionTimeout(f"ramp: temperature {kelvin:.4g} K not within "
                                           f"{tolerance:g} K of t_stop = {self.t_stop:g} K "
                                           f"{self.stabilize_timeout:g} s after the set "
                                           "point")
            steps += 1
            if steps == EARLY_RATE_ROWS and reached_at is None and first_step is not None:
                # an overnight ramp should not wait until its end to say it runs slow
                elapsed = stepped_at - first_step[0]
                so_far = abs(target - first_step[1]) / elapsed * 60.0 if elapsed > 0 else 0.0
                if so_far < 0.9 * self.ramp_rate:
                    log.warning("R-T sweep %d: the set point moves at %.3g K/min so far "
                                "(asked %g K/min): the ramp waits for the readings, %.3g "
                                "lab-s a row against the %g s interval", sweep, so_far,
                                self.ramp_rate, elapsed / (steps - 1), self.interval)
            # the next row comes a full interval after the step began, when the step is done
            self.sleep(max(0.0, self.interval - (lab_time(station) - stepped_at)))

    def _log_ramp_rate(self, sweep: int, first: tuple[float, float],
                       last: tuple[float, float]) -> None:
        """Once the last step is commanded: the rate the set point actually moved at. Each
        row is read a full interval after its step, so the readings before the next step
        add to the interval; the operator should know what rate the data were taken at."""
        (t0, k0), (t1, k1) = first, last
        if t1 <= t0:
            return
        achieved = abs(k1 - k0) / (t1 - t0) * 60.0
        rows = abs(k1 - k0) / self.ramp_step()
        per_row = (t1 - t0) / rows if rows > 0 else math.nan
        slow = achieved < 0.9 * self.ramp_rate
        log.log(logging.WARNING if slow else logging.INFO,
                "R-T sweep %d: the set point moved at %.3g K/min on average (asked %g K/min)"
                "%s: %.3g lab-s a row against the %g s interval", sweep, achieved,
                self.ramp_rate, "; the ramp waits for the readings" if slow else "",
                per_row, self.interval)

    def _ramp_heater(self, controller: Any) -> int:
        """The heater range for the warmer end of the ramp, set before the ramp starts.

        Switching range mid-ramp keeps the PID's output in percent, so the power jumps by
        the range ratio (×10 on a Lake Shore): down a range the sample plunges until the
        integral winds up again, up a range it spikes. One range that can hold the warm end
        controls the whole span; :func:`boost_heater_if_saturated` still steps up if it
        proves too small.
        """
        wanted = heater_range_for(max(self.t_start, self.t_stop), self._heater_ranges())
        if int(controller.heater_range()) < wanted:
            set_heater_for(self, max(self.t_start, self.t_stop))
        return int(controller.heater_range())

    def _heater_ranges(self) -> Any:
        limits = getattr(self.station, "limits", None)
        return getattr(limits, "heater_ranges_allowed", None) or (0, 1, 2, 3)

    def _steps(self, controller: Any, sweep: int, n_sweeps: int) -> bool:
        steps = self.temperature_steps()
        self._stuck.reset()
        for i, target in enumerate(steps):
            if not self.checkpoint():
                return False
            go_to_temperature(self, float(target), self.ramp_rate)
            wait_for_temperature(self, float(target), self.band, self.hold_time,
                                 self.stabilize_timeout + ramp_time_s(
                                     controller.temperature(), target, self.ramp_rate))
            volts = [self.read_voltage() for _ in range(self.readings)]
            self.record_point(controller.temperature(), float(target), sweep,
                              float(np.nanmean(volts)))
            self.progress(sweep + (i + 1) / len(steps), n_sweeps)
        return True

    def shutdown(self) -> None:
        source = self.role("source", required=False)
        if source is not None:
            if self.method == "delta":
                source.instrument.sweep_abort()
            source.set_current(0.0)
            source.disable()
