"""What every attached poller (`pollers.attach`) does the same way, whatever its host.

An attached poller sits on a loop its caller owns (an asyncio loop, a Tornado
IOLoop, a Twisted reactor, a gevent hub) and keeps the contract of
"Attached pollers" in ``docs/contract.md``. `AttachedPoller` holds that contract
once; a host's module says only how its loop is asked:

- ``_host_runs()``: whether the host runs its loop now (then `run` refuses, and
  a `stop` before `run` is not kept for the next `run`);
- ``_run_host(one_pass)``: run the loop the host's way until `stop` (after one
  pass if ``one_pass``: `stop` came before `run`);
- ``_end_run()``: make a `run` in progress return;
- ``_complete_stopped()``: complete `when_stopped`'s notification (``_stopped``);
- ``_release_host_calls()``: `close` takes back its timer and queued callbacks;
- ``_signal_holder(sig)`` and ``_release_signal(sig)``: who in the host handles a
  signal already, and what besides ``signal.signal`` gives one back.

`close` gives back the descriptors (through ``_backend_unregister``), the timer
and callbacks, and the signals it took, ends a `run` in progress and completes
`when_stopped`; it never closes, stops or replaces the loop.

`ScheduledAttachedPoller` adds, for the hosts whose own timed calls do not keep
the order the contract needs (Twisted's ``callLater``, gevent's ``loop.timer``),
`call_soon` as a queue of the poller's own and the timer heap, both behind one
timed call of the host's (``_schedule``/``_unschedule``).
"""

from __future__ import annotations

import abc
import collections
import signal
from typing import Any, Deque, Dict, Optional, Tuple

from .base import Callback, HostTimerPoller, Poller, Registration

#: Signal handlers that are no one's: a host that has one of these has not claimed the signal.
UNCLAIMED_HANDLERS = (signal.SIG_DFL, signal.SIG_IGN, signal.default_int_handler, None)


