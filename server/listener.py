"""The accept loop: `Listener` accepts on listening sockets through a `Poller`.

The sockets come from `server.endpoints` (or from the caller); here they are only
accepted on:

- a bounded batch of ``accept`` calls per readiness event, so a flood of
  connections cannot starve the connections already open;
- ``EMFILE``/``ENFILE``/``ENOBUFS``/``ENOMEM`` stop accepting for a back-off
  (interest set to NONE, resumed by a ``call_later`` timer, doubling up to
  `MAX_BACKOFF`) with one log line per back-off, so a listener that cannot
  accept never spins; `Listener.descriptor_freed` ends a back-off early;
- any other accept error, and anything the accept handler raises (a bug, in
  ``accept`` or in the ``on_accepted`` hand-over), backs off the same way, with
  the traceback logged once: the listener stays registered and resumes, rather
  than being unregistered by the poller for good;
- `Listener.pause`/`Listener.resume` let the owner stop accepting (e.g. while
  ``max_connections`` is reached) independently of any back-off.

States (`AcceptState`): ``ACCEPTING``, ``PAUSED`` (by the owner),
``BACKING_OFF`` (after a resource error), ``CLOSED``. The interest of every
listening socket is derived from the state in one place, `Listener._apply`.
"""

from __future__ import annotations

import enum
import errno
import logging
import socket
from typing import Callable, List, Optional

from pollers import Poller, Timer
from pollers.base import READ

from .endpoints import Address, socket_name

logger = logging.getLogger("server.listener")

#: accept() errors meaning "out of descriptors or memory": back off.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: accept() errors about one failed connection: skip it and go on.
TRANSIENT_ERRNOS = frozenset(
    {
        errno.ECONNABORTED,
        errno.ECONNRESET,
        errno.EPROTO,
        errno.EPERM,
        errno.ENETDOWN,
        errno.ENOPROTOOPT,
        errno.EHOSTDOWN,
        errno.ENONET,
        errno.EHOSTUNREACH,
        errno.EOPNOTSUPP,
        errno.ENETUNREACH,
    }
)

ACCEPT_BATCH = 64
MIN_BACKOFF = 0.05
MAX_BACKOFF = 1.0


class AcceptState(enum.Enum):
    ACCEPTING = "accepting"
    PAUSED = "paused"
    BACKING_OFF = "backing off"
    CLOSED = "closed"


class Listener:
    """Accepts connections on ``sockets`` and hands each to ``on_accepted``.

    ``on_accepted(sock)`` receives a nonblocking socket and owns it from then on;
    it may call `pause` to stop the current batch. If it raises, the listener
    closes that socket and backs off.
    """

    def __init__(
        self,
        poller: Poller,
        sockets: List[socket.socket],
        on_accepted: Callable[[socket.socket], None],
        batch: int = ACCEPT_BATCH,
    ) -> None:
        self._poller = poller
        self.sockets = sockets
        self._on_accepted = on_accepted
        self._batch = batch
        self._paused = False
        self._closed = False
        self._backoff_timer: Optional[Timer] = None
        self._backoff = MIN_BACKOFF
        self._interest = 0
        #: How many times accepting backed off after a resource error.
        self.backoffs = 0
        #: The bound (host, port) of each TCP socket (kept after `close`).
        self.addresses: List[Address] = [
            sock.getsockname()[:2] for sock in sockets if sock.family != socket.AF_UNIX
        ]
        #: Every socket as messages name it (``[::1]:7007``, ``unix:PATH``).
        self.names: List[str] = [socket_name(sock) for sock in sockets]

    @property
    def state(self) -> AcceptState:
        if self._closed:
            return AcceptState.CLOSED
        if self._backoff_timer is not None:
            return AcceptState.BACKING_OFF
        if self._paused:
            return AcceptState.PAUSED
        return AcceptState.ACCEPTING

    def start(self) -> None:
        """Register every listening socket (with the interest the state implies)."""
        for sock in self.sockets:
            self._poller.register(sock, 0, self._on_readable)
        self._apply()

    def pause(self) -> None:
        """Stop accepting until `resume` (a back-off in progress carries on meanwhile)."""
        self._paused = True
        self._apply()

    def resume(self) -> None:
        self._paused = False
        self._apply()

    def descriptor_freed(self) -> None:
        """A descriptor was closed: end a back-off now, as accept() may work again."""
        if self._backoff_timer is not None:
            self._backoff_timer.cancel()
            self._end_backoff()

    def close(self) -> None:
        """Stop accepting for good and close the listening sockets. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._backoff_timer is not None:
            self._backoff_timer.cancel()
            self._backoff_timer = None
        for sock in self.sockets:
            if not self._poller.closed:
                self._poller.unregister(sock)
            sock.close()

    # -- internals -----------------------------------------------------------

    def _apply(self) -> None:
        """Set the interest of every listening socket from the state."""
        if self._closed:
            return
        interest = READ if self.state is AcceptState.ACCEPTING else 0
        if interest != self._interest:
            self._interest = interest
            for sock in self.sockets:
                self._poller.modify(sock, interest)

    def _on_readable(self, listening: socket.socket, events: int) -> None:
        """Poller handler: accept a batch; back off instead of raising into the poller."""
        try:
            self._accept_batch(listening)
        except Exception:
            if self._closed or self._backoff_timer is not None:
                logger.exception("accepting raised")
            else:
                self._back_off(None)

    def _accept_batch(self, listening: socket.socket) -> None:
        accept = listening.accept
        on_accepted = self._on_accepted
        for _ in range(self._batch):
            try:
                sock, _address = accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in TRANSIENT_ERRNOS:
                    continue
                self._back_off(exc)
                return
            sock.setblocking(False)
            if sock.family != socket.AF_UNIX:
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass  # the peer may already be gone; the connection will notice
            try:
                on_accepted(sock)
            except BaseException:
                sock.close()  # not handed over: never leave it open and unowned
                raise
            self._backoff = MIN_BACKOFF  # accepting works: the next back-off starts short
            if self._interest == 0:  # paused (or closed) by the owner
                return

    def _back_off(self, exc: Optional[OSError]) -> None:
        """Stop accepting for a while after ``exc`` (None: the accept handler raised);
        never spin on a full descriptor table or on a fault that repeats."""
        delay = self._backoff
        self._backoff = min(delay * 2, MAX_BACKOFF)
        self.backoffs += 1
        if exc is None:  # called in the ``except`` block: the traceback is current
            logger.exception("accepting raised; not accepting for %.2f s", delay)
        else:
            level = logging.WARNING if exc.errno in RESOURCE_ERRNOS else logging.ERROR
            logger.log(level, "accept() failed: %s; not accepting for %.2f s", exc, delay)
        self._backoff_timer = self._poller.call_later(delay, self._end_backoff)
        self._apply()

    def _end_backoff(self) -> None:
        self._backoff_timer = None
        self._apply()
