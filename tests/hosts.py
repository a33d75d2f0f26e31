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
import importlib
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

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
    #: The host's own API, as the application around an attached poller uses it:
    #: ``add_reader(host, sock, callback)`` watches ``sock`` for reading and returns
    #: the function that stops watching it;
    add_reader: Callable[[Any, socket.socket, Callable[[], None]], Callable[[], None]]
    #: ``call_later(host, delay, callback)``, a timer of the host's;
    call_later: Callable[[Any, float, Callable[[], None]], object]
    #: ``call_soon(host, callback)``, a callback of the host's, from its thread;
    call_soon: Callable[[Any, Callable[[], None]], None]
    #: ``record_crashes(host, into)``: route what reaches the host's crash path (an
    #: exception nothing handled: asyncio's exception handler, Twisted's logged
    #: failures, gevent's hub errors) into the list ``into``, for the test's duration;
    record_crashes: Callable[[Any, List[object]], None]
    #: ``claim_signal(host, sig, callback)``: the host handles ``sig`` its own way
    #: (``loop.add_signal_handler``...); returns the function that gives it back.
    claim_signal: Callable[[Any, int, Callable[[], None]], Callable[[], None]]
    #: ``notified(when_stopped)``: whether the poller's ``when_stopped()`` notification (a
    #: future, a ``Deferred``, a gevent ``Event``) is complete, with no error.
    notified: Callable[[Any], bool] = lambda future: future.done() and future.result() is None
    #: ``wait_for_stop(host, when_stopped, callback)``: a waiter of the host's own kind (a
    #: coroutine on the loop, a Twisted coroutine, a greenlet) waits for the poller's
    #: ``when_stopped()`` and then calls ``callback()``;
    wait_for_stop: Callable[[Any, Any, Callable[[], None]], None] = lambda host, future, callback: (
        _asyncio_wait_for_stop(host, future, callback)
    )
    #: ``run_on_this_thread(poller)``: ``poller.run()`` on a thread other than the one that
    #: made the host (the in-process echo server tests run it so), for a host bound to its
    #: thread (a gevent hub); it closes the poller and disposes of the host as it returns.
    #: None: ``poller.run()`` is all it takes.
    run_on_this_thread: Optional[Callable[[Any], None]] = None


def _asyncio_wait_for_stop(host: Any, future: Any, callback: Callable[[], None]) -> None:
    async def waiter() -> None:
        await future
        callback()

    loop = getattr(host, "asyncio_loop", host)  # an IOLoop's asyncio loop, or the loop
    loop.create_task(waiter())


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


def _asyncio_add_reader(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, callback: Callable[[], None]
) -> Callable[[], None]:
    fd = sock.fileno()
    loop.add_reader(fd, callback)

    def remove() -> None:
        loop.remove_reader(fd)

    return remove


def _asyncio_call_later(
    loop: asyncio.AbstractEventLoop, delay: float, callback: Callable[[], None]
) -> object:
    return loop.call_later(delay, callback)


def _asyncio_call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    loop.call_soon(callback)


def _asyncio_record_crashes(loop: asyncio.AbstractEventLoop, into: List[object]) -> None:
    loop.set_exception_handler(lambda _loop, context: into.append(context))


def _asyncio_claim_signal(
    loop: asyncio.AbstractEventLoop, sig: int, callback: Callable[[], None]
) -> Callable[[], None]:
    loop.add_signal_handler(sig, callback)

    def give_back() -> None:
        loop.remove_signal_handler(sig)

    return give_back


# -- Tornado ----------------------------------------------------------------


def _new_ioloop(make_loop: Callable[[], asyncio.AbstractEventLoop]) -> Callable[[], Any]:
    def make() -> Any:
        from tornado.platform.asyncio import AsyncIOLoop

        return AsyncIOLoop(asyncio_loop=make_loop(), make_current=False)

    return make


def _drive_by_checking(
    until: Callable[[], bool],
    timeout: float,
    call_soon: Callable[[Callable[[], None]], object],
    call_later: Callable[[float, Callable[[], None]], object],
    start: Callable[[], None],
    stop: Callable[[], None],
) -> bool:
    """Run a host with ``start()`` until a check of the test's (first on the host's
    ``call_soon``, then every `POLL_INTERVAL` on its ``call_later``) sees ``until()``
    hold (True) or the time run out (False), and calls ``stop()``."""
    deadline = time.monotonic() + timeout
    held = [False]

    def check() -> None:
        if until():
            held[0] = True
            stop()
        elif time.monotonic() >= deadline:
            stop()
        else:
            call_later(POLL_INTERVAL, check)

    call_soon(check)
    start()
    return held[0]


