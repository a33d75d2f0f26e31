"""`SendQueue` alone, over a real socketpair: bytes leave in order, exactly once.

It has no poller, so it does not run per variant; the server tests drive it on
every variant through backpressure.
"""

from __future__ import annotations

import socket
from typing import List

from hypothesis import given, settings
from hypothesis import strategies as st

from server.send_queue import COALESCE, MAX_IOV, SendQueue


def drain(sock: socket.socket) -> bytes:
    received = bytearray()
    while True:
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            return bytes(received)
        received += data


@settings(max_examples=60, deadline=None)
@given(
    chunks=st.lists(
        st.one_of(st.binary(min_size=1, max_size=64), st.binary(min_size=1, max_size=40_000)),
        min_size=1,
        max_size=200,
    ),
    sndbuf=st.sampled_from([4096, 16384, 1 << 20]),
)
def test_sends_everything_in_order(chunks: List[bytes], sndbuf: int) -> None:
    left, right = socket.socketpair()
    with left, right:
        left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        left.setblocking(False)
        right.setblocking(False)
        queue = SendQueue()
        scratch = bytearray(65536)
        for chunk in chunks:
            scratch[: len(chunk)] = chunk
            queue.append(memoryview(scratch)[: len(chunk)])  # the scratch is reused
        expected = b"".join(chunks)
        assert queue.size == len(queue) == len(expected)
        received = bytearray()
        for _ in range(100_000):
            if not queue.size:
                break
            try:
                sent = queue.send(left)
            except BlockingIOError:
                sent = 0
            assert sent >= 0
            received += drain(right)
        assert queue.size == 0
        received += drain(right)
        assert bytes(received) == expected


def test_small_chunks_are_coalesced_and_iovecs_bounded() -> None:
    queue = SendQueue()
    for _ in range(10 * MAX_IOV):
        queue.append(memoryview(b"x" * 100))
    # 64,000 bytes in 100-byte appends: a handful of chunks, not 640.
    assert len(queue._chunks) <= 64_000 // COALESCE + 2
    left, right = socket.socketpair()
    with left, right:
        big = SendQueue()
        for _ in range(3 * MAX_IOV):
            big.append(memoryview(b"y" * COALESCE))  # never coalesced: one chunk each
        assert len(big._chunks) == 3 * MAX_IOV
        right.setblocking(False)
        left.setblocking(False)
        sent = big.send(left)  # at most MAX_IOV chunks in one call
        assert 0 < sent <= MAX_IOV * COALESCE
        assert big.size == 3 * MAX_IOV * COALESCE - sent
