"""Readiness delivery (contract behaviours 1-4 and 9), on every variant.

1. READ and WRITE interest are independent; only requested bits are delivered.
2. Level-triggered: unread data fires the handler again on the next pass.
3. A dropped interest never fires, not even for an event fetched in the same batch.
4. A peer's close or reset shows up as readiness for what was registered.
9. One descriptor ready for both READ and WRITE is delivered once per pass with both bits
   where the dispatch loop is ours (kqueue returns it as two events that must be merged).
"""

from __future__ import annotations

import os
import selectors
import socket
import time
from typing import Any, Dict, List, Optional, Tuple

import pytest
from helpers import (
    ERROR,
    READ,
    WRITE,
    Recorder,
    Sockets,
    fill_send_buffer,
    reset_connection,
    run_for,
    run_once,
    run_passes,
    run_until,
)
from libkqueue_select import SO_ERROR_CLEARED

import pollers
from pollers import Events, Poller
from pollers.selector_poller import KqueueSelectorPoller

#: How long the idle checks wait; a spinning loop burns most of it in CPU time.
IDLE_SECONDS = 0.3

# -- 1. independent interests, only requested bits ----------------------------


def test_read_only_registration_never_sees_write(poller: Poller) -> None:
    with Sockets() as sockets:
        mine, peer = sockets.pair()  # writable from the start, readable only later
        recorder = Recorder()
        poller.register(mine, Events.READ, recorder)
        run_passes(poller, 3)
        assert recorder.calls == []
        peer.send(b"data")
        run_until(poller, lambda: recorder.count > 0)
        run_passes(poller, 2)
        assert set(recorder.events()) == {READ}
        assert all(fd is mine for fd, _ in recorder.calls)


def test_write_only_registration_never_sees_read(poller: Poller) -> None:
    with Sockets() as sockets:
        mine, peer = sockets.pair()
        peer.send(b"data")  # readable and writable
        recorder = Recorder()
        poller.register(mine, Events.WRITE, recorder)
        run_passes(poller, 3)
        assert recorder.count >= 1
        assert set(recorder.events()) == {WRITE}


def test_read_and_write_are_added_and_removed_independently(poller: Poller) -> None:
    with Sockets() as sockets:
        mine, peer = sockets.pair()
        peer.send(b"data")  # readable and writable for the whole test: nothing is read
        recorder = Recorder()
        poller.register(mine, Events.NONE, recorder)
        steps = [
            (Events.NONE, 0),
            (Events.READ, READ),
            (Events.READ | Events.WRITE, READ | WRITE),
            (Events.WRITE, WRITE),
            (Events.NONE, 0),
            (Events.WRITE, WRITE),
            (Events.READ, READ),
            (Events.READ | Events.WRITE, READ | WRITE),
            (Events.READ, READ),
            (Events.NONE, 0),
        ]
        for interest, expected in steps:
            poller.modify(mine, interest)
            recorder.clear()
            run_passes(poller, 2)
            assert recorder.union() == expected, f"interest {interest!r}"


# -- 2. level-triggered ------------------------------------------------------


def test_unread_data_fires_again_on_every_pass(poller: Poller) -> None:
    with Sockets() as sockets:
        mine, peer = sockets.pair()
        peer.send(b"data")
        recorder = Recorder()
        poller.register(mine, Events.READ, recorder)
        for expected in range(1, 5):
            run_once(poller)
            assert recorder.events() == [READ] * expected
        assert mine.recv(100) == b"data"
        run_passes(poller, 3)
        assert recorder.count == 4, "fired again after the data was read"


def test_partially_read_data_fires_again(poller: Poller) -> None:
    with Sockets() as sockets:
        mine, peer = sockets.pair()
        peer.send(b"abcdef")
        received: List[bytes] = []
        poller.register(mine, Events.READ, lambda sock, events: received.append(sock.recv(2)))
        run_until(poller, lambda: len(received) >= 3)
        assert b"".join(received[:3]) == b"abcdef"


# -- 3. dropped interest never fires, even within the fetched batch -----------


