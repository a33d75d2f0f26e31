"""The report: its summary, charts, intervals and the regression rule, from saved runs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import List

import pytest

from benchmarks.report import main
from benchmarks.reporting.charts import COSTS_CHART
from benchmarks.reporting.data import load, paired_speedup
from benchmarks.reporting.fixtures import EXAMPLE, foreign_and_costs_run, write_run

SVG = "{http://www.w3.org/2000/svg}"


def _summary(markdown: str) -> List[str]:
    section = markdown.split("## Summary", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ")][1:]


def test_the_example_report_opens_with_a_summary_row_per_case(tmp_path: Path) -> None:
    assert main([str(EXAMPLE), "--out", str(tmp_path)]) == 0
    markdown = (tmp_path / "report.md").read_text()
    run = load([EXAMPLE])
    cases = [group for group, kind, _rows in run.groups() if kind != "primitive"]
    rows = _summary(markdown)
    assert [row.split(" | ")[0].lstrip("| ") for row in rows] == cases
    assert markdown.index("## Summary") < markdown.index("## Cases") < markdown.index(
        "## Environment")
    assert "glibc malloc" in markdown


def test_every_case_has_a_sorted_dot_plot_with_intervals_and_hover_values(
        tmp_path: Path) -> None:
    assert main([str(EXAMPLE), "--out", str(tmp_path)]) == 0
    run = load([EXAMPLE])
    charts = sorted(path for path in tmp_path.glob("chart-*.svg") if path.name != COSTS_CHART)
    echo_groups = [g for g, kind, _r in run.groups() + run.groups(sections=True)
                   if kind != "primitive"]
    assert len(charts) == len(echo_groups)
    for chart in charts:
        root = ElementTree.parse(chart).getroot()
        group = root.get("data-case")
        rows = next(r for g, _k, r in run.groups() + run.groups(sections=True) if g == group)
        estimates = root.findall(f".//{SVG}g[@class='estimate']")
        assert len(estimates) == 2 * len(rows)  # both panels
        medians = [float(e.find(f"{SVG}title").text.split("median ")[1].split()[0]  # type: ignore[union-attr]
                         .replace(",", "")) for e in estimates[:len(rows)]]
        better_first = sorted(medians, reverse=rows[0].higher_is_better)
        assert medians == better_first
        axis_labels = [t.text or "" for t in root.iter(f"{SVG}text")
                       if "log scale" in (t.text or "")]
        assert len(axis_labels) == 2 and all("(" in label for label in axis_labels)
        assert len(root.findall(f".//{SVG}circle[@class='round']")) + len(
            root.findall(f".//{SVG}circle[@class='outlier']")) == 2 * sum(
            len(r.rounds) for r in rows)


def test_a_tie_reads_no_difference_and_a_clear_win_gives_its_interval(tmp_path: Path) -> None:
    drift = [1.0, 0.8, 1.2, 0.9, 1.1, 1.05]
    run_path = write_run(tmp_path / "run.json", {
        "selectors-epoll": [100_000 * d for d in drift],
        "peer-selectors": [100_000 * d * f for d, f in zip(drift, [1.01, 0.99, 1.0, 1.02, 0.98,
                                                                     1.0])],
        "tornado": [80_000 * d for d in drift],
    })
    out = tmp_path / "report"
    assert main([str(run_path), "--out", str(out)]) == 0
    row = _summary((out / "report.md").read_text())[0]
    assert "| no difference measured over `" in row
    assert ("`selectors-epoll` ≈ `peer-selectors` > `tornado`" in row
            or "`peer-selectors` ≈ `selectors-epoll` > `tornado`" in row)
    run = load([run_path])
    epoll, tornado = (run.find(run.rows[0].group, name, "CPython 3.11.7")
                      for name in ("selectors-epoll", "tornado"))
    assert epoll is not None and tornado is not None
    margin = paired_speedup(epoll, tornado)
    assert margin is not None and margin.low == pytest.approx(1.25)


@pytest.mark.parametrize(("factor", "status"), [(0.5, 1), (0.97, 0), (1.2, 0)])
def test_compare_flags_a_regression_only_when_its_interval_lies_past_the_threshold(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], factor: float, status: int) -> None:
    old_rates = [100_000.0, 97_000.0, 103_000.0, 99_000.0, 101_000.0, 98_500.0]
    old = write_run(tmp_path / "old.json", {"selectors-epoll": old_rates})
    new = write_run(tmp_path / "new.json",
                    {"selectors-epoll": [r * factor for r in reversed(old_rates)]})
    code = main([str(new), "--compare", str(old), "--threshold", "0.05",
                 "--out", str(tmp_path / "cmp")])
    assert code == status
    text = (tmp_path / "cmp" / "report.md").read_text()
    assert ("**regression**" in text) == (status == 1)
    if status:
        assert "regression(s)" in capsys.readouterr().err


def test_compare_never_flags_from_too_few_rounds(tmp_path: Path) -> None:
    old = write_run(tmp_path / "old.json", {"selectors-epoll": [100_000.0, 101_000.0]})
    new = write_run(tmp_path / "new.json", {"selectors-epoll": [50_000.0, 51_000.0]})
    assert main([str(new), "--compare", str(old), "--out", str(tmp_path / "cmp")]) == 0
    assert "too few rounds" in (tmp_path / "cmp" / "report.md").read_text()


def test_the_cheap_mode_says_so(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run.json", {"selectors-epoll": [1.0e5, 1.1e5, 0.9e5]},
                    machine={"cheap": True, "duration_s": 0.3})
    assert main([str(run), "--out", str(tmp_path / "r")]) == 0
    text = (tmp_path / "r" / "report.md").read_text()
    assert "**Cheap mode**" in text and "[75% interval]" in text


def test_the_html_report_is_one_file_that_loads_nothing(tmp_path: Path) -> None:
    assert main([str(EXAMPLE), "--out", str(tmp_path)]) == 0
    html = (tmp_path / "report.html").read_text()
    assert html.count("<svg ") == len(list(tmp_path.glob("chart-*.svg")))
    assert "default-src 'none'" in html
    for needle in ("src=\"http", "href=\"http", "<link", "@import", "url("):
        assert needle not in html
    assert json.loads(EXAMPLE.read_text())["machine_info"]["node"] in html


def test_the_environment_says_how_loaded_the_machine_was(tmp_path: Path) -> None:
    run_path = write_run(tmp_path / "run.json", {"selectors-epoll": [1.0e5] * 6},
                         machine={"load_average_start": [0.5, 0.4, 0.3],
                                  "load_average_end": [3.25, 2.5, 1.75]})
    data = json.loads(run_path.read_text())
    for entry, one_minute in zip(data["benchmarks"], [2.0, 4.0, 3.0, 2.5, 3.5, 1.5]):
        entry["extra_info"]["load_average_1min"] = one_minute
    run_path.write_text(json.dumps(data))
    out = tmp_path / "report"
    assert main([str(run_path), "--out", str(out), "--machine-note",
                 "shared with three test suites"]) == 0
    environment = (out / "report.md").read_text().split("## Environment", 1)[1]
    assert "| load average (1, 5, 15 min) at the start | 0.5, 0.4, 0.3 |" in environment
    assert "| load average (1, 5, 15 min) at the end | 3.25, 2.5, 1.75 |" in environment
    assert ("| 1-minute load average after each echo run | median 2.75, 1.50 to 4.00 over 6 "
            "runs") in environment
    assert "| machine during the run | shared with three test suites |" in environment
    assert "shared with three test suites" in (out / "report.html").read_text()


def test_the_example_report_is_rebuilt_byte_for_byte_from_its_slim_json(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The committed report is what `benchmarks.report` makes of the committed bench.json
    alone (its notes are kept in it), so the example cannot drift from its data."""
    folder = EXAMPLE.parent
    monkeypatch.chdir(folder.parents[1])  # the report names its source as given
    assert main([str(EXAMPLE.relative_to(folder.parents[1])), "--out", str(tmp_path)]) == 0
    made = sorted(path.name for path in tmp_path.iterdir())
    committed = sorted(path.name for path in folder.iterdir() if path.name != "bench.json")
    assert made == committed
    for name in made:
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes(), name


