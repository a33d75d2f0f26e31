"""Runs that know when the machine was not theirs: the foreign CPU policy.

During every measured window the harness records the CPU time that every process on
the machine used but the server (with its workers), the load generator and the harness
itself, as "foreign CPU %" of one core (`benchmarks.suites.harness.foreign_cpu_percent`).
A window over the threshold is discarded and run again, a bounded number of times
(`rerun_while_foreign`); the discarded windows are kept in the results with their
figures, and a run that never got a clean window says so (`clean_window` False).

Standard library only: `benchmarks.series` and `benchmarks.compare` apply the same
policy to the JSON figures of harness runs in other trees.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple, TypeVar

#: The default threshold of foreign CPU (% of one core) over which a window is discarded,
#: and how many times a discarded window is run again at most.
FOREIGN_THRESHOLD_PCT = 5.0
FOREIGN_RERUNS = 3


def clean_window(foreign: Optional[float], threshold: Optional[float]) -> Optional[bool]:
    """True when the window's foreign CPU is within the threshold, False when over it,
    None when either is unknown."""
    if foreign is None or threshold is None:
        return None
    return foreign <= threshold


T = TypeVar("T")


def rerun_while_foreign(
    run: Callable[[], T],
    foreign: Callable[[T], Optional[float]],
    threshold: Optional[float],
    reruns: int,
    on_discard: Optional[Callable[[T, int], None]] = None,
) -> Tuple[T, List[T]]:
    """Run ``run()``; while its window's ``foreign(result)`` is over ``threshold``, discard
    it and run again, at most ``reruns`` more times.

    Returns the last result and the discarded ones, oldest first. The last result may
    still be over the threshold (no clean window in ``reruns + 1`` tries): the caller
    records that. ``threshold`` None, or a result whose foreign figure is unknown,
    accepts the first window. ``on_discard(result, attempt)`` is told of each discard.
    """
    discarded: List[T] = []
    while True:
        result = run()
        figure = foreign(result)
        if threshold is None or figure is None or figure <= threshold or len(discarded) >= reruns:
            return result, discarded
        discarded.append(result)
        if on_discard is not None:
            on_discard(result, len(discarded))
