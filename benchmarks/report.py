"""Turn saved pytest-benchmark JSON into a report (Markdown and one HTML file), and compare runs.

    python -m benchmarks.report RUN.json [MORE.json ...] --out DIR [--note TEXT] \
        [--machine-note TEXT] [--slim SLIM.json]
    python -m benchmarks.report RUN.json --compare OLD.json --threshold 0.05 --out DIR \
        [--compare-on headline|cpu]

Writes ``DIR/report.md``, one SVG chart per case beside it, and ``DIR/report.html``
(the same report in one self-contained file: tables, the charts inline with
hover values, the environment; it loads nothing from anywhere).

The report opens with a summary to read in ten seconds: per case the ranking,
the winner, its margin over the runner-up with the margin's 95% interval, and
the targets within noise of the winner. Every figure is the median of the
case's interleaved rounds with its 95% interval, every ratio comes from paired
rounds (`benchmarks.stats`), and a ratio whose interval holds 1.0 reads "no
difference measured". Then the glibc malloc section (asyncio's transports in
both malloc states), one chart and one table per case, outlier rounds, idle
scaling, interpreters side by side, the primitives and the environment.

With ``--compare``, every case's figure against the older run's (the ratio of
the two runs with its interval; the runs are separate, so their rounds are not
paired); a regression is flagged only when the whole interval lies below
``1 - threshold``, and the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .reporting.charts import (
    COSTS_CHART,
    case_charts,
    costs_chart,
    number_text,
    sort_best_first,
)
from .reporting.data import (
    BASELINES,
    CPU_FIGURE,
    NATIVE,
    Row,
    Run,
    dump_slim,
    family,
    joined,
    load,
    paired_speedup,
    slim,
    unpaired_speedup,
)
from .reporting.render import (
    Block,
    Bullets,
    Chart,
    Document,
    Heading,
    Paragraph,
    Table,
    regressions_status,
    to_html,
    to_markdown,
)
from .reporting.stats import Estimate, interval_text, verdict
from .suites.cases import HEADLINES
from .suites.targets import TARGETS

TITLE = "pollers benchmark report"
NO_DIFFERENCE = "no difference measured"


def _number(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    value = float(value)
    if math.isnan(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def ratio_text(estimate: Optional[Estimate]) -> str:
    """A speed-up with its interval; "no difference measured" when the interval holds 1.0."""
    if estimate is None or not estimate.count:
        return "-"
    interval = f"{estimate.low:.2f}-{estimate.high:.2f}"
    partial = "" if estimate.complete else f", {estimate.coverage:.0%} interval"
    if estimate.contains(1.0):
        return f"{NO_DIFFERENCE} ({interval}{partial})"
    return f"{estimate.value:.2f}x ({interval}{partial})"


def figure_text(estimate: Estimate, unit: str = "") -> str:
    """A median with its unit and its interval, thousands separated."""
    if not estimate.count:
        return "-"
    return interval_text(estimate, suffix=f" {unit}" if unit else "")


def _mode(run: Run) -> Tuple[bool, str]:
    """(cheap?, one sentence on how the run was made)."""
    bench = run.machine.get("pollers_bench", {})
    rounds = run.rounds
    duration = bench.get("duration_s", "?")
    cheap = bool(bench.get("cheap")) or (isinstance(duration, (int, float)) and duration < 1)
    per_case: Dict[str, int] = {}
    for row in run.rows:
        if row.kind != "primitive" and row.rounds:
            per_case[row.group] = max(per_case.get(row.group, 0), len(row.rounds))
    common = Counter(per_case.values()).most_common(1)[0][0] if per_case else rounds
    others = "".join(f"; {n} for {group}" for group, n in per_case.items() if n != common)
    text = (f"{common} interleaved round{'s' if common != 1 else ''} per case{others} (each "
            f"round runs every target of the case once, in turn), {duration} s measured window and "
            f"{bench.get('warmup_s', '?')} s warm-up per run")
    if bench.get("realtime"):
        text += ", servers and load generator under SCHED_FIFO"
    return cheap, text + "."


# -- the summary ------------------------------------------------------------------------


def _ranking(rows: List[Row]) -> str:
    """Labels best first, joined by ">" or by "≈" where the paired interval holds 1.0."""
    ordered = sort_best_first(rows)
    if not ordered:
        return "-"
    text = f"`{ordered[0].label}`"
    for before, after in zip(ordered, ordered[1:]):
        margin = paired_speedup(before, after)
        tied = margin is None or margin.contains(1.0)
        text += f" {'≈' if tied else '>'} `{after.label}`"
    return text


def _summary_row(group: str, kind: str, rows: List[Row]) -> List[str]:
    ordered = sort_best_first([row for row in rows if row.rounds])
    _figure, _label, unit, _higher = HEADLINES[kind]
    winner = ordered[0]
    winner_text = f"`{winner.label}` {figure_text(winner.estimate(), unit)}"
    if len(ordered) < 2:
        return [group, winner_text, "-", "-", _ranking(ordered)]
    margin = paired_speedup(winner, ordered[1])
    if margin is None or margin.contains(1.0):
        margin_text = f"{NO_DIFFERENCE} over `{ordered[1].label}`"
        if margin is not None:
            margin_text += f" ({margin.low:.2f}-{margin.high:.2f})"
    else:
        margin_text = f"{ratio_text(margin)} over `{ordered[1].label}`"
    tied = []
    for row in ordered[1:]:
        against = paired_speedup(winner, row)
        if against is None or against.contains(1.0):
            tied.append(f"`{row.label}`")
    return [group, winner_text, margin_text, ", ".join(tied) or "none", _ranking(ordered)]


def summary_blocks(run: Run, notes: Sequence[str]) -> List[Block]:
    cheap, mode = _mode(run)
    blocks: List[Block] = [Heading(2, "Summary")]
    if cheap:
        blocks.append(Paragraph(
            "**Cheap mode** (a short window and few rounds): every code path ran and every "
            "sanity check held, but intervals from so few rounds cover less than 95% and the "
            "figures are not to be quoted."))
    blocks.append(Paragraph(
        f"{mode} Figures are the median of the rounds with its 95% confidence interval in "
        "brackets (the distribution-free order-statistic interval of the median); ratios are "
        "speed-ups (above 1x is better) computed round by round from the paired runs, with "
        "the interval of their median. Where an interval holds 1.0 the report says "
        f"\"{NO_DIFFERENCE}\". A ranking joins neighbours with ≈ when no difference was "
        "measured between them."))
    blocks.extend(Paragraph(note) for note in notes)
    body = [_summary_row(group, kind, rows) for group, kind, rows in run.groups()
            if kind != "primitive" and any(row.rounds for row in rows)]
    blocks.append(Table(["case", "winner (median, 95% interval)", "margin over the runner-up",
                         "within noise of the winner", "ranking, best first"], body,
                        text_columns=5))
    flagged = [(row, row.outlier_rounds()) for row in run.rows if row.kind != "primitive"]
    count = sum(len(found) for _row, found in flagged)
    runs = sum(len(row.rounds) for row in run.rows if row.kind != "primitive")
    bound = [row for row in run.rows if row.kind != "primitive" and row.client_bound_rounds]
    facts = [f"{runs} echo runs; {count} outlier round{'s' if count != 1 else ''} (further than "
             "3.5 scaled median absolute deviations from their target's median), listed under "
             "[Outlier rounds](#outlier-rounds) and drawn as red rings; none is dropped."]
    if bound:
        facts.append(f"{len(bound)} rows had client-bound rounds (the load generator used more "
                     "CPU than the server; their rates understate the server, their server CPU "
                     "per message stays valid): see each case's table.")
    facts.append(_foreign_fact(run))
    facts.extend(_malloc_facts(run))
    blocks.append(Bullets(facts))
    return blocks


def _foreign_fact(run: Run) -> str:
    """The summary's line on the machine's other work: reruns and unclean runs."""
    echo = [row for row in run.rows if row.kind != "primitive"]
    if not any(row.foreign_recorded for row in echo):
        return ("Foreign CPU (other work on the machine during each window): not recorded in "
                "this run.")
    bench = run.machine.get("pollers_bench", {})
    threshold = bench.get("foreign_threshold_pct")
    figures = sorted(value for row in echo for value in row.values("foreign_cpu_pct"))
    reruns = sum(row.reruns for row in echo)
    unclean = sum(len(row.unclean_rounds()) for row in echo)
    limit = "no threshold" if threshold is None else \
        f"a threshold of {threshold:g}% (at most {bench.get('foreign_reruns', '?')} reruns)"
    return (f"Foreign CPU (other work on the machine during each window, % of one core): "
            f"median {statistics.median(figures):.1f}%, {figures[0]:.1f}% to "
            f"{figures[-1]:.1f}% over {len(figures)} windows kept; held to {limit}: "
            f"{reruns} window{'s' if reruns != 1 else ''} discarded and run again, "
            f"{unclean} run{'s' if unclean != 1 else ''} without a clean window (marked in "
            "the tables and, as orange triangles, on the charts).")


def _malloc_facts(run: Run) -> List[str]:
    """One line per asyncio transport: the glibc malloc section's finding, in numbers."""
    found = []
    for group, kind, rows in run.groups(sections=True):
        states = list(dict.fromkeys(row.setting for row in rows))
        unit = HEADLINES[kind][2]
        for target in dict.fromkeys(row.target for row in rows if row.target != "asyncio"):
            mine = {row.setting: row for row in rows if row.target == target}
            if len(mine) < 2 or states[0] not in mine or states[1] not in mine:
                continue
            fresh, served = mine[states[0]], mine[states[1]]
            found.append(
                f"{group}: `{target}` {figure_text(fresh.estimate(), unit)} in a "
                f"{states[0]}, {figure_text(served.estimate(), unit)} {states[1]}: "
                f"{ratio_text(paired_speedup(served, fresh))} (glibc malloc's state, see "
                "[glibc malloc and asyncio's transports](#glibc-malloc-and-asyncios-transports)).")
    return found


