"""Run one echo benchmark by hand: a server, the C load generator, the checks, the figures.

    python -m benchmarks.harness --target selectors-epoll --connections 64 --duration 3
    python -m benchmarks.harness --target peer-asyncio-protocol --close-one-first --json

A short command over `benchmarks.suites.harness`, which the suites, `benchmarks.series`
and `benchmarks.compare` drive as well. Its module path is what ``series`` and
``compare`` run in other trees, old and new alike, so it stays here.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Dict, Optional, Sequence

from .suites import harness as driver
from .suites.targets import TARGETS, default_python, probe


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.harness",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--target", choices=sorted(TARGETS), default="selectors-epoll")
    parser.add_argument("--server-python", default=default_python())
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--depth", type=int, default=1)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--idle", type=int, default=0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--server-cpu", type=driver.parse_cpus, default=None,
                        help="CPUs for the server: 0, 0,1 or none (default the first CPU)")
    parser.add_argument("--client-cpu", type=driver.parse_cpus, default=None,
                        help="CPUs for the load generator (default the second CPU)")
    parser.add_argument("--server-args", default="",
                        help="extra options for python -m server, e.g. '--workers 2'")
    parser.add_argument("--realtime", action="store_true",
                        help="run server and load generator under SCHED_FIFO (Linux, root)")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="add to the server's environment (repeatable), e.g. "
                        "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1048576")
    parser.add_argument("--close-one-first", action="store_true",
                        help="before the load, one client connects, echoes a byte and closes "
                        "(the state of a server that has served a client before)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    server_cpus, client_cpus = driver.default_cpus()
    if args.server_cpu is not None:
        server_cpus = args.server_cpu
    if args.client_cpu is not None:
        client_cpus = args.client_cpu
    target = TARGETS[args.target]
    reason = probe(args.server_python).reason_unavailable(target)
    if reason is None and args.realtime:
        reason = driver.realtime_unavailable_reason()
    if reason is not None:
        parser.exit(2, f"cannot run: {reason}\n")
    env: Dict[str, str] = {}
    for item in args.server_env:
        name, equals, value = item.partition("=")
        if not equals or not name:
            parser.error(f"--server-env {item!r}: give NAME=VALUE")
        env[name] = value
    spec = driver.LoadSpec(args.connections, args.depth, args.size, args.idle, args.warmup,
                           args.duration)
    try:
        result = driver.run_echo(target, spec, args.server_python, server_cpus, client_cpus,
                          args.realtime, shlex.split(args.server_args), env,
                          args.close_one_first)
        driver.check(result)
    except driver.BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.figures(), indent=2))
    else:
        print(f"{result.target}: {driver.summary(result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
