"""Deterministic costs: user-space instructions and system calls per message of every target.

One count per target and interpreter (`benchmarks.suites.counting`): the figures do not
move with the machine's load, so they need no rounds. ``--bench-costs`` (``BENCH_COSTS``)
chooses the targets: ``all`` (the default of a full run), ``families`` (the cheap mode's
default: the first variant of each family that runs here, the C peer and asyncio's
Protocol peer, whose fresh process shows glibc malloc's system calls), or ``none``.
"""

from __future__ import annotations

from typing import Any, Dict, List

import pytest

import pollers

from .conftest import progress, settings
from .counting import CountError, CountSpec, measure, syscalls_text, unavailable
from .targets import Target, probe

#: What the cheap mode counts besides one variant per family.
CHEAP_PEERS = ("peer-c-epoll", "peer-asyncio-protocol")
#: Extra batches counted: the full mode, the cheap mode.
FULL_BATCHES, CHEAP_BATCHES = 200, 20


def family_sample() -> List[str]:
    """The first owned variant of each family that runs here."""
    chosen: Dict[str, str] = {}
    for variant in pollers.variants():
        if variant.runs_here and variant.family not in chosen:
            chosen[variant.family] = variant.name
    return list(chosen.values())


def test_costs(
    benchmark: Any, pytestconfig: pytest.Config, target: Target, server_python: str
) -> None:
    """Instructions and system calls per message of ``target`` at 1 KiB x 64 connections."""
    bench = settings(pytestconfig)
    if bench.costs == "none":
        pytest.skip("--bench-costs none")
    if bench.costs == "families" and target.name not in family_sample() + list(CHEAP_PEERS):
        pytest.skip(
            f"--bench-costs families counts one variant per family and {', '.join(CHEAP_PEERS)}"
        )
    if target.native and server_python != bench.pythons[0]:
        pytest.skip(f"{target.name} is compiled: it is counted once")
    reason = probe(server_python).reason_unavailable(target)
    if reason is not None:
        pytest.skip(reason)
    missing = [note for note in map(unavailable, ("valgrind", "strace")) if note]
    if len(missing) == 2:
        pytest.skip("; ".join(missing))
    spec = CountSpec(batches=CHEAP_BATCHES if bench.cheap else FULL_BATCHES)
    results = []

    def once() -> None:
        results.append(measure(target, server_python, spec))

    try:
        benchmark.pedantic(once, rounds=1, iterations=1, warmup_rounds=0)
    except CountError as exc:
        pytest.fail(f"{target.name}: {exc}", pytrace=False)
    costs = results[-1]
    benchmark.group = f"costs: {spec.label}"
    benchmark.extra_info.update(costs.figures())
    benchmark.extra_info.update(
        {
            "kind": "costs",
            "target_kind": target.kind,
            "description": target.description,
            "cheap": bench.cheap,
        }
    )
    instructions = (
        "-" if costs.instructions_per_msg is None else f"{costs.instructions_per_msg:,.0f}"
    )
    syscalls = "-" if costs.syscalls_per_msg is None else f"{costs.syscalls_per_msg:.3f}"
    progress(
        pytestconfig,
        f"  costs {costs.target} ({costs.interpreter}): {instructions} "
        f"instructions, {syscalls} system calls per message "
        f"({syscalls_text(costs.syscalls_by_name)})",
    )
