"""Peer: Tornado's ``TCPServer``/``IOStream`` echo, the way Tornado's docs write it."""

from __future__ import annotations

import asyncio
import signal
import sys

from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, StreamClosedError
from tornado.tcpserver import TCPServer

from benchmarks.peers._common import READ_SIZE, announce, listening_socket, parse_args


class EchoServer(TCPServer):
    async def handle_stream(self, stream: IOStream, address: object) -> None:
        try:
            while True:
                data = await stream.read_bytes(READ_SIZE, partial=True)
                await stream.write(data)
        except StreamClosedError:
            pass


async def serve(host: str, port: int) -> None:
    listener = listening_socket(host, port)
    server = EchoServer()
    server.add_sockets([listener])
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    announce(listener)
    await stopped.wait()
    server.stop()


def main() -> int:
    args = parse_args(__doc__ or "")
    IOLoop.current().run_sync(lambda: serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
