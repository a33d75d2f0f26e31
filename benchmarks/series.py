"""Run several harness targets in turn, round after round, and compare them.

On a shared, noisy machine two figures are only comparable when they were
measured close together. A *series* runs every target once per round (A, B, C,
A, B, C, ...), so slow drift hits each of them alike; this tool prints the
median of each target's rounds and, for each pair asked for with ``--ratio``,
the ratio measured within each round (the same round's two runs) and the median
of those::

    python -m benchmarks.series --rounds 5 --out series.jsonl \\
        selectors-epoll peer-selectors peer-asyncio-protocol-uvloop \\
        pypy=selectors-epoll@/usr/bin/pypy3 before=/tmp/old-tree:selectors-epoll \\
        --ratio selectors-epoll/peer-selectors --ratio selectors-epoll/before \\
        -- --duration 3 --warmup 1 --realtime

A target is ``[LABEL=][TREE:]TARGET[@PYTHON]``: ``TREE`` is another checkout of
this project whose harness (and therefore whose server) runs the target, for
"before" figures; ``PYTHON`` is the server's interpreter; ``LABEL`` names it in
the tables and in ``--ratio`` (default: the target as written). Everything after
``--`` goes to every ``python -m benchmarks.harness`` run. Ratios are speed-ups,
above 1x better: ``a / b`` for round trips/s, ``b / a`` for server CPU per message.
A failed run stops the series (its figures would be missing from a round).

Every run's window is held to ``--foreign-threshold`` (default 5% of one core): a
window in which other work on the machine used more CPU is discarded and run again,
at most ``--foreign-reruns`` times (`benchmarks.suites.foreign`); the table gives
each round's foreign figure, the reruns, and says when a run got no clean window.
A tree whose harness predates the foreign figure is run once per round ("not
recorded"). A progress line on stderr says where the series stands.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .suites.foreign import (
    FOREIGN_RERUNS,
    FOREIGN_THRESHOLD_PCT,
    clean_window,
    rerun_while_foreign,
)
from .suites.progress import Position, Progress

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Member:
    """One target of the series and where and how it runs."""

    label: str
    target: str
    tree: Path
    python: Optional[str]

    @classmethod
    def parse(cls, text: str) -> Member:
        label, _, rest = text.rpartition("=")
        tree, _, rest = rest.rpartition(":")
        target, _, python = rest.partition("@")
        if not target:
            raise ValueError(f"no target in {text!r}")
        tree_path = Path(tree).resolve() if tree else ROOT
        if not (tree_path / "benchmarks" / "harness.py").is_file():
            raise ValueError(f"{tree_path} holds no benchmarks/harness.py")
        return cls(label or text, target, tree_path, python or None)

    def command(self, harness_args: Sequence[str]) -> List[str]:
        command = [sys.executable, "-m", "benchmarks.harness", "--target", self.target, "--json"]
        if self.python:
            command += ["--server-python", self.python]
        return command + list(harness_args)


def run_once(member: Member, harness_args: Sequence[str], timeout: float) -> Dict[str, Any]:
    """One harness run; its JSON figures. Raises RuntimeError when the run fails."""
    done = subprocess.run(member.command(harness_args), cwd=member.tree, capture_output=True,
                          text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{member.label}: harness exited {done.returncode}\n{done.stderr}")
    figures: Dict[str, Any] = json.loads(done.stdout)
    figures["label"] = member.label
    return figures


def _window(figures: Dict[str, Any]) -> Dict[str, Any]:
    keys = ("foreign_cpu_pct", "round_trips_per_s", "server_cpu_us_per_msg", "latency_p50_us")
    return {key: figures.get(key) for key in keys}


def run_held(member: Member, harness_args: Sequence[str], timeout: float,
             threshold: Optional[float], reruns: int, progress: Progress,
             log: Callable[[str], None]) -> Dict[str, Any]:
    """`run_once`, held to the foreign CPU ``threshold`` (`rerun_while_foreign`); the
    figures gain ``discarded_windows``, ``foreign_threshold_pct`` and ``clean_window``."""

    def discarded(figures: Dict[str, Any], number: int) -> None:
        progress.rerun()
        log(f"  {member.label}: window discarded, foreign CPU {figures['foreign_cpu_pct']}% "
            f"of one core > {threshold:g}%; rerun {number} of at most {reruns}")

    figures, dropped = rerun_while_foreign(
        lambda: run_once(member, harness_args, timeout),
        lambda figures: figures.get("foreign_cpu_pct"), threshold, reruns, discarded)
    figures["discarded_windows"] = [_window(window) for window in dropped]
    figures["foreign_threshold_pct"] = threshold
    figures["clean_window"] = clean_window(figures.get("foreign_cpu_pct"), threshold)
    return figures


def foreign_text(run: Dict[str, Any]) -> str:
    """A run's foreign CPU %, its reruns, and a warning if it got no clean window."""
    foreign = run.get("foreign_cpu_pct")
    text = "not recorded" if foreign is None else f"{foreign:.1f}%"
    dropped = run.get("discarded_windows") or []
    if dropped:
        text += f" ({len(dropped)} rerun{'s' if len(dropped) > 1 else ''})"
    if run.get("clean_window") is False:
        text += " **no clean window**"
    return text


def add_threshold_options(parser: argparse.ArgumentParser) -> None:
    """``--foreign-threshold`` and ``--foreign-reruns``, as `series` and `compare` take them."""
    parser.add_argument("--foreign-threshold", default=str(FOREIGN_THRESHOLD_PCT),
                        help="discard a window whose foreign CPU passes this %% of one core "
                        f"and run it again, or 'none' (default {FOREIGN_THRESHOLD_PCT:g})")
    parser.add_argument("--foreign-reruns", type=int, default=FOREIGN_RERUNS,
                        help=f"reruns of a discarded window at most (default {FOREIGN_RERUNS})")


