"""The progress line of long runs: where the run stands and how long it has left."""

from __future__ import annotations

from typing import List

import pytest

from benchmarks.series import main
from benchmarks.suites.progress import Position, Progress, clock_text


def test_the_line_counts_runs_and_estimates_the_time_left_from_the_runs_so_far() -> None:
    now: List[float] = [100.0]
    progress = Progress(total=4, clock=lambda: now[0])
    where = Position(case=1, cases=2, round=1, rounds=2, target=1, targets=1)
    progress.begin()
    assert progress.line(where) == (
        "case 1 of 2, round 1 of 2, target 1 of 1; 0:00:00 "
        "elapsed, time left not known yet; 0 reruns"
    )
    now[0] += 30.0
    progress.rerun()
    progress.end()
    progress.begin()
    progress.end(ran=False)  # a skipped run takes no time and does not count in the mean
    progress.begin()
    assert progress.line(Position(2, 2, 1, 2, 1, 1)) == (
        "case 2 of 2, round 1 of 2, target 1 of 1; 0:00:30 elapsed, about 0:01:00 left; 1 rerun"
    )
    assert clock_text(3725.4) == "1:02:05"


def test_series_prints_the_progress_line(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        [
            "--rounds",
            "1",
            "--foreign-threshold",
            "none",
            "a=peer-c-epoll",
            "--",
            "--connections",
            "2",
            "--duration",
            "0.2",
            "--warmup",
            "0.05",
        ]
    )
    assert status == 0
    err = capsys.readouterr().err
    assert "case 1 of 1, round 1 of 1, target 1 of 1; 0:00:00 elapsed" in err
