"""An RFC 862 TCP echo server written once against `pollers.Poller`.

Installed as ``pollers.server``; the repository keeps it in its top-level ``server/``
folder, so ``python -m server`` runs it from a checkout.

- `server.connection`: the per-connection state machine (`Connection`, `State`, `Limits`),
  with `server.send_queue` holding what a client is owed;
- `server.endpoints`: where it listens (``--bind``, ``--unix``, ``--fd``, systemd) and
  every way of opening a listening socket (`open_endpoints`, `open_listeners`);
- `server.listener`: the accept loop (`Listener`);
- `server.echo_server`: `EchoServer`, which ties them together (limits, idle sweep,
  draining, counters);
- `server.service`: `serve`, an `EchoServer` run as a process's service (signals, drain,
  exit status), tuned by a `ServeOptions`;
- `server.workers`: ``--workers N`` processes on the same sockets;
- `server.cli`: the ``echo-server`` command (``python -m pollers.server``), which turns
  its options into the calls above.
"""

from pollers import __version__

from .connection import Connection, Limits, State
from .echo_server import DrainStart, EchoServer, ServerStats
from .endpoints import format_address, open_listeners
from .listener import Listener
from .service import ServeOptions, serve

__all__ = [
    "Connection",
    "DrainStart",
    "EchoServer",
    "Limits",
    "Listener",
    "ServeOptions",
    "ServerStats",
    "State",
    "__version__",
    "format_address",
    "open_listeners",
    "serve",
]
