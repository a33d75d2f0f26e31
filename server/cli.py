"""The ``echo-server`` command, also ``python -m pollers.server`` (``python -m server``
in a checkout).

Prints ``listening on ADDRESS...`` (every listening socket, on one line:
``127.0.0.1:7007``, ``[::1]:7007``, ``unix:PATH``) to stdout once it accepts
connections. SIGINT/SIGTERM stop accepting and drain: each connection ends once
it owes nothing and is quiet (`EchoServer.drain`: its client gets every byte it
sent, then EOF), for up to ``--drain-timeout`` seconds; then exit 0. A second
signal (or SIGQUIT) closes everything at once. Counters are logged at exit.
That policy is `server.service.serve`'s; this module parses the options into a
`ServeOptions`, the endpoints and the poller, and calls it.

Where it listens: ``--host``/``--port`` (default 127.0.0.1:7007), or any number of
``--bind HOST:PORT|[IPV6]:PORT|unix:PATH|fd://N``, ``--unix PATH``, ``--fd N``,
and the sockets of systemd's socket activation (see `server.endpoints`).
``--workers N`` runs N processes on them (see `server.workers`). There a
repeated SIGINT/SIGTERM reaching a worker (a terminal signals the whole process
group, and the parent passes signals on) changes nothing: only the parent's
second signal, passed on as SIGQUIT, or a SIGQUIT, means "now".

Exit status: 0 after a signal, 1 if the server cannot listen, 2 for bad options
or a poller that cannot run here (a one-line message naming why).
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.config
import socket
import sys
from typing import Callable, Dict, List, Mapping, NoReturn, Optional, Sequence, Tuple

import pollers
from pollers.family import Family
from pollers.registry import FAMILY_DECLARATIONS, command_line_options

from .endpoints import (
    Endpoint,
    FdEndpoint,
    ListenError,
    TcpEndpoint,
    UnixEndpoint,
    open_endpoints,
    parse_bind,
    parse_fd,
    remove_unix_socket_files,
    reuse_port_available,
    systemd_endpoints,
)
from .service import DEFAULT_DRAIN_TIMEOUT, ServeOptions, cannot_listen, serve
from .workers import block_shutdown_signals, run_workers

#: Each backend option (``selector``, ``loop``, ...) -> (its declaration, the families taking it).
POLLER_OPTIONS = command_line_options()
LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_HOST = "127.0.0.1"
#: Not RFC 862's port 7: only root may bind a port below 1024.
DEFAULT_PORT = 7007
#: The family an option alone implies (``--loop uvloop`` with no ``--poller``): the
#: first of these that takes the options and values given, else the one family that
#: does (see `choose_family`).
IMPLIED_FAMILIES = ("selectors", "asyncio")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: With --workers, every line names the process that wrote it.
WORKERS_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"


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


def _argparse_type(parse: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse type from a parser raising ValueError with a message."""

    def convert(text: str) -> object:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _log_level(text: str) -> str:
    level = text.lower()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"invalid choice: {text!r} (choose from {', '.join(LOG_LEVELS)}, in any case)"
        )
    return level


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
        + "; ".join(f"{f.name}: {f.summary}" for f in FAMILY_DECLARATIONS.values())
        + ". Listening options add up; with none, --host and --port apply "
        "(and the sockets systemd passes, LISTEN_FDS, are always used).",
    )
    parser.add_argument(
        "--version", action=_VersionAction, nargs=0, help="show the versions and exit"
    )
    parser.add_argument(
        "--list-pollers",
        action="store_true",
        help="list every backend variant, whether it runs here and if not why, then exit",
    )
    listen = parser.add_argument_group("where to listen")
    listen.add_argument("--host", help=f"address or name to listen on (default {DEFAULT_HOST})")
    listen.add_argument(
        "--port",
        type=_port,
        help=f"TCP port; 0 picks a free one (default {DEFAULT_PORT}; ports below 1024 need root)",
    )
    listen.add_argument(
        "--bind",
        action="append",
        default=[],
        metavar="ADDRESS",
        type=_argparse_type(parse_bind),
        help="HOST:PORT, [IPV6]:PORT, :PORT (every interface), unix:PATH or fd://N; repeatable",
    )
    listen.add_argument(
        "--unix", action="append", default=[], metavar="PATH", help="a Unix socket; repeatable"
    )
    listen.add_argument(
        "--fd",
        action="append",
        default=[],
        metavar="N",
        type=_argparse_type(parse_fd),
        help="an inherited, already listening socket; repeatable",
    )
    listen.add_argument(
        "--backlog",
        type=_positive_int,
        default=socket.SOMAXCONN,
        help=f"listen() backlog of the sockets it opens (default {socket.SOMAXCONN})",
    )
    listen.add_argument(
        "--reuse-port",
        action="store_true",
        help="SO_REUSEPORT (SO_REUSEPORT_LB on FreeBSD) on TCP sockets, so that several "
        "servers can share a port" + ("" if reuse_port_available() else " (not on this platform)"),
    )
    parser.add_argument(
        "--poller",
        choices=tuple(pollers.FAMILIES),
        help="backend family (default selectors, or the one an option such as --loop implies)",
    )
    for option, families in POLLER_OPTIONS.values():
        parser.add_argument(
            f"--{option.name}", choices=option.choices, help=_option_help(option.name, families)
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
        help="processes serving the sockets, each with its own poller (default 1)",
    )
    parser.add_argument(
        "--log-level",
        type=_log_level,
        metavar="{" + ",".join(LOG_LEVELS) + "}",
        help="in any case (default info, or what --log-config sets)",
    )
    parser.add_argument(
        "--log-config",
        metavar="FILE",
        help="a logging.config file: JSON (.json, dictConfig) or INI (fileConfig)",
    )
    return parser


