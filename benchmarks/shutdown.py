"""Measure how the echo server shuts down, against ``python -m server`` subprocesses.

The tests assert these behaviours; this prints the figures (times, bytes) that
README and docs quote. Run from a checkout with its venv:

    .venv/bin/python -m benchmarks.shutdown [idle|owed|group] [tries]

idle:  per available variant, 5 clients that echoed once and then sit idle; SIGINT;
       the time from the signal to the process's exit, and whether each got a clean EOF.
owed:  per variant, a client sending 8 MiB that reads nothing (4 KiB receive buffer) until
       its sends block; SIGTERM; then it reads (and finishes sending): what it receives
       (bytes, CRC-32 equal to what it sent, EOF or reset).
group: --workers 2 (selectors-epoll) in its own process group, 4 idle clients and one
       owed 4 MiB; os.killpg(SIGINT) as a terminal's Ctrl-C; per try: exit status, all
       bytes + EOF for the owed client, clean EOF for the idle ones, no "now" line.

The servers start as the harness starts them (`benchmarks.suites.harness.ServerProcess`);
the clients are the small blocking ones below, which measure rather than assert.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import sys
import threading
import time
import zlib
from typing import List, Optional, Sequence, Tuple

import pollers

from .suites.harness import ServerProcess
from .suites.targets import TARGETS, default_python

MiB = 1024 * 1024
CHUNK = 64 * 1024


def start(variant: str, *server_args: str, own_group: bool = False) -> ServerProcess:
    """``variant``'s server on an ephemeral port of 127.0.0.1, started (banner read)."""
    target = TARGETS[variant]
    server = ServerProcess(target.command(default_python(), server_args), cpus=None,
                           target=target, own_group=own_group)
    server.start()
    return server


def connect(server: ServerProcess, timeout: float = 10.0,
            rcvbuf: Optional[int] = None) -> socket.socket:
    """A blocking client of ``server`` with a timeout (and, if given, a small receive buffer)."""
    sock = socket.socket(socket.AF_INET)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect((server.host, server.port))
    return sock


def echo_once(sock: socket.socket, payload: bytes) -> bool:
    """Send ``payload``; True if exactly it comes back."""
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        data = sock.recv(len(payload) - len(got))
        if not data:
            break
        got += data
    return got == payload


def clean_eofs(clients: List[socket.socket], timeout: float) -> int:
    """How many of ``clients`` get a clean EOF (no reset, no stray bytes) within ``timeout``."""
    clean = 0
    for sock in clients:
        sock.settimeout(timeout)
        try:
            clean += sock.recv(65536) == b""
        except OSError:
            pass
    return clean


class Sender:
    """Send ``total`` reproducible pseudo-random bytes on ``sock`` from a thread.

    ``sent`` counts the bytes handed to the kernel so far; ``checksum`` is the
    CRC-32 of all of them once the thread is done."""

    def __init__(self, sock: socket.socket, total: int, seed: int) -> None:
        self.sock, self.total, self.sent, self.checksum = sock, total, 0, 0
        self.block = random.Random(seed).randbytes(CHUNK)
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.thread.start()

    def _send(self) -> None:
        checksum = 0
        try:
            while self.sent < self.total:
                chunk = self.block[: self.total - self.sent]
                checksum = zlib.crc32(chunk, checksum)
                self.sock.sendall(chunk)
                self.sent += len(chunk)
        except OSError:
            pass
        self.checksum = checksum


def receive_all(sock: socket.socket, deadline: float) -> Tuple[int, int]:
    """Read until EOF or ``deadline``: (bytes read, their CRC-32)."""
    got, checksum = 0, 0
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(MiB)
        if not data:
            break
        checksum = zlib.crc32(data, checksum)
        got += len(data)
    return got, checksum


