"""The campaign's progress line: current step, ETA and the latest fit, on one terminal line.

On a terminal the line is redrawn in place; into a file or pipe a line is printed only when
something changes (step start/end, every tenth of a step), so logs stay readable.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from typing import TextIO

from daqapp.campaign.spec import format_duration


class ProgressLine:
    """Progress of a campaign of ``total`` steps whose estimates sum to ``estimate_s``."""

    def __init__(self, total: int, estimate_s: float, stream: TextIO | None = None,
                 done: int = 0, done_estimate_s: float = 0.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total = total
        self.estimate_s = max(estimate_s, 1e-9)
        self.done = done
        self.done_estimate_s = done_estimate_s
        self.started = time.monotonic()
        self.step_key = ""
        self.step_estimate_s = 0.0
        self.step_fraction = 0.0
        self.state = ""
        self.latest_fit = ""
        self._lock = threading.Lock()
        self._last_bucket = -1
        self._elapsed_before = 0.0

    def begin(self, key: str, estimate_s: float, state: str = "positioning") -> None:
        with self._lock:
            self.step_key, self.step_estimate_s = key, estimate_s
            self.step_fraction, self.state = 0.0, state
            self._last_bucket = -1
        self.draw(force=True)

    def update(self, fraction: float | None = None, state: str | None = None) -> None:
        with self._lock:
            if fraction is not None:
                self.step_fraction = max(0.0, min(1.0, fraction))
            if state is not None:
                self.state = state
        self.draw(force=state is not None)

    def fit(self, text: str) -> None:
        with self._lock:
            self.latest_fit = text
        self.draw(force=True)

    def end(self, key: str, outcome: str, estimate_s: float) -> None:
        with self._lock:
            self.done += 1
            self.done_estimate_s += estimate_s
            self.step_fraction, self.state = 1.0, outcome
        self.draw(force=True, final=True)

    def eta_s(self) -> float:
        """Remaining wall time: remaining estimate scaled by how fast estimates came true."""
        elapsed = time.monotonic() - self.started
        progressed = self.done_estimate_s + self.step_fraction * self.step_estimate_s
        remaining = self.estimate_s - progressed
        if progressed > 0 and elapsed > 1.0:
            return max(0.0, remaining * elapsed / progressed)
        return max(0.0, remaining)

    def line(self) -> str:
        frac = (self.done_estimate_s + self.step_fraction * self.step_estimate_s) / \
            self.estimate_s
        frac = max(0.0, min(1.0, frac))
        width = 20
        filled = int(round(frac * width))
        bar = "#" * filled + "-" * (width - filled)
        current = min(self.done + 1, self.total)
        eta = format_duration(self.eta_s())
        text = (f"[{bar}] {frac * 100:5.1f}%  step {current}/{self.total} {self.step_key} "
                f"{self.state} {self.step_fraction * 100:3.0f}%  ETA {eta}")
        if self.latest_fit:
            text += f"  | {self.latest_fit}"
        return text

    def draw(self, force: bool = False, final: bool = False) -> None:
        with self._lock:
            text = self.line()
            if self.tty:
                cols = shutil.get_terminal_size((120, 20)).columns
                self.stream.write("\r" + text[: cols - 1].ljust(cols - 1))
                if final:
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
