"""Thousands of descriptors (behaviour 8), on every variant.

8. Thousands of descriptors work on every backend but select, which refuses a
   descriptor at or above FD_SETSIZE at register time with a ValueError that says so.
"""

from __future__ import annotations

import os
import socket
from typing import Iterator, List, Set, Tuple

import pytest
from helpers import (
    READ,
    Recorder,
    Sockets,
    limited_to_fd_setsize,
    raise_nofile_limit,
    restore_nofile_limit,
    run_passes,
    run_until,
)

from pollers import Events, Poller
from pollers.kernel import FD_SETSIZE

PAIRS = 2500  # 5,000 descriptors
#: Room for the pairs plus what the interpreter, pytest and the poller hold open.
NOFILE_NEEDED = 2 * PAIRS + 512
HIGH_NUMBER = FD_SETSIZE + 476  # 1500: above select()'s limit, below NOFILE_NEEDED


@pytest.fixture
def many_descriptors() -> Iterator[None]:
    """Raise the soft RLIMIT_NOFILE for the test (skip if the hard limit is too low)."""
    previous = raise_nofile_limit(NOFILE_NEEDED)
    try:
        yield
    finally:
        restore_nofile_limit(previous)


def _is_select(variant_name: str) -> bool:
    return limited_to_fd_setsize(variant_name)


@pytest.mark.usefixtures("many_descriptors")
def test_five_thousand_descriptors(poller: Poller, variant_name: str) -> None:
    with Sockets() as sockets:
        pairs: List[Tuple[socket.socket, socket.socket]] = [sockets.pair() for _ in range(PAIRS)]
        everyone = [sock for pair in pairs for sock in pair]
        assert len(everyone) == 5000
        fired: Set[int] = set()

        def on_ready(sock: socket.socket, events: int) -> None:
            assert events == READ
            assert sock.recv(10) == b"x"
            fired.add(sock.fileno())
            poller.unregister(sock)

        if _is_select(variant_name):
            low = [sock for sock in everyone if sock.fileno() < FD_SETSIZE]
            high = [sock for sock in everyone if sock.fileno() >= FD_SETSIZE]
            assert high, "no descriptor reached FD_SETSIZE"
            for sock in high[:50]:
                with pytest.raises(ValueError, match="FD_SETSIZE"):
                    poller.register(sock, Events.READ, on_ready)
            registered = low
        else:
            registered = everyone
        for sock in registered:
            poller.register(sock, Events.READ, on_ready)
        run_passes(poller, 2)
        assert fired == set(), "nothing was written yet"
        for left, right in pairs:
            left.send(b"x")
            right.send(b"x")
        expected = {sock.fileno() for sock in registered}
        run_until(poller, lambda: fired == expected, timeout=60.0, message="every dispatch")


@pytest.mark.usefixtures("many_descriptors")
def test_a_descriptor_above_fd_setsize(poller: Poller, variant_name: str) -> None:
    """One descriptor numbered 1500: select refuses it at register time, the others serve it."""
    with Sockets() as sockets:
        low, peer = sockets.pair()
        os.dup2(low.fileno(), HIGH_NUMBER)
        high = sockets.keep(socket.socket(fileno=HIGH_NUMBER))
        low.close()
        recorder = Recorder()
        if _is_select(variant_name):
            with pytest.raises(ValueError, match="FD_SETSIZE") as refused:
                poller.register(high, Events.READ, recorder)
            assert str(HIGH_NUMBER) in str(refused.value)
            # Refused means not registered: nothing to modify, nothing to unregister.
            with pytest.raises(KeyError):
                poller.modify(high, Events.WRITE)
            return
        poller.register(high, Events.READ, recorder)
        peer.send(b"data")
        run_until(poller, lambda: recorder.count > 0)
        assert recorder.calls[0] == (high, READ)
