"""The `Poller` contract shared by every backend.

A `Poller` is a single-threaded, level-triggered readiness loop. Descriptors are
registered with an interest mask of `Events` bits and a handler; the handler is
called as ``handler(fd, events)`` with exactly the object that was registered
and the subset of the interest that is ready (plus ``ERROR`` where the backend
can tell). Callbacks and timers run on the same thread, on the poller's
monotonic clock (`time.monotonic`).

Backends subclass `Poller` and implement a handful of ``_backend_*`` hooks; the
bookkeeping that the contract requires of every backend (duplicate checks,
unknown descriptors, closed descriptors, validation of masks, error handling,
timer order, fork and close checks) lives here, once.
"""

from __future__ import annotations

import abc
import enum
import heapq
import itertools
import logging
import os
import threading
import time
from types import TracebackType
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple, Type, Union

logger = logging.getLogger("pollers")


class Events(enum.IntFlag):
    """Readiness bits, with Tornado's values (``IOLoop.READ`` etc.)."""

    NONE = 0
    READ = 0x001
    WRITE = 0x004
    ERROR = 0x018


READ = int(Events.READ)
WRITE = int(Events.WRITE)
ERROR = int(Events.ERROR)
_VALID_BITS = READ | WRITE | ERROR
_INTEREST_BITS = READ | WRITE


class HasFileno(Protocol):
    def fileno(self) -> int: ...


FileDescriptorLike = Union[int, HasFileno]
Handler = Callable[[Any, int], None]
"""``handler(fd, events)``: ``fd`` is the registered object, ``events`` an int mask."""

Callback = Callable[..., object]


_forks_seen = 0
"""How many times this process is a fork child; the fork check compares it, since
``os.getpid()`` is a system call on current glibc and the check runs on every call."""


def _note_fork_in_child() -> None:
    global _forks_seen
    _forks_seen += 1


os.register_at_fork(after_in_child=_note_fork_in_child)


class PollerClosedError(RuntimeError):
    """Raised by any use of a `Poller` after `Poller.close`."""


class PollerForkedError(RuntimeError):
    """Raised when a poller is used in a process other than the one that made it."""


def fileno_of(fd: FileDescriptorLike) -> int:
    """Return the descriptor number of ``fd``; raise ValueError if it has none."""
    if isinstance(fd, int):
        number = fd
    else:
        try:
            number = fd.fileno()
        except AttributeError:
            raise TypeError(
                f"expected an int or an object with fileno(), got {type(fd).__name__}"
            ) from None
    if number < 0:
        raise ValueError(f"invalid file descriptor {number} (closed?) for {fd!r}")
    return number


def check_events(events: int) -> int:
    """Validate an interest mask and return the READ/WRITE part of it."""
    if not isinstance(events, int) or events & ~_VALID_BITS or events < 0:
        raise ValueError(
            f"invalid event mask {events!r}: use Events.READ, Events.WRITE, "
            "Events.ERROR or Events.NONE combined with |"
        )
    return int(events) & _INTEREST_BITS  # a plain int: handlers get plain ints


class Registration:
    """One registered descriptor: the only record a poller keeps of it.

    `Poller` holds them in one map, descriptor number -> registration, which
    every backend reads; the handler of a ready descriptor is found there (or
    handed to the loop with it) and called as ``handler(fileobj, events)``.

    ``events`` is the current interest; a backend masks every delivered event
    with it at dispatch time, so an interest dropped (or an unregister) during
    a batch suppresses events already fetched in that batch.

    ``data`` is the backend's own slot, as ``SelectorKey.data`` is the caller's
    in `selectors`: what the backend keeps for this descriptor, set by its
    ``_backend_*`` hooks and living exactly as long as the registration (the
    selectors family's delivery table for the current interest, the object a
    Twisted reactor watches, a gevent io watcher; None where there is nothing).
    """

    __slots__ = ("data", "events", "fd", "fileobj", "handler")

    def __init__(self, fd: int, fileobj: FileDescriptorLike, handler: Handler, events: int):
        self.fd = fd
        self.fileobj = fileobj
        self.handler = handler
        self.events = events
        self.data: Any = None


