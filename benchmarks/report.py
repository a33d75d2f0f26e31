"""Turn saved pytest-benchmark JSON into a Markdown report with charts, and compare two runs.

    python -m benchmarks.report RUN.json [MORE.json ...] --out DIR
    python -m benchmarks.report RUN.json --compare OLD.json --threshold 0.1 --out DIR \
        [--compare-on headline|cpu]

Writes ``DIR/report.md`` (and PNG charts beside it): the machine, CPU, kernel,
interpreters and package versions at the top; per case a table of every variant
and peer with its figures and its speed-up over the hand-written raw selectors
loop and over uvloop's Protocol echo; the idle-scaling table; CPython beside
PyPy when the runs include both. With ``--compare``, the change of every case's
headline figure, with the regressions past ``--threshold`` flagged; the exit
status is then 1 if there is any regression.

Several JSON files may be given (for example a CPython run and a PyPy run);
their rows are merged.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .cases import HEADLINES
from .report_charts import ChartsUnavailable, write_charts
from .report_data import BASELINES, NATIVE, Row, Run, cpu_speedup, load, speedup
from .targets import TARGETS


def _number(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    value = float(value)
    if math.isnan(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _ratio(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], text_columns: int = 1
           ) -> List[str]:
    """A Markdown table; the first ``text_columns`` are left-aligned, the figures right-aligned."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < text_columns else "---:" for i in range(len(header)))
             + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _machine(run: Run) -> List[str]:
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
    facts = [
        ("machine", f"{machine.get('node', '?')} ({machine.get('machine', '?')})"),
        ("CPU", f"{cpu}, {bench.get('cpu_count', '?')} CPUs"),
        ("kernel", bench.get("kernel") or f"{machine.get('system')} {machine.get('release')}"),
        ("pinning", pinning),
        ("measured window / warm-up",
         f"{bench.get('duration_s', '?')} s / {bench.get('warmup_s', '?')} s per echo case"),
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
    rows = [[name, str(value)] for name, value in facts]
    return ["## Machine", "", *_table(["", ""], rows, text_columns=2), ""]


def _echo_table(run: Run, kind: str, rows: List[Row]) -> List[str]:
    _figure, label, unit, _higher = HEADLINES[kind]
    header = ["target", "round trips/s", "MB/s", "p50 us", "p99 us", "p99.9 us",
              "server CPU us/msg", "x raw selectors", "x uvloop Protocol",
              "CPU x raw selectors", "CPU x uvloop Protocol", "client-bound"]
    body = []
    for row in rows:
        raw, uv = (run.baseline(row, name) for name in BASELINES)
        f = row.figures
        body.append([
            f"`{row.label}`", _number(f.get("round_trips_per_s"), 0), _number(f.get("mb_per_s")),
            _number(f.get("latency_p50_us")), _number(f.get("latency_p99_us")),
            _number(f.get("latency_p999_us")), _number(f.get("server_cpu_us_per_msg"), 2),
            _ratio(speedup(row, raw)), _ratio(speedup(row, uv)),
            _ratio(cpu_speedup(row, raw)), _ratio(cpu_speedup(row, uv)),
            "**yes**" if row.client_bound else "no",
        ])
    note = (f"Ratios compare the headline figure ({label}, {unit}) and the server CPU per message "
            "with the raw selectors peer and uvloop's Protocol peer; above 1x is better.")
    return [*_table(header, body), "", note, ""]


def _primitive_table(rows: List[Row]) -> List[str]:
    fastest = min((row.headline for row in rows if row.headline > 0), default=math.nan)
    body = [[f"`{row.target}`", row.interpreter, _number(row.figures.get("mean_ns"), 0),
             _number(row.figures.get("median_ns"), 0), _number(row.figures.get("min_ns"), 0),
             _ratio(fastest / row.headline if row.headline > 0 else None)]
            for row in rows]
    header = ["variant", "python", "mean ns", "median ns", "min ns", "x fastest"]
    return [*_table(header, body, text_columns=2), ""]


def _idle_scaling(run: Run, groups: List[Tuple[str, str, List[Row]]]) -> List[str]:
    idle_groups = [(group, rows) for group, kind, rows in groups if kind == "idle"]
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
              f"p50 {counts[-1]:,} / {counts[0]:,}", f"server CPU us/msg, {counts[-1]:,} idle",
              f"server RSS KiB per connection, {counts[-1]:,} idle"]
    body = []
    for label in labels:
        first, last = cells.get((label, counts[0])), cells.get((label, counts[-1]))
        growth = (last.headline / first.headline if first is not None and last is not None
                  and first.headline > 0 else None)
        body.append([
            f"`{label}`",
            *(_number(cells[(label, count)].headline) if (label, count) in cells else "skipped"
              for count in counts),
            _ratio(growth),
            _number(last.server_cpu, 2) if last is not None else "-",
            _number(last.figures.get("rss_kib_per_connection"), 2) if last is not None else "-",
        ])
    return ["## Idle scaling", "",
            "One active connection (1 KiB, one message in flight) while idle connections stay "
            "open; select and poll scan every descriptor on every pass, epoll and kqueue do not.",
            "", *_table(header, body), ""]