def _drive_tornado(ioloop: Any, until: Callable[[], bool], timeout: float) -> bool:
    """As a Tornado application does: ``IOLoop.start()``, stopped from a check of its own."""
    return _drive_by_checking(
        until, timeout, ioloop.add_callback, ioloop.call_later, ioloop.start, ioloop.stop
    )


def _tornado_watched(ioloop: Any) -> int:
    return len(ioloop.handlers) + _asyncio_watched(ioloop.asyncio_loop)


def _close_ioloop(ioloop: Any) -> None:
    ioloop.close(all_fds=False)  # closes its asyncio loop too


def _tornado_add_reader(
    ioloop: Any, sock: socket.socket, callback: Callable[[], None]
) -> Callable[[], None]:
    fd = sock.fileno()
    ioloop.add_handler(fd, lambda _fd, _events: callback(), ioloop.READ)

    def remove() -> None:
        ioloop.remove_handler(fd)

    return remove


def _tornado_call_later(ioloop: Any, delay: float, callback: Callable[[], None]) -> object:
    return ioloop.call_later(delay, callback)


def _tornado_call_soon(ioloop: Any, callback: Callable[[], None]) -> None:
    ioloop.add_callback(callback)


def _tornado_record_crashes(ioloop: Any, into: List[object]) -> None:
    # Tornado's handlers and callbacks run as asyncio handles: an exception that
    # escapes them reaches the asyncio loop's exception handler.
    _asyncio_record_crashes(ioloop.asyncio_loop, into)


def _tornado_claim_signal(
    ioloop: Any, sig: int, callback: Callable[[], None]
) -> Callable[[], None]:
    return _asyncio_claim_signal(ioloop.asyncio_loop, sig, callback)


# -- Twisted ----------------------------------------------------------------


def _new_reactor(kind: str) -> Callable[[], Any]:
    """A fresh reactor instance of ``kind``, as Twisted's own ReactorBuilder tests make them
    (the global ``twisted.internet.reactor`` is not installed or touched)."""

    def make() -> Any:
        from pollers.twisted_poller import REACTOR_CLASSES

        module, name = REACTOR_CLASSES[kind]
        return getattr(importlib.import_module(f"twisted.internet.{module}"), name)()

    return make


def _drive_twisted(reactor: Any, until: Callable[[], bool], timeout: float) -> bool:
    """As a Twisted application does: ``reactor.run()``. A check of the test's ends it with
    ``reactor.crash()``, which (unlike ``stop()``) fires no shutdown, so the next test step
    can run the reactor again, as trial once did."""
    return _drive_by_checking(
        until,
        timeout,
        lambda check: reactor.callLater(0, check),
        reactor.callLater,
        lambda: reactor.run(installSignalHandlers=False),
        reactor.crash,
    )


def _twisted_watched(reactor: Any) -> int:
    return len(reactor.getReaders()) + len(reactor.getWriters())


def _dispose_reactor(reactor: Any) -> None:
    observer = getattr(reactor, "_pollers_test_observer", None)
    if observer is not None:
        from twisted.logger import globalLogPublisher

        globalLogPublisher.removeObserver(observer)
    waker = reactor.waker
    if waker is not None:
        reactor.removeReader(waker)
        waker.connectionLost(None)
        reactor.waker = None
    for name in ("_poller", "_kq"):
        kernel_object = getattr(reactor, name, None)
        if kernel_object is not None and hasattr(kernel_object, "close"):
            kernel_object.close()


class _HostReader:
    """A host's own ``IReadDescriptor``, as a Twisted protocol's transport is one."""

    def __init__(self, sock: socket.socket, callback: Callable[[], None]) -> None:
        self._fd = sock.fileno()
        self._callback = callback

    def fileno(self) -> int:
        return self._fd

    def doRead(self) -> None:
        self._callback()

    def connectionLost(self, reason: object) -> None: ...

    def logPrefix(self) -> str:
        return "host"


