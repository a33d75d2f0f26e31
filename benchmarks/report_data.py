"""Read saved pytest-benchmark JSON into rows the report can table, rank and compare.

One `Row` per benchmark: its case (group), target, interpreter and figures. The
headline figure of a row and whether higher is better come from its kind
(`benchmarks.cases.HEADLINES`). Ratios are *speed-ups*: above 1 means better
than the baseline, whether the figure is a rate (higher is better) or a time
(lower is better), so every ratio reads the same way.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pollers

from .cases import HEADLINES
from .targets import PEERS, RAW_SELECTORS_PEER, UVLOOP_PROTOCOL_PEER

KIND_ORDER = ("latency", "throughput", "bulk", "idle", "primitive")
TARGET_ORDER = [*pollers.VARIANTS, *(peer.name for peer in PEERS)]
NATIVE = "native"


@dataclass
class Row:
    group: str
    kind: str
    case: str
    target: str
    target_kind: str
    interpreter: str
    figures: Dict[str, Any]
    show_interpreter: bool = True

    @property
    def key(self) -> Tuple[str, str, str]:
        return (self.group, self.target, self.interpreter)

    @property
    def headline(self) -> float:
        return float(self.figures.get(HEADLINES[self.kind][0], math.nan))

    @property
    def higher_is_better(self) -> bool:
        return HEADLINES[self.kind][3]

    @property
    def server_cpu(self) -> Optional[float]:
        value = self.figures.get("server_cpu_us_per_msg")
        return None if value is None else float(value)

    @property
    def client_bound(self) -> bool:
        return bool(self.figures.get("client_bound"))

    @property
    def label(self) -> str:
        if not self.show_interpreter or self.interpreter in ("", NATIVE):
            return self.target
        return f"{self.target} ({self.interpreter})"


@dataclass
class Run:
    """Everything read from one or more saved JSON files."""

    sources: List[str]
    machine: Dict[str, Any]
    dates: List[str]
    commits: List[str]
    rows: List[Row] = field(default_factory=list)

    def interpreters(self) -> List[str]:
        """Interpreters that ran Python servers, in first-seen order."""
        seen: List[str] = []
        for row in self.rows:
            python = row.interpreter
            if row.kind != "primitive" and python != NATIVE and python not in seen:
                seen.append(python)
        return seen

    def groups(self) -> List[Tuple[str, str, List[Row]]]:
        """(group, kind, rows) per case, in report order, rows in target order."""
        grouped: Dict[str, List[Row]] = {}
        for row in self.rows:
            grouped.setdefault(row.group, []).append(row)
        interpreters = self.interpreters()

        def row_order(row: Row) -> Tuple[int, int]:
            target = TARGET_ORDER.index(row.target) if row.target in TARGET_ORDER else 999
            interp = interpreters.index(row.interpreter) if row.interpreter in interpreters else -1
            return (target, interp)

        def group_order(item: Tuple[str, List[Row]]) -> Tuple[int, int, str]:
            first = item[1][0]
            figures = first.figures
            size = int(figures.get("load_idle", 0)) if first.kind == "idle" else int(
                figures.get("load_connections", 0)) * 1_000_000 + int(figures.get("load_size", 0))
            return (KIND_ORDER.index(first.kind) if first.kind in KIND_ORDER else 99, size,
                    item[0])

        return [(group, rows[0].kind, sorted(rows, key=row_order))
                for group, rows in sorted(grouped.items(), key=group_order)]

    def find(self, group: str, target: str, interpreter: str) -> Optional[Row]:
        for row in self.rows:
            if row.group == group and row.target == target and row.interpreter == interpreter:
                return row
        return None

    def baseline(self, row: Row, target: str) -> Optional[Row]:
        """Peer ``target``'s row in the same case: same interpreter, else the first that has it."""
        same = self.find(row.group, target, row.interpreter)
        if same is not None:
            return same
        for interpreter in self.interpreters():
            other = self.find(row.group, target, interpreter)
            if other is not None:
                return other
        return None


def speedup(row: Row, baseline: Optional[Row]) -> Optional[float]:
    """Headline of ``row`` as a speed-up over ``baseline`` (>1 is better)."""
    if baseline is None:
        return None
    mine, theirs = row.headline, baseline.headline
    if not (mine > 0 and theirs > 0):
        return None
    return mine / theirs if row.higher_is_better else theirs / mine


def cpu_speedup(row: Row, baseline: Optional[Row]) -> Optional[float]:
    """Server CPU per message of ``baseline`` over ``row``'s (>1: ``row`` spends less)."""
    if baseline is None or row.server_cpu is None or baseline.server_cpu is None:
        return None
    if not (row.server_cpu > 0 and baseline.server_cpu > 0):
        return None
    return baseline.server_cpu / row.server_cpu


BASELINES = (RAW_SELECTORS_PEER, UVLOOP_PROTOCOL_PEER)


def _row_from(benchmark: Dict[str, Any], pytest_python: str) -> Optional[Row]:
    extra = dict(benchmark.get("extra_info") or {})
    kind = extra.get("kind")
    if kind not in HEADLINES:
        return None
    if kind == "primitive":
        stats = benchmark.get("stats") or {}
        for name in ("mean", "median", "min", "stddev"):
            if name in stats:
                extra[f"{name}_ns"] = float(stats[name]) * 1e9
        extra["rounds"] = stats.get("rounds")
        extra["iterations"] = stats.get("iterations")
        extra.setdefault("interpreter", pytest_python)
    return Row(
        group=str(benchmark.get("group") or extra.get("group") or benchmark.get("name")),
        kind=kind, case=str(extra.get("case", "")), target=str(extra.get("target", "?")),
        target_kind=str(extra.get("target_kind", "")),
        interpreter=str(extra.get("interpreter", "")), figures=extra,
    )


def load(paths: Sequence[Path]) -> Run:
    """Read saved runs; a later file's row replaces an earlier one of the same case and target."""
    run = Run(sources=[str(path) for path in paths], machine={}, dates=[], commits=[])
    rows: Dict[Tuple[str, str, str], Row] = {}
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise SystemExit(f"cannot read {path}: {exc}") from None
        if not isinstance(data, dict) or "benchmarks" not in data:
            raise SystemExit(f"{path} is not pytest-benchmark JSON (no 'benchmarks' key)")
        machine = data.get("machine_info") or {}
        if not run.machine:
            run.machine = machine
        else:  # merge the server interpreters of several runs
            extra = machine.get("pollers_bench", {}).get("server_interpreters", [])
            bench = run.machine.setdefault("pollers_bench", {})
            known = bench.setdefault("server_interpreters", [])
            known.extend(item for item in extra if item not in known)
        run.dates.append(str(data.get("datetime", "?")))
        commit = data.get("commit_info") or {}
        if commit.get("id"):
            dirty = " (dirty)" if commit.get("dirty") else ""
            run.commits.append(f"{commit.get('id', '')[:10]}{dirty}")
        pytest_python = (f"{machine.get('python_implementation', '?')} "
                         f"{machine.get('python_version', '?')}")
        for benchmark in data["benchmarks"]:
            row = _row_from(benchmark, pytest_python)
            if row is not None:
                rows[row.key] = row
    run.rows = list(rows.values())
    several = len(run.interpreters()) > 1
    for row in run.rows:
        row.show_interpreter = several
    return run