def _interpreters_side_by_side(run: Run, groups: List[Tuple[str, str, List[Row]]]) -> List[str]:
    interpreters = run.interpreters()
    if len(interpreters) < 2:
        return []
    base = interpreters[0]
    lines = ["## Interpreters side by side", "",
             f"Headline figure per case under each server interpreter; ratios are speed-ups "
             f"over {base} (above 1x is better). Server CPU us/msg in brackets.", ""]
    for group, kind, rows in groups:
        if kind == "primitive":
            continue
        targets: List[str] = []
        for row in rows:
            if row.interpreter != NATIVE and row.target not in targets:
                targets.append(row.target)
        body = []
        for target in targets:
            cells = [f"`{target}`"]
            reference = run.find(group, target, base)
            for interpreter in interpreters:
                found = run.find(group, target, interpreter)
                cells.append("-" if found is None else
                             f"{_number(found.headline)} ({_number(found.server_cpu, 2)})")
            for interpreter in interpreters[1:]:
                found = run.find(group, target, interpreter)
                cells.append(_ratio(speedup(found, reference)) if found is not None else "-")
            body.append(cells)
        header = ["target", *interpreters, *(f"{name} vs {base}" for name in interpreters[1:])]
        lines += [f"### {group}", "", *_table(header, body), ""]
    return lines


def _client_bound_summary(run: Run) -> List[str]:
    echo = [row for row in run.rows if row.kind != "primitive"]
    bound = [row for row in echo if row.client_bound]
    lines = ["## Was the load generator the bottleneck?", ""]
    if not bound:
        lines.append(f"No: in all {len(echo)} echo runs the server used more CPU than the load "
                     "generator.")
    else:
        lines.append(f"{len(bound)} of {len(echo)} echo runs were client-bound (the load "
                     "generator used more CPU than the server); their rates understate the "
                     "server, but their server CPU per message stays valid:")
        lines.append("")
        lines.extend(f"- {row.group}: `{row.label}`" for row in bound)
        lines += ["", "With one connection and one message in flight (the latency and idle cases) "
                  "both sides mostly wait for each other, so there the flag says little; it "
                  "matters for the throughput and bulk cases."]
    return [*lines, ""]


def _change(value: Optional[float]) -> str:
    return "-" if value is None else f"{value - 1.0:+.1%}"


