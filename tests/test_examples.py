"""The applications in ``examples/``: each serves its host's own service and the echo
server in one process, drains the echo server on a request, and goes on serving.

Each example runs as a user would run it (``python examples/<name>.py``; the Twisted
one with ``twistd -n -y examples/twisted_app.tac``), in a subprocess, on ports it picks
(``0``) and prints.
"""

from __future__ import annotations

import http.client
import importlib
import queue
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Iterator, List, Optional, Tuple

import pytest
from echo_client import child_environment

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: How long an example may take to print its addresses, or to finish a drain.
BOUND = 20.0

Address = Tuple[str, int]


#: Example -> the library it needs (the distribution to install).
_NEEDS = {"tornado_app": "tornado", "twisted_app": "twisted", "gevent_app": "gevent"}


def _unavailable(example: str) -> str:
    library = _NEEDS.get(example)
    if library is not None:
        try:
            importlib.import_module(library)
        except ImportError:
            return f"{library} is not installed; pip install {library}"
    if example == "twisted_app" and _twistd() is None:
        return "no twistd command beside this Python or on PATH"
    return ""


def _twistd() -> Optional[str]:
    """The ``twistd`` command of this environment (beside its Python), else on PATH."""
    beside = Path(sys.executable).parent / "twistd"
    return str(beside) if beside.exists() else shutil.which("twistd")


def _command(example: str) -> List[str]:
    """How a user runs ``example``: twistd for the .tac file, Python for the others."""
    if example == "twisted_app":
        # --pidfile= : several runs of the suite at once must not share ./twistd.pid.
        twistd = _twistd()
        assert twistd is not None
        return [twistd, "-n", "--pidfile=", "-y", str(EXAMPLES / "twisted_app.tac")]
    return [sys.executable, str(EXAMPLES / f"{example}.py"), "--echo-port", "0", "--http-port", "0"]


class Lines:
    """The lines an example prints, read on a thread so that each wait is bounded."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.strip())
        self._queue.put("(the example ended)")

    def next(self) -> str:
        try:
            return self._queue.get(timeout=BOUND)
        except queue.Empty:
            raise AssertionError(f"no line from the example within {BOUND} s") from None

    def wait_for(self, text: str) -> str:
        """The next line that contains ``text``, skipping others (twistd's log lines)."""
        while True:
            line = self.next()
            if text in line or line == "(the example ended)":
                return line


def _address(line: str, service: str) -> Address:
    prefix = f"{service} listening on "
    assert prefix in line, line
    host, port = line.split(prefix, 1)[1].rsplit(":", 1)
    return host.strip("[]"), int(port)


def _request(address: Address, method: str, path: str) -> str:
    connection = http.client.HTTPConnection(*address, timeout=BOUND)
    try:
        connection.request(method, path, body=b"" if method == "POST" else None)
        response = connection.getresponse()
        assert response.status == 200, response.status
        return response.read().decode()
    finally:
        connection.close()


def _recv_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        assert chunk, f"EOF after {data!r}"
        data += chunk
    return data


Example = Tuple["subprocess.Popen[str]", Lines, Address, Address, str]


@pytest.fixture(
    params=[
        ("asyncio_app", "GET"),
        ("tornado_app", "POST"),
        ("twisted_app", "POST"),
        ("gevent_app", "POST"),
    ],
    ids=lambda p: p[0],
)
def example(
    request: pytest.FixtureRequest,
) -> Iterator[Example]:
    name, drain_method = request.param
    reason = _unavailable(name)
    if reason:
        pytest.skip(f"{name}: {reason}")
    process = subprocess.Popen(
        _command(name),
        stdout=subprocess.PIPE,
        text=True,
        env={**child_environment(), "ECHO_PORT": "0", "HTTP_PORT": "0"},
    )
    try:
        lines = Lines(process)
        echo = _address(lines.wait_for("echo listening on "), "echo")
        web = _address(lines.wait_for("http listening on "), "http")
        yield process, lines, echo, web, drain_method
    finally:
        process.terminate()
        process.wait(BOUND)
        if process.stdout is not None:
            process.stdout.close()


def test_both_services_at_once_then_the_echo_drains_and_the_host_serves_on(
    example: Example,
) -> None:
    process, lines, echo, web, drain_method = example
    with socket.create_connection(echo, timeout=BOUND) as client:
        client.sendall(b"first ")
        # The echo client is open and owed bytes while the web service answers.
        assert "the echo server is serving" in _request(web, "GET", "/")
        client.sendall(b"second")
        assert _recv_exactly(client, 12) == b"first second"

        # The drain: the open echo client is served, then gets EOF.
        assert "the echo server is" in _request(web, drain_method, "/drain-echo")
        client.settimeout(BOUND)
        assert client.recv(100) == b""
    assert lines.wait_for("echo server drained and closed").endswith(
        "echo server drained and closed"
    )
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(echo, timeout=BOUND).close()
    # The host goes on serving on the same loop.
    assert "the echo server is closed" in _request(web, "GET", "/")
    assert process.poll() is None
