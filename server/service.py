"""`serve`: an `EchoServer` run as a process's service, until a signal ends it.

`serve` owns the policy of a running server, apart from how it was configured:

- the signal handlers go in first, and only then are the listening sockets opened
  (a worker must never listen while a signal would kill it);
- the ``listening on ADDRESS...`` line (every socket, on one line) goes to stdout once
  it accepts, or, in a worker of ``--workers N``, ``on_listening`` is called instead
  (the parent prints the line for all of them);
- SIGINT/SIGTERM stop accepting and drain (`EchoServer.drain`: each connection ends
  once it owes nothing and is quiet) for up to `ServeOptions.drain_timeout` seconds;
  a second one, or SIGQUIT, closes everything now. In a worker a repeated
  SIGINT/SIGTERM is the same user action arriving twice (see `server.workers`) and
  changes nothing; only SIGQUIT means now;
- the counters are logged at exit; the exit status is 0 after a signal, 1 if it
  cannot listen (one line on stderr naming the socket and why).

It takes no command-line object: the ``echo-server`` command (`server.cli`) builds a
`ServeOptions` from its options, and any program can do the same::

    poller = pollers.create("selectors")
    sockets = lambda: open_endpoints([TcpEndpoint("127.0.0.1", 7007)])
    status = serve(poller, ServeOptions(idle_timeout=60.0), open_sockets=sockets)
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
from dataclasses import dataclass
from typing import Callable, List, Optional

from pollers import Poller

from .echo_server import DRAIN_QUIET, DrainStart, EchoServer
from .endpoints import ListenError, socket_name
from .workers import DRAIN_SIGNALS, NOW_SIGNAL, unblock_shutdown_signals

logger = logging.getLogger("server")

DEFAULT_DRAIN_TIMEOUT = 5.0


@dataclass(frozen=True)
class ServeOptions:
    """How `serve` runs its `EchoServer` (each field as the option of the same name)."""

    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    """On SIGINT/SIGTERM, serve the open connections this many seconds at most."""
    max_connections: Optional[int] = None
    """Stop accepting while this many are open (None: no limit)."""
    idle_timeout: Optional[float] = None
    """Close connections that move no byte for this many seconds (None: never)."""


def serve(
    poller: Poller,
    options: ServeOptions,
    *,
    open_sockets: Callable[[], List[socket.socket]],
    on_listening: Optional[Callable[[], None]] = None,
) -> int:
    """Run an `EchoServer` on ``poller`` until a signal ends it; returns the exit status.

    ``open_sockets()`` gives the listening sockets (it may raise `ListenError`); it is
    called once the signal handlers are in place. A worker of ``--workers N`` passes
    ``on_listening`` (called instead of printing the ``listening on`` line, which its
    parent prints) and then drains on the first SIGINT/SIGTERM only.
    """
    is_worker = on_listening is not None

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if signum == NOW_SIGNAL:
            close_now(name)
        elif not server.draining:
            started = server.drain(options.drain_timeout, poller.stop)
            logger.info("%s", describe_drain(name, started, options.drain_timeout, is_worker))
        elif is_worker:  # the same user action again (see `server.workers`)
            logger.debug("%s again: already draining (SIGQUIT closes at once)", name)
        else:
            close_now(f"{name} again")

    def close_now(why: str) -> None:
        logger.warning("%s: closing %d connection(s) now", why, len(server.connections))
        server.close()
        poller.stop()

    # A worker has these signals blocked since its fork: release them once the loop
    # runs with its handlers (the poller itself keeps none from arriving too early).
    poller.call_soon(unblock_shutdown_signals)
    for signum in (*DRAIN_SIGNALS, NOW_SIGNAL):
        poller.add_signal_handler(signum, on_signal, signum)
    # Handlers first: a worker must never listen while a signal would kill it.
    try:
        sockets = open_sockets()
    except ListenError as exc:
        return cannot_listen(exc)
    server = EchoServer(
        poller,
        max_connections=options.max_connections,
        idle_timeout=options.idle_timeout,
        sockets=sockets,
    )
    # Named now: a failed start() has closed the sockets already.
    names = " ".join(map(socket_name, sockets))
    try:
        server.start()
    except (OSError, ValueError) as exc:  # ValueError: the poller refuses a descriptor
        return cannot_listen(ListenError(f"{names}: {' '.join(str(exc).split())}"))
    if on_listening is not None:
        on_listening()
    else:
        print(f"listening on {names}", flush=True)
    try:
        poller.run()
    finally:
        server.close()
        logger.info("exiting: %s", server.stats.describe())
    return 0


def cannot_listen(exc: ListenError) -> int:
    """Say on stderr, in one line, which socket could not be opened and why; exit status 1."""
    print(f"echo-server: error: cannot listen on {exc}", file=sys.stderr)
    return 1


def describe_drain(why: str, started: DrainStart, timeout: float, is_worker: bool) -> str:
    """The log line of a drain: how many connections, why, and how to stop waiting."""
    if not started.connections:
        return f"{why}: no longer accepting; no connection open, nothing to drain"
    now = (
        "a second signal to the supervisor (Ctrl-C again), or SIGQUIT, exits at once"
        if is_worker
        else "a second signal exits at once"
    )
    return (
        f"{why}: no longer accepting; draining {started.connections} connection(s), each ending "
        f"(FIN) once it owes nothing and is quiet for {DRAIN_QUIET:g} s ({started.owed} bytes "
        f"queued in the server), for up to {timeout:g} s; {now}"
    )
