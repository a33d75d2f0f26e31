"""The ``gevent`` family: descriptors through the watchers of a gevent loop of its own.

Each poller makes a private, non-default loop object of the chosen
implementation (``libev``: ``gevent.libev.corecext.loop``, or its cffi build on
PyPy; ``libuv``: ``gevent.libuv.loop.loop``; the names ``gevent.config.loop``
knows them by), and never touches gevent's hub, its default loop or the
standard library (nothing is monkey-patched). It uses the loop's own watchers:

- one ``loop.io(fd, events)`` watcher per registration with interest (its
  `Registration.data`; None while the interest is NONE), started
  with ``pass_events`` so that its callback gets the ready bits; READ and WRITE
  ready together arrive as one call with both bits. A new interest stops the
  watcher, changes its mask and starts it again (libev refuses to change an
  active watcher); stopping a watcher clears its pending event, so a dropped
  interest is never delivered from a batch already fetched (behaviour 3);
- one ``loop.timer`` armed for the earliest deadline of our timer heap (which
  keeps equal deadlines in order);
- one ``loop.async_`` watcher that ``call_soon_threadsafe`` sends to;
- ``loop.signal`` watchers for `add_signal_handler`;
- an error handler (`_LoopErrors`) for what the loop itself catches: a
  KeyboardInterrupt that Python's default SIGINT handler raises inside one of
  the loop's own callbacks leaves `run` (without a hub, gevent would only print it).

The poller drives the loop one pass at a time, as `SelfDrivenPoller` does for
every self-driven family: its `_wait` is ``loop.run(once=True)`` with the timer
armed, or ``nowait=True`` when the pass must not block (callbacks queued, `stop`
called, a deadline passed).
"""

from __future__ import annotations

import importlib
import math
import signal
import time
from typing import Any, Dict, List, Optional, Tuple

from .base import READ, WRITE, Callback, Poller, Registration, logger
from .family import Family, Option, VariantSpec, attached_forms
from .self_driven import SelfDrivenPoller

#: ``loop=`` choice -> the loop classes gevent offers for it, in gevent's order of preference.
LOOP_CLASSES: Dict[str, Tuple[str, ...]] = {
    "libev": ("gevent.libev.corecext", "gevent.libev.corecffi"),
    "libuv": ("gevent.libuv.loop",),
}
LOOP_RUNS_ON = {
    "libev": "CPython with gevent (Linux, macOS)",
    "libuv": "CPython with gevent and cffi (Linux, macOS)",
}
#: What to install, and where it can be: the extra's marker, as ``pyproject.toml`` says.
_INSTALL_HINT = "pip install 'pollers[gevent]' (CPython on Linux and macOS)"

#: The loops' own bits (libev's EV_READ and EV_WRITE; libuv's UV_READABLE and
#: UV_WRITABLE have the same values) <-> ours.
_LOOP_READ, _LOOP_WRITE = 1, 2
_TO_LOOP = {READ: _LOOP_READ, WRITE: _LOOP_WRITE, READ | WRITE: _LOOP_READ | _LOOP_WRITE}
#: Indexed by the reported bits masked with 3 (libev adds EV_ERROR, libuv UV_DISCONNECT,
#: to a readiness that the handler learns about from the socket call that fails).
_FROM_LOOP = (0, READ, WRITE, READ | WRITE)


def _loop_class(kind: str) -> Any:
    """The loop class for ``kind``; ImportError (naming what failed) if none imports."""
    errors: List[str] = []
    for module_name in LOOP_CLASSES[kind]:
        try:
            return importlib.import_module(module_name).loop
        except ImportError as exc:
            errors.append(f"{module_name}: {exc}")
    raise ImportError("; ".join(errors))


def gevent_unavailable_reason(kind: str) -> Optional[str]:
    """None if gevent's ``kind`` loop can be made here, else why not."""
    if kind not in LOOP_CLASSES:
        return f"unknown gevent loop {kind!r}; choose from {', '.join(LOOP_CLASSES)}"
    try:
        import gevent  # noqa: F401
    except ImportError as exc:
        return f"gevent is not installed ({exc}); {_INSTALL_HINT}"
    try:
        _loop_class(kind)
    except ImportError as exc:
        return f"gevent's {kind} loop does not import here ({exc}); {_INSTALL_HINT}"
    return None


class _LoopErrors:
    """The loop's ``error_handler``: what a loop callback raised, reported by the loop.

    A BaseException that is not an Exception (KeyboardInterrupt from the default
    SIGINT handler, raised wherever the loop runs Python code) is kept for `run` to
    raise, and the loop is told to return; anything else is logged.
    """

    __slots__ = ("_poller",)

    def __init__(self, poller: GeventPoller) -> None:
        self._poller = poller

    def handle_error(self, context: object, kind: Any, value: Any, tb: Any) -> None:
        if isinstance(value, BaseException) and not isinstance(value, Exception):
            self._poller._escape(value)
        else:
            logger.error(
                "the gevent loop caught an error (in %r)", context, exc_info=(kind, value, tb)
            )


