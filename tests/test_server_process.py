"""The echo server as a subprocess, its memory, CPU time and descriptors read with psutil.

Every test runs once per variant, on every platform psutil supports.
"""

from __future__ import annotations

import socket
import sys
import time
from typing import Iterator, List

import pytest
from echo_client import (
    SUBPROCESS_OWNS_ITS_LOOP,
    PeakRss,
    ServerProcess,
    Transfer,
    connect,
    echo,
    raise_descriptor_limit,
    receive_all,
    recv_exactly,
    variant_arguments,
)
from helpers import limited_to_fd_setsize

pytestmark = pytest.mark.owned_only(SUBPROCESS_OWNS_ITS_LOOP)

MiB = 1024 * 1024


@pytest.fixture
def server_process(variant_name: str) -> Iterator[ServerProcess]:
    with ServerProcess([*variant_arguments(variant_name), "--log-level", "warning"]) as process:
        yield process


def test_slow_reader_memory_stays_bounded(server_process: ServerProcess) -> None:
    """200 MiB to a client that does not read for 2 s: the server's memory stays flat."""
    total = 200 * MiB
    with connect(server_process.address, timeout=60, rcvbuf=64 * 1024) as sock:
        assert echo(sock, b"warm up") == b"warm up"
        baseline = server_process.rss_kib()
        # The server owes at most a few hundred KiB per connection; 64 MiB leaves room
        # for the interpreter. PyPy's GC lets the heap grow to ~1.8x what was live at
        # the last major collection before it collects, so garbage of the transfer
        # (already sent) may add up to the baseline again there.
        bound_kib = 64 * 1024 + (baseline if sys.implementation.name == "pypy" else 0)
        with PeakRss(server_process) as peak_rss:
            transfer = Transfer(sock, total, seed=200).start()
            time.sleep(2.0)  # not reading: the server must stop reading too
            stalled_at = transfer.sent
            rss_while_stalled = server_process.rss_kib()
            got, checksum = receive_all(sock, total, time.monotonic() + 120)
            transfer.join(10)
        peak = peak_rss.kib
    assert (got, checksum) == (total, transfer.checksum)
    assert stalled_at < total // 2, f"the sender was not held back ({stalled_at} bytes sent)"
    assert rss_while_stalled - baseline < bound_kib
    assert peak - baseline < bound_kib, f"peak RSS {peak} KiB vs baseline {baseline} KiB"
    print(
        f"\nslow reader: baseline RSS {baseline} KiB, RSS while stalled "
        f"{rss_while_stalled} KiB, peak RSS {peak} KiB, sender stalled at {stalled_at} bytes"
    )


def test_idle_connection_memory(server_process: ServerProcess, variant_name: str) -> None:
    """Measures (and bounds generously) the server's resident memory per idle connection.

    The marginal cost: resident memory after ``2 * count`` idle connections minus after
    ``count``, over ``count``; so start-up, warm-up and JIT compilation (PyPy) are
    left out.
    """
    # select() cannot watch descriptors >= FD_SETSIZE (1024): measure it below that.
    count = 450 if limited_to_fd_setsize(variant_name) else 2000
    raise_descriptor_limit(2 * count + 500)
    clients: List[socket.socket] = []
    readings = []
    try:
        for _ in range(2):
            batch = [connect(server_process.address) for _ in range(count)]
            clients += batch
            for sock in batch:
                sock.sendall(b"i")
            deadline = time.monotonic() + 30
            for sock in batch:
                assert recv_exactly(sock, 1, deadline) == b"i"
            readings.append(server_process.rss_kib())
    finally:
        for sock in clients:
            sock.close()
    per_connection = (readings[1] - readings[0]) * 1024 / count
    print(
        f"\nidle connections: {per_connection:.0f} bytes of RSS each "
        f"(from {count} to {2 * count} connections)"
    )
    # CPython: a few hundred bytes to ~2 KiB. PyPy's RSS moves with its GC and JIT
    # (one reading can land before a major collection), hence its looser bound.
    bound = 64 * 1024 if sys.implementation.name == "pypy" else 16 * 1024
    assert per_connection < bound


def test_emfile_backs_off_without_spinning(variant_name: str) -> None:
    """More clients than descriptors: accepting pauses (little CPU), resumes when fds free up."""
    nofile = 64
    with ServerProcess(
        [*variant_arguments(variant_name), "--log-level", "warning"], nofile=nofile
    ) as process:
        # Count the descriptors once the loop runs (uvloop opens some lazily).
        with connect(process.address) as probe:
            assert echo(probe, b"probe") == b"probe"
            with_probe = process.open_descriptors()
        deadline = time.monotonic() + 20
        while process.open_descriptors() >= with_probe:
            assert time.monotonic() < deadline, "the server did not close the probe"
            time.sleep(0.01)
        free = nofile - process.open_descriptors()
        assert free > 5, f"only {free} descriptors left after start-up"
        served = [connect(process.address) for _ in range(free)]
        waiting = [connect(process.address) for _ in range(20)]  # complete in the backlog
        try:
            for sock in served:
                assert echo(sock, b"served") == b"served"
            for sock in waiting:
                sock.sendall(b"waiting")
            process.wait_for_log("accept() failed")  # it hit EMFILE and backs off
            first_backoff = time.monotonic()
            cpu_before = process.cpu_seconds()
            started = time.monotonic()
            time.sleep(2.0)
            cpu = process.cpu_seconds() - cpu_before
            wall = time.monotonic() - started
            assert cpu < 0.3, f"{cpu:.2f} s of CPU in {wall:.2f} s while out of descriptors"
            for sock in waiting:
                sock.settimeout(0.01)
                with pytest.raises(socket.timeout):
                    sock.recv(1)  # not served yet
            log = process.stderr()
            assert "Too many open files" in log
            backoff_lines = log.count("accept() failed")
            # Back-offs double from 0.05 s to 1 s: 6 lines in the first 1.55 s, then one
            # a second (a descheduled test only sees more time pass, never a spin).
            allowed = 6 + int(time.monotonic() - first_backoff) + 1
            assert 1 <= backoff_lines <= allowed, log
            for sock in served[: len(waiting) + 2]:
                sock.close()
            deadline = time.monotonic() + 20
            for sock in waiting:
                assert recv_exactly(sock, 7, deadline) == b"waiting"
        finally:
            for sock in served + waiting:
                sock.close()
    print(f"\nEMFILE: {cpu:.3f} s CPU over {wall:.2f} s, {backoff_lines} back-off log line(s)")
