"""The ``twisted`` family: descriptors through a Twisted reactor's ``IReactorFDSet``.

Each poller makes its own reactor *instance* (``EPollReactor()``,
``PollReactor()``, ``SelectReactor()``, ``KQueueReactor()``, or
``AsyncioSelectorReactor`` over a private asyncio loop), as Twisted's own
``ReactorBuilder`` tests do; the process-wide ``twisted.internet.reactor`` is
never installed or touched. Every registration holds one `_Descriptor` (its
`Registration.data`), the object Twisted watches (``fileno``, ``doRead``,
``doWrite``, ``connectionLost``, ``logPrefix``), added and removed with
``addReader``/``addWriter``/``removeReader``/``removeWriter`` as its interest
changes.

The poller drives the reactor itself rather than calling ``reactor.run()``:
a reactor is not restartable, and ``run()`` installs signal handlers. The
poll-like reactors are driven as their ``mainLoop`` drives them, one
``doIteration(timeout)`` and ``runUntilCurrent()`` per pass of `SelfDrivenPoller`,
with the timeout taken from our timer heap and Twisted's own delayed calls; the
asyncio reactor is driven by running its loop.

Where Twisted itself disconnects a descriptor (a hang-up or error reported
without readable data, a descriptor that ``select()`` refuses), it calls
``connectionLost`` after removing it from the reactor: that is delivered as
readiness for the current interest (contract behaviour 4), and the interest is
put back, since the descriptor is still registered with us and level-triggered.
What Twisted leaves inconsistent when a descriptor was closed or its number
reused while registered (a kernel call that fails half-way through its
bookkeeping) is cleaned up by `_forget`, per reactor (behaviour 5). What differs
between the reactors' private state is one row each of `_REACTOR_KINDS`.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from .base import READ, WRITE, Poller, Registration
from .family import Family, Option, VariantSpec, attached_forms
from .kernel import FD_SETSIZE, check_select_limit, forget_stale_entry, loop_selector
from .loop_base import LoopBackedPoller
from .self_driven import SelfDrivenPoller

#: ``--reactor`` choice -> (module, class) in ``twisted.internet``.
REACTOR_CLASSES: Dict[str, Tuple[str, str]] = {
    "epoll": ("epollreactor", "EPollReactor"),
    "poll": ("pollreactor", "PollReactor"),
    "select": ("selectreactor", "SelectReactor"),
    "asyncio": ("asyncioreactor", "AsyncioSelectorReactor"),
    "kqueue": ("kqreactor", "KQueueReactor"),
}
REACTOR_PLATFORMS: Dict[str, str] = {
    "epoll": "Linux",
    "poll": "POSIX systems",
    "select": "every platform (descriptors below 1024)",
    "asyncio": "every platform",
    "kqueue": "FreeBSD, macOS and the other BSDs",
}
_KERNEL_CALL: Dict[str, str] = {"epoll": "epoll", "poll": "poll", "kqueue": "kqueue"}


def default_reactor() -> str:
    """The reactor Twisted itself picks here (``twisted.internet.default``):
    epoll on Linux, poll on the other POSIX systems but macOS, select elsewhere."""
    import select

    if sys.platform.startswith("linux") and hasattr(select, "epoll"):
        return "epoll"
    if sys.platform != "darwin" and sys.platform != "win32" and hasattr(select, "poll"):
        return "poll"
    return "select"


def twisted_unavailable_reason(reactor: str) -> Optional[str]:
    """None if the Twisted reactor ``reactor`` can be made here, else why not."""
    if reactor not in REACTOR_CLASSES and reactor != "auto":
        return f"unknown reactor {reactor!r}; choose from auto, {', '.join(REACTOR_CLASSES)}"
    try:
        import twisted  # noqa: F401
    except ImportError as exc:
        return f"twisted is not installed ({exc}); pip install 'pollers[twisted]'"
    if reactor == "auto":
        return None
    import select

    call = _KERNEL_CALL.get(reactor)
    if call is not None and not hasattr(select, call):
        return (
            f"the Twisted {reactor} reactor needs {REACTOR_PLATFORMS[reactor]}; "
            f"this platform is {sys.platform}"
        )
    return None


def _reactor_class(reactor: str) -> Any:
    module, name = REACTOR_CLASSES[reactor]
    return getattr(importlib.import_module(f"twisted.internet.{module}"), name)


def _kqueue_forget(kq: Any, fd: int) -> None:
    """Delete both of ``fd``'s filters from the kqueue ``kq``, whichever exist."""
    import select

    # Any: the kqueue names exist on the BSDs and macOS, and on Linux once the tests'
    # kqueue emulation has put them into select (the only way a kqueue reactor runs there).
    kqueue_api: Any = select
    for kernel_filter in (kqueue_api.KQ_FILTER_READ, kqueue_api.KQ_FILTER_WRITE):
        try:
            kq.control([kqueue_api.kevent(fd, kernel_filter, kqueue_api.KQ_EV_DELETE)], 0, 0)
        except OSError:
            pass


