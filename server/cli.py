"""The ``echo-server`` command (also ``python -m server``).

Prints ``listening on HOST:PORT`` (every bound address, on one line) to stdout
once it accepts connections. SIGINT/SIGTERM stop accepting and drain the open
connections for up to ``--drain-timeout`` seconds, then exit 0; a second
signal closes everything at once. Counters are logged at exit.

``--workers N`` runs N processes on the one port (see `server.workers`).

Exit status: 0 after a signal, 1 if the server cannot listen, 2 for bad options
or a poller that cannot run here (a one-line message naming why).
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
from typing import Callable, Dict, List, NoReturn, Optional, Sequence

import pollers
from pollers.registry import FAMILY_DECLARATIONS, command_line_options

from .echo_server import EchoServer
from .listener import format_address
from .workers import run_workers, unblock_shutdown_signals

logger = logging.getLogger("server")

#: Each backend option (``selector``, ``loop``, ...) -> (its declaration, the families taking it).
POLLER_OPTIONS = command_line_options()
LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_DRAIN_TIMEOUT = 5.0


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _integer(low: int, high: Optional[int] = None) -> Callable[[str], int]:
    """An argparse type: an int in ``low..high`` (no upper bound if ``high`` is None)."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"in {low}..{high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return convert


_port = _integer(0, 65535)
_positive_int = _integer(1)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="echo-server",
        description="RFC 862 TCP echo server over one of the pollers backends.",
        epilog="backend families: "
        + "; ".join(f"{f.name}: {f.summary}" for f in FAMILY_DECLARATIONS.values()),
    )
    parser.add_argument("--version", action="version", version=version_text())
    parser.add_argument(
        "--host", default="127.0.0.1", help="address or name to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=_port, default=7, help="TCP port; 0 picks a free one (default 7)"
    )
    parser.add_argument(
        "--poller", choices=tuple(pollers.FAMILIES), default="selectors", help="backend family"
    )
    for option, families in POLLER_OPTIONS.values():
        parser.add_argument(
            f"--{option.name}",
            choices=option.choices,
            help=f"{option.help} for --poller {'|'.join(families)} (default {option.default})",
        )
    parser.add_argument(
        "--max-connections", type=_positive_int, help="stop accepting while this many are open"
    )
    parser.add_argument(
        "--idle-timeout", type=_positive_float, help="close connections idle this many seconds"
    )
    parser.add_argument(
        "--drain-timeout",
        type=_positive_float,
        default=DEFAULT_DRAIN_TIMEOUT,
        help=f"on SIGINT/SIGTERM, serve open connections this long at most "
        f"(default {DEFAULT_DRAIN_TIMEOUT:g} s)",
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="processes serving the port, each with its own poller (default 1)",
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    return parser


def version_text() -> str:
    return f"echo-server {pollers.__version__} (Python {sys.version.split()[0]})"


def poller_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Dict[str, str]:
    """The options for ``pollers.create(args.poller, ...)``; parser.error if they clash."""
    wanted = pollers.FAMILIES[args.poller]
    options: Dict[str, str] = {}
    for option in POLLER_OPTIONS:
        value = getattr(args, option)
        if value is None:
            continue
        if option not in wanted:
            takes = " and ".join(f"--{name}" for name in wanted) or "no options"
            parser.error(f"--{option} does not apply to --poller {args.poller} (it takes {takes})")
        options[option] = value
    return options


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the server, return the exit status."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers are in place
        return 130


def _main(argv: Optional[Sequence[str]]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    options = poller_options(parser, args)
    try:
        poller = pollers.create(args.poller, **options)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.workers > 1:
        poller.close()  # it only proved the variant runs here; workers make their own

        def worker(
            sockets: Optional[List[socket.socket]], port: int, ready: Callable[[], None]
        ) -> int:
            return _run_worker(args, options, sockets, port, ready)

        try:
            return run_workers(args.workers, args.host, args.port, worker)
        except OSError as exc:
            return _cannot_listen(args, exc)
    try:
        return serve(poller, args)
    finally:
        poller.close()


def _run_worker(
    args: argparse.Namespace,
    options: Dict[str, str],
    sockets: Optional[List[socket.socket]],
    port: int,
    ready: Callable[[], None],
) -> int:
    """One worker of ``--workers N``, in its own process: its own poller, then `serve`."""
    poller = pollers.create(args.poller, **options)
    try:
        return serve(poller, args, sockets=sockets, port=port, on_listening=ready)
    finally:
        poller.close()


def _cannot_listen(args: argparse.Namespace, exc: OSError) -> int:
    message = " ".join(str(exc).split())
    print(
        f"echo-server: error: cannot listen on {args.host}:{args.port}: {message}",
        file=sys.stderr,
    )
    return 1


def serve(
    poller: pollers.Poller,
    args: argparse.Namespace,
    *,
    sockets: Optional[List[socket.socket]] = None,
    port: Optional[int] = None,
    on_listening: Optional[Callable[[], None]] = None,
) -> int:
    """Run an `EchoServer` on ``poller`` until a signal ends it; returns the exit status.

    A worker of ``--workers N`` passes the ``sockets`` it inherited, or else the
    ``port`` it binds with SO_REUSEPORT, and ``on_listening`` (called instead of
    printing the ``listening on`` line, which its parent prints).
    """
    server = EchoServer(
        poller,
        args.host,
        args.port if port is None else port,
        max_connections=args.max_connections,
        idle_timeout=args.idle_timeout,
        reuse_port=port is not None and sockets is None,
        sockets=sockets,
    )
    signals: List[int] = []

    def on_signal(signum: int) -> None:
        signals.append(signum)
        name = signal.Signals(signum).name
        if len(signals) == 1:
            logger.info("%s: no longer accepting; draining", name)
            server.drain(args.drain_timeout, poller.stop)
        else:
            logger.warning("%s again: closing %d connection(s) now", name, len(server.connections))
            server.close()
            poller.stop()

    # A worker has these signals blocked since its fork: release them once the loop
    # runs with its handlers (the poller itself keeps none from arriving too early).
    poller.call_soon(unblock_shutdown_signals)
    for signum in (signal.SIGINT, signal.SIGTERM):
        poller.add_signal_handler(signum, on_signal, signum)
    # Handlers first: a worker must never listen while a signal would kill it.
    try:
        server.start()
    except OSError as exc:
        return _cannot_listen(args, exc)
    if on_listening is not None:
        on_listening()
    else:
        addresses = " ".join(format_address(address) for address in server.addresses)
        print(f"listening on {addresses}", flush=True)
    try:
        poller.run()
    finally:
        server.close()
        logger.info("exiting: %s", server.stats.describe())
    return 0
