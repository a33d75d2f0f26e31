"""One echo connection as an explicit state machine.

States (`State`):

``OPEN``
    Reading and echoing. Interest: READ, plus WRITE while bytes are owed.
``PAUSED``
    Backpressure: at least ``high_water`` bytes are owed because the client
    does not read. Interest: WRITE only; back to ``OPEN`` once the owed bytes
    fall to ``low_water`` or below.
``DRAINING``
    The peer sent EOF. Interest: WRITE until everything owed is sent; then
    ``shutdown(SHUT_WR)`` and close.
``CLOSED``
    Unregistered and closed; terminal.

When the owner drains (a shutdown) it keeps serving every connection as usual
and calls `Connection.end_if_quiet` at intervals, which ends a connection once
it owes nothing and nothing has moved on it since the previous call: then
``shutdown(SHUT_WR)`` and close, so the client has got every byte and gets EOF.

Where the state changes: `Connection._peer_closed` (OPEN to DRAINING, on the
peer's EOF), `Connection._settle` (the owed byte count moves OPEN and PAUSED into
each other, and finishes DRAINING once nothing is owed) and `Connection.close`
(anything to CLOSED: the end of DRAINING, `end_if_quiet`, a socket error, a
handler that raised and the owner's own close all end there). `_settle` also
derives the interest mask from the state and calls ``poller.modify`` only when
the mask actually changes.

The socket calls are the connection's own, not a layer's below it: `handle`, the
poller handler, reads with ``recv_into`` into a buffer shared by every connection
of a server (so an idle connection holds no buffer at all), at most
``read_budget`` bytes per readiness event for fairness, and sends each chunk at
once; only what the kernel did not take is copied into a per-connection
`SendQueue` (``None`` when nothing is owed), which `_flush` sends on WRITE.
`_finish` sends the FIN; `end_if_quiet` peeks (``MSG_PEEK``) for bytes the kernel
still holds. The handler receives plain ints and does no logging, no clock
reading and no allocation per event beyond one memoryview slice per chunk.
"""

from __future__ import annotations

import enum
import errno
import logging
import socket
from typing import Optional, Protocol

from pollers import Poller
from pollers.base import READ, WRITE

from .send_queue import SendQueue

logger = logging.getLogger("server.connection")

#: Errors that mean "the peer went away": the connection closes without a log line.
QUIET_ERRNOS = frozenset(
    {
        errno.ECONNRESET,
        errno.EPIPE,
        errno.ENOTCONN,
        errno.ECONNABORTED,
        errno.ETIMEDOUT,
        errno.ESHUTDOWN,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EHOSTDOWN,
    }
)


class State(enum.Enum):
    """The states of a `Connection`; see the module docstring."""

    OPEN = "open"
    PAUSED = "paused"
    DRAINING = "draining"
    CLOSED = "closed"


# Module-level aliases: identity checks against them are the cheapest test.
OPEN = State.OPEN
PAUSED = State.PAUSED
DRAINING = State.DRAINING
CLOSED = State.CLOSED


class ConnectionOwner(Protocol):
    """What a connection needs from the server that owns it: the poller it is
    registered with, the tuning it follows, the buffer it reads into, and a call
    when it closes. The connection reaches the poller and the tuning through its
    owner rather than holding them itself, so that an idle connection is smaller."""

    @property
    def poller(self) -> Poller:
        """The poller every connection of this owner is registered with."""

    @property
    def limits(self) -> Limits:
        """The tuning every connection of this owner follows."""

    @property
    def read_buffer(self) -> memoryview:
        """The buffer every connection of this owner reads into and echoes from,
        ``limits.buffer_size`` bytes long.

        One is enough because the poller runs one handler at a time and a handler
        sends (or copies into its `SendQueue`) every chunk before it reads the next.
        """

    def connection_closed(self, connection: Connection) -> None:
        """Called once, when ``connection`` reaches CLOSED."""


