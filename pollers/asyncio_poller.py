"""`AsyncioPoller`: descriptors through ``loop.add_reader``/``add_writer``.

The loop is the poller's own (``asyncio`` or ``uvloop``); `AttachedAsyncioPoller`
(`pollers.attach`) sits on the caller's instead.
asyncio reports read and write readiness of one descriptor as two callbacks,
READ and WRITE, each delivered at most once per pass.

How a ready descriptor reaches its handler depends on the loop, because the
two loops make different costs matter:

- ``asyncio``: the loop calls a ready callback (one for READ and one for
  WRITE, shared by every registration, see `AsyncioPoller._ready_callback`),
  which masks the event with the current interest and turns a raising handler
  into `Poller._dispatch_failed`. It costs one Python frame per event and no
  memory per registration beyond the loop's own handle.
- ``uvloop``: the loop calls the handler itself, ``handler(fileobj, event)``,
  with no Python frame in between, since on uvloop that frame is the largest
  cost of an event that the poller adds.
  A dropped interest is masked by the loop: ``remove_reader``/``remove_writer``
  cancel the handle, and a cancelled handle is not run even if its event was
  fetched in the same batch (behaviour 3). A raising handler reaches the loop's
  exception handler, which finds its registration through `_SERVED` (behaviour
  6); that costs a context per watched direction.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, Callable, Dict, Optional

from .base import READ, WRITE, Poller, Registration
from .family import Family, VariantSpec, attached_forms
from .loop_base import (
    LOOP_OPTION,
    LOOP_RUNS_ON,
    AttachedLoopPoller,
    LoopBackedPoller,
    loop_kind,
    loop_unavailable_reason,
    new_event_loop,
)

_SERVED: contextvars.ContextVar[Registration] = contextvars.ContextVar("pollers_served")
"""On uvloop: the registration whose handler the running reader/writer handle calls.

A handle runs its callback in the context that was current when it was made, and
uvloop also calls the loop's exception handler from inside that context (its
``Handle._run`` leaves the context only after ``call_exception_handler``; its
handles expose neither their callback nor their context). So each reader and
writer handle is added from a copy of the current context in which this variable
names its registration. Handles that other code makes while a handler runs inherit
the value too, but the poller runs every callback, timer and signal handler of its
user inside `Poller._run_callback`, which catches `Exception`; so an `Exception`
that reaches the exception handler with this variable set was raised by that
registration's handler.
"""

#: Loops on which handlers are called directly (see the module docstring).
_DIRECT_DISPATCH_LOOPS = frozenset({"uvloop"})

_AddCallback = Callable[..., Any]  # loop.add_reader / loop.add_writer


class AsyncioPoller(LoopBackedPoller):
    def __init__(self, loop: str = "asyncio") -> None:
        super().__init__(self._event_loop(loop))
        self.name = "asyncio" if loop == "asyncio" else f"asyncio-{loop}"
        self._watch: Callable[[_AddCallback, Registration, int], None]
        if loop in _DIRECT_DISPATCH_LOOPS:
            self._watch = self._watch_directly
            self._take_exception_handler()
        else:
            self._watch = self._watch_through_on_ready
        self._ready_callbacks = {
            READ: self._ready_callback(READ),
            WRITE: self._ready_callback(WRITE),
        }

    def _event_loop(self, kind: str) -> asyncio.AbstractEventLoop:
        """The loop to sit on: a new one of ``kind`` (the attached poller's: the host's)."""
        return new_event_loop(kind)

    def _take_exception_handler(self) -> None:
        self._asyncio_loop.set_exception_handler(self._on_loop_exception)

    # -- descriptors -------------------------------------------------------

    def _ready_callback(self, event: int) -> Callable[[Registration], None]:
        """The loop's reader (``event`` READ) or writer (WRITE) callback on asyncio.

        One per direction, shared by every registration; its single argument keeps
        the loop's per-handle argument tuple, paid per watched descriptor, at one item.
        """
        dispatch_failed = self._dispatch_failed

        def on_ready(registration: Registration) -> None:
            if registration.events & event:
                handler = registration.handler  # a local: see SelectorPoller._wait
                try:
                    handler(registration.fileobj, event)
                except Exception:
                    dispatch_failed(registration)

        return on_ready

    def _watch_through_on_ready(
        self, add: _AddCallback, registration: Registration, event: int
    ) -> None:
        fd = registration.fd
        on_ready = self._ready_callbacks[event]
        self._add_forgetting_stale_entry(fd, lambda: add(fd, on_ready, registration))

    def _watch_directly(self, add: _AddCallback, registration: Registration, event: int) -> None:
        contextvars.copy_context().run(self._add_served, add, registration, event)

    def _add_served(self, add: _AddCallback, registration: Registration, event: int) -> None:
        """Runs in the context the new handle copies: `_SERVED` names ``registration``."""
        _SERVED.set(registration)
        fd = registration.fd
        handler = registration.handler
        fileobj = registration.fileobj
        self._add_forgetting_stale_entry(fd, lambda: add(fd, handler, fileobj, event))

    def _on_loop_exception(self, loop: Any, context: Dict[str, Any]) -> None:
        """The loop's exception handler where handlers are called directly."""
        registration = None
        if isinstance(context.get("exception"), Exception):
            registration = _SERVED.get(None)
        if registration is None:
            loop.default_exception_handler(context)
        else:
            # Called inside the handle's ``except`` block: the exception is current.
            self._dispatch_failed(registration)

    def _backend_register(self, registration: Registration) -> None:
        self._set_interest(registration, 0, registration.events)

    def _backend_modify(self, registration: Registration, events: int) -> None:
        try:
            self._set_interest(registration, registration.events, events)
        except FileNotFoundError:
            # ENOENT: the descriptor was closed and its number reused while registered,
            # so the kernel lost the entry and asyncio's selector dropped its key
            # (reader and writer both). As libevent does, add the interest again.
            self._set_interest(registration, 0, events)

    def _backend_unregister(self, registration: Registration) -> None:
        try:
            self._set_interest(registration, READ | WRITE, 0)
        except (OSError, ValueError):
            pass  # the descriptor was closed: the loop has forgotten it already

    def _set_interest(self, registration: Registration, old: int, new: int) -> None:
        """Add or remove the loop's reader and writer; removing one cancels its handle."""
        loop = self._asyncio_loop
        if new & READ and not old & READ:
            self._watch(loop.add_reader, registration, READ)
        elif old & READ and not new & READ:
            loop.remove_reader(registration.fd)
        if new & WRITE and not old & WRITE:
            self._watch(loop.add_writer, registration, WRITE)
        elif old & WRITE and not new & WRITE:
            loop.remove_writer(registration.fd)

    # -- callbacks, timers, running: `LoopBackedPoller`'s ---------------------

    def _backend_close(self) -> None:
        self._asyncio_loop.close()


