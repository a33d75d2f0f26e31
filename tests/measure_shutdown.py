"""Measure how the echo server shuts down, against `python -m pollers.server` subprocesses.

The tests assert these behaviours; this prints the figures (times, bytes) that
README and docs quote. Run from a checkout's tests/ directory with its venv:

    cd tests && ../.venv/bin/python measure_shutdown.py [idle|owed|group] [tries]

idle:  per available variant, 5 clients that echoed once and then sit idle; SIGINT;
       the time from the signal to the process's exit, and whether each got a clean EOF.
owed:  per variant, a client sending 8 MiB that reads nothing (4 KiB receive buffer) until
       its sends block; SIGTERM; then it reads (and finishes sending): what it receives
       (bytes, CRC-32 equal to what it sent, EOF or reset).
group: --workers 2 (selectors-epoll) in its own process group, 4 idle clients and one
       owed 4 MiB; os.killpg(SIGINT) as a terminal's Ctrl-C; per try: exit status, all
       bytes + EOF for the owed client, clean EOF for the idle ones, no "now" line.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from typing import List

# tests/ (for echo_client) and the checkout (for pollers), as pytest's rootdir setup gives them.
TESTS = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [TESTS, os.path.dirname(TESTS)]
from echo_client import (  # noqa: E402
    ServerProcess,
    Transfer,
    connect,
    echo,
    expect_clean_eof,
    receive_all,
    variant_arguments,
)

import pollers  # noqa: E402

MiB = 1024 * 1024


def clean_eofs(clients: List[socket.socket], timeout: float) -> int:
    """How many of ``clients`` get a clean EOF (no reset, no stray bytes) within ``timeout``."""
    clean = 0
    for sock in clients:
        try:
            expect_clean_eof(sock, timeout)
            clean += 1
        except (OSError, AssertionError):
            pass
    return clean


def idle() -> None:
    for variant in pollers.available():
        with ServerProcess([*variant_arguments(variant), "--drain-timeout", "60"]) as process:
            clients = [connect(process.address) for _ in range(5)]
            for sock in clients:
                assert echo(sock, b"hello") == b"hello"
            time.sleep(0.3)  # idle
            started = time.monotonic()
            process.send_signal(signal.SIGINT)
            status = process.wait(30)
            elapsed = time.monotonic() - started
            clean = clean_eofs(clients, 5)
            for sock in clients:
                sock.close()
            print(f"{variant:18} exit {status} after {elapsed:.3f} s; clean EOF {clean}/5")


def owed(total: int = 8 * MiB) -> None:
    for variant in pollers.available():
        with ServerProcess([*variant_arguments(variant), "--drain-timeout", "60"]) as process:
            with connect(process.address, timeout=60, rcvbuf=4096) as sock:
                transfer = Transfer(sock, total, seed=8).start()
                # Until its sends block (every buffer on the way full) or all is sent.
                last, deadline = -1, time.monotonic() + 60
                while transfer.thread.is_alive() and transfer.sent != last:
                    assert time.monotonic() < deadline
                    last = transfer.sent
                    time.sleep(0.3)
                unsent = total - transfer.sent
                started = time.monotonic()
                process.send_signal(signal.SIGTERM)
                try:
                    got, checksum = receive_all(sock, total, time.monotonic() + 60, until_eof=True)
                    end = "EOF"
                except ConnectionResetError:
                    got, checksum, end = -1, 0, "RESET"
                elapsed = time.monotonic() - started
                transfer.join(30)
                status = process.wait(30)
            same = "CRC-32 equal" if checksum == transfer.checksum else "CRC-32 DIFFERS"
            print(
                f"{variant:18} sent {total} ({unsent} still in its sendall at the signal), "
                f"read {got} bytes, {same}, then {end}; "
                f"{elapsed:.3f} s to read it all; exit {status}"
            )


def group(tries: int) -> None:
    good = 0
    for number in range(1, tries + 1):
        arguments = ["--poller", "selectors", "--workers", "2", "--drain-timeout", "60"]
        with ServerProcess(arguments, own_group=True) as process:
            idle_clients = [connect(process.address) for _ in range(4)]
            for sock in idle_clients:
                assert echo(sock, b"idle") == b"idle"
            slow = connect(process.address, timeout=60, rcvbuf=4096)
            transfer = Transfer(slow, 4 * MiB, seed=number).start()
            transfer.join(60)
            started = time.monotonic()
            process.signal_group(signal.SIGINT)
            got, checksum = receive_all(slow, 4 * MiB, time.monotonic() + 60, until_eof=True)
            clean = clean_eofs(idle_clients, 10)
            status = process.wait(30)
            elapsed = time.monotonic() - started
            log = process.stderr()
            now_lines = log.count("connection(s) now")
            ok = (
                status == 0
                and (got, checksum) == (4 * MiB, transfer.checksum)
                and clean == 4
                and now_lines == 0
            )
            good += ok
            print(
                f"try {number:2}: exit {status} in {elapsed:.3f} s; owed client {got} bytes "
                f"{'intact' if checksum == transfer.checksum else 'CORRUPT'} + EOF; "
                f"idle clean EOF {clean}/4; 'now' lines {now_lines}; drains logged "
                f"{log.count('no longer accepting')} -> {'graceful' if ok else 'FAILED'}"
            )
            for sock in [*idle_clients, slow]:
                sock.close()
    print(f"group SIGINT to --workers 2: {good}/{tries} graceful drains")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "idle"
    if what == "idle":
        idle()
    elif what == "owed":
        owed()
    else:
        group(int(sys.argv[2]) if len(sys.argv) > 2 else 10)
    sys.stdout.flush()