def library_versions() -> Dict[str, Optional[str]]:
    """The version of each library a family runs on (None: not installed)."""
    from importlib import metadata

    versions: Dict[str, Optional[str]] = {}
    for family in FAMILY_DECLARATIONS.values():
        for name in family.libraries:
            if name not in versions:
                try:
                    versions[name] = metadata.version(name)
                except metadata.PackageNotFoundError:
                    versions[name] = None
    return versions


class _VersionAction(argparse.Action):
    """``--version``: `version_text` on one line (argparse's own action wraps it)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(version_text())
        parser.exit(0)


def _option_help(name: str, families: Sequence[str]) -> str:
    """``--NAME``'s help: what it picks and its default, for each family taking it
    (families that share both are named together: "event loop for --poller
    tornado|asyncio (default asyncio); gevent loop for --poller gevent (default libev)")."""
    groups: Dict[Tuple[str, str], List[str]] = {}
    for family in families:
        option = next(o for o in FAMILY_DECLARATIONS[family].options if o.name == name)
        groups.setdefault((option.help, option.default), []).append(family)
    return "; ".join(
        f"{what} for --poller {'|'.join(takers)} (default {default})"
        for (what, default), takers in groups.items()
    )


def version_text() -> str:
    """``echo-server 0.1.0 (CPython 3.11.9; tornado 6.5.2, uvloop not installed)``."""
    python = f"{sys.implementation.name.replace('cpython', 'CPython').replace('pypy', 'PyPy')} "
    libraries = ", ".join(
        f"{name} {version}" if version else f"{name} not installed"
        for name, version in library_versions().items()
    )
    return f"echo-server {pollers.__version__} ({python}{sys.version.split()[0]}" + (
        f"; {libraries})" if libraries else ")"
    )


def list_pollers() -> str:
    """Every variant, as ``--list-pollers`` prints it (like ``twistd --help-reactors``)."""
    lines = []
    for variant in pollers.variants():
        flags = f"--poller {variant.family}" + "".join(
            f" --{name} {value}" for name, value in variant.options.items()
        )
        status = "available" if variant.runs_here else f"unavailable: {variant.reason}"
        lines.append(f"{variant.name:18} {flags:38} {status}")
    return "\n".join(lines) + "\n"


def choose_family(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    families: Mapping[str, Family] = FAMILY_DECLARATIONS,
) -> str:
    """``--poller``, or with none the family the option flags given imply.

    A family is implied if it takes every option given and each one's value is among
    its own choices (``--loop libuv``: gevent, whose loops are not asyncio's); of
    several, the first of `IMPLIED_FAMILIES`, else a usage error naming them.
    """
    if args.poller is not None:
        return str(args.poller)
    values = {name: getattr(args, name) for name in POLLER_OPTIONS}
    given = {name: value for name, value in values.items() if value is not None}
    takers = [name for name, family in families.items() if _takes(family, given)]
    for name in IMPLIED_FAMILIES:
        if name in takers:
            return name
    flags = " and ".join(f"--{name} {value}" for name, value in given.items())
    if len(takers) == 1:
        return takers[0]
    if takers:
        parser.error(f"{flags} fits the families {', '.join(takers)}: choose one with --poller")
    parser.error(f"no backend family takes {flags} together")


def _takes(family: Family, given: Mapping[str, str]) -> bool:
    choices = {option.name: option.choices for option in family.options}
    return all(name in choices and value in choices[name] for name, value in given.items())


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


def endpoints_of(parser: argparse.ArgumentParser, args: argparse.Namespace) -> List[Endpoint]:
    """Every endpoint the options name, in order, and systemd's sockets if it passed any."""
    endpoints: List[Endpoint] = []
    if args.host is not None or args.port is not None:
        host = DEFAULT_HOST if args.host is None else args.host
        endpoints.append(TcpEndpoint(host, DEFAULT_PORT if args.port is None else args.port))
    endpoints += args.bind
    endpoints += [UnixEndpoint(path) for path in args.unix]
    endpoints += [FdEndpoint(fd) for fd in args.fd]
    try:
        endpoints += systemd_endpoints()
    except ValueError as exc:
        parser.error(f"socket activation: {exc}")
    # One descriptor adopted twice would be two socket objects closing it twice.
    seen: Dict[int, FdEndpoint] = {}
    for endpoint in endpoints:
        if isinstance(endpoint, FdEndpoint):
            if endpoint.fd in seen:
                origins = f"{seen[endpoint.fd].origin} and {endpoint.origin}"
                parser.error(f"descriptor {endpoint.fd} is named twice ({origins})")
            seen[endpoint.fd] = endpoint
    if not endpoints:
        endpoints.append(TcpEndpoint(DEFAULT_HOST, DEFAULT_PORT))
    return endpoints


def configure_logging(
    parser: argparse.ArgumentParser, args: argparse.Namespace, workers: bool
) -> None:
    """``--log-config`` if given (then ``--log-level`` only if given too), else the default."""
    if args.log_config is None:
        logging.basicConfig(
            level=(args.log_level or "info").upper(),
            format=WORKERS_LOG_FORMAT if workers else LOG_FORMAT,
            stream=sys.stderr,
        )
        return
    path = args.log_config
    try:
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as config_file:
                config = json.load(config_file)
            # The server's loggers exist already: keep them unless the file says otherwise.
            config.setdefault("disable_existing_loggers", False)
            logging.config.dictConfig(config)
        else:
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except Exception as exc:  # whatever the file gets wrong: a usage error, in one line
        # fileConfig raises KeyError for a missing section; dictConfig ValueError.
        detail = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        parser.error(f"--log-config {path}: {type(exc).__name__}: {detail}")
    if args.log_level is not None:
        logging.getLogger().setLevel(args.log_level.upper())


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the server, return the exit status."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers are in place
        return 130


def _main(argv: Optional[Sequence[str]]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_pollers:
        print(list_pollers(), end="")
        return 0
    args.poller = choose_family(parser, args)
    options = poller_options(parser, args)
    endpoints = endpoints_of(parser, args)
    try:
        poller = pollers.create(args.poller, **options)
    except ValueError as exc:
        parser.error(str(exc))
    configure_logging(parser, args, workers=args.workers > 1)
    service = serve_options(args)
    try:
        if args.workers > 1:
            poller.close()  # it only proved the variant runs here; workers make their own

            def worker(
                open_sockets: Callable[[], List[socket.socket]], ready: Callable[[], None]
            ) -> int:
                return _run_worker(args.poller, options, service, open_sockets, ready)

            try:
                return run_workers(args.workers, endpoints, args.backlog, worker)
            except ListenError as exc:
                return cannot_listen(exc)

        def open_sockets() -> List[socket.socket]:
            return open_endpoints(endpoints, args.backlog, args.reuse_port)

        try:
            return serve(poller, service, open_sockets=open_sockets)
        finally:
            poller.close()
    finally:
        remove_unix_socket_files()


def serve_options(args: argparse.Namespace) -> ServeOptions:
    """What `serve` needs of the parsed options."""
    return ServeOptions(
        drain_timeout=args.drain_timeout,
        max_connections=args.max_connections,
        idle_timeout=args.idle_timeout,
    )


def _run_worker(
    family: str,
    options: Dict[str, str],
    service: ServeOptions,
    open_sockets: Callable[[], List[socket.socket]],
    ready: Callable[[], None],
) -> int:
    """One worker of ``--workers N``, in its own process: its own poller, then `serve`."""
    poller = pollers.create(family, **options)
    try:
        return serve(poller, service, open_sockets=open_sockets, on_listening=ready)
    finally:
        block_shutdown_signals()  # before close() puts the default handlers back
        poller.close()
