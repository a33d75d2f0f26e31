"""The progress line of a long run: where it stands, how long it took, how long it has left.

A full run takes about an hour; pytest's ``-v`` lines name tests, not how far along
the run is. `Progress` keeps the count of runs done and their times and gives one
line per run about to start::

    case 3 of 12, round 2 of 6, target 5 of 20; 0:12:34 elapsed, about 0:40:10 left; 2 reruns

The time left is the mean time of the runs so far (reruns included, skipped ones
not) times the runs not yet done. The suites (`benchmarks.suites.conftest`),
`benchmarks.series` and `benchmarks.compare` print it, each where its user looks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass(frozen=True)
class Position:
    """Where one run stands: case k of n, round r of R, target t of T (all from 1)."""

    case: int
    cases: int
    round: int
    rounds: int
    target: int
    targets: int


def clock_text(seconds: float) -> str:
    """``H:MM:SS``."""
    whole = round(max(0.0, seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


@dataclass
class Progress:
    """The runs of one long command: ``total`` of them, counted as they finish."""

    total: int
    clock: Callable[[], float] = time.monotonic
    done: int = 0
    timed: int = 0
    reruns: int = 0
    seconds: float = 0.0
    started_at: Optional[float] = None
    _run_began: Optional[float] = field(default=None, repr=False)

    def begin(self) -> None:
        """A run starts now (the first one starts the elapsed time)."""
        now = self.clock()
        if self.started_at is None:
            self.started_at = now
        self._run_began = now

    def end(self, ran: bool = True) -> None:
        """The run begun last is over; ``ran`` False for one that was skipped (no time)."""
        now = self.clock()
        if ran and self._run_began is not None:
            self.seconds += now - self._run_began
            self.timed += 1
        self._run_began = None
        self.done += 1

    def rerun(self) -> None:
        """A window was discarded and is run again."""
        self.reruns += 1

    def left(self) -> Optional[float]:
        """Seconds left, from the runs so far (None before the first one has finished)."""
        if not self.timed:
            return None
        return self.seconds / self.timed * max(0, self.total - self.done)

    def line(self, where: Position) -> str:
        elapsed = 0.0 if self.started_at is None else self.clock() - self.started_at
        left = self.left()
        remaining = "time left not known yet" if left is None else f"about {clock_text(left)} left"
        plural = "" if self.reruns == 1 else "s"
        return (
            f"case {where.case} of {where.cases}, round {where.round} of {where.rounds}, "
            f"target {where.target} of {where.targets}; {clock_text(elapsed)} elapsed, "
            f"{remaining}; {self.reruns} rerun{plural}"
        )
