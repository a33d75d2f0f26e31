"""asyncio's transports in glibc malloc's two states: as a fresh process starts, and raised.

asyncio's socket transports read with ``sock.recv(256 KiB)`` into a new bytes
object on every read. glibc serves a request that large with ``mmap`` while its
dynamic mmap threshold is at its start value (128 KiB); CPython then shrinks the
object to the bytes received (``realloc``: ``mremap``) and frees it (``munmap``), so
every read costs three system calls and fresh zeroed pages. glibc raises the
threshold only when a *mapped chunk larger than the threshold* is freed; the
shrunk chunk never is, so a process whose only big allocations are these reads
stays in that state for good. Once anything frees a large mapped chunk (a read
that filled the whole 256 KiB, any big temporary bytes), the threshold rises to
that size and the trim threshold to twice it, and the reads come from the heap.

``GLIBC_TUNABLES`` (or ``MALLOC_MMAP_THRESHOLD_`` with ``MALLOC_TRIM_THRESHOLD_``)
puts a fresh process straight into the raised state: the same two values glibc
itself sets after freeing a 1 MiB chunk. Setting only the mmap threshold is not
enough: the trim threshold stays at 128 KiB and every read then grows and trims
the heap with ``brk`` instead. The report shows both states side by side.
"""

from __future__ import annotations

import platform

import pytest

from .cases import MALLOC_CASES, EchoCase
from .conftest import EchoBench, settings
from .targets import TARGETS

#: What a process is left with after freeing one 1 MiB mapped chunk (glibc's own rule).
RAISED_ENV = {
    "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1048576:glibc.malloc.trim_threshold=2097152",
}
SETTINGS = {"glibc default": {}, "mmap threshold raised": RAISED_ENV}
#: asyncio's transports (the two peers), the project's asyncio variant, and a control.
MALLOC_TARGETS = ("peer-asyncio-protocol", "peer-asyncio-streams", "asyncio",
                  "selectors-epoll")


@pytest.mark.parametrize("setting", list(SETTINGS), ids=["default", "raised"])
@pytest.mark.parametrize("target", [TARGETS[name] for name in MALLOC_TARGETS],
                         ids=list(MALLOC_TARGETS))
@pytest.mark.parametrize("case", MALLOC_CASES, ids=[case.id for case in MALLOC_CASES])
def test_malloc_state(echo_bench: EchoBench, pytestconfig: pytest.Config, case: EchoCase,
                      target: object, setting: str) -> None:
    """1 KiB x 64 connections, each target with glibc's default and with the raised threshold."""
    if platform.libc_ver()[0] != "glibc":
        libc = platform.libc_ver()[0] or "not glibc"
        pytest.skip(f"the malloc tunables are glibc's; this is {libc} on {platform.system()}")
    name = getattr(target, "name", "")
    if not settings(pytestconfig).selected(name):
        pytest.skip(f"{name} is not in --bench-targets")
    echo_bench(case, setting, SETTINGS[setting])
