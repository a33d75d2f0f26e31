"""The harness's sanity checks reject a broken server, whatever its speed.

Real processes: a deliberately faulty echo server (`benchmarks.peers.faulty_echo`)
driven by the real load generator. Each fault must fail `check`, and the same
harness must pass a correct server, so the checks can both fail and pass.
"""

from __future__ import annotations

import pytest

from benchmarks.suites.harness import BenchmarkError, LoadSpec, check, run_echo
from benchmarks.suites.targets import TARGETS, Target

SPEC = LoadSpec(connections=4, depth=2, size=1024, idle=3, warmup=0.05, duration=0.2)


def faulty(fault: str) -> Target:
    return Target(f"faulty-{fault}", "peer", "deliberately faulty echo", "faulty_echo",
                  ("--fault", fault))


@pytest.mark.parametrize(
    ("fault", "complaint"),
    [
        ("corrupt", "differ from the bytes sent"),
        ("lose", "echoed"),
        ("hangup", "closed by the server"),
        ("exit-status", "exited with status 3"),
    ],
)
def test_check_rejects_a_faulty_server(fault: str, complaint: str) -> None:
    result = run_echo(faulty(fault), SPEC)
    with pytest.raises(BenchmarkError, match=complaint):
        check(result)


def test_check_accepts_a_correct_server() -> None:
    result = run_echo(TARGETS["peer-selectors"], SPEC)
    check(result)
    assert result.round_trips > 0
    assert result.loadgen["bytes_sent"] == result.loadgen["bytes_received"] > 0
    assert result.server_cpu_s > 0
    assert result.loadgen["idle_open_at_end"] == SPEC.idle
