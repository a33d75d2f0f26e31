"""`benchmarks.series` runs real harness runs in turn and pairs them by round."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.series import Member, main


def test_a_series_runs_each_target_every_round_and_pairs_the_ratios(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "series.jsonl"
    status = main(["--rounds", "2", "--out", str(out), "a=peer-selectors", "b=peer-c-epoll",
                   "--ratio", "a/b", "--", "--connections", "2", "--duration", "0.2",
                   "--warmup", "0.05"])
    assert status == 0
    runs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(run["round"], run["label"]) for run in runs] == [
        (1, "a"), (1, "b"), (2, "a"), (2, "b")]
    assert all(run["round_trips_per_s"] > 0 and run["errors"] == 0 for run in runs)
    table = capsys.readouterr().out
    assert "| `a` |" in table and "| `b` |" in table
    ratio_rows = [line for line in table.splitlines() if line.startswith("| `a` / `b` |")]
    assert len(ratio_rows) == 1


def test_a_member_names_its_tree_interpreter_and_label(tmp_path: Path) -> None:
    member = Member.parse("old=selectors-epoll@/usr/bin/pypy3")
    assert (member.label, member.target, member.python) == ("old", "selectors-epoll",
                                                           "/usr/bin/pypy3")
    with pytest.raises(ValueError, match=r"holds no benchmarks/harness\.py"):
        Member.parse(f"{tmp_path}:selectors-epoll")