class Timer:
    """Handle of a `Poller.call_later` / `Poller.call_at` timer."""

    __slots__ = ("_queue", "args", "callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callback, args: Tuple[Any, ...], queue: TimerQueue):
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False
        self._queue: Optional[TimerQueue] = queue  # None once out of the queue

    def cancel(self) -> None:
        """Prevent the callback from running; harmless if it already ran."""
        if not self.cancelled:
            self.cancelled = True
            if self._queue is not None:
                self._queue.note_cancelled()

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else "pending"
        return f"<Timer {state} when={self.when:.6f} callback={self.callback!r}>"


class TimerQueue:
    """A heap of timers; equal deadlines come out in the order they were added."""

    def __init__(self) -> None:
        self._heap: List[Tuple[float, int, Timer]] = []
        self._sequence = itertools.count()
        self._cancelled = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, when: float, callback: Callback, args: Tuple[Any, ...]) -> Timer:
        timer = Timer(when, callback, args, self)
        heapq.heappush(self._heap, (when, next(self._sequence), timer))
        return timer

    def note_cancelled(self) -> None:
        self._cancelled += 1
        # Keep a heap of mostly-cancelled timers from growing without bound.
        if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if not entry[2].cancelled]
            heapq.heapify(self._heap)
            self._cancelled = 0

    def first_deadline(self) -> Optional[float]:
        """The earliest deadline of a timer that is not cancelled, or None."""
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)[2]._queue = None
            self._cancelled -= 1
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> List[Timer]:
        """Remove and return, in order, the timers due at ``now``."""
        heap = self._heap
        due = []
        while heap and heap[0][0] <= now:
            timer = heapq.heappop(heap)[2]
            timer._queue = None
            if timer.cancelled:
                self._cancelled -= 1
            else:
                due.append(timer)
        return due

    def clear(self) -> None:
        self._heap.clear()
        self._cancelled = 0