# -- the cases ----------------------------------------------------------------------------


def _case_table(run: Run, kind: str, rows: List[Row]) -> Table:
    _figure, label, unit, _higher = HEADLINES[kind]
    header = ["target", f"{label} ({unit})", "x raw selectors", "x uvloop Protocol",
              "server CPU us/msg", "CPU x raw selectors", "p99 us", "rounds", "client-bound",
              "foreign CPU % (reruns)", "instructions/msg", "syscalls/msg"]
    body = []
    for row in sort_best_first(rows):
        cost = run.cost(row.target, row.interpreter)
        raw, uv = (run.baseline(row, name) for name in BASELINES)
        outlying = row.outlier_rounds()
        rounds = str(len(row.rounds))
        if outlying:
            rounds += " (outlier: " + ", ".join(f"r{n}" for n, _v in outlying) + ")"
        bound = row.client_bound_rounds
        body.append([
            f"`{row.label}`", figure_text(row.estimate()),
            ratio_text(paired_speedup(row, raw)), ratio_text(paired_speedup(row, uv)),
            figure_text(row.estimate(CPU_FIGURE)), ratio_text(paired_speedup(row, raw,
                                                                              CPU_FIGURE)),
            _number(row.figures.get("latency_p99_us")), rounds,
            f"**{bound} of {len(row.rounds)}**" if bound else "no",
            foreign_cell(row), *cost_cells(cost),
        ])
    return Table(header, body)


