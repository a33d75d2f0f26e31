"""`SelectorPoller`: our own dispatch loop over a `selectors.BaseSelector`.

One loop for every selector; the few differences live in short subclasses:
`select` refuses descriptors it cannot hold, `kqueue` merges the two events
(one per filter) that it may return for one descriptor in a batch.
"""

from __future__ import annotations

import errno
import math
import select as select_module
import selectors
import socket
import sys
from typing import Callable, Dict, List, Optional, Set, Tuple

from .base import READ, WRITE, Registration
from .family import Family, Option, VariantSpec
from .kernel import (
    FD_SETSIZE,
    EpollWait,
    PollWait,
    check_select_limit,
    forget_stale_entry,
    wait_of,
)
from .self_driven import SelfDrivenPoller

_SELECTOR_CLASSES: Dict[str, str] = {
    "epoll": "EpollSelector",
    "kqueue": "KqueueSelector",
    "poll": "PollSelector",
    "select": "SelectSelector",
    "devpoll": "DevpollSelector",
}
SELECTOR_PLATFORMS: Dict[str, str] = {
    "epoll": "Linux",
    "kqueue": "FreeBSD, macOS and the other BSDs",
    "poll": "POSIX systems",
    "select": "every platform (descriptors below 1024)",
    "devpoll": "Solaris and illumos",
}


_TO_SELECTOR = {
    0: 0,
    READ: selectors.EVENT_READ,
    WRITE: selectors.EVENT_WRITE,
    READ | WRITE: selectors.EVENT_READ | selectors.EVENT_WRITE,
}

DeliveryTables = Dict[int, Tuple[int, ...]]


def _tables_translating(to_ours: Tuple[int, ...]) -> DeliveryTables:
    """``tables[interest][reported]``: the events to hand a handler whose current
    interest is ``interest`` (our bits) when the wait reported ``reported`` (its bits);
    ``to_ours[reported]`` translates the reported bits."""
    return {interest: tuple(bits & interest for bits in to_ours) for interest in _TO_SELECTOR}


#: For `BaseSelector.select()`: its EVENT_READ/EVENT_WRITE are 1 and 2; ours are Tornado's 1 and 4.
SELECTOR_TABLES = _tables_translating((0, READ, WRITE, READ | WRITE))

#: The bits poll(2), epoll(7) and /dev/poll can report fit in 6 (IN, PRI, OUT, ERR, HUP,
#: NVAL): they report only the bits asked for (IN and OUT here) plus the error and hang-up
#: bits (and poll's NVAL), so a table of 64 entries is indexed by their mask as it is.
_POLL_BITS = 63


def _poll_tables(pollin: int, pollout: int) -> DeliveryTables:
    """Tables indexed by a poll-style mask, read as `selectors` reads it: any bit
    but POLLIN (so POLLOUT, or an error or a hang-up) means writable, any bit
    but POLLOUT means readable."""
    return _tables_translating(
        tuple(
            (WRITE if bits & ~pollin else 0) | (READ if bits & ~pollout else 0)
            for bits in range(_POLL_BITS + 1)
        )
    )


#: A wait's batch: each ready descriptor with the bits reported for it.
Batch = List[Tuple[int, int]]

#: `SelectorPoller._batch` between batches (never modified: it is empty).
_NO_BATCH: Batch = []


def selector_unavailable_reason(kind: str) -> Optional[str]:
    """None if selector ``kind`` (or ``auto``) exists here, else why not."""
    if kind == "auto":
        return None
    if kind not in _SELECTOR_CLASSES:
        return f"unknown selector {kind!r}; choose from auto, {', '.join(_SELECTOR_CLASSES)}"
    if not hasattr(selectors, _SELECTOR_CLASSES[kind]):
        return (
            f"the {kind} selector needs {SELECTOR_PLATFORMS[kind]}; this platform is {sys.platform}"
        )
    return None


def _selector_kind(selector: selectors.BaseSelector) -> str:
    for kind, class_name in _SELECTOR_CLASSES.items():
        if type(selector).__name__ == class_name:
            return kind
    return type(selector).__name__