def _twisted_add_reader(
    reactor: Any, sock: socket.socket, callback: Callable[[], None]
) -> Callable[[], None]:
    reader = _HostReader(sock, callback)
    reactor.addReader(reader)

    def remove() -> None:
        reactor.removeReader(reader)

    return remove


def _twisted_call_later(reactor: Any, delay: float, callback: Callable[[], None]) -> object:
    return reactor.callLater(delay, callback)


def _twisted_call_soon(reactor: Any, callback: Callable[[], None]) -> None:
    reactor.callLater(0, callback)


def _twisted_record_crashes(reactor: Any, into: List[object]) -> None:
    """What Twisted logs as a failure (an exception that escaped a ``doRead``, a timed call)."""
    from twisted.logger import globalLogPublisher

    def observer(event: Dict[str, Any]) -> None:
        if event.get("log_failure") is not None:
            into.append(event)

    globalLogPublisher.addObserver(observer)  # type: ignore[arg-type]  # a plain callable
    reactor._pollers_test_observer = observer  # removed by _dispose_reactor


def _twisted_claim_signal(
    reactor: Any, sig: int, callback: Callable[[], None]
) -> Callable[[], None]:
    """As twistd and ``reactor.run()`` do: ``signal.signal``, its handler passing on to the
    reactor."""
    previous = signal.signal(sig, lambda signum, frame: reactor.callFromThread(callback))

    def give_back() -> None:
        signal.signal(sig, previous)

    return give_back


def _twisted_wait_for_stop(reactor: Any, deferred: Any, callback: Callable[[], None]) -> None:
    from twisted.internet.defer import ensureDeferred

    async def waiter() -> None:
        await deferred
        callback()

    ensureDeferred(waiter())


def _deferred_called(deferred: Any) -> bool:
    return bool(deferred.called)


# -- gevent -----------------------------------------------------------------


def _new_hub(kind: str) -> Callable[[], Any]:
    """A fresh hub of this thread over a new loop of ``kind`` (``libev``, ``libuv``), as an
    application gets from ``gevent.get_hub()`` with ``GEVENT_LOOP`` set."""

    def make() -> Any:
        from gevent._hub_local import set_hub
        from gevent.hub import Hub

        from pollers.gevent_poller import _loop_class

        hub = Hub(loop=_loop_class(kind)(default=False))
        set_hub(hub)
        return hub

    return make


def _drive_gevent(hub: Any, until: Callable[[], bool], timeout: float) -> bool:
    """As a gevent application does: its greenlet sleeps (``gevent.sleep``, on this hub)
    while the hub runs the loop."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() >= deadline:
            return False
        with hub.loop.timer(POLL_INTERVAL) as timer:  # what gevent.sleep does, on this hub
            hub.wait(timer)
    return True


def _gevent_watched(hub: Any) -> int:
    """How many watchers of the hub's loop are active (io watchers, timers and the loop's
    own): libev's count, or libuv's active handles (gevent keeps no count for it)."""
    loop = hub.loop
    if hasattr(loop, "debug"):  # libuv
        return sum(1 for handle in loop.debug() if handle.active)
    return int(loop.activecnt)


def _dispose_hub(hub: Any) -> None:
    if hub.loop is not None:
        hub.destroy(destroy_loop=True)


def _gevent_add_reader(
    hub: Any, sock: socket.socket, callback: Callable[[], None]
) -> Callable[[], None]:
    watcher = hub.loop.io(sock.fileno(), 1)
    watcher.start(callback)

    def remove() -> None:
        watcher.stop()
        watcher.close()

    return remove


def _gevent_call_later(hub: Any, delay: float, callback: Callable[[], None]) -> object:
    # A watcher must be closed before it is dropped: libuv's handle would otherwise be
    # freed while still in the loop's list of handles.
    watcher = hub.loop.timer(delay)

    def fire() -> None:
        try:
            callback()
        finally:
            watcher.close()

    watcher.start(fire)
    return watcher


def _gevent_call_soon(hub: Any, callback: Callable[[], None]) -> None:
    hub.loop.run_callback(callback)


def _gevent_record_crashes(hub: Any, into: List[object]) -> None:
    """What reaches the hub's error handling (``Hub.handle_error``)."""

    def handle_error(context: object, kind: Any, value: Any, tb: Any) -> None:
        into.append((context, value))

    hub.handle_error = handle_error


