"""Peer: the raw stdlib ``selectors`` echo loop, as people write it by hand.

``selectors.DefaultSelector``, a callback in each key's data, recv and send at
once, unsent bytes kept per connection with EVENT_WRITE until they are gone.
"""

from __future__ import annotations

import selectors
import signal
import socket
import sys
from typing import Any, Dict

from benchmarks.peers._common import READ_SIZE, announce, listening_socket, parse_args


class Stop(Exception):
    pass


def main() -> int:
    args = parse_args(__doc__ or "")
    selector = selectors.DefaultSelector()
    listener = listening_socket(args.host, args.port)
    unsent: Dict[socket.socket, bytes] = {}

    def close(conn: socket.socket) -> None:
        selector.unregister(conn)
        unsent.pop(conn, None)
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
            selector.modify(conn, selectors.EVENT_READ, on_readable)

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
            selector.modify(conn, selectors.EVENT_WRITE, on_writable)

    def on_accept(sock: socket.socket) -> None:
        for _ in range(64):
            try:
                conn, _address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # EMFILE and friends: try again on the next event
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            selector.register(conn, selectors.EVENT_READ, on_readable)

    def on_signal(signum: int, frame: Any) -> None:
        raise Stop

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    selector.register(listener, selectors.EVENT_READ, on_accept)
    announce(listener)
    try:
        while True:
            for key, _events in selector.select():
                key.data(key.fileobj)
    except Stop:
        pass
    listener.close()
    selector.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
