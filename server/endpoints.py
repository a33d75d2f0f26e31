"""Where the echo server listens: ``--bind`` specs, ``--unix``, ``--fd`` and systemd sockets.

An endpoint is one of:

- `TcpEndpoint`: ``HOST:PORT`` or ``[IPV6]:PORT`` (``--bind``), or ``--host``/``--port``;
  every address the host resolves to is bound, on one port;
- `UnixEndpoint`: ``unix:PATH`` (``--bind``) or ``--unix PATH``, a Unix stream socket;
  a socket file left behind by a server that is gone is replaced, a live one is not;
- `FdEndpoint`: ``fd://N`` (``--bind``) or ``--fd N``, a socket that is already
  listening, inherited from whoever started the server; systemd's socket activation
  (``LISTEN_PID``/``LISTEN_FDS``, see `systemd_endpoints`) gives the same.

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
from dataclasses import dataclass
from typing import List, MutableMapping, Optional, Sequence, Tuple, Union

from .listener import format_address, open_listeners, socket_name

__all__ = [
    "Endpoint",
    "FdEndpoint",
    "ListenError",
    "TcpEndpoint",
    "UnixEndpoint",
    "open_endpoint",
    "open_endpoints",
    "parse_bind",
    "remove_unix_socket_files",
    "socket_name",
    "systemd_endpoints",
]

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
    endpoints: Sequence[Endpoint], backlog: int = socket.SOMAXCONN, reuse_port: bool = False
) -> List[socket.socket]:
    """Open (or adopt) every endpoint: nonblocking listening sockets, in order.

    ``reuse_port`` applies to TCP endpoints (see `server.listener.open_listeners`).
    Raises `ListenError` naming the endpoint that failed; the sockets already
    opened are closed then.
    """
    sockets: List[socket.socket] = []
    try:
        for endpoint in endpoints:
            try:
                sockets += open_endpoint(endpoint, backlog, reuse_port)
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