NOT_RECORDED = "not recorded"


def foreign_cell(row: Row) -> str:
    """The median foreign CPU % of the row's rounds, its reruns, and its unclean rounds."""
    if not row.foreign_recorded:
        return NOT_RECORDED
    text = f"{statistics.median(row.values('foreign_cpu_pct')):.1f}"
    if row.reruns:
        text += f" ({row.reruns})"
    unclean = row.unclean_rounds()
    if unclean:
        text += " **no clean window: " + ", ".join(f"r{n}" for n in unclean) + "**"
    return text


def cost_cells(cost: Optional[Dict[str, Any]]) -> List[str]:
    """[instructions per message, system calls per message] of a target's costs."""
    if cost is None:
        return [NOT_RECORDED, NOT_RECORDED]
    instructions = cost.get("instructions_per_msg")
    syscalls = cost.get("syscalls_per_msg")
    return [f"{instructions:,.0f}" if isinstance(instructions, (int, float))
            else str(cost.get("instructions_note") or NOT_RECORDED),
            f"{syscalls:.3f}" if isinstance(syscalls, (int, float))
            else str(cost.get("syscalls_note") or NOT_RECORDED)]


def _primitive_table(rows: List[Row]) -> Table:
    fastest = min((row.headline for row in rows if row.headline > 0), default=math.nan)
    body = [[f"`{row.target}`", row.interpreter, _number(row.figures.get("mean_ns"), 0),
             _number(row.figures.get("median_ns"), 0), _number(row.figures.get("iqr_ns"), 0),
             _number(row.figures.get("min_ns"), 0),
             f"{fastest / row.headline:.2f}x" if row.headline > 0 else "-"]
            for row in sorted(rows, key=lambda r: r.headline)]
    header = ["variant", "python", "mean ns", "median ns", "IQR ns", "min ns", "x fastest"]
    return Table(header, body, text_columns=2)


def case_blocks(run: Run, charts: Dict[str, Tuple[str, str]]) -> List[Block]:
    blocks: List[Block] = [Heading(2, "Cases"), Paragraph(
        "One chart and one table per case, best first. In the charts each line is a target: "
        "the small dots are its rounds, the large mark the median (a filled circle for the "
        "project's variants, a hollow diamond for the hand-written peers; the colour is the "
        "backend family), the bar its 95% interval; both panels have log scales. The tables' "
        "ratios are paired speed-ups over the raw selectors peer and over uvloop's Protocol "
        "peer, with their 95% intervals.")]
    for group, kind, rows in run.groups():
        if kind == "primitive":
            continue
        blocks.append(Heading(3, group))
        if group in charts:
            name, svg = charts[group]
            blocks.append(Chart(group, name, svg))
        blocks.append(_case_table(run, kind, rows))
    primitives = [(group, rows) for group, kind, rows in run.groups() if kind == "primitive"]
    if primitives:
        blocks += [Heading(2, "Primitives"), Paragraph(
            "In-process operations, timed by pytest-benchmark itself (its own rounds, not "
            "interleaved between variants); the inter-quartile range shows their spread.")]
        for group, rows in primitives:
            blocks += [Heading(3, group), _primitive_table(rows)]
    return blocks


COSTS_TEXT = (
    "User-space instructions (callgrind) and system calls by name (strace) of each target's "
    "server per echoed message, 1 KiB messages over 64 connections with 47 readable at each "
    "poll, counted over a fixed number of messages by a lockstep client that keeps the "
    "server off the CPU while it sends (`benchmarks.suites.counting`). They do not move with "
    "the machine's load: a difference here is a difference in the code. The client's share "
    "is not included.")


def costs_blocks(run: Run) -> List[Block]:
    """The deterministic costs: a sortable table and one chart, or 'not recorded'."""
    blocks: List[Block] = [Heading(2, "Deterministic costs per message"), Paragraph(COSTS_TEXT)]
    if not run.costs:
        return [*blocks, Paragraph("Not recorded in this run (it predates the counts, or "
                                   "ran with `--bench-costs none`).")]
    blocks.append(Chart("deterministic costs per message", COSTS_CHART, costs_chart(run.costs)))
    body = []
    for cost in sorted(run.costs, key=lambda c: (str(c.get("target")), str(c.get("interpreter")))):
        by_name = ", ".join(f"`{name}` {value:.3f}" for name, value in
                            (cost.get("syscalls_by_name") or {}).items())
        body.append([f"`{cost.get('target')}`", str(cost.get("interpreter")),
                     family(str(cost.get("target"))), *cost_cells(cost), by_name or "-"])
    blocks.append(Table(["target", "interpreter", "family", "instructions/msg", "syscalls/msg",
                         "system calls per message, by name"], body, text_columns=3))
    return blocks


def outlier_blocks(run: Run) -> List[Block]:
    items = []
    for group, kind, rows in run.groups() + run.groups(sections=True):
        if kind == "primitive":
            continue
        unit = HEADLINES[kind][2]
        for row in rows:
            for number, value in row.outlier_rounds():
                median = row.estimate().value
                items.append(f"{group}: `{row.label}` round {number}: {number_text(value)} "
                             f"{unit} against a median of {number_text(median)} "
                             f"({value / median:.2f}x)")
    text = ("Rounds whose headline figure lies further than 3.5 scaled median absolute "
            "deviations from their target's median. They stay in every median and interval "
            "(the median barely moves for one odd round); a machine shared with other work "
            "produces them when another process takes a CPU during a run.")
    return [Heading(2, "Outlier rounds"), Paragraph(text),
            Bullets(items) if items else Paragraph("None.")]


# -- glibc malloc ----------------------------------------------------------------------------


MALLOC_TEXT = (
    "asyncio's socket transports read with `sock.recv(256 KiB)` into a new bytes object on "
    "every read. glibc's malloc serves a request above its *mmap threshold* with `mmap`, and "
    "that threshold starts at 128 KiB. CPython then shrinks the object to the bytes received "
    "(`realloc`, which for a mapped chunk is `mremap`) and frees it (`munmap`): three system "
    "calls and fresh zeroed pages per read (strace of `peer-asyncio-protocol` at 1 KiB x 64: "
    "12,392 `mmap`, 12,266 `mremap` and 12,277 `munmap` for 12,333 `recvfrom`). glibc raises the "
    "threshold only when `free` is given a *mapped chunk larger than the threshold*: it then "
    "sets the mmap threshold to that chunk's size and the trim threshold to twice it, for good. "
    "A shrunk read buffer never is one. **What decides it is the first read that ends in EOF:** "
    "when `recv` returns nothing, CPython frees the whole 256 KiB buffer unshrunk (strace: "
    "`recvfrom(...) = 0` then `munmap(..., 266240)`), the threshold rises above the read size, "
    "and from then on the reads come from the heap with no `mmap`, `mremap` or `munmap` at all. "
    "So a server process is in the slow state only until its first client closes a connection "
    "(any other large temporary object freed whole does the same). A benchmark harness that "
    "starts a fresh server and keeps every connection open until the end, as ours does, measures "
    "asyncio's transports in a state that a server which has served one client has left; one "
    "that connects once to check the port first measures the other. Setting only the mmap "
    "threshold (`MALLOC_MMAP_THRESHOLD_=1048576`) is not the raised state: the trim threshold "
    "stays at 128 KiB and every read then grows and trims the heap with two `brk` calls "
    "instead (strace: 33,832 `brk` for 16,904 `recvfrom`); "
    "`GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1048576:glibc.malloc.trim_threshold=2097152` "
    "is, and gives a fresh process the state glibc itself sets after freeing a 1 MiB chunk.")

MALLOC_VERDICT = (
    "**Which state a long-running server is in:** the fast one. A long-running server has "
    "seen a client close its connection (and so read an EOF) within moments of starting, and "
    "the threshold never comes down; only a freshly started process whose connections all stay "
    "open is in the slow state. The project's `asyncio` variant reads into a buffer it reuses "
    "(`recv_into`), so its cost does not depend on the state. Comparisons with asyncio's "
    "transports should quote the served state, and say so.")


def malloc_blocks(run: Run, charts: Dict[str, Tuple[str, str]]) -> List[Block]:
    groups = [item for item in run.groups(sections=True) if item[2]]
    if not groups:
        return []
    blocks: List[Block] = [Heading(2, "glibc malloc and asyncio's transports"),
                           Paragraph(MALLOC_TEXT)]
    for group, kind, rows in groups:
        blocks.append(Heading(3, group))
        if group in charts:
            name, svg = charts[group]
            blocks.append(Chart(group, name, svg))
        _figure, label, unit, _higher = HEADLINES[kind]
        states = list(dict.fromkeys(row.setting for row in rows))
        first = states[0]
        ours = {row.setting: row for row in rows if row.target == "asyncio"}
        body = []
        for target in dict.fromkeys(row.target for row in rows):
            mine = {row.setting: row for row in rows if row.target == target}
            cells = [f"`{target}`"]
            for state in states:
                row = mine.get(state)
                cells.append("-" if row is None else
                             f"{figure_text(row.estimate(), unit)}; "
                             f"{figure_text(row.estimate(CPU_FIGURE), 'us/msg')}")
            for state in states[1:]:
                cells.append(ratio_text(paired_speedup(mine[state], mine[first]))
                             if state in mine and first in mine else "-")
            for state in states:
                cells.append(ratio_text(paired_speedup(ours[state], mine[state]))
                             if state in ours and state in mine and target != "asyncio" else "-")
            body.append(cells)
        header = ["target", *(f"{state}: {label}; server CPU" for state in states),
                  *(f"{state} x {first}" for state in states[1:]),
                  *(f"`asyncio` x it, {state}" for state in states)]
        blocks.append(Table(header, body))
        blocks.append(Paragraph(
            f"Ratios are paired speed-ups of {label}: \"S x {first}\" is the target in state S "
            f"over itself in the {first} state; \"`asyncio` x it\" is the project's `asyncio` "
            "variant over the target, both in the same state."))
    blocks.append(Paragraph(_malloc_costs(run)))
    blocks.append(Paragraph(MALLOC_VERDICT))
    return blocks


def _malloc_costs(run: Run) -> str:
    """The counted system calls of asyncio's transports in a fresh process, if counted."""
    found = []
    for cost in run.costs:
        by_name = cost.get("syscalls_by_name") or {}
        if str(cost.get("target", "")).startswith("peer-asyncio-") and "mmap" in by_name:
            found.append(f"`{cost['target']}` makes {cost.get('syscalls_per_msg', 0):.3f} "
                         f"system calls per message, of them `mmap` {by_name['mmap']:.3f}, "
                         f"`mremap` {by_name.get('mremap', 0):.3f} and `munmap` "
                         f"{by_name.get('munmap', 0):.3f}")
    if not found:
        return ("Counted system calls of a fresh process: not recorded in this run (see "
                "[Deterministic costs per message](#deterministic-costs-per-message)).")
    return ("Counted in a fresh process (see [Deterministic costs per message]"
            "(#deterministic-costs-per-message)): " + "; ".join(found) + ".")


