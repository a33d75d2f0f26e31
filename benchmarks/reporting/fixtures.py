"""Saved runs for the report's tests: pytest-benchmark JSON with chosen per-round figures.

The report reads nothing but this format, so a test can state the figures it
needs (a regression of known size, a tie) and check what the report makes of
them; `EXAMPLE` is a real run made on the project's machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "report-example" / "bench.json"


def echo_entry(target: str, round_number: int, rate: float, cpu: float,
               group: str = "throughput: 1 KiB x 64 connections", case: str = "1KiB-x64",
               kind: str = "throughput", rounds: int = 6) -> Dict[str, Any]:
    """One round of one target, as the echo fixture records it."""
    return {
        "group": group, "name": f"test_throughput[{target}-r{round_number}-{case}]",
        "stats": {"rounds": 1, "mean": 3.0, "median": 3.0, "min": 3.0, "max": 3.0},
        "extra_info": {
            "target": target, "interpreter": "CPython 3.11.7", "case": case, "kind": kind,
            "group": group, "target_kind": "peer" if target.startswith("peer-") else "variant",
            "round": round_number, "rounds": rounds, "round_trips_per_s": rate,
            "mb_per_s": rate * 1024 / 1e6, "latency_p50_us": 64e6 / rate,
            "latency_p99_us": 2 * 64e6 / rate, "server_cpu_us_per_msg": cpu,
            "client_bound": False, "load_connections": 64, "load_size": 1024, "load_idle": 0,
            "setting": "",
        },
    }


def costs_entry(target: str, instructions: Optional[float], syscalls: Mapping[str, float],
                interpreter: str = "CPython 3.11.7") -> Dict[str, Any]:
    """The deterministic costs of one target, as `test_bench_costs` records them."""
    return {
        "group": "costs: 1 KiB x 64 connections, 47 ready per poll",
        "name": f"test_costs[{target}]",
        "extra_info": {
            "kind": "costs", "target": target, "interpreter": interpreter,
            "target_kind": "peer" if target.startswith("peer-") else "variant",
            "instructions_per_msg": instructions,
            "instructions_note": "" if instructions is not None else "valgrind cannot run it",
            "syscalls_per_msg": round(sum(syscalls.values()), 3),
            "syscalls_by_name": dict(syscalls), "syscalls_note": "",
            "count_connections": 64, "count_ready": 47, "count_size": 1024,
            "count_messages": 9400, "count_scheduling": "client SCHED_FIFO",
        },
    }


def write_run(path: Path, rates: Mapping[str, Sequence[float]], cpu: float = 5.0,
              machine: Optional[Mapping[str, Any]] = None,
              foreign: Optional[Mapping[str, Sequence[Dict[str, Any]]]] = None,
              costs: Sequence[Dict[str, Any]] = ()) -> Path:
    """A run with ``rates[target]`` round trips/s in rounds 1, 2, ...; CPU scaled alike.

    ``foreign[target]``: per round, figures to add (``foreign_cpu_pct``,
    ``discarded_windows``, ``clean_window``...); ``costs``: `costs_entry` results.
    """
    entries: List[Dict[str, Any]] = []
    for target, values in rates.items():
        for number, rate in enumerate(values, start=1):
            entry = echo_entry(target, number, rate, cpu * 100_000 / rate, rounds=len(values))
            if foreign and target in foreign:
                entry["extra_info"].update(foreign[target][number - 1])
            entries.append(entry)
    entries.extend(costs)
    data = {"machine_info": {"node": "test", "pollers_bench": {
        "duration_s": 2.0, "warmup_s": 0.5, "rounds": max(map(len, rates.values())),
        "cheap": False, **dict(machine or {})}}, "commit_info": {},
        "datetime": "2026-12-01T00:00:00", "benchmarks": entries}
    path.write_text(json.dumps(data))
    return path


def foreign_and_costs_run(path: Path) -> Path:
    """Two targets whose rounds had clean, rerun and unclean windows, and three costs."""
    clean = {"foreign_cpu_pct": 1.5, "foreign_threshold_pct": 5.0, "discarded_windows": [],
             "clean_window": True}
    rerun = {**clean, "foreign_cpu_pct": 3.0,
             "discarded_windows": [{"foreign_cpu_pct": 88.0, "round_trips_per_s": 5.0e4}]}
    unclean = {**clean, "foreign_cpu_pct": 97.5, "clean_window": False,
               "discarded_windows": [{"foreign_cpu_pct": 99.0}] * 3}
    return write_run(
        path, {"selectors-epoll": [1.0e5, 1.1e5, 0.9e5], "peer-c-epoll": [2.0e5, 2.1e5, 1.9e5]},
        machine={"foreign_threshold_pct": 5.0, "foreign_reruns": 3},
        foreign={"selectors-epoll": [clean, rerun, unclean], "peer-c-epoll": [clean] * 3},
        costs=[costs_entry("selectors-epoll", 6553.0, {"recvfrom": 1.0, "sendto": 1.0,
                                                       "epoll_wait": 0.021}),
               costs_entry("peer-c-epoll", 93.0, {"recvfrom": 1.0, "sendto": 1.0,
                                                  "epoll_wait": 0.021}),
               costs_entry("peer-asyncio-protocol", 14617.0, {
                   "mmap": 1.0, "mremap": 1.0, "munmap": 1.0, "recvfrom": 1.0, "sendto": 1.0,
                   "epoll_wait": 0.021})])
