"""The applications in ``examples/``: each serves its host's own service and the echo
server in one process, drains the echo server on a request, and goes on serving.

Each example runs as a user would run it (``python examples/<name>.py``), in a
subprocess, on ports it picks (``0``) and prints.
"""

from __future__ import annotations

import http.client
import queue
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Iterator, Tuple

import pytest
from echo_client import child_environment

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: How long an example may take to print its addresses, or to finish a drain.
BOUND = 20.0

Address = Tuple[str, int]


def _unavailable(example: str) -> str:
    if example.startswith("tornado"):
        try:
            import tornado  # noqa: F401
        except ImportError:
            return "tornado is not installed; pip install tornado"
    return ""


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


def _address(line: str, service: str) -> Address:
    prefix = f"{service} listening on "
    assert line.startswith(prefix), line
    host, port = line[len(prefix) :].rsplit(":", 1)
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


@pytest.fixture(params=[("asyncio_app", "GET"), ("tornado_app", "POST")], ids=lambda p: p[0])
def example(
    request: pytest.FixtureRequest,
) -> Iterator[Example]:
    name, drain_method = request.param
    reason = _unavailable(name)
    if reason:
        pytest.skip(f"{name}: {reason}")
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--echo-port", "0", "--http-port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=child_environment(),
    )
    try:
        lines = Lines(process)
        echo = _address(lines.next(), "echo")
        web = _address(lines.next(), "http")
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
    assert lines.next() == "echo server drained and closed"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(echo, timeout=BOUND).close()
    # The host goes on serving on the same loop.
    assert "the echo server is closed" in _request(web, "GET", "/")
    assert process.poll() is None
