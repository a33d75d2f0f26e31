"""Where the echo server listens, and every way it opens a listening socket.

An endpoint is one of:

- `TcpEndpoint`: ``HOST:PORT`` or ``[IPV6]:PORT`` (``--bind``), or ``--host``/``--port``;
  every address the host resolves to is bound, on one port (`open_listeners`);
- `UnixEndpoint`: ``unix:PATH`` (``--bind``) or ``--unix PATH``, a Unix stream socket;
  a socket file left behind by a server that is gone is replaced, a live one is not;
- `FdEndpoint`: ``fd://N`` (``--bind``) or ``--fd N``, a socket that is already
  listening, inherited from whoever started the server; systemd's socket activation
  (``LISTEN_PID``/``LISTEN_FDS``, see `systemd_endpoints`) gives the same.

`open_endpoints` opens (or adopts) a list of them, naming the one that failed in a
`ListenError`; `open_listeners` is the TCP case alone, for a host and port (what
`EchoServer` binds when it is given no sockets). Every socket comes back nonblocking
and listening (``listen=False``: a TCP socket only bound, to hold its port for the
SO_REUSEPORT sockets of ``--workers``; see `reuse_port_available`). Accepting on
them is `server.listener`'s job.

    >>> parse_bind("[::1]:8000")
    TcpEndpoint(host='::1', port=8000)
    >>> parse_bind("unix:/run/echo.sock").describe()
    'unix:/run/echo.sock'
    >>> parse_bind("::1:8000")
    Traceback (most recent call last):
    ...
    ValueError: an IPv6 address needs brackets: '[::1]:8000'
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import sys
from dataclasses import dataclass
from typing import List, MutableMapping, Optional, Sequence, Tuple, Union

__all__ = [
    "Address",
    "Endpoint",
    "FdEndpoint",
    "ListenError",
    "TcpEndpoint",
    "UnixEndpoint",
    "format_address",
    "open_endpoint",
    "open_endpoints",
    "open_listeners",
    "parse_bind",
    "remove_unix_socket_files",
    "reuse_port_available",
    "socket_name",
    "systemd_endpoints",
]

Address = Tuple[str, int]

#: systemd passes its sockets from this descriptor number on (sd_listen_fds(3)).
SD_LISTEN_FDS_START = 3


@dataclass(frozen=True)
class TcpEndpoint:
    """Every address ``host`` resolves to (``""``: every interface), on ``port`` (0: any)."""

    host: str
    port: int

    def describe(self) -> str:
        return format_address((self.host or "*", self.port))


@dataclass(frozen=True)
class UnixEndpoint:
    """A Unix stream socket bound at ``path``."""

    path: str

    def describe(self) -> str:
        return f"unix:{self.path}"


@dataclass(frozen=True)
class FdEndpoint:
    """The listening socket on descriptor ``fd``, made by whoever started the server."""

    fd: int
    #: Where it came from, for messages: ``--fd`` or ``systemd``.
    origin: str = "--fd"

    def describe(self) -> str:
        return f"fd {self.fd} ({self.origin})"


Endpoint = Union[TcpEndpoint, UnixEndpoint, FdEndpoint]


def parse_port(text: str) -> int:
    """A TCP port number, 0 to 65535; ValueError otherwise."""
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be in 0..65535, got {port}")
    return port


def parse_fd(text: str) -> int:
    """A descriptor number (0 or more); ValueError otherwise."""
    try:
        fd = int(text)
    except ValueError:
        raise ValueError(f"not a descriptor number: {text!r}") from None
    if fd < 0:
        raise ValueError(f"a descriptor number is 0 or more, got {fd}")
    return fd


def parse_bind(text: str) -> Endpoint:
    """``HOST:PORT``, ``[IPV6]:PORT``, ``:PORT`` (every interface), ``unix:PATH`` or ``fd://N``."""
    if text.startswith("unix:"):
        path = text[len("unix:") :]
        if not path:
            raise ValueError("unix: needs a path, e.g. unix:/run/echo.sock")
        return UnixEndpoint(path)
    if text.startswith("fd://"):
        return FdEndpoint(parse_fd(text[len("fd://") :]), "--bind")
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not rest.startswith(":") or not host:
            raise ValueError(f"expected [IPV6]:PORT, got {text!r}")
        return TcpEndpoint(host, parse_port(rest[1:]))
    host, colon, port = text.rpartition(":")
    if not colon:
        raise ValueError(f"expected HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N, got {text!r}")
    if ":" in host:
        raise ValueError(f"an IPv6 address needs brackets: '[{host}]:{port}'")
    return TcpEndpoint(host, parse_port(port))


