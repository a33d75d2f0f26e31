"""Foreign CPU: real CPU burned beside a window is seen, and the window is run again.

No mock of psutil: a bounded CPU-burning child process runs beside the measurement.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

from benchmarks.compare import ROOT
from benchmarks.suites.foreign import FOREIGN_THRESHOLD_PCT, clean_window, rerun_while_foreign
from benchmarks.suites.harness import ForeignSample, foreign_cpu_percent

#: A child that burns one CPU for at most BURN_SECONDS (bounded even if the test dies).
BURN_SECONDS = 120
BURNER = f"import time\nend = time.time() + {BURN_SECONDS}\nwhile time.time() < end: pass\n"


@pytest.fixture
def burner() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", BURNER])
    try:
        time.sleep(0.3)  # running before the measurement starts
        yield process
    finally:
        process.kill()
        process.wait(10)


def test_cpu_burned_by_another_process_is_foreign_and_by_ours_is_not(
    burner: subprocess.Popen[bytes],
) -> None:
    ours: List[int] = []
    mine = [burner.pid]
    start_other, start_mine = ForeignSample.take(ours), ForeignSample.take(mine)
    time.sleep(1.0)
    end_other, end_mine = ForeignSample.take(ours), ForeignSample.take(mine)
    foreign = foreign_cpu_percent(start_other, end_other)
    counted_as_ours = foreign_cpu_percent(start_mine, end_mine)
    # The burner gets a good share of a CPU even on a busy 2-core machine.
    assert foreign > 25.0
    # Counted as ours, the burner's CPU time leaves the figure (give or take the ticks
    # of the system-wide clock and the other processes of a shared machine).
    assert counted_as_ours < foreign - 15.0


def test_a_window_over_the_threshold_is_run_again_and_kept_on_record() -> None:
    figures = iter([40.0, 7.5, 2.0, 99.0])
    told: List[int] = []
    result, dropped = rerun_while_foreign(
        lambda: next(figures),
        lambda value: value,
        5.0,
        3,
        lambda _value, number: told.append(number),
    )
    assert (result, dropped, told) == (2.0, [40.0, 7.5], [1, 2])
    stuck = iter([50.0, 60.0, 70.0])
    result, dropped = rerun_while_foreign(lambda: next(stuck), lambda value: value, 5.0, 2)
    assert (result, dropped) == (70.0, [50.0, 60.0]) and clean_window(result, 5.0) is False
    unknown: Iterator[Optional[float]] = iter([None])
    assert rerun_while_foreign(lambda: next(unknown), lambda value: value, 5.0, 3) == (None, [])


def test_a_cheap_run_beside_a_cpu_burner_discards_its_windows(
    burner: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    saved = tmp_path / "run.json"
    env = {
        **os.environ,
        "BENCH_DURATION": "0.3",
        "BENCH_ROUNDS": "1",
        "BENCH_COSTS": "none",
        "BENCH_FOREIGN_RERUNS": "2",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "benchmarks/suites/test_bench_echo.py",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "1KiB-x64 and peer-c-epoll",
            "--benchmark-json",
            str(saved),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "window discarded: foreign CPU" in done.stdout  # said on the terminal as it happens
    (entry,) = json.loads(saved.read_text())["benchmarks"]
    info = entry["extra_info"]
    assert info["foreign_threshold_pct"] == FOREIGN_THRESHOLD_PCT
    assert len(info["discarded_windows"]) >= 1
    assert all(
        window["foreign_cpu_pct"] > FOREIGN_THRESHOLD_PCT for window in info["discarded_windows"]
    )
    # Kept: a clean window, or the last of three, which then says it is not clean.
    assert info["clean_window"] is (info["foreign_cpu_pct"] <= FOREIGN_THRESHOLD_PCT)
    if not info["clean_window"]:
        assert len(info["discarded_windows"]) == 2
