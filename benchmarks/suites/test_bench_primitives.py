"""The poller's own primitives, measured in-process with pytest-benchmark for every variant.

- ``register``: register READ, modify to READ|WRITE, modify back to READ, unregister,
  on one socket of a socketpair (four calls per op).
- ``call_later``: schedule 100 zero-delay timers, then `run` until the last one
  stops the poller (100 timers scheduled and dispatched per op, plus one run/stop).
- ``wakeup``: with the poller blocked in its wait on another thread, another
  thread's `call_soon_threadsafe` until the callback has run (one wake-up per op).

These run under the interpreter that runs pytest (not ``--server-python``), with
the test's threads pinned to the server CPU (so the wake-up is measured on one
CPU, not as a cross-CPU interrupt whose cost depends on where the threads land).
The operations are counted, so a backend that skips a callback fails the test.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any, Callable, Iterator, List

import pytest

import pollers
from pollers import Events, Poller

from .conftest import settings

TIMERS_PER_OP = 100
WAKEUP_TIMEOUT = 5.0


@pytest.fixture
def pinned(pytestconfig: pytest.Config) -> Iterator[None]:
    """Pin the calling thread (and the threads it starts) to the server CPU for the test."""
    cpus = settings(pytestconfig).server_cpu
    if cpus is None or not hasattr(os, "sched_setaffinity"):
        yield
        return
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cpus))
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


@pytest.fixture
def poller(variant_name: str, pinned: None) -> Iterator[Poller]:
    instance = pollers.create(variant_name)
    try:
        yield instance
    finally:
        instance.close()


def _pedantic(benchmark: Any, pytestconfig: pytest.Config, variant_name: str, group: str,
              operation: Callable[[], None]) -> None:
    """Time ``operation`` with rounds and iterations sized to the configured duration."""
    duration = settings(pytestconfig).duration
    started = time.perf_counter()
    calibration = 0
    while calibration < 1000 and time.perf_counter() - started < 0.05:
        operation()
        calibration += 1
    per_op = (time.perf_counter() - started) / calibration
    iterations = max(1, int(0.001 / per_op))  # rounds of about a millisecond
    rounds = max(5, min(100_000, int(duration / (per_op * iterations))))
    benchmark.group = group
    benchmark.pedantic(operation, rounds=rounds, iterations=iterations, warmup_rounds=1)
    benchmark.extra_info.update({"kind": "primitive", "case": group, "group": group,
                                 "target_kind": "variant", "target": variant_name})


def test_register_modify_unregister(benchmark: Any, pytestconfig: pytest.Config,
                                    poller: Poller, variant_name: str) -> None:
    left, right = socket.socketpair()
    calls: List[int] = []

    def handler(fd: Any, events: int) -> None:
        calls.append(events)

    def operation() -> None:
        poller.register(left, Events.READ, handler)
        poller.modify(left, Events.READ | Events.WRITE)
        poller.modify(left, Events.READ)
        poller.unregister(left)

    try:
        _pedantic(benchmark, pytestconfig, variant_name,
                  "primitive: register+modify+modify+unregister", operation)
        # The registrations were real: one more, and the writable socket is reported.
        def on_writable(fd: Any, events: int) -> None:
            calls.append(events)
            poller.stop()

        poller.register(left, Events.WRITE, on_writable)
        poller.call_later(WAKEUP_TIMEOUT, poller.stop)
        poller.run()
        assert calls and calls[-1] & Events.WRITE
    finally:
        poller.unregister(left)
        left.close()
        right.close()


def test_call_later(benchmark: Any, pytestconfig: pytest.Config, poller: Poller,
                    variant_name: str) -> None:
    fired: List[int] = [0]

    def tick() -> None:
        fired[0] += 1

    def operation() -> None:
        before = fired[0]
        for _ in range(TIMERS_PER_OP):
            poller.call_later(0, tick)
        poller.call_later(0, poller.stop)
        guard = poller.call_later(WAKEUP_TIMEOUT, poller.stop)
        poller.run()
        guard.cancel()
        assert fired[0] - before == TIMERS_PER_OP

    _pedantic(benchmark, pytestconfig, variant_name,
              f"primitive: {TIMERS_PER_OP} x call_later(0) + run", operation)


def test_call_soon_threadsafe_wakeup(benchmark: Any, pytestconfig: pytest.Config,
                                     poller: Poller, variant_name: str) -> None:
    ran = threading.Event()
    # A far timer keeps every backend blocked in its wait rather than returning at once.
    poller.call_later(3600, lambda: None)
    runner = threading.Thread(target=poller.run, name=f"{variant_name} poller", daemon=True)
    runner.start()

    def operation() -> None:
        ran.clear()
        poller.call_soon_threadsafe(ran.set)
        assert ran.wait(WAKEUP_TIMEOUT), "call_soon_threadsafe did not wake the poller"

    try:
        operation()  # the loop is running before timing starts
        _pedantic(benchmark, pytestconfig, variant_name,
                  "primitive: call_soon_threadsafe wake-up", operation)
    finally:
        poller.call_soon_threadsafe(poller.stop)
        runner.join(WAKEUP_TIMEOUT)
    assert not runner.is_alive(), "the poller did not stop"
