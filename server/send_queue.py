"""`SendQueue`: the bytes a connection owes its peer, sent with one gather call.

The chunks are kept in a deque and sent with ``sendmsg`` (one system call for
up to `MAX_IOV` chunks); a chunk partly sent is replaced by a memoryview of its
tail, so no byte is moved twice. Small chunks are coalesced into a growing
``bytearray`` at the tail (an append, never a move), so a queue of many small
echoes still goes out in few iovecs.

Rather than one ``bytearray`` trimmed with ``del buffer[:sent]``: PyPy's
bytearray moves (and copies for ``send``) the whole buffer on every call, and
CPython gains nothing from it (docs/performance-history.md has the comparison).
"""

from __future__ import annotations

import collections
import itertools
import socket
from typing import Deque, Union

#: Chunks handed to one sendmsg() call (Linux and the BSDs accept up to 1024).
MAX_IOV = 64
#: Chunks smaller than this are appended to a tail bytearray of at most this size.
COALESCE = 16 * 1024

Chunk = Union[bytes, bytearray, memoryview]


class SendQueue:
    """A FIFO of bytes owed; ``size`` is how many. Copy in with `append`, send with `send`."""

    __slots__ = ("_chunks", "size")

    def __init__(self) -> None:
        self._chunks: Deque[Chunk] = collections.deque()
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def append(self, data: memoryview) -> None:
        """Queue a copy of ``data`` (which may be a view of a buffer about to be reused)."""
        count = len(data)
        self.size += count
        chunks = self._chunks
        if count < COALESCE:
            if chunks:
                last = chunks[-1]
                if type(last) is bytearray and len(last) < COALESCE:
                    last += data
                    return
            chunks.append(bytearray(data))
        else:
            chunks.append(bytes(data))

    def send(self, sock: socket.socket) -> int:
        """One ``send``/``sendmsg`` of the head of the queue; returns the bytes sent.

        Raises what the socket call raises (BlockingIOError, ConnectionResetError...),
        in which case nothing was sent.
        """
        chunks = self._chunks
        if len(chunks) == 1:
            sent = sock.send(chunks[0])
        elif len(chunks) <= MAX_IOV:
            sent = sock.sendmsg(chunks)
        else:
            sent = sock.sendmsg(itertools.islice(chunks, MAX_IOV))
        self.size -= sent
        left = sent
        while left:
            first = chunks[0]
            length = len(first)
            if left >= length:
                chunks.popleft()
                left -= length
            else:
                chunks[0] = memoryview(first)[left:]
                left = 0
        return sent
