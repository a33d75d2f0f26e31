"""pytest options and fixtures of the benchmark suites.

Options (each also read from an environment variable, for tox and CI):

- ``--bench-duration SECONDS`` (``BENCH_DURATION``, default 2): measured window per
  echo case; ``0.3`` is the cheap mode CI runs, which still goes through every code
  path and every sanity check.
- ``--bench-warmup SECONDS`` (``BENCH_WARMUP``, default: a quarter of the duration,
  at most 0.5).
- ``--server-python PATH`` (``BENCH_SERVER_PYTHON``, comma-separated; repeatable):
  the interpreter(s) that run the servers. With more than one, every echo test
  runs once per interpreter and its id ends with the interpreter's tag.
- ``--bench-targets PATTERNS`` (``BENCH_TARGETS``): comma-separated fnmatch patterns
  of the targets to run (``selectors-*,peer-selectors``); default all.
- ``--server-cpu CPUS`` / ``--client-cpu CPUS``: the CPUs to pin to, ``0`` or ``0,1``
  (default the first two allowed CPUs, one each; ``none`` disables pinning).
- ``--server-args ARGS`` (``BENCH_SERVER_ARGS``): extra options for ``python -m server``
  (``--workers 2``...); peers do not get them. A server's CPU time and memory are
  those of its whole process tree.
- ``--bench-realtime`` (``BENCH_REALTIME=1``): run the servers and the load generator
  under SCHED_FIFO (Linux, root): on a shared machine, other work then cannot
  preempt them (the kernel's real-time throttling still leaves it 5% of each CPU).
- ``--bench-rounds N`` (``BENCH_ROUNDS``, default 6; 3 in the cheap mode): every echo
  case runs N rounds, and within a round each of its targets (and interpreters) runs
  once, in turn: the tests are reordered so that a case's runs interleave
  (A B C A B C ...), which makes slow drift on a shared machine hit each alike. Each
  round is one pytest-benchmark entry (``extra_info["round"]``); the report pairs them.
  Six rounds is the fewest for which the median's 95% interval exists.
- ``--bench-case-rounds CASE=N,...`` (``BENCH_CASE_ROUNDS``): N rounds for the case
  whose id is CASE (``1KiB-x64=12``), the other cases keeping ``--bench-rounds``: more
  rounds where a narrow interval matters, without the hours of giving them to every case.
- ``--bench-foreign-threshold PCT`` (``BENCH_FOREIGN_THRESHOLD``, default 5): a measured
  window in which processes other than the server, the load generator and this harness
  used more CPU than PCT % of one core is discarded and run again; ``none`` keeps every
  window (the foreign figure is still recorded).
- ``--bench-foreign-reruns N`` (``BENCH_FOREIGN_RERUNS``, default 3): at most N reruns of
  one window; a run that got no clean window is recorded as such (``clean_window``).
- ``--bench-costs all|families|none`` (``BENCH_COSTS``): the targets whose instructions
  and system calls per message `test_bench_costs` counts (default ``all``; ``families``
  in the cheap mode: one variant per family and two peers).
- ``--bench-lock PATH`` (``BENCH_LOCK``): hold an exclusive ``flock`` on PATH while the
  rounds of each echo case run, releasing it between cases, so that benchmark runs of
  several people on one machine take turns case by case rather than overlap.
"""

from __future__ import annotations

import fcntl
import fnmatch
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Dict, List, Optional, Tuple

import pytest

import pollers
from pollers.registry import DESCRIPTOR_LIMITS

from .cases import ALL_CASES, EchoCase
from .foreign import FOREIGN_RERUNS, FOREIGN_THRESHOLD_PCT
from .harness import (
    BenchmarkError,
    CpuSet,
    EchoResult,
    check,
    default_cpus,
    parse_cpus,
    realtime_unavailable_reason,
    run_echo,
    run_echo_held,
    summary,
)
from .progress import Position, Progress
from .targets import TARGETS, Interpreter, Target, probe

