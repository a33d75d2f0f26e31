"""Shared parts of the backends that drive their own loop one pass at a time (the
selectors family, Twisted's poll-like reactors, gevent's loops).

Their `call_soon` queues on a deque, `_ready`, that the run loop empties once
per pass: the callbacks queued when the pass starts running them run, then the
due timers of our own heap (read before every wait, so a new first deadline
needs no action), and what either of them queues waits for the next pass, as on
asyncio. `call_soon_threadsafe` queues the same way and then wakes the wait
through the backend's `_wake`. Signals, by default, go through
`signal.set_wakeup_fd` on the descriptor `_signal_wakeup_fd` names, with a
Python-level handler that queues the callback; `close` puts back what was there.
"""

from __future__ import annotations

import abc
import collections
import signal
from typing import Any, Deque, Dict, Optional, Tuple

from .base import Callback, Poller


class SelfDrivenPoller(Poller):
    """A `Poller` whose `_backend_run` loops itself and runs `_ready` once per pass."""

    def __init__(self) -> None:
        super().__init__()
        #: What `call_soon` queued (and signal handlers): (callback, args), run in order.
        self._ready: Deque[Tuple[Callback, Tuple[Any, ...]]] = collections.deque()
        #: Set by `stop`: the run loop breaks at the end of the pass (and does not wait).
        self._stopping = False
        #: `signal.set_wakeup_fd`'s previous descriptor, once we have set ours.
        self._old_wakeup_fd: Optional[int] = None
        #: Signal number -> the handler it had before our first handler for it.
        self._old_signal_handlers: Dict[int, Any] = {}

    @abc.abstractmethod
    def _wake(self) -> None:
        """End a wait that is blocked now or about to be (from any thread); after
        `close` it must do nothing."""

    def _signal_wakeup_fd(self) -> int:
        """The descriptor the C-level signal handler writes to, so that a blocked wait
        returns (needed only by the default `_backend_add_signal_handler`)."""
        raise NotImplementedError(f"{type(self).__name__} handles signals itself")

    # -- callbacks ---------------------------------------------------------

    def call_soon(self, callback: Callback, *args: Any) -> None:
        self._check_usable()
        self._ready.append((callback, args))

    def call_soon_threadsafe(self, callback: Callback, *args: Any) -> None:
        self._check_usable()
        self._ready.append((callback, args))  # deque.append is atomic
        self._wake()

    def _backend_first_deadline_changed(self, when: float) -> None:
        pass  # the loop reads the heap before every wait

    def _backend_add_signal_handler(
        self, sig: int, callback: Callback, args: Tuple[Any, ...]
    ) -> None:
        if self._old_wakeup_fd is None:
            # The C-level handler writes the signal number here, so a blocked
            # wait returns and the Python-level handler below gets to run.
            self._old_wakeup_fd = signal.set_wakeup_fd(
                self._signal_wakeup_fd(), warn_on_full_buffer=False
            )
        ready = self._ready

        def on_signal(signum: int, frame: Any) -> None:
            ready.append((callback, args))

        previous = signal.signal(sig, on_signal)
        self._old_signal_handlers.setdefault(sig, previous)

    # -- running -----------------------------------------------------------

    def _end_pass(self) -> bool:
        """The end of a pass of the run loop: run the callbacks queued so far, then
        the timers due now; True if the loop is to stop."""
        ready = self._ready
        run_callback = self._run_callback
        for _ in range(len(ready)):
            callback, args = ready.popleft()
            run_callback(callback, args)
        if self._timers:
            self._run_due_timers()
        return self._stopping

    def stop(self) -> None:
        self._check_usable()
        self._stopping = True

    def _close_queue_and_signals(self) -> None:
        """For `_backend_close`: drop the queued callbacks, and put back the wakeup
        descriptor and the Python-level handlers that were there before ours."""
        if self._old_wakeup_fd is not None:
            signal.set_wakeup_fd(self._old_wakeup_fd)
        for sig, previous in self._old_signal_handlers.items():
            if previous is not None:  # None: installed from C, which Python cannot restore
                signal.signal(sig, previous)
        self._ready.clear()
