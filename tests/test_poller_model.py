"""A property-based check of delivery against a model, on every variant.

Hypothesis drives random sequences of register / modify / unregister on a few real
socketpairs, mixed with the peers writing, the sockets being drained and peers
closing. After every step one pass runs, and what was delivered is checked against
a model of what each socket is ready for:

* nothing is delivered for a socket that is not registered;
* delivered bits are a subset of the interest, and each bit comes at most once a pass;
* READ is delivered if and only if READ is wanted and the socket is readable
  (data pending, or the peer closed);
* WRITE is delivered whenever WRITE is wanted and the peer is open (the buffers
  never fill here); after the peer closed WRITE may or may not be reported.
"""

from __future__ import annotations

import socket
from typing import Callable, Dict, List, Tuple

import pytest
from helpers import READ, WRITE, Sockets, run_once
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pollers
from pollers import Poller

SOCKETS = 3
MASKS = [0, READ, WRITE, READ | WRITE]

Step = Tuple[str, int, int]  # (action, socket index, mask)

# Interest changes are what the checks are about: weight them up.
ACTIONS = ["register"] * 2 + ["modify"] * 4 + ["unregister", "write", "drain", "close_peer"]

steps = st.tuples(
    st.sampled_from(ACTIONS),
    st.integers(min_value=0, max_value=SOCKETS - 1),
    st.sampled_from(MASKS),
)


class Model:
    """What each socket is registered for and ready for."""

    def __init__(self) -> None:
        self.interest: Dict[int, int] = {}
        self.pending = [False] * SOCKETS
        self.peer_closed = [False] * SOCKETS

    def readable(self, index: int) -> bool:
        return self.pending[index] or self.peer_closed[index]


class Harness:
    """The real sockets and poller, driven step by step and checked against the model."""

    def __init__(self, poller: Poller, sockets: Sockets) -> None:
        self.poller = poller
        self.pairs: List[Tuple[socket.socket, socket.socket]] = [
            sockets.pair() for _ in range(SOCKETS)
        ]
        self.model = Model()
        self.delivered: Dict[int, List[int]] = {index: [] for index in range(SOCKETS)}

    def _handler(self, index: int) -> pollers.Handler:
        def handle(sock: socket.socket, events: int) -> None:
            assert sock is self.pairs[index][0]
            self.delivered[index].append(events)

        return handle

    def apply(self, step: Step) -> None:
        action, index, mask = step
        mine, peer = self.pairs[index]
        model = self.model
        if action == "register":
            if index in model.interest:
                with pytest.raises(ValueError):
                    self.poller.register(mine, mask, self._handler(index))
            else:
                self.poller.register(mine, mask, self._handler(index))
                model.interest[index] = mask
        elif action == "modify":
            if index in model.interest:
                self.poller.modify(mine, mask)
                model.interest[index] = mask
            else:
                with pytest.raises(KeyError):
                    self.poller.modify(mine, mask)
        elif action == "unregister":
            self.poller.unregister(mine)
            model.interest.pop(index, None)
        elif action == "write":
            if not model.peer_closed[index]:
                peer.send(b"x")
                model.pending[index] = True
        elif action == "drain":
            try:
                while mine.recv(4096):
                    pass
            except BlockingIOError:
                pass
            model.pending[index] = False
        elif action == "close_peer" and not model.peer_closed[index]:
            peer.close()
            model.peer_closed[index] = True

    def check_one_pass(self, history: List[Step]) -> None:
        for calls in self.delivered.values():
            calls.clear()
        run_once(self.poller)
        model = self.model
        for index in range(SOCKETS):
            calls = self.delivered[index]
            where = f"socket {index} after {history}: delivered {calls}"
            if index not in model.interest:
                assert calls == [], where
                continue
            interest = model.interest[index]
            union = 0
            for events in calls:
                assert events & ~interest == 0, where
                assert events & union == 0, f"a bit delivered twice in one pass; {where}"
                union |= events
            wants_read = bool(interest & READ)
            assert bool(union & READ) == (wants_read and model.readable(index)), where
            if interest & WRITE and not model.peer_closed[index]:
                assert union & WRITE, where


@settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(history=st.lists(steps, min_size=2, max_size=25))
def test_delivery_matches_the_model(make_poller: Callable[[], Poller], history: List[Step]) -> None:
    with make_poller() as poller, Sockets() as sockets:
        harness = Harness(poller, sockets)
        done: List[Step] = []
        for step in history:
            harness.apply(step)
            done.append(step)
            harness.check_one_pass(done)