#: Below this measured window (seconds) a run is the cheap mode: code paths, not figures.
CHEAP_DURATION = 1.0
FULL_ROUNDS = 6
CHEAP_ROUNDS = 3


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pollers benchmarks")
    group.addoption("--bench-duration", type=float, default=None,
                    help="measured seconds per echo case (env BENCH_DURATION, default 2)")
    group.addoption("--bench-warmup", type=float, default=None,
                    help="warm-up seconds per echo case (env BENCH_WARMUP)")
    group.addoption("--server-python", action="append", default=None,
                    help="interpreter for the servers; repeat for several "
                    "(env BENCH_SERVER_PYTHON)")
    group.addoption("--bench-targets", default=None,
                    help="comma-separated fnmatch patterns of targets (env BENCH_TARGETS)")
    group.addoption("--server-cpu", default=None, help="CPUs for the server (0 or 0,1), or 'none'")
    group.addoption("--client-cpu", default=None,
                    help="CPUs for the load generator (1 or 0,1), or 'none'")
    group.addoption("--server-args", default=None,
                    help="extra options for python -m server, e.g. '--workers 2' "
                    "(env BENCH_SERVER_ARGS)")
    group.addoption("--bench-realtime", action="store_true", default=None,
                    help="servers and load generator under SCHED_FIFO (Linux, root), shielded "
                    "from other work on a shared machine (env BENCH_REALTIME=1)")
    group.addoption("--bench-rounds", type=int, default=None,
                    help=f"interleaved rounds per echo case (env BENCH_ROUNDS, default "
                    f"{FULL_ROUNDS}, {CHEAP_ROUNDS} in the cheap mode)")
    group.addoption("--bench-case-rounds", default=None,
                    help="rounds for some cases, by case id: 1KiB-x64=12,64B=8 "
                    "(env BENCH_CASE_ROUNDS; the others keep --bench-rounds)")
    group.addoption("--bench-lock", default=None,
                    help="flock this file while each echo case runs (env BENCH_LOCK)")
    group.addoption("--bench-foreign-threshold", default=None,
                    help=f"discard a window whose foreign CPU passes this % of one core, or "
                    f"'none' (env BENCH_FOREIGN_THRESHOLD, default {FOREIGN_THRESHOLD_PCT:g})")
    group.addoption("--bench-costs", choices=("all", "families", "none"), default=None,
                    help="targets whose costs per message are counted (env BENCH_COSTS; "
                    "default all, families in the cheap mode)")
    group.addoption("--bench-foreign-reruns", type=int, default=None,
                    help=f"reruns of a discarded window at most (env BENCH_FOREIGN_RERUNS, "
                    f"default {FOREIGN_RERUNS})")


#: The load average when the session began (pytest-benchmark asks for the machine's
#: facts only when it saves the JSON, at the end).
LOAD_AT_START = pytest.StashKey[Optional[List[float]]]()


def pytest_configure(config: pytest.Config) -> None:
    """Create the folder of ``--benchmark-json`` (``reports/`` is not in a fresh clone)."""
    config.stash[LOAD_AT_START] = _load_average()
    path = config.getoption("benchmark_json", None)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class BenchSettings:
    duration: float
    warmup: float
    pythons: List[str]
    target_patterns: List[str]
    server_cpu: CpuSet
    client_cpu: CpuSet
    server_args: List[str]
    realtime: bool
    rounds: int
    lock: Optional[str]
    foreign_threshold: Optional[float] = FOREIGN_THRESHOLD_PCT
    foreign_reruns: int = FOREIGN_RERUNS
    costs: str = "all"
    #: Rounds of the cases that do not take ``rounds``, by case id (--bench-case-rounds).
    case_rounds: Dict[str, int] = field(default_factory=dict)

    def rounds_for(self, case_id: str) -> int:
        """The number of rounds of the case ``case_id``."""
        return self.case_rounds.get(case_id, self.rounds)

    @property
    def most_rounds(self) -> int:
        return max([self.rounds, *self.case_rounds.values()])

    @property
    def cheap(self) -> bool:
        """The cheap mode: every code path, too short a window for figures to quote."""
        return self.duration < CHEAP_DURATION

    def selected(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.target_patterns)


def _cpu(value: Optional[str], default: CpuSet) -> CpuSet:
    if value is None:
        return default
    try:
        return parse_cpus(value)
    except ValueError:
        raise pytest.UsageError(f"bad CPU list {value!r}: use 0, 0,1 or none") from None