# -- idle scaling, interpreters, environment ---------------------------------------------------


def idle_blocks(run: Run) -> List[Block]:
    idle_groups = [(group, rows) for group, kind, rows in run.groups() if kind == "idle"]
    if not idle_groups:
        return []
    counts = [int(rows[0].figures.get("load_idle", 0)) for _group, rows in idle_groups]
    labels: List[str] = []
    cells: Dict[Tuple[str, int], Row] = {}
    for (_group, rows), count in zip(idle_groups, counts):
        for row in rows:
            if row.label not in labels:
                labels.append(row.label)
            cells[(row.label, count)] = row
    header = ["target", *(f"p50 us, {count:,} idle" for count in counts),
              f"p50 {counts[-1]:,} / {counts[0]:,} (paired)",
              f"server RSS KiB per connection, {counts[-1]:,} idle"]
    body = []
    for label in labels:
        first, last = cells.get((label, counts[0])), cells.get((label, counts[-1]))
        growth = paired_speedup(first, last) if first is not None and last is not None else None
        body.append([
            f"`{label}`",
            *(figure_text(cells[(label, count)].estimate()) if (label, count) in cells
              else "skipped" for count in counts),
            ratio_text(growth),
            _number(last.figures.get("rss_kib_per_connection"), 2) if last is not None else "-",
        ])
    return [Heading(2, "Idle scaling"), Paragraph(
        "One active connection (1 KiB, one message in flight) while idle connections stay open; "
        "select and poll scan every descriptor on every pass, epoll and kqueue do not. The "
        "growth is the p50 at the most idle connections over the p50 at none, from the same "
        "rounds."), Table(header, body)]


def interpreter_blocks(run: Run) -> List[Block]:
    interpreters = run.interpreters()
    if len(interpreters) < 2:
        return []
    base = interpreters[0]
    blocks: List[Block] = [Heading(2, "Interpreters side by side"), Paragraph(
        f"Headline figure per case under each server interpreter, with its interval; ratios "
        f"are paired speed-ups over {base} (above 1x is better).")]
    for group, kind, rows in run.groups():
        if kind == "primitive":
            continue
        targets = list(dict.fromkeys(row.target for row in rows if row.interpreter != NATIVE))
        body = []
        for target in targets:
            reference = run.find(group, target, base)
            cells = [f"`{target}`"]
            for interpreter in interpreters:
                found = run.find(group, target, interpreter)
                cells.append("-" if found is None else figure_text(found.estimate()))
            for interpreter in interpreters[1:]:
                found = run.find(group, target, interpreter)
                cells.append(ratio_text(paired_speedup(found, reference))
                             if found is not None and reference is not None else "-")
            body.append(cells)
        header = ["target", *interpreters, *(f"{name} vs {base}" for name in interpreters[1:])]
        blocks += [Heading(3, group), Table(header, body)]
    return blocks


def _load_facts(run: Run) -> List[Tuple[str, str]]:
    """The machine's load: at the start and end of the run, and after each echo run."""
    bench = run.machine.get("pollers_bench", {})

    def text(value: Any) -> str:
        return ", ".join(map(str, value)) if value else "?"

    if "load_average_end" in bench:
        facts = [("load average (1, 5, 15 min) at the start",
                  text(bench.get("load_average_start"))),
                 ("load average (1, 5, 15 min) at the end", text(bench.get("load_average_end")))]
    else:  # runs saved before the start was recorded: pytest-benchmark reads it when saving
        facts = [("load average (1, 5, 15 min) at the end", text(bench.get("load_average")))]
    loads = sorted(float(figures["load_average_1min"]) for row in run.rows
                   for figures in row.rounds
                   if isinstance(figures.get("load_average_1min"), (int, float)))
    if loads:
        facts.append(("1-minute load average after each echo run",
                      f"median {statistics.median(loads):.2f}, {loads[0]:.2f} to "
                      f"{loads[-1]:.2f} over {len(loads)} runs (the server and the load "
                      "generator account for up to 2)"))
    return facts