class Poller(abc.ABC):
    """A level-triggered readiness loop; see ``docs/contract.md``.

    Single-threaded: only `call_soon_threadsafe` may be called from another
    thread. A poller belongs to the process that created it. Usable as a
    context manager (`close` on exit).
    """

    #: The variant name, e.g. ``"selectors-epoll"``.
    name: str = "abstract"

    def __init__(self) -> None:
        self._registrations: Dict[int, Registration] = {}
        self._timers = TimerQueue()
        self._closed = False
        self._running = False
        self._pid = os.getpid()
        self._forks_seen = _forks_seen
        #: A handler's BaseException that is not an Exception, kept by `_escape`.
        self._escaped: Optional[BaseException] = None

    # -- descriptors -------------------------------------------------------

    def register(self, fd: FileDescriptorLike, events: int, handler: Handler) -> None:
        """Watch ``fd`` for ``events`` and call ``handler(fd, ready_events)``.

        ``fd`` is an int or an object with ``fileno()``; the handler receives
        that same object back. ``ERROR`` needs no asking: it is reported where
        the backend can tell it (none of today's does: every family folds errors
        and hang-ups into READ/WRITE readiness, gevent masking out libev's EV_ERROR
        and libuv's UV_DISCONNECT), so code must never depend on it. A descriptor
        already registered raises ValueError.
        """
        self._check_usable()
        number = fileno_of(fd)
        interest = check_events(events)
        if number in self._registrations:
            raise ValueError(f"descriptor {number} is already registered with {self.name}")
        registration = Registration(number, fd, handler, interest)
        self._backend_register(registration)
        self._registrations[number] = registration

    def modify(self, fd: FileDescriptorLike, events: int) -> None:
        """Change the interest of a registered ``fd``; ``Events.NONE`` idles it.

        Unknown descriptor: KeyError. Setting the mask already set costs no
        system call.
        """
        registration = self._lookup(fd)
        if registration is None:
            self._check_usable()
            raise KeyError(f"descriptor {fd!r} is not registered with {self.name}")
        interest = check_events(events)
        if interest != registration.events:
            self._check_usable()
            self._backend_modify(registration, interest)
            registration.events = interest

    def unregister(self, fd: FileDescriptorLike) -> None:
        """Forget ``fd``. Unknown or already-closed descriptors are not an error."""
        self._check_usable()
        registration = self._lookup(fd)
        if registration is None:
            return
        del self._registrations[registration.fd]
        registration.events = 0
        self._backend_unregister(registration)

    def _lookup(self, fd: FileDescriptorLike) -> Optional[Registration]:
        if isinstance(fd, int):
            return self._registrations.get(fd)
        try:
            number = fd.fileno()
        except (AttributeError, OSError, ValueError):
            number = -1
        if number >= 0:
            registration = self._registrations.get(number)
            if registration is not None:
                return registration
        # A closed socket reports fileno() == -1: find it by identity instead.
        for registration in self._registrations.values():
            if registration.fileobj is fd:
                return registration
        return None

    def _dispatch_failed(self, registration: Registration) -> None:
        """Log the running handler's exception and unregister its descriptor."""
        logger.exception(
            "handler %r for descriptor %d raised; unregistering it",
            registration.handler,
            registration.fd,
        )
        if self._registrations.get(registration.fd) is registration and not self._closed:
            self.unregister(registration.fileobj)

    def _escape(self, exc: BaseException) -> None:
        """A handler raised ``exc``, a BaseException that is not an Exception
        (KeyboardInterrupt, SystemExit), inside a loop that would log and swallow
        it: keep it for `_raise_escaped` to raise out of `run` when the pass ends.
        A backend whose loop must be told to end the pass extends this."""
        self._escaped = exc

    def _raise_escaped(self) -> None:
        """Raise what `_escape` kept, if anything, and forget it."""
        escaped = self._escaped
        if escaped is not None:
            self._escaped = None
            raise escaped

    # -- callbacks and timers ----------------------------------------------

    def time(self) -> float:
        """The poller's clock: `time.monotonic`, in seconds."""
        self._check_usable()
        return time.monotonic()

    def call_later(self, delay: float, callback: Callback, *args: Any) -> Timer:
        """Run ``callback(*args)`` after ``delay`` seconds; returns a cancellable `Timer`."""
        return self.call_at(time.monotonic() + delay, callback, *args)

    def call_at(self, when: float, callback: Callback, *args: Any) -> Timer:
        """Run ``callback(*args)`` at ``when`` on the `time` clock.

        Timers with equal deadlines run in the order they were scheduled.
        """
        self._check_usable()
        timers = self._timers
        previous = timers.first_deadline()
        timer = timers.push(when, callback, args)
        if previous is None or when < previous:
            self._backend_first_deadline_changed(when)
        return timer

    def _run_due_timers(self) -> None:
        for timer in self._timers.pop_due(time.monotonic()):
            if not timer.cancelled:  # an earlier timer of this batch may cancel it
                self._run_callback(timer.callback, timer.args)

    @staticmethod
    def _run_callback(callback: Callback, args: Tuple[Any, ...]) -> None:
        try:
            callback(*args)
        except Exception:
            logger.exception("callback %r raised", callback)

    @abc.abstractmethod
    def call_soon(self, callback: Callback, *args: Any) -> None:
        """Run ``callback(*args)`` on the next pass, before waiting for I/O."""

    @abc.abstractmethod
    def call_soon_threadsafe(self, callback: Callback, *args: Any) -> None:
        """`call_soon` from any thread; wakes a blocked wait at once."""

    def add_signal_handler(self, sig: int, callback: Callback, *args: Any) -> None:
        """Run ``callback(*args)`` on the loop when signal ``sig`` arrives.

        Main thread only (ValueError elsewhere), as for `signal.signal`.
        """
        self._check_usable()
        if threading.current_thread() is not threading.main_thread():
            raise ValueError("signal handlers can only be added from the main thread")
        self._backend_add_signal_handler(sig, callback, args)

    # -- running -----------------------------------------------------------

    def run(self) -> None:
        """Dispatch events, callbacks and timers until `stop` is called."""
        self._check_usable()
        if self._running:
            raise RuntimeError(f"{self.name} poller is already running")
        self._running = True
        try:
            self._backend_run()
        finally:
            self._running = False

    @abc.abstractmethod
    def stop(self) -> None:
        """Make `run` return after the current pass. Call from the loop's thread."""

    def close(self) -> None:
        """Release the OS resources. Idempotent; any later use raises `PollerClosedError`.

        An owned poller refuses (RuntimeError) while its `run` is in progress; an
        attached one does not: it removes what it added to the host loop (and makes
        its `run`, if in progress, return) but leaves the loop itself alone.

        In a forked child this only marks the poller closed: its kernel objects are
        shared with the parent (an epoll set, the loop's registrations in it), and
        releasing them through the backend would unregister the parent's descriptors.
        """
        if self._closed:
            return
        forked = self._in_forked_child()
        if self._running and not forked and not self._attached:
            raise RuntimeError(f"cannot close a running {self.name} poller; stop() it first")
        self._closed = True
        registrations = self._registrations
        if not forked:
            for registration in registrations.values():
                registration.events = 0  # a callback still queued for it delivers nothing
                self._backend_release(registration)
        registrations.clear()
        self._timers.clear()
        if not forked:
            self._backend_close()

    def _in_forked_child(self) -> bool:
        """True in a fork child of the process that made the poller."""
        return _forks_seen != self._forks_seen

    @property
    def closed(self) -> bool:
        return self._closed

    #: Set by the attached pollers' classes; read through `attached`.
    _attached = False

    @property
    def attached(self) -> bool:
        """True if the poller runs on a loop its caller owns (`pollers.attach`).

        An attached poller never closes, stops or replaces that loop; see
        "Attached pollers" in ``docs/contract.md``. False for `pollers.create`'s.
        """
        return self._attached

    def when_stopped(self) -> Any:
        """The host's own notification that this attached poller stopped.

        Completed by `stop` (and by `close`): an `asyncio.Future` of the host loop
        (asyncio, Tornado), a ``Deferred`` (Twisted), a ``gevent.event.Event``
        (gevent). An owned poller has none: its `run` returns when it stops, so
        this raises TypeError.
        """
        raise TypeError(
            f"when_stopped() is for attached pollers; the owned {self.name} poller's "
            "run() returns when it stops"
        )

    def __enter__(self) -> Poller:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._registrations)} registered"
        return f"<{type(self).__name__} {self.name} {state}>"

    def _check_usable(self) -> None:
        if self._closed:
            raise PollerClosedError(f"the {self.name} poller is closed")
        if _forks_seen != self._forks_seen:
            raise PollerForkedError(
                f"this {self.name} poller was created in process {self._pid}; "
                "after fork() create a new poller in the child"
            )

    # -- backend hooks -----------------------------------------------------

    @abc.abstractmethod
    def _backend_register(self, registration: Registration) -> None:
        """Start watching ``registration.fd`` for ``registration.events``."""

    @abc.abstractmethod
    def _backend_modify(self, registration: Registration, events: int) -> None:
        """Change the kernel interest; ``registration.events`` still holds the old mask."""

    @abc.abstractmethod
    def _backend_unregister(self, registration: Registration) -> None:
        """Stop watching; must not raise if the descriptor was closed meanwhile."""

    @abc.abstractmethod
    def _backend_first_deadline_changed(self, when: float) -> None:
        """A timer due at ``when`` is now the earliest one."""

    @abc.abstractmethod
    def _backend_add_signal_handler(
        self, sig: int, callback: Callback, args: Tuple[Any, ...]
    ) -> None: ...

    @abc.abstractmethod
    def _backend_run(self) -> None: ...

    def _backend_release(self, registration: Registration) -> None:
        """`close`, before `_backend_close` and once per registration (its interest
        is 0 already): let go of what ``registration.data`` holds. Not called in a
        fork child. This default drops the reference."""
        registration.data = None

    @abc.abstractmethod
    def _backend_close(self) -> None: ...


