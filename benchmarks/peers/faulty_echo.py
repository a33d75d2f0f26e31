"""Not a peer: a deliberately faulty echo server, for the harness's own tests.

``--fault corrupt`` flips one bit of the 1000th byte echoed on each connection;
``--fault lose`` drops that byte; ``--fault hangup`` closes each connection after
its first echo; ``--fault exit-status`` echoes correctly but exits 3 on SIGTERM.
Each must make `benchmarks.harness.check` reject the run.
"""

from __future__ import annotations

import argparse
import selectors
import signal
import socket
import sys
from typing import Any, Dict

from benchmarks.peers._common import READ_SIZE, announce, listening_socket

FAULTY_OFFSET = 1000


class Stop(Exception):
    pass


def damage(data: bytes, offset: int, fault: str) -> bytes:
    """``data`` (which starts at stream ``offset``) as the fault sends it back."""
    index = FAULTY_OFFSET - offset
    if fault not in ("corrupt", "lose") or not 0 <= index < len(data):
        return data
    if fault == "lose":
        return data[:index] + data[index + 1:]
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fault", choices=("corrupt", "lose", "hangup", "exit-status"),
                        required=True)
    args = parser.parse_args()
    selector = selectors.DefaultSelector()
    listener = listening_socket(args.host, args.port)
    offsets: Dict[socket.socket, int] = {}

    def on_signal(signum: int, frame: Any) -> None:
        raise Stop

    signal.signal(signal.SIGTERM, on_signal)
    selector.register(listener, selectors.EVENT_READ)
    announce(listener)
    try:
        while True:
            for key, _events in selector.select():
                if key.fileobj is listener:
                    conn, _address = listener.accept()
                    conn.setblocking(True)  # sendall below: a test double may block
                    offsets[conn] = 0
                    selector.register(conn, selectors.EVENT_READ)
                    continue
                conn = key.fileobj  # type: ignore[assignment]
                data = conn.recv(READ_SIZE)
                if data:
                    conn.sendall(damage(data, offsets[conn], args.fault))
                    offsets[conn] += len(data)
                if not data or args.fault == "hangup":
                    selector.unregister(conn)
                    del offsets[conn]
                    conn.close()
    except Stop:
        pass
    return 3 if args.fault == "exit-status" else 0


if __name__ == "__main__":
    sys.exit(main())