def idle() -> None:
    for variant in pollers.available():
        process = start(variant, "--drain-timeout", "60")
        try:
            clients = [connect(process) for _ in range(5)]
            echoed = sum(echo_once(sock, b"hello") for sock in clients)
            time.sleep(0.3)  # idle
            started = time.monotonic()
            assert process.process is not None
            process.process.send_signal(signal.SIGINT)
            status = process.process.wait(30)
            elapsed = time.monotonic() - started
            clean = clean_eofs(clients, 5)
            for sock in clients:
                sock.close()
        finally:
            process.close()
        print(f"{variant:18} echoed {echoed}/5; exit {status} after {elapsed:.3f} s; "
              f"clean EOF {clean}/5")


def owed(total: int = 8 * MiB) -> None:
    for variant in pollers.available():
        process = start(variant, "--drain-timeout", "60")
        try:
            with connect(process, timeout=60, rcvbuf=4096) as sock:
                sender = Sender(sock, total, seed=8)
                # Until its sends block (every buffer on the way full) or all is sent.
                last, deadline = -1, time.monotonic() + 60
                while sender.thread.is_alive() and sender.sent != last:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{variant}: the sender never blocked")
                    last = sender.sent
                    time.sleep(0.3)
                unsent = total - sender.sent
                started = time.monotonic()
                assert process.process is not None
                process.process.send_signal(signal.SIGTERM)
                try:
                    got, checksum = receive_all(sock, time.monotonic() + 60)
                    end = "EOF"
                except ConnectionResetError:
                    got, checksum, end = -1, 0, "RESET"
                elapsed = time.monotonic() - started
                sender.thread.join(30)
                status = process.process.wait(30)
        finally:
            process.close()
        same = "CRC-32 equal" if checksum == sender.checksum else "CRC-32 DIFFERS"
        print(
            f"{variant:18} sent {total} ({unsent} still in its sendall at the signal), "
            f"read {got} bytes, {same}, then {end}; "
            f"{elapsed:.3f} s to read it all; exit {status}"
        )


def group(tries: int) -> None:
    good = 0
    for number in range(1, tries + 1):
        process = start("selectors-epoll", "--workers", "2", "--drain-timeout", "60",
                        own_group=True)
        try:
            idle_clients = [connect(process) for _ in range(4)]
            echoed = sum(echo_once(sock, b"idle") for sock in idle_clients)
            slow = connect(process, timeout=60, rcvbuf=4096)
            sender = Sender(slow, 4 * MiB, seed=number)
            sender.thread.join(60)
            started = time.monotonic()
            os.killpg(process.pid, signal.SIGINT)
            got, checksum = receive_all(slow, time.monotonic() + 60)
            clean = clean_eofs(idle_clients, 10)
            assert process.process is not None
            status = process.process.wait(30)
            elapsed = time.monotonic() - started
            log = process.stderr()
            for sock in [*idle_clients, slow]:
                sock.close()
        finally:
            process.close()
            try:
                os.killpg(process.pid, signal.SIGKILL)  # workers left behind
            except ProcessLookupError:
                pass
        now_lines = log.count("connection(s) now")
        ok = (status == 0 and echoed == 4 and (got, checksum) == (4 * MiB, sender.checksum)
              and clean == 4 and now_lines == 0)
        good += ok
        print(
            f"try {number:2}: exit {status} in {elapsed:.3f} s; owed client {got} bytes "
            f"{'intact' if checksum == sender.checksum else 'CORRUPT'} + EOF; "
            f"idle clean EOF {clean}/4; 'now' lines {now_lines}; drains logged "
            f"{log.count('no longer accepting')} -> {'graceful' if ok else 'FAILED'}"
        )
    print(f"group SIGINT to --workers 2: {good}/{tries} graceful drains")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shutdown",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("what", nargs="?", choices=("idle", "owed", "group"), default="idle")
    parser.add_argument("tries", nargs="?", type=int, default=10, help="group: how many tries")
    args = parser.parse_args(argv)
    if args.what == "idle":
        idle()
    elif args.what == "owed":
        owed()
    else:
        group(args.tries)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
