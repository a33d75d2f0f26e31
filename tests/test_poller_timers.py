"""Callbacks, timers and timeouts (behaviour 7), on every variant.

7. Timeouts are respected with no descriptor registered; a pending ``call_soon``
   never waits for I/O.
Also: timer order (equal deadlines first-in first-out), cancel, ``call_at`` on
``time()``, and failing callbacks being logged without stopping the loop.
"""

from __future__ import annotations

import logging
import time
from typing import List

import pytest
from helpers import READ, Recorder, SafetyNet, Sockets, run_until

from pollers import Events, Poller

# -- 7. timeouts and call_soon ---------------------------------------------------


@pytest.mark.parametrize("with_idle_socket", [False, True])
def test_timer_ends_a_wait_with_nothing_ready(poller: Poller, with_idle_socket: bool) -> None:
    with Sockets() as sockets:
        if with_idle_socket:
            mine, _ = sockets.pair()
            poller.register(mine, Events.READ, Recorder())
        fired: List[float] = []
        when = poller.time() + 0.05
        poller.call_at(when, lambda: fired.append(poller.time()))
        poller.call_at(when, poller.stop)
        net = SafetyNet(poller)
        poller.run()
        net.cancel()
        assert not net.fired, "the timer did not end the wait"
        assert len(fired) == 1
        # Not early: the loop clock may round to the millisecond (uvloop).
        assert fired[0] >= when - 0.002


def test_pending_call_soon_never_waits_for_io(poller: Poller) -> None:
    with Sockets() as sockets:
        mine, _ = sockets.pair()
        poller.register(mine, Events.READ, Recorder())  # never becomes ready
        order: List[int] = []

        def chain(step: int) -> None:
            order.append(step)
            if step < 5:
                poller.call_soon(chain, step + 1)
            else:
                poller.stop()

        poller.call_soon(chain, 1)
        net = SafetyNet(poller)
        poller.run()
        net.cancel()
        assert not net.fired, "call_soon waited for I/O"
        assert order == [1, 2, 3, 4, 5]


def test_call_soon_runs_in_order_with_arguments(poller: Poller) -> None:
    seen: List[object] = []
    for index in range(20):
        poller.call_soon(seen.append, index)
    poller.call_soon(poller.stop)
    net = SafetyNet(poller)
    poller.run()
    net.cancel()
    assert seen == list(range(20))


# -- timers ----------------------------------------------------------------------


def test_equal_deadlines_run_in_the_order_scheduled(poller: Poller) -> None:
    seen: List[int] = []
    when = poller.time() + 0.02
    for index in range(50):
        poller.call_at(when, seen.append, index)
    run_until(poller, lambda: len(seen) == 50)
    assert seen == list(range(50))


def test_timers_run_in_deadline_order(poller: Poller) -> None:
    seen: List[int] = []
    poller.call_later(0.001, seen.append, -1)
    base = poller.time()  # after the call_later: its deadline is earlier than base + 0.005
    for index in reversed(range(10)):
        poller.call_at(base + 0.005 * (index + 1), seen.append, index)
    run_until(poller, lambda: len(seen) == 11)
    assert seen == [-1, *range(10)]


def test_call_later_and_call_at_are_not_early(poller: Poller) -> None:
    fired: List[float] = []
    start = poller.time()
    poller.call_later(0.03, lambda: fired.append(poller.time()))
    poller.call_at(start + 0.02, lambda: fired.append(poller.time()))
    run_until(poller, lambda: len(fired) == 2)
    assert fired[0] >= start + 0.02 - 0.002
    assert fired[1] >= start + 0.03 - 0.002


def test_zero_and_negative_delays_run_on_the_next_pass(poller: Poller) -> None:
    seen: List[str] = []
    poller.call_later(0, seen.append, "zero")
    poller.call_later(-1, seen.append, "negative")
    poller.call_at(poller.time() - 10, seen.append, "past")
    run_until(poller, lambda: len(seen) == 3)
    assert sorted(seen) == ["negative", "past", "zero"]


def test_time_is_monotonic_seconds(poller: Poller) -> None:
    first = poller.time()
    assert abs(first - time.monotonic()) < 1.0
    assert poller.time() >= first


