"""Peer: a Twisted ``Protocol`` echo, as Twisted's users write it.

The reactor is installed the usual way (``--reactor epoll|poll|select|kqueue``,
default epoll where it exists); ``dataReceived`` writes the data back to the
transport, which buffers what the kernel does not take. ``reactor.run()``
installs Twisted's own SIGINT/SIGTERM handlers, which stop it.
"""

from __future__ import annotations

import argparse
import importlib
import select
import sys
from typing import Any

from benchmarks.peers._common import announce_address

REACTOR_MODULES = {
    "epoll": "epollreactor",
    "poll": "pollreactor",
    "select": "selectreactor",
    "kqueue": "kqreactor",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--reactor",
        choices=tuple(REACTOR_MODULES),
        default="epoll" if hasattr(select, "epoll") else "poll",
    )
    args = parser.parse_args()
    importlib.import_module(f"twisted.internet.{REACTOR_MODULES[args.reactor]}").install()

    from twisted.internet import protocol
    from twisted.internet import reactor as installed

    reactor: Any = installed

    class Echo(protocol.Protocol):
        # A TCP transport (zope interfaces do not type-check as methods).
        transport: Any

        def connectionMade(self) -> None:
            self.transport.setTcpNoDelay(True)

        def dataReceived(self, data: bytes) -> None:
            self.transport.write(data)

    port = reactor.listenTCP(
        args.port, protocol.Factory.forProtocol(Echo), backlog=1024, interface=args.host
    )
    address = port.getHost()
    announce_address(address.host, address.port)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
