"""Count the user-space instructions one echoed message costs, with callgrind.

The harness measures time on a shared, noisy machine; this tool gives a figure
that does not move from run to run, for comparing two versions of the per-event
path. It runs an in-process echo under ``valgrind --tool=callgrind``: N
socketpairs, each server end a real `server.connection.Connection` on the real
poller (an attached variant's on a host loop made as `benchmarks.peers.attached_echo`
makes it; or, for ``raw-selectors``, the hand-written selectors loop of
`benchmarks.peers.selectors_echo`); each pass, the client side sends one message
on K of them, the poller runs one pass (``stop()`` before ``run()``), and the
client reads the echoes. It runs twice, with few and with many passes, and
reports the difference divided by the extra messages, so start-up and warm-up
cancel out. The client's share (one ``send`` and one ``recv`` per message) is
included and is the same for every target::

    python -m benchmarks.instructions --target selectors-epoll
    python -m benchmarks.instructions --target raw-selectors --python /usr/bin/python3.12

Linux with valgrind only (each count takes about a minute).
"""

from __future__ import annotations

import argparse
import mmap
import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
from typing import Any, Callable, List, Optional, Sequence

RAW = "raw-selectors"


class _Owner:
    def __init__(self, poller: Any, limits: Any) -> None:
        self.poller = poller
        self.limits = limits
        self.read_buffer = memoryview(mmap.mmap(-1, limits.buffer_size))  # as EchoServer

    def connection_closed(self, connection: Any) -> None:
        raise AssertionError("no connection closes during the count")


def _raw_selectors_server(
    servers: List[socket.socket],
) -> Callable[[], None]:
    """The hand-written loop, as in `benchmarks.peers.selectors_echo`: one pass per call."""
    selector = selectors.DefaultSelector()

    def on_readable(conn: socket.socket) -> None:  # the peer's, but for the unsent tail
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            return
        if not data:
            raise AssertionError("a client closed during the count")
        try:
            sent = conn.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            raise AssertionError("partial send in the count")

    for sock in servers:
        selector.register(sock, selectors.EVENT_READ, on_readable)

    def one_pass() -> None:
        for key, _events in selector.select(0):
            key.data(key.fileobj)

    return one_pass


def _poller_server(target: str, servers: List[socket.socket]) -> Callable[[], None]:
    import pollers
    from server.connection import Connection, Limits

    if target in pollers.ATTACHED_VARIANTS:
        # The host owns a loop that is not running: stop() then run() is one pass of it.
        from .peers.attached_echo import new_host

        poller = pollers.attach(new_host(target)[0])
    else:
        poller = pollers.create(target)
    owner = _Owner(poller, Limits())
    for sock in servers:
        Connection(sock, owner).start()

    def one_pass() -> None:
        poller.stop()
        poller.run()

    return one_pass


def run_echo(target: str, connections: int, ready: int, size: int, passes: int) -> None:
    """The measured program: ``passes`` passes of ``ready`` messages of ``size`` bytes."""
    clients: List[socket.socket] = []
    servers: List[socket.socket] = []
    for _ in range(connections):
        client, server = socket.socketpair()
        server.setblocking(False)
        clients.append(client)
        servers.append(server)
    one_pass = _raw_selectors_server(servers) if target == RAW else _poller_server(target, servers)
    message = b"x" * size
    for number in range(passes):
        chosen = [clients[(number * ready + j) % connections] for j in range(ready)]
        for client in chosen:
            client.send(message)
        one_pass()
        for client in chosen:
            got = 0
            while got < size:  # bounded: the socket is blocking and the echo is owed
                got += len(client.recv(65536))


def _count(python: str, args: argparse.Namespace, passes: int) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        command = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={scratch}/out",
            python, "-m", "benchmarks.instructions", "--inside",
            "--target", args.target, "--connections", str(args.connections),
            "--ready", str(args.ready), "--size", str(args.size), "--passes", str(passes),
        ]
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=900)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"callgrind run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--target", default="selectors-epoll",
                        help=f"a poller variant (selectors-epoll, asyncio-uvloop...), an attached "
                        f"one (asyncio-attached, tornado-attached...) or {RAW}")
    parser.add_argument("--python", default=sys.executable, help="the interpreter to count")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--ready", type=int, default=47,
                        help="messages per pass (the 1 KiB x 64 benchmark's events per select)")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--passes", type=int, default=500, help="the extra passes counted")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 0 < args.ready <= args.connections or args.size <= 0 or args.passes <= 0:
        parser.error("need 0 < --ready <= --connections, --size > 0 and --passes > 0")
    if args.inside:
        run_echo(args.target, args.connections, args.ready, args.size, args.passes)
        return 0
    if shutil.which("valgrind") is None:
        parser.exit(2, "cannot count: valgrind is not installed (apt-get install valgrind)\n")
    base = 100
    short = _count(args.python, args, base)
    long = _count(args.python, args, base + args.passes)
    per_message = (long - short) / (args.passes * args.ready)
    print(f"{args.target}: {per_message:,.0f} instructions per echoed message "
          f"({args.ready} of {args.connections} connections per pass, {args.size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
