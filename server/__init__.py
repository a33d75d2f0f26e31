"""An RFC 862 TCP echo server written once against `pollers.Poller`.

Installed as ``pollers.server``; the repository keeps it in its top-level ``server/``
folder, so ``python -m server`` runs it from a checkout.

- `server.connection`: the per-connection state machine (`Connection`, `State`, `Limits`);
- `server.listener`: listening sockets and the accept loop (`Listener`, `open_listeners`);
- `server.echo_server`: `EchoServer`, which ties them together (limits, idle sweep,
  draining, counters);
- `server.endpoints`: where it listens (``--bind``, ``--unix``, ``--fd``, systemd);
- `server.cli`: the ``echo-server`` command (``python -m pollers.server``).
"""

from pollers import __version__

from .connection import Connection, Limits, State
from .echo_server import DrainStart, EchoServer, ServerStats
from .listener import Listener, format_address, open_listeners

__all__ = [
    "Connection",
    "DrainStart",
    "EchoServer",
    "Limits",
    "Listener",
    "ServerStats",
    "State",
    "__version__",
    "format_address",
    "open_listeners",
]
