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

import collections
import signal
import sys
import time
from typing import Any, Deque, Dict, Optional, Tuple

from .base import Callback, Poller, Registration
from .loop_base import _UNCLAIMED_HANDLERS
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


class AttachedTwistedPoller(_TwistedFDSet):
    """A `Poller` on the caller's Twisted reactor; see the module docstring."""

    _attached = True
    _descriptor_class = _AttachedDescriptor

    def __init__(self, reactor: Any) -> None:
        super().__init__()
        from twisted.internet.defer import Deferred

        self._init_fdset(reactor, reactor_kind(reactor) or "reactor")
        self.name = f"{self.name}-attached"
        #: What `call_soon` queued, run in order behind one ``callLater(0)``.
        self._ready: Deque[Tuple[Callback, Tuple[Any, ...]]] = collections.deque()
        self._ready_call: Any = None  # the pending callLater(0), if any
        self._timer_call: Any = None  # the callLater armed for the first deadline
        self._timer_for: Optional[float] = None
        self._stopped: Any = Deferred()
        self._stop_pending = False  # stop() before run(): that run makes one pass
        self._stopping = False
        #: Signal -> what `signal.getsignal` said before this poller took it.
        self._replaced_signals: Dict[int, Any] = {}

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

    def call_soon(self, callback: Callback, *args: Any) -> None:
        self._check_usable()
        self._ready.append((callback, args))
        if self._ready_call is None:
            self._ready_call = self._reactor.callLater(0, self._run_pass)

    def call_soon_threadsafe(self, callback: Callback, *args: Any) -> None:
        self._check_usable()
        self._reactor.callFromThread(self._run_if_open, callback, args)

    def _run_if_open(self, callback: Callback, args: Tuple[Any, ...]) -> None:
        if not self._closed:
            try:
                self._run_callback(callback, args)
            except BaseException as exc:
                self._escape_timed_call(exc)

    def _escape_timed_call(self, exc: BaseException) -> None:
        """A BaseException that is not an Exception (KeyboardInterrupt from the default
        SIGINT handler) left one of our timed calls: the reactor would log and swallow it,
        so a `run` in progress keeps it and raises it once ``runUntilCurrent`` returns.
        While the host runs the reactor, it is the host's to handle."""
        if not self._running:
            raise exc
        self._escaped = exc

    def _backend_first_deadline_changed(self, when: float) -> None:
        self._arm(when)

    def _arm(self, when: Optional[float]) -> None:
        if when is None or (self._timer_for is not None and self._timer_for <= when):
            return
        if self._timer_call is not None:
            self._timer_call.cancel()
        self._timer_for = when
        delay = max(0.0, when - time.monotonic())
        self._timer_call = self._reactor.callLater(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer_call = self._timer_for = None
        self._run_pass()

    def _run_pass(self) -> None:
        """The callbacks queued so far, then the due timers (what a pass of an owned
        poller ends with); from the ``callLater(0)`` or the timer's ``callLater``."""
        if self._ready_call is not None and self._ready_call.active():
            self._ready_call.cancel()
        self._ready_call = None
        if self._closed:
            return
        ready = self._ready
        run_callback = self._run_callback
        try:
            for _ in range(len(ready)):
                callback, args = ready.popleft()
                run_callback(callback, args)
            if self._timers and not self._closed:
                self._run_due_timers()
        except BaseException as exc:
            self._escape_timed_call(exc)
        finally:
            if not self._closed:
                self._arm(self._timers.first_deadline())
                if ready and self._ready_call is None:
                    self._ready_call = self._reactor.callLater(0, self._run_pass)

    # -- signals -----------------------------------------------------------

    def _backend_add_signal_handler(
        self, sig: int, callback: Callback, args: Tuple[Any, ...]
    ) -> None:
        if sig not in self._replaced_signals:
            current = signal.getsignal(sig)
            if current not in _UNCLAIMED_HANDLERS:
                raise RuntimeError(
                    f"{signal.Signals(sig).name} is already handled by {current!r}; an "
                    f"attached {self.name} poller does not take over a signal its host handles"
                )
            self._replaced_signals[sig] = current
        call_from_thread = self._reactor.callFromThread
        run_if_open = self._run_if_open

        def on_signal(signum: int, frame: Any) -> None:
            # callFromThread also wakes a reactor blocked in its poll.
            call_from_thread(run_if_open, callback, args)

        signal.signal(sig, on_signal)

    def _give_back_signals(self) -> None:
        for sig, replaced in self._replaced_signals.items():
            if replaced is not None:  # None: installed from C, which Python cannot restore
                signal.signal(sig, replaced)
        self._replaced_signals.clear()

    # -- running -----------------------------------------------------------

    def _backend_run(self) -> None:
        if self._host_runs():
            raise RuntimeError(
                f"the host runs this reactor, so the attached {self.name} poller is already "
                "dispatching on it; use poller.stop() and poller.when_stopped() instead of run()"
            )
        reactor = self._reactor
        self._stopping, self._stop_pending = self._stop_pending, False
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

    def stop(self) -> None:
        self._check_usable()
        if self._running:
            self._stopping = True
        elif not self._host_runs():
            self._stop_pending = True
        self._complete_stopped()

    def when_stopped(self) -> Any:
        """A ``Deferred``, called back (with None) at the first `stop` or `close`."""
        return self._stopped

    def _complete_stopped(self) -> None:
        if not self._stopped.called:
            self._stopped.callback(None)

    def close(self) -> None:
        if self._closed:
            return
        if not self._in_forked_child():  # in a child, the reactor's kernel objects are shared
            for call in (self._ready_call, self._timer_call):
                if call is not None and call.active():
                    call.cancel()
            self._ready_call = self._timer_call = self._timer_for = None
            self._ready.clear()
            self._fresh.clear()
            self._give_back_signals()
            self._stopping = True  # a run() in progress returns
            self._complete_stopped()
        super().close()

    def _backend_release(self, registration: Registration) -> None:
        """Take the registration's descriptor back from the host's reactor."""
        self._backend_unregister(registration)

    def _backend_close(self) -> None:
        """Nothing to release: the reactor is the host's."""


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
