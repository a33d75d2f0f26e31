"""The run loop of the backends that drive their own loop one pass at a time (the
selectors family, Twisted's poll-like reactors, gevent's loops), written once.

A pass: choose how long to wait (not at all if callbacks are queued or `stop`
was called, else until the first deadline of our timer heap, or without limit),
let the backend wait that long and dispatch what is ready (its `_wait`), raise a
handler's BaseException that the backend's loop kept (`Poller._escape`), then
end the pass (`_end_pass`); `run` returns after the pass in which `stop` was
called. A backend says only how it waits and dispatches, and how it wakes.

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
import time
from typing import Any, Deque, Dict, Optional, Tuple

from .base import Callback, Poller


class SelfDrivenPoller(Poller):
    """A `Poller` that runs its own passes; a backend implements `_wait` and `_wake`."""

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
    def _wait(self, timeout: Optional[float]) -> None:
        """Wait up to ``timeout`` seconds (None: no limit; 0.0: do not block) for
        the registered descriptors, and dispatch what is ready: each handler gets
        the ready events masked with its registration's current interest.

        A handler's Exception goes to `Poller._dispatch_failed`; its other
        BaseException either propagates or, where the backend's loop would swallow
        it, goes to `Poller._escape` (raised when this returns)."""

    def _end_batch(self) -> None:
        """Drop what a dispatch left behind; called when `run` ends, however it ends
        (also by an exception in the middle of a batch)."""

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

    def _backend_run(self) -> None:
        wait = self._wait
        ready = self._ready
        timers = self._timers
        monotonic = time.monotonic
        end_pass = self._end_pass
        try:
            while True:
                if ready or self._stopping:  # stop() before run(): one pass, no waiting
                    timeout: Optional[float] = 0.0
                else:
                    deadline = timers.first_deadline()
                    timeout = None if deadline is None else max(0.0, deadline - monotonic())
                wait(timeout)
                if self._escaped is not None:
                    self._raise_escaped()
                if end_pass():
                    break
        finally:
            self._stopping = False
            self._end_batch()

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
