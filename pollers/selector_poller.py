"""`SelectorPoller`: our own dispatch loop over a `selectors.BaseSelector`.

One loop for every selector; the few differences live in short subclasses:
`select` refuses descriptors it cannot hold, `kqueue` merges the two events
(one per filter) that it may return for one descriptor in a batch.
"""

from __future__ import annotations

import collections
import errno
import selectors
import signal
import socket
import sys
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from .base import READ, WRITE, Callback, Poller, Registration

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
    "select": "every platform",
    "devpoll": "Solaris and illumos",
}

#: select(2) cannot watch a descriptor at or above FD_SETSIZE, which is 1024 on
#: Linux (glibc) and FreeBSD; CPython does not export the constant.
FD_SETSIZE = 1024

_TO_SELECTOR = {0: 0, READ: selectors.EVENT_READ, WRITE: selectors.EVENT_WRITE,
                READ | WRITE: selectors.EVENT_READ | selectors.EVENT_WRITE}
# selectors' EVENT_READ/EVENT_WRITE are 1 and 2; ours are Tornado's 1 and 4.
_FROM_SELECTOR = (0, READ, WRITE, READ | WRITE)

#: ``_DELIVER[interest][selected]``: the events to hand a handler whose current interest
#: is ``interest`` (our bits) when the selector reported ``selected`` (its bits).
_DELIVER: Dict[int, Tuple[int, ...]] = {
    interest: tuple(bits & interest for bits in _FROM_SELECTOR) for interest in _TO_SELECTOR
}

#: Each registration's selector data (``key.data``, also its ``backend_data``) is a list
#: ``[_DELIVER[current interest], handler, fileobj]``: the dispatch loop unpacks it, cheaper
#: than attribute look-ups on a registration object, and `SelectorPoller` replaces its
#: first item whenever the interest changes, so dispatch masks with the current interest.
_DELIVERY, _HANDLER, _FILEOBJ = range(3)
DispatchData = List[Any]


def selector_unavailable_reason(kind: str) -> Optional[str]:
    """None if selector ``kind`` exists here, else why not."""
    if kind not in _SELECTOR_CLASSES:
        return f"unknown selector {kind!r}; choose from auto, {', '.join(_SELECTOR_CLASSES)}"
    if not hasattr(selectors, _SELECTOR_CLASSES[kind]):
        return (
            f"the {kind} selector needs {SELECTOR_PLATFORMS[kind]}; "
            f"this platform is {sys.platform}"
        )
    return None


def forget_stale_kernel_entry(selector: selectors.BaseSelector, fd: int) -> bool:
    """Delete the kernel's entry for ``fd`` behind ``selector``'s back; False if impossible.

    For EEXIST on add: the kernel still holds this number (a dup of the closed
    descriptor kept its epoll entry alive, and the number now names that same
    socket again) though the selector has no key for it. As libevent does,
    delete the stale kernel entry so that the caller can add it again.
    """
    kernel = getattr(selector, "_selector", None)  # the select.epoll / devpoll object
    unregister = getattr(kernel, "unregister", None)
    if unregister is None:
        return False
    try:
        unregister(fd)
    except OSError:
        return False
    return True


def _selector_kind(selector: selectors.BaseSelector) -> str:
    for kind, class_name in _SELECTOR_CLASSES.items():
        if type(selector).__name__ == class_name:
            return kind
    return type(selector).__name__