class _Descriptor:
    """What the reactor watches for one registration (Twisted's ``IReadDescriptor``
    and ``IWriteDescriptor``).

    ``mask`` is what ``doRead``/``doWrite`` deliver: the registration's current
    interest, or 0 while a registration made during a batch waits for that batch
    to end (events of the batch were fetched for an earlier holder of the
    number). ``watching`` is what the reactor has been given.

    A handler's BaseException that is not an Exception (KeyboardInterrupt,
    SystemExit) goes to `Poller._escape`: Twisted's ``callWithLogger``, around
    every ``doRead``/``doWrite``, would log and swallow it (all but
    KeyboardInterrupt).
    """

    __slots__ = ("fd", "fileobj", "handler", "mask", "poller", "registration", "watching")

    def __init__(self, poller: _TwistedFDSet, registration: Registration) -> None:
        self.poller = poller
        self.registration = registration
        self.fd = registration.fd
        self.fileobj = registration.fileobj
        self.handler = registration.handler
        self.mask = registration.events
        self.watching = 0

    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        return "pollers"

    def doRead(self) -> None:
        if self.mask & READ:
            try:
                self.handler(self.fileobj, READ)
            except Exception:
                self.poller._dispatch_failed(self.registration)
            except BaseException as exc:
                self.poller._escape(exc)

    def doWrite(self) -> None:
        if self.mask & WRITE:
            try:
                self.handler(self.fileobj, WRITE)
            except Exception:
                self.poller._dispatch_failed(self.registration)
            except BaseException as exc:
                self.poller._escape(exc)

    def connectionLost(self, reason: object) -> None:
        """Twisted removed us from the reactor after a hang-up, an error or a descriptor
        it could not watch: deliver that as readiness, then watch again."""
        self.watching = 0
        poller = self.poller
        events = self.mask
        if events:
            try:
                self.handler(self.fileobj, events)
            except Exception:
                poller._dispatch_failed(self.registration)
            except BaseException as exc:
                poller._escape(exc)
        poller._rewatch(self)

    def __repr__(self) -> str:
        return f"<pollers descriptor {self.fd} mask={self.mask:#x}>"


def _forget_selected(reactor: Any, descriptor: _Descriptor) -> None:
    """select: the reactor's sets hold the descriptor objects; no kernel state."""
    reactor._reads.discard(descriptor)
    reactor._writes.discard(descriptor)


def _forget_in_loop(reactor: Any, descriptor: _Descriptor) -> None:
    """asyncio: the reactor's tables, then the loop's reader, writer and selector key,
    then the kernel's entry (which asyncio does not clean up itself)."""
    fd = descriptor.fd
    reactor._readers.pop(descriptor, None)
    reactor._writers.pop(descriptor, None)
    loop = reactor._asyncioEventloop
    for remove in (loop.remove_reader, loop.remove_writer):
        try:
            remove(fd)
        except (OSError, ValueError):
            pass
    selector = loop_selector(loop)
    if selector is not None:
        try:
            selector.unregister(fd)
        except (KeyError, ValueError):
            pass
        forget_stale_entry(selector, fd)


