"""The benchmark suites' options that shape a run: rounds per case."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import List

from benchmarks.compare import ROOT


def collect(*options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "benchmarks/suites/test_bench_echo.py",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "--bench-duration",
            "0.3",
            "--bench-targets",
            "peer-c-epoll,selectors-epoll",
            *options,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def rounds_of(output: str, case_id: str) -> List[int]:
    return sorted({int(n) for n in re.findall(rf"-r(\d+)-{re.escape(case_id)}\]", output)})


def test_a_case_given_its_own_rounds_runs_them_and_the_others_keep_theirs() -> None:
    done = collect("--bench-rounds", "2", "--bench-case-rounds", "1KiB-x64=5")
    assert done.returncode == 0, done.stdout + done.stderr
    assert rounds_of(done.stdout, "1KiB-x64") == [1, 2, 3, 4, 5]
    assert rounds_of(done.stdout, "1KiB-x256") == [1, 2]
    assert rounds_of(done.stdout, "64B") == [1, 2]


def test_an_unknown_case_or_a_bad_number_is_a_usage_error() -> None:
    unknown = collect("--bench-case-rounds", "1KiB-x65=5")
    assert unknown.returncode == 4 and "no case '1KiB-x65'" in unknown.stderr
    assert "1KiB-x64" in unknown.stderr  # the message lists the cases there are
    malformed = collect("--bench-case-rounds", "1KiB-x64:5")
    assert malformed.returncode == 4 and "write CASE=N" in malformed.stderr