_SETTINGS = pytest.StashKey[BenchSettings]()


def settings(config: pytest.Config) -> BenchSettings:
    """The suites' settings, from the options and the environment (computed once)."""
    cached = config.stash.get(_SETTINGS, None)
    if cached is not None:
        return cached
    duration = config.getoption("--bench-duration")
    if duration is None:
        duration = float(os.environ.get("BENCH_DURATION", "2"))
    warmup = config.getoption("--bench-warmup")
    if warmup is None:
        warmup = float(os.environ.get("BENCH_WARMUP", min(0.5, duration / 4)))
    pythons = config.getoption("--server-python") or [
        path for path in os.environ.get("BENCH_SERVER_PYTHON", "").split(",") if path.strip()
    ] or [sys.executable]
    patterns = config.getoption("--bench-targets") or os.environ.get("BENCH_TARGETS", "") or "*"
    server_default, client_default = default_cpus()
    rounds = config.getoption("--bench-rounds")
    if rounds is None:
        rounds = int(os.environ.get("BENCH_ROUNDS", "0")) or (
            CHEAP_ROUNDS if duration < CHEAP_DURATION else FULL_ROUNDS)
    if not 1 <= rounds <= 50:
        raise pytest.UsageError(f"--bench-rounds {rounds}: give 1 to 50 rounds")
    case_rounds = _case_rounds(config.getoption("--bench-case-rounds")
                               or os.environ.get("BENCH_CASE_ROUNDS", ""))
    threshold_text = (config.getoption("--bench-foreign-threshold")
                      or os.environ.get("BENCH_FOREIGN_THRESHOLD", "")
                      or f"{FOREIGN_THRESHOLD_PCT}")
    try:
        threshold = None if threshold_text.strip().lower() == "none" else float(threshold_text)
    except ValueError:
        raise pytest.UsageError(f"--bench-foreign-threshold {threshold_text!r}: give a "
                                "percentage of one core, or none") from None
    reruns = config.getoption("--bench-foreign-reruns")
    if reruns is None:
        reruns = int(os.environ.get("BENCH_FOREIGN_RERUNS", str(FOREIGN_RERUNS)))
    if not 0 <= reruns <= 20:
        raise pytest.UsageError(f"--bench-foreign-reruns {reruns}: give 0 to 20")
    costs = config.getoption("--bench-costs") or os.environ.get("BENCH_COSTS", "") or (
        "families" if duration < CHEAP_DURATION else "all")
    if costs not in ("all", "families", "none"):
        raise pytest.UsageError(f"BENCH_COSTS={costs!r}: give all, families or none")
    result = BenchSettings(
        duration=duration, warmup=warmup, pythons=[p.strip() for p in pythons],
        target_patterns=[p.strip() for p in patterns.split(",") if p.strip()],
        server_cpu=_cpu(config.getoption("--server-cpu"), server_default),
        client_cpu=_cpu(config.getoption("--client-cpu"), client_default),
        server_args=shlex.split(config.getoption("--server-args")
                                or os.environ.get("BENCH_SERVER_ARGS", "")),
        realtime=bool(config.getoption("--bench-realtime")
                      or os.environ.get("BENCH_REALTIME", "") not in ("", "0")),
        rounds=rounds,
        lock=config.getoption("--bench-lock") or os.environ.get("BENCH_LOCK") or None,
        foreign_threshold=threshold,
        foreign_reruns=reruns,
        costs=costs,
        case_rounds=case_rounds,
    )
    if result.realtime:
        reason = realtime_unavailable_reason()
        if reason is not None:
            raise pytest.UsageError(f"--bench-realtime: {reason}")
    config.stash[_SETTINGS] = result
    return result


def _case_rounds(text: str) -> Dict[str, int]:
    """Parse ``CASE=N,CASE=N`` (--bench-case-rounds) against the cases that exist."""
    known = {case.id for case in ALL_CASES}
    parsed: Dict[str, int] = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        case_id, sep, number = (piece.strip() for piece in part.partition("="))
        if not sep or not number.isdigit():
            raise pytest.UsageError(f"--bench-case-rounds {part!r}: write CASE=N, "
                                    "e.g. 1KiB-x64=12")
        if case_id not in known:
            raise pytest.UsageError(f"--bench-case-rounds: no case {case_id!r}; the "
                                    f"cases are {', '.join(sorted(known))}")
        if not 1 <= int(number) <= 50:
            raise pytest.UsageError(f"--bench-case-rounds {part}: give 1 to 50 rounds")
        parsed[case_id] = int(number)
    return parsed


