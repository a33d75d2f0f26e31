"""``--workers N``: N forked processes serving one port, and the parent that tends them.

Each worker makes its own poller after the fork (a poller belongs to the
process that made it) and serves as a single-process server would: it runs
the ``worker`` function given to `run_workers` (the command line's server).
How the workers share the port:

- where the kernel balances one port over several sockets (`reuse_port_available`:
  SO_REUSEPORT on Linux, SO_REUSEPORT_LB on FreeBSD), every worker binds its own
  listening socket; the parent only binds (never listens) to hold the port;
- elsewhere the parent binds and listens before forking and the workers inherit
  that one socket.

The parent prints the ``listening on`` line once every worker has said (through
a socketpair) that it listens; a worker that dies before that stops them all.

Signals: one user action means one graceful drain, whatever the delivery
path. A terminal's Ctrl-C reaches the whole process group and systemd's
``KillMode=control-group`` signals every process, so a worker may get the same
SIGINT/SIGTERM from the kernel and again from the parent. So in a worker
SIGINT/SIGTERM only ever *start* the drain (repeats change nothing), and
SIGQUIT closes everything at once. The parent passes its first SIGINT/SIGTERM
on as it came; its second one (the user's second action), or a SIGQUIT, goes
to the workers as SIGQUIT. The parent restarts a worker that dies while no
shutdown is under way (at most once a second), and exits 0 once every worker
exited cleanly after a shutdown signal. It sleeps in ``select`` on a signal
wake-up descriptor, so it costs nothing while all is well.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import sys
import time
from typing import Callable, Dict, List, Sequence

from .endpoints import Endpoint, TcpEndpoint, open_endpoints, reuse_port_available, socket_name

logger = logging.getLogger("server.workers")

#: A worker that dies sooner than this after its start is restarted no sooner than that.
RESTART_INTERVAL = 1.0
#: Start a graceful drain (in a worker: only ever start it).
DRAIN_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Close every connection and exit now.
NOW_SIGNAL = signal.SIGQUIT
SHUTDOWN_SIGNALS = (*DRAIN_SIGNALS, NOW_SIGNAL)

#: ``worker(open_sockets, ready)`` runs one worker and returns its exit status:
#: ``open_sockets()`` gives its listening sockets (call it once its signal handlers
#: are in place), and it calls ``ready()`` once it is listening.
WorkerMain = Callable[[Callable[[], List[socket.socket]], Callable[[], None]], int]


def run_workers(count: int, endpoints: Sequence[Endpoint], backlog: int, worker: WorkerMain) -> int:
    """Bind, fork ``count`` workers, print ``listening on`` once all listen, tend them.

    TCP endpoints are bound again by each worker with SO_REUSEPORT where the
    kernel balances a port (the parent binds first, without listening, to hold
    the port); Unix sockets, inherited descriptors and TCP elsewhere are opened
    once by the parent and inherited. Raises `ListenError` if the parent cannot
    open an endpoint.
    """
    reuse = reuse_port_available()
    held: List[socket.socket] = []  # bound, not listening: each worker binds its own
    shared: List[socket.socket] = []  # listening: every worker accepts on these
    try:
        for endpoint in endpoints:
            if reuse and isinstance(endpoint, TcpEndpoint):
                held += open_endpoints([endpoint], backlog, reuse_port=True, listen=False)
            else:
                shared += open_endpoints([endpoint], backlog)
        # Each worker binds the very address and port the parent got (port 0 resolved).
        own = [TcpEndpoint(*sock.getsockname()[:2]) for sock in held]
        names = " ".join(socket_name(sock) for sock in (*held, *shared))
        how = "SO_REUSEPORT" if held else "inherited listening sockets"
        logger.info("%d workers on %s (%s)", count, names, how)

        def announce() -> None:
            print(f"listening on {names}", flush=True)

        def run_one(ready: Callable[[], None]) -> int:
            def open_sockets() -> List[socket.socket]:
                return [*shared, *open_endpoints(own, backlog, reuse_port=True)]

            return worker(open_sockets, ready)

        return Supervisor(count, run_one, announce).run()
    finally:
        for sock in (*held, *shared):
            sock.close()


class Supervisor:
    """Forks and restarts workers; forwards shutdown signals to them."""

    def __init__(
        self,
        count: int,
        worker: Callable[[Callable[[], None]], int],
        announce: Callable[[], None],
    ) -> None:
        self.count = count
        self._worker = worker
        self._announce = announce
        self._ready = 0
        self.workers: Dict[int, float] = {}  # pid -> start time
        self._signals: List[int] = []
        self._forwarded = 0
        self._failed = False
        self._restart_at: List[float] = []

    def run(self) -> int:
        """Start the workers and tend them until they are all gone; the exit status."""
        wake_read, wake_write = socket.socketpair()
        ready_read, self._ready_write = socket.socketpair()
        for sock in (wake_read, wake_write, ready_read):
            sock.setblocking(False)
        self._parent_sockets = (wake_read, wake_write, ready_read)
        old_wakeup = signal.set_wakeup_fd(wake_write.fileno(), warn_on_full_buffer=False)
        old_handlers = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (*SHUTDOWN_SIGNALS, signal.SIGCHLD)
        }
        try:
            for _ in range(self.count):
                self._spawn()
            while self.workers or (self._restart_at and not self._signals):
                self._forward_signals()
                self._reap()
                self._restart_due()
                timeout = None
                if self._restart_at and not self._signals:
                    timeout = max(0.0, min(self._restart_at) - time.monotonic())
                if self.workers or timeout is not None:
                    select.select([wake_read, ready_read], [], [], timeout)
                    _drain(wake_read)
                    self._count_ready(ready_read)
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in old_handlers.items():
                signal.signal(signum, handler)
            for sock in (*self._parent_sockets, self._ready_write):
                sock.close()
        return 1 if self._failed else 0

    def _count_ready(self, ready_read: socket.socket) -> None:
        """Workers send a byte once listening; announce when the first ``count`` did."""
        if self._ready >= self.count:
            _drain(ready_read)
            return
        try:
            self._ready += len(ready_read.recv(4096))
        except (BlockingIOError, InterruptedError):
            return
        if self._ready >= self.count and not self._signals:
            self._announce()

    def _on_signal(self, signum: int, frame: object) -> None:
        if signum != signal.SIGCHLD:
            self._signals.append(signum)

    def _forward_signals(self) -> None:
        """The first SIGINT/SIGTERM drains the workers; the next one, or SIGQUIT, is "now"."""
        while self._forwarded < len(self._signals):
            signum = self._signals[self._forwarded]
            first = self._forwarded == 0
            self._forwarded += 1
            name = signal.Signals(signum).name
            if first and signum != NOW_SIGNAL:
                logger.info(
                    "%s: passing it on to %d worker(s), which drain; a second signal "
                    "(or SIGQUIT) closes every connection at once",
                    name,
                    len(self.workers),
                )
                sent = signum
            else:
                again = " again" if signum == self._signals[0] and not first else ""
                logger.warning(
                    "%s%s: telling %d worker(s) to close every connection now (SIGQUIT)",
                    name,
                    again,
                    len(self.workers),
                )
                sent = NOW_SIGNAL
            for pid in self.workers:
                try:
                    os.kill(pid, sent)
                except ProcessLookupError:
                    pass  # already gone; _reap will see it

    def _reap(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            started = self.workers.pop(pid, None)
            if started is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            logger.debug("worker %d exited with status %d", pid, code)
            if self._signals:
                if code not in (0, *(-signum for signum in SHUTDOWN_SIGNALS)):
                    logger.error("worker %d exited with status %d during shutdown", pid, code)
                    self._failed = True
                continue
            if self._ready < self.count:
                logger.error("worker %d exited with status %d while starting; stopping", pid, code)
                self._failed = True
                self._signals.append(signal.SIGTERM)
                continue
            delay = max(0.0, started + RESTART_INTERVAL - time.monotonic())
            logger.error("worker %d exited with status %d; restarting it", pid, code)
            self._restart_at.append(time.monotonic() + delay)

    def _restart_due(self) -> None:
        if self._signals:
            self._restart_at.clear()
            return
        now = time.monotonic()
        due = [when for when in self._restart_at if when <= now]
        self._restart_at = [when for when in self._restart_at if when > now]
        for _ in due:
            self._spawn()

    def _spawn(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        # Block the shutdown signals across fork(): a signal meant for the new worker
        # must not be swallowed by the parent's handler that the child inherits.
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, SHUTDOWN_SIGNALS)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            raise
        if pid:
            self.workers[pid] = time.monotonic()
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            return
        # The child: forget the parent's signal plumbing, serve, and never return.
        # The shutdown signals stay blocked until the worker calls
        # `unblock_shutdown_signals` from inside its running loop: a signal that
        # comes during start-up then waits for the handlers.
        status = 1
        try:
            signal.set_wakeup_fd(-1)
            for signum in (*SHUTDOWN_SIGNALS, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            for sock in self._parent_sockets:
                sock.close()
            ready_write = self._ready_write
            status = self._worker(lambda: ready_write.sendall(b"!"))
        except BaseException:
            logger.exception("worker %d failed", os.getpid())
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)


def unblock_shutdown_signals() -> None:
    """Deliver SIGINT/SIGTERM/SIGQUIT again: call it once the loop runs with its handlers."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SHUTDOWN_SIGNALS)


def block_shutdown_signals() -> None:
    """Hold SIGINT/SIGTERM/SIGQUIT: a worker calls it once its loop is done. Closing
    the poller restores the default handlers, and a repeat of the signal that
    started the drain (a group signal passed on by the parent too) may still be on
    its way: it must not raise KeyboardInterrupt or kill the exiting worker."""
    signal.pthread_sigmask(signal.SIG_BLOCK, SHUTDOWN_SIGNALS)


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass
