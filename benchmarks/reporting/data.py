"""Read saved pytest-benchmark JSON into rows the report can table, rank and compare.

One `Row` per case, target, interpreter and server setting, holding every round
of it (one pytest-benchmark entry per round, ``extra_info["round"]``; a run made
before rounds existed is one round). A row's figures are the medians of its
rounds; `Row.estimate` gives a figure's median with its 95% interval and
`paired_speedup` the ratio of two rows from the rounds they share
(`benchmarks.stats`). The headline figure of a row and whether higher is
better come from its kind (`benchmarks.cases.HEADLINES`). Ratios are
*speed-ups*: above 1 means better than the baseline, whether the figure is a
rate (higher is better) or a time (lower is better), so every ratio reads the
same way.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pollers

from ..suites.cases import HEADLINES
from ..suites.targets import PEERS, RAW_SELECTORS_PEER, UVLOOP_PROTOCOL_PEER
from .stats import Estimate, median_ci, outliers, paired_ratio, unpaired_ratio

KIND_ORDER = ("latency", "throughput", "bulk", "idle", "primitive")
TARGET_ORDER = [*pollers.VARIANTS, *pollers.ATTACHED_VARIANTS, *(peer.name for peer in PEERS)]
NATIVE = "native"
CPU_FIGURE = "server_cpu_us_per_msg"
#: Sections of the report that are not ordinary cases (the case id's prefix).
SECTION_PREFIXES = ("malloc-",)


def family(target: str) -> str:
    """The backend family a target belongs to: a variant's, or the one a peer is written in.

    Peers are named ``peer-FAMILY-...``; the C peer's family is ``C``.
    """
    if target in pollers.VARIANTS:
        return str(pollers.VARIANTS[target][0])
    if target in pollers.ATTACHED_VARIANTS:
        return str(pollers.ATTACHED_VARIANTS[target][0])
    if target.startswith("peer-"):
        word = target.split("-")[1] if "-" in target[5:] else target[5:]
        return "C" if word == "c" else word
    return "other"


@dataclass
class Row:
    """Every round of one target (under one interpreter and setting) in one case."""

    group: str
    kind: str
    case: str
    target: str
    target_kind: str
    interpreter: str
    setting: str = ""
    rounds: List[Dict[str, Any]] = field(default_factory=list)
    show_interpreter: bool = True

    @property
    def key(self) -> Tuple[str, str, str, str]:
        return (self.group, self.target, self.interpreter, self.setting)

    @property
    def figures(self) -> Dict[str, Any]:
        """The first round's figures with every numeric one replaced by the rounds' median."""
        merged = dict(self.rounds[0]) if self.rounds else {}
        for name, value in merged.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values = self.values(name)
                merged[name] = statistics.median(values) if values else value
        return merged

    def values(self, figure: str) -> List[float]:
        """``figure`` of every round, in round order (rounds without it left out)."""
        found = []
        for figures in self.rounds:
            value = figures.get(figure)
            if isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and not math.isnan(float(value)):
                found.append(float(value))
        return found

    def by_round(self, figure: str) -> Dict[int, float]:
        return {int(figures.get("round", 1)): float(figures[figure]) for figures in self.rounds
                if isinstance(figures.get(figure), (int, float))}

    def estimate(self, figure: Optional[str] = None) -> Estimate:
        """The median of ``figure`` (default the headline) over the rounds, with its interval."""
        return median_ci(self.values(figure or self.headline_figure))

    def outlier_rounds(self, figure: Optional[str] = None) -> List[Tuple[int, float]]:
        """(round, value) of the rounds whose ``figure`` is an outlier (`stats.outliers`)."""
        name = figure or self.headline_figure
        numbered = sorted(self.by_round(name).items())
        return [numbered[i] for i in outliers([value for _n, value in numbered])]

    @property
    def headline_figure(self) -> str:
        return HEADLINES[self.kind][0]

    @property
    def headline(self) -> float:
        values = self.values(self.headline_figure)
        return statistics.median(values) if values else math.nan

    @property
    def higher_is_better(self) -> bool:
        return HEADLINES[self.kind][3]

    @property
    def server_cpu(self) -> Optional[float]:
        values = self.values(CPU_FIGURE)
        return statistics.median(values) if values else None

    def unclean_rounds(self) -> List[int]:
        """The rounds that got no clean window (foreign CPU over the threshold every time)."""
        return [int(figures.get("round", 1)) for figures in self.rounds
                if figures.get("clean_window") is False]

    @property
    def reruns(self) -> int:
        """Windows of this row discarded for their foreign CPU and run again."""
        return sum(len(figures.get("discarded_windows") or []) for figures in self.rounds)

    @property
    def foreign_recorded(self) -> bool:
        return any(figures.get("foreign_cpu_pct") is not None for figures in self.rounds)

    @property
    def client_bound_rounds(self) -> int:
        return sum(1 for figures in self.rounds if figures.get("client_bound"))

    @property
    def client_bound(self) -> bool:
        """True when most rounds were client-bound."""
        return self.client_bound_rounds * 2 > len(self.rounds)

    @property
    def family(self) -> str:
        return family(self.target)

    @property
    def is_peer(self) -> bool:
        return self.target_kind == "peer" or self.target.startswith("peer-")

    @property
    def label(self) -> str:
        text = self.target
        if self.show_interpreter and self.interpreter not in ("", NATIVE):
            text += f" ({self.interpreter})"
        if self.setting:
            text += f" [{self.setting}]"
        return text


@dataclass
class Run:
    """Everything read from one or more saved JSON files."""

    sources: List[str]
    machine: Dict[str, Any]
    dates: List[str]
    commits: List[str]
    rows: List[Row] = field(default_factory=list)
    settings: List[str] = field(default_factory=list)  # server settings, first seen first
    #: The deterministic costs per target (`benchmarks.suites.test_bench_costs`): one
    #: ``extra_info`` per target and interpreter, a later file's replacing an earlier one.
    costs: List[Dict[str, Any]] = field(default_factory=list)
    #: The report's notes kept in the first file (`slim`): used when none are given.
    notes: List[str] = field(default_factory=list)
    machine_notes: List[str] = field(default_factory=list)

    def cost(self, target: str, interpreter: str) -> Optional[Dict[str, Any]]:
        """The costs of ``target`` under ``interpreter`` (the native one's under any)."""
        for figures in self.costs:
            if figures.get("target") == target and (
                    figures.get("interpreter") in (interpreter, NATIVE)):
                return figures
        return None

    def interpreters(self) -> List[str]:
        """Interpreters that ran Python servers, in first-seen order."""
        seen: List[str] = []
        for row in self.rows:
            python = row.interpreter
            if row.kind != "primitive" and python != NATIVE and python not in seen:
                seen.append(python)
        return seen

    @property
    def rounds(self) -> int:
        """The most rounds any echo row has."""
        return max((len(row.rounds) for row in self.rows if row.kind != "primitive"), default=0)

    def groups(self, sections: bool = False) -> List[Tuple[str, str, List[Row]]]:
        """(group, kind, rows) per case, in report order, rows in target order.

        The cases of the report's own sections (glibc malloc) come only with ``sections``.
        """
        grouped: Dict[str, List[Row]] = {}
        for row in self.rows:
            if row.case.startswith(SECTION_PREFIXES) != sections:
                continue
            grouped.setdefault(row.group, []).append(row)
        interpreters = self.interpreters()

        def row_order(row: Row) -> Tuple[int, int, int]:
            target = TARGET_ORDER.index(row.target) if row.target in TARGET_ORDER else 999
            interp = interpreters.index(row.interpreter) if row.interpreter in interpreters else -1
            setting = self.settings.index(row.setting) if row.setting in self.settings else -1
            return (target, interp, setting)

        def group_order(item: Tuple[str, List[Row]]) -> Tuple[int, int, str]:
            first = item[1][0]
            figures = first.rounds[0] if first.rounds else {}
            size = int(figures.get("load_idle", 0)) if first.kind == "idle" else int(
                figures.get("load_connections", 0)) * 1_000_000 + int(figures.get("load_size", 0))
            return (KIND_ORDER.index(first.kind) if first.kind in KIND_ORDER else 99, size,
                    item[0])

        return [(group, rows[0].kind, sorted(rows, key=row_order))
                for group, rows in sorted(grouped.items(), key=group_order)]

    def find(self, group: str, target: str, interpreter: str, setting: str = ""
             ) -> Optional[Row]:
        for row in self.rows:
            if row.key == (group, target, interpreter, setting):
                return row
        return None

    def baseline(self, row: Row, target: str) -> Optional[Row]:
        """Peer ``target``'s row in the same case: same interpreter, else the first that has it."""
        same = self.find(row.group, target, row.interpreter, row.setting)
        if same is not None:
            return same
        for interpreter in self.interpreters():
            other = self.find(row.group, target, interpreter, row.setting)
            if other is not None:
                return other
        return None


def _ordered(row: Row, baseline: Row, figure: str, higher_is_better: bool
             ) -> Tuple[List[float], List[float]]:
    """The two rows' ``figure`` over the rounds both have, as (better-if-bigger pairs)."""
    mine, theirs = row.by_round(figure), baseline.by_round(figure)
    shared = sorted(set(mine) & set(theirs))
    a = [mine[n] for n in shared]
    b = [theirs[n] for n in shared]
    return (a, b) if higher_is_better else (b, a)


def paired_speedup(row: Row, baseline: Optional[Row], figure: Optional[str] = None
                   ) -> Optional[Estimate]:
    """``row`` over ``baseline`` as a speed-up (>1 is better), from the rounds they share.

    ``figure`` defaults to the headline; the server CPU per message is a cost (lower
    is better). None when the rows share no round.
    """
    if baseline is None or baseline is row:
        return None
    name = figure or row.headline_figure
    higher = row.higher_is_better if name == row.headline_figure else False
    top, bottom = _ordered(row, baseline, name, higher)
    if not top:
        return None
    estimate = paired_ratio(top, bottom)
    return estimate if estimate.count else None


def unpaired_speedup(row: Row, before: Row, figure: Optional[str] = None
                     ) -> Optional[Estimate]:
    """``row`` (a new run) over ``before`` (an older run) as a speed-up, rounds unpaired."""
    name = figure or row.headline_figure
    higher = row.higher_is_better if name == row.headline_figure else False
    new, old = row.values(name), before.values(name)
    if not new or not old:
        return None
    estimate = unpaired_ratio(new, old) if higher else unpaired_ratio(old, new)
    return estimate if estimate.count else None


BASELINES = (RAW_SELECTORS_PEER, UVLOOP_PROTOCOL_PEER)

#: The figures of an entry's ``extra_info`` that the report reads (`slim` keeps these).
REPORT_FIGURES = (
    "target", "interpreter", "case", "kind", "target_kind", "round", "rounds", "setting",
    "description", "server_args", "cheap", "load_connections", "load_size", "load_idle",
    "round_trips_per_s", "mb_per_s", "latency_p50_us", "latency_p99_us",
    "server_cpu_us_per_msg", "client_bound", "rss_kib_per_connection", "load_average_1min",
    "foreign_cpu_pct", "foreign_threshold_pct", "discarded_windows", "clean_window",
    "instructions_per_msg", "instructions_note", "syscalls_per_msg", "syscalls_by_name",
    "syscalls_note", "count_connections", "count_ready", "count_size", "count_messages",
    "count_scheduling",
)
#: pytest-benchmark's statistics of an in-process primitive that the report reads.
PRIMITIVE_STATS = ("mean", "median", "min", "stddev", "iqr", "q1", "q3", "rounds", "iterations")
#: Where a saved run keeps the report's notes (``--note``, ``--machine-note``), so that the
#: report rebuilt from the file alone is the same report.
NOTES_KEY = "pollers_report"


def slim(data: Dict[str, Any], notes: Sequence[str] = (),
         machine_notes: Sequence[str] = ()) -> Dict[str, Any]:
    """A saved run cut down to what the report reads, with the report's notes.

    Each entry keeps its group, name and the `REPORT_FIGURES` of its ``extra_info``;
    an in-process primitive also keeps the `PRIMITIVE_STATS` of pytest-benchmark's
    statistics. Dropped: pytest-benchmark's per-entry copies (``params``, ``options``,
    ``fullname``, ``param``), every raw timing (``stats["data"]``), and an echo run's
    statistics (the wall time of the whole run, not a figure). The report of the slim
    file is the report of the full one, byte for byte.
    """
    entries = []
    for benchmark in data.get("benchmarks", []):
        extra = benchmark.get("extra_info") or {}
        entry: Dict[str, Any] = {"group": benchmark.get("group"), "name": benchmark.get("name"),
                                 "extra_info": {key: extra[key] for key in REPORT_FIGURES
                                                if key in extra}}
        if extra.get("kind") == "primitive":
            stats = benchmark.get("stats") or {}
            entry["stats"] = {key: stats[key] for key in PRIMITIVE_STATS if key in stats}
        entries.append(entry)
    machine = dict(data.get("machine_info") or {})
    if notes or machine_notes:
        machine[NOTES_KEY] = {"notes": list(notes), "machine_notes": list(machine_notes)}
    return {"machine_info": machine, "commit_info": data.get("commit_info") or {},
            "datetime": data.get("datetime"), "version": data.get("version"),
            "benchmarks": entries}


def dump_slim(data: Dict[str, Any]) -> str:
    """`slim`'s result as JSON text with one benchmark entry per line (reviewable diffs)."""
    head = {key: value for key, value in data.items() if key != "benchmarks"}
    lines = [json.dumps(entry) for entry in data["benchmarks"]]
    return (json.dumps(head, indent=1)[:-2] + ',\n "benchmarks": [\n'
            + ",\n".join(lines) + "\n]}\n")


def _figures_from(benchmark: Dict[str, Any], pytest_python: str) -> Optional[Dict[str, Any]]:
    extra = dict(benchmark.get("extra_info") or {})
    kind = extra.get("kind")
    if kind not in HEADLINES:
        return None
    if kind == "primitive":
        stats = benchmark.get("stats") or {}
        for name in ("mean", "median", "min", "stddev", "iqr", "q1", "q3"):
            if name in stats:
                extra[f"{name}_ns"] = float(stats[name]) * 1e9
        extra["rounds_measured"] = stats.get("rounds")
        extra["iterations"] = stats.get("iterations")
        extra.setdefault("interpreter", pytest_python)
    extra.setdefault("round", 1)
    extra["group"] = str(benchmark.get("group") or extra.get("group") or benchmark.get("name"))
    return extra


def _add_interpreters(machine: Dict[str, Any], other: Dict[str, Any]) -> None:
    """Add ``other``'s server interpreters to ``machine``'s (the facts of several runs)."""
    extra = other.get("pollers_bench", {}).get("server_interpreters", [])
    known = machine.setdefault("pollers_bench", {}).setdefault("server_interpreters", [])
    known.extend(item for item in extra if item not in known)


def _entry_key(entry: Dict[str, Any], run: int, index: int) -> Tuple[Any, ...]:
    """What `load` gathers an entry under, so that a later run's entry with the same key
    replaces it: a round of a case, target, interpreter and setting, or a target's costs
    per interpreter. An in-process primitive is kept as it is."""
    extra = entry.get("extra_info") or {}
    if extra.get("kind") == "costs":
        return ("costs", extra.get("target"), extra.get("interpreter"))
    if "round" not in extra:
        return ("entry", run, index)
    return (entry.get("group") or extra.get("group"), extra.get("target"),
            extra.get("interpreter"), extra.get("setting", ""), extra.get("round"))


def joined(runs: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Several saved runs as one (``report --slim`` of several files): the first run's
    facts with the server interpreters of all, and every run's entries, a later run's
    replacing an earlier one's as `load` does. A costs-only run under another interpreter,
    or a case run again, joins a full run this way. Built in the first run's dict."""
    data = runs[0]
    data.setdefault("machine_info", {})
    entries: Dict[Tuple[Any, ...], Dict[str, Any]] = {}
    for number, run in enumerate(runs):
        if number:
            _add_interpreters(data["machine_info"], run.get("machine_info") or {})
        for index, entry in enumerate(run.get("benchmarks", [])):
            key = _entry_key(entry, number, index)
            entries.pop(key, None)  # the later entry takes the later place, as in a run
            entries[key] = entry
    data["benchmarks"] = list(entries.values())
    return data


def load(paths: Sequence[Path]) -> Run:
    """Read saved runs. Rounds of the same case, target, interpreter and setting are gathered
    into one row; a later file's round replaces an earlier one with the same number."""
    run = Run(sources=[str(path) for path in paths], machine={}, dates=[], commits=[])
    rows: Dict[Tuple[str, str, str, str], Row] = {}
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
            stored = machine.get(NOTES_KEY) or {}
            run.notes = list(stored.get("notes", []))
            run.machine_notes = list(stored.get("machine_notes", []))
        else:
            _add_interpreters(run.machine, machine)
        run.dates.append(str(data.get("datetime", "?")))
        commit = data.get("commit_info") or {}
        if commit.get("id"):
            dirty = " (dirty)" if commit.get("dirty") else ""
            run.commits.append(f"{commit.get('id', '')[:10]}{dirty}")
        pytest_python = (f"{machine.get('python_implementation', '?')} "
                         f"{machine.get('python_version', '?')}")
        for benchmark in data["benchmarks"]:
            extra = benchmark.get("extra_info") or {}
            if extra.get("kind") == "costs":
                key = (extra.get("target"), extra.get("interpreter"))
                run.costs = [c for c in run.costs if (c.get("target"), c.get("interpreter"))
                             != key] + [dict(extra)]
                continue
            figures = _figures_from(benchmark, pytest_python)
            if figures is None:
                continue
            row = Row(group=figures["group"], kind=str(figures["kind"]),
                      case=str(figures.get("case", "")), target=str(figures.get("target", "?")),
                      target_kind=str(figures.get("target_kind", "")),
                      interpreter=str(figures.get("interpreter", "")),
                      setting=str(figures.get("setting", "")))
            row = rows.setdefault(row.key, row)
            if row.setting not in run.settings:
                run.settings.append(row.setting)
            row.rounds = [f for f in row.rounds if f.get("round") != figures["round"]]
            row.rounds.append(figures)
            row.rounds.sort(key=lambda f: int(f.get("round", 1)))
    run.rows = list(rows.values())
    several = len(run.interpreters()) > 1
    for row in run.rows:
        row.show_interpreter = several
    return run
