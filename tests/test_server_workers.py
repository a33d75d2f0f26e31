"""``--workers N``: one port served by N processes, each with its own poller, per variant."""

from __future__ import annotations

import os
import signal
import socket
import time
from typing import List, Set

import psutil
from echo_client import ServerProcess, connect, echo, variant_arguments


def children(pid: int) -> Set[int]:
    return {child.pid for child in psutil.Process(pid).children()}


def wait_for_children(pid: int, count: int, exclude: Set[int], timeout: float = 10) -> Set[int]:
    deadline = time.monotonic() + timeout
    while True:
        found = children(pid)
        if len(found) == count and not found & exclude:
            return found
        assert time.monotonic() < deadline, f"workers of {pid}: {found}, wanted {count}"
        time.sleep(0.02)


def sockets_of(pid: int) -> int:
    """The TCP sockets (listening and connected) that process ``pid`` holds."""
    return len(psutil.Process(pid).net_connections(kind="tcp"))


def test_workers_share_the_port_restart_and_drain(variant_name: str) -> None:
    arguments = [*variant_arguments(variant_name), "--workers", "2", "--log-level", "info"]
    with ServerProcess(arguments) as process:
        workers = wait_for_children(process.pid, 2, exclude=set())
        probe = [connect(process.address) for _ in range(8)]
        for sock in probe:  # every worker is up and accepting
            assert echo(sock, b"up") == b"up"
        for sock in probe:
            sock.close()
        time.sleep(0.2)
        baseline = {pid: sockets_of(pid) for pid in workers}
        clients: List[socket.socket] = [connect(process.address) for _ in range(24)]
        try:
            for index, sock in enumerate(clients):
                assert echo(sock, b"%d" % index) == b"%d" % index
            # The kernel spread the connections: each worker holds some of them.
            for pid in workers:
                assert sockets_of(pid) > baseline[pid], f"worker {pid} got no connection"
        finally:
            for sock in clients:
                sock.close()

        killed = min(workers)
        os.kill(killed, signal.SIGKILL)
        workers = wait_for_children(process.pid, 2, exclude={killed})
        for _ in range(8):
            with connect(process.address) as sock:
                assert echo(sock, b"after restart") == b"after restart"

        with connect(process.address) as sock:
            assert echo(sock, b"before") == b"before"
            process.send_signal(signal.SIGTERM)
            assert echo(sock, b"draining") == b"draining"  # its worker keeps serving it
            assert process.process.poll() is None
        assert process.wait(15) == 0
        log = process.stderr()
        assert "Traceback" not in log, log
        assert f"worker {killed} exited with status -9; restarting it" in log, log
        for pid in workers:  # reaped by the parent before it exited
            assert not psutil.pid_exists(pid)