def systemd_endpoints(environ: Optional[MutableMapping[str, str]] = None) -> List[FdEndpoint]:
    """The sockets systemd passed to this process (socket activation), if any.

    As sd_listen_fds(3): only when ``LISTEN_PID`` is this process's id, ``LISTEN_FDS``
    descriptors from 3 on. The variables are removed from ``environ`` (default
    ``os.environ``) so that no child process takes them for its own. ValueError if
    they are malformed.
    """
    env = os.environ if environ is None else environ
    pid, count = env.get("LISTEN_PID"), env.get("LISTEN_FDS")
    if pid is None or count is None:
        return []
    try:
        if int(pid) != os.getpid():
            return []  # meant for another process (the one that exec'd us, say)
        number = int(count)
    except ValueError:
        raise ValueError(f"LISTEN_PID={pid!r} LISTEN_FDS={count!r}: not numbers") from None
    if number < 0:
        raise ValueError(f"LISTEN_FDS={count!r}: a count of descriptors, 0 or more")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(name, None)
    return [FdEndpoint(SD_LISTEN_FDS_START + index, "systemd") for index in range(number)]


class ListenError(Exception):
    """An endpoint could not be opened; the message names it and why."""


def open_endpoints(
    endpoints: Sequence[Endpoint],
    backlog: int = socket.SOMAXCONN,
    reuse_port: bool = False,
    listen: bool = True,
) -> List[socket.socket]:
    """Open (or adopt) every endpoint: nonblocking listening sockets, in order.

    ``reuse_port`` and ``listen`` apply to TCP endpoints (see `open_listeners`).
    Raises `ListenError` naming the endpoint that failed; the sockets already
    opened are closed then.
    """
    sockets: List[socket.socket] = []
    try:
        for endpoint in endpoints:
            try:
                sockets += open_endpoint(endpoint, backlog, reuse_port, listen)
            except (OSError, ValueError) as exc:
                message = " ".join(str(exc).split())
                raise ListenError(f"{endpoint.describe()}: {message}") from exc
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def open_endpoint(
    endpoint: Endpoint,
    backlog: int = socket.SOMAXCONN,
    reuse_port: bool = False,
    listen: bool = True,
) -> List[socket.socket]:
    """The nonblocking listening socket(s) of one endpoint; OSError or ValueError if it fails.

    ``listen=False`` only binds a TCP endpoint (to hold its port for SO_REUSEPORT
    workers); the other kinds are always returned listening.
    """
    if isinstance(endpoint, TcpEndpoint):
        return open_listeners(endpoint.host or None, endpoint.port, backlog, reuse_port, listen)
    if isinstance(endpoint, UnixEndpoint):
        return [_open_unix(endpoint.path, backlog)]
    return [_adopt(endpoint.fd)]


def open_listeners(
    host: Optional[str],
    port: int,
    backlog: int = socket.SOMAXCONN,
    reuse_port: bool = False,
    listen: bool = True,
) -> List[socket.socket]:
    """Bind and listen on every address ``host`` resolves to; all share one port.

    ``host`` None or ``""`` means every interface (IPv4 and IPv6 where present).
    With ``port`` 0 the first socket picks a free port and the others reuse it.
    ``reuse_port`` sets SO_REUSEPORT_LB/SO_REUSEPORT (see `reuse_port_available`);
    ``listen=False`` only binds (reserving the port for other SO_REUSEPORT sockets).
    Raises OSError (including socket.gaierror) if any address cannot be bound.
    """
    infos = socket.getaddrinfo(
        host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
    )
    seen = set()
    unique = []
    for family, kind, proto, _, sockaddr in infos:
        key = (family, sockaddr[:2])
        if key not in seen:
            seen.add(key)
            unique.append((family, kind, proto, sockaddr))
    sockets: List[socket.socket] = []
    try:
        for family, kind, proto, sockaddr in unique:
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, _reuse_port_option(), 1)
            if family == socket.AF_INET6:
                # One socket per family: keep the IPv6 one from claiming IPv4 too.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                sockaddr = (sockaddr[0], sockets[0].getsockname()[1], *sockaddr[2:])
            sock.bind(sockaddr)
            if listen:
                sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


