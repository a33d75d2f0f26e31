"""Count what one echoed message costs a target: user-space instructions and system calls.

    python -m benchmarks.costs --target selectors-epoll --target peer-c-epoll
    python -m benchmarks.costs --all --json > costs.json
    python -m benchmarks.costs --target peer-asyncio-protocol --tool strace

Any target of the suites (every variant, attached variant and peer, the C peer
included), under ``--python`` (default this interpreter). The counts do not move with
the machine's load: how they are made is in `benchmarks.suites.counting`. Linux with
valgrind and strace; about a minute per target and tool on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional, Sequence

from .suites.counting import CountError, CountSpec, measure, syscalls_text
from .suites.targets import TARGETS, default_python, probe


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.costs", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        choices=sorted(TARGETS),
        metavar="TARGET",
        help="a target (repeatable)",
    )
    parser.add_argument("--all", action="store_true", help="every target that runs here")
    parser.add_argument("--python", default=default_python(), help="the server interpreter")
    parser.add_argument(
        "--tool",
        action="append",
        choices=("callgrind", "strace"),
        help="count only with this tool (repeatable; default both)",
    )
    parser.add_argument("--connections", type=int, default=CountSpec.connections)
    parser.add_argument(
        "--ready",
        type=int,
        default=CountSpec.ready,
        help="messages per batch (all readable at once for the server)",
    )
    parser.add_argument("--size", type=int, default=CountSpec.size)
    parser.add_argument(
        "--batches",
        type=int,
        default=CountSpec.batches,
        help="the extra batches the difference counts",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON lines")
    args = parser.parse_args(argv)
    spec = CountSpec(args.connections, args.ready, args.size, args.batches)
    if not 0 < spec.ready <= spec.connections or spec.size <= 0 or spec.batches <= 0:
        parser.error("need 0 < --ready <= --connections, --size > 0 and --batches > 0")
    names: List[str] = list(args.target)
    if args.all:
        interpreter = probe(args.python)
        names += [
            name
            for name, target in TARGETS.items()
            if interpreter.reason_unavailable(target) is None and name not in names
        ]
    if not names:
        parser.error("give --target (repeatable) or --all")
    status = 0
    for name in names:
        try:
            costs = measure(
                TARGETS[name], args.python, spec, tuple(args.tool or ("callgrind", "strace"))
            )
        except CountError as exc:
            print(f"{name}: cannot count: {exc}", file=sys.stderr)
            status = 1
            continue
        figures: Dict[str, Any] = costs.figures()
        if args.json:
            print(json.dumps(figures), flush=True)
            continue
        instructions = (
            f"{costs.instructions_per_msg:,.0f} instructions"
            if costs.instructions_per_msg is not None
            else costs.instructions_note
        )
        syscalls = (
            f"{costs.syscalls_per_msg:.3f} system calls ({syscalls_text(costs.syscalls_by_name)})"
            if costs.syscalls_per_msg is not None
            else costs.syscalls_note
        )
        print(
            f"{costs.target} ({costs.interpreter}): {instructions}, {syscalls} per message "
            f"[{spec.label}; {costs.scheduling}]",
            flush=True,
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