class AttachedPoller(Poller):
    """The attached poller's contract; put first in the bases (``AttachedPoller, <the
    owned class>``) so that its `stop`, `close` and running come before the owned
    class's. See the module docstring for what a host implements."""

    _attached = True
    #: The host's loop in `run`'s refusal ("the host runs this event loop, so ...").
    _host_noun = "this loop"
    #: The host's notification for `when_stopped`, set by the subclass.
    _stopped: Any

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._stop_pending = False  # stop() before run(): that run makes one pass
        #: Signal -> what `signal.getsignal` said before this poller took it.
        self._replaced_signals: Dict[int, Any] = {}

    # -- what a host implements --------------------------------------------

    @abc.abstractmethod
    def _host_runs(self) -> bool:
        """True while the host runs its loop (so this poller already dispatches on it)."""

    @abc.abstractmethod
    def _run_host(self, one_pass: bool) -> None:
        """Run the host's loop the host's way until `stop` (one pass if ``one_pass``)."""

    @abc.abstractmethod
    def _end_run(self) -> None:
        """Make the `run` in progress return (from the loop's thread)."""

    @abc.abstractmethod
    def _complete_stopped(self) -> None:
        """Complete ``_stopped`` (once; later calls do nothing)."""

    def _release_host_calls(self) -> None:
        """`close`: take back the timer and the queued callbacks from the host."""

    def _signal_holder(self, sig: int) -> Optional[str]:
        """Who already handles ``sig`` in the host (None if no one does); this default
        sees what ``signal.signal`` installed."""
        current = signal.getsignal(sig)
        if current in UNCLAIMED_HANDLERS:
            return None
        return f"the handler {current!r} installed with signal.signal"

    def _release_signal(self, sig: int) -> None:
        """`close`: stop what handles ``sig`` for this poller in the host's loop, before
        the Python-level handler it replaced is put back."""

    # -- callbacks ---------------------------------------------------------

    def _run_if_open(self, callback: Callback, args: Tuple[Any, ...]) -> None:
        """Run a callback queued with the host, unless `close` has run since."""
        if not self._closed:
            try:
                self._run_callback(callback, args)
            except BaseException as exc:
                self._host_call_raised(exc)

    def _host_call_raised(self, exc: BaseException) -> None:
        """One of this poller's calls on the host (a queued callback, a timer) raised
        ``exc``, a BaseException that is not an Exception (KeyboardInterrupt from the
        default SIGINT handler, SystemExit): by default it leaves that call, to the
        host's handling."""
        raise exc

    # -- signals -----------------------------------------------------------

    def _take_signal(self, sig: int) -> None:
        """Refuse ``sig`` if the host handles it already; else note what to give back."""
        if sig in self._replaced_signals:
            return  # ours already
        holder = self._signal_holder(sig)
        if holder is not None:
            raise RuntimeError(
                f"{signal.Signals(sig).name} is already handled by {holder}; an attached "
                f"{self.name} poller does not take over a signal its host handles"
            )
        self._replaced_signals[sig] = signal.getsignal(sig)

    def _give_back_signals(self) -> None:
        for sig, replaced in self._replaced_signals.items():
            self._release_signal(sig)
            # None: installed from C, which Python cannot restore.
            if replaced is not None and signal.getsignal(sig) is not replaced:
                signal.signal(sig, replaced)
        self._replaced_signals.clear()

    # -- running -----------------------------------------------------------

    def _backend_run(self) -> None:
        if self._host_runs():
            raise RuntimeError(
                f"the host runs {self._host_noun}, so the attached {self.name} poller is "
                "already dispatching on it; use poller.stop() and poller.when_stopped() "
                "instead of run()"
            )
        one_pass, self._stop_pending = self._stop_pending, False
        self._run_host(one_pass)

    def stop(self) -> None:
        """Make a `run` in progress return, and complete `when_stopped`; never stops a
        loop the host runs. Before `run` (the host not running), that `run` makes one
        pass, as on an owned poller."""
        self._check_usable()
        if self._running:
            self._end_run()
        elif not self._host_runs():
            self._stop_pending = True
        self._complete_stopped()

    def when_stopped(self) -> Any:
        """The host's own notification, completed at the first `stop` or `close`; see
        `Poller.when_stopped`."""
        return self._stopped

    def close(self) -> None:
        if self._closed:
            return
        if not self._in_forked_child():  # in a child, the loop's kernel objects are shared
            self._release_host_calls()
            self._give_back_signals()
            if self._running:
                self._end_run()
            self._complete_stopped()
        super().close()

    def _backend_release(self, registration: Registration) -> None:
        """`close`: take the registration back from the host's loop."""
        self._backend_unregister(registration)

    def _backend_close(self) -> None:
        """Nothing to release: the loop is the host's."""


class ScheduledAttachedPoller(AttachedPoller, HostTimerPoller):
    """An attached poller whose `call_soon` queue and timer heap run behind timed calls of
    the host's: one zero-delay call while callbacks are queued (so a callback queued by
    a callback runs on the next pass, after the host has polled, as on asyncio) and one
    armed for the earliest deadline. A host implements `_schedule` and `_unschedule`."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        #: What `call_soon` queued, run in order behind the zero-delay call `_soon_call`.
        self._ready: Deque[Tuple[Callback, Tuple[Any, ...]]] = collections.deque()
        self._soon_call: Any = None

    def call_soon(self, callback: Callback, *args: Any) -> None:
        self._check_usable()
        self._ready.append((callback, args))
        if self._soon_call is None:
            self._soon_call = self._schedule(0.0, self._run_pass)

    def _on_timer(self) -> None:
        self._disarm()  # it has run, but a gevent timer must still be closed
        self._run_pass()

    def _run_pass(self) -> None:
        """The callbacks queued so far, then the due timers (what a pass of an owned
        poller ends with); from the zero-delay call or the deadline's."""
        soon = self._soon_call
        if soon is not None:
            self._soon_call = None
            self._unschedule(soon)
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
            self._host_call_raised(exc)
        finally:
            if not self._closed:
                self._arm(self._timers.first_deadline())
                if ready and self._soon_call is None:
                    self._soon_call = self._schedule(0.0, self._run_pass)

    def _release_host_calls(self) -> None:
        soon = self._soon_call
        if soon is not None:
            self._soon_call = None
            self._unschedule(soon)
        self._disarm()
        self._ready.clear()