def _forget_number(reactor: Any, descriptor: _Descriptor) -> bool:
    """epoll, poll, kqueue: drop the number from the reactor's tables; False (and
    nothing dropped) if it now names another descriptor of this reactor."""
    fd = descriptor.fd
    if reactor._selectables.get(fd) is not descriptor and fd in reactor._selectables:
        return False
    reactor._selectables.pop(fd, None)
    for table in (reactor._reads, reactor._writes):
        if isinstance(table, dict):
            table.pop(fd, None)
        else:
            table.discard(fd)
    return True


def _forget_polled(reactor: Any, descriptor: _Descriptor) -> None:
    """epoll and poll: the tables, then the kernel's entry through ``select.epoll``/``poll``."""
    if _forget_number(reactor, descriptor):
        try:
            reactor._poller.unregister(descriptor.fd)
        except (OSError, KeyError, ValueError):
            pass


def _forget_kqueued(reactor: Any, descriptor: _Descriptor) -> None:
    """kqueue: the tables, then both of the number's filters."""
    if _forget_number(reactor, descriptor):
        _kqueue_forget(reactor._kq, descriptor.fd)


def _check_any(fd: int) -> None:
    """Every descriptor number is fine."""


def _close_nothing(reactor: Any) -> None:
    """No kernel object of its own to close (poll has none; asyncio's loop closes its own)."""


def _close_epoll(reactor: Any) -> None:
    reactor._poller.close()


def _close_kqueue(reactor: Any) -> None:
    reactor._kq.close()


class _ReactorKind(NamedTuple):
    """What `_TwistedFDSet` does differently for one kind of reactor."""

    #: Refuse, at `register`, a descriptor the reactor cannot watch (ValueError).
    check_fd: Callable[[int], None]
    #: Remove every trace of a descriptor from the reactor's tables and the kernel.
    forget: Callable[[Any, _Descriptor], None]
    #: Close the reactor's kernel object.
    close: Callable[[Any], None]


def _forget_through_the_reactor(reactor: Any, descriptor: _Descriptor) -> None:
    """Another IReactorFDSet provider (an attached poller's host): its own calls are all
    there is."""
    for remove in (reactor.removeReader, reactor.removeWriter):
        try:
            remove(descriptor)
        except Exception:
            pass


_REACTOR_KINDS: Dict[str, _ReactorKind] = {
    "epoll": _ReactorKind(_check_any, _forget_polled, _close_epoll),
    "poll": _ReactorKind(_check_any, _forget_polled, _close_nothing),
    "select": _ReactorKind(check_select_limit, _forget_selected, _close_nothing),
    "asyncio": _ReactorKind(_check_any, _forget_in_loop, _close_nothing),
    "kqueue": _ReactorKind(_check_any, _forget_kqueued, _close_kqueue),
    "reactor": _ReactorKind(_check_any, _forget_through_the_reactor, _close_nothing),
}


