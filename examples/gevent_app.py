"""The echo server and a ``gevent.pywsgi`` server in one gevent process.

The poller is attached to the hub that runs gevent's loop with
``pollers.attach(gevent.get_hub())``; nothing is monkey-patched. ``POST
/drain-echo`` (or ``GET``) drains the echo server (open echo clients are served,
then get EOF), after which the server and the poller are closed; the WSGI server
goes on serving in the same hub until the process is stopped (Ctrl-C, SIGTERM).

    python examples/gevent_app.py --echo-port 7007 --http-port 8000

Ports come from ``--echo-port``/``--http-port`` or ``ECHO_PORT``/``HTTP_PORT``; 0 (the
default) picks a free one. The bound addresses are printed, one line each::

    echo listening on 127.0.0.1:7007
    http listening on 127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import os
import signal
from typing import Any, Callable, Iterable, List, Optional

import gevent
from gevent.event import Event
from gevent.pywsgi import WSGIServer
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


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_ports(argv)
    poller = pollers.attach(gevent.get_hub())
    echo = EchoServer(poller, args.host, args.echo_port).start()

    def state() -> str:
        if poller.closed:
            return "closed"
        return "draining" if echo.draining else "serving"

    def application(environ: Any, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/drain-echo" and not poller.closed and not echo.draining:
            echo.drain(DRAIN_TIMEOUT, poller.stop)  # when_stopped() is set once drained
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"hello from gevent; the echo server is {state()}\n".encode()]

    http = WSGIServer((args.host, args.http_port), application, log=None)
    http.start()
    shutting_down = Event()

    def shut_down() -> None:
        shutting_down.set()
        if not poller.closed:
            poller.stop()  # wakes the main greenlet if it still waits for the drain
        http.stop(timeout=1.0)

    for sig in (signal.SIGINT, signal.SIGTERM):  # the host's own signal handling
        gevent.signal_handler(sig, shut_down)
    print(f"echo listening on {format_address(echo.address)}", flush=True)
    print(f"http listening on {format_address(http.address)}", flush=True)

    poller.when_stopped().wait()  # the hub serves both meanwhile
    echo.close()
    poller.close()  # detaches from the hub's loop; the WSGI server goes on
    if not shutting_down.is_set():
        print("echo server drained and closed", flush=True)
        http.serve_forever()


if __name__ == "__main__":
    main()
