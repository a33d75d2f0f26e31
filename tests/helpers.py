"""Helpers shared by the conformance suite: bounded runs, recording handlers, real sockets.

Every way of running a poller here is bounded: a safety timer stops the poller
after a deadline whatever happens, so a broken backend fails a test instead of
hanging it.
"""

from __future__ import annotations

import contextlib
import resource
import signal
import socket
import struct
import time
from types import TracebackType
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

import pytest

from pollers import Events, Poller
from pollers.registry import DESCRIPTOR_LIMITS

READ = int(Events.READ)
WRITE = int(Events.WRITE)
ERROR = int(Events.ERROR)

#: How long any single wait in a test may take before the test fails.
SAFETY_TIMEOUT = 5.0
#: How often `run_until` re-checks its condition.
POLL_INTERVAL = 0.002


class SafetyNet:
    """A timer that stops the poller after ``timeout`` and remembers that it had to."""

    def __init__(self, poller: Poller, timeout: float = SAFETY_TIMEOUT) -> None:
        self.fired = False
        self._poller = poller
        self._timer = poller.call_later(timeout, self._fire)

    def _fire(self) -> None:
        self.fired = True
        self._poller.stop()

    def cancel(self) -> None:
        self._timer.cancel()


def run_once(poller: Poller, timeout: float = SAFETY_TIMEOUT) -> None:
    """Run exactly one pass: ``stop()`` before ``run()`` returns after one pass.

    Fails the test if the pass did not end before the safety net fired.
    """
    net = SafetyNet(poller, timeout)
    poller.stop()
    poller.run()
    net.cancel()
    assert not net.fired, "stop() before run() did not make run() return after one pass"


def run_passes(poller: Poller, count: int) -> None:
    """Run ``count`` single passes."""
    for _ in range(count):
        run_once(poller)


def run_for(poller: Poller, seconds: float) -> None:
    """Run the poller for ``seconds`` (a timer stops it)."""
    poller.call_later(seconds, poller.stop)
    poller.run()


def run_until(
    poller: Poller,
    predicate: Callable[[], bool],
    timeout: float = SAFETY_TIMEOUT,
    message: str = "condition",
) -> None:
    """Run the poller until ``predicate()`` holds; fail the test after ``timeout`` seconds."""
    if predicate():
        return
    deadline = time.monotonic() + timeout

    def check() -> None:
        if predicate() or time.monotonic() >= deadline:
            poller.stop()
        else:
            poller.call_later(POLL_INTERVAL, check)

    net = SafetyNet(poller, timeout + 1.0)
    poller.call_later(POLL_INTERVAL, check)
    poller.run()
    net.cancel()
    assert predicate(), f"{message} not reached within {timeout} s on {poller.name}"


class Recorder:
    """A handler that records ``(fd, events)`` per call and then runs an optional action."""

    def __init__(self, action: Optional[Callable[[Any, int], None]] = None) -> None:
        self.calls: List[Tuple[Any, int]] = []
        self._action = action

    def __call__(self, fd: Any, events: int) -> None:
        self.calls.append((fd, events))
        if self._action is not None:
            self._action(fd, events)

    @property
    def count(self) -> int:
        return len(self.calls)

    def events(self) -> List[int]:
        return [events for _, events in self.calls]

    def union(self) -> int:
        mask = 0
        for _, events in self.calls:
            mask |= events
        return mask

    def clear(self) -> None:
        self.calls.clear()


class Sockets(contextlib.AbstractContextManager["Sockets"]):
    """Makes real non-blocking sockets and closes every one of them on exit."""

    def __init__(self) -> None:
        self._sockets: List[socket.socket] = []
        self._listener: Optional[socket.socket] = None

    def keep(self, sock: socket.socket) -> socket.socket:
        sock.setblocking(False)
        self._sockets.append(sock)
        return sock

    def pair(self) -> Tuple[socket.socket, socket.socket]:
        """A connected AF_UNIX stream socketpair."""
        left, right = socket.socketpair()
        return self.keep(left), self.keep(right)

    def tcp_pair(self) -> Tuple[socket.socket, socket.socket]:
        """A connected TCP pair over 127.0.0.1: ``(client, server)``."""
        if self._listener is None:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", 0))
            listener.listen(16)
            self._listener = listener
        client = socket.create_connection(self._listener.getsockname(), timeout=SAFETY_TIMEOUT)
        server, _ = self._listener.accept()
        return self.keep(client), self.keep(server)

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None


def limited_to_fd_setsize(variant_name: str) -> bool:
    """True for the variants that wait with select(2), which refuse descriptors >= FD_SETSIZE
    (as their family declares)."""
    return variant_name in DESCRIPTOR_LIMITS


def reset_connection(sock: socket.socket) -> None:
    """Close ``sock`` so that its peer sees a reset (SO_LINGER on with a zero timeout)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def fill_send_buffer(sock: socket.socket, limit: int = 64 * 1024 * 1024) -> int:
    """Send until the kernel refuses more; return how many bytes it took (bounded)."""
    chunk = b"x" * 65536
    sent = 0
    while sent < limit:
        try:
            sent += sock.send(chunk)
        except BlockingIOError:
            return sent
    raise AssertionError(f"the send buffer took {limit} bytes without filling")


def raise_nofile_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (up to the hard limit); skip if too low.

    Returns the previous soft limit, for `restore_nofile_limit`.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"RLIMIT_NOFILE hard limit is {hard}, below the {wanted} descriptors needed")
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return soft


def restore_nofile_limit(soft: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


#: Every method of a Poller but close(), as `every_use` names them.
USE_NAMES = (
    "register",
    "modify",
    "unregister",
    "call_soon",
    "call_soon_threadsafe",
    "call_later",
    "call_at",
    "add_signal_handler",
    "run",
    "stop",
    "time",
)


def every_use(poller: Poller, sock: socket.socket) -> Dict[str, Callable[[], object]]:
    """One call of each method of ``poller`` but close(), keyed by `USE_NAMES`."""
    return {
        "register": lambda: poller.register(sock, READ, Recorder()),
        "modify": lambda: poller.modify(sock, READ | WRITE),
        "unregister": lambda: poller.unregister(sock),
        "call_soon": lambda: poller.call_soon(print),
        "call_soon_threadsafe": lambda: poller.call_soon_threadsafe(print),
        "call_later": lambda: poller.call_later(0.1, print),
        "call_at": lambda: poller.call_at(0.0, print),
        "add_signal_handler": lambda: poller.add_signal_handler(signal.SIGUSR2, print),
        "run": poller.run,
        "stop": poller.stop,
        "time": poller.time,
    }
