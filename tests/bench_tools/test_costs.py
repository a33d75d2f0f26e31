"""Deterministic costs: real servers under callgrind and strace, counted per message."""

from __future__ import annotations

import shutil
import sys
from typing import Any, Dict

import pytest

from benchmarks.compare import costs_verdict
from benchmarks.suites.counting import CountSpec, measure, parse_strace_summary
from benchmarks.suites.targets import TARGETS

needs_linux = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason=f"valgrind and strace count on Linux, not {sys.platform}",
)
SPEC = CountSpec(batches=40)


@needs_linux
@pytest.mark.skipif(
    shutil.which("strace") is None or shutil.which("valgrind") is None,
    reason="strace and valgrind are needed (apt-get install strace valgrind)",
)
def test_the_c_peer_costs_two_system_calls_and_a_hundred_instructions_a_message() -> None:
    costs = measure(TARGETS["peer-c-epoll"], sys.executable, SPEC)
    assert costs.instructions_per_msg is not None and 50 < costs.instructions_per_msg < 200
    assert costs.syscalls_by_name["recvfrom"] == costs.syscalls_by_name["sendto"] == 1.0
    # One wait per batch of 47 readable connections: the lockstep client's batches arrive whole.
    assert costs.syscalls_by_name["epoll_wait"] == pytest.approx(1 / 47, abs=0.001)
    assert costs.syscalls_per_msg == pytest.approx(2.021, abs=0.001)


@needs_linux
@pytest.mark.skipif(
    shutil.which("strace") is None, reason="strace is needed (apt-get install strace)"
)
def test_asyncios_protocol_in_a_fresh_process_maps_and_unmaps_each_read() -> None:
    costs = measure(TARGETS["peer-asyncio-protocol"], sys.executable, SPEC, tools=("strace",))
    assert costs.instructions_per_msg is None and "not asked" in costs.instructions_note
    for name in ("mmap", "mremap", "munmap", "recvfrom", "sendto"):
        assert costs.syscalls_by_name[name] == pytest.approx(1.0, abs=0.001), name
    assert costs.syscalls_per_msg is not None and costs.syscalls_per_msg > 5.0


def test_strace_summary_is_read_by_name() -> None:
    text = """% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 27.85    0.001552          23        67           close
  4.15    0.000231          46         5         1 epoll_wait
------ ----------- ----------- --------- --------- ----------------
100.00    0.005572           7        72         1 total
"""
    assert parse_strace_summary(text) == {"close": 67, "epoll_wait": 5}


def test_compare_calls_a_one_percent_or_any_syscall_change_beyond_doubt() -> None:
    by_name = {"recvfrom": 1.0, "sendto": 1.0, "epoll_wait": 0.021}
    old: Dict[str, Any] = {
        "instructions_per_msg": 10_000.0,
        "syscalls_per_msg": 2.021,
        "syscalls_by_name": by_name,
    }
    assert costs_verdict(old, {**old, "instructions_per_msg": 10_090.0}) == ([], [])
    found, worse = costs_verdict(old, {**old, "instructions_per_msg": 10_150.0})
    assert len(found) == len(worse) == 1 and "+1.5%" in found[0]
    faster, worse = costs_verdict(old, {**old, "instructions_per_msg": 9_800.0})
    assert len(faster) == 1 and worse == []
    more_calls = {**old, "syscalls_per_msg": 3.021, "syscalls_by_name": {**by_name, "mmap": 1.0}}
    found, worse = costs_verdict(old, more_calls)
    assert len(found) == len(worse) == 1 and "mmap 0.000 -> 1.000" in found[0]
    assert costs_verdict(None, old) == ([], [])
