"""`EchoServer`: an RFC 862 echo service on any `Poller`.

It ties a `Listener` to the `Connection` state machines it accepts, and owns
what concerns all connections together: the ``max_connections`` limit, the
idle sweep, graceful draining and the counters.

Programmatic use (e.g. tests and benchmarks running it in a thread)::

    poller = pollers.create("selectors-epoll")
    server = EchoServer(poller, "127.0.0.1", 0).start()
    thread = threading.Thread(target=poller.run); thread.start()
    ...  # connect to server.address
    poller.call_soon_threadsafe(server.close)
    poller.call_soon_threadsafe(poller.stop); thread.join(); poller.close()

Idle timeout: a coarse periodic sweep (every quarter of the timeout, at most
every `MAX_SWEEP_INTERVAL` seconds) closes connections that neither received
nor sent a byte since the sweep that last saw them move; so a connection idle
for ``idle_timeout`` is closed within about 1.25 times that, and nothing is
done per event.

Draining (`EchoServer.drain`): the listener closes; every connection is
served as usual and ends (FIN, then close: its client has got every byte and
gets EOF) once it owes nothing and nothing has moved on it for a whole
`DRAIN_QUIET` interval; so idle connections end after one interval, a client
still sending once it stops, and a slow reader once it has read everything. At
the deadline the rest are closed; then the callback runs. The idle sweep stops
while draining.

``max_connections``: while that many are open the listener pauses (new clients
wait in the kernel's backlog). Reaching the limit and accepting again are logged
(at most one pair of lines per `LIMIT_LOG_INTERVAL`), and the pauses and the
time spent paused are counted in `ServerStats`.

A connection whose handler raises is closed and counted at once (see
`Connection.handle`); so is a socket whose hand-over raises in the listener.
"""

from __future__ import annotations

import logging
import mmap
import socket
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Set, Type

from pollers import Poller, Timer

from .connection import Connection, Limits
from .endpoints import Address, open_listeners
from .listener import Listener

logger = logging.getLogger("server")

MAX_SWEEP_INTERVAL = 5.0
MIN_SWEEP_INTERVAL = 0.01
#: At most one "limit reached" line (and its "accepting again") per this many seconds.
LIMIT_LOG_INTERVAL = 10.0
#: While draining, a connection that owes nothing and moved no byte for this long ends.
DRAIN_QUIET = 0.2


class ServerStats(NamedTuple):
    """Counters of an `EchoServer` (bytes include those of open connections)."""

    accepted: int
    """Connections accepted and served."""
    open: int
    """Connections open now."""
    refused: int
    """Connections accepted but closed at once because the poller refused them."""
    idle_closed: int
    """Connections closed by the idle timeout."""
    accept_backoffs: int
    """Times accepting backed off after an accept error (EMFILE, ENFILE, ...) or a
    hand-over that raised."""
    limit_pauses: int
    """Times accepting paused because ``max_connections`` were open."""
    limit_paused_seconds: float
    """Time spent paused at ``max_connections`` (clients waiting in the backlog)."""
    bytes_in: int
    bytes_out: int

    def describe(self) -> str:
        return ", ".join(
            f"{name}={value:.3f}" if isinstance(value, float) else f"{name}={value}"
            for name, value in self._asdict().items()
        )


class DrainStart(NamedTuple):
    """What `EchoServer.drain` found when it began."""

    connections: int
    """Connections open, each served until it owes nothing and is quiet."""
    owed: int
    """Bytes queued in the server for them (the kernels' buffers may hold more)."""


