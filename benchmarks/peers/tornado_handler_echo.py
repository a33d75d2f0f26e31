"""Peer: the classic Tornado echo on ``IOLoop.add_handler``, written by hand.

One handler per connection on the descriptor number; WRITE interest is added
with ``update_handler`` only while unsent bytes remain.
"""

from __future__ import annotations

import signal
import socket
import sys
from typing import Dict

from tornado.ioloop import IOLoop

from benchmarks.peers._common import READ_SIZE, announce, listening_socket, parse_args


def main() -> int:
    args = parse_args(__doc__ or "")
    ioloop = IOLoop.current()
    listener = listening_socket(args.host, args.port)
    conns: Dict[int, socket.socket] = {}
    unsent: Dict[int, bytes] = {}

    def close(fd: int) -> None:
        ioloop.remove_handler(fd)
        unsent.pop(fd, None)
        conns.pop(fd).close()

    def on_event(fd: int, events: int) -> None:
        conn = conns[fd]
        if events & IOLoop.WRITE:
            data = unsent[fd]
            try:
                sent = conn.send(data)
            except BlockingIOError:
                return
            except OSError:
                close(fd)
                return
            if sent < len(data):
                unsent[fd] = data[sent:]
            else:
                del unsent[fd]
                ioloop.update_handler(fd, IOLoop.READ)
            return
        try:
            data = conn.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            close(fd)
            return
        if not data:
            close(fd)
            return
        try:
            sent = conn.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            close(fd)
            return
        if sent < len(data):
            unsent[fd] = data[sent:]
            ioloop.update_handler(fd, IOLoop.WRITE)

    def on_accept(fd: int, events: int) -> None:
        for _ in range(64):
            try:
                conn, _address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conns[conn.fileno()] = conn
            ioloop.add_handler(conn.fileno(), on_event, IOLoop.READ)

    ioloop.add_handler(listener.fileno(), on_accept, IOLoop.READ)
    for sig in (signal.SIGTERM, signal.SIGINT):
        ioloop.asyncio_loop.add_signal_handler(sig, ioloop.stop)  # type: ignore[attr-defined]
    announce(listener)
    ioloop.start()
    ioloop.remove_handler(listener.fileno())
    listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