def compare(new: Run, old: Run, threshold: float, on: str = "headline"
            ) -> Tuple[List[str], List[str]]:
    """Markdown lines of the comparison, and the regressions past ``threshold``.

    ``on`` picks the figure that decides a regression: ``headline`` (each case's
    own figure) or ``cpu`` (server CPU per message, steadier on a busy machine;
    primitives always use their headline).
    """
    body = []
    regressions: List[str] = []
    for group, kind, rows in new.groups():
        for row in rows:
            before = old.find(row.group, row.target, row.interpreter)
            if before is None:
                continue
            headline, cpu = speedup(row, before), cpu_speedup(row, before)
            decisive = cpu if on == "cpu" and kind != "primitive" else headline
            regressed = decisive is not None and decisive - 1.0 < -threshold
            if regressed:
                regressions.append(f"{group}: {row.label} {_change(decisive)}")
            body.append([group, f"`{row.label}`", _number(before.headline), _number(row.headline),
                         _change(headline), _change(cpu), "**regression**" if regressed else ""])
    decided_by = "the headline figure" if on == "headline" else "the server CPU per message"
    lines = ["## Change since the compared run", "",
             f"Changes are speed-ups (positive is better). A loss of more than {threshold:.0%} "
             f"in {decided_by} is flagged as a regression.", "",
             *_table(["case", "target", "before", "now", "change", "server CPU change", ""],
                     body, text_columns=2), ""]
    return lines, regressions


def render(run: Run, charts: List[Tuple[str, str]], comparison: Optional[List[str]]) -> str:
    groups = run.groups()
    lines = ["# pollers benchmark report", ""]
    lines += ["Every variant of the project's echo server (`python -m server`) and every "
              "hand-written peer, driven by the same C load generator on its own CPU. "
              "`client-bound` marks a run whose load generator used more CPU than the server. "
              "See docs/benchmarks.md for what each figure means.", ""]
    lines += _machine(run)
    lines += _client_bound_summary(run)
    if comparison:
        lines += comparison
    lines += ["## Cases", ""]
    for group, kind, rows in groups:
        if kind == "idle":
            continue
        lines += [f"### {group}", ""]
        lines += _primitive_table(rows) if kind == "primitive" else _echo_table(run, kind, rows)
    lines += _idle_scaling(run, groups)
    lines += _interpreters_side_by_side(run, groups)
    if charts:
        lines += ["## Charts", ""]
        lines += [f"### {title}\n\n![{title}]({name})\n" for title, name in charts]
    seen = sorted({row.target for row in run.rows if row.target in TARGETS},
                  key=lambda name: list(TARGETS).index(name))
    lines += ["## Targets", "",
              *_table(["target", "what it is"],
                      [[f"`{name}`", TARGETS[name].description] for name in seen],
                      text_columns=2), ""]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="pytest-benchmark JSON file(s)")
    parser.add_argument("--out", type=Path, required=True,
                        help="directory for report.md and the charts")
    parser.add_argument("--compare", type=Path, action="append",
                        help="an older run's JSON to compare with (repeatable: merged)")
    parser.add_argument("--threshold", type=float, default=0.1,
                        help="a loss larger than this fraction is a regression (default 0.1)")
    parser.add_argument("--compare-on", choices=("headline", "cpu"), default="headline",
                        help="figure that decides a regression: each case's headline figure "
                        "(default) or the server CPU per message (steadier on a shared machine)")
    parser.add_argument("--no-charts", action="store_true", help="skip the matplotlib charts")
    args = parser.parse_args(argv)
    run = load(args.runs)
    if not run.rows:
        parser.exit(2, "no benchmark rows of this project's suites in the given file(s)\n")
    args.out.mkdir(parents=True, exist_ok=True)
    charts: List[Tuple[str, str]] = []
    if not args.no_charts:
        try:
            charts = write_charts(run, args.out)
        except ChartsUnavailable as exc:
            parser.exit(2, f"error: {exc}\n")
    comparison: Optional[List[str]] = None
    regressions: List[str] = []
    if args.compare:
        comparison, regressions = compare(run, load(args.compare), args.threshold,
                                          args.compare_on)
    report = args.out / "report.md"
    report.write_text(render(run, charts, comparison))
    print(f"wrote {report} ({len(run.rows)} results, {len(charts)} charts)")
    if regressions:
        print(f"{len(regressions)} regression(s) past {args.threshold:.0%}:", file=sys.stderr)
        for line in regressions:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
