"""Peer: an asyncio streams echo (``StreamReader.read`` / ``StreamWriter.write`` + ``drain``)."""

from __future__ import annotations

import asyncio
import signal
import sys

from benchmarks.peers._common import (
    READ_SIZE,
    announce,
    listening_socket,
    new_event_loop,
    parse_args,
)


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


def main() -> int:
    args = parse_args(__doc__ or "", loops=True)
    loop = new_event_loop(args.loop)
    listener = listening_socket(args.host, args.port)
    server = loop.run_until_complete(asyncio.start_server(echo, sock=listener))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    announce(listener)
    loop.run_forever()
    server.close()
    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
