"""The echo server and a ``twisted.web`` site on Twisted's global reactor, run by twistd.

The poller is attached to the reactor twistd runs with ``pollers.attach(reactor)``.
``POST /drain-echo`` (or ``GET``) drains the echo server (open echo clients are
served, then get EOF), after which the server and the poller are closed; the site
goes on serving on the same reactor until twistd is stopped (Ctrl-C, SIGTERM).

    ECHO_PORT=7007 HTTP_PORT=8080 twistd -n -y examples/twisted_app.tac

Ports come from ``ECHO_PORT``/``HTTP_PORT`` (twistd passes no arguments to a .tac
file); 0, the default, picks a free one. The bound addresses are printed (twistd
logs them), one line each::

    echo listening on 127.0.0.1:7007
    http listening on 127.0.0.1:8080
"""

import os
from typing import Any, Optional

from pollers.server import EchoServer, format_address
from twisted.application import service
from twisted.internet import reactor
from twisted.web import resource, server

import pollers

HOST = os.environ.get("APP_HOST", "127.0.0.1")
ECHO_PORT = int(os.environ.get("ECHO_PORT", 0))
HTTP_PORT = int(os.environ.get("HTTP_PORT", 0))
#: How long the drain may take before the echo connections still open are closed.
DRAIN_TIMEOUT = 5.0


class EchoService(service.Service):
    """The echo server on a poller attached to the reactor, for as long as twistd runs."""

    def __init__(self) -> None:
        self.poller: Any = None
        self.echo: Optional[EchoServer] = None

    def startService(self) -> None:
        super().startService()
        self.poller = pollers.attach(reactor)
        self.echo = EchoServer(self.poller, HOST, ECHO_PORT).start()
        print(f"echo listening on {format_address(self.echo.address)}", flush=True)

    @property
    def state(self) -> str:
        if self.poller.closed:
            return "closed"
        return "draining" if self.echo.draining else "serving"

    def drain(self) -> None:
        if not self.poller.closed and not self.echo.draining:
            self.echo.drain(DRAIN_TIMEOUT, self._drained)

    def _drained(self) -> None:
        self.echo.close()
        self.poller.close()  # detaches from the reactor; the site goes on
        print("echo server drained and closed", flush=True)

    def stopService(self) -> None:
        if self.poller is not None and not self.poller.closed:
            self.echo.close()
            self.poller.close()
        super().stopService()


class Status(resource.Resource):
    isLeaf = True

    def __init__(self, echo: EchoService) -> None:
        super().__init__()
        self.echo = echo

    def render_GET(self, request: Any) -> bytes:
        if request.path == b"/drain-echo":
            self.echo.drain()
        request.setHeader(b"content-type", b"text/plain")
        return f"hello from twisted; the echo server is {self.echo.state}\n".encode()

    render_POST = render_GET


class SiteService(service.Service):
    """The web site, listening where twistd's reactor runs."""

    def __init__(self, site: server.Site) -> None:
        self.site = site
        self.port: Any = None

    def startService(self) -> None:
        super().startService()
        self.port = reactor.listenTCP(HTTP_PORT, self.site, interface=HOST)
        print(f"http listening on {format_address((self.port.getHost().host, self.port.getHost().port))}", flush=True)

    def stopService(self) -> Any:
        super().stopService()
        return self.port.stopListening()


application = service.Application("pollers echo server beside a twisted.web site")
echo_service = EchoService()
echo_service.setServiceParent(application)
SiteService(server.Site(Status(echo_service))).setServiceParent(application)