class DropTheOther:
    """Two sockets ready in the same batch; whichever handler runs first drops the other.

    ``drop(poller, other)`` drops the interest; the other handler must then never
    see the dropped bit, although the kernel already reported it in this batch.
    """

    def __init__(self, poller: Poller, sockets: Sockets, interest: int, drop: Any) -> None:
        self.poller = poller
        self.calls: Dict[int, List[int]] = {0: [], 1: []}
        self.first: Optional[int] = None
        self._drop = drop
        self.pairs: List[Tuple[socket.socket, socket.socket]] = []
        for _ in range(2):
            mine, peer = sockets.pair()
            peer.send(b"ready")
            self.pairs.append((mine, peer))
        for index, (mine, _) in enumerate(self.pairs):
            poller.register(mine, interest, self._handler(index))

    def _handler(self, index: int) -> Any:
        def handle(sock: socket.socket, events: int) -> None:
            self.calls[index].append(events)
            if self.first is None:
                self.first = index
                self._drop(self.poller, self.pairs[1 - index][0])

        return handle

    @property
    def other_calls(self) -> List[int]:
        assert self.first is not None, "neither handler ran"
        return self.calls[1 - self.first]


def test_unregister_suppresses_an_event_already_fetched(poller: Poller) -> None:
    with Sockets() as sockets:
        case = DropTheOther(poller, sockets, READ, lambda p, sock: p.unregister(sock))
        run_passes(poller, 3)
        assert case.other_calls == []


def test_modify_to_none_suppresses_an_event_already_fetched(poller: Poller) -> None:
    with Sockets() as sockets:
        case = DropTheOther(poller, sockets, READ, lambda p, sock: p.modify(sock, Events.NONE))
        run_passes(poller, 3)
        assert case.other_calls == []


def test_modify_dropping_read_suppresses_read_already_fetched(poller: Poller) -> None:
    with Sockets() as sockets:
        case = DropTheOther(
            poller, sockets, READ | WRITE, lambda p, sock: p.modify(sock, Events.WRITE)
        )
        run_passes(poller, 3)
        assert all(events & READ == 0 for events in case.other_calls), case.other_calls
        assert any(events & WRITE for events in case.other_calls), "WRITE interest was kept"


def test_modify_dropping_write_suppresses_write_already_fetched(poller: Poller) -> None:
    with Sockets() as sockets:
        case = DropTheOther(
            poller, sockets, READ | WRITE, lambda p, sock: p.modify(sock, Events.READ)
        )
        run_passes(poller, 3)
        assert all(events & WRITE == 0 for events in case.other_calls), case.other_calls
        assert any(events & READ for events in case.other_calls), "READ interest was kept"


def test_an_event_fetched_for_a_number_reused_in_the_batch_is_not_delivered(
    poller: Poller,
) -> None:
    """The first handler unregisters and closes the other socket, then registers a
    fresh one under the same number: the event fetched for the old socket must not
    reach the new registration (the fresh socket is never readable)."""
    with Sockets() as sockets:
        newcomer = Recorder()

        def replace(p: Poller, sock: socket.socket) -> None:
            fresh, _silent_peer = sockets.pair()  # made first, so not on the freed number
            number = sock.fileno()
            p.unregister(sock)
            sock.close()
            os.dup2(fresh.fileno(), number)  # the number now names a socket with no data
            reused = sockets.keep(socket.socket(fileno=number))
            p.register(reused, READ, newcomer)

        case = DropTheOther(poller, sockets, READ, replace)
        run_passes(poller, 3)
        assert case.other_calls == []
        assert newcomer.calls == []


def test_a_handler_that_unregisters_itself_is_not_called_again(poller: Poller) -> None:
    with Sockets() as sockets:
        mine, peer = sockets.pair()
        peer.send(b"data")
        recorder = Recorder(lambda sock, events: poller.unregister(sock))
        poller.register(mine, READ | WRITE, recorder)
        run_passes(poller, 3)
        assert recorder.count == 1


@pytest.mark.parametrize("drop", ["unregister", "modify-none"])
def test_a_dropped_ready_descriptor_does_not_keep_the_loop_busy(poller: Poller, drop: str) -> None:
    """After the interest is dropped, the kernel must stop waking the loop for it.

    Masking alone would hide the events from handlers while the loop spun on a
    descriptor still registered in the kernel; that shows as CPU time, which a
    blocked wait does not use.
    """
    with Sockets() as sockets:
        mine, peer = sockets.pair()
        peer.send(b"data")  # stays unread: readable for the whole test
        recorder = Recorder()
        poller.register(mine, READ, recorder)
        run_until(poller, lambda: recorder.count > 0)
        if drop == "unregister":
            poller.unregister(mine)
        else:
            poller.modify(mine, Events.NONE)
        recorder.clear()
        cpu = time.process_time()
        run_for(poller, IDLE_SECONDS)
        used = time.process_time() - cpu
        assert recorder.calls == []
        assert used < IDLE_SECONDS / 2, f"{used:.3f} s of CPU in {IDLE_SECONDS} s of waiting"


# -- 4. peer close and reset --------------------------------------------------