class Limits:
    """Per-server tuning shared by its connections (not to be changed once in use).

    ``buffer_size``: the size of the server's read buffer, the most one ``recv``
    reads; ``read_budget``: the most one readiness event reads (fairness);
    ``high_water``/``low_water``: the owed bytes that pause and resume reading.
    """

    __slots__ = ("buffer_size", "high_water", "low_water", "read_budget")

    def __init__(
        self,
        buffer_size: int = 64 * 1024,
        read_budget: int = 256 * 1024,
        high_water: int = 256 * 1024,
        low_water: int = 64 * 1024,
    ) -> None:
        if buffer_size <= 0 or read_budget <= 0:
            raise ValueError("buffer_size and read_budget must be positive")
        if not 0 <= low_water < high_water:
            raise ValueError(f"need 0 <= low_water < high_water, got {low_water}, {high_water}")
        self.buffer_size = buffer_size
        self.read_budget = read_budget
        self.high_water = high_water
        self.low_water = low_water


class Connection:
    """An accepted, nonblocking socket and its echo state; the poller calls `handle`."""

    __slots__ = (
        "_interest",
        "_owner",
        "_pending",
        "_size",
        "_view",
        "idle_mark",
        "idle_since",
        "received",
        "sock",
        "state",
    )

    def __init__(self, sock: socket.socket, owner: ConnectionOwner) -> None:
        self.sock = sock
        self.state = OPEN
        #: Bytes read from the peer so far; every one of them is either sent or owed.
        self.received = 0
        #: Used by the owner's idle sweep (and its drain): last seen `progress`, since when.
        self.idle_mark = 0
        self.idle_since = 0.0
        self._owner = owner
        # Only what every message needs has a slot of its own; the rest of the tuning
        # is read through the owner, since every slot is paid by every idle connection.
        self._view = owner.read_buffer
        self._size = owner.limits.buffer_size  # the owner's int, not a new one per connection
        self._pending: Optional[SendQueue] = None
        self._interest = 0

    def start(self) -> None:
        """Register with the poller (READ). Raises what ``poller.register`` raises."""
        self._owner.poller.register(self.sock, READ, self.handle)
        self._interest = READ

    # -- accounting ----------------------------------------------------------

    @property
    def owed(self) -> int:
        """Bytes read but not yet sent back."""
        pending = self._pending
        return pending.size if pending is not None else 0

    @property
    def sent(self) -> int:
        """Bytes echoed back so far."""
        return self.received - self.owed

    @property
    def progress(self) -> int:
        """Grows whenever a byte is received or sent (for idle detection)."""
        return self.received + self.sent

    # -- the poller handler --------------------------------------------------

    def handle(self, sock: socket.socket, events: int) -> None:
        """Poller handler: send what is owed on WRITE, then echo on READ.

        Echoing is one step repeated: read a chunk into the shared buffer, count
        it, send it at once, and queue only what the kernel did not take. It stops
        when the kernel has no more, after ``read_budget`` bytes (fairness), or
        at the high-water mark. The bytes are counted as soon as they are read,
        before anything can close the connection, so `close` reports them all.

        Whatever it raises (a bug: the peer's faults are OSErrors, handled where
        they happen) is logged once and closes the connection, so its owner learns
        of it at once; the poller never sees it. The ``try`` costs nothing per call
        on CPython 3.11+ (a zero-cost exception table) and one setup before.
        """
        try:
            if events != READ:
                if events & WRITE:
                    self._flush()
                if not events & READ or self.state is not OPEN:
                    return
            # Only OPEN connections have READ interest, so the state is OPEN here.
            total = 0
            while True:
                try:
                    count = sock.recv_into(self._view)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    self._failed(exc)
                    return
                if not count:
                    self._peer_closed()
                    return
                self.received += count
                pending = self._pending
                if pending is None:
                    try:
                        sent = sock.send(self._view[:count])
                    except (BlockingIOError, InterruptedError):
                        sent = 0
                    except OSError as exc:
                        self._failed(exc)
                        return
                    if sent == count:
                        if count < self._size:
                            return  # all echoed, and the kernel had no more
                        total += count
                        if total >= self._owner.limits.read_budget:
                            return
                        continue
                    pending = self._pending = SendQueue()
                    pending.append(self._view[sent:count])
                else:
                    pending.append(self._view[:count])
                total += count
                if count < self._size:
                    break
                limits = self._owner.limits
                if total >= limits.read_budget or pending.size >= limits.high_water:
                    break
            if self._pending is not None:
                self._settle()
        except Exception:
            # A bug (ours, or in a subclass), not the peer: close and account for the
            # connection now rather than leave it open, counted and never read again.
            self._crashed()

    def _flush(self) -> None:
        """Send what is owed (one ``send``: the kernel takes what it has room for)."""
        pending = self._pending
        if pending is not None:
            try:
                pending.send(self.sock)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._failed(exc)
                return
            if not pending.size:
                self._pending = None
        self._settle()

    # -- transitions ---------------------------------------------------------

    def _settle(self) -> None:
        """Derive the state from the owed bytes and apply the interest it implies."""
        state = self.state
        if state is CLOSED:
            return
        owed = self.owed
        if state is OPEN:
            if owed >= self._owner.limits.high_water:
                state = PAUSED
        elif state is PAUSED:
            if owed <= self._owner.limits.low_water:
                state = OPEN
        elif not owed:  # DRAINING with nothing left to send
            self._finish()
            return
        self.state = state
        interest = (READ if state is OPEN else 0) | (WRITE if owed else 0)
        if interest != self._interest:
            self._interest = interest
            self._owner.poller.modify(self.sock, interest)

    def _peer_closed(self) -> None:
        """The peer sent EOF: owe it what it sent, then close our side."""
        self.state = DRAINING
        self._settle()

    def _finish(self) -> None:
        """DRAINING is done: send our FIN, then close."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the peer is gone already; closing is all that is left
        self.close()

    def _crashed(self) -> None:
        """`handle` raised: log it with its traceback, then close (owed bytes are lost)."""
        logger.exception(
            "closing connection fd %d: its handler raised (%s, received=%d, owed=%d)",
            self.sock.fileno(),
            self.state.value,
            self.received,
            self.owed,
        )
        self.close()

    def _failed(self, exc: OSError) -> None:
        if exc.errno not in QUIET_ERRNOS:
            logger.warning("closing connection fd %d after %s", self.sock.fileno(), exc)
        self.close()

    def end_if_quiet(self) -> None:
        """Draining: FIN and close if nothing is owed and nothing moved since the last call.

        The owner calls it at intervals while it drains, after setting `idle_mark`
        to `progress` when the drain begins. A connection that owes nothing, on
        which no byte moved since the previous call, and whose client's bytes the
        kernel does not hold (a ``MSG_PEEK``) is done: ``shutdown(SHUT_WR)`` and
        close, so the client has received every byte it sent and gets EOF, never
        a reset. Anything else is served on as usual and looked at again next
        time. The quiet interval matters: a client still sending leaves the
        server's receive queue empty for a moment between two of its writes,
        and must not be cut off then. (One silent for longer that sends again
        meets a closed socket, a reset: a byte stream has no message boundary
        to wait for.) DRAINING ends by itself.
        """
        progress = self.progress
        if progress != self.idle_mark:
            self.idle_mark = progress
            return
        if self.state is not OPEN or self._pending is not None:
            return  # owed bytes, or finishing after the peer's EOF
        try:
            self.sock.recv(1, socket.MSG_PEEK)  # does the kernel hold more from it?
        except (BlockingIOError, InterruptedError):
            self._finish()  # no: everything it sent is echoed
        except OSError as exc:
            self._failed(exc)
        # else: bytes (or its EOF) are waiting, and `handle` will take them

    def close(self) -> None:
        """Unregister and close the socket now, dropping anything owed. Idempotent."""
        if self.state is CLOSED:
            return
        self.state = CLOSED
        self._interest = 0
        try:
            if not self._owner.poller.closed:
                self._owner.poller.unregister(self.sock)
        finally:
            self.sock.close()
            self._owner.connection_closed(self)

    def __repr__(self) -> str:
        return (
            f"<Connection fd={self.sock.fileno()} {self.state.value} "
            f"received={self.received} owed={self.owed}>"
        )
