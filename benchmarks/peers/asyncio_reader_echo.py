"""Peer: a raw asyncio echo on ``loop.add_reader``/``add_writer``, written by hand.

The same loop as the selectors peer, but asyncio's (or uvloop's) event loop does
the waiting and the dispatch.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from typing import Dict

from benchmarks.peers._common import (
    READ_SIZE,
    announce,
    listening_socket,
    new_event_loop,
    parse_args,
)


def main() -> int:
    args = parse_args(__doc__ or "", loops=True)
    loop: asyncio.AbstractEventLoop = new_event_loop(args.loop)
    listener = listening_socket(args.host, args.port)
    unsent: Dict[socket.socket, bytes] = {}

    def close(conn: socket.socket) -> None:
        loop.remove_reader(conn.fileno())
        if unsent.pop(conn, None) is not None:
            loop.remove_writer(conn.fileno())
        conn.close()

    def on_writable(conn: socket.socket) -> None:
        data = unsent[conn]
        try:
            sent = conn.send(data)
        except BlockingIOError:
            return
        except OSError:
            close(conn)
            return
        if sent < len(data):
            unsent[conn] = data[sent:]
        else:
            del unsent[conn]
            loop.remove_writer(conn.fileno())
            loop.add_reader(conn.fileno(), on_readable, conn)

    def on_readable(conn: socket.socket) -> None:
        try:
            data = conn.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            close(conn)
            return
        if not data:
            close(conn)
            return
        try:
            sent = conn.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            close(conn)
            return
        if sent < len(data):
            unsent[conn] = data[sent:]
            loop.remove_reader(conn.fileno())
            loop.add_writer(conn.fileno(), on_writable, conn)

    def on_accept() -> None:
        for _ in range(64):
            try:
                conn, _address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            loop.add_reader(conn.fileno(), on_readable, conn)

    loop.add_reader(listener.fileno(), on_accept)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    announce(listener)
    loop.run_forever()
    loop.remove_reader(listener.fileno())
    listener.close()
    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
