"""The report's charts: one dot plot per case, as SVG written here (no plotting library).

Each chart has one line per target, sorted best first, and two panels on log
scales: the case's headline figure and the server CPU per message. A line shows
every round as a small dot, outlier rounds as a ring, the median as a large mark
(a filled circle for the project's variants, a hollow diamond for the
hand-written peers) and the median's 95% interval as an error bar. Colours are
the backend families. Every mark carries an SVG ``<title>``, which a browser
shows on hover. The same SVG text is written to a file for the Markdown report
and inlined into the HTML one, so both show the same chart.

SVG rather than matplotlib: the HTML report must be one self-contained file with
hover values, which matplotlib's SVG output does not give without rewriting it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from html import escape
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..suites.cases import HEADLINES
from .data import CPU_FIGURE, Row
from .data import family as target_family
from .stats import interval_text

FAMILY_COLOURS: Dict[str, str] = {
    "selectors": "#1b9e77",
    "asyncio": "#d95f02",
    "tornado": "#7570b3",
    "twisted": "#e7298a",
    "gevent": "#66a61e",
    "C": "#555555",
}
SPARE_COLOURS = ("#e6ab02", "#a6761d", "#1f78b4", "#b15928")
OUTLIER_COLOUR = "#c00000"
FOREIGN_COLOUR = "#e08000"

LABEL_WIDTH = 330
PANEL_WIDTH = 300
PANEL_GAP = 30
LINE_HEIGHT = 20
TOP = 70
BOTTOM = 46
FONT = "font-family=\"DejaVu Sans, Arial, sans-serif\""


def family_colour(name: str, known: Optional[List[str]] = None) -> str:
    if name in FAMILY_COLOURS:
        return FAMILY_COLOURS[name]
    others = sorted(known or [name])
    index = others.index(name) if name in others else 0
    return SPARE_COLOURS[index % len(SPARE_COLOURS)]


def number_text(value: float) -> str:
    """Thousands separators; three significant digits below 1,000."""
    if math.isnan(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


@dataclass
class LogAxis:
    """A log-scale x axis from ``low`` to ``high`` drawn ``width`` pixels wide at ``left``."""

    low: float
    high: float
    left: float
    width: float

    @classmethod
    def around(cls, values: Sequence[float], left: float, width: float) -> LogAxis:
        positive = [v for v in values if v > 0 and not math.isnan(v)] or [1.0]
        low, high = min(positive), max(positive)
        if high / low < 1.5:  # a narrow range still gets some room on each side
            middle = math.sqrt(low * high)
            low, high = middle / 1.25, middle * 1.25
        return cls(low / 1.08, high * 1.08, left, width)

    def x(self, value: float) -> float:
        value = min(max(value, self.low), self.high)
        span = math.log(self.high) - math.log(self.low)
        return self.left + (math.log(value) - math.log(self.low)) / span * self.width

    def ticks(self) -> List[float]:
        """1, 2 and 5 times powers of ten inside the axis; finer steps on a narrow axis."""
        found: List[float] = []
        for steps in ((1, 2, 5), (1, 1.5, 2, 3, 5, 7)):
            found = []
            for exponent in range(math.floor(math.log10(self.low)) - 1,
                                  math.ceil(math.log10(self.high)) + 1):
                for step in steps:
                    value = step * 10.0 ** exponent
                    if self.low <= value <= self.high:
                        found.append(value)
            if len(found) >= 3:
                return found
        if len(found) < 3:  # a narrow axis: ticks at its ends and middle instead
            middle = math.sqrt(self.low * self.high)
            found = [self.low * 1.04, middle, self.high / 1.04]
        return found


def _tick_text(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.3g}"
    return f"{value:.2g}"


def _title(text: str) -> str:
    return f"<title>{escape(text)}</title>"


def _panel(parts: List[str], rows: Sequence[Row], figure: str, axis_label: str, unit: str,
           axis: LogAxis, colours: Dict[str, str], height: float) -> None:
    bottom = TOP + height
    parts.append(f'<g class="panel" data-figure="{escape(figure)}">')
    parts.append(f'<rect x="{axis.left:.1f}" y="{TOP - 6}" width="{axis.width:.1f}" '
                 f'height="{height + 6:.1f}" fill="#fafafa" stroke="#cccccc"/>')
    for tick in axis.ticks():
        x = axis.x(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="{bottom:.1f}" '
                     f'stroke="#e3e3e3"/>')
        parts.append(f'<text x="{x:.1f}" y="{bottom + 14:.1f}" text-anchor="middle" '
                     f'font-size="10" fill="#333">{escape(_tick_text(tick))}</text>')
    parts.append(f'<text x="{axis.left + axis.width / 2:.1f}" y="{bottom + 32:.1f}" '
                 f'text-anchor="middle" font-size="11" fill="#222">{escape(axis_label)}</text>')
    for index, row in enumerate(rows):
        y = TOP + index * LINE_HEIGHT + LINE_HEIGHT / 2
        colour = colours[row.family]
        numbered = sorted(row.by_round(figure).items())
        outlying = {number for number, _value in row.outlier_rounds(figure)}
        foreign = row.by_round("foreign_cpu_pct")
        unclean = row.unclean_rounds()
        for number, value in numbered:
            x = axis.x(value)
            hover = f"{row.label}, round {number}: {number_text(value)} {unit}"
            if number in foreign:
                hover += f"; foreign CPU {foreign[number]:.1f}%"
            if number in unclean:
                hover += " (no clean window)"
                parts.append(f'<path class="foreign" d="M{x:.1f},{y - 9:.1f} '
                             f'L{x + 3.5:.1f},{y - 3:.1f} L{x - 3.5:.1f},{y - 3:.1f} Z" '
                             f'fill="{FOREIGN_COLOUR}">{_title(hover)}</path>')
            if number in outlying:
                parts.append(f'<circle class="outlier" cx="{x:.1f}" cy="{y:.1f}" r="4.5" '
                             f'fill="none" stroke="{OUTLIER_COLOUR}" stroke-width="1.5">'
                             f'{_title(hover + " (outlier round)")}</circle>')
            else:
                parts.append(f'<circle class="round" cx="{x:.1f}" cy="{y + 5:.1f}" r="2.4" '
                             f'fill="{colour}" fill-opacity="0.6">{_title(hover)}</circle>')
        estimate = row.estimate(figure)
        if not estimate.count:
            continue
        low, high, mid = axis.x(estimate.low), axis.x(estimate.high), axis.x(estimate.value)
        hover = _title(f"{row.label}: median {interval_text(estimate)} {unit}, "
                       f"95% interval in brackets, {estimate.count} rounds")
        parts.append(f'<g class="estimate">{hover}'
                     f'<line x1="{low:.1f}" y1="{y:.1f}" x2="{high:.1f}" y2="{y:.1f}" '
                     f'stroke="{colour}" stroke-width="1.6"/>'
                     f'<line x1="{low:.1f}" y1="{y - 4:.1f}" x2="{low:.1f}" y2="{y + 4:.1f}" '
                     f'stroke="{colour}" stroke-width="1.6"/>'
                     f'<line x1="{high:.1f}" y1="{y - 4:.1f}" x2="{high:.1f}" y2="{y + 4:.1f}" '
                     f'stroke="{colour}" stroke-width="1.6"/>')
        if row.is_peer:
            parts.append(f'<path d="M{mid:.1f},{y - 5.5:.1f} L{mid + 5.5:.1f},{y:.1f} '
                         f'L{mid:.1f},{y + 5.5:.1f} L{mid - 5.5:.1f},{y:.1f} Z" fill="#ffffff" '
                         f'stroke="{colour}" stroke-width="2"/>')
        else:
            parts.append(f'<circle cx="{mid:.1f}" cy="{y:.1f}" r="4.5" fill="{colour}" '
                         f'stroke="#ffffff" stroke-width="0.8"/>')
        parts.append('</g>')
    parts.append('</g>')


def sort_best_first(rows: Sequence[Row]) -> List[Row]:
    """Rows by their headline median, the best first (highest rate, lowest time)."""
    def key(row: Row) -> float:
        value = row.headline
        if math.isnan(value):
            return math.inf
        return -value if row.higher_is_better else value

    return sorted(rows, key=key)


def case_chart(title: str, kind: str, rows: Sequence[Row]) -> str:
    """The SVG dot plot of one case (``rows`` in any order; drawn best first)."""
    ordered = sort_best_first([row for row in rows if row.rounds])
    figure, label, unit, higher = HEADLINES[kind]
    families = sorted({row.family for row in ordered})
    colours = {name: family_colour(name, families) for name in families}
    height = max(1, len(ordered)) * LINE_HEIGHT
    total_width = LABEL_WIDTH + 2 * PANEL_WIDTH + PANEL_GAP + 20
    total_height = TOP + height + BOTTOM
    headline_axis = LogAxis.around([v for row in ordered for v in row.values(figure)],
                                   LABEL_WIDTH, PANEL_WIDTH)
    cpu_axis = LogAxis.around([v for row in ordered for v in row.values(CPU_FIGURE)],
                              LABEL_WIDTH + PANEL_WIDTH + PANEL_GAP, PANEL_WIDTH)
    better = "higher is better" if higher else "lower is better"
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
             f'width="{total_width}" height="{total_height:.0f}" '
             f'viewBox="0 0 {total_width} {total_height:.0f}" {FONT} '
             f'data-case="{escape(title)}">',
             _title(f"{title}: {len(ordered)} targets, best first"),
             f'<rect width="{total_width}" height="{total_height:.0f}" fill="#ffffff"/>',
             f'<text x="8" y="18" font-size="13" font-weight="bold" fill="#111">'
             f'{escape(title)}</text>']
    legend_x = 8.0
    for name in families:
        parts.append(f'<circle cx="{legend_x + 5:.1f}" cy="36" r="4.5" fill="{colours[name]}"/>'
                     f'<text x="{legend_x + 13:.1f}" y="40" font-size="10.5" fill="#222">'
                     f'{escape(name)}</text>')
        legend_x += 22 + 6.5 * len(name)
    legend_x += 10
    parts.append(f'<circle cx="{legend_x + 5:.1f}" cy="36" r="4.5" fill="#888"/>'
                 f'<text x="{legend_x + 13:.1f}" y="40" font-size="10.5" fill="#222">variant</text>'
                 f'<path d="M{legend_x + 70:.1f},30.5 L{legend_x + 75.5:.1f},36 '
                 f'L{legend_x + 70:.1f},41.5 L{legend_x + 64.5:.1f},36 Z" fill="#fff" '
                 f'stroke="#888" stroke-width="2"/>'
                 f'<text x="{legend_x + 79:.1f}" y="40" font-size="10.5" fill="#222">'
                 f'hand-written peer</text>'
                 f'<text x="8" y="56" font-size="10.5" fill="#222">large mark: the median; '
                 f'bar: its 95% interval; small dots: the rounds; red ring: an outlier '
                 f'round; orange triangle: a round with no clean window (foreign CPU). '
                 f'Hover a mark for its value.</text>')
    for index, row in enumerate(ordered):
        y = TOP + index * LINE_HEIGHT + LINE_HEIGHT / 2 + 4
        style = ' font-style="italic"' if row.is_peer else ""
        name = row.label if len(row.label) <= 52 else row.label[:51] + "\u2026"
        parts.append(f'<text x="{LABEL_WIDTH - 8}" y="{y:.1f}" text-anchor="end" '
                     f'font-size="11" fill="{colours[row.family]}"{style}>'
                     f'{_title(row.label)}{escape(name)}</text>')
    _panel(parts, ordered, figure, f"{label} ({unit}, log scale; {better})", unit,
           headline_axis, colours, height)
    _panel(parts, ordered, CPU_FIGURE, "server CPU per message (us, log scale; lower is "
           "better)", "us/msg", cpu_axis, colours, height)
    parts.append("</svg>")
    return "\n".join(parts)


COSTS_CHART = "chart-costs.svg"


def costs_chart(costs: Sequence[Dict[str, Any]]) -> str:
    """The SVG of the deterministic costs: per target (fewest instructions first) a bar of
    its user-space instructions per message (log scale) and one of its system calls per
    message (linear), each with its value on hover."""
    def instructions(figures: Dict[str, Any]) -> float:
        value = figures.get("instructions_per_msg")
        return float(value) if isinstance(value, (int, float)) else math.inf

    ordered = sorted(costs, key=lambda figures: (instructions(figures),
                                                 str(figures.get("target"))))
    families = sorted({target_family(str(f.get("target"))) for f in ordered})
    colours = {name: family_colour(name, families) for name in families}
    height = max(1, len(ordered)) * LINE_HEIGHT
    total_width = LABEL_WIDTH + 2 * PANEL_WIDTH + PANEL_GAP + 20
    total_height = TOP + height + BOTTOM
    counted = [instructions(f) for f in ordered if instructions(f) < math.inf]
    axis = LogAxis.around([*counted, min(counted, default=10.0) / 2], LABEL_WIDTH, PANEL_WIDTH)
    calls = [float(f["syscalls_per_msg"]) for f in ordered
             if isinstance(f.get("syscalls_per_msg"), (int, float))]
    most = max([*calls, 1.0]) * 1.1
    left = LABEL_WIDTH + PANEL_WIDTH + PANEL_GAP
    title = "deterministic costs per message"
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart costs" role="img" '
             f'width="{total_width}" height="{total_height:.0f}" '
             f'viewBox="0 0 {total_width} {total_height:.0f}" {FONT} '
             f'data-case="{escape(title)}">',
             _title(f"{title}: {len(ordered)} targets, fewest instructions first"),
             f'<rect width="{total_width}" height="{total_height:.0f}" fill="#ffffff"/>',
             f'<text x="8" y="18" font-size="13" font-weight="bold" fill="#111">'
             f'{escape(title)} (fewest instructions first)</text>',
             '<text x="8" y="40" font-size="10.5" fill="#222">user-space instructions '
             '(callgrind) and system calls (strace) of the server per echoed message; '
             'the colour is the backend family. Hover a bar for its value.</text>']
    for panel_left, label in ((LABEL_WIDTH, "instructions per message (log scale)"),
                              (left, "system calls per message")):
        parts.append(f'<rect x="{panel_left:.1f}" y="{TOP - 6}" width="{PANEL_WIDTH}" '
                     f'height="{height + 6:.1f}" fill="#fafafa" stroke="#cccccc"/>'
                     f'<text x="{panel_left + PANEL_WIDTH / 2:.1f}" y="{TOP + height + 32:.1f}" '
                     f'text-anchor="middle" font-size="11" fill="#222">{escape(label)}</text>')
    for tick in axis.ticks():
        x = axis.x(tick)
        parts.append(f'<text x="{x:.1f}" y="{TOP + height + 14:.1f}" text-anchor="middle" '
                     f'font-size="10" fill="#333">{escape(_tick_text(tick))}</text>')
    for step in range(int(most) + 1):
        x = left + step / most * PANEL_WIDTH
        parts.append(f'<text x="{x:.1f}" y="{TOP + height + 14:.1f}" text-anchor="middle" '
                     f'font-size="10" fill="#333">{step}</text>')
    for index, figures in enumerate(ordered):
        y = TOP + index * LINE_HEIGHT
        name = f"{figures.get('target')} ({figures.get('interpreter')})"
        colour = colours[target_family(str(figures.get("target")))]
        parts.append(f'<text x="{LABEL_WIDTH - 8}" y="{y + 14:.1f}" text-anchor="end" '
                     f'font-size="11" fill="{colour}">{escape(name)}</text>')
        value = instructions(figures)
        if value < math.inf:
            width = axis.x(value) - LABEL_WIDTH
            parts.append(f'<rect class="bar" x="{LABEL_WIDTH}" y="{y + 4:.1f}" '
                         f'width="{width:.1f}" height="{LINE_HEIGHT - 8}" fill="{colour}">'
                         f'{_title(f"{name}: {value:,.0f} instructions per message")}</rect>')
        count = figures.get("syscalls_per_msg")
        if isinstance(count, (int, float)):
            width = float(count) / most * PANEL_WIDTH
            by_name = ", ".join(f"{key} {number:.3f}" for key, number in
                                (figures.get("syscalls_by_name") or {}).items())
            parts.append(f'<rect class="bar" x="{left}" y="{y + 4:.1f}" width="{width:.1f}" '
                         f'height="{LINE_HEIGHT - 8}" fill="{colour}">'
                         f'{_title(f"{name}: {float(count):.3f} system calls ({by_name})")}'
                         '</rect>')
    parts.append("</svg>")
    return "\n".join(parts)


def chart_file_name(group: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", group.lower()).strip("-")
    return f"chart-{slug}.svg"


def case_charts(groups: Sequence[Tuple[str, str, List[Row]]]) -> Dict[str, Tuple[str, str]]:
    """group -> (file name, SVG text) for every echo case."""
    return {group: (chart_file_name(group), case_chart(group, kind, rows))
            for group, kind, rows in groups if kind != "primitive"}
