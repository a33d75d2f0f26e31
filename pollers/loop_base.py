"""Shared parts of the backends that sit on an asyncio event loop (asyncio, Tornado, and
Twisted's asyncio reactor).

Those loops bring their own timers, but asyncio does not promise that timers
with equal deadlines run in the order they were scheduled. So these backends
keep our `TimerQueue` and arm a single loop timer for its earliest deadline.
"""

from __future__ import annotations

import abc
import asyncio
import signal
import time
from typing import Any, Callable, Optional, Set, Tuple

from .base import Callback, Poller
from .family import Option
from .kernel import forget_stale_entry, loop_selector

LOOP_KINDS = ("asyncio", "uvloop")
#: The ``loop=`` option of the families that sit on an asyncio event loop.
LOOP_OPTION = Option("loop", LOOP_KINDS, "asyncio", "event loop")
#: Where each loop runs, for the variant table.
LOOP_RUNS_ON = {"asyncio": "everywhere", "uvloop": "CPython with uvloop"}


def loop_unavailable_reason(kind: str) -> Optional[str]:
    """None if the event loop ``kind`` can be made here, else why not."""
    if kind == "asyncio":
        return None
    if kind == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError as exc:
            return f"uvloop is not installed ({exc}); pip install 'pollers[uvloop]' (CPython only)"
        return None
    return f"unknown loop {kind!r}; choose from {', '.join(LOOP_KINDS)}"


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """A new event loop of ``kind`` (``asyncio`` or ``uvloop``); ValueError if impossible."""
    reason = loop_unavailable_reason(kind)
    if reason is not None:
        raise ValueError(reason)
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class LoopBackedPoller(Poller):
    """A `Poller` whose waiting is done by ``self._asyncio_loop``."""

    def __init__(self, asyncio_loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._asyncio_loop = asyncio_loop
        self._armed_handle: Any = None
        self._armed_for: Optional[float] = None
        # uvloop only listens for signals while it runs: one that arrives between
        # add_signal_handler() and run(), or between two runs, is dropped. So on
        # uvloop the handled signals stay blocked while the loop is not running
        # and are released (pending ones delivered) as the loop starts.
        self._holds_signals = type(asyncio_loop).__module__.startswith("uvloop")
        self._held_signals: Set[int] = set()

    @abc.abstractmethod
    def _schedule(self, delay: float, callback: Callback) -> Any:
        """Ask the underlying loop to run ``callback()`` in ``delay`` seconds."""

    @abc.abstractmethod
    def _unschedule(self, handle: Any) -> None: ...

    def _backend_first_deadline_changed(self, when: float) -> None:
        self._arm(when)

    def _arm(self, when: Optional[float]) -> None:
        if when is None or (self._armed_for is not None and self._armed_for <= when):
            return
        if self._armed_handle is not None:
            self._unschedule(self._armed_handle)
        self._armed_for = when
        self._armed_handle = self._schedule(max(0.0, when - time.monotonic()), self._on_timer)

    def _on_timer(self) -> None:
        self._armed_handle = self._armed_for = None
        # Run the due timers behind the callbacks already queued, as asyncio itself
        # does; libuv (uvloop) would otherwise run them ahead of those callbacks.
        self._asyncio_loop.call_soon(self._on_timers_due)

    def _on_timers_due(self) -> None:
        if not self._closed:
            self._run_due_timers()
            self._arm(self._timers.first_deadline())

    def _add_forgetting_stale_entry(self, fd: int, add: Callable[[], object]) -> None:
        """Run ``add()``; on EEXIST drop the kernel's stale entry for ``fd`` and retry once.

        asyncio's own selector does not handle EEXIST (a dup of a closed descriptor
        kept its epoll entry, and the number now names that socket again).
        """
        try:
            add()
        except FileExistsError:
            if not forget_stale_entry(loop_selector(self._asyncio_loop), fd):
                raise
            add()

    def _backend_add_signal_handler(
        self, sig: int, callback: Callback, args: Tuple[Any, ...]
    ) -> None:
        self._asyncio_loop.add_signal_handler(sig, self._run_callback, callback, args)
        if self._holds_signals:
            self._held_signals.add(sig)
            if not self._running:
                signal.pthread_sigmask(signal.SIG_BLOCK, {sig})

    def run(self) -> None:
        held = self._held_signals
        if held:
            self._check_usable()
            self._asyncio_loop.call_soon(signal.pthread_sigmask, signal.SIG_UNBLOCK, held)
        try:
            super().run()
        finally:
            if held and not self._closed:
                signal.pthread_sigmask(signal.SIG_BLOCK, held)

    def close(self) -> None:
        held = self._held_signals
        super().close()
        if held and self._closed:
            # A held signal still pending was meant for the loop that is now gone:
            # consume it rather than let its default action run on unblocking.
            sigtimedwait = getattr(signal, "sigtimedwait", None)  # not on macOS
            if sigtimedwait is not None:
                for _ in range(len(held)):
                    if sigtimedwait(held, 0) is None:
                        break
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
            held.clear()
