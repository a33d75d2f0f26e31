"""`benchmarks.compare` and the suites' interleaving: real worktrees, real runs, real pytest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.compare import ROOT, main


def test_two_revisions_run_interleaved_and_their_worktrees_are_removed(
        capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["HEAD", "HEAD", "--rounds", "2", "--target", "peer-c-epoll", "--",
                   "--connections", "2", "--duration", "0.2", "--warmup", "0.05"])
    out, err = capsys.readouterr()
    assert status == 0, err
    rounds = [line.split()[:3] for line in err.splitlines() if line.startswith("round ")]
    assert rounds == [["round", "1", "old"], ["round", "1", "new"],
                      ["round", "2", "new"], ["round", "2", "old"]]
    assert "| `peer-c-epoll` | round trips/s |" in out
    assert "too few rounds" in out  # two rounds cannot give a 95% interval
    after = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout
    # Only compare's own worktrees are looked for: other checkouts of this repository may add,
    # remove or move theirs meanwhile.
    assert "pollers-compare-" not in after


def test_an_unknown_revision_is_refused_before_anything_runs() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-revision-anywhere", "HEAD"])
    assert exit_info.value.code == 2


def test_the_suites_interleave_the_targets_of_a_case_round_by_round(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/suites/test_bench_echo.py", "--collect-only",
         "-q",
         "-p", "no:cacheprovider", "--bench-rounds", "2", "-k",
         "1KiB-x64 and (selectors-epoll or peer-selectors) or 64B and peer-c-epoll"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    ids = [line.split("[", 1)[1].rstrip("]") for line in done.stdout.splitlines()
           if line.startswith("benchmarks/suites/")]
    assert ids == ["peer-c-epoll-r1-64B", "peer-c-epoll-r2-64B",
                   "selectors-epoll-r1-1KiB-x64", "peer-selectors-r1-1KiB-x64",
                   "selectors-epoll-r2-1KiB-x64", "peer-selectors-r2-1KiB-x64"], done.stdout


def test_the_harness_can_serve_one_client_before_the_load(
        capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.harness import main as harness_main

    status = harness_main(["--target", "peer-asyncio-protocol", "--close-one-first",
                           "--server-env", "POLLERS_TEST_MARK=1", "--connections", "2",
                           "--duration", "0.2", "--warmup", "0.05", "--json"])
    assert status == 0
    import json

    figures = json.loads(capsys.readouterr().out)
    assert figures["errors"] == 0 and figures["round_trips"] > 0


def test_a_saved_run_records_the_load_at_its_start_its_end_and_after_each_run(
        tmp_path: Path) -> None:
    import json

    saved = tmp_path / "run.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/suites/test_bench_echo.py", "-q",
         "-p", "no:cacheprovider", "--bench-rounds", "2", "--bench-duration", "0.2",
         "-k", "64B and peer-c-epoll", "--benchmark-json", str(saved)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    run = json.loads(saved.read_text())
    bench = run["machine_info"]["pollers_bench"]
    assert all(len(bench[key]) == 3 and min(bench[key]) >= 0
               for key in ("load_average_start", "load_average_end"))
    loads = [entry["extra_info"]["load_average_1min"] for entry in run["benchmarks"]]
    assert len(loads) == 2 and all(isinstance(load, float) and load >= 0 for load in loads)
