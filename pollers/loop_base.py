"""Shared parts of the backends that sit on an asyncio event loop (asyncio, Tornado, and
Twisted's asyncio reactor).

Those loops bring their own timers, but asyncio does not promise that timers
with equal deadlines run in the order they were scheduled. So these backends
keep our `TimerQueue` and arm a single loop timer for its earliest deadline
(`pollers.base.HostTimerPoller`).

`LoopBackedPoller` does the rest the asyncio loop's way (callbacks through
``call_soon``, the timer through ``call_later``, `run` as ``run_forever``, `stop`
as the loop's); a backend that reaches the loop through another API (Tornado's
IOLoop) overrides those, and every backend says how it watches a descriptor.
"""

from __future__ import annotations

import abc
import asyncio
import signal
from typing import Any, Callable, Optional, Set, Tuple

from .attached import AttachedPoller
from .base import Callback, HostTimerPoller
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


class LoopBackedPoller(HostTimerPoller):
    """A `Poller` whose waiting is done by ``self._asyncio_loop``.

    A backend implements the descriptor hooks (``_backend_register``,
    ``_backend_modify``, ``_backend_unregister``) and ``_backend_close``.
    """

    def __init__(self, asyncio_loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._asyncio_loop = asyncio_loop
        # uvloop only listens for signals while it runs: one that arrives between
        # add_signal_handler() and run(), or between two runs, is dropped. So on
        # uvloop the handled signals stay blocked while the loop is not running
        # and are released (pending ones delivered) as the loop starts.
        self._holds_signals = loop_kind(asyncio_loop) == "uvloop"
        self._held_signals: Set[int] = set()

    def call_soon(self, callback: Callback, *args: Any) -> None:
        self._check_usable()
        self._asyncio_loop.call_soon(self._run_callback, callback, args)

    def call_soon_threadsafe(self, callback: Callback, *args: Any) -> None:
        self._check_usable()
        self._asyncio_loop.call_soon_threadsafe(self._run_callback, callback, args)

    def _schedule(self, delay: float, callback: Callback) -> Any:
        return self._asyncio_loop.call_later(delay, callback)

    def _unschedule(self, handle: Any) -> None:
        handle.cancel()

    def _backend_run(self) -> None:
        self._asyncio_loop.run_forever()

    def stop(self) -> None:
        self._check_usable()
        self._asyncio_loop.stop()

    def _on_timer(self) -> None:
        self._armed_handle = self._armed_for = None  # it has run: nothing to cancel
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


def loop_kind(asyncio_loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` for a uvloop loop, else ``asyncio`` (the variant names' loop part)."""
    return "uvloop" if type(asyncio_loop).__module__.startswith("uvloop") else "asyncio"


class AttachedLoopPoller(AttachedPoller, LoopBackedPoller):
    """The part of an attached poller common to the asyncio and Tornado families.

    The host (the application) owns ``self._asyncio_loop``: this poller adds its
    readers, writers, one timer and its callbacks to it, and `close` takes back
    exactly those, never closing, stopping or replacing the loop (`AttachedPoller`).
    Put first in the bases, before the owned class (``AttachedLoopPoller,
    AsyncioPoller``), whose descriptor handling it keeps.

    - `run` runs the loop the host's way (the owned class's ``_backend_run``) only
      while the host does not; a `run` in progress returns by ``_stop_loop``, the
      host's way to stop the loop.
    - `when_stopped` is a future of the host loop.
    - Signals are not held blocked between runs (the host's loop, not this poller,
      decides when it listens), and a signal the host's loop already handles
      (``add_signal_handler``) is refused too.
    """

    _host_noun = "this event loop"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        if self._asyncio_loop.is_closed():
            raise ValueError("cannot attach a poller to a closed event loop")
        self._holds_signals = False
        self._stopped = self._asyncio_loop.create_future()
        self.name = f"{self.name}-attached"

    # -- callbacks ---------------------------------------------------------

    def call_soon(self, callback: Callback, *args: Any) -> None:
        super().call_soon(self._run_if_open, callback, args)

    def call_soon_threadsafe(self, callback: Callback, *args: Any) -> None:
        super().call_soon_threadsafe(self._run_if_open, callback, args)

    def _release_host_calls(self) -> None:
        self._disarm()

    # -- signals -----------------------------------------------------------

    def _signal_holder(self, sig: int) -> Optional[str]:
        loop_table = getattr(self._asyncio_loop, "_signal_handlers", None) or {}
        if sig in loop_table:
            return f"the host loop's add_signal_handler ({loop_table[sig]!r})"
        owner = getattr(signal.getsignal(sig), "__self__", None)
        if isinstance(owner, asyncio.AbstractEventLoop) and owner.is_closed():
            return None  # left behind by a closed loop (uvloop's close does not restore it)
        return super()._signal_holder(sig)

    def _backend_add_signal_handler(
        self, sig: int, callback: Callback, args: Tuple[Any, ...]
    ) -> None:
        self._take_signal(sig)
        super()._backend_add_signal_handler(sig, callback, args)

    def _release_signal(self, sig: int) -> None:
        # asyncio then restores SIG_DFL, not SIG_IGN: `_give_back_signals` puts it back.
        self._asyncio_loop.remove_signal_handler(sig)

    # -- running -----------------------------------------------------------

    def _host_runs(self) -> bool:
        return self._asyncio_loop.is_running()

    def _run_host(self, one_pass: bool) -> None:
        if one_pass:
            # One pass, as on an owned poller. The loop's own stop() is called only
            # now, so a host that runs the loop first is not stopped.
            self._stop_loop()
        # The owned class's run (run_forever, IOLoop.start()): the host's own way.
        super(AttachedPoller, self)._backend_run()

    def _end_run(self) -> None:
        self._stop_loop()

    @abc.abstractmethod
    def _stop_loop(self) -> None:
        """The host's way to make the loop's run (started by ``_run_host``) return."""

    def _complete_stopped(self) -> None:
        if not self._stopped.done():
            try:
                self._stopped.set_result(None)
            except RuntimeError:
                pass  # the host closed its loop: no one can be awaiting the future
