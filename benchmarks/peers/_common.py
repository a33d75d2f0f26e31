"""What every Python peer echo server shares: its options, its listening socket, its banner.

A peer is a small standalone script (``python -m benchmarks.peers.NAME --port 0``)
that prints ``listening on HOST:PORT`` once it accepts connections and exits 0
on SIGTERM or SIGINT, exactly like ``python -m server``, so that the benchmark
harness drives peers and the project's server the same way. This module holds
only that plumbing; each peer's echo loop is written in the idiom of its own
framework, the way people write it by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from typing import Optional, Sequence

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
    sys.stdout.write(f"listening on {host}:{port}\n")
    sys.stdout.flush()


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """A fresh asyncio event loop of ``kind`` (``asyncio`` or ``uvloop``)."""
    if kind == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()