class _TwistedFDSet(Poller):
    """Registrations as `_Descriptor` objects in ``self._reactor``'s IReactorFDSet."""

    _reactor: Any
    _reactor_kind: str
    _kind: _ReactorKind
    #: What `_backend_register` makes for a registration (the attached poller's subclass).
    _descriptor_class = _Descriptor

    def _init_fdset(self, reactor: Any, kind: str) -> None:
        self._reactor = reactor
        self._reactor_kind = kind
        self._kind = _REACTOR_KINDS[kind]
        self.name = f"twisted-{kind}"
        #: Descriptors registered while a batch is dispatched (see `_Descriptor.mask`).
        self._fresh: List[_Descriptor] = []
        self._dispatching = False

    # -- descriptors -------------------------------------------------------

    def _backend_register(self, registration: Registration) -> None:
        self._kind.check_fd(registration.fd)
        descriptor = self._descriptor_class(self, registration)
        if self._dispatching:
            descriptor.mask = 0
            self._fresh.append(descriptor)
        try:
            self._watch(descriptor, registration.events)
        except BaseException:
            self._forget(descriptor)
            raise
        registration.data = descriptor

    def _backend_modify(self, registration: Registration, events: int) -> None:
        descriptor: _Descriptor = registration.data
        if not (self._dispatching and descriptor in self._fresh):
            descriptor.mask = events  # (a fresh one gets its interest when the batch ends)
        self._watch(descriptor, events)

    def _backend_unregister(self, registration: Registration) -> None:
        descriptor: _Descriptor = registration.data
        registration.data = None  # the descriptor holds the registration: no cycle
        descriptor.mask = 0
        try:
            self._watch(descriptor, 0)
        except Exception:  # closed meanwhile: nothing left to watch
            self._forget(descriptor)

    def _rewatch(self, descriptor: _Descriptor) -> None:
        """After ``connectionLost``: watch again if still registered (level-triggered)."""
        registration = descriptor.registration
        if (
            not self._closed
            and self._registrations.get(descriptor.fd) is registration
            and registration.events
        ):
            try:
                self._watch(descriptor, registration.events)
            except Exception:
                self._dispatch_failed(registration)

    def _watch(self, descriptor: _Descriptor, wanted: int) -> None:
        """Make the reactor watch ``descriptor`` for ``wanted``.

        A reactor call that fails here met a stale registration of this number
        (the descriptor was closed, perhaps its number reused or a dup keeping the
        old kernel entry alive) and may have left the reactor's tables half
        updated: forget every trace of the number and add the interest again once.
        """
        try:
            self._apply(descriptor, wanted)
        except (OSError, ValueError, KeyError):
            self._forget(descriptor)
            self._apply(descriptor, wanted)

    def _apply(self, descriptor: _Descriptor, wanted: int) -> None:
        reactor = self._reactor
        have = descriptor.watching
        if wanted & READ and not have & READ:
            reactor.addReader(descriptor)
            descriptor.watching |= READ
        if wanted & WRITE and not have & WRITE:
            reactor.addWriter(descriptor)
            descriptor.watching |= WRITE
        if have & READ and not wanted & READ:
            reactor.removeReader(descriptor)
            descriptor.watching &= ~READ
        if have & WRITE and not wanted & WRITE:
            reactor.removeWriter(descriptor)
            descriptor.watching &= ~WRITE

    def _forget(self, descriptor: _Descriptor) -> None:
        """Remove every trace of ``descriptor`` from the reactor's tables and the kernel."""
        descriptor.watching = 0
        self._kind.forget(self._reactor, descriptor)

    def _end_batch(self) -> None:
        """The batch is over: registrations made during it start receiving events."""
        self._dispatching = False
        for descriptor in self._fresh:
            if self._registrations.get(descriptor.fd) is descriptor.registration:
                descriptor.mask = descriptor.registration.events
        self._fresh.clear()

    def _close_reactor(self) -> None:
        reactor = self._reactor
        waker = reactor.waker
        if waker is not None:
            try:
                reactor.removeReader(waker)
            except (OSError, ValueError, KeyError):
                pass
            waker.connectionLost(None)
            reactor.waker = None
        self._kind.close(reactor)