class HostTimerPoller(Poller):
    """A `Poller` whose timer heap waits on one timed call of the loop it sits on (an
    asyncio loop, a Twisted reactor, a gevent loop), armed for the heap's earliest
    deadline: those loops do not promise that timers with equal deadlines run in the
    order they were scheduled, so the heap keeps the order and the loop keeps the time.

    A backend implements `_schedule`, `_unschedule` and ``_on_timer`` (which starts
    with `_disarm` and ends by arming the heap's next deadline).
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._armed_handle: Any = None  # what `_schedule` returned for the armed deadline
        self._armed_for: Optional[float] = None

    @abc.abstractmethod
    def _schedule(self, delay: float, callback: Callback) -> Any:
        """Ask the loop to run ``callback()`` once in ``delay`` seconds; a handle."""

    @abc.abstractmethod
    def _unschedule(self, handle: Any) -> None:
        """Let go of what `_schedule` returned, whether or not it has run yet."""

    @abc.abstractmethod
    def _on_timer(self) -> None:
        """The armed call is due."""

    def _backend_first_deadline_changed(self, when: float) -> None:
        self._arm(when)

    def _arm(self, when: Optional[float]) -> None:
        """Make sure the loop calls `_on_timer` by ``when`` (None: no deadline)."""
        if when is None or (self._armed_for is not None and self._armed_for <= when):
            return
        if self._armed_handle is not None:
            self._unschedule(self._armed_handle)
        self._armed_for = when
        self._armed_handle = self._schedule(max(0.0, when - time.monotonic()), self._on_timer)

    def _disarm(self) -> None:
        """Let go of the armed call, if any (also from `_on_timer`, once it has run)."""
        handle = self._armed_handle
        if handle is not None:
            self._armed_handle = self._armed_for = None
            self._unschedule(handle)
