"""Compare two git revisions of this project on this machine, their runs interleaved.

    python -m benchmarks.compare main HEAD [--rounds 6] [--target selectors-epoll ...] \\
        [--threshold 0.05] [--on rate|cpu] [--out runs.jsonl] -- [HARNESS OPTIONS]

Checks each revision out into a temporary git worktree (removed at the end,
whatever happens), then runs ``python -m benchmarks.harness`` of each worktree
in turn, round after round: in each round every target runs once under the old
revision and once under the new one, in alternating order (old first in odd
rounds, new first in even ones), so drift and order effects hit both alike.
Everything after ``--`` goes to every harness run (``--connections 64
--duration 2 --realtime``...). The servers run under the interpreter that runs
this command (``--server-python`` to change it), with each worktree's own code.

Prints, per target, both revisions' medians with their 95% intervals and the
paired speed-up of the new revision (above 1x: the new one is faster, or
spends less server CPU per message) with its interval (`benchmarks.stats`).
An interval holding 1.0 reads "no difference measured". A regression is
flagged only when the whole interval of the deciding figure lies below
``1 - threshold``; the exit status is then 1 (2 when a run failed).

Each revision's deterministic costs of every target are counted too, once (they do
not move with load; `benchmarks.costs`, skipped with ``--no-costs``): a change of more
than 1% in instructions per message, or any change in system calls per message, is a
difference measured beyond doubt, and an increase is a regression (exit status 1). A
revision without `benchmarks.costs` reads "not recorded".
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .reporting.render import regressions_status
from .reporting.stats import Estimate, interval_text, median_ci, paired_ratio, verdict
from .series import (
    Member,
    add_threshold_options,
    foreign_text,
    run_held,
    split_harness_args,
    threshold_option,
)
from .suites.progress import Position, Progress

ROOT = Path(__file__).resolve().parent.parent
RATE, CPU = "round_trips_per_s", "server_cpu_us_per_msg"


def git(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


class Worktrees:
    """Detached worktrees of some commits in a temporary folder, removed on exit."""

    def __init__(self, commits: Sequence[str]) -> None:
        self.commits = list(commits)
        self.folder = Path(tempfile.mkdtemp(prefix="pollers-compare-"))
        self.trees: List[Path] = []

    def __enter__(self) -> List[Path]:
        try:
            for index, commit in enumerate(self.commits):
                tree = self.folder / f"{index}-{commit[:10]}"
                git("worktree", "add", "--detach", str(tree), commit)
                self.trees.append(tree)
        except BaseException:
            self.__exit__()
            raise
        return self.trees

    def __exit__(self, *_exc: object) -> None:
        for tree in self.trees:
            try:
                git("worktree", "remove", "--force", str(tree))
            except RuntimeError as exc:
                print(f"warning: {exc}", file=sys.stderr)
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            git("worktree", "prune")
        except RuntimeError:
            pass


def _speedup(old: List[float], new: List[float], figure: str) -> Estimate:
    """New over old as a speed-up: rates new/old, costs old/new, round by round."""
    return paired_ratio(new, old) if figure == RATE else paired_ratio(old, new)


def render(targets: Sequence[str], runs: Dict[Tuple[str, str], List[Dict[str, Any]]],
           names: Tuple[str, str], threshold: float, on: str) -> Tuple[str, List[str]]:
    """The Markdown table of the comparison and its regressions."""
    old_name, new_name = names
    lines = [f"| target | figure | {old_name} | {new_name} | speed-up {new_name} vs {old_name} "
             "(95% interval) | reading |", "|---|---|---:|---:|---:|---|"]
    regressions: List[str] = []
    deciding = RATE if on == "rate" else CPU
    for target in targets:
        old, new = runs[(target, "old")], runs[(target, "new")]
        for figure, label in ((RATE, "round trips/s"), (CPU, "server CPU us/msg")):
            before = [float(run[figure]) for run in old]
            after = [float(run[figure]) for run in new]
            ratio = _speedup(before, after, figure)
            reading = verdict(ratio)
            if figure == deciding and ratio.complete and ratio.high < 1.0 - threshold:
                reading = f"**regression** (all of the interval below {1 - threshold:.2f}x)"
                regressions.append(f"{target} {label}: {interval_text(ratio, 3, 'x')}")
            elif not ratio.complete:
                reading += f" ({ratio.coverage:.0%} interval: too few rounds)"
            lines.append(f"| `{target}` | {label} | {interval_text(median_ci(before))} | "
                         f"{interval_text(median_ci(after))} | {interval_text(ratio, 3, 'x')} | "
                         f"{reading} |")
        lines.append(f"| `{target}` | foreign CPU of each round | "
                     f"{', '.join(map(foreign_text, old))} | {', '.join(map(foreign_text, new))} "
                     "| | |")
    every = [run for own in runs.values() for run in own]
    reruns = sum(len(run.get("discarded_windows") or []) for run in every)
    unclean = sum(1 for run in every if run.get("clean_window") is False)
    lines += ["", f"{reruns} window(s) discarded for foreign CPU and run again; "
              f"{unclean} run(s) without a clean window."]
    return "\n".join(lines), regressions


#: A change in instructions per message beyond this fraction is beyond doubt.
INSTRUCTIONS_TOLERANCE = 0.01


def count_costs(tree: Path, target: str, python: str, timeout: float
                ) -> Optional[Dict[str, Any]]:
    """``python -m benchmarks.costs --target T --json`` of ``tree``; None if it has none.
    RuntimeError if the count fails."""
    if not (tree / "benchmarks" / "costs.py").is_file():
        return None
    done = subprocess.run([python, "-m", "benchmarks.costs", "--target", target, "--json",
                           "--python", python], cwd=tree, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"costs of {target} in {tree}: {done.stderr.strip()[-1500:]}")
    figures: Dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def costs_verdict(old: Optional[Dict[str, Any]], new: Optional[Dict[str, Any]]
                  ) -> Tuple[List[str], List[str]]:
    """(the differences measured beyond doubt, the ones that are regressions)."""
    if old is None or new is None:
        return [], []
    found: List[str] = []
    worse: List[str] = []
    before, after = old.get("instructions_per_msg"), new.get("instructions_per_msg")
    if isinstance(before, (int, float)) and isinstance(after, (int, float)) and before:
        change = after / before - 1
        if abs(change) > INSTRUCTIONS_TOLERANCE:
            text = f"instructions per message {before:,.0f} -> {after:,.0f} ({change:+.1%})"
            found.append(text)
            if change > 0:
                worse.append(text)
    calls_before, calls_after = old.get("syscalls_per_msg"), new.get("syscalls_per_msg")
    names_before = old.get("syscalls_by_name") or {}
    names_after = new.get("syscalls_by_name") or {}
    if isinstance(calls_before, (int, float)) and isinstance(calls_after, (int, float)):
        changed = sorted(name for name in set(names_before) | set(names_after)
                         if round(names_before.get(name, 0), 3)
                         != round(names_after.get(name, 0), 3))
        if changed or round(calls_before, 3) != round(calls_after, 3):
            text = (f"system calls per message {calls_before:.3f} -> {calls_after:.3f} ("
                    + ", ".join(f"{name} {names_before.get(name, 0):.3f} -> "
                                f"{names_after.get(name, 0):.3f}" for name in changed) + ")")
            found.append(text)
            if calls_after > calls_before:
                worse.append(text)
    return found, worse


def render_costs(targets: Sequence[str],
                 costs: Dict[Tuple[str, str], Optional[Dict[str, Any]]],
                 names: Tuple[str, str]) -> Tuple[str, List[str]]:
    """The Markdown table of both revisions' costs, and the regressions among them."""
    def cells(figures: Optional[Dict[str, Any]]) -> str:
        if figures is None:
            return "not recorded | not recorded"
        instructions = figures.get("instructions_per_msg")
        syscalls = figures.get("syscalls_per_msg")
        return (f"{instructions:,.0f}" if isinstance(instructions, (int, float))
                else str(figures.get("instructions_note") or "-")) + " | " + (
            f"{syscalls:.3f}" if isinstance(syscalls, (int, float))
            else str(figures.get("syscalls_note") or "-"))

    lines = [f"| target | {names[0]}: instructions/msg | syscalls/msg | {names[1]}: "
             "instructions/msg | syscalls/msg | reading |", "|---|---:|---:|---:|---:|---|"]
    regressions: List[str] = []
    for target in targets:
        old, new = costs[(target, "old")], costs[(target, "new")]
        found, worse = costs_verdict(old, new)
        if old is None or new is None:
            reading = "not recorded in one revision"
        elif found:
            reading = "**difference measured beyond doubt**: " + "; ".join(found)
        else:
            reading = (f"no difference (instructions within {INSTRUCTIONS_TOLERANCE:.0%}, "
                       "the same system calls)")
        regressions += [f"{target} {text}" for text in worse]
        lines.append(f"| `{target}` | {cells(old)} | {cells(new)} | {reading} |")
    return "\n".join(lines), regressions


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv, harness_args = split_harness_args(argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("old", help="the older revision (anything git rev-parse takes)")
    parser.add_argument("new", help="the newer revision")
    parser.add_argument("--rounds", type=int, default=6,
                        help="rounds (default 6, the fewest for a 95%% interval)")
    parser.add_argument("--target", action="append", default=[],
                        help="harness target (repeatable; default selectors-epoll)")
    parser.add_argument("--server-python", default=None, help="interpreter for the servers")
    parser.add_argument("--threshold", type=float, default=0.05,
                        help="a loss beyond this fraction, beyond doubt, is a regression")
    parser.add_argument("--on", choices=("rate", "cpu"), default="cpu",
                        help="the figure that decides a regression: server CPU per message "
                        "(default, the steadier on a shared machine) or round trips/s")
    parser.add_argument("--out", type=Path, help="append every run's JSON figures to this file")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per harness run")
    parser.add_argument("--no-costs", action="store_true",
                        help="do not count the instructions and system calls per message")
    add_threshold_options(parser)
    args = parser.parse_args(argv)
    threshold = threshold_option(parser, args.foreign_threshold)
    if not 1 <= args.rounds <= 50:
        parser.error("--rounds must be between 1 and 50")
    if not 0 <= args.threshold < 1:
        parser.error("--threshold is a fraction between 0 and 1")
    targets = args.target or ["selectors-epoll"]
    try:
        commits = [git("rev-parse", "--verify", f"{rev}^{{commit}}") for rev in (args.old,
                                                                               args.new)]
    except RuntimeError as exc:
        parser.error(str(exc))
    names = (f"{args.old} ({commits[0][:10]})", f"{args.new} ({commits[1][:10]})")
    python = args.server_python or sys.executable
    runs: Dict[Tuple[str, str], List[Dict[str, Any]]] = {
        (target, side): [] for target in targets for side in ("old", "new")}
    progress = Progress(total=args.rounds * len(targets) * 2)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    with Worktrees(commits) as trees:
        print(f"worktrees: {trees[0]} ({names[0]}), {trees[1]} ({names[1]})", file=sys.stderr)
        for number in range(1, args.rounds + 1):
            sides = [("old", trees[0]), ("new", trees[1])]
            if number % 2 == 0:
                sides.reverse()
            for index, target in enumerate(targets):
                for offset, (side, tree) in enumerate(sides, 1):
                    member = Member(f"{side}:{target}", target, tree, python)
                    progress.begin()
                    log(progress.line(Position(1, 1, number, args.rounds, 2 * index + offset,
                                               2 * len(targets))))
                    try:
                        figures = run_held(member, harness_args, args.timeout, threshold,
                                           args.foreign_reruns, progress, log)
                        progress.end()
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        print(f"comparison stopped in round {number}: {exc}", file=sys.stderr)
                        return 2
                    figures.update(round=number, revision=commits[0 if side == "old" else 1])
                    runs[(target, side)].append(figures)
                    log(f"round {number} {side} {target}: {figures[RATE]:,.0f} rt/s "
                        f"{figures[CPU]:.2f} us/msg, foreign CPU {foreign_text(figures)}")
                    if args.out is not None:
                        with args.out.open("a") as out:
                            out.write(json.dumps(figures) + "\n")
        costs: Dict[Tuple[str, str], Optional[Dict[str, Any]]] = {}
        if not args.no_costs:
            for target in targets:
                for side, tree in (("old", trees[0]), ("new", trees[1])):
                    log(f"counting the costs of {target} in the {side} revision")
                    try:
                        costs[(target, side)] = count_costs(tree, target, python,
                                                            args.timeout * 4)
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        print(f"comparison stopped: {exc}", file=sys.stderr)
                        return 2
    table, regressions = render(targets, runs, names, args.threshold, args.on)
    print(f"{args.rounds} interleaved rounds; harness options: {' '.join(harness_args) or '-'}")
    print(table)
    if costs:
        costs_table, worse = render_costs(targets, costs, names)
        print("\nDeterministic costs per message (benchmarks.costs, counted once per revision):")
        print(costs_table)
        regressions += worse
    rule = f"(timings: a loss past {args.threshold:.0%} beyond doubt" + (
        "; costs: instructions up more than 1% or system calls up per message)" if costs else ")")
    return regressions_status(regressions, rule)


if __name__ == "__main__":
    sys.exit(main())
