"""``--workers N``: one port served by N processes, each with its own poller, per variant."""

from __future__ import annotations

import os
import signal
import socket
import time
from typing import List, Set

import psutil
import pytest
from echo_client import (
    SUBPROCESS_OWNS_ITS_LOOP,
    ServerProcess,
    Transfer,
    connect,
    echo,
    expect_clean_eof,
    receive_all,
    variant_arguments,
)

pytestmark = pytest.mark.owned_only(SUBPROCESS_OWNS_ITS_LOOP)

MiB = 1024 * 1024


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


def connections_of(pid: int) -> int:
    """The connected TCP sockets that process ``pid`` holds (its listeners not counted)."""
    return sum(1 for entry in psutil.Process(pid).net_connections(kind="tcp") if entry.raddr)


def wait_for_no_connections(pids: Set[int], timeout: float = 20) -> None:
    """Until every process holds only its listeners: a worker closes a connection only
    once it has read the client's EOF, which on a busy machine takes a while."""
    deadline = time.monotonic() + timeout
    while True:
        held = {pid: connections_of(pid) for pid in pids}
        if not any(held.values()):
            return
        assert time.monotonic() < deadline, f"connections still held after {timeout}s: {held}"
        time.sleep(0.05)


def test_workers_share_the_port_restart_and_drain(variant_name: str) -> None:
    arguments = [*variant_arguments(variant_name), "--workers", "2", "--log-level", "info"]
    with ServerProcess(arguments) as process:
        workers = wait_for_children(process.pid, 2, exclude=set())
        probe = [connect(process.address) for _ in range(8)]
        for sock in probe:  # every worker is up and accepting
            assert echo(sock, b"up") == b"up"
        for sock in probe:
            sock.close()
        wait_for_no_connections(workers)
        clients: List[socket.socket] = [connect(process.address) for _ in range(24)]
        try:
            for index, sock in enumerate(clients):
                assert echo(sock, b"%d" % index) == b"%d" % index
            # The kernel spread the connections: each worker holds some of them.
            for pid in workers:
                assert connections_of(pid) > 0, f"worker {pid} got no connection"
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
            process.send_signal(signal.SIGTERM)  # to the parent only: it passes it on
            expect_clean_eof(sock, 20)  # owing nothing: its worker ends it once quiet
        assert process.wait(20) == 0
        log = process.stderr()
        assert "Traceback" not in log, log
        assert f"worker {killed} exited with status -9; restarting it" in log, log
        for pid in workers:  # reaped by the parent before it exited
            assert not psutil.pid_exists(pid)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_group_signal_is_one_graceful_drain(variant_name: str, signum: signal.Signals) -> None:
    """Ctrl-C in a terminal (SIGINT) or systemd's KillMode=control-group (SIGTERM)
    signal every process: each worker gets the signal from the kernel and again from
    the parent, and must still drain once, gracefully; only a second signal to the
    group (the user's second Ctrl-C) closes everything at once."""
    arguments = [*variant_arguments(variant_name), "--workers", "2", "--log-level", "info"]
    arguments += ["--drain-timeout", "60"]
    with ServerProcess(arguments, own_group=True) as process:
        wait_for_children(process.pid, 2, exclude=set())
        idle = [connect(process.address) for _ in range(4)]
        sent = [connect(process.address, timeout=60) for _ in range(4)]
        stuck = [connect(process.address, timeout=60, rcvbuf=4096) for _ in range(4)]
        try:
            for sock in idle:
                assert echo(sock, b"idle") == b"idle"
            # Each sends 1 MiB and reads nothing until the signal.
            transfers = [Transfer(sock, MiB, seed=index).start() for index, sock in enumerate(sent)]
            for transfer in transfers:
                transfer.join(30)
            # These send more than every buffer holds and never read: owed to the end.
            for index, sock in enumerate(stuck):
                Transfer(sock, 256 * MiB, seed=100 + index).start()
            process.signal_group(signum)
            for sock in idle:
                expect_clean_eof(sock, 20)
            for sock, transfer in zip(sent, transfers):
                got = receive_all(sock, MiB, time.monotonic() + 60, until_eof=True)
                assert got == (MiB, transfer.checksum)
            process.wait_for_log(f"{signum.name}: no longer accepting", count=2)  # each worker
            time.sleep(0.5)
            log = process.stderr()
            assert process.process.poll() is None, f"exited while owing bytes: {log}"
            assert " now" not in log, f"one signal to the group was taken as two: {log}"

            process.signal_group(signum)  # the second Ctrl-C: now
            assert process.wait(20) == 0  # not the 60 s drain deadline
        finally:
            for sock in idle + sent + stuck:
                sock.close()
        log = process.stderr()
        assert "Traceback" not in log, log
        assert log.count(f"{signum.name}: no longer accepting") == 2, log
        assert log.count("passing it on") == 1, log
        assert f"{signum.name} again: telling" in log, log
        assert "to close every connection now" in log, log
