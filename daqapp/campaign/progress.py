"""The campaign's progress line: current step, ETA and the latest fit, on one terminal line.

On a terminal the line is redrawn in place; into a file or pipe a line is printed only when
something changes (step start/end, every tenth of a step), so logs stay readable.

The percentage is the fraction of the *estimated* work done (finished steps' estimates plus
the running step's share of its own) and never decreases: a retried step starts its own share
again from zero, but the campaign's share shown stays at its high-water mark. The ETA is the
remaining estimate scaled by how long the steps finished *in this session* really took against
their own estimates (1 until one has finished): neither earlier sessions' work nor the minutes
a resumed session spends reconnecting and stabilising before its first point make it jump.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from typing import TextIO

from daqapp.campaign.spec import format_duration


class ProgressLine:
    """Progress of a campaign of ``total`` steps whose estimates sum to ``estimate_s``;
    ``done`` steps worth ``done_estimate_s`` were finished before this session (resume)."""

    def __init__(self, total: int, estimate_s: float, stream: TextIO | None = None,
                 done: int = 0, done_estimate_s: float = 0.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total = total
        self.estimate_s = max(estimate_s, 1e-9)
        self.done = done
        self.done_estimate_s = done_estimate_s
        self.started = time.monotonic()
        self.current = min(done + 1, total)  # 1-based number of the step being run
        self.step_key = ""
        self.step_estimate_s = 0.0  # the running step's estimate; 0 once it has ended
        self.step_fraction = 0.0
        self.state = ""
        self.latest_fit = ""
        self._fit_position = 0  # step number the latest fit belongs to (stale fits ignored)
        self._positions: dict[str, int] = {}
        self._high_water = self._raw_fraction()
        self._lock = threading.Lock()
        self._last_bucket = -1
        self._step_began = self.started
        self._session_actual_s = 0.0  # wall time of the steps finished in this session
        self._session_estimate_s = 0.0  # and their estimates

    # -- events from the executor
    def begin(self, key: str, estimate_s: float, state: str = "positioning",
              position: int | None = None) -> None:
        """Step ``key`` starts (again, on a retry); ``position`` is its 1-based number."""
        with self._lock:
            self.current = position if position is not None else min(self.done + 1,
                                                                     self.total)
            self._positions[key] = self.current
            self.step_key, self.step_estimate_s = key, estimate_s
            self.step_fraction, self.state = 0.0, state
            self._last_bucket = -1
            self._step_began = time.monotonic()
        self.draw(force=True)

    def update(self, fraction: float | None = None, state: str | None = None) -> None:
        with self._lock:
            if fraction is not None:
                self.step_fraction = max(0.0, min(1.0, fraction))
            if state is not None:
                self.state = state
        self.draw(force=state is not None)

    def fit(self, text: str, key: str | None = None) -> None:
        """The latest fit, named by its step; a fit of an earlier step than the one already
        shown (a slow background fit) does not replace it."""
        with self._lock:
            position = self._positions.get(key, self.current) if key else self.current
            if position < self._fit_position:
                return
            self._fit_position = position
            self.latest_fit = f"{key}: {text}" if key else text
        self.draw(force=True)

    def end(self, key: str, outcome: str, estimate_s: float) -> None:
        """Step ``key`` ended (done, skipped or failed): its whole estimate counts as done."""
        with self._lock:
            if outcome == "done" and estimate_s > 0:
                self._session_actual_s += time.monotonic() - self._step_began
                self._session_estimate_s += estimate_s
            self.done += 1
            self.done_estimate_s += estimate_s
            self.step_estimate_s = 0.0  # counted once, in done_estimate_s
            self.step_fraction, self.state = 1.0, outcome
        self.draw(force=True, final=True)

    # -- what is shown
    def _raw_fraction(self) -> float:
        progressed = self.done_estimate_s + self.step_fraction * self.step_estimate_s
        return max(0.0, min(1.0, progressed / self.estimate_s))

    def fraction(self) -> float:
        """Fraction of the estimated work done, never decreasing."""
        self._high_water = max(self._high_water, self._raw_fraction())
        return self._high_water

    def pace(self) -> float:
        """Wall time per estimated second of the steps finished in this session (1: none)."""
        if self._session_estimate_s <= 0:
            return 1.0
        return self._session_actual_s / self._session_estimate_s

    def eta_s(self) -> float:
        """Remaining wall time: the remaining steps' estimates at this session's pace."""
        remaining = (1.0 - self.fraction()) * self.estimate_s
        return max(0.0, remaining * self.pace())

    def line(self) -> str:
        frac = self.fraction()
        width = 20
        filled = int(round(frac * width))
        bar = "#" * filled + "-" * (width - filled)
        eta = format_duration(self.eta_s())
        text = (f"[{bar}] {frac * 100:5.1f}%  step {self.current}/{self.total} "
                f"{self.step_key} {self.state} {self.step_fraction * 100:3.0f}%  ETA {eta}")
        if self.latest_fit:
            text += f"  | fit {self.latest_fit}"
        return text

    def draw(self, force: bool = False, final: bool = False) -> None:
        with self._lock:
            text = self.line()
            if self.tty:
                cols = shutil.get_terminal_size((120, 20)).columns
                self.stream.write("\r" + text[: cols - 1].ljust(cols - 1))
                if final or self.done >= self.total:
                    # after the last step, a late preview fit's redraw ends its line too, so
                    # the campaign's closing lines never continue the progress bar
                    self.stream.write("\n")
                self.stream.flush()
                return
            bucket = int(self.step_fraction * 10)
            if not force and bucket == self._last_bucket:
                return
            self._last_bucket = bucket
            self.stream.write(text + "\n")
            self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (a warning, a retry), keeping the progress line below it."""
        with self._lock:
            if self.tty:
                cols = shutil.get_terminal_size((120, 20)).columns
                self.stream.write("\r" + " " * (cols - 1) + "\r")
            self.stream.write(text + "\n")
            self.stream.flush()
        if self.tty:
            self.draw(force=True)
