"""The HTML report in a real browser: headless Chromium loads it, with no console error.

Skipped only where no Chromium is installed (Debian: ``apt-get install chromium``;
.ci/run installs it). The screenshot is kept beside the rendered report.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from benchmarks.report import main
from benchmarks.reporting.browser import find_chromium, render
from benchmarks.reporting.data import load
from benchmarks.reporting.fixtures import EXAMPLE, foreign_and_costs_run

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="headless Chromium is not installed (Debian: apt-get install chromium)")

PAGE_FACTS = """JSON.stringify({
  ready: document.body.dataset.ready,
  charts: document.querySelectorAll("svg.chart").length,
  drawn: Array.prototype.filter.call(document.querySelectorAll("svg.chart"),
           function (svg) { var box = svg.getBoundingClientRect();
                            return box.width > 300 && box.height > 80; }).length,
  hovers: document.querySelectorAll("svg.chart g.estimate > title").length,
  tables: document.querySelectorAll("table").length,
  summary: !!document.getElementById("summary"),
  environment: !!document.getElementById("environment")
})"""


def test_chromium_renders_the_report_without_a_console_error(tmp_path: Path) -> None:
    import json

    assert main([str(EXAMPLE), "--out", str(tmp_path)]) == 0
    run = load([EXAMPLE])
    cases = [g for g, kind, _r in run.groups() + run.groups(sections=True) if kind != "primitive"]
    visit = render(tmp_path / "report.html", PAGE_FACTS)
    assert visit.errors == []
    facts = json.loads(visit.value)
    assert facts["ready"] == "yes"  # the page's script ran to its end
    assert facts["charts"] == facts["drawn"] == len(cases) + (1 if run.costs else 0)
    assert facts["hovers"] == 2 * sum(len(rows) for g, _k, rows in
                                      run.groups() + run.groups(sections=True) if g in cases)
    assert facts["summary"] and facts["environment"] and facts["tables"] >= len(cases)
    assert visit.screenshot is not None and visit.screenshot[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", visit.screenshot[16:24])
    assert width >= 1280 and height > 2000
    (tmp_path / "report.png").write_bytes(visit.screenshot)


def test_the_check_sees_console_errors_and_blocked_loads(tmp_path: Path) -> None:
    """The same check on a page that errs: it must report each error (or it tests nothing)."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" "
        "content=\"default-src 'none'; script-src 'unsafe-inline'\"></head><body>"
        "<img src=\"http://127.0.0.1:9/blocked.png\">"
        "<script>console.error('deliberate'); undefined_function();</script></body></html>")
    visit = render(page, "1", screenshot=False)
    text = "\n".join(visit.errors)
    assert "console.error: deliberate" in text
    assert "undefined_function" in text
    assert "blocked.png" in text or "Content Security Policy" in text


COSTS_FACTS = """(function () {
  var chart = document.querySelector("svg.chart.costs");
  var table = null;
  document.querySelectorAll("table").forEach(function (candidate) {
    if (candidate.rows[0].textContent.indexOf("system calls per message, by name") >= 0) {
      table = candidate;
    }
  });
  var header = Array.prototype.filter.call(table.rows[0].cells, function (th) {
    return th.textContent === "instructions/msg"; })[0];
  function first() { return table.tBodies[0].rows[0].cells[0].textContent; }
  header.click();
  var ascending = first();
  header.click();
  var descending = first();
  var box = chart.getBoundingClientRect();
  return JSON.stringify({bars: chart.querySelectorAll("rect.bar").length,
                         drawn: box.width > 300 && box.height > 80,
                         foreign: document.querySelectorAll("svg.chart path.foreign").length,
                         ascending: ascending, descending: descending});
})()"""


def test_chromium_sorts_the_costs_table_and_draws_its_chart(tmp_path: Path) -> None:
    import json

    run = foreign_and_costs_run(tmp_path / "run.json")
    assert main([str(run), "--out", str(tmp_path / "r")]) == 0
    visit = render(tmp_path / "r" / "report.html", COSTS_FACTS, screenshot=False)
    assert visit.errors == []
    facts = json.loads(visit.value)
    assert facts["bars"] == 6 and facts["drawn"]
    assert facts["foreign"] == 2  # the round with no clean window, in both panels
    assert (facts["ascending"], facts["descending"]) == ("peer-c-epoll",
                                                         "peer-asyncio-protocol")