class TwistedPoller(_TwistedFDSet, SelfDrivenPoller):
    """A poll-like reactor (epoll, poll, select, kqueue), driven one pass at a time.

    `_TwistedFDSet` comes first, so its `_end_batch` is the one `SelfDrivenPoller` calls.
    """

    def __init__(self, reactor: str = "auto") -> None:
        super().__init__()
        if reactor == "auto":
            reactor = default_reactor()
        reason = twisted_unavailable_reason(reactor)
        if reason is not None:
            raise ValueError(reason)
        if reactor == "asyncio":
            raise ValueError("use TwistedAsyncioPoller for the asyncio reactor")
        self._init_fdset(_reactor_class(reactor)(), reactor)

    # -- waking ------------------------------------------------------------

    def _wake(self) -> None:
        try:
            self._reactor.wakeUp()  # what callFromThread does after queueing
        except (OSError, AttributeError):
            if not self._closed:
                raise

    def _signal_wakeup_fd(self) -> int:
        # As Twisted's own signal handling does: the C-level handler writes to the
        # reactor's waker.
        fd: int = self._reactor.waker.o
        return fd

    # -- running -----------------------------------------------------------

    def _wait(self, timeout: Optional[float]) -> None:
        reactor = self._reactor
        if timeout != 0.0:
            # Twisted's own delayed calls (a LoopingCall for descriptors that epoll
            # refuses, for one), on its clock.
            theirs: Optional[float] = reactor.timeout()
            if theirs is not None and (timeout is None or theirs < timeout):
                timeout = theirs
        self._dispatching = True
        reactor.doIteration(timeout)
        self._end_batch()
        if self._escaped is None:  # a handler's escape ends the pass at once
            reactor.runUntilCurrent()

    def _backend_close(self) -> None:
        self._close_queue_and_signals()
        self._close_reactor()


class TwistedAsyncioPoller(_TwistedFDSet, LoopBackedPoller):
    """``AsyncioSelectorReactor`` over a private asyncio loop, driven by running that loop.

    The reactor calls each descriptor from an asyncio reader or writer callback,
    and asyncio's own handle cancellation drops the events of a descriptor
    removed during a batch; timers are our heap on one loop timer, as on the
    asyncio family.
    """

    def __init__(self) -> None:
        import asyncio

        reason = twisted_unavailable_reason("asyncio")
        if reason is not None:
            raise ValueError(reason)
        LoopBackedPoller.__init__(self, asyncio.new_event_loop())
        self._init_fdset(_reactor_class("asyncio")(self._asyncio_loop), "asyncio")

    def _escape(self, exc: BaseException) -> None:
        super()._escape(exc)
        self._asyncio_loop.stop()  # at the end of this pass; `_backend_run` raises it

    def _backend_run(self) -> None:
        try:
            self._asyncio_loop.run_forever()
        except BaseException:
            self._escaped = None  # what ended the loop wins over what a handler raised
            raise
        self._raise_escaped()

    def _backend_close(self) -> None:
        self._close_reactor()
        self._asyncio_loop.close()


def create_twisted_poller(reactor: str = "auto") -> Poller:
    """A poller over a new Twisted reactor of kind ``reactor`` (``auto``: Twisted's default)."""
    if reactor == "asyncio":
        return TwistedAsyncioPoller()
    return TwistedPoller(reactor)


def _attach(host: object, **options: Any) -> Optional[Poller]:
    from .twisted_attached import attach_twisted  # it imports this module

    return attach_twisted(host, **options)


_VARIANTS = tuple(
    VariantSpec(
        f"twisted-{kind}",
        {"reactor": kind},
        f"{runs_on}, with Twisted",
        descriptor_limit=FD_SETSIZE if kind == "select" else None,
    )
    for kind, runs_on in REACTOR_PLATFORMS.items()
)

FAMILY = Family(
    name="twisted",
    summary="IReactorFDSet (addReader/addWriter) of a Twisted reactor instance of its own",
    options=(Option("reactor", ("auto", *REACTOR_CLASSES), "auto", "Twisted reactor"),),
    variants=_VARIANTS,
    factory=create_twisted_poller,
    libraries=("twisted",),
    unavailable_reason=lambda options: twisted_unavailable_reason(options["reactor"]),
    # Twisted calls doRead and then doWrite (select: in two sweeps): two dispatches.
    merges_read_and_write=False,
    attach=_attach,
    attach_accepts="a Twisted reactor (IReactorFDSet and IReactorTime)",
    # The asyncio reactor's host attaches its asyncio loop instead.
    attached_variants=attached_forms(
        variant for variant in _VARIANTS if variant.options["reactor"] != "asyncio"
    ),
)