class GeventWatchers(Poller):
    """Registrations as io watchers of ``self._loop`` (one per registration with
    interest, its `Registration.data`): the owned pollers' and the attached ones'
    (`pollers.gevent_attached`). A handler's BaseException that is not an Exception
    goes to `Poller._escape`, which each says how to handle."""

    _loop: Any

    def _on_ready(self, revents: int, registration: Registration) -> None:
        """An io watcher's callback: deliver the ready bits within the current interest."""
        events = _FROM_LOOP[revents & 3] & registration.events
        if events:
            try:
                registration.handler(registration.fileobj, events)
            except Exception:
                self._dispatch_failed(registration)
            except BaseException as exc:
                self._escape(exc)

    def _start_watcher(self, registration: Registration, events: int) -> None:
        watcher = self._loop.io(registration.fd, _TO_LOOP[events])
        watcher.start(self._on_ready, registration, pass_events=True)
        registration.data = watcher

    def _stop_watcher(self, registration: Registration) -> None:
        watcher = registration.data
        if watcher is not None:
            registration.data = None  # the watcher holds the registration: no cycle
            watcher.stop()
            watcher.close()

    def _backend_register(self, registration: Registration) -> None:
        if registration.events:
            self._start_watcher(registration, registration.events)

    def _backend_modify(self, registration: Registration, events: int) -> None:
        # A new watcher each time rather than a new mask on the old one: libev refuses
        # to change an active watcher, and a watcher made anew takes the descriptor as
        # it is now (closed and its number reused, say) on either loop.
        self._stop_watcher(registration)
        if events:
            self._start_watcher(registration, events)

    def _backend_unregister(self, registration: Registration) -> None:
        self._stop_watcher(registration)

    def _backend_release(self, registration: Registration) -> None:
        self._stop_watcher(registration)


class GeventPoller(GeventWatchers, SelfDrivenPoller):
    """A private gevent loop (libev or libuv) and its io, timer, async and signal watchers."""

    def __init__(self, loop: str = "libev") -> None:
        super().__init__()
        reason = gevent_unavailable_reason(loop)
        if reason is not None:
            raise ValueError(reason)
        self.name = f"gevent-{loop}"
        self._loop = _loop_class(loop)(default=False)
        self._loop.error_handler = _LoopErrors(self)
        self._timer: Any = None
        self._timer_for: Optional[float] = None
        self._waker: Any = self._loop.async_()
        self._waker.start(self._on_wake)
        self._signal_watchers: Dict[int, Any] = {}

    # -- descriptors: `GeventWatchers`' ---------------------------------------

    def _escape(self, exc: BaseException) -> None:
        """A handler's BaseException: the loop would print and swallow it, so keep it
        for `run` to raise."""
        super()._escape(exc)
        self._loop.break_()  # end the loop's pass now

    # -- callbacks, timers, signals ------------------------------------------

    def _wake(self) -> None:
        waker = self._waker
        if waker is not None:
            waker.send()

    def _on_wake(self) -> None:
        pass  # its only job was to end the wait

    # The first deadline is armed before each wait, see `_arm`.

    def _arm(self, timeout: float) -> None:
        """Make sure a loop timer ends the wait within ``timeout`` seconds."""
        when = time.monotonic() + timeout  # on our clock, to compare with the armed one
        if self._timer_for is not None and self._timer_for <= when:
            return
        if self._timer is not None:
            self._timer.stop()
            self._timer.close()
        self._loop.update_now()  # libev measures ``after`` from its cached time
        # Whole milliseconds, rounded up: libuv counts in them, and a wait that ends
        # early only spins.
        delay = math.ceil(timeout * 1e3) * 1e-3
        self._timer = self._loop.timer(delay)
        self._timer.start(self._on_timer)
        self._timer_for = when

    def _on_timer(self) -> None:
        self._timer_for = None

    def _backend_add_signal_handler(
        self, sig: int, callback: Callback, args: Tuple[Any, ...]
    ) -> None:
        watcher = self._signal_watchers.pop(sig, None)
        if watcher is not None:
            watcher.stop()
            watcher.close()
        else:
            # The loop installs its own C handler; on close the Python one comes back.
            self._old_signal_handlers.setdefault(sig, signal.getsignal(sig))
        watcher = self._loop.signal(sig)
        ready = self._ready
        watcher.start(lambda: ready.append((callback, args)))
        self._signal_watchers[sig] = watcher

    # -- running -----------------------------------------------------------

    def _wait(self, timeout: Optional[float]) -> None:
        if timeout == 0.0:
            self._loop.run(nowait=True)
        else:
            if timeout is not None:
                self._arm(timeout)
            self._loop.run(once=True)

    def _backend_close(self) -> None:
        watchers = [self._waker, self._timer, *self._signal_watchers.values()]
        self._waker = self._timer = None
        for watcher in watchers:
            if watcher is not None:
                watcher.stop()
                watcher.close()
        self._signal_watchers.clear()
        self._close_queue_and_signals()
        self._loop.error_handler = None
        self._loop.destroy()


def _attach(host: object, **options: Any) -> Optional[Poller]:
    from .gevent_attached import attach_gevent  # it imports this module

    return attach_gevent(host, **options)


_VARIANTS = tuple(
    VariantSpec(f"gevent-{kind}", {"loop": kind}, runs_on) for kind, runs_on in LOOP_RUNS_ON.items()
)

FAMILY = Family(
    name="gevent",
    summary="io, timer, async and signal watchers of a private gevent loop (no hub, no patching)",
    options=(Option("loop", tuple(LOOP_CLASSES), "libev", "gevent loop"),),
    variants=_VARIANTS,
    factory=GeventPoller,
    libraries=("gevent",),
    unavailable_reason=lambda options: gevent_unavailable_reason(options["loop"]),
    attach=_attach,
    attach_accepts="a gevent hub or its loop (gevent.get_hub(), gevent.get_hub().loop)",
    attached_variants=attached_forms(_VARIANTS),
)
