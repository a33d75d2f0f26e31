"""The echo server and a ``tornado.web.Application`` on one Tornado IOLoop.

The poller is attached to the application's loop with
``pollers.attach(IOLoop.current())``. ``POST /drain-echo`` drains the echo server
(open echo clients are served, then get EOF), after which the server and the
poller are closed; the web application goes on serving on the same IOLoop until
the process is stopped (Ctrl-C, SIGTERM).

    python examples/tornado_app.py --echo-port 7007 --http-port 8888

Ports come from ``--echo-port``/``--http-port`` or ``ECHO_PORT``/``HTTP_PORT``; 0 (the
default) picks a free one. The bound addresses are printed, one line each::

    echo listening on 127.0.0.1:7007
    http listening on 127.0.0.1:8888
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import List, Optional

import tornado.httpserver
import tornado.netutil
import tornado.web
from pollers.server import EchoServer, format_address
from tornado.ioloop import IOLoop

import pollers

DRAIN_TIMEOUT = 5.0


def parse_ports(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """``--echo-port`` and ``--http-port``, defaulting to ``ECHO_PORT``/``HTTP_PORT`` or 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("APP_HOST", "127.0.0.1"))
    parser.add_argument("--echo-port", type=int, default=int(os.environ.get("ECHO_PORT", 0)))
    parser.add_argument("--http-port", type=int, default=int(os.environ.get("HTTP_PORT", 0)))
    return parser.parse_args(argv)


class Echo:
    """The echo server on an attached poller, and what the web handlers ask of it."""

    def __init__(self, host: str, port: int) -> None:
        self.poller = pollers.attach(IOLoop.current())
        self.server = EchoServer(self.poller, host, port).start()

    @property
    def state(self) -> str:
        if self.poller.closed:
            return "closed"
        return "draining" if self.server.draining else "serving"

    def drain(self) -> None:
        if not self.server.draining:
            self.server.drain(DRAIN_TIMEOUT, self._drained)

    def _drained(self) -> None:
        self.server.close()
        self.poller.close()  # detaches from the IOLoop; the web application goes on
        print("echo server drained and closed", flush=True)


class StatusHandler(tornado.web.RequestHandler):
    def initialize(self, echo: Echo) -> None:
        self.echo = echo

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.write(f"hello from tornado; the echo server is {self.echo.state}\n")


class DrainHandler(StatusHandler):
    def post(self) -> None:
        self.echo.drain()
        self.get()


async def main(argv: Optional[List[str]] = None) -> None:
    args = parse_ports(argv)
    echo = Echo(args.host, args.echo_port)
    application = tornado.web.Application(
        [(r"/", StatusHandler, {"echo": echo}), (r"/drain-echo", DrainHandler, {"echo": echo})]
    )
    sockets = tornado.netutil.bind_sockets(args.http_port, args.host)
    tornado.httpserver.HTTPServer(application).add_sockets(sockets)
    print(f"echo listening on {format_address(echo.server.address)}", flush=True)
    print(f"http listening on {format_address(sockets[0].getsockname())}", flush=True)
    await asyncio.Event().wait()  # serve until the process is stopped


if __name__ == "__main__":
    asyncio.run(main())
