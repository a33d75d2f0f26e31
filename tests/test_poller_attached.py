"""What only an attached poller promises (``docs/contract.md``, "Attached pollers").

Each test runs once per attached variant (``attached_variant``, from the registry;
``tests/hosts.py`` makes, drives and counts its host) and mostly lets the host
run its loop the host's way, as the application around a library would; the
conformance suite already runs every other test on the attached variants through
their own ``run()``.
"""

from __future__ import annotations

import logging
import signal
import socket
from typing import Any, Iterator, List, Tuple

import pytest
from helpers import READ, WRITE, Recorder, Sockets
from hosts import HOSTS, HostSpec, drive

import pollers
from pollers import Poller

Attached = Tuple[str, HostSpec, Any, Poller]


@pytest.fixture
def attached(attached_name: str) -> Iterator[Attached]:
    """(variant, its host spec, a fresh host, a poller attached to it); all disposed of after."""
    spec = HOSTS[attached_name]
    host = spec.make()
    try:
        poller = pollers.attach(host)
        try:
            yield attached_name, spec, host, poller
        finally:
            poller.close()
    finally:
        spec.dispose(host)


def _readable_pair(sockets: Sockets) -> Tuple[socket.socket, socket.socket]:
    mine, peer = sockets.pair()
    peer.send(b"x")
    return mine, peer


def test_attach_names_the_variant_and_says_it_is_attached(attached: Attached) -> None:
    name, _, _, poller = attached
    assert poller.name == name
    assert poller.attached


def test_the_hosts_neighbouring_handlers_survive_close(attached: Attached) -> None:
    name, spec, host, poller = attached
    with Sockets() as sockets:
        host_socket, host_peer = sockets.pair()
        host_reads: List[bytes] = []
        remove = spec.add_reader(host, host_socket, lambda: host_reads.append(host_socket.recv(10)))
        try:
            for interest in (READ, WRITE, READ | WRITE):
                mine, _ = _readable_pair(sockets)
                poller.register(mine, interest, Recorder())
            host_peer.send(b"before")
            drive(name, host, lambda: host_reads == [b"before"])
            poller.close()
            host_peer.send(b"after")
            drive(name, host, lambda: host_reads == [b"before", b"after"])
        finally:
            remove()


def test_close_while_the_host_runs_leaves_nothing_registered(attached: Attached) -> None:
    name, spec, host, poller = attached
    if "uvloop" in name:
        from hosts import COUNTS_UVLOOP

        if not COUNTS_UVLOOP:
            pytest.skip("uvloop's watched descriptors are counted through Linux's /proc")
    ran: List[str] = []
    closed: List[bool] = []
    with Sockets() as sockets:
        drive(name, host, lambda: True)  # the host's own descriptors, as it runs
        before = spec.watched(host)

        def attach_everything_then_close() -> None:
            for interest in (READ, WRITE, READ | WRITE, 0):
                mine, _ = _readable_pair(sockets)
                poller.register(mine, interest, lambda fd, events: ran.append("handler"))
            poller.call_later(0.05, ran.append, "timer")
            poller.call_soon(ran.append, "callback")
            poller.call_soon_threadsafe(ran.append, "threadsafe callback")
            assert spec.watched(host) > before or "uvloop" in name  # uvloop adds them lazily
            poller.close()
            closed.append(True)

        spec.call_soon(host, attach_everything_then_close)
        drive(name, host, lambda: bool(closed))
        waited: List[bool] = []
        spec.call_later(host, 0.15, lambda: waited.append(True))
        drive(name, host, lambda: bool(waited))  # past the timer's deadline
        assert spec.watched(host) == before
    assert ran == []