class SelectorPoller(SelfDrivenPoller):
    """The dispatch loop: wait, deliver masked events, run due callbacks and timers.

    This class waits with ``BaseSelector.select()``; `EpollSelectorPoller` and
    `PollSelectorPoller` wait on the kernel object behind the selector instead.
    Registrations go through the selector in every case.
    """

    #: ``tables[interest]`` is a registration's `Registration.data`, its delivery
    #: table, for that interest: ``data[reported]`` is ``reported`` (the bits
    #: `_fetch` reports) translated and masked with the interest, one look-up.
    _delivery_tables: DeliveryTables = SELECTOR_TABLES

    def __init__(self, selector: selectors.BaseSelector) -> None:
        super().__init__()
        self._selector = selector
        self.name = f"selectors-{_selector_kind(selector)}"
        #: The batch being dispatched, and the descriptors in it (made when first needed).
        self._batch: Batch = _NO_BATCH
        self._batch_fds: Optional[Set[int]] = None
        self._waker_read, self._waker_write = socket.socketpair()
        self._waker_read.setblocking(False)
        self._waker_write.setblocking(False)
        #: The waker is in the selector but not among the registrations.
        self._waker_fd = self._waker_read.fileno()
        self._selector_add(self._waker_fd, READ)

    # -- descriptors -------------------------------------------------------

    # The dispatch loop finds a ready descriptor's registration in the base class's
    # map (`Poller._registrations`), which `register` fills after these hooks and
    # `unregister` empties before them; the selector's keys carry no data.

    def _backend_register(self, registration: Registration) -> None:
        registration.data = self._delivery_tables[registration.events]
        if registration.events:
            self._selector_add(registration.fd, registration.events)

    def _backend_modify(self, registration: Registration, events: int) -> None:
        registration.data = self._delivery_tables[events]
        if not registration.events:
            self._selector_add(registration.fd, events)
        elif not events:
            self._selector_remove(registration.fd)
        else:
            try:
                self._selector.modify(registration.fd, _TO_SELECTOR[events])
            except OSError as exc:
                # ENOENT/EBADF: the kernel lost the registration (the descriptor was
                # closed and its number reused); the selector has dropped its key.
                if exc.errno not in (errno.ENOENT, errno.EBADF):
                    raise
                self._selector_add(registration.fd, events)

    def _backend_unregister(self, registration: Registration) -> None:
        # Out of the map already, so an event of this batch fetched for it is dropped.
        registration.data = self._delivery_tables[0]
        self._selector_remove(registration.fd)

    def _selector_add(self, fd: int, interest: int) -> None:
        events = _TO_SELECTOR[interest]
        try:
            self._selector.register(fd, events)
        except KeyError:
            # The selector still holds a stale key for this number (the descriptor
            # was closed and reused while registered): replace it.
            self._selector_remove(fd)
            self._selector.register(fd, events)
        except FileExistsError:
            if not forget_stale_entry(self._selector, fd):
                raise
            self._selector.register(fd, events)
        if self._batch:
            self._drop_from_batch(fd)

    def _drop_from_batch(self, fd: int) -> None:
        """``fd`` was just added while a batch is dispatched: any event of the batch
        still to come for that number was fetched for an earlier registration (of
        a descriptor since closed, perhaps), so it must not reach this one."""
        batch = self._batch
        if self._batch_fds is None:
            self._batch_fds = {number for number, _ in batch}
        if fd in self._batch_fds:
            for index, (number, _) in enumerate(batch):
                if number == fd:
                    batch[index] = (-1, 0)

    def _selector_remove(self, fd: int) -> None:
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            pass  # never in the selector (idle), or already gone

    # -- waking ------------------------------------------------------------

    def _wake(self) -> None:
        try:
            self._waker_write.send(b"\0")
        except (BlockingIOError, InterruptedError):
            pass  # the buffer is full, so a wake-up is already pending
        except OSError:
            if not self._closed:
                raise

    def _drain_waker(self) -> None:
        try:
            while self._waker_read.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _signal_wakeup_fd(self) -> int:
        return self._waker_write.fileno()

    # -- running -----------------------------------------------------------

    def _fetch(self, timeout: Optional[float]) -> Batch:
        """Wait up to ``timeout`` seconds (None: no limit) and return the ready batch."""
        return [(key.fd, selected) for key, selected in self._select(timeout)]

    def _select(self, timeout: Optional[float]) -> List[Tuple[selectors.SelectorKey, int]]:
        return self._selector.select(timeout)

    def _wait(self, timeout: Optional[float]) -> None:
        registrations = self._registrations
        # Each descriptor's registration is looked up as its turn comes: one that an
        # earlier handler unregistered is gone, and one registered again meanwhile
        # has its stale events dropped from the batch (see `_drop_from_batch`).
        batch = self._batch = self._fetch(timeout)
        for fd, reported in batch:
            try:
                registration = registrations[fd]
            except KeyError:
                # The waker, or unregistered by an earlier handler, or stale.
                if fd == self._waker_fd:
                    self._drain_waker()
                continue
            events = registration.data[reported]  # masked with the interest
            if events:
                # A local, not ``registration.handler(...)``: CPython 3.11+ would
                # compile that to a method load, which a slot cannot specialize.
                handler = registration.handler
                try:
                    handler(registration.fileobj, events)
                except Exception:
                    self._dispatch_failed(registration)
        self._end_batch()

    def _end_batch(self) -> None:
        """The batch is dispatched (or `run` ended within it): forget it."""
        self._batch = _NO_BATCH
        self._batch_fds = None

    def _backend_close(self) -> None:
        self._close_queue_and_signals()
        self._selector.close()
        self._waker_read.close()
        self._waker_write.close()


