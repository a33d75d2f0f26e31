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
"""

from __future__ import annotations

import fnmatch
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest

import pollers

from .cases import EchoCase
from .harness import (
    BenchmarkError,
    CpuSet,
    check,
    default_cpus,
    parse_cpus,
    realtime_unavailable_reason,
    run_echo,
    summary,
)
from .targets import TARGETS, Interpreter, Target, probe

FD_SETSIZE = 1024
SELECT_TARGETS = ("selectors-select",)


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


def pytest_configure(config: pytest.Config) -> None:
    """Create the folder of ``--benchmark-json`` (``reports/`` is not in a fresh clone)."""
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
    result = BenchSettings(
        duration=duration, warmup=warmup, pythons=[p.strip() for p in pythons],
        target_patterns=[p.strip() for p in patterns.split(",") if p.strip()],
        server_cpu=_cpu(config.getoption("--server-cpu"), server_default),
        client_cpu=_cpu(config.getoption("--client-cpu"), client_default),
        server_args=shlex.split(config.getoption("--server-args")
                                or os.environ.get("BENCH_SERVER_ARGS", "")),
        realtime=bool(config.getoption("--bench-realtime")
                      or os.environ.get("BENCH_REALTIME", "") not in ("", "0")),
    )
    if result.realtime:
        reason = realtime_unavailable_reason()
        if reason is not None:
            raise pytest.UsageError(f"--bench-realtime: {reason}")
    config.stash[_SETTINGS] = result
    return result


def _interpreter_ids(pythons: List[str]) -> List[str]:
    tags = [probe(python).tag for python in pythons]
    return [tag if tags.count(tag) == 1 else f"{tag}-{index}" for index, tag in enumerate(tags)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    bench = settings(metafunc.config)
    if "target" in metafunc.fixturenames:
        names = [name for name in TARGETS if bench.selected(name)]
        metafunc.parametrize("target", [TARGETS[name] for name in names], ids=names)
    if "server_python" in metafunc.fixturenames and len(bench.pythons) > 1:
        metafunc.parametrize("server_python", bench.pythons, ids=_interpreter_ids(bench.pythons))
    if "variant" in metafunc.fixturenames:
        names = [name for name in pollers.VARIANTS if bench.selected(name)]
        metafunc.parametrize("variant", names, ids=names)


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
    if target.name in SELECT_TARGETS and case.connections + case.idle + 16 >= FD_SETSIZE:
        return (f"select(2) cannot watch descriptors at or above FD_SETSIZE ({FD_SETSIZE}); "
                f"{case.connections + case.idle} connections need more")
    return interpreter.reason_unavailable(target)


@pytest.fixture
def echo_bench(benchmark: Any, pytestconfig: pytest.Config, target: Target,
               server_python: str) -> Callable[[EchoCase], None]:
    """Run one echo case against ``target`` under ``server_python`` and record it.

    One pytest-benchmark round (the whole run); the load generator's figures go
    into ``benchmark.extra_info``. A run that fails its sanity checks fails the test.
    """
    bench = settings(pytestconfig)
    interpreter = probe(server_python)

    def run(case: EchoCase) -> None:
        reason = _skip_reason(target, case, interpreter, bench, server_python)
        if reason is not None:
            pytest.skip(reason)
        benchmark.group = case.group
        results = []

        def once() -> None:
            results.append(run_echo(target, case.spec(bench.duration, bench.warmup),
                                    server_python, bench.server_cpu, bench.client_cpu,
                                    bench.realtime, bench.server_args))

        try:
            benchmark.pedantic(once, rounds=1, iterations=1, warmup_rounds=0)
            result = results[-1]
            check(result)
        except BenchmarkError as exc:
            pytest.fail(str(exc), pytrace=False)
        benchmark.extra_info.update(result.figures())
        benchmark.extra_info.update({
            "case": case.id, "kind": case.kind, "group": case.group,
            "target_kind": target.kind, "description": target.description,
            "server_python": server_python,
            "server_args": " ".join(bench.server_args) if target.kind == "variant" else "",
        })
        label = f"{target.name} ({result.interpreter})"
        progress(pytestconfig, f"  {case.group:<48} {label:<45} {summary(result)}")

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
        from .build import compiler

        output = subprocess.run([compiler(), "--version"], capture_output=True, text=True,
                                timeout=30).stdout
        return output.splitlines()[0] if output else "?"
    except Exception as exc:
        return f"unavailable ({exc})"


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
        "server_interpreters": [probe(python).as_dict() for python in bench.pythons],
        "pytest_python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": {name: _version(name) for name in
                     ("pollers", "tornado", "uvloop", "pytest", "pytest-benchmark")},
        "compiler": _compiler_version(),
    }