class SelectorPoller(Poller):
    """The dispatch loop: select, deliver masked events, run due timers and callbacks."""

    def __init__(self, selector: selectors.BaseSelector) -> None:
        super().__init__()
        self._selector = selector
        self.name = f"selectors-{_selector_kind(selector)}"
        self._ready: Deque[Tuple[Callback, Tuple[Any, ...]]] = collections.deque()
        self._stopping = False
        self._waker_read, self._waker_write = socket.socketpair()
        self._waker_read.setblocking(False)
        self._waker_write.setblocking(False)
        waker: DispatchData = [_DELIVER[READ], self._drain_waker, self._waker_read]
        selector.register(self._waker_read.fileno(), selectors.EVENT_READ, waker)
        self._old_wakeup_fd: Optional[int] = None
        self._old_signal_handlers: Dict[int, Any] = {}

    # -- descriptors -------------------------------------------------------

    def _backend_register(self, registration: Registration) -> None:
        data: DispatchData = [
            _DELIVER[registration.events], registration.handler, registration.fileobj
        ]
        registration.backend_data = data
        if registration.events:
            self._selector_add(registration.fd, registration.events, data)

    def _backend_modify(self, registration: Registration, events: int) -> None:
        data: DispatchData = registration.backend_data
        data[_DELIVERY] = _DELIVER[events]
        if not registration.events:
            self._selector_add(registration.fd, events, data)
        elif not events:
            self._selector_remove(registration.fd)
        else:
            try:
                self._selector.modify(registration.fd, _TO_SELECTOR[events], data)
            except OSError as exc:
                # ENOENT/EBADF: the kernel lost the registration (the descriptor was
                # closed and its number reused); the selector has dropped its key.
                if exc.errno not in (errno.ENOENT, errno.EBADF):
                    raise
                self._selector_add(registration.fd, events, data)

    def _backend_unregister(self, registration: Registration) -> None:
        registration.backend_data[_DELIVERY] = _DELIVER[0]  # an event of this batch is dropped
        self._selector_remove(registration.fd)

    def _selector_add(self, fd: int, interest: int, data: DispatchData) -> None:
        events = _TO_SELECTOR[interest]
        try:
            self._selector.register(fd, events, data)
        except KeyError:
            # The selector still holds a stale key for this number (the descriptor
            # was closed and reused while registered): replace it.
            self._selector_remove(fd)
            self._selector.register(fd, events, data)
        except FileExistsError:
            if not forget_stale_kernel_entry(self._selector, fd):
                raise
            self._selector.register(fd, events, data)

    def _selector_remove(self, fd: int) -> None:
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            pass  # never in the selector (idle), or already gone

    # -- callbacks ---------------------------------------------------------

    def call_soon(self, callback: Callback, *args: Any) -> None:
        self._check_usable()
        self._ready.append((callback, args))

    def call_soon_threadsafe(self, callback: Callback, *args: Any) -> None:
        self._check_usable()
        self._ready.append((callback, args))  # deque.append is atomic
        self._wake()

    def _wake(self) -> None:
        try:
            self._waker_write.send(b"\0")
        except (BlockingIOError, InterruptedError):
            pass  # the buffer is full, so a wake-up is already pending
        except OSError:
            if not self._closed:
                raise

    def _drain_waker(self, sock: socket.socket, events: int) -> None:
        try:
            while sock.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _backend_first_deadline_changed(self, when: float) -> None:
        pass  # the loop reads the heap before every wait

    def _backend_add_signal_handler(
        self, sig: int, callback: Callback, args: Tuple[Any, ...]
    ) -> None:
        if self._old_wakeup_fd is None:
            # The C-level handler writes the signal number here, so a blocked
            # select() returns and the Python-level handler below gets to run.
            self._old_wakeup_fd = signal.set_wakeup_fd(
                self._waker_write.fileno(), warn_on_full_buffer=False
            )
        ready = self._ready

        def on_signal(signum: int, frame: Any) -> None:
            ready.append((callback, args))

        previous = signal.signal(sig, on_signal)
        self._old_signal_handlers.setdefault(sig, previous)

    # -- running -----------------------------------------------------------

    def _select(self, timeout: Optional[float]) -> List[Tuple[selectors.SelectorKey, int]]:
        return self._selector.select(timeout)

    def _handler_raised(self, fd: int, data: DispatchData) -> None:
        """The handler of ``data`` raised: log it and unregister it if it is still registered."""
        registration = self._registrations.get(fd)
        if registration is None or registration.backend_data is not data:
            # Unregistered (perhaps replaced) by the handler itself: only log.
            registration = Registration(fd, data[_FILEOBJ], data[_HANDLER], 0)
        self._dispatch_failed(registration)

    def _backend_run(self) -> None:
        select = self._select
        ready = self._ready
        timers = self._timers
        monotonic = time.monotonic
        run_callback = self._run_callback
        try:
            while True:
                if ready or self._stopping:  # stop() before run(): one pass, no waiting
                    timeout: Optional[float] = 0.0
                else:
                    deadline = timers.first_deadline()
                    if deadline is None:
                        timeout = None
                    else:
                        timeout = max(0.0, deadline - monotonic())
                for key, selected in select(timeout):
                    delivery, handler, fileobj = key.data  # see DispatchData
                    events = delivery[selected]  # masked with the current interest
                    if events:
                        try:
                            handler(fileobj, events)
                        except Exception:
                            self._handler_raised(key.fd, key.data)
                # Callbacks queued so far run before the timers due now, as on asyncio;
                # what either of them queues runs on the next pass.
                for _ in range(len(ready)):
                    callback, args = ready.popleft()
                    run_callback(callback, args)
                if timers:
                    self._run_due_timers()
                if self._stopping:
                    break
        finally:
            self._stopping = False

    def stop(self) -> None:
        self._check_usable()
        self._stopping = True

    def _backend_close(self) -> None:
        if self._old_wakeup_fd is not None:
            signal.set_wakeup_fd(self._old_wakeup_fd)
            for sig, previous in self._old_signal_handlers.items():
                signal.signal(sig, previous)
        self._ready.clear()
        self._selector.close()
        self._waker_read.close()
        self._waker_write.close()


class SelectSelectorPoller(SelectorPoller):
    """select(2): refuses descriptors at or above FD_SETSIZE when they are registered."""

    def _backend_register(self, registration: Registration) -> None:
        if registration.fd >= FD_SETSIZE:
            raise ValueError(
                f"descriptor {registration.fd} is too large for select(), which only "
                f"handles descriptors below FD_SETSIZE ({FD_SETSIZE}); use epoll, kqueue or poll"
            )
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
    kind = _selector_kind(instance)
    if kind == "select":
        return SelectSelectorPoller(instance)
    if kind == "kqueue":
        return KqueueSelectorPoller(instance)
    return SelectorPoller(instance)