def test_cancelled_timers_do_not_run(poller: Poller) -> None:
    seen: List[int] = []
    when = poller.time() + 0.01
    timers = [poller.call_at(when, seen.append, index) for index in range(10)]
    for timer in timers[::2]:
        timer.cancel()
    timers[1].cancel()
    timers[1].cancel()  # twice is harmless
    poller.call_at(when + 0.02, poller.stop)
    net = SafetyNet(poller)
    poller.run()
    net.cancel()
    assert seen == [3, 5, 7, 9]
    for timer in timers:
        timer.cancel()  # after they ran: harmless


def test_cancel_the_earliest_timer_while_waiting(poller: Poller) -> None:
    seen: List[str] = []
    early = poller.call_later(0.01, seen.append, "early")
    poller.call_later(0.03, seen.append, "late")
    poller.call_soon(early.cancel)
    run_until(poller, lambda: "late" in seen)
    assert seen == ["late"]


def test_a_timer_can_cancel_a_later_one_due_in_the_same_batch(poller: Poller) -> None:
    seen: List[str] = []
    when = poller.time() + 0.01
    poller.call_at(when, lambda: victim.cancel())
    victim = poller.call_at(when, seen.append, "victim")
    poller.call_at(when, seen.append, "survivor")
    run_until(poller, lambda: "survivor" in seen)
    assert seen == ["survivor"]


def test_many_cancelled_timers_keep_the_order(poller: Poller) -> None:
    seen: List[int] = []
    when = poller.time() + 0.02
    kept = []
    for index in range(300):
        timer = poller.call_at(when + (index % 7) * 0.001, seen.append, index)
        if index % 3:
            timer.cancel()
        else:
            kept.append((index % 7, index))
    run_until(poller, lambda: len(seen) == len(kept))
    assert seen == [index for _, index in sorted(kept)]


def test_a_timer_scheduled_from_a_timer(poller: Poller) -> None:
    seen: List[str] = []
    poller.call_later(0.01, lambda: poller.call_later(0.01, seen.append, "second"))
    run_until(poller, lambda: seen == ["second"])


# -- failing callbacks -------------------------------------------------------------


class Boom(Exception):
    pass


def _explode() -> None:
    raise Boom("callback failed")


def test_raising_callbacks_and_timers_are_logged_and_the_loop_goes_on(
    poller: Poller, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="pollers")
    seen: List[str] = []
    poller.call_soon(_explode)
    poller.call_soon(seen.append, "after call_soon")
    when = poller.time() + 0.01
    poller.call_at(when, _explode)
    poller.call_at(when, seen.append, "after timer")
    run_until(poller, lambda: len(seen) == 2)
    assert seen == ["after call_soon", "after timer"]
    failures = [r for r in caplog.records if r.exc_info and r.exc_info[0] is Boom]
    assert len(failures) == 2
    assert all(r.name == "pollers" for r in failures)
    assert "Traceback" in caplog.text


def test_io_and_timers_interleave(poller: Poller) -> None:
    with Sockets() as sockets:
        mine, peer = sockets.pair()
        received: List[bytes] = []
        recorder = Recorder(lambda sock, events: received.append(sock.recv(100)))
        poller.register(mine, READ, recorder)
        for index in range(5):
            poller.call_later(0.005 * (index + 1), peer.send, b"%d" % index)
        run_until(poller, lambda: len(b"".join(received)) >= 5)
        assert b"".join(received) == b"01234"
        assert set(recorder.events()) == {READ}


def test_callbacks_queued_before_a_timer_is_due_run_before_it(poller: Poller) -> None:
    """The loop starts with a timer already due: the queued cancel() still wins."""
    seen: List[str] = []
    early = poller.call_later(0.01, seen.append, "early")
    poller.call_later(0.03, seen.append, "late")
    poller.call_soon(early.cancel)
    time.sleep(0.02)  # "early" is due before the loop first looks
    poller.call_later(0.06, poller.stop)
    net = SafetyNet(poller)
    poller.run()
    net.cancel()
    assert seen == ["late"]