def threshold_option(parser: argparse.ArgumentParser, text: str) -> Optional[float]:
    """``--foreign-threshold``'s value: a percentage, or None for ``none``."""
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        parser.error(f"--foreign-threshold {text!r}: give a percentage of one core, or none")
        raise


def medians(runs: List[Dict[str, Any]]) -> Dict[str, float]:
    keys = ("round_trips_per_s", "server_cpu_us_per_msg", "latency_p50_us",
            "rss_kib_per_connection")
    return {key: statistics.median(float(run[key]) for run in runs) for key in keys}


def pair_ratios(a_runs: List[Dict[str, Any]], b_runs: List[Dict[str, Any]]
                ) -> Tuple[List[float], List[float]]:
    """Per round: (rt/s of a / rt/s of b, CPU of b / CPU of a)."""
    rts = [a["round_trips_per_s"] / b["round_trips_per_s"] for a, b in zip(a_runs, b_runs)]
    cpu = [b["server_cpu_us_per_msg"] / a["server_cpu_us_per_msg"]
           for a, b in zip(a_runs, b_runs)]
    return rts, cpu


def render(members: List[Member], runs: Dict[str, List[Dict[str, Any]]],
           ratios: List[Tuple[str, str]]) -> str:
    lines = ["| target | round trips/s | server CPU us/msg | p50 us | RSS KiB/conn | "
             "CPU us/msg of each round | foreign CPU of each round |",
             "|---|---:|---:|---:|---:|---|---|"]
    for member in members:
        own = runs[member.label]
        middle = medians(own)
        bound = sum(1 for run in own if run.get("client_bound"))
        # Resident memory per connection means something only with many connections open.
        rss = f"{middle['rss_kib_per_connection']:.3f}" if own[0]["load_idle"] else "-"
        each = ", ".join(f"{run['server_cpu_us_per_msg']:.2f}" for run in own)
        if bound:
            each += f" (client-bound {bound} of {len(own)})"
        foreign = ", ".join(foreign_text(run) for run in own)
        lines.append(f"| `{member.label}` | {middle['round_trips_per_s']:,.0f} | "
                     f"{middle['server_cpu_us_per_msg']:.2f} | {middle['latency_p50_us']:.1f} | "
                     f"{rss} | {each} | {foreign} |")
    if ratios:
        lines += ["", "| ratio | rt/s: median (range) | CPU: median (range) |", "|---|---|---|"]
        for a, b in ratios:
            rts, cpu = pair_ratios(runs[a], runs[b])
            lines.append(f"| `{a}` / `{b}` | {statistics.median(rts):.3f}x "
                         f"({min(rts):.3f}-{max(rts):.3f}) | {statistics.median(cpu):.3f}x "
                         f"({min(cpu):.3f}-{max(cpu):.3f}) |")
    reruns = sum(len(run.get("discarded_windows") or []) for own in runs.values() for run in own)
    unclean = sum(1 for own in runs.values() for run in own if run.get("clean_window") is False)
    lines += ["", f"{reruns} window(s) discarded for foreign CPU and run again; "
              f"{unclean} run(s) without a clean window."]
    return "\n".join(lines)


def split_harness_args(argv: Optional[Sequence[str]]) -> Tuple[List[str], List[str]]:
    """The command's own arguments, and those after ``--`` (for every harness run)."""
    own = list(sys.argv[1:] if argv is None else argv)
    if "--" not in own:
        return own, []
    cut = own.index("--")
    return own[:cut], own[cut + 1:]


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv, harness_args = split_harness_args(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("members", nargs="+", metavar="[LABEL=][TREE:]TARGET[@PYTHON]")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ratio", action="append", default=[], metavar="A/B")
    parser.add_argument("--out", type=Path, help="append every run's JSON figures to this file")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per harness run")
    add_threshold_options(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 50:
        parser.error("--rounds must be between 1 and 50")
    threshold = threshold_option(parser, args.foreign_threshold)
    try:
        members = [Member.parse(text) for text in args.members]
    except ValueError as exc:
        parser.error(str(exc))
    labels = [member.label for member in members]
    if len(set(labels)) != len(labels):
        parser.error(f"two targets share a label: {labels}")
    ratios: List[Tuple[str, str]] = []
    for text in args.ratio:
        a, _, b = text.partition("/")
        if a not in labels or b not in labels:
            parser.error(f"--ratio {text}: both sides must be labels of the series {labels}")
        ratios.append((a, b))
    runs: Dict[str, List[Dict[str, Any]]] = {label: [] for label in labels}
    progress = Progress(total=args.rounds * len(members))

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    for number in range(1, args.rounds + 1):
        for index, member in enumerate(members, 1):
            progress.begin()
            log(progress.line(Position(1, 1, number, args.rounds, index, len(members))))
            try:
                figures = run_held(member, harness_args, args.timeout, threshold,
                                   args.foreign_reruns, progress, log)
                progress.end()
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"series stopped in round {number}: {exc}", file=sys.stderr)
                return 1
            figures["round"] = number
            runs[member.label].append(figures)
            log(f"round {number} {member.label}: {figures['round_trips_per_s']:,.0f} rt/s "
                f"{figures['server_cpu_us_per_msg']:.2f} us/msg, foreign CPU "
                f"{foreign_text(figures)}")
            if args.out is not None:
                with args.out.open("a") as out:
                    out.write(json.dumps(figures) + "\n")
    print(render(members, runs, ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