def test_the_slim_json_keeps_the_report_and_drops_the_copies(tmp_path: Path) -> None:
    from benchmarks.reporting.data import NOTES_KEY

    data = json.loads(EXAMPLE.read_text())
    assert NOTES_KEY in data["machine_info"]
    for entry in data["benchmarks"]:
        assert set(entry) <= {"group", "name", "extra_info", "stats"}
        assert "data" not in entry.get("stats", {})
    # One line of the figures the report reads per round, no copies: under 1 KB a round.
    assert EXAMPLE.stat().st_size < 1000 * len(data["benchmarks"]) + 50_000
    again = tmp_path / "again.json"
    assert main([str(EXAMPLE), "--out", str(tmp_path / "a"), "--slim", str(again)]) == 0
    assert json.loads(again.read_text()) == data  # slimming is idempotent


def test_slim_joins_several_runs_into_one(tmp_path: Path) -> None:
    """A costs-only run under another interpreter joins a full run: one slim file holds
    the entries of both, and rebuilds the report the two files make."""
    data = json.loads(EXAMPLE.read_text())
    entries = data["benchmarks"]
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_text(json.dumps({**data, "benchmarks": entries[: len(entries) // 2]}))
    second.write_text(json.dumps({**data, "benchmarks": entries[len(entries) // 2 :]}))
    joined = tmp_path / "joined.json"
    two = [str(first), str(second), "--out", str(tmp_path / "two"), "--slim", str(joined)]
    assert main(two) == 0
    assert json.loads(joined.read_text())["benchmarks"] == entries
    # A case run again replaces the rounds it ran again, as the report would read them.
    again = [dict(entry) for entry in entries if entry["extra_info"].get("round") == 1]
    for entry in again:
        entry["extra_info"] = {**entry["extra_info"], "round_trips_per_s": 1.0}
    rerun = tmp_path / "rerun.json"
    rerun.write_text(json.dumps({**data, "benchmarks": again}))
    replaced = tmp_path / "replaced.json"
    both = [str(EXAMPLE), str(rerun), "--out", str(tmp_path / "r"), "--slim", str(replaced)]
    assert main(both) == 0
    kept = json.loads(replaced.read_text())["benchmarks"]
    assert len(kept) == len(entries) and kept[-len(again):] == again
    assert main([str(joined), "--out", str(tmp_path / "one")]) == 0

    def text(name: str) -> list[str]:  # but the lines naming the input files and their commits
        lines = (tmp_path / name / "report.md").read_text().splitlines()
        return [line for line in lines if not line.startswith(("| runs |", "| commit |"))]

    assert text("one") == text("two")


def test_the_report_shows_foreign_cpu_reruns_and_unclean_runs(tmp_path: Path) -> None:
    run = foreign_and_costs_run(tmp_path / "run.json")
    assert main([str(run), "--out", str(tmp_path / "r")]) == 0
    text = (tmp_path / "r" / "report.md").read_text()
    summary = text.split("## Summary", 1)[1].split("\n## ", 1)[0]
    assert "4 windows discarded and run again, 1 run without a clean window" in summary
    cases = text.split("## Cases", 1)[1]
    row = next(line for line in cases.splitlines() if line.startswith("| `selectors-epoll` |"))
    assert "3.0 (4) **no clean window: r3**" in row  # median of 1.5, 3.0, 97.5; 1 + 3 reruns
    chart = (tmp_path / "r" / "chart-throughput-1-kib-x-64-connections.svg").read_text()
    root = ElementTree.fromstring(chart)
    marks = root.findall(f".//{SVG}path[@class='foreign']")
    assert len(marks) == 2  # round 3 of selectors-epoll, in both panels
    assert all("foreign CPU 97.5%" in mark.findtext(f"{SVG}title", "") for mark in marks)


def test_the_report_tables_and_charts_the_costs_per_message(tmp_path: Path) -> None:
    run = foreign_and_costs_run(tmp_path / "run.json")
    assert main([str(run), "--out", str(tmp_path / "r")]) == 0
    text = (tmp_path / "r" / "report.md").read_text()
    section = text.split("## Deterministic costs per message", 1)[1].split("\n## ", 1)[0]
    assert "| `peer-asyncio-protocol` | CPython 3.11.7 | asyncio | 14,617 | 5.021 |" in section
    assert "`mmap` 1.000, `mremap` 1.000, `munmap` 1.000" in section
    cases = text.split("## Cases", 1)[1]
    row = next(line for line in cases.splitlines() if line.startswith("| `peer-c-epoll` |"))
    assert row.endswith("| 1.5 | 93 | 2.021 |")
    malloc_pointer = "`peer-asyncio-protocol` makes 5.021 system calls per message"
    assert malloc_pointer not in text  # no malloc section in this run: nothing to point from
    svg = ElementTree.fromstring((tmp_path / "r" / "chart-costs.svg").read_text())
    bars = svg.findall(f".//{SVG}rect[@class='bar']")
    assert len(bars) == 6
    titles = [bar.findtext(f"{SVG}title", "") for bar in bars]
    assert "peer-c-epoll (CPython 3.11.7): 93 instructions per message" in titles
    assert any(t.startswith("peer-asyncio-protocol (CPython 3.11.7): 5.021 system calls (mmap")
               for t in titles)


def test_a_run_without_the_new_figures_says_not_recorded(tmp_path: Path) -> None:
    """A run saved before the foreign CPU figures and the costs (the example without them)."""
    newer = ("foreign_cpu_pct", "foreign_threshold_pct", "discarded_windows", "clean_window")
    data = json.loads(EXAMPLE.read_text())
    data["benchmarks"] = [
        {**entry, "extra_info": {k: v for k, v in entry["extra_info"].items() if k not in newer}}
        for entry in data["benchmarks"] if entry["extra_info"].get("kind") != "costs"
    ]
    older = tmp_path / "older.json"
    older.write_text(json.dumps(data))
    assert main([str(older), "--out", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "Foreign CPU (other work on the machine during each window): not recorded" in text
    section = text.split("## Deterministic costs per message", 1)[1].split("\n## ", 1)[0]
    assert "Not recorded in this run" in section
    row = next(line for line in text.splitlines() if line.startswith("| `peer-c-epoll` |"))
    assert row.endswith("| not recorded | not recorded | not recorded |")
