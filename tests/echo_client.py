"""Helpers for the echo server tests: servers in a thread or a subprocess, and clients.

Everything here is bounded in time: every blocking call has a deadline and a
helper that runs out of time raises AssertionError saying what it waited for.
"""

from __future__ import annotations

import contextlib
import os
import random
import resource
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Type

import psutil
from hosts import HOSTS

import pollers
from pollers import Poller
from server import EchoServer

REPO = Path(__file__).resolve().parent.parent
Address = Tuple[str, int]

#: Bigger chunks mean fewer Python-level iterations per MiB in the data tests.
CHUNK = 1024 * 1024


# -- servers -------------------------------------------------------------------


@contextlib.contextmanager
def running_server(
    poller: Poller,
    host: str = "127.0.0.1",
    server_class: Type[EchoServer] = EchoServer,
    **options: Any,
) -> Iterator[EchoServer]:
    """An `EchoServer` (or ``server_class``) on ``poller``, run by a thread; closed and
    joined on exit. An attached poller whose host is bound to the thread that made it
    runs through its `hosts.HostSpec.run_on_this_thread`."""
    host_spec = HOSTS.get(poller.name) if poller.attached else None
    run_poller: Callable[[Poller], None] = Poller.run
    if host_spec is not None and host_spec.run_on_this_thread is not None:
        run_poller = host_spec.run_on_this_thread
    server = server_class(poller, host, 0, **options).start()
    failure: List[BaseException] = []

    def run() -> None:
        try:
            run_poller(poller)
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"server-{poller.name}", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        on_loop(poller, server.close)
        poller.call_soon_threadsafe(poller.stop)
        thread.join(10)
        assert not thread.is_alive(), "the server thread did not stop within 10 s"
    assert not failure, f"poller.run() raised {failure[0]!r}"


def on_loop(poller: Poller, function: Any, *args: Any, timeout: float = 10.0) -> Any:
    """Run ``function(*args)`` on the poller's thread and return its result."""
    done = threading.Event()
    result: List[Any] = []
    error: List[BaseException] = []

    def call() -> None:
        try:
            result.append(function(*args))
        except BaseException as exc:
            error.append(exc)
        finally:
            done.set()

    poller.call_soon_threadsafe(call)
    assert done.wait(timeout), f"{function!r} did not run on the loop within {timeout} s"
    if error:
        raise error[0]
    return result[0]


#: The echo server as the tests run it: by its installed name (``python -m server`` is
#: the same program in a checkout, see the README).
SERVER_COMMAND = [sys.executable, "-m", "pollers.server"]
#: Where the ``pollers`` these tests import comes from: site-packages (a wheel) or this
#: checkout (an editable install). Subprocesses get it first on PYTHONPATH.
IMPORT_ROOT = Path(pollers.__file__).resolve().parent.parent
#: Subprocesses start here: ``python -m`` puts its working directory first on sys.path,
#: and the repository's root there would shadow an installed wheel.
SUBPROCESS_CWD = Path(__file__).resolve().parent