def _gevent_claim_signal(hub: Any, sig: int, callback: Callable[[], None]) -> Callable[[], None]:
    """``gevent.signal_handler``: a signal watcher of the hub's loop."""
    watcher = hub.loop.signal(sig)
    watcher.start(callback)

    def give_back() -> None:
        watcher.stop()
        watcher.close()

    return give_back


def _gevent_wait_for_stop(hub: Any, event: Any, callback: Callable[[], None]) -> None:
    from gevent import Greenlet

    def waiter() -> None:
        event.wait()
        callback()

    greenlet = Greenlet(waiter)
    greenlet.parent = hub  # a greenlet of this hub, whether or not it is the thread's
    hub.loop.run_callback(greenlet.switch)


def _gevent_run_on_this_thread(poller: Any) -> None:
    """Hand the host hub, not started yet, to this thread, as an application that makes its
    hub in one thread and runs it in another would have made it there: the hub's parent
    becomes this thread's main greenlet. The hub is destroyed here, in the thread that ran
    it, after the poller is closed."""
    from gevent import getcurrent
    from gevent._hub_local import set_hub

    hub = poller._hub  # the host the poller was attached to
    if hub:  # started: bound to the thread that ran it
        raise RuntimeError(f"{poller.name}: the host hub already runs on another thread")
    hub.parent = getcurrent()
    hub.thread_ident = threading.get_ident()
    set_hub(hub)
    try:
        poller.run()
    finally:
        poller.close()
        hub.destroy(destroy_loop=True)


def _event_set(event: Any) -> bool:
    return bool(event.is_set())


#: Attached variant name -> how the tests make and drive its host.
HOSTS: Dict[str, HostSpec] = {}
for _kind, _make in (("asyncio", _new_asyncio_loop), ("uvloop", _new_uvloop_loop)):
    _suffix = "" if _kind == "asyncio" else f"-{_kind}"
    HOSTS[f"asyncio{_suffix}-attached"] = HostSpec(
        make=_make,
        drive=_drive_asyncio,
        watched=_asyncio_watched,
        dispose=_close_asyncio,
        add_reader=_asyncio_add_reader,
        call_later=_asyncio_call_later,
        call_soon=_asyncio_call_soon,
        record_crashes=_asyncio_record_crashes,
        claim_signal=_asyncio_claim_signal,
    )
    HOSTS[f"tornado{_suffix}-attached"] = HostSpec(
        make=_new_ioloop(_make),
        drive=_drive_tornado,
        watched=_tornado_watched,
        dispose=_close_ioloop,
        add_reader=_tornado_add_reader,
        call_later=_tornado_call_later,
        call_soon=_tornado_call_soon,
        record_crashes=_tornado_record_crashes,
        claim_signal=_tornado_claim_signal,
    )

for _kind in ("epoll", "poll", "select", "kqueue"):
    HOSTS[f"twisted-{_kind}-attached"] = HostSpec(
        make=_new_reactor(_kind),
        drive=_drive_twisted,
        watched=_twisted_watched,
        dispose=_dispose_reactor,
        add_reader=_twisted_add_reader,
        call_later=_twisted_call_later,
        call_soon=_twisted_call_soon,
        record_crashes=_twisted_record_crashes,
        claim_signal=_twisted_claim_signal,
        notified=_deferred_called,
        wait_for_stop=_twisted_wait_for_stop,
    )

for _kind in ("libev", "libuv"):
    HOSTS[f"gevent-{_kind}-attached"] = HostSpec(
        make=_new_hub(_kind),
        drive=_drive_gevent,
        watched=_gevent_watched,
        dispose=_dispose_hub,
        add_reader=_gevent_add_reader,
        call_later=_gevent_call_later,
        call_soon=_gevent_call_soon,
        record_crashes=_gevent_record_crashes,
        claim_signal=_gevent_claim_signal,
        notified=_event_set,
        wait_for_stop=_gevent_wait_for_stop,
        run_on_this_thread=_gevent_run_on_this_thread,
    )

#: Whether `HostSpec.watched` can count on this platform (uvloop's count reads /proc).
COUNTS_UVLOOP = sys.platform.startswith("linux") and os.path.isdir("/proc/self/fdinfo")
