"""`AttachedGeventPoller`: a poller on the loop of a gevent hub the application runs
(`pollers.attach`).

The host is a gevent ``Hub`` (``gevent.get_hub()``) or its loop
(``gevent.get_hub().loop``, libev or libuv). The hub runs the loop whenever a
greenlet waits; the poller adds the loop's own watchers to it and nothing else:

- one ``loop.io`` watcher per registration with interest (READ and WRITE ready
  together arrive as one call with both bits), made anew when the interest changes,
  as on the owned gevent pollers;
- one ``loop.timer`` armed for the earliest deadline of the poller's timer heap
  (which keeps equal deadlines in order);
- `call_soon`: a queue of the poller's own behind one zero-delay ``loop.timer``,
  which the loop runs after it has polled, so that a callback queued by a callback
  runs on the next pass (``loop.run_callback`` would run it in the same pass);
- `call_soon_threadsafe`: ``loop.run_callback_threadsafe``, which wakes the loop;
- signals, only when asked: a ``loop.signal`` watcher (which wakes the loop whichever
  thread gets the signal), behind a ``signal.signal`` handler that `signal.getsignal`
  shows and `close` puts back; refused for a signal the host handles already,
  with Python's ``signal.signal`` or with a watcher of its loop
  (``gevent.signal_handler``), whose C-level handler `signal.getsignal` cannot see.

`run` refuses when called from the hub (a callback of the loop: the host runs the
loop) or from another thread than the hub's; from a greenlet it waits, the hub
running the loop meanwhile, until `stop`, which lets it return at the start of the
loop's next pass. `when_stopped` is a
``gevent.event.Event``. A handler's ``Exception`` goes through the contract's
handling; a ``BaseException`` that is not one (``SystemExit``, ``KeyboardInterrupt``)
is the hub's to handle, which raises it in the hub's parent greenlet (so out of a
`run` in progress there).
"""

from __future__ import annotations

import ctypes
import signal
import sys
import threading
from typing import Any, Dict, Optional, Tuple

from .attached import ScheduledAttachedPoller
from .base import Callback, Poller
from .gevent_poller import LOOP_CLASSES, GeventWatchers


def _c_level_handler(sig: int) -> Optional[int]:
    """The address of the C-level handler of ``sig`` (``sigaction``), or None if unknown.

    ``sa_handler`` comes first in ``struct sigaction`` on Linux, the BSDs and macOS.
    """
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols, libc's sigaction among them
        sigaction = libc.sigaction
    except (OSError, AttributeError):
        return None
    buffer = ctypes.create_string_buffer(512)  # larger than any struct sigaction
    if sigaction(sig, None, buffer) != 0:
        return None
    return ctypes.c_void_p.from_buffer(buffer).value or 0


def loop_kind(loop: Any) -> Optional[str]:
    """``libev`` or ``libuv`` for a gevent loop of a module already imported, else None."""
    for kind, module_names in LOOP_CLASSES.items():
        for module_name in module_names:
            module = sys.modules.get(module_name)
            if module is not None and isinstance(loop, module.loop):
                return kind
    return None


