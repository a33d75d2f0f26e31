"""`AttachedTwistedPoller`: a poller on a Twisted reactor the application owns (`pollers.attach`).

The host is any ``IReactorFDSet`` and ``IReactorTime`` provider, the global
``twisted.internet.reactor`` included. The poller's descriptors are `_Descriptor`
objects added with ``addReader``/``addWriter``, as on the owned Twisted pollers;
everything else goes through the reactor's own calls:

- timers: the poller's timer heap (equal deadlines keep their order) behind one
  ``callLater`` armed for its earliest deadline;
- `call_soon`: a queue of the poller's own behind one ``callLater(0)``, because the
  reactor does not promise to run calls due at the same time in the order they were
  made; a callback queued by a callback runs on the next pass, after the reactor has
  polled, as on asyncio;
- `call_soon_threadsafe`: ``callFromThread``, which wakes the reactor;
- signals, only when asked: ``signal.signal`` with a handler that goes through
  ``callFromThread``, refused for a signal the host handles already (twistd's, or
  ``reactor.run()``'s SIGINT/SIGTERM handling).

While the host runs the reactor (``reactor.run()``, twistd), the poller dispatches
on it and `run` refuses. On a reactor that is not running, `run` drives it pass by
pass as ``reactor.iterate()`` does (``doIteration`` then ``runUntilCurrent``) until
`stop`; it never calls ``reactor.run()`` or ``reactor.stop()``, which fire the
reactor's startup and shutdown events (the shutdown disconnects every connection of
the host's) and leave it unable to run again.

A descriptor registered while the poller dispatches a batch of the reactor's events
receives events only from the next batch (the events of the batch were fetched for an
earlier holder of its number). The poller knows a batch has begun when one of its own
descriptors is called; a registration made from a *host* descriptor's ``doRead``
earlier in the same batch is not held back, so if the host closed a descriptor and
the number was reused in that batch, the new registration can see one stale event
(a spurious readiness, which the contract's handlers already tolerate).
"""

from __future__ import annotations

import signal
import sys
from typing import Any, Optional, Tuple

from .attached import ScheduledAttachedPoller
from .base import Callback, Poller
from .twisted_poller import REACTOR_CLASSES, _Descriptor, _TwistedFDSet


class _AttachedDescriptor(_Descriptor):
    """A `_Descriptor` that tells its poller a batch of the reactor's events has begun."""

    __slots__ = ()

    def doRead(self) -> None:
        if not self.poller._dispatching:
            self.poller._batch_began()  # type: ignore[attr-defined]
        _Descriptor.doRead(self)

    def doWrite(self) -> None:
        if not self.poller._dispatching:
            self.poller._batch_began()  # type: ignore[attr-defined]
        _Descriptor.doWrite(self)


def reactor_kind(reactor: Any) -> Optional[str]:
    """The reactor's kind (``epoll``, ``poll``, ``select``, ``kqueue``, ``asyncio``), from
    the classes already imported; None for another ``IReactorFDSet`` provider."""
    for kind, (module_name, class_name) in REACTOR_CLASSES.items():
        module = sys.modules.get(f"twisted.internet.{module_name}")
        if module is not None and isinstance(reactor, getattr(module, class_name)):
            return kind
    return None


class AttachedTwistedPoller(ScheduledAttachedPoller, _TwistedFDSet):
    """A `Poller` on the caller's Twisted reactor; see the module docstring."""

    _descriptor_class = _AttachedDescriptor
    _host_noun = "this reactor"

    def __init__(self, reactor: Any) -> None:
        super().__init__()
        from twisted.internet.defer import Deferred

        self._init_fdset(reactor, reactor_kind(reactor) or "reactor")
        self.name = f"{self.name}-attached"
        self._stopped: Any = Deferred()
        self._stopping = False

    def _host_runs(self) -> bool:
        reactor = self._reactor
        return bool(getattr(reactor, "running", False) or getattr(reactor, "_started", False))

    # -- batches -----------------------------------------------------------

    def _batch_began(self) -> None:
        """One of our descriptors is called while the host runs the reactor: a batch is
        being dispatched, which ends before the reactor runs its timed calls."""
        self._dispatching = True
        self._reactor.callLater(0, self._batch_ended)

    def _batch_ended(self) -> None:
        if self._dispatching and not self._running:
            self._end_batch()
            self._raise_escaped()  # a handler's SystemExit...: the host's to handle

    # -- callbacks and timers ----------------------------------------------

    def call_soon_threadsafe(self, callback: Callback, *args: Any) -> None:
        self._check_usable()
        self._reactor.callFromThread(self._run_if_open, callback, args)

    def _host_call_raised(self, exc: BaseException) -> None:
        """The reactor would log and swallow ``exc`` (not an Exception: KeyboardInterrupt
        from the default SIGINT handler), so a `run` in progress keeps it and raises it
        once ``runUntilCurrent`` returns. While the host runs the reactor, it is the
        host's to handle."""
        if not self._running:
            raise exc
        self._escaped = exc

    def _schedule(self, delay: float, callback: Callback) -> Any:
        return self._reactor.callLater(delay, callback)

    def _unschedule(self, handle: Any) -> None:
        if handle.active():
            handle.cancel()

    def _release_host_calls(self) -> None:
        super()._release_host_calls()
        self._fresh.clear()

    # -- signals -----------------------------------------------------------

    def _backend_add_signal_handler(
        self, sig: int, callback: Callback, args: Tuple[Any, ...]
    ) -> None:
        self._take_signal(sig)
        call_from_thread = self._reactor.callFromThread
        run_if_open = self._run_if_open

        def on_signal(signum: int, frame: Any) -> None:
            # callFromThread also wakes a reactor blocked in its poll.
            call_from_thread(run_if_open, callback, args)

        signal.signal(sig, on_signal)

    # -- running -----------------------------------------------------------

    def _run_host(self, one_pass: bool) -> None:
        reactor = self._reactor
        self._stopping = one_pass
        try:
            while not self._closed:
                timeout = 0.0 if self._stopping else reactor.timeout()
                self._dispatching = True
                reactor.doIteration(timeout)
                self._end_batch()
                self._raise_escaped()
                reactor.runUntilCurrent()
                self._raise_escaped()
                if self._stopping:
                    break
        finally:
            self._stopping = False
            self._dispatching = False

    def _end_run(self) -> None:
        self._stopping = True

    def _complete_stopped(self) -> None:
        if not self._stopped.called:
            self._stopped.callback(None)


def attach_twisted(host: object, **options: Any) -> Optional[Poller]:
    """An `AttachedTwistedPoller` if ``host`` is a Twisted reactor, else None."""
    interfaces = sys.modules.get("twisted.internet.interfaces")  # not imported: not a reactor
    if interfaces is None:
        return None
    if not (interfaces.IReactorFDSet.providedBy(host) and interfaces.IReactorTime.providedBy(host)):
        return None
    if options:
        raise TypeError(f"attaching to a Twisted reactor takes no options, got {sorted(options)}")
    if reactor_kind(host) == "asyncio":
        raise TypeError(
            "the asyncio reactor runs on an asyncio loop: attach that loop instead, "
            "pollers.attach(asyncio.get_event_loop())"
        )
    return AttachedTwistedPoller(host)
