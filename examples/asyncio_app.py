"""The echo server inside an asyncio application, beside the application's own service.

``asyncio.run(main())`` serves an HTTP-ish responder (``asyncio.start_server``) and
the pollers echo server on the same loop: the poller is attached to the running
loop with ``pollers.attach(asyncio.get_running_loop())``. A request for
``/drain-echo`` drains the echo server (open echo clients are served, then get
EOF), after which the server and the poller are closed; the responder goes on
serving on the same loop until the process is stopped (Ctrl-C, SIGTERM).

    python examples/asyncio_app.py --echo-port 7007 --http-port 8080

Ports come from ``--echo-port``/``--http-port`` or ``ECHO_PORT``/``HTTP_PORT``; 0 (the
default) picks a free one. The bound addresses are printed, one line each::

    echo listening on 127.0.0.1:7007
    http listening on 127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import List, Optional

from pollers.server import EchoServer, format_address

import pollers

#: How long the drain may take before the echo connections still open are closed.
DRAIN_TIMEOUT = 5.0


def parse_ports(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """``--echo-port`` and ``--http-port``, defaulting to ``ECHO_PORT``/``HTTP_PORT`` or 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("APP_HOST", "127.0.0.1"))
    parser.add_argument("--echo-port", type=int, default=int(os.environ.get("ECHO_PORT", 0)))
    parser.add_argument("--http-port", type=int, default=int(os.environ.get("HTTP_PORT", 0)))
    return parser.parse_args(argv)


async def main(argv: Optional[List[str]] = None) -> None:
    args = parse_ports(argv)
    poller = pollers.attach(asyncio.get_running_loop())
    echo = EchoServer(poller, args.host, args.echo_port).start()

    def echo_drained() -> None:
        echo.close()
        poller.close()  # detaches from the loop; the loop and the responder go on
        print("echo server drained and closed", flush=True)

    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readline()
        while (await reader.readline()).strip():
            pass  # the headers
        path = request.split()[1] if len(request.split()) > 1 else b"/"
        if path == b"/drain-echo" and not echo.draining:
            echo.drain(DRAIN_TIMEOUT, echo_drained)
        state = "draining" if echo.draining and not poller.closed else "serving"
        if poller.closed:
            state = "closed"
        body = f"hello from asyncio; the echo server is {state}\n".encode()
        writer.write(
            b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    http = await asyncio.start_server(respond, args.host, args.http_port)
    print(f"echo listening on {format_address(echo.address)}", flush=True)
    print(f"http listening on {format_address(http.sockets[0].getsockname())}", flush=True)
    async with http:
        await poller.when_stopped()  # done once the echo server has drained
        await http.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