def environment_blocks(run: Run, machine_notes: Sequence[str] = ()) -> List[Block]:
    machine = run.machine
    bench = machine.get("pollers_bench", {})
    cpu = bench.get("cpu_model") or machine.get("cpu", {}).get("brand_raw", "?")

    def cpus(value: Any) -> str:
        if isinstance(value, (list, tuple)):
            return ",".join(map(str, value))
        return str(value)

    pinning = (f"server on CPU {cpus(bench.get('server_cpu'))}, load generator on CPU "
               f"{cpus(bench.get('client_cpu'))}" if bench.get("server_cpu") is not None
               else "none (fewer than two CPUs)")
    if bench.get("server_args"):
        pinning += f"; server options `{bench['server_args']}`"
    if bench.get("realtime"):
        pinning += "; both under SCHED_FIFO (shielded from other work on the machine)"
    _cheap, mode = _mode(run)
    facts = [
        ("machine", f"{machine.get('node', '?')} ({machine.get('machine', '?')})"),
        ("CPU", f"{cpu}, {bench.get('cpu_count', '?')} CPUs"),
        ("kernel", bench.get("kernel") or f"{machine.get('system')} {machine.get('release')}"),
        *_load_facts(run),
        *(("machine during the run", note) for note in machine_notes),
        ("pinning", pinning),
        ("rounds and windows", mode),
        ("pytest ran under", bench.get("pytest_python")
         or f"{machine.get('python_implementation')} {machine.get('python_version')}"),
        ("C compiler", bench.get("compiler", "?")),
        ("runs", ", ".join(f"{source} ({date})" for source, date in zip(run.sources, run.dates))),
    ]
    if run.commits:
        facts.append(("commit", ", ".join(run.commits)))
    for interpreter in bench.get("server_interpreters", []):
        modules = ", ".join(f"{name} {version or 'not installed'}"
                            for name, version in interpreter.get("modules", {}).items())
        facts.append((f"server interpreter {interpreter.get('implementation')} "
                      f"{interpreter.get('version')}",
                      f"`{interpreter.get('executable')}`; {modules}"))
    packages = ", ".join(f"{name} {version}" for name, version in bench.get("packages", {}).items()
                         if version)
    facts.append(("packages (pytest side)", packages or "?"))
    return [Heading(2, "Environment"),
            Table(["", ""], [[name, str(value)] for name, value in facts], text_columns=2)]


def target_blocks(run: Run) -> List[Block]:
    seen = [name for name in TARGETS if any(row.target == name for row in run.rows)]
    return [Heading(2, "Targets"), Table(["target", "family", "what it is"], [
        [f"`{name}`", next(row.family for row in run.rows if row.target == name),
         TARGETS[name].description] for name in seen], text_columns=3)]


# -- comparison ---------------------------------------------------------------------------------


def compare(new: Run, old: Run, threshold: float, on: str = "headline"
            ) -> Tuple[List[Block], List[str]]:
    """The comparison's blocks, and the regressions whose whole interval lies past ``threshold``.

    ``on`` picks the figure that decides: ``headline`` (each case's own figure) or
    ``cpu`` (server CPU per message, steadier on a busy machine; primitives always
    use their headline). The two runs' rounds are unpaired: the ratio is the
    Hodges-Lehmann estimate with its Mann-Whitney interval.
    """
    body = []
    regressions: List[str] = []
    unsure = 0
    for group, kind, rows in new.groups() + new.groups(sections=True):
        for row in rows:
            before = old.find(row.group, row.target, row.interpreter, row.setting)
            if before is None:
                continue
            figure = CPU_FIGURE if on == "cpu" and kind != "primitive" else None
            ratio = unpaired_speedup(row, before, figure)
            if ratio is None:
                continue
            regressed = ratio.complete and ratio.high < 1.0 - threshold
            unsure += 0 if ratio.complete else 1
            reading = verdict(ratio)
            if regressed:
                reading = f"**regression** (all of the interval below {1 - threshold:.2f}x)"
                regressions.append(f"{group}: {row.label} {ratio_text(ratio)}")
            elif not ratio.complete:
                reading += " (too few rounds for a 95% interval)"
            body.append([group, f"`{row.label}`", figure_text(before.estimate(figure)),
                         figure_text(row.estimate(figure)), ratio_text(ratio), reading])
    decided_by = "its headline figure" if on == "headline" else "its server CPU per message"
    blocks: List[Block] = [Heading(2, "Change since the compared run"), Paragraph(
        f"Each case's {decided_by}, now against the compared run: the speed-up (above 1x is "
        "better) is the median of all now/before ratios of the two runs' rounds (Hodges-Lehmann) "
        "with its exact 95% interval (Mann-Whitney); the runs are separate, so their rounds are "
        f"not paired. A regression is flagged only when the whole interval lies below "
        f"{1 - threshold:.2f}x (a loss of more than {threshold:.0%} beyond doubt); an interval "
        "from too few rounds never flags one."),
        Table(["case", "target", "before", "now", "speed-up", "reading"], body, text_columns=2)]
    if unsure:
        blocks.append(Paragraph(f"{unsure} comparisons had too few rounds for a 95% interval "
                                "(five a side are needed)."))
    return blocks, regressions