def _interpreter_ids(pythons: List[str]) -> List[str]:
    tags = [probe(python).tag for python in pythons]
    return [tag if tags.count(tag) == 1 else f"{tag}-{index}" for index, tag in enumerate(tags)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    bench = settings(metafunc.config)
    own_targets = any(mark.args and "target" in str(mark.args[0]).split(",")
                      for mark in metafunc.definition.iter_markers("parametrize"))
    if "target" in metafunc.fixturenames and not own_targets:
        names = [name for name in TARGETS if bench.selected(name)]
        metafunc.parametrize("target", [TARGETS[name] for name in names], ids=names)
    if "server_python" in metafunc.fixturenames and len(bench.pythons) > 1:
        metafunc.parametrize("server_python", bench.pythons, ids=_interpreter_ids(bench.pythons))
    if "variant" in metafunc.fixturenames:
        names = [name for name in pollers.VARIANTS if bench.selected(name)]
        metafunc.parametrize("variant", names, ids=names)
    if "bench_round" in metafunc.fixturenames:
        numbers = list(range(1, bench.most_rounds + 1))
        metafunc.parametrize("bench_round", numbers, ids=[f"r{n}" for n in numbers])


def _interleave_key(item: pytest.Item) -> Optional[str]:
    """The case block of a round of an echo case (None for other tests).

    A case block is one test function with one case: all its targets, interpreters
    (and settings) take turns inside it, round after round.
    """
    callspec = getattr(item, "callspec", None)
    if callspec is None or "bench_round" not in callspec.params:
        return None
    case = callspec.params.get("case")
    return f"{item.nodeid.split('[')[0]}[{getattr(case, 'id', case)}]"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: List[pytest.Item]) -> None:
    """Interleave each echo case's runs: round 1 of every target, then round 2, ...

    Rounds past a case's own number (`BenchSettings.rounds_for`) are deselected.
    """
    bench = settings(config)
    kept: List[pytest.Item] = []
    extra: List[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "bench_round" in callspec.params:
            case = callspec.params.get("case")
            if int(callspec.params["bench_round"]) > bench.rounds_for(getattr(case, "id", "")):
                extra.append(item)
                continue
        kept.append(item)
    if extra:
        config.hook.pytest_deselected(items=extra)
        items[:] = kept
    blocks: Dict[str, List[Tuple[int, int, pytest.Item]]] = {}
    order: List[Any] = []
    for index, item in enumerate(items):
        key = _interleave_key(item)
        if key is None:
            order.append(item)
            continue
        if key not in blocks:
            blocks[key] = []
            order.append(key)
        number = int(item.callspec.params["bench_round"])  # type: ignore[attr-defined]
        blocks[key].append((number, index, item))
    items[:] = [member for entry in order for member in (
        [item for _n, _i, item in sorted(blocks[entry], key=lambda t: (t[0], t[1]))]
        if isinstance(entry, str) else [entry])]


_PROGRESS = pytest.StashKey[Progress]()
_POSITIONS = pytest.StashKey[Dict[str, Position]]()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Number the echo runs that will run (after ``-k`` and the like): case k of n, round
    r of R, target t of T, for the progress line."""
    blocks: Dict[str, List[pytest.Item]] = {}
    for item in session.items:
        key = _interleave_key(item)
        if key is not None:
            blocks.setdefault(key, []).append(item)
    positions: Dict[str, Position] = {}
    for case_number, members in enumerate(blocks.values(), 1):
        rounds: Dict[int, List[pytest.Item]] = {}
        for item in members:
            number = int(item.callspec.params["bench_round"])  # type: ignore[attr-defined]
            rounds.setdefault(number, []).append(item)
        for number, runs in rounds.items():
            for target_number, item in enumerate(runs, 1):
                positions[item.nodeid] = Position(case_number, len(blocks), number,
                                                  max(rounds), target_number, len(runs))
    session.config.stash[_POSITIONS] = positions
    session.config.stash[_PROGRESS] = Progress(total=len(positions))


class _CaseLock:
    """An exclusive flock on a file, held while one case block's rounds run."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.block: Optional[str] = None
        self.handle: Optional[IO[str]] = None

    def enter(self, block: Optional[str], config: pytest.Config) -> None:
        if block == self.block:
            return
        self.release()
        if block is None:
            return
        self.handle = open(self.path, "a")  # noqa: SIM115 (closed in release())
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(config, f"  waiting for the lock {self.path} ...")
            fcntl.flock(self.handle, fcntl.LOCK_EX)
        self.block = block

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
        self.handle, self.block = None, None


_LOCK = pytest.StashKey[_CaseLock]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    bench = settings(item.config)
    if bench.lock is None:
        return
    lock = item.config.stash.get(_LOCK, None)
    if lock is None:
        lock = item.config.stash[_LOCK] = _CaseLock(bench.lock)
    block = _interleave_key(item)
    if block is None and "benchmark" in getattr(item, "fixturenames", ()):
        block = item.nodeid.split("::")[0]  # the in-process primitives: one block per module
    lock.enter(block, item.config)


def pytest_unconfigure(config: pytest.Config) -> None:
    lock = config.stash.get(_LOCK, None)
    if lock is not None:
        lock.release()


@pytest.fixture
def server_python(pytestconfig: pytest.Config) -> str:
    """The server interpreter, when only one was asked for."""
    return settings(pytestconfig).pythons[0]


@pytest.fixture
def variant_name(variant: str) -> str:
    """An in-process poller variant, skipped with the registry's reason where it cannot run."""
    reason = {v.name: v.reason for v in pollers.variants()}[variant]
    if reason is not None:
        pytest.skip(f"{variant}: {reason}")
    return variant


def progress(config: pytest.Config, text: str) -> None:
    """A line on the terminal even while output is captured: long runs show where they are."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    if capture is None:
        reporter.write_line(text)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(text)


def _skip_reason(target: Target, case: EchoCase, interpreter: Interpreter,
                 bench: BenchSettings, python: str) -> Optional[str]:
    if target.native and python != bench.pythons[0]:
        return f"{target.name} is compiled: it runs once, under the first --server-python"
    limit = DESCRIPTOR_LIMITS.get(target.name)
    if limit is not None and case.connections + case.idle + 16 >= limit:
        return (f"select(2) cannot watch descriptors at or above FD_SETSIZE ({limit}); "
                f"{case.connections + case.idle} connections need more")
    return interpreter.reason_unavailable(target)


#: The echo fixture: run(case), or run(case, setting, server_env, close_one_first) for a
#: server setting.
EchoBench = Callable[..., None]


@pytest.fixture
def echo_bench(benchmark: Any, pytestconfig: pytest.Config, request: pytest.FixtureRequest,
               target: Target, server_python: str, bench_round: int) -> EchoBench:
    """Run one round of an echo case against ``target`` under ``server_python``; record it.

    One pytest-benchmark entry per round (the whole run, whose wall time is not a
    figure to read); the load generator's figures, the round number and the
    number of rounds go into ``benchmark.extra_info``. ``setting`` names a server
    setting (an environment, ``server_env``; one client served and gone before the
    load, ``close_one_first``) that the report shows as its own row.
    A run that fails its sanity checks fails the test. A window with more foreign CPU
    than ``--bench-foreign-threshold`` is discarded and run again (`run_echo_held`);
    the discarded windows are in ``extra_info["discarded_windows"]``.
    """
    bench = settings(pytestconfig)
    interpreter = probe(server_python)
    tracker = pytestconfig.stash.get(_PROGRESS, None) or Progress(total=1)
    where = pytestconfig.stash.get(_POSITIONS, {}).get(
        request.node.nodeid, Position(1, 1, bench_round, bench.most_rounds, 1, 1))

    def run(case: EchoCase, setting: str = "", server_env: Optional[Dict[str, str]] = None,
            close_one_first: bool = False) -> None:
        reason = _skip_reason(target, case, interpreter, bench, server_python)
        if reason is not None:
            tracker.end(ran=False)
            pytest.skip(reason)
        benchmark.group = case.group
        results = []
        tracker.begin()
        progress(pytestconfig, tracker.line(where))

        def attempt() -> EchoResult:
            result = run_echo(target, case.spec(bench.duration, bench.warmup), server_python,
                              bench.server_cpu, bench.client_cpu, bench.realtime,
                              bench.server_args, server_env or {}, close_one_first)
            check(result)  # a broken run fails whatever its foreign figure
            return result

        def discarded(result: EchoResult, number: int) -> None:
            tracker.rerun()
            progress(pytestconfig, f"  window discarded: foreign CPU {result.foreign_cpu_pct}% "
                     f"of one core > {bench.foreign_threshold:g}%; rerun {number} of at most "
                     f"{bench.foreign_reruns}")

        def once() -> None:
            results.append(run_echo_held(attempt, bench.foreign_threshold,
                                         bench.foreign_reruns, discarded))

        try:
            benchmark.pedantic(once, rounds=1, iterations=1, warmup_rounds=0)
            result = results[-1]
        except BenchmarkError as exc:
            pytest.fail(str(exc), pytrace=False)
        finally:
            tracker.end()
        benchmark.extra_info.update(result.figures())
        benchmark.extra_info.update({
            "case": case.id, "kind": case.kind, "group": case.group,
            "target_kind": target.kind, "description": target.description,
            "server_python": server_python,
            "server_args": " ".join(bench.server_args) if target.kind == "variant" else "",
            "round": bench_round, "rounds": bench.rounds_for(case.id), "cheap": bench.cheap,
            "setting": setting,
            "server_env": " ".join(f"{k}={v}" for k, v in sorted((server_env or {}).items())),
            "close_one_first": close_one_first,
            # How busy the machine was: the 1-minute load average as this run ended.
            "load_average_1min": _one_minute_load(),
        })
        label = f"{target.name} ({result.interpreter})" + (f" [{setting}]" if setting else "")
        progress(pytestconfig, f"  r{bench_round} {case.group:<48} {label:<45} "
                 f"{summary(result)}")

    return run


# -- the machine, for the report ----------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        return subprocess.run(["sysctl", "-n", "hw.model"], capture_output=True, text=True,
                              timeout=10).stdout.strip() or platform.processor()
    except (OSError, subprocess.SubprocessError):
        return platform.processor()


def _version(module: str) -> Optional[str]:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def _compiler_version() -> str:
    try:
        from ..loadgen.build import compiler

        output = subprocess.run([compiler(), "--version"], capture_output=True, text=True,
                                timeout=30).stdout
        return output.splitlines()[0] if output else "?"
    except Exception as exc:
        return f"unavailable ({exc})"


def _load_average() -> Optional[List[float]]:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def _one_minute_load() -> Optional[float]:
    loads = _load_average()
    return loads[0] if loads else None


def pytest_benchmark_update_machine_info(config: pytest.Config,
                                         machine_info: Dict[str, Any]) -> None:
    """Add what the report shows at its top: CPU, kernel, interpreters, package versions."""
    bench = settings(config)
    machine_info["pollers_bench"] = {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "kernel": f"{platform.system()} {platform.release()} {platform.version()}",
        "server_cpu": bench.server_cpu,
        "client_cpu": bench.client_cpu,
        "realtime": bench.realtime,
        "server_args": " ".join(bench.server_args),
        "duration_s": bench.duration,
        "warmup_s": bench.warmup,
        "rounds": bench.rounds,
        "case_rounds": bench.case_rounds,
        "cheap": bench.cheap,
        "foreign_threshold_pct": bench.foreign_threshold,
        "foreign_reruns": bench.foreign_reruns,
        "load_average_start": config.stash.get(LOAD_AT_START, None),
        "load_average_end": _load_average(),
        "server_interpreters": [probe(python).as_dict() for python in bench.pythons],
        "pytest_python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": {name: _version(name) for name in
                     ("pollers", "tornado", "uvloop", "pytest", "pytest-benchmark")},
        "compiler": _compiler_version(),
    }