class AttachedAsyncioPoller(AttachedLoopPoller, AsyncioPoller):
    """An `AsyncioPoller` on the caller's loop (`pollers.attach`); see `AttachedLoopPoller`.

    On uvloop, where handlers are called directly, a raising handler still reaches
    `Poller._dispatch_failed` through the loop's exception handler: this poller
    installs its own in front of the host's, passes every other exception on to
    the host's (or the loop's default), and puts the host's back at `close`. A
    host that sets another exception handler after attaching takes that path back.
    """

    def __init__(self, host: asyncio.AbstractEventLoop) -> None:
        self._host_loop = host
        self._host_exception_handler: Optional[Callable[..., object]] = None
        super().__init__(loop_kind(host))

    def _event_loop(self, kind: str) -> asyncio.AbstractEventLoop:
        return self._host_loop

    def _take_exception_handler(self) -> None:
        self._host_exception_handler = self._host_loop.get_exception_handler()
        self._host_loop.set_exception_handler(self._on_loop_exception)

    def _on_loop_exception(self, loop: Any, context: Dict[str, Any]) -> None:
        registration = None
        if isinstance(context.get("exception"), Exception):
            registration = _SERVED.get(None)
        previous = self._host_exception_handler
        if registration is not None and (
            self._registrations.get(registration.fd) is registration
            or not isinstance(getattr(previous, "__self__", None), AttachedAsyncioPoller)
        ):
            self._dispatch_failed(registration)  # ours (or no other poller's)
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def _stop_loop(self) -> None:
        self._asyncio_loop.stop()

    def _backend_close(self) -> None:
        if self._host_loop.get_exception_handler() == self._on_loop_exception:
            self._host_loop.set_exception_handler(self._host_exception_handler)


def _attach(host: object, **options: Any) -> Optional[Poller]:
    if not isinstance(host, asyncio.AbstractEventLoop):
        return None
    if options:
        raise TypeError(f"attaching to an asyncio loop takes no options, got {sorted(options)}")
    return AttachedAsyncioPoller(host)


_VARIANTS = tuple(
    VariantSpec("asyncio" if loop == "asyncio" else f"asyncio-{loop}", {"loop": loop}, runs_on)
    for loop, runs_on in LOOP_RUNS_ON.items()
)

FAMILY = Family(
    name="asyncio",
    summary="loop.add_reader / add_writer on an asyncio event loop",
    options=(LOOP_OPTION,),
    variants=_VARIANTS,
    factory=AsyncioPoller,
    unavailable_reason=lambda options: loop_unavailable_reason(options["loop"]),
    merges_read_and_write=False,
    libraries=("uvloop",),
    attach=_attach,
    attach_accepts="an asyncio event loop (asyncio.AbstractEventLoop, uvloop's included)",
    attached_variants=attached_forms(_VARIANTS),
)