# -- the whole report -------------------------------------------------------------------------


def build(run: Run, comparison: Optional[List[Block]] = None, notes: Sequence[str] = (),
          machine_notes: Sequence[str] = ()) -> Tuple[Document, Dict[str, Tuple[str, str]]]:
    """The report's document and its charts (group -> (file name, SVG))."""
    charts = case_charts(run.groups() + run.groups(sections=True))
    document = Document(TITLE)
    document.add(Paragraph(
        "Every variant of the project's echo server (`python -m server`) and every hand-written "
        "peer, driven by the same C load generator on its own CPU. See docs/benchmarks.md for "
        "what each figure means."))
    document.add(*summary_blocks(run, notes))
    if comparison:
        document.add(*comparison)
    document.add(*malloc_blocks(run, charts))
    document.add(*costs_blocks(run))
    document.add(*case_blocks(run, charts))
    document.add(*outlier_blocks(run))
    document.add(*idle_blocks(run))
    document.add(*interpreter_blocks(run))
    document.add(*environment_blocks(run, machine_notes))
    document.add(*target_blocks(run))
    return document, charts


def write(run: Run, out: Path, comparison: Optional[List[Block]] = None,
          notes: Sequence[str] = (), machine_notes: Sequence[str] = ()
          ) -> Tuple[Path, Path, int]:
    """Write report.md, its SVG charts and report.html into ``out``; (md, html, charts)."""
    out.mkdir(parents=True, exist_ok=True)
    document, charts = build(run, comparison, notes, machine_notes)
    for name, svg in charts.values():
        (out / name).write_text(svg + "\n")
    if run.costs:
        (out / COSTS_CHART).write_text(costs_chart(run.costs) + "\n")
    markdown, html = out / "report.md", out / "report.html"
    markdown.write_text(to_markdown(document))
    html.write_text(to_html(document))
    return markdown, html, len(charts)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="pytest-benchmark JSON file(s)")
    parser.add_argument("--out", type=Path, required=True,
                        help="directory for report.md, report.html and the charts")
    parser.add_argument("--compare", type=Path, action="append",
                        help="an older run's JSON to compare with (repeatable: merged)")
    parser.add_argument("--threshold", type=float, default=0.05,
                        help="a loss beyond this fraction, with its whole interval past it, is "
                        "a regression (default 0.05)")
    parser.add_argument("--compare-on", choices=("headline", "cpu"), default="headline",
                        help="figure that decides a regression: each case's headline figure "
                        "(default) or the server CPU per message (steadier on a shared machine)")
    parser.add_argument("--note", action="append", default=[],
                        help="a sentence for the summary (repeatable), e.g. how busy the "
                        "machine was")
    parser.add_argument("--machine-note", action="append", default=[],
                        help="a sentence for the environment (repeatable): what else ran on "
                        "the machine during the run")
    parser.add_argument("--slim", type=Path, metavar="OUT.json",
                        help="also write the run cut down to what the report reads, with the "
                        "notes (several inputs are joined into one): the report of OUT.json "
                        "is this report")
    args = parser.parse_args(argv)
    if not 0 <= args.threshold < 1:
        parser.error("--threshold is a fraction between 0 and 1")
    run = load(args.runs)
    if not run.rows:
        parser.exit(2, "no benchmark rows of this project's suites in the given file(s)\n")
    notes = args.note or run.notes
    machine_notes = args.machine_note or run.machine_notes
    if args.slim is not None:
        data = joined([json.loads(path.read_text()) for path in args.runs])
        args.slim.write_text(dump_slim(slim(data, notes, machine_notes)))
    comparison: Optional[List[Block]] = None
    regressions: List[str] = []
    if args.compare:
        comparison, regressions = compare(run, load(args.compare), args.threshold,
                                          args.compare_on)
    markdown, html, charts = write(run, args.out, comparison, notes, machine_notes)
    print(f"wrote {markdown} and {html} ({len(run.rows)} results, {charts} charts)")
    return regressions_status(regressions, f"past {args.threshold:.0%}")


if __name__ == "__main__":
    sys.exit(main())
