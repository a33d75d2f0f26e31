"""What every Python peer echo server shares: its options, its listening socket, its banner.

A peer is a small standalone script (``python -m benchmarks.peers.NAME --port 0``)
that prints ``listening on HOST:PORT`` once it accepts connections and exits 0
on SIGTERM or SIGINT, exactly like ``python -m server``, so that the benchmark
harness drives peers and the project's server the same way. This module holds
only that plumbing. Each peer's echo loop is written out in the idiom of its own
framework, the way people write it by hand: the hand-written loops look alike on
purpose, since a helper shared between them would add a call per event to the
baselines being measured.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
from typing import Awaitable, Callable, Optional, Sequence

READ_SIZE = 65536


def parse_args(description: str, argv: Optional[Sequence[str]] = None,
               loops: bool = False) -> argparse.Namespace:
    """``--host``/``--port`` (and ``--loop asyncio|uvloop`` if ``loops``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    if loops:
        parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    return parser.parse_args(argv)


def listening_socket(host: str, port: int) -> socket.socket:
    """A non-blocking TCP listener bound to (host, port)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1024)
    listener.setblocking(False)
    return listener


def announce(sock: socket.socket) -> None:
    """Print the banner the harness waits for."""
    host, port = sock.getsockname()[:2]
    announce_address(host, port)


def announce_address(host: str, port: int) -> None:
    """Print the banner the harness waits for, for a listener a framework made itself."""
    sys.stdout.write(f"listening on {host}:{port}\n")
    sys.stdout.flush()


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """A fresh asyncio event loop of ``kind`` (``asyncio`` or ``uvloop``)."""
    if kind == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()


def serve_asyncio(args: argparse.Namespace,
                  start: Callable[[socket.socket], Awaitable[asyncio.AbstractServer]]) -> int:
    """Run ``start(listener)`` on a new ``args.loop`` event loop until SIGTERM or SIGINT."""
    loop = new_event_loop(args.loop)
    listener = listening_socket(args.host, args.port)
    server = loop.run_until_complete(start(listener))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    announce(listener)
    loop.run_forever()
    server.close()
    loop.close()
    return 0