def _assert_delivered(recorder: Recorder, interest: int) -> None:
    """Readiness for the interest arrived; nothing outside interest|ERROR did."""
    assert recorder.count >= 1
    for events in recorder.events():
        assert events & interest, f"{events:#x} has none of {interest:#x}"
        assert events & ~(interest | ERROR) == 0, f"{events:#x} outside {interest:#x}"


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_peer_close_is_read_readiness_then_eof(poller: Poller, kind: str) -> None:
    with Sockets() as sockets:
        peer, mine = sockets.tcp_pair() if kind == "tcp" else sockets.pair()
        recorder = Recorder()
        poller.register(mine, Events.READ, recorder)
        run_passes(poller, 2)
        assert recorder.calls == []
        peer.close()
        run_until(poller, lambda: recorder.count > 0)
        _assert_delivered(recorder, READ)
        assert mine.recv(100) == b""


@pytest.mark.libkqueue_difference(SO_ERROR_CLEARED)
def test_peer_reset_is_read_readiness_then_error(poller: Poller) -> None:
    with Sockets() as sockets:
        client, server = sockets.tcp_pair()
        recorder = Recorder()
        poller.register(server, Events.READ, recorder)
        run_passes(poller, 2)
        assert recorder.calls == []
        reset_connection(client)
        run_until(poller, lambda: recorder.count > 0)
        _assert_delivered(recorder, READ)
        with pytest.raises(ConnectionResetError):
            server.recv(100)


@pytest.mark.parametrize("how", ["unix-close", "tcp-reset"])
def test_peer_close_wakes_a_blocked_writer(poller: Poller, how: str) -> None:
    with Sockets() as sockets:
        if how == "tcp-reset":
            peer, mine = sockets.tcp_pair()
            mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        else:
            mine, peer = sockets.pair()
        fill_send_buffer(mine)
        recorder = Recorder()
        poller.register(mine, Events.WRITE, recorder)
        run_passes(poller, 2)
        assert recorder.calls == [], "a full send buffer reported writable"
        if how == "tcp-reset":
            reset_connection(peer)
        else:
            peer.close()
        run_until(poller, lambda: recorder.count > 0)
        _assert_delivered(recorder, WRITE)
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(10):  # the first send after a reset may still be accepted
                mine.send(b"more")


# -- 9. READ and WRITE of one descriptor in one pass ---------------------------


def _merges_read_and_write(variant_name: str) -> bool:
    return pollers.registry.family_of(variant_name).merges_read_and_write


def test_read_and_write_ready_together_arrive_once_per_pass(
    poller: Poller, variant_name: str
) -> None:
    """Both bits ready: each pass delivers each bit exactly once.

    Where the dispatch loop is ours (the selectors family) that is ONE call with both
    bits, on epoll as on kqueue, whose two events (one per filter) must be merged.
    asyncio and Tornado call a reader and a writer callback, separately, on every
    platform; their expectation is one call per bit.
    """
    with Sockets() as sockets:
        mine, peer = sockets.pair()
        peer.send(b"data")
        recorder = Recorder()
        poller.register(mine, READ | WRITE, recorder)
        for _ in range(3):
            recorder.clear()
            run_once(poller)
            if _merges_read_and_write(variant_name):
                assert recorder.events() == [READ | WRITE]
            else:
                assert sorted(recorder.events()) == [READ, WRITE]


class SplittingPollSelector(selectors.PollSelector):
    """A poll(2) selector that reports READ|WRITE as two entries, the way kqueue does."""

    def select(self, timeout: Optional[float] = None) -> List[Tuple[selectors.SelectorKey, int]]:
        split: List[Tuple[selectors.SelectorKey, int]] = []
        for key, events in super().select(timeout):
            split.extend(
                (key, bit) for bit in (selectors.EVENT_READ, selectors.EVENT_WRITE) if events & bit
            )
        return split


def test_kqueue_merge_on_a_selector_that_splits_events() -> None:
    """The kqueue backend's merge, exercised anywhere through a selector that splits events.

    On BSD the parametrized test above also runs the check against a real kqueue.
    """
    with KqueueSelectorPoller(SplittingPollSelector()) as poller, Sockets() as sockets:
        mine, peer = sockets.pair()
        other, other_peer = sockets.pair()
        peer.send(b"data")
        other_peer.send(b"data")
        recorder = Recorder()
        poller.register(mine, READ | WRITE, recorder)
        poller.register(other, READ | WRITE, recorder)
        for _ in range(3):
            recorder.clear()
            run_once(poller)
            assert sorted(recorder.events()) == [READ | WRITE, READ | WRITE]
            assert {fd.fileno() for fd, _ in recorder.calls} == {mine.fileno(), other.fileno()}