class AttachedGeventPoller(GeventWatchers, ScheduledAttachedPoller):
    """A `Poller` on a gevent hub's loop; see the module docstring."""

    _host_noun = "this loop (this is one of its callbacks)"

    def __init__(self, hub: Any, kind: str) -> None:
        super().__init__()
        from gevent.event import Event

        if hub.loop is None:
            raise ValueError("cannot attach a poller to a destroyed gevent hub")
        self._hub = hub
        self._loop = hub.loop
        self.name = f"gevent-{kind}-attached"
        self._stopped = Event()
        self._run_waiter: Any = None  # the gevent Waiter a run() in progress waits on
        self._pass_watchers: Tuple[Any, ...] = ()  # the one pass of a stop() before run()
        #: Signal -> the loop's signal watcher for it.
        self._signal_watchers: Dict[int, Any] = {}

    # -- descriptors: `GeventWatchers`' ---------------------------------------

    def _escape(self, exc: BaseException) -> None:
        """A handler's BaseException is the hub's to handle (``Hub.handle_error`` raises
        it in the hub's parent greenlet): let it leave the watcher's callback."""
        raise exc

    # -- callbacks and timers ----------------------------------------------

    def call_soon_threadsafe(self, callback: Callback, *args: Any) -> None:
        self._check_usable()
        self._loop.run_callback_threadsafe(self._run_if_open, callback, args)

    def _schedule(self, delay: float, callback: Callback) -> Any:
        self._loop.update_now()  # libev measures ``after`` from its cached time
        # Whole milliseconds, rounded up: libuv counts in them, and a wait that ends
        # early only spins.
        timer = self._loop.timer(-(-delay // 1e-3) * 1e-3)
        timer.start(callback)
        return timer

    def _unschedule(self, timer: Any) -> None:
        # Closed, not only stopped: a libuv handle dropped unclosed stays in the loop's list.
        timer.stop()
        timer.close()

    def _release_host_calls(self) -> None:
        super()._release_host_calls()
        self._end_one_pass()

    # -- signals -----------------------------------------------------------

    def _signal_holder(self, sig: int) -> Optional[str]:
        holder = super()._signal_holder(sig)
        if holder is None and signal.getsignal(sig) in (signal.SIG_DFL, signal.SIG_IGN):
            c_handler = _c_level_handler(sig)
            if c_handler is not None and c_handler not in (signal.SIG_DFL, signal.SIG_IGN):
                return "a signal watcher of the loop (gevent.signal_handler)"
        return holder

    def _backend_add_signal_handler(
        self, sig: int, callback: Callback, args: Tuple[Any, ...]
    ) -> None:
        self._take_signal(sig)
        run_callback_threadsafe = self._loop.run_callback_threadsafe
        run_if_open = self._run_if_open

        def on_signal(*ignored: Any) -> None:
            run_callback_threadsafe(run_if_open, callback, args)

        # The Python-level handler first, so that signal.getsignal shows the signal taken
        # (and close() puts back what it shows); then the loop's own signal watcher, whose
        # C-level handler replaces Python's and wakes the loop on any thread's signal.
        signal.signal(sig, on_signal)
        self._release_signal(sig)
        watcher = self._loop.signal(sig)
        watcher.start(on_signal)
        self._signal_watchers[sig] = watcher

    def _release_signal(self, sig: int) -> None:
        watcher = self._signal_watchers.pop(sig, None)
        if watcher is not None:
            watcher.stop()  # the loop puts back SIG_DFL at the C level
            watcher.close()

    # -- running -----------------------------------------------------------

    def _host_runs(self) -> bool:
        from gevent import getcurrent

        return getcurrent() is self._hub

    def _run_host(self, one_pass: bool) -> None:
        from gevent.hub import Waiter

        if self._hub.thread_ident != threading.get_ident():
            raise RuntimeError(
                f"the attached {self.name} poller runs only on the thread of its hub: a gevent "
                "hub runs its loop on the thread that made it"
            )
        waiter = self._run_waiter = Waiter(hub=self._hub)
        # Until stop(), as on an owned poller, even with nothing to watch: the hub would
        # otherwise end its loop (LoopExit) once no referenced watcher is active.
        keep_running = self._loop.async_()
        keep_running.start(lambda: None)
        if one_pass:
            self._start_one_pass()
        try:
            waiter.get()  # the hub runs the loop until stop() switches back
        finally:
            self._run_waiter = None
            self._end_one_pass()
            keep_running.stop()
            keep_running.close()

    def _start_one_pass(self) -> None:
        """Return to `run` after one pass of the loop that polls without blocking: an idle
        watcher keeps the poll from blocking, a check watcher (which the loop runs after
        the poll) asks for the return, and the loop's next callbacks (before its next
        poll, after every event of this one) make it."""
        idle = self._loop.idle()
        idle.start(lambda: None)
        check = self._loop.check()
        check.start(self._one_pass_done)
        self._pass_watchers = (idle, check)

    def _one_pass_done(self) -> None:
        self._end_one_pass()
        self._loop.run_callback(self._return_from_run)

    def _end_one_pass(self) -> None:
        for watcher in self._pass_watchers:
            watcher.stop()
            watcher.close()
        self._pass_watchers = ()

    def _return_from_run(self) -> None:
        waiter = self._run_waiter
        if waiter is not None:
            self._run_waiter = None
            waiter.switch(None)

    def _end_run(self) -> None:
        # At the loop's next callbacks: the rest of this pass still runs first.
        self._loop.run_callback(self._return_from_run)

    def _complete_stopped(self) -> None:
        self._stopped.set()


def attach_gevent(host: object, **options: Any) -> Optional[Poller]:
    """An `AttachedGeventPoller` if ``host`` is a gevent hub or loop, else None."""
    hub_module = sys.modules.get("gevent.hub")  # not imported: host is no hub nor loop
    if hub_module is None:
        return None
    if isinstance(host, hub_module.Hub):
        hub: Any = host
    elif loop_kind(host) is not None:
        hub = hub_module.get_hub_if_exists()
        if hub is None or hub.loop is not host:
            raise ValueError(
                "no gevent hub of this thread runs this loop; attach the hub that runs it "
                "(pollers.attach(gevent.get_hub()))"
            )
    else:
        return None
    if options:
        raise TypeError(f"attaching to a gevent hub takes no options, got {sorted(options)}")
    kind = loop_kind(hub.loop)
    if kind is None:
        raise TypeError(f"the hub's loop {hub.loop!r} is neither gevent's libev nor libuv loop")
    return AttachedGeventPoller(hub, kind)
