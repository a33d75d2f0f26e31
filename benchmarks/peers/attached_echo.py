"""The project's echo server on an attached poller, in a host that owns and runs its loop.

The benchmark target of an attached variant (``asyncio-attached``,
``asyncio-uvloop-attached``, ``tornado-attached``, ``tornado-uvloop-attached``): the
script makes the host loop an application would (`new_host`), attaches a poller to it
with `pollers.attach`, starts `server.echo_server.EchoServer` on that poller and runs
the loop the host's way (``loop.run_forever()``, ``IOLoop.start()``). SIGTERM and SIGINT
are the host's (``loop.add_signal_handler``): they drain the echo server, close it and
the poller, then stop the host loop, so the process exits 0 like ``python -m server``::

    python -m benchmarks.peers.attached_echo --variant asyncio-attached --port 0

Only the asyncio and Tornado families are served here (the hosts whose loops this
script can make and run in a few lines).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any, Callable, Optional, Sequence, Tuple

import pollers

#: The attached variants this host script serves.
FAMILIES = ("asyncio", "tornado")
DRAIN_TIMEOUT = 10.0


def new_host(variant: str) -> Tuple[Any, asyncio.AbstractEventLoop, Callable[[], None]]:
    """(the object to attach to, its asyncio loop, a function that runs it until stopped).

    ValueError for a variant that is not an attached asyncio or Tornado one.
    """
    known = {v.name: v for v in pollers.attached_variants()}
    if variant not in known or known[variant].family not in FAMILIES:
        names = [v.name for v in known.values() if v.family in FAMILIES]
        raise ValueError(f"{variant!r}: not one of the attached variants {', '.join(names)}")
    found = known[variant]
    if found.options.get("loop") == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    if found.family == "asyncio":
        return loop, loop, loop.run_forever
    from tornado.ioloop import IOLoop

    asyncio.set_event_loop(loop)  # IOLoop.current() wraps the thread's asyncio loop
    ioloop = IOLoop.current()
    return ioloop, loop, ioloop.start


def stop_host(host: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Make the host's run (``run_forever``, ``IOLoop.start``) return."""
    stop = getattr(host, "stop", None)
    (stop if callable(stop) and host is not loop else loop.stop)()


def main(argv: Optional[Sequence[str]] = None) -> int:
    from server.echo_server import EchoServer

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--variant", required=True, help="an attached variant: asyncio-attached...")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        host, loop, run = new_host(args.variant)
    except (ValueError, ImportError) as exc:
        parser.exit(2, f"cannot serve: {exc}\n")
    poller = pollers.attach(host)
    echo = EchoServer(poller, args.host, args.port).start()

    def drained() -> None:
        echo.close()
        poller.close()  # takes back only what it added; the host loop stays the host's
        stop_host(host, loop)

    def on_signal() -> None:
        if echo.draining:
            echo.close()
            drained()
        else:
            echo.drain(DRAIN_TIMEOUT, drained)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    address = echo.address
    sys.stdout.write(f"listening on {address[0]}:{address[1]}\n")
    sys.stdout.flush()
    run()
    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
