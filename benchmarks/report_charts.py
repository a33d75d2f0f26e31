"""The report's charts (matplotlib, Agg, PNG): throughput, latency, server CPU, idle scaling."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from .report_data import Row, Run


class ChartsUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ChartsUnavailable(
            "the report's charts need matplotlib, which is not installed: "
            "pip install matplotlib (it is in the 'bench' dependency group), "
            "or pass --no-charts"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def _labels(groups: Sequence[Tuple[str, str, List[Row]]]) -> List[str]:
    labels: List[str] = []
    for _group, _kind, rows in groups:
        for row in rows:
            if row.label not in labels:
                labels.append(row.label)
    return labels


def _grouped_bars(path: Path, title: str, xlabel: str,
                  groups: Sequence[Tuple[str, str, List[Row]]], figure: str,
                  log: bool = False) -> None:
    """Horizontal bars: one row of bars per target, one colour per case."""
    pyplot = _pyplot()
    labels = _labels(groups)
    if not labels:
        return
    height = 0.8 / max(1, len(groups))
    fig, axes = pyplot.subplots(figsize=(10, 0.45 * len(labels) * max(1, len(groups)) / 1.5 + 1.5))
    for index, (group, _kind, rows) in enumerate(groups):
        values: Dict[str, float] = {row.label: float(row.figures.get(figure) or 0) for row in rows}
        positions = [i + index * height for i in range(len(labels))]
        axes.barh(positions, [values.get(label, 0.0) for label in labels], height=height,
                  label=group)
    axes.set_yticks([i + height * (len(groups) - 1) / 2 for i in range(len(labels))])
    axes.set_yticklabels(labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel(xlabel)
    if log:
        axes.set_xscale("log")
    axes.set_title(title)
    axes.grid(axis="x", alpha=0.3)
    axes.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)


def _latency_chart(path: Path, groups: Sequence[Tuple[str, str, List[Row]]]) -> None:
    """One panel per latency case: p50, p99 and p99.9 per target (log scale)."""
    pyplot = _pyplot()
    if not groups:
        return
    labels = _labels(groups)
    fig, panels = pyplot.subplots(1, len(groups), figsize=(5 * len(groups), 0.35 * len(labels) + 2),
                                  sharey=True, squeeze=False)
    percentiles = (("latency_p50_us", "p50"), ("latency_p99_us", "p99"),
                   ("latency_p999_us", "p99.9"))
    height = 0.8 / len(percentiles)
    for axes, (group, _kind, rows) in zip(panels[0], groups):
        by_label = {row.label: row for row in rows}
        for index, (figure, name) in enumerate(percentiles):
            values = [float(by_label[label].figures.get(figure) or 0) if label in by_label else 0.0
                      for label in labels]
            axes.barh([i + index * height for i in range(len(labels))], values, height=height,
                      label=name)
        axes.set_xscale("log")
        axes.set_title(group, fontsize=9)
        axes.set_xlabel("round trip (us, log)")
        axes.grid(axis="x", alpha=0.3)
    panels[0][0].set_yticks([i + height for i in range(len(labels))])
    panels[0][0].set_yticklabels(labels, fontsize=8)
    panels[0][0].invert_yaxis()
    panels[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)


def _idle_chart(path: Path, groups: Sequence[Tuple[str, str, List[Row]]]) -> None:
    """p50 round trip of the active connection against the number of idle connections."""
    pyplot = _pyplot()
    series: Dict[str, List[Tuple[int, float]]] = {}
    for _group, _kind, rows in groups:
        for row in rows:
            series.setdefault(row.label, []).append(
                (int(row.figures.get("load_idle", 0)), float(row.figures["latency_p50_us"])))
    if not series:
        return
    idle_counts = sorted({idle for points in series.values() for idle, _ in points})
    targets = list(dict.fromkeys(label.split(" (")[0] for label in series))
    interpreters = list(dict.fromkeys(label.partition(" (")[2] for label in series))
    colours = pyplot.get_cmap("tab20")
    fig, axes = pyplot.subplots(figsize=(10, 6))
    for label, points in series.items():
        points.sort()
        target, _, interpreter = label.partition(" (")
        axes.plot([idle_counts.index(idle) for idle, _ in points], [p50 for _, p50 in points],
                  color=colours(targets.index(target) % 20),
                  linestyle=("-", "--", ":", "-.")[interpreters.index(interpreter) % 4],
                  marker="s" if target.startswith("peer-") else "o", label=label)
    axes.set_xticks(range(len(idle_counts)))
    axes.set_xticklabels([f"{count:,}" for count in idle_counts])
    axes.set_xlabel("idle connections open")
    axes.set_ylabel("active connection p50 round trip (us, log)")
    axes.set_yscale("log")
    axes.set_title("Idle scaling")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)


def write_charts(run: Run, out: Path) -> List[Tuple[str, str]]:
    """Write the PNG charts into ``out``; return (title, file name) for those written."""
    groups = run.groups()
    by_kind = {kind: [item for item in groups if item[1] == kind] for kind in
               ("latency", "throughput", "bulk", "idle")}
    written: List[Tuple[str, str]] = []
    echo = by_kind["throughput"] + by_kind["bulk"]
    if by_kind["throughput"]:
        _grouped_bars(out / "throughput.png", "Throughput (1 KiB messages)", "round trips/s",
                      by_kind["throughput"], "round_trips_per_s")
        written.append(("Throughput", "throughput.png"))
    if by_kind["latency"]:
        _latency_chart(out / "latency.png", by_kind["latency"])
        written.append(("Latency percentiles", "latency.png"))
    if echo:
        _grouped_bars(out / "server_cpu.png", "Server CPU per echoed message (lower is better)",
                      "server CPU us per message", echo, "server_cpu_us_per_msg")
        written.append(("Server CPU per message", "server_cpu.png"))
    if by_kind["idle"]:
        _idle_chart(out / "idle_scaling.png", by_kind["idle"])
        written.append(("Idle scaling", "idle_scaling.png"))
    return written
