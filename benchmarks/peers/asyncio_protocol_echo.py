"""Peer: an asyncio ``Protocol`` echo (``--loop asyncio`` or ``--loop uvloop``).

``data_received`` writes the data back to the transport; the transport buffers
what the kernel does not take.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Optional

from benchmarks.peers._common import announce, listening_socket, new_event_loop, parse_args


class EchoProtocol(asyncio.Protocol):
    transport: Optional[asyncio.Transport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


def main() -> int:
    args = parse_args(__doc__ or "", loops=True)
    loop = new_event_loop(args.loop)
    listener = listening_socket(args.host, args.port)
    server = loop.run_until_complete(loop.create_server(EchoProtocol, sock=listener))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    announce(listener)
    loop.run_forever()
    server.close()
    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
