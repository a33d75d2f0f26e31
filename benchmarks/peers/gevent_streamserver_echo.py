"""Peer: a gevent ``StreamServer`` echo, as gevent's users write it.

One greenlet per connection, ``recv`` then ``sendall`` on gevent's cooperative
socket; nothing is monkey-patched. SIGTERM or SIGINT stops the server.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
from typing import Any, Tuple

from gevent.server import StreamServer

from benchmarks.peers._common import READ_SIZE, announce_address


def echo(conn: Any, address: Tuple[str, int]) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            data = conn.recv(READ_SIZE)
            if not data:
                break
            conn.sendall(data)
    except OSError:
        pass  # reset by the peer
    finally:
        conn.close()


def main() -> int:
    import gevent

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = StreamServer((args.host, args.port), echo, backlog=1024)
    server.start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(sig, server.stop)
    announce_address(args.host, server.server_port)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