def test_a_raising_handler_reaches_dispatch_failed_not_the_hosts_crash_path(
    attached_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    spec = HOSTS[attached_name]
    host = spec.make()
    crashes: List[object] = []
    spec.record_crashes(host, crashes)  # before attaching, as an application sets it up
    poller = pollers.attach(host)
    try:
        with Sockets() as sockets, caplog.at_level(logging.ERROR, logger="pollers"):
            mine, _ = _readable_pair(sockets)

            def boom(fd: object, events: int) -> None:
                raise ValueError("boom")

            poller.register(mine, READ, boom)
            drive(attached_name, host, lambda: not poller._registrations)
        assert crashes == []
        failures = [r for r in caplog.records if r.name == "pollers"]
        assert len(failures) == 1 and failures[0].exc_info is not None
        assert failures[0].exc_info[0] is ValueError
    finally:
        poller.close()
        spec.dispose(host)


def test_run_refuses_while_the_host_runs_the_loop(attached: Attached) -> None:
    name, spec, host, poller = attached
    errors: List[str] = []

    def try_run() -> None:
        try:
            poller.run()
        except RuntimeError as exc:
            errors.append(str(exc))

    spec.call_soon(host, try_run)
    drive(name, host, lambda: bool(errors))
    assert "the host runs this" in errors[0] and "when_stopped" in errors[0]
    assert not poller.closed


def test_stop_completes_when_stopped_and_leaves_the_host_running(attached: Attached) -> None:
    name, spec, host, poller = attached
    stopped = poller.when_stopped()
    assert not spec.notified(stopped)
    ticks: List[int] = []

    def tick() -> None:
        ticks.append(1)
        if len(ticks) < 5:
            spec.call_later(host, 0.01, tick)

    spec.call_soon(host, poller.stop)
    spec.call_soon(host, tick)
    drive(name, host, lambda: len(ticks) == 5)  # the host went on past stop()
    assert spec.notified(stopped)


def test_when_stopped_wakes_a_waiter_of_the_hosts_own_kind(attached: Attached) -> None:
    """An asyncio (or Tornado) coroutine awaiting the future, a Twisted coroutine awaiting
    the Deferred, a greenlet waiting on the gevent Event."""
    name, spec, host, poller = attached
    done: List[str] = []
    spec.wait_for_stop(host, poller.when_stopped(), lambda: done.append("stopped"))
    poller.call_later(0.02, poller.stop)
    drive(name, host, lambda: bool(done))


def test_close_completes_when_stopped(attached: Attached) -> None:
    _, spec, _, poller = attached
    stopped = poller.when_stopped()
    assert not spec.notified(stopped)
    poller.close()
    assert spec.notified(stopped)


def test_no_signal_handler_unless_asked(attached: Attached) -> None:
    poller = attached[3]
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    poller.call_soon(poller.stop)
    poller.run()
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers


@pytest.mark.parametrize("how", ["the host loop's", "signal.signal"])
def test_a_signal_the_host_handles_is_refused(attached: Attached, how: str) -> None:
    _, spec, host, poller = attached
    sig = signal.SIGUSR2

    def host_handler(*args: object) -> None: ...

    if how == "signal.signal":
        previous = signal.signal(sig, host_handler)

        def give_back() -> None:
            signal.signal(sig, previous)

    else:
        give_back = spec.claim_signal(host, sig, host_handler)
    try:
        installed = signal.getsignal(sig)
        with pytest.raises(RuntimeError, match="SIGUSR2"):
            poller.add_signal_handler(sig, poller.stop)
        poller.close()
        assert signal.getsignal(sig) is installed
    finally:
        give_back()


def test_close_puts_back_the_signal_disposition_it_replaced(attached: Attached) -> None:
    _, _, _, poller = attached
    sig = signal.SIGUSR2
    previous = signal.signal(sig, signal.SIG_IGN)
    try:
        poller.add_signal_handler(sig, poller.stop)
        assert signal.getsignal(sig) is not signal.SIG_IGN
        poller.close()
        assert signal.getsignal(sig) is signal.SIG_IGN
    finally:
        signal.signal(sig, previous)


def test_host_timers_and_callbacks_keep_running_after_close(attached: Attached) -> None:
    name, spec, host, poller = attached
    seen: List[str] = []
    poller.call_later(0.01, seen.append, "poller timer")
    drive(name, host, lambda: seen == ["poller timer"])
    spec.call_later(host, 0.05, lambda: seen.append("host timer"))
    poller.close()
    spec.call_soon(host, lambda: seen.append("host callback"))
    drive(name, host, lambda: len(seen) == 3)
    assert seen == ["poller timer", "host callback", "host timer"]


def test_an_owned_poller_has_no_when_stopped() -> None:
    with pollers.create("selectors") as owned:
        assert not owned.attached
        with pytest.raises(TypeError, match="attached"):
            owned.when_stopped()


def test_attach_refuses_what_is_not_a_loop_naming_what_it_takes() -> None:
    with pytest.raises(TypeError, match="asyncio event loop") as refused:
        pollers.attach(object())
    assert "Tornado IOLoop" in str(refused.value)


def test_variants_list_only_owned_pollers() -> None:
    owned = {variant.name for variant in pollers.variants()}
    attached = {variant.name for variant in pollers.attached_variants()}
    assert not owned & attached
    assert {"asyncio-attached", "tornado-attached"} <= attached
    assert all(name.endswith("-attached") for name in attached)