#: FreeBSD 12+'s load-balancing SO_REUSEPORT_LB (sys/socket.h); CPython names it only from 3.14.
FREEBSD_SO_REUSEPORT_LB = 0x10000


def _load_balancing_option() -> Optional[int]:
    """The SOL_SOCKET option that spreads one port's connections over several sockets."""
    if sys.platform.startswith("freebsd"):
        option: int = getattr(socket, "SO_REUSEPORT_LB", FREEBSD_SO_REUSEPORT_LB)
        return option
    if sys.platform.startswith("linux"):
        return getattr(socket, "SO_REUSEPORT", None)
    return None  # macOS and the other BSDs: SO_REUSEPORT rebinds but does not balance


def reuse_port_available() -> bool:
    """Whether the kernel can spread one port's connections over several sockets."""
    return _load_balancing_option() is not None


def _reuse_port_option() -> int:
    """SO_REUSEPORT_LB on FreeBSD, SO_REUSEPORT on Linux; ENOPROTOOPT elsewhere."""
    option = _load_balancing_option()
    if option is None:
        raise OSError(errno.ENOPROTOOPT, f"no load-balanced listening sockets on {sys.platform}")
    return option


#: (pid, path, inode) of every Unix socket file this process bound, for
#: `remove_unix_socket_files`.
_bound_paths: List[Tuple[int, str, int]] = []


def _open_unix(path: str, backlog: int) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.bind(path)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or not _is_stale_socket(path):
                raise
            os.unlink(path)  # left behind by a server that is gone
            sock.bind(path)
        _bound_paths.append((os.getpid(), path, os.stat(path).st_ino))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def remove_unix_socket_files() -> None:
    """Remove the socket files this process bound, if they are still the ones it made."""
    pid = os.getpid()
    while _bound_paths:
        owner, path, inode = _bound_paths.pop()
        if owner != pid:
            continue  # bound by the parent before a fork: the parent removes it
        with contextlib.suppress(OSError):
            status = os.lstat(path)
            if stat.S_ISSOCK(status.st_mode) and status.st_ino == inode:
                os.unlink(path)


def _is_stale_socket(path: str) -> bool:
    """True if ``path`` is a socket file that nothing listens on any more."""
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return False
    except OSError:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    return False


def _adopt(fd: int) -> socket.socket:
    """The listening stream socket on ``fd``; OSError if ``fd`` is something else."""
    try:
        os.fstat(fd)
    except OSError as exc:
        raise OSError(exc.errno, f"descriptor {fd} is not open") from None
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise OSError(exc.errno, f"descriptor {fd} is not a socket") from None
    problem = None
    if sock.type != socket.SOCK_STREAM:
        problem = f"descriptor {fd} is not a stream socket"
    elif sock.family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
        problem = f"descriptor {fd} is not an IPv4, IPv6 or Unix socket"
    elif hasattr(socket, "SO_ACCEPTCONN"):
        with contextlib.suppress(OSError):  # unknown to some kernels: then trust the caller
            if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                problem = f"descriptor {fd} is a socket that is not listening"
    if problem is not None:
        sock.detach()  # not ours to close
        raise OSError(errno.EINVAL, problem)
    sock.setblocking(False)
    return sock


def format_address(address: Address) -> str:
    """``127.0.0.1:8000`` or ``[::1]:8000``."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def socket_name(sock: socket.socket) -> str:
    """How messages name a listening socket: ``127.0.0.1:7007``, ``[::1]:7007``, ``unix:PATH``."""
    if sock.family == socket.AF_UNIX:
        name = sock.getsockname()
        return f"unix:{os.fsdecode(name) if name else '(unnamed)'}"
    return format_address(sock.getsockname()[:2])
