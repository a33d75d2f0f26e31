"""Waking and stopping a poller: from another thread, a handler, a timer, a signal.

``call_soon_threadsafe`` is the only call allowed from another thread and wakes a
blocked wait at once; ``stop()`` ends ``run()`` whatever calls it on the loop.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Callable, List

import pytest
from helpers import READ, SAFETY_TIMEOUT, Recorder, SafetyNet, Sockets, run_once

from pollers import Events, Poller

#: The safety net for a wait that should end promptly; far above any real wake-up.
WAKE_BOUND = 10.0


def _run_expecting_a_prompt_stop(poller: Poller) -> None:
    net = SafetyNet(poller, WAKE_BOUND)
    poller.run()
    net.cancel()
    assert not net.fired, "run() was not stopped; the safety net ended it"


def _in_thread(action: Callable[[], None], delay: float = 0.05) -> threading.Thread:
    """Run ``action`` on another thread after ``delay`` seconds."""
    started = threading.Event()

    def body() -> None:
        started.set()
        threading.Event().wait(delay)
        action()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    started.wait(SAFETY_TIMEOUT)
    return thread


@pytest.mark.parametrize("with_idle_socket", [False, True])
def test_call_soon_threadsafe_wakes_a_blocked_run(poller: Poller, with_idle_socket: bool) -> None:
    with Sockets() as sockets:
        if with_idle_socket:
            mine, _ = sockets.pair()
            poller.register(mine, Events.READ, Recorder())
        ran_on: List[threading.Thread] = []

        def on_loop() -> None:
            ran_on.append(threading.current_thread())
            poller.stop()

        thread = _in_thread(lambda: poller.call_soon_threadsafe(on_loop))
        _run_expecting_a_prompt_stop(poller)
        thread.join(SAFETY_TIMEOUT)
        assert ran_on == [threading.main_thread()]


def test_many_call_soon_threadsafe_calls_all_run_in_order(poller: Poller) -> None:
    seen: List[int] = []

    def send_all() -> None:
        for index in range(2000):
            poller.call_soon_threadsafe(seen.append, index)
        poller.call_soon_threadsafe(poller.stop)

    thread = _in_thread(send_all, delay=0.01)
    _run_expecting_a_prompt_stop(poller)
    thread.join(SAFETY_TIMEOUT)
    assert seen == list(range(2000))


def test_stop_from_a_handler(poller: Poller) -> None:
    with Sockets() as sockets:
        mine, peer = sockets.pair()
        peer.send(b"data")
        recorder = Recorder(lambda sock, events: poller.stop())
        poller.register(mine, READ, recorder)
        _run_expecting_a_prompt_stop(poller)
        assert recorder.count >= 1
        # The poller runs again after a stop.
        calls = recorder.count
        _run_expecting_a_prompt_stop(poller)
        assert recorder.count > calls


def test_stop_from_a_timer(poller: Poller) -> None:
    poller.call_later(0.02, poller.stop)
    _run_expecting_a_prompt_stop(poller)


def test_stop_from_another_thread_through_call_soon_threadsafe(poller: Poller) -> None:
    thread = _in_thread(lambda: poller.call_soon_threadsafe(poller.stop))
    _run_expecting_a_prompt_stop(poller)
    thread.join(SAFETY_TIMEOUT)


@pytest.mark.parametrize("sender", ["timer", "thread"])
def test_stop_from_a_signal_handler(poller: Poller, sender: str) -> None:
    """SIGUSR1 to ourselves: from a timer on the loop, or from a thread while run() blocks."""
    assert threading.current_thread() is threading.main_thread()
    seen: List[str] = []

    def on_signal(label: str) -> None:
        seen.append(label)
        poller.stop()

    poller.add_signal_handler(signal.SIGUSR1, on_signal, "usr1")
    kill = lambda: os.kill(os.getpid(), signal.SIGUSR1)  # noqa: E731
    if sender == "timer":
        poller.call_later(0.02, kill)
        _run_expecting_a_prompt_stop(poller)
    else:
        thread = _in_thread(kill)
        _run_expecting_a_prompt_stop(poller)
        thread.join(SAFETY_TIMEOUT)
    assert seen == ["usr1"]


GEVENT_LIBEV_ATTACHED_SIGINT = (
    "Linux gives a signal that another thread sends to that thread, so the hub's wait in "
    "libev is not interrupted: "
    "gevent's libev loop runs Python's signal handlers only when it wakes (its libuv loop "
    "looks every 0.3 s), and an attached poller does not take signal.set_wakeup_fd, which "
    "is the host's, to wake it"
)


@pytest.mark.parametrize("sender", ["timer", "thread"])
def test_sigint_with_the_default_handler_raises_keyboard_interrupt_out_of_run(
    poller: Poller, sender: str, request: pytest.FixtureRequest
) -> None:
    """Ctrl-C with no handler added: Python's default SIGINT handler raises
    KeyboardInterrupt wherever the loop runs Python code, and run() raises it."""
    if poller.name == "gevent-libev-attached" and sender == "thread":
        request.applymarker(pytest.mark.xfail(strict=True, reason=GEVENT_LIBEV_ATTACHED_SIGINT))
    kill = lambda: os.kill(os.getpid(), signal.SIGINT)  # noqa: E731
    threads: List[threading.Thread] = []
    if sender == "timer":
        poller.call_later(0.02, kill)
    else:  # started from the loop, so that the signal cannot come before run()
        poller.call_soon(lambda: threads.append(_in_thread(kill)))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        net = SafetyNet(poller, WAKE_BOUND)
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            poller.run()  # returns normally (failing the test) only if the net stopped it
        net.cancel()
        # Not raised only once the net's timer woke the loop (and Python code ran again).
        assert time.monotonic() - started < WAKE_BOUND / 2, "the interrupt waited for the net"
    finally:
        signal.signal(signal.SIGINT, previous)
        for thread in threads:
            thread.join(SAFETY_TIMEOUT)
    assert not net.fired
    run_once(poller)  # nothing of the interrupt is left behind


UVLOOP_ATTACHED_SIGNALS = (
    "uvloop listens for signals only while it runs, and an attached poller does not keep "
    "them blocked in between (the owned one does): the host, not the poller, decides when "
    "its loop runs, and a signal kept blocked while the host runs the loop would never arrive"
)


@pytest.mark.parametrize("when", ["before the first run", "between two runs"])
def test_a_signal_while_the_loop_is_not_running_is_handled_when_it_runs(
    poller: Poller, when: str, request: pytest.FixtureRequest
) -> None:
    """Not lost, not fatal: uvloop itself only listens while it runs."""
    if poller.attached and "-uvloop" in poller.name:
        request.applymarker(pytest.mark.xfail(strict=True, reason=UVLOOP_ATTACHED_SIGNALS))
    seen: List[int] = []
    poller.add_signal_handler(signal.SIGUSR1, seen.append, 1)
    if when == "between two runs":
        run_once(poller)
    os.kill(os.getpid(), signal.SIGUSR1)
    net = SafetyNet(poller)
    poller.call_soon(lambda: poller.call_later(0.05, poller.stop))
    poller.run()
    net.cancel()
    assert seen == [1]


def test_add_signal_handler_outside_the_main_thread_raises(poller: Poller) -> None:
    errors: List[BaseException] = []

    def body() -> None:
        try:
            poller.add_signal_handler(signal.SIGUSR1, poller.stop)
        except ValueError as exc:
            errors.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(SAFETY_TIMEOUT)
    assert len(errors) == 1


def test_stop_before_run_returns_after_one_pass_without_waiting(poller: Poller) -> None:
    with Sockets() as sockets:
        mine, _ = sockets.pair()
        poller.register(mine, Events.READ, Recorder())  # never ready
        seen: List[str] = []
        poller.call_later(WAKE_BOUND / 2, seen.append, "later")
        run_once(poller)  # fails if the pass waited for the safety net
        assert seen == []


def test_run_inside_run_raises_and_close_while_running_raises(poller: Poller) -> None:
    errors: List[str] = []

    def misuse() -> None:
        try:
            poller.run()
        except RuntimeError:
            errors.append("run")
        try:
            poller.close()
        except RuntimeError:
            errors.append("close")
        if not poller.closed:
            poller.stop()

    poller.call_soon(misuse)
    _run_expecting_a_prompt_stop(poller)
    if poller.attached:
        # An attached poller may close while running (it is how a library detaches): its
        # run() returns, and the host's loop stays open.
        assert errors == ["run"]
        assert poller.closed
    else:
        assert errors == ["run", "close"]
        assert not poller.closed
