"""Host loops for the attached variants: how a test makes one, drives it, counts it, disposes of it.

`HOSTS` maps each attached variant name (``pollers.attached_variants()``) to a
`HostSpec`. A host is made fresh for each test and not running; the conformance
suite attaches a poller to it and runs that poller's ``run()``, which runs the host
loop the host's way. The attachment-only tests (``test_poller_attached.py``) also
run the host themselves, through `drive`, as an application would.

Each family's entries import their library only inside their functions, so that
this module imports none of them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

#: How often a driven host re-checks its condition.
POLL_INTERVAL = 0.002


class HostTimeout(AssertionError):
    """`drive` gave up: the condition did not hold within the timeout."""


@dataclass(frozen=True)
class HostSpec:
    """How the tests use the host loop of one attached variant."""

    #: A fresh host loop, not running (``asyncio.new_event_loop()``, an ``IOLoop``...).
    make: Callable[[], Any]
    #: Runs the host the host's way until ``until()`` holds (True) or ``timeout``
    #: seconds pass (False); the host loop is left open and not running.
    drive: Callable[[Any, Callable[[], bool], float], bool]
    #: How many descriptors the host loop watches (its readers and writers, or
    #: handlers): a test compares this before attaching and after closing.
    watched: Callable[[Any], int]
    #: Releases what ``make`` made, after the test.
    dispose: Callable[[Any], None]


def drive(variant: str, host: Any, until: Callable[[], bool], timeout: float = 5.0) -> None:
    """Run ``host`` (of the attached ``variant``) the host's way until ``until()`` holds.

    Fails the test (`HostTimeout`) if it does not hold within ``timeout`` seconds.
    """
    if not HOSTS[variant].drive(host, until, timeout):
        raise HostTimeout(f"{variant}: the condition did not hold within {timeout} s")


# -- asyncio (and uvloop) ---------------------------------------------------


def _new_asyncio_loop() -> asyncio.AbstractEventLoop:
    return asyncio.new_event_loop()


def _new_uvloop_loop() -> asyncio.AbstractEventLoop:
    import uvloop

    return uvloop.new_event_loop()


async def _wait_until(until: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(POLL_INTERVAL)
    return True


def _drive_asyncio(
    loop: asyncio.AbstractEventLoop, until: Callable[[], bool], timeout: float
) -> bool:
    """As ``asyncio.run`` would: the application's coroutine runs on the loop."""
    return loop.run_until_complete(_wait_until(until, timeout))


def _epoll_entries(epoll_fd: int) -> int:
    """How many descriptors the epoll instance ``epoll_fd`` of this process watches."""
    with open(f"/proc/self/fdinfo/{epoll_fd}") as info:
        return sum(1 for line in info if line.startswith("tfd:"))


def _asyncio_watched(loop: asyncio.AbstractEventLoop) -> int:
    backend_id: Optional[Callable[[], int]] = getattr(loop, "_get_backend_id", None)
    if backend_id is not None:  # uvloop: libuv's epoll set (it keeps no Python table)
        return _epoll_entries(backend_id())
    selector = loop._selector  # type: ignore[attr-defined]  # asyncio's selector loops
    return len(selector.get_map())


def _close_asyncio(loop: asyncio.AbstractEventLoop) -> None:
    if not loop.is_closed():
        loop.close()


# -- Tornado ----------------------------------------------------------------


def _new_ioloop(make_loop: Callable[[], asyncio.AbstractEventLoop]) -> Callable[[], Any]:
    def make() -> Any:
        from tornado.platform.asyncio import AsyncIOLoop

        return AsyncIOLoop(asyncio_loop=make_loop(), make_current=False)

    return make


def _drive_tornado(ioloop: Any, until: Callable[[], bool], timeout: float) -> bool:
    """As a Tornado application does: ``IOLoop.start()``, stopped from a periodic check."""
    from tornado.ioloop import PeriodicCallback

    deadline = time.monotonic() + timeout
    held = [False]

    def check() -> None:
        if until():
            held[0] = True
            ioloop.stop()
        elif time.monotonic() >= deadline:
            ioloop.stop()

    checker = PeriodicCallback(check, POLL_INTERVAL * 1000)
    checker.start()
    ioloop.add_callback(check)
    try:
        ioloop.start()
    finally:
        checker.stop()
    return held[0]


def _tornado_watched(ioloop: Any) -> int:
    return len(ioloop.handlers) + _asyncio_watched(ioloop.asyncio_loop)


def _close_ioloop(ioloop: Any) -> None:
    ioloop.close(all_fds=False)  # closes its asyncio loop too


#: Attached variant name -> how the tests make and drive its host.
HOSTS: Dict[str, HostSpec] = {
    "asyncio-attached": HostSpec(
        _new_asyncio_loop, _drive_asyncio, _asyncio_watched, _close_asyncio
    ),
    "asyncio-uvloop-attached": HostSpec(
        _new_uvloop_loop, _drive_asyncio, _asyncio_watched, _close_asyncio
    ),
    "tornado-attached": HostSpec(
        _new_ioloop(_new_asyncio_loop), _drive_tornado, _tornado_watched, _close_ioloop
    ),
    "tornado-uvloop-attached": HostSpec(
        _new_ioloop(_new_uvloop_loop), _drive_tornado, _tornado_watched, _close_ioloop
    ),
}

#: Whether `HostSpec.watched` can count on this platform (uvloop's count reads /proc).
COUNTS_UVLOOP = sys.platform.startswith("linux") and os.path.isdir("/proc/self/fdinfo")
