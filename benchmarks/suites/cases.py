"""The benchmark cases: what each measures, its pytest-benchmark group and its headline figure.

Every variant and peer of one case lands in the same pytest-benchmark group, so
that they stand in one table. The report reads ``kind`` to pick the headline
figure and whether higher or lower is better.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

from .harness import LoadSpec

#: kind -> (headline figure in extra_info, label, unit, higher is better)
HEADLINES: Dict[str, Tuple[str, str, str, bool]] = {
    "latency": ("latency_p50_us", "p50 round trip", "us", False),
    "throughput": ("round_trips_per_s", "round trips/s", "rt/s", True),
    "bulk": ("mb_per_s", "MB/s", "MB/s", True),
    "idle": ("latency_p50_us", "p50 round trip", "us", False),
    "primitive": ("mean_ns", "mean time per op", "ns", False),
}


def _size_text(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"


@dataclass(frozen=True)
class EchoCase:
    """One echo workload: N connections x D in flight x S bytes, with I idle connections."""

    id: str
    kind: str
    connections: int
    depth: int
    size: int
    idle: int = 0
    title: str = ""  # the group's first word when it is not the kind (a report section's case)

    @property
    def group(self) -> str:
        """The pytest-benchmark group: the case, whatever the target or interpreter."""
        plural = "s" if self.connections > 1 else ""
        text = (f"{self.title or self.kind}: {_size_text(self.size)} x {self.connections} "
                f"connection{plural}")
        if self.depth > 1:
            text += f", {self.depth} in flight each"
        if self.kind == "idle":
            text += f", {self.idle:,} idle"
        return text

    def spec(self, duration: float, warmup: float) -> LoadSpec:
        return LoadSpec(self.connections, self.depth, self.size, self.idle, warmup, duration)


LATENCY_CASES = (
    EchoCase("64B", "latency", 1, 1, 64),
    EchoCase("1KiB", "latency", 1, 1, 1024),
    EchoCase("16KiB", "latency", 1, 1, 16384),
)
THROUGHPUT_CASES = (
    # One connection at depth 1 would repeat the 1 KiB latency case: pipeline it instead.
    EchoCase("1KiB-x1-d8", "throughput", 1, 8, 1024),
    EchoCase("1KiB-x64", "throughput", 64, 1, 1024),
    EchoCase("1KiB-x256", "throughput", 256, 1, 1024),
)
BULK_CASES = (EchoCase("64KiB-x8-d2", "bulk", 8, 2, 65536),)
IDLE_CASES = (
    EchoCase("idle-0", "idle", 1, 1, 1024, 0),
    EchoCase("idle-1000", "idle", 1, 1, 1024, 1000),
    EchoCase("idle-10000", "idle", 1, 1, 1024, 10000),
)
#: The glibc malloc section of the report: asyncio's transports in both malloc states.
MALLOC_CASES = (EchoCase("malloc-1KiB-x64", "throughput", 64, 1, 1024, title="malloc"),)

#: Every echo case, for the options that name cases by id.
ALL_CASES = (*LATENCY_CASES, *THROUGHPUT_CASES, *BULK_CASES, *IDLE_CASES, *MALLOC_CASES)
