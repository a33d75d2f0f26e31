"""The echo server on every variant, in-process: the server runs `poller.run()` on a thread.

Every test here runs once per variant (the ``poller`` fixture) with the same code.
"""

from __future__ import annotations

import logging
import random
import select
import socket
import time
import zlib
from typing import Any, Iterator, List, Tuple

import pytest
from echo_client import (
    Transfer,
    connect,
    echo,
    expect_clean_eof,
    expect_eof,
    is_closed_by_peer,
    on_loop,
    raise_descriptor_limit,
    receive_all,
    recv_exactly,
    reset,
    running_server,
)
from helpers import limited_to_fd_setsize
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pollers import Poller
from server import Connection, DrainStart, EchoServer, Limits, State

MiB = 1024 * 1024


@pytest.fixture
def server(poller: Poller) -> Iterator[EchoServer]:
    with running_server(poller) as running:
        yield running


def wait_until(condition: object, timeout: float, what: str) -> None:
    """Poll ``condition()`` until true, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


# -- byte-exact echo -------------------------------------------------------------


@st.composite
def chunked_payloads(draw: st.DrawFn) -> List[bytes]:
    payload = draw(st.binary(min_size=1, max_size=48 * 1024))
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=12)))
    bounds = [0, *cuts, len(payload)]
    return [payload[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(chunks=chunked_payloads())
def test_echo_is_byte_exact_whatever_the_chunking(server: EchoServer, chunks: List[bytes]) -> None:
    with connect(server.address) as sock:
        for chunk in chunks:
            sock.sendall(chunk)
        expected = b"".join(chunks)
        assert recv_exactly(sock, len(expected), time.monotonic() + 10) == expected
        sock.shutdown(socket.SHUT_WR)
        expect_eof(sock, 10)


def test_200_connections_at_once(server: EchoServer) -> None:
    rng = random.Random(200)
    clients = [connect(server.address) for _ in range(200)]
    try:
        payloads = [rng.randbytes(rng.randrange(1, 16 * 1024)) for _ in clients]
        offsets = [0] * len(clients)
        # Interleave random-sized pieces over all connections until all is sent.
        while any(offset < len(p) for offset, p in zip(offsets, payloads)):
            for index, sock in enumerate(clients):
                payload, offset = payloads[index], offsets[index]
                if offset < len(payload):
                    end = min(len(payload), offset + rng.randrange(1, 4096))
                    sock.sendall(payload[offset:end])
                    offsets[index] = end
        deadline = time.monotonic() + 20
        for sock, payload in zip(clients, payloads):
            assert recv_exactly(sock, len(payload), deadline) == payload
        assert on_loop(server.poller, lambda: server.stats.open) == 200
    finally:
        for sock in clients:
            sock.close()


def test_256_mib_through_one_connection(server: EchoServer) -> None:
    total = 256 * MiB
    with connect(server.address, timeout=60) as sock:
        transfer = Transfer(sock, total, seed=256).start()
        got, checksum = receive_all(sock, total, time.monotonic() + 90)
        transfer.join(10)
        assert got == total
        assert checksum == transfer.checksum
    stats = on_loop(server.poller, lambda: server.stats)
    assert stats.bytes_in == stats.bytes_out == total


def test_half_close_gets_everything_back_then_eof(server: EchoServer) -> None:
    total = 8 * MiB
    with connect(server.address) as sock:
        transfer = Transfer(sock, total, seed=8, shutdown_after=True).start()
        got, checksum = receive_all(sock, total, time.monotonic() + 30, until_eof=True)
        transfer.join(10)
        assert (got, checksum) == (total, transfer.checksum)  # then EOF, nothing more


def test_backpressure_pauses_reading_and_resumes(poller: Poller) -> None:
    limits = Limits(buffer_size=4096, read_budget=16384, high_water=32 * 1024, low_water=8 * 1024)
    with (
        running_server(poller, limits=limits) as server,
        connect(server.address, rcvbuf=4096) as sock,
    ):
        total = 16 * MiB
        transfer = Transfer(sock, total, seed=3).start()
        # The client does not read: the server must stop reading at the high-water mark.
        wait_until(
            lambda: (
                [c.state for c in on_loop(poller, lambda: list(server.connections))]
                == [State.PAUSED]
            ),
            10,
            "the connection to pause",
        )
        owed = on_loop(poller, lambda: next(iter(server.connections)).owed)
        assert 32 * 1024 <= owed < 32 * 1024 + 16384
        assert transfer.sent < total
        got, checksum = receive_all(sock, total, time.monotonic() + 60)
        transfer.join(10)
        assert (got, checksum) == (total, transfer.checksum)


# -- faults ----------------------------------------------------------------------


def test_clients_that_reset_mid_stream_do_not_disturb_others(
    server: EchoServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    payload = random.Random(100).randbytes(256 * 1024)
    for _ in range(2):
        clients = [connect(server.address) for _ in range(50)]
        for sock in clients:
            sock.setblocking(False)
            try:
                sock.send(payload)  # as much as fits; the client never reads the echo
            except BlockingIOError:
                pass
        for sock in clients:
            reset(sock)
    wait_until(lambda: on_loop(server.poller, lambda: server.stats.open) == 0, 10, "cleanup")
    with connect(server.address) as sock:
        assert echo(sock, b"still serving") == b"still serving"
    assert on_loop(server.poller, lambda: server.stats.accepted) == 101
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_5000_concurrent_connections(
    poller: Poller, variant_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    count = 5000
    limit = raise_descriptor_limit(2 * count + 200)
    if limit < 2 * count + 100:
        pytest.skip(f"RLIMIT_NOFILE hard limit {limit} is too low for {count} connections")
    refuses_large_descriptors = limited_to_fd_setsize(variant_name)
    with running_server(poller) as server:
        clients: List[socket.socket] = []
        try:
            for _ in range(count):
                clients.append(connect(server.address))
            for index, sock in enumerate(clients):
                try:
                    sock.sendall(index.to_bytes(4, "big"))
                except (BrokenPipeError, ConnectionResetError):
                    assert refuses_large_descriptors
            deadline = time.monotonic() + 60
            served = refused = 0
            for index, sock in enumerate(clients):
                try:
                    answer = recv_exactly(sock, 4, deadline)
                except (ConnectionResetError, AssertionError):
                    if not refuses_large_descriptors:
                        raise
                    refused += 1
                    continue
                assert answer == index.to_bytes(4, "big")
                served += 1
            stats = on_loop(poller, lambda: server.stats)
            if refuses_large_descriptors:
                # select() cannot hold descriptors >= FD_SETSIZE: those are refused,
                # closed at once (never left hanging) and the reason is logged.
                assert 0 < served < count and served + refused == count
                assert stats.refused == refused
                assert "FD_SETSIZE" in caplog.text
            else:
                assert served == count
                assert stats.open == count and stats.refused == 0
        finally:
            for sock in clients:
                sock.close()


# -- limits ----------------------------------------------------------------------


def test_idle_timeout_closes_only_idle_connections(poller: Poller) -> None:
    """Bounds that hold on a loaded machine: the idle connection is never closed
    before its timeout (measured from before its last byte was sent), and a busy one
    is closed only if the test itself stalled for a whole timeout."""
    timeout = 0.8
    with running_server(poller, idle_timeout=timeout) as server:
        idle = connect(server.address)
        busy = connect(server.address)
        owed_idle = connect(server.address, rcvbuf=4096)
        try:
            last_sent = time.monotonic()
            assert echo(idle, b"hello") == b"hello"
            # owed_idle: the server owes it data it never reads, and it sends nothing more.
            transfer = Transfer(owed_idle, 256 * MiB, seed=5).start()
            idle_closed_at = None
            busy_closed = False
            longest_gap = 0.0
            previous = time.monotonic()
            deadline = previous + 30
            while idle_closed_at is None or transfer.thread.is_alive():
                assert time.monotonic() < deadline, "the idle connections were not closed"
                try:
                    assert echo(busy, b"tick") == b"tick"
                except (AssertionError, OSError):
                    busy_closed = True
                    break
                now = time.monotonic()
                longest_gap = max(longest_gap, now - previous)
                previous = now
                if idle_closed_at is None and select.select([idle], [], [], 0.05)[0]:
                    assert is_closed_by_peer(idle, 1)
                    idle_closed_at = time.monotonic()
                else:
                    time.sleep(0.02)
            if busy_closed:  # legitimately idle only if the test stalled that long
                assert longest_gap >= timeout, f"busy connection closed ({longest_gap:.2f} s gap)"
            if idle_closed_at is None:
                assert is_closed_by_peer(idle, 10)
                idle_closed_at = time.monotonic()
            assert idle_closed_at - last_sent >= timeout
            # Closed with data unread, the server resets: the stuck sender fails.
            transfer.thread.join(10)
            assert isinstance(transfer.error, (ConnectionResetError, BrokenPipeError))
            if not busy_closed:
                assert echo(busy, b"still here") == b"still here"
            closed = on_loop(poller, lambda: server.stats.idle_closed)
            assert closed == (3 if busy_closed else 2)
        finally:
            for sock in (idle, busy, owed_idle):
                sock.close()


def test_max_connections_holds(poller: Poller, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with running_server(poller, max_connections=3) as server:
        first = [connect(server.address) for _ in range(3)]
        waiting = [connect(server.address) for _ in range(2)]  # queued in the backlog
        try:
            for sock in first:
                assert echo(sock, b"in") == b"in"
            for sock in waiting:
                sock.sendall(b"wait")
            for sock in waiting:
                assert not is_closed_by_peer(sock, 0.3)  # no echo, no close: just waiting
            stats = on_loop(poller, lambda: server.stats)
            assert (stats.accepted, stats.open) == (3, 3)
            first.pop().close()
            assert recv_exactly(waiting[0], 4, time.monotonic() + 5) == b"wait"
            assert not is_closed_by_peer(waiting[1], 0.3)
            assert on_loop(poller, lambda: server.stats.open) == 3
            first.pop().close()
            assert recv_exactly(waiting[1], 4, time.monotonic() + 5) == b"wait"
            stats = on_loop(poller, lambda: server.stats)
        finally:
            for sock in first + waiting:
                sock.close()
    # Paused three times (3 open, then again after each of the two closes); one pair
    # of log lines for all of them, the rest within the rate limit.
    assert stats.limit_pauses == 3 and stats.limit_paused_seconds >= 0.3 * 3, stats
    assert caplog.text.count("the --max-connections limit: not accepting") == 1, caplog.text
    assert caplog.text.count("accepting again after") == 1, caplog.text


def test_drain_ends_quiet_connections_owing_nothing(poller: Poller) -> None:
    """Idle clients get EOF after one quiet interval; one whose bytes the server had not
    read yet gets them back first. No reset, and no waiting for the deadline."""
    with running_server(poller) as server:
        idle = [connect(server.address) for _ in range(2)]
        unread = connect(server.address)
        try:
            for sock in [*idle, unread]:
                assert echo(sock, b"accepted") == b"accepted"
            drained: List[bool] = []
            payload = random.Random(16).randbytes(16 * 1024)

            def send_then_drain() -> DrainStart:
                # On the loop's thread: the server cannot have read these bytes yet.
                unread.sendall(payload)
                return server.drain(60.0, lambda: drained.append(True))

            started = on_loop(poller, send_then_drain)
            assert started == DrainStart(connections=3, owed=0)
            for sock in idle:
                expect_clean_eof(sock, 10)
            assert recv_exactly(unread, len(payload), time.monotonic() + 10) == payload
            expect_clean_eof(unread, 10)
            wait_until(lambda: drained, 10, "the drain callback")
            with pytest.raises(ConnectionRefusedError):
                connect(server.address).close()
            stats = on_loop(poller, lambda: server.stats)
            assert (stats.open, stats.bytes_in, stats.bytes_out) == (
                0,
                24 + 16 * 1024,
                24 + 16 * 1024,
            )
        finally:
            for sock in [*idle, unread]:
                sock.close()


def test_drain_lets_a_client_still_sending_finish(poller: Poller) -> None:
    """A client in the middle of a stream when the drain begins is not cut off (its
    receive queue in the server can be empty for a moment between two segments):
    it gets every byte it sends back, then EOF, and its sends never meet a reset."""
    total = 16 * MiB
    with running_server(poller) as server:
        with connect(server.address, timeout=60) as sock:
            transfer = Transfer(sock, total, seed=17).start()
            drained: List[bool] = []
            # Let the stream get going, then drain while the sender is mid-stream.
            got, checksum = receive_all(sock, 2 * MiB, time.monotonic() + 30)
            on_loop(poller, server.drain, 60.0, lambda: drained.append(True))
            rest, checksum = receive_all(
                sock, total - got, time.monotonic() + 60, checksum=checksum
            )
            transfer.join(30)
            expect_clean_eof(sock, 10)
            assert (got + rest, checksum) == (total, transfer.checksum)
        wait_until(lambda: drained, 10, "the drain callback")


class SmallSendBuffer(Connection):
    """A connection whose socket has a small send buffer: what its client does not
    read is soon queued in the server (owed) rather than in the kernel."""

    __slots__ = ()

    def start(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
        super().start()


SMALL = Limits(buffer_size=4096, read_budget=16384, high_water=32 * 1024, low_water=8 * 1024)


def owed_client(poller: Poller, server: EchoServer) -> Tuple[socket.socket, int, int]:
    """A client that sends until its connection is PAUSED, reading nothing; returns
    the socket, how many bytes it sent and their CRC-32."""
    sock = connect(server.address, timeout=60, rcvbuf=4096)
    sock.setblocking(False)
    chunk = random.Random(4096).randbytes(4096)
    sent = checksum = 0
    deadline = time.monotonic() + 20
    while [c.state for c in on_loop(poller, lambda: list(server.connections))] != [State.PAUSED]:
        assert time.monotonic() < deadline, f"not paused after {sent} bytes"
        try:
            count = sock.send(chunk)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        checksum = zlib.crc32(chunk[:count], checksum)
        sent += count
    sock.setblocking(True)
    sock.settimeout(60)
    return sock, sent, checksum


def test_drain_serves_a_connection_owed_bytes_until_it_owes_nothing(poller: Poller) -> None:
    with running_server(poller, limits=SMALL, connection_class=SmallSendBuffer) as server:
        sock, sent, checksum = owed_client(poller, server)
        with sock:
            drained: List[bool] = []
            started = on_loop(poller, server.drain, 60.0, lambda: drained.append(True))
            assert started.connections == 1 and started.owed >= 32 * 1024
            time.sleep(0.2)
            assert not drained, "the drain ended while the server still owed bytes"
            got = receive_all(sock, sent, time.monotonic() + 60, until_eof=True)
            assert got == (sent, checksum)  # all of it, then EOF
        wait_until(lambda: drained, 10, "the drain callback")


def test_drain_deadline_closes_what_is_left(poller: Poller) -> None:
    with running_server(poller, limits=SMALL, connection_class=SmallSendBuffer) as server:
        sock, _, _ = owed_client(poller, server)  # never reads: owed to the end
        with sock:
            drained: List[bool] = []
            started = time.monotonic()
            on_loop(poller, server.drain, 0.3, lambda: drained.append(True))
            wait_until(lambda: drained, 20, "the drain callback")
            assert time.monotonic() - started >= 0.3
            assert on_loop(poller, lambda: server.stats.open) == 0


# -- handlers that raise -----------------------------------------------------------


class FaultySocket(socket.socket):
    """A real socket whose ``recv_into`` raises once it has read ``boom``: a bug."""

    def recv_into(self, buffer: Any, *args: Any) -> int:
        count = super().recv_into(buffer, *args)
        if bytes(buffer[:count]).startswith(b"boom"):
            raise RuntimeError("injected fault")
        return count


class FaultyConnection(Connection):
    __slots__ = ()

    def __init__(self, sock: socket.socket, owner: Any) -> None:
        faulty = FaultySocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        faulty.setblocking(False)
        super().__init__(faulty, owner)


def errors_logged(caplog: pytest.LogCaptureFixture) -> List[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_a_raising_handler_closes_and_counts_its_connection(
    poller: Poller, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with running_server(poller, max_connections=1, connection_class=FaultyConnection) as server:
        with connect(server.address) as first:
            assert echo(first, b"hello") == b"hello"
            first.sendall(b"boom")
            expect_clean_eof(first, 10)  # closed at once, not left in CLOSE_WAIT
        wait_until(lambda: on_loop(poller, lambda: server.stats.open) == 0, 10, "the close")
        errors = errors_logged(caplog)
        assert len(errors) == 1 and errors[0].exc_info is not None, caplog.text
        assert errors[0].name == "server.connection" and "its handler raised" in errors[0].message
        with connect(server.address) as second:  # its --max-connections slot is free again
            assert echo(second, b"next") == b"next"
            drained: List[bool] = []
            on_loop(poller, server.drain, 60.0, lambda: drained.append(True))
            expect_clean_eof(second, 10)
        wait_until(lambda: drained, 10, "the drain callback")
        stats = on_loop(poller, lambda: server.stats)
        # b"hello" and b"next" are counted; b"boom", read when the handler raised, is not.
        assert (stats.accepted, stats.open, stats.bytes_in) == (2, 0, len(b"hello") + len(b"next"))
        assert len(errors_logged(caplog)) == 1, caplog.text


class FaultyAcceptServer(EchoServer):
    """Its hand-over raises for the first client: a bug in the accept handler."""

    faults = 1

    def _accepted(self, sock: socket.socket) -> None:
        if self.faults:
            self.faults -= 1
            raise RuntimeError("injected accept fault")
        super()._accepted(sock)


def test_a_raising_accept_handler_backs_off_and_resumes(
    poller: Poller, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with running_server(poller, server_class=FaultyAcceptServer) as server:
        with connect(server.address) as first:
            assert is_closed_by_peer(first, 10)  # closed by the listener, not left hanging
        wait_until(lambda: errors_logged(caplog), 10, "the error to be logged")
        errors = errors_logged(caplog)
        assert len(errors) == 1 and errors[0].exc_info is not None, caplog.text
        assert "accepting raised; not accepting for" in errors[0].message
        with connect(server.address) as second:
            assert echo(second, b"accepting again") == b"accepting again"
        stats = on_loop(poller, lambda: server.stats)
        assert (stats.accepted, stats.accept_backoffs) == (1, 1)


def test_stats_count_connections_and_bytes(server: EchoServer) -> None:
    for size in (1, 1000, 100_000):
        with connect(server.address) as sock:
            assert echo(sock, b"s" * size) == b"s" * size
    wait_until(lambda: on_loop(server.poller, lambda: server.stats.open) == 0, 5, "closes")
    stats = on_loop(server.poller, lambda: server.stats)
    assert (stats.accepted, stats.bytes_in, stats.bytes_out) == (3, 101_001, 101_001)


def test_ipv6(poller: Poller) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"cannot bind ::1 here: {exc}")
    with running_server(poller, host="::1") as server, connect(server.address) as sock:
        assert server.address[0] == "::1"
        assert echo(sock, b"over IPv6") == b"over IPv6"
