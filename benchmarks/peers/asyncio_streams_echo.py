"""Peer: an asyncio streams echo (``StreamReader.read`` / ``StreamWriter.write`` + ``drain``)."""

from __future__ import annotations

import asyncio
import socket
import sys

from benchmarks.peers._common import READ_SIZE, parse_args, serve_asyncio


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def start(listener: socket.socket) -> asyncio.AbstractServer:
    return await asyncio.start_server(echo, sock=listener)


def main() -> int:
    return serve_asyncio(parse_args(__doc__ or "", loops=True), start)


if __name__ == "__main__":
    sys.exit(main())