class EchoServer:
    """An echo server on ``poller`` listening on ``host``:``port``; see the module doc.

    ``max_connections``: stop accepting while that many are open (None: no limit).
    ``idle_timeout``: close connections that move no byte for that many seconds.
    The other keywords tune the connections (see `Limits`) and the listening sockets;
    ``sockets`` (listening, nonblocking) replaces binding ``host`` and ``port``.
    ``connection_class``: a `Connection` subclass to serve each client with.
    """

    def __init__(
        self,
        poller: Poller,
        host: Optional[str] = "127.0.0.1",
        port: int = 0,
        *,
        max_connections: Optional[int] = None,
        idle_timeout: Optional[float] = None,
        backlog: int = socket.SOMAXCONN,
        reuse_port: bool = False,
        limits: Optional[Limits] = None,
        sockets: Optional[List[socket.socket]] = None,
        connection_class: Type[Connection] = Connection,
    ) -> None:
        if max_connections is not None and max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        if idle_timeout is not None and idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, got {idle_timeout}")
        self.poller = poller
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._backlog = backlog
        self._reuse_port = reuse_port
        self._sockets = sockets
        self.limits = limits if limits is not None else Limits()
        # An anonymous mapping rather than a bytearray: PyPy reads into it and sends from
        # it without a copy of its own (a bytearray may move, so PyPy copies through a
        # bounce buffer on each side); CPython is indifferent. The memoryview keeps the
        # mapping alive.
        self.read_buffer = memoryview(mmap.mmap(-1, self.limits.buffer_size))
        self._connection_class = connection_class
        #: True once `drain` began.
        self.draining = False
        self._quiet_timer: Optional[Timer] = None
        self.connections: Set[Connection] = set()
        self._listener: Optional[Listener] = None
        self._sweep_timer: Optional[Timer] = None
        self._drain_timer: Optional[Timer] = None
        self._on_drained: Optional[Callable[[], Any]] = None
        self._closed = False
        self._refusing = False
        self._counts: Dict[str, int] = dict.fromkeys(
            ("accepted", "refused", "idle_closed", "limit_pauses", "bytes_in", "bytes_out"), 0
        )
        self._paused_since: Optional[float] = None  # at max_connections since then
        self._paused_seconds = 0.0
        self._limit_logged_at: Optional[float] = None
        self._limit_pause_logged = False  # the current pause was logged: log its end too
        self._unlogged_pauses = 0
        self._unlogged_paused_seconds = 0.0

    # -- life cycle ------------------------------------------------------------

    def start(self) -> EchoServer:
        """Bind, listen and register with the poller; returns self.

        OSError if binding fails, or whatever ``poller.register`` raises for a listening
        socket (ValueError for a descriptor the poller cannot watch, such as one past
        select(2)'s limit, or one already registered). On failure every listening
        socket, the ones passed in ``sockets`` included, is closed.
        """
        if self._listener is not None:
            raise RuntimeError("the server is already started")
        if self._sockets is not None:
            sockets = self._sockets
        else:
            sockets = open_listeners(self.host, self.port, self._backlog, self._reuse_port)
        self._listener = Listener(self.poller, sockets, self._accepted)
        try:
            self._listener.start()
        except BaseException:
            self._listener.close()
            raise
        if self.idle_timeout is not None:
            self._schedule_sweep()
        for name in self._listener.names:
            logger.info("listening on %s with %s", name, self.poller.name)
        return self

    @property
    def addresses(self) -> List[Address]:
        """Every bound (host, port)."""
        if self._listener is None:
            raise RuntimeError("the server is not started")
        return self._listener.addresses

    @property
    def address(self) -> Address:
        """The first bound (host, port)."""
        return self.addresses[0]

    def stop_accepting(self) -> None:
        """Close the listening sockets; open connections carry on."""
        if self._listener is not None:
            self._listener.close()
        self._end_limit_pause()

    def drain(self, timeout: float, callback: Callable[[], Any]) -> DrainStart:
        """Stop accepting, end the connections; ``callback()`` once none is left.

        Every connection is served as usual and ends once it owes nothing and
        nothing moved on it for `DRAIN_QUIET` seconds: FIN, then close, so its
        client has received every byte it sent and gets EOF, never a reset
        (`Connection.end_if_quiet`). An idle connection ends after one
        interval, a client still sending once it stops, a slow reader once it
        has read everything. At ``timeout``
        seconds the connections still open are closed (what they are owed is
        lost). Call on the poller's thread, once.
        """
        if self.draining:
            raise RuntimeError("the server is already draining")
        self.draining = True
        self.stop_accepting()
        if self._sweep_timer is not None:  # the drain's own checks use idle_mark
            self._sweep_timer.cancel()
            self._sweep_timer = None
        self._on_drained = callback
        for connection in self.connections:
            connection.idle_mark = connection.progress
        started = DrainStart(
            connections=len(self.connections),
            owed=sum(connection.owed for connection in self.connections),
        )
        if self.connections:
            self._drain_timer = self.poller.call_later(timeout, self._drain_expired)
            self._quiet_timer = self.poller.call_later(DRAIN_QUIET, self._end_quiet_connections)
        else:
            self._drained()
        return started

    def _end_quiet_connections(self) -> None:
        """Every `DRAIN_QUIET` while draining: end the connections that are done."""
        self._quiet_timer = None
        for connection in list(self.connections):
            connection.end_if_quiet()
        if self.connections and self._on_drained is not None:
            self._quiet_timer = self.poller.call_later(DRAIN_QUIET, self._end_quiet_connections)

    def close(self) -> None:
        """Stop accepting and close every connection now. Idempotent; poller thread only."""
        if self._closed:
            return
        self._closed = True
        self.stop_accepting()
        for timer in (self._sweep_timer, self._drain_timer, self._quiet_timer):
            if timer is not None:
                timer.cancel()
        self._sweep_timer = self._drain_timer = self._quiet_timer = None
        for connection in list(self.connections):
            connection.close()

    @property
    def stats(self) -> ServerStats:
        counts = self._counts
        bytes_in, bytes_out = counts["bytes_in"], counts["bytes_out"]
        for connection in self.connections:
            bytes_in += connection.received
            bytes_out += connection.sent
        listener = self._listener
        return ServerStats(
            accepted=counts["accepted"],
            open=len(self.connections),
            refused=counts["refused"],
            idle_closed=counts["idle_closed"],
            accept_backoffs=listener.backoffs if listener is not None else 0,
            limit_pauses=counts["limit_pauses"],
            limit_paused_seconds=self._paused_seconds + self._current_pause(),
            bytes_in=bytes_in,
            bytes_out=bytes_out,
        )

    # -- connections -------------------------------------------------------------

    def _accepted(self, sock: socket.socket) -> None:
        connection = self._connection_class(sock, self)
        try:
            connection.start()
        except (ValueError, OSError) as exc:
            # E.g. select() cannot hold a descriptor >= FD_SETSIZE: refuse clearly.
            sock.close()
            self._counts["refused"] += 1
            if not self._refusing:
                self._refusing = True
                logger.error("refusing connections: %s", exc)
            return
        if self._refusing:
            self._refusing = False
            logger.warning("accepting connections again (%d refused)", self._counts["refused"])
        self._counts["accepted"] += 1
        if self.idle_timeout is not None:
            connection.idle_since = self.poller.time()
        self.connections.add(connection)
        if self.max_connections is not None and len(self.connections) >= self.max_connections:
            assert self._listener is not None
            self._listener.pause()
            self._begin_limit_pause()

    def connection_closed(self, connection: Connection) -> None:
        """`ConnectionOwner` hook: count its bytes, maybe resume accepting or end a drain."""
        self.connections.discard(connection)
        counts = self._counts
        counts["bytes_in"] += connection.received
        counts["bytes_out"] += connection.sent
        listener = self._listener
        if listener is not None:
            listener.descriptor_freed()
            if self.max_connections is not None and len(self.connections) < self.max_connections:
                listener.resume()
                self._end_limit_pause()
        if self._on_drained is not None and not self.connections:
            self._drained()

    # -- the max_connections pause -----------------------------------------------

    def _begin_limit_pause(self) -> None:
        if self._paused_since is not None:
            return
        now = time.monotonic()  # the poller's clock, readable after it closed too
        self._paused_since = now
        self._counts["limit_pauses"] += 1
        logged_at = self._limit_logged_at
        if logged_at is not None and now - logged_at < LIMIT_LOG_INTERVAL:
            self._unlogged_pauses += 1
            return
        self._limit_logged_at = now
        self._limit_pause_logged = True
        since = ""
        if self._unlogged_pauses:
            since = (
                f" (and {self._unlogged_pauses} more time(s), "
                f"{self._unlogged_paused_seconds:.2f} s in all, since the last such line)"
            )
        self._unlogged_pauses = 0
        self._unlogged_paused_seconds = 0.0
        logger.warning(
            "%d connections open, the --max-connections limit: not accepting until one "
            "closes; new clients wait in the listen backlog%s",
            len(self.connections),
            since,
        )

    def _end_limit_pause(self) -> None:
        paused = self._current_pause()
        if self._paused_since is None:
            return
        self._paused_since = None
        self._paused_seconds += paused
        if self._limit_pause_logged:
            self._limit_pause_logged = False
            if self._listener is not None and not self._closed and not self.draining:
                logger.info("accepting again after %.2f s at the connection limit", paused)
        else:
            self._unlogged_paused_seconds += paused

    def _current_pause(self) -> float:
        since = self._paused_since
        return 0.0 if since is None else time.monotonic() - since

    # -- timers ------------------------------------------------------------------

    def _schedule_sweep(self) -> None:
        assert self.idle_timeout is not None
        interval = min(max(self.idle_timeout / 4, MIN_SWEEP_INTERVAL), MAX_SWEEP_INTERVAL)
        self._sweep_timer = self.poller.call_later(interval, self._sweep)

    def _sweep(self) -> None:
        """Close connections that moved no byte for ``idle_timeout`` seconds."""
        assert self.idle_timeout is not None
        now = self.poller.time()
        deadline = now - self.idle_timeout
        idle = []
        for connection in self.connections:
            progress = connection.progress
            if progress != connection.idle_mark:
                connection.idle_mark = progress
                connection.idle_since = now
            elif connection.idle_since <= deadline:
                idle.append(connection)
        if idle:
            logger.info("closing %d idle connection(s)", len(idle))
            self._counts["idle_closed"] += len(idle)
            for connection in idle:
                connection.close()
        if not self._closed:
            self._schedule_sweep()

    def _drain_expired(self) -> None:
        self._drain_timer = None
        if self.connections:
            logger.warning("drain deadline passed: closing %d connection(s)", len(self.connections))
            for connection in list(self.connections):
                connection.close()
        if self._on_drained is not None:
            self._drained()

    def _drained(self) -> None:
        callback, self._on_drained = self._on_drained, None
        for timer in (self._drain_timer, self._quiet_timer):
            if timer is not None:
                timer.cancel()
        self._drain_timer = self._quiet_timer = None
        if callback is not None:
            self.poller.call_soon(callback)
