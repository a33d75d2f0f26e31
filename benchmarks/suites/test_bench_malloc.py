"""asyncio's transports in glibc malloc's two states: a fresh process, and one that has served.

asyncio's socket transports read with ``sock.recv(256 KiB)`` into a new bytes
object on every read. glibc serves a request that large with ``mmap`` while its
dynamic mmap threshold is at its start value (128 KiB); CPython then shrinks the
object to the bytes received (``realloc``: ``mremap``) and frees it (``munmap``),
so every read costs three system calls and fresh zeroed pages. glibc raises the
threshold (to the chunk's size, and the trim threshold to twice that) only when
``free`` is given a *mapped chunk larger than the threshold*; a shrunk buffer
never is. The first read that ends in EOF is: CPython frees the whole 256 KiB
buffer unshrunk when the read returns nothing. So a server process is in the slow
state only until its first client closes a connection; a benchmark that starts a
fresh server and keeps its connections open measures it in that state throughout.

Three settings, in interleaved rounds: a fresh process; the same after one client
connected, echoed a byte and closed (``close_one_first``, the state of any server
that has served a client); and a fresh process given the raised thresholds by
``GLIBC_TUNABLES`` (the values glibc sets itself after freeing a 1 MiB chunk;
the mmap threshold alone is not enough, the trim threshold must rise too, or
every read grows and trims the heap with ``brk`` instead).
"""

from __future__ import annotations

import platform
from typing import Dict, Tuple

import pytest

from .cases import MALLOC_CASES, EchoCase
from .conftest import EchoBench, settings
from .targets import TARGETS

RAISED_ENV = {
    "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1048576:glibc.malloc.trim_threshold=2097152",
}
#: setting -> (server environment, close one connection before the load)
SETTINGS: Dict[str, Tuple[Dict[str, str], bool]] = {
    "fresh process": ({}, False),
    "after one closed connection": ({}, True),
    "GLIBC_TUNABLES raised": (RAISED_ENV, False),
}
#: asyncio's transports (the two peers) and the project's asyncio variant, which reuses
#: its read buffer (the control).
MALLOC_TARGETS = ("peer-asyncio-protocol", "peer-asyncio-streams", "asyncio")


@pytest.mark.parametrize("setting", list(SETTINGS), ids=["fresh", "closed-one", "tunables"])
@pytest.mark.parametrize("target", [TARGETS[name] for name in MALLOC_TARGETS],
                         ids=list(MALLOC_TARGETS))
@pytest.mark.parametrize("case", MALLOC_CASES, ids=[case.id for case in MALLOC_CASES])
def test_malloc_state(echo_bench: EchoBench, pytestconfig: pytest.Config, case: EchoCase,
                      target: object, setting: str) -> None:
    """1 KiB x 64 connections, each target in each malloc setting."""
    if platform.libc_ver()[0] != "glibc":
        libc = platform.libc_ver()[0] or "not glibc"
        pytest.skip(f"the malloc states are glibc's; this is {libc} on {platform.system()}")
    name = getattr(target, "name", "")
    if not settings(pytestconfig).selected(name):
        pytest.skip(f"{name} is not in --bench-targets")
    env, close_one_first = SETTINGS[setting]
    echo_bench(case, setting, env, close_one_first)
