"""`TornadoPoller`: descriptors through Tornado's ``IOLoop.add_handler``.

Tornado is given the descriptor *number*, never the object: Tornado looks a
handler up by ``fileno()``, which a closed socket reports as -1, so handing it
objects would strand a closed socket's handler and refuse its reused number.
Callbacks and timers go through the IOLoop (``add_callback``, ``call_later``).
`TornadoPoller` makes its own IOLoop; `AttachedTornadoPoller` (`pollers.attach`)
sits on the caller's.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Mapping, Optional

from .base import Callback, Poller, Registration
from .family import Family, VariantSpec, attached_forms
from .loop_base import (
    LOOP_OPTION,
    AttachedLoopPoller,
    LoopBackedPoller,
    loop_kind,
    loop_unavailable_reason,
    new_event_loop,
)


def tornado_unavailable_reason() -> Optional[str]:
    try:
        import tornado.ioloop  # noqa: F401
    except ImportError as exc:
        return f"tornado is not installed ({exc}); pip install tornado"
    return None


def _unavailable_reason(options: Mapping[str, str]) -> Optional[str]:
    return tornado_unavailable_reason() or loop_unavailable_reason(options["loop"])


class TornadoPoller(LoopBackedPoller):
    def __init__(self, loop: str = "asyncio") -> None:
        self._ioloop = self._make_ioloop(loop)
        super().__init__(self._ioloop.asyncio_loop)
        self.name = "tornado" if loop == "asyncio" else f"tornado-{loop}"

    def _make_ioloop(self, kind: str) -> Any:
        """The IOLoop to sit on: a new one over a new ``kind`` loop (attached: the host's)."""
        from tornado.platform.asyncio import AsyncIOLoop

        return AsyncIOLoop(asyncio_loop=new_event_loop(kind), make_current=False)

    # -- descriptors -------------------------------------------------------

    def _make_dispatcher(self, registration: Registration) -> Callable[[int, int], None]:
        def dispatch(fd: int, events: int) -> None:
            events &= registration.events
            if events:
                handler = registration.handler  # a local: see SelectorPoller._wait
                try:
                    handler(registration.fileobj, events)
                except Exception:
                    self._dispatch_failed(registration)

        return dispatch

    def _backend_register(self, registration: Registration) -> None:
        fd = registration.fd
        dispatcher = self._make_dispatcher(registration)

        def add() -> None:
            try:
                self._ioloop.add_handler(fd, dispatcher, registration.events)
            except OSError:
                # Tornado recorded the handler before asyncio refused the descriptor.
                self._remove_handler(fd)
                raise

        self._add_forgetting_stale_entry(fd, add)

    def _backend_modify(self, registration: Registration, events: int) -> None:
        fd = registration.fd
        try:
            self._add_forgetting_stale_entry(fd, lambda: self._ioloop.update_handler(fd, events))
        except FileNotFoundError:
            # ENOENT: the descriptor was closed and its number reused while registered,
            # so the kernel lost the entry and asyncio dropped it; Tornado's tables
            # still list it. As libevent does, start over and add it again.
            self._remove_handler(fd)
            self._ioloop.add_handler(fd, self._make_dispatcher(registration), events)

    def _backend_unregister(self, registration: Registration) -> None:
        self._remove_handler(registration.fd)

    def _remove_handler(self, fd: int) -> None:
        # For a closed descriptor with both a reader and a writer, asyncio's
        # remove_reader goes through selector.modify(), which fails (EBADF) after
        # dropping the selector's key, and Tornado then keeps the descriptor in its
        # tables (so its number could never be registered again). Each attempt
        # clears more of that state; the second one finds no key and completes.
        for _ in range(3):
            try:
                self._ioloop.remove_handler(fd)
                return
            except (OSError, ValueError):
                continue

    # -- callbacks, timers, running ---------------------------------------

    def call_soon(self, callback: Callback, *args: Any) -> None:
        self._check_usable()
        self._ioloop.add_callback(self._run_callback, callback, args)

    def call_soon_threadsafe(self, callback: Callback, *args: Any) -> None:
        self._check_usable()
        self._ioloop.add_callback(self._run_callback, callback, args)

    def _schedule(self, delay: float, callback: Callback) -> Any:
        return self._ioloop.call_later(delay, callback)

    def _unschedule(self, handle: Any) -> None:
        self._ioloop.remove_timeout(handle)

    def _backend_run(self) -> None:
        self._ioloop.start()

    def stop(self) -> None:
        self._check_usable()
        self._ioloop.stop()

    def _backend_close(self) -> None:
        # IOLoop.close() removes every handler itself, and fails on a closed one.
        for fd in list(self._ioloop.handlers):
            self._remove_handler(fd)
        self._ioloop.close(all_fds=False)


class AttachedTornadoPoller(AttachedLoopPoller, TornadoPoller):
    """A `TornadoPoller` on the caller's IOLoop (`pollers.attach`); see `AttachedLoopPoller`.

    Its handlers go through ``IOLoop.add_handler`` and its timer and callbacks
    through ``call_later`` and ``add_callback``, as the owned poller's do; `run`
    is ``IOLoop.start()`` and a `run` in progress ends with ``IOLoop.stop()``.
    """

    def __init__(self, host: Any) -> None:
        self._host_ioloop = host
        super().__init__(loop_kind(host.asyncio_loop))

    def _make_ioloop(self, kind: str) -> Any:
        return self._host_ioloop

    def _stop_loop(self) -> None:
        self._ioloop.stop()


def _attach(host: object, **options: Any) -> Optional[Poller]:
    ioloop = sys.modules.get("tornado.ioloop")  # not imported: host cannot be an IOLoop
    if ioloop is None or not isinstance(host, ioloop.IOLoop):
        return None
    if options:
        raise TypeError(f"attaching to a Tornado IOLoop takes no options, got {sorted(options)}")
    if not hasattr(host, "asyncio_loop"):
        raise TypeError(f"{type(host).__name__} is not an asyncio-based IOLoop (Tornado 5+)")
    return AttachedTornadoPoller(host)


_VARIANTS = (
    VariantSpec("tornado", {"loop": "asyncio"}, "anywhere Tornado runs"),
    VariantSpec("tornado-uvloop", {"loop": "uvloop"}, "CPython with uvloop"),
)

FAMILY = Family(
    name="tornado",
    summary="Tornado's IOLoop.add_handler / update_handler / remove_handler",
    options=(LOOP_OPTION,),
    variants=_VARIANTS,
    factory=TornadoPoller,
    unavailable_reason=_unavailable_reason,
    merges_read_and_write=False,
    libraries=("tornado", "uvloop"),
    attach=_attach,
    attach_accepts="a Tornado IOLoop (IOLoop.current())",
    attached_variants=attached_forms(_VARIANTS),
)