class EpollSelectorPoller(SelectorPoller):
    """epoll(7): waits with the selector's own ``select.epoll`` object.

    ``EpollSelector.select()`` translates the kernel's mask and finds the key
    of every event in Python, with a method call and a tuple each; the dispatch
    loop takes ``epoll.poll()``'s list as it is, with one look-up in the
    registration map and one in the delivery table per event.
    """

    _delivery_tables = _poll_tables(
        getattr(select_module, "EPOLLIN", 1), getattr(select_module, "EPOLLOUT", 4)
    )

    def __init__(self, selector: selectors.BaseSelector) -> None:
        super().__init__(selector)
        self._epoll_wait: EpollWait = wait_of(selector)

    def _fetch(self, timeout: Optional[float]) -> Batch:
        if timeout is None:
            timeout = -1.0
        elif timeout > 0.0:
            # Round up to epoll's millisecond, as selectors does: never wake early and spin.
            timeout = math.ceil(timeout * 1e3) * 1e-3
        try:
            return self._epoll_wait(timeout, len(self._registrations) + 1)  # + the waker
        except InterruptedError:
            return []


class PollSelectorPoller(SelectorPoller):
    """poll(2) and Solaris' /dev/poll: waits with the selector's ``select.poll`` or
    ``select.devpoll`` object directly, for the reason `EpollSelectorPoller` gives."""

    _delivery_tables = _poll_tables(
        getattr(select_module, "POLLIN", 1), getattr(select_module, "POLLOUT", 4)
    )

    def __init__(self, selector: selectors.BaseSelector) -> None:
        super().__init__(selector)
        self._poll_wait: PollWait = wait_of(selector)

    def _fetch(self, timeout: Optional[float]) -> Batch:
        try:
            return self._poll_wait(None if timeout is None else math.ceil(timeout * 1e3))
        except InterruptedError:
            return []


class SelectSelectorPoller(SelectorPoller):
    """select(2): refuses descriptors at or above FD_SETSIZE when they are registered."""

    def _backend_register(self, registration: Registration) -> None:
        check_select_limit(registration.fd)
        super()._backend_register(registration)


class KqueueSelectorPoller(SelectorPoller):
    """kqueue(2): one descriptor may come back as two events (one per filter); merge them."""

    def _select(self, timeout: Optional[float]) -> List[Tuple[selectors.SelectorKey, int]]:
        fetched = self._selector.select(timeout)
        if len(fetched) < 2:
            return fetched
        merged: Dict[int, Tuple[selectors.SelectorKey, int]] = {}
        for key, events in fetched:
            seen = merged.get(key.fd)
            merged[key.fd] = (key, events | seen[1]) if seen is not None else (key, events)
        return list(merged.values())


_POLLER_CLASSES: Dict[str, Callable[[selectors.BaseSelector], SelectorPoller]] = {
    "epoll": EpollSelectorPoller,
    "poll": PollSelectorPoller,
    "devpoll": PollSelectorPoller,
    "select": SelectSelectorPoller,
    "kqueue": KqueueSelectorPoller,
}


def create_selector_poller(selector: str = "auto") -> SelectorPoller:
    """Make a `SelectorPoller` over the named selector (``auto``: DefaultSelector)."""
    if selector == "auto":
        instance: selectors.BaseSelector = selectors.DefaultSelector()
    else:
        reason = selector_unavailable_reason(selector)
        if reason is not None:
            raise ValueError(reason)
        factory: Callable[[], selectors.BaseSelector] = getattr(
            selectors, _SELECTOR_CLASSES[selector]
        )
        instance = factory()
    return _POLLER_CLASSES.get(_selector_kind(instance), SelectorPoller)(instance)


FAMILY = Family(
    name="selectors",
    summary="our own dispatch loop over the stdlib selectors",
    options=(Option("selector", ("auto", *_SELECTOR_CLASSES), "auto", "selector"),),
    variants=tuple(
        VariantSpec(
            f"selectors-{kind}",
            {"selector": kind},
            runs_on,
            descriptor_limit=FD_SETSIZE if kind == "select" else None,
        )
        for kind, runs_on in SELECTOR_PLATFORMS.items()
    ),
    factory=create_selector_poller,
    unavailable_reason=lambda options: selector_unavailable_reason(options["selector"]),
)