def child_environment(**extra: str) -> Dict[str, str]:
    """The environment of a ``python -m pollers.server`` subprocess: the ``pollers`` the
    tests import first on PYTHONPATH, then the session's own entries (the emulated
    kqueue's, in that mode)."""
    path = os.pathsep.join(filter(None, [str(IMPORT_ROOT), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path, **extra)


#: The ``owned_only`` reason of the tests that start the server with `variant_arguments`.
SUBPROCESS_OWNS_ITS_LOOP = (
    "the echo server runs in a subprocess chosen by --poller, which makes its own loop"
)


def variant_arguments(variant: str) -> List[str]:
    """The command-line options selecting ``variant``."""
    family, options = pollers.VARIANTS[variant]
    arguments = ["--poller", family]
    for name, value in options.items():
        arguments += [f"--{name}", value]
    return arguments


class ServerProcess:
    """``python -m pollers.server --port 0`` in a subprocess, with psutil readings of it.

    ``own_group``: the server leads a process group of its own (with its workers),
    which `signal_group` signals as a terminal's Ctrl-C or systemd would.
    """

    def __init__(
        self,
        arguments: Sequence[str],
        nofile: Optional[int] = None,
        timeout: float = 20.0,
        own_group: bool = False,
    ) -> None:
        self.stderr_file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__)
        self.own_group = own_group
        if nofile is None:
            command = list(SERVER_COMMAND)
        else:
            bootstrap = (
                "import resource, runpy, sys; "
                "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]; "
                f"resource.setrlimit(resource.RLIMIT_NOFILE, ({nofile}, hard)); "
                "sys.argv[0] = 'echo-server'; "
                "runpy.run_module('pollers.server', run_name='__main__')"
            )
            command = [sys.executable, "-c", bootstrap]
        env = child_environment(PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [*command, "--port", "0", *arguments],
            cwd=SUBPROCESS_CWD,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.stderr_file,
            start_new_session=own_group,
        )
        self.pid = self.process.pid
        self._ps: Optional[psutil.Process] = None
        self.line = self._read_line(timeout)
        host_port = self.line.split()[2]
        host, _, port = host_port.rpartition(":")
        self.address: Address = (host.strip("[]"), int(port))

    def _read_line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            self.kill()
            raise AssertionError(f"no 'listening on' line within {timeout} s: {self.stderr()}")
        line = self.process.stdout.readline().decode()
        if not line.startswith("listening on "):
            self.kill()
            raise AssertionError(f"unexpected first line {line!r}; stderr: {self.stderr()}")
        return line

    def stderr(self) -> str:
        self.stderr_file.seek(0)
        return self.stderr_file.read().decode(errors="replace")

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def signal_group(self, signum: int) -> None:
        """Signal every process of the server's group at once (needs ``own_group``)."""
        assert self.own_group, "started without own_group=True"
        os.killpg(self.pid, signum)

    def wait_for_log(self, text: str, timeout: float = 20.0, count: int = 1) -> str:
        """Wait until ``text`` is in the server's stderr ``count`` times; return the log."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.stderr()
            if log.count(text) >= count:
                return log
            if time.monotonic() >= deadline or self.process.poll() is not None:
                raise AssertionError(f"{text!r} not logged {count} time(s): {log}")
            time.sleep(0.01)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"the server did not exit within {timeout} s; stderr: {self.stderr()}"
            ) from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self.own_group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)  # workers left behind

    @property
    def ps(self) -> psutil.Process:
        """The server process as psutil sees it (Linux, FreeBSD and macOS alike)."""
        if self._ps is None:
            self._ps = psutil.Process(self.pid)
        return self._ps

    def rss_kib(self) -> int:
        """The server's resident memory now, in KiB."""
        return int(self.ps.memory_info().rss) // 1024

    def cpu_seconds(self) -> float:
        """User plus system CPU time so far (all threads)."""
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def open_descriptors(self) -> int:
        return int(self.ps.num_fds())

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.stderr_file.close()


class PeakRss:
    """The highest resident memory of a process seen while the block runs, in KiB.

    Sampled every ``interval`` seconds from a thread (no platform reports a peak
    for another process except Linux's VmHWM, which would not be portable).
    """

    def __init__(self, process: ServerProcess, interval: float = 0.005) -> None:
        self.process = process
        self.interval = interval
        self.kib = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            with contextlib.suppress(psutil.Error):
                self.kib = max(self.kib, self.process.rss_kib())
            if self._done.wait(self.interval):
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join(10)


def raise_descriptor_limit(wanted: int) -> int:
    """Raise this process's RLIMIT_NOFILE soft limit toward ``wanted``; return the result."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


# -- clients -------------------------------------------------------------------


def connect(address: Address, timeout: float = 10.0, rcvbuf: Optional[int] = None) -> socket.socket:
    """A blocking client socket with a timeout (and, if given, a small receive buffer)."""
    sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
    try:
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def reset(sock: socket.socket) -> None:
    """Close ``sock`` with an RST instead of a FIN (SO_LINGER 0)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    sock.close()


def recv_exactly(sock: socket.socket, size: int, deadline: float) -> bytes:
    """Read exactly ``size`` bytes before ``deadline`` (time.monotonic), or fail saying why."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {got} of {size} bytes came back in time"
        sock.settimeout(remaining)
        count = sock.recv_into(view[got:])
        assert count, f"EOF after {got} of {size} bytes"
        got += count
    return bytes(buffer)


def expect_eof(sock: socket.socket, timeout: float) -> None:
    """The peer closes: recv returns b"" (or the connection is reset) within ``timeout``."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(65536)
    except ConnectionResetError:
        return
    assert data == b"", f"expected EOF, got {len(data)} more bytes"


def expect_clean_eof(sock: socket.socket, timeout: float) -> None:
    """The peer sends FIN (recv returns b"") within ``timeout``: no more data, no reset."""
    sock.settimeout(timeout)
    data = sock.recv(65536)  # ConnectionResetError fails the test: it must not reset
    assert data == b"", f"expected EOF, got {len(data)} more bytes"


def is_closed_by_peer_after_reading(sock: socket.socket, timeout: float) -> bool:
    """Read and drop whatever the peer sent until it closes (EOF or reset) or ``timeout``."""
    deadline = time.monotonic() + timeout
    buffer = bytearray(1024 * 1024)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        sock.settimeout(remaining)
        try:
            if not sock.recv_into(buffer):
                return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def is_closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """True if the peer closed (EOF or reset) within ``timeout``, False if still open."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def echo(sock: socket.socket, payload: bytes, timeout: float = 10.0) -> bytes:
    """Send ``payload`` and return what comes back (as many bytes)."""
    sock.sendall(payload)
    return recv_exactly(sock, len(payload), time.monotonic() + timeout)


class PatternSource:
    """A reproducible stream of pseudo-random bytes, served as slices of one random block.

    Chunk ``i`` starts at a pseudo-random offset in the block, so the stream does
    not repeat with a short period, yet producing it costs no copying.
    """

    def __init__(self, seed: int, block_size: int = 8 * CHUNK) -> None:
        rng = random.Random(seed)
        self.block = memoryview(rng.randbytes(block_size + CHUNK))
        self.offsets = random.Random(seed + 1)

    def chunks(self, total: int, chunk: int = CHUNK) -> Iterator[memoryview]:
        limit = len(self.block) - chunk
        left = total
        while left > 0:
            size = min(chunk, left)
            start = self.offsets.randrange(limit)
            yield self.block[start : start + size]
            left -= size


class Transfer:
    """Send ``total`` pattern bytes on ``sock`` from a thread; the caller reads them back.

    ``sent`` counts bytes handed to the kernel so far; ``checksum`` is the CRC-32
    of everything sent once the thread is done; ``error`` holds what it raised.
    """

    def __init__(
        self, sock: socket.socket, total: int, seed: int = 1, shutdown_after: bool = False
    ) -> None:
        self.sock = sock
        self.total = total
        self.sent = 0
        self.checksum = 0
        self.error: Optional[BaseException] = None
        self._source = PatternSource(seed)
        self._shutdown_after = shutdown_after
        self.thread = threading.Thread(target=self._send, name="transfer", daemon=True)

    def start(self) -> Transfer:
        self.thread.start()
        return self

    def _send(self) -> None:
        checksum = 0
        sendall = self.sock.sendall
        crc32 = zlib.crc32
        try:
            for chunk in self._source.chunks(self.total):
                checksum = crc32(chunk, checksum)
                sendall(chunk)
                self.sent += len(chunk)
            if self._shutdown_after:
                self.sock.shutdown(socket.SHUT_WR)
        except BaseException as exc:
            self.error = exc
        self.checksum = checksum

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the sender is stuck after {self.sent} bytes"
        if self.error is not None:
            raise AssertionError(f"the sender failed after {self.sent} bytes") from self.error


def receive_all(
    sock: socket.socket,
    expected: int,
    deadline: float,
    until_eof: bool = False,
    checksum: int = 0,
) -> Tuple[int, int]:
    """Read ``expected`` bytes (then, if ``until_eof``, the EOF); return (count, CRC-32).

    ``checksum``: the CRC-32 of what came before, to go on from (the count may exceed
    ``expected`` by what the last read brought)."""
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    recv_into = sock.recv_into
    crc32 = zlib.crc32
    got = 0
    while got < expected or until_eof:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {got} of {expected} bytes came back in time"
        sock.settimeout(remaining)
        count = recv_into(buffer)
        if not count:
            break
        checksum = crc32(view[:count], checksum)
        got += count
    return got, checksum


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name
