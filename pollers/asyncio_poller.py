"""`AsyncioPoller`: descriptors through ``loop.add_reader``/``add_writer``.

The loop is the poller's own (``asyncio`` or ``uvloop``), never the caller's.
asyncio reports read and write readiness of one descriptor as two callbacks;
each is masked with the current interest, so a dropped interest never fires.
"""

from __future__ import annotations

from typing import Any

from .base import READ, WRITE, Callback, Registration
from .loop_base import LoopBackedPoller, new_event_loop


class AsyncioPoller(LoopBackedPoller):
    def __init__(self, loop: str = "asyncio") -> None:
        super().__init__(new_event_loop(loop))
        self.name = "asyncio" if loop == "asyncio" else f"asyncio-{loop}"

    # -- descriptors -------------------------------------------------------

    def _on_ready(self, registration: Registration, event: int) -> None:
        """The loop's reader (``event`` READ) or writer (WRITE) callback."""
        if registration.events & event:
            try:
                registration.handler(registration.fileobj, event)
            except Exception:
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
        loop = self._asyncio_loop
        fd = registration.fd
        if new & READ and not old & READ:
            self._add_forgetting_stale_entry(
                fd, lambda: loop.add_reader(fd, self._on_ready, registration, READ)
            )
        elif old & READ and not new & READ:
            loop.remove_reader(fd)
        if new & WRITE and not old & WRITE:
            self._add_forgetting_stale_entry(
                fd, lambda: loop.add_writer(fd, self._on_ready, registration, WRITE)
            )
        elif old & WRITE and not new & WRITE:
            loop.remove_writer(fd)

    # -- callbacks, timers, running ---------------------------------------

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

    def _backend_close(self) -> None:
        self._asyncio_loop.close()
