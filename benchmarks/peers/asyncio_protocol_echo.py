"""Peer: an asyncio ``Protocol`` echo (``--loop asyncio`` or ``--loop uvloop``).

``data_received`` writes the data back to the transport; the transport buffers
what the kernel does not take.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import Optional

from benchmarks.peers._common import parse_args, serve_asyncio


class EchoProtocol(asyncio.Protocol):
    transport: Optional[asyncio.Transport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


async def start(listener: socket.socket) -> asyncio.AbstractServer:
    return await asyncio.get_running_loop().create_server(EchoProtocol, sock=listener)


def main() -> int:
    return serve_asyncio(parse_args(__doc__ or "", loops=True), start)


if __name__ == "__main__":
    sys.exit(main())
