"""Run one echo benchmark: start a server, drive it with the C load generator, check, measure.

The server (a ``python -m server`` variant or a peer, under any interpreter) and
the load generator run as separate processes pinned to different CPUs where the
OS allows. The server's CPU time (user + system, all its threads) is sampled at
the edges of the load generator's measured window, which gives **server CPU
microseconds per echoed message**: a figure that stays honest even when the
client is the bottleneck. A run whose client used more CPU than its server is
marked client-bound.

Every run is sanity-checked (`check`): every byte sent came back, in order and
intact, and there were no errors, so a broken server cannot post a good number.

One run by hand: ``python -m benchmarks.harness`` (`benchmarks.harness`).
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import IO, Any, Callable, Dict, List, Optional, Sequence, Tuple

import psutil

from ..loadgen.build import build
from .foreign import clean_window, rerun_while_foreign
from .targets import (
    REPO_ROOT,
    Target,
    default_python,
    probe,
    result_name,
    server_env,
)

BANNER = re.compile(r"listening on \[?([^\]\s]+?)\]?:(\d+)")
STARTUP_TIMEOUT = 60.0  # PyPy plus Tornado can take a while to import on a busy machine
STOP_TIMEOUT = 15.0


#: CPUs to pin a process to (None: no pinning).
CpuSet = Optional[Tuple[int, ...]]


class BenchmarkError(RuntimeError):
    """A run failed or its figures cannot be trusted (lost bytes, errors, a crashed server)."""


@dataclass(frozen=True)
class LoadSpec:
    """What the load generator does: N connections x D messages of S bytes, I idle."""

    connections: int = 1
    depth: int = 1
    size: int = 1024
    idle: int = 0
    warmup: float = 0.5
    duration: float = 2.0

    def arguments(self) -> List[str]:
        return [
            "--connections", str(self.connections), "--depth", str(self.depth),
            "--size", str(self.size), "--idle", str(self.idle),
            "--warmup", str(self.warmup), "--duration", str(self.duration),
        ]

    @property
    def time_budget(self) -> float:
        """An upper bound on the load generator's run time, idle set-up included."""
        return self.warmup + self.duration + 30.0 + self.idle / 200.0


@dataclass
class EchoResult:
    """The figures of one run; ``loadgen`` is the load generator's JSON as it printed it."""

    target: str
    interpreter: str
    spec: LoadSpec
    loadgen: Dict[str, Any]
    server_cpu_s: float
    server_cpu_source: str
    server_rss_kib_before: Optional[int]
    server_rss_kib_after: Optional[int]
    server_exit: Optional[int]
    server_stderr_tail: str = ""
    notes: List[str] = field(default_factory=list)
    #: CPU time that neither the server, the load generator nor this harness used on the
    #: machine during the window, in % of one core (`foreign_cpu_percent`); None if unread.
    foreign_cpu_pct: Optional[float] = None
    #: The windows discarded before this one for their foreign CPU (`rerun_while_foreign`):
    #: each one's figures, as `window_figures` gives them.
    discarded: List[Dict[str, Any]] = field(default_factory=list)
    #: The threshold the windows were held to (None: not held to one).
    foreign_threshold_pct: Optional[float] = None

    @property
    def round_trips(self) -> int:
        return int(self.loadgen["round_trips"])

    @property
    def server_cpu_us_per_msg(self) -> float:
        return self.server_cpu_s / self.round_trips * 1e6 if self.round_trips else float("nan")

    @property
    def client_cpu_us_per_msg(self) -> float:
        cpu = float(self.loadgen["client_cpu_s"])
        return cpu / self.round_trips * 1e6 if self.round_trips else float("nan")

    @property
    def client_bound(self) -> bool:
        """True when the load generator used more CPU than the server in the window."""
        return float(self.loadgen["client_cpu_s"]) > self.server_cpu_s

    @property
    def rss_kib_per_connection(self) -> Optional[float]:
        """Server memory growth per open connection (active + idle), in KiB."""
        if self.server_rss_kib_before is None or self.server_rss_kib_after is None:
            return None
        connections = self.spec.connections + self.spec.idle
        return (self.server_rss_kib_after - self.server_rss_kib_before) / connections

    def figures(self) -> Dict[str, Any]:
        """The flat figures that go into pytest-benchmark's ``extra_info`` and the report."""
        latency = self.loadgen["latency_us"]
        return {
            "target": self.target,
            "interpreter": self.interpreter,
            **{f"load_{key}": value for key, value in asdict(self.spec).items()},
            "round_trips": self.round_trips,
            "round_trips_per_s": self.loadgen["round_trips_per_s"],
            "mb_per_s": self.loadgen["mb_per_s"],
            "latency_p50_us": latency["p50"],
            "latency_p90_us": latency["p90"],
            "latency_p99_us": latency["p99"],
            "latency_p999_us": latency["p999"],
            "latency_max_us": latency["max"],
            "latency_mean_us": latency["mean"],
            "server_cpu_s": self.server_cpu_s,
            "server_cpu_us_per_msg": self.server_cpu_us_per_msg,
            "server_cpu_source": self.server_cpu_source,
            "client_cpu_s": self.loadgen["client_cpu_s"],
            "client_cpu_us_per_msg": self.client_cpu_us_per_msg,
            "client_bound": self.client_bound,
            "server_rss_kib_before": self.server_rss_kib_before,
            "server_rss_kib_after": self.server_rss_kib_after,
            "rss_kib_per_connection": self.rss_kib_per_connection,
            "window_s": self.loadgen["window_s"],
            "bytes_sent": self.loadgen["bytes_sent"],
            "bytes_received": self.loadgen["bytes_received"],
            "loadgen_backend": self.loadgen["backend"],
            "errors": self.loadgen["errors"],
            "foreign_cpu_pct": self.foreign_cpu_pct,
            "foreign_threshold_pct": self.foreign_threshold_pct,
            "discarded_windows": list(self.discarded),
            "clean_window": clean_window(self.foreign_cpu_pct, self.foreign_threshold_pct),
        }

    def window_figures(self) -> Dict[str, Any]:
        """The few figures kept of a discarded window: enough to see what it would have said."""
        return {
            "foreign_cpu_pct": self.foreign_cpu_pct,
            "round_trips_per_s": self.loadgen["round_trips_per_s"],
            "server_cpu_us_per_msg": self.server_cpu_us_per_msg,
            "latency_p50_us": self.loadgen["latency_us"]["p50"],
        }


# -- the machine's other work during a window ---------------------------------------


def other_processes_cpu_seconds(ours: Sequence[int]) -> Dict[Tuple[int, float], float]:
    """The CPU time each process on the machine has used, but for ``ours`` and this one.

    Keyed by pid and creation time, so that a pid reused within a window is a new process.
    A process's figure includes the children it has reaped (psutil's ``children_user`` and
    ``children_system``), so short-lived work that its parent waits for is seen. Linux
    gives each figure in 10 ms ticks, but derived from the scheduler's exact run time: an
    idle process reads the same at both edges, so noise comes only from busy processes.
    """
    skip = {*ours, os.getpid()}
    seconds: Dict[Tuple[int, float], float] = {}
    for process in psutil.process_iter(["cpu_times", "create_time"]):
        if process.pid in skip:
            continue
        times, created = process.info["cpu_times"], process.info["create_time"]
        if times is None or created is None:
            continue  # gone or unreadable meanwhile
        seconds[(process.pid, created)] = (
            times.user + times.system + times.children_user + times.children_system
        )
    return seconds


@dataclass
class ForeignSample:
    """What `foreign_cpu_percent` needs at one edge of a window."""

    wall: float
    others: Dict[Tuple[int, float], float]

    @classmethod
    def take(cls, ours: Sequence[int]) -> ForeignSample:
        return cls(time.monotonic(), other_processes_cpu_seconds(ours))


def foreign_cpu_percent(start: ForeignSample, end: ForeignSample) -> float:
    """The CPU time that processes other than the sampled ones used between two samples,
    in % of one core: 100 means one whole CPU was busy with other work throughout.

    A process born within the window counts from zero; one that ended within it is lost,
    unless its parent reaped it (then the parent's figure holds it).
    """
    wall = end.wall - start.wall
    if wall <= 0:
        return 0.0
    foreign = sum(
        max(0.0, seconds - start.others.get(key, 0.0)) for key, seconds in end.others.items()
    )
    return round(100.0 * foreign / wall, 1)


# -- the server's CPU time and memory ----------------------------------------------


def _linux_cpu_clock(pid: int) -> int:
    """The clock id of process ``pid``'s CPU-time clock (what clock_getcpuclockid returns)."""
    return ((~pid) << 3) | 2  # CPUCLOCK_SCHED of the whole process, as the kernel encodes it


def process_tree(pid: int) -> List[int]:
    """``pid`` and its live descendants (a server's workers)."""
    try:
        return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        return [pid]


def processes_cpu_seconds(pids: Sequence[int]) -> Tuple[float, str]:
    """Total user + system CPU time of ``pids`` (processes that exited count 0)."""
    total, source = 0.0, "none"
    for pid in pids:
        try:
            seconds, source = process_cpu_seconds(pid)
        except (OSError, psutil.Error):
            continue
        total += seconds
    return total, source


def process_cpu_seconds(pid: int) -> Tuple[float, str]:
    """User + system CPU time of process ``pid`` (all threads) and how it was read.

    Linux: the process's CPU-time clock, in nanoseconds (``cpu-clock``); psutil's
    figure (``psutil``, clock ticks on Linux) where that clock cannot be read, and
    on every other platform.
    """
    if sys.platform.startswith("linux"):
        try:
            return time.clock_gettime(_linux_cpu_clock(pid)), "cpu-clock"
        except (OSError, AttributeError):
            pass
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system, "psutil"


def process_rss_kib(pid: int) -> Optional[int]:
    """Resident memory of ``pid`` in KiB, or None if it cannot be read."""
    try:
        return int(psutil.Process(pid).memory_info().rss) // 1024
    except psutil.Error:
        return None


# -- pinning and limits ------------------------------------------------------------


def processes_rss_kib(pids: Sequence[int]) -> Optional[int]:
    """Total resident memory of ``pids`` in KiB, or None if none can be read."""
    sizes = [size for size in map(process_rss_kib, pids) if size is not None]
    return sum(sizes) if sizes else None


def default_cpus() -> Tuple[CpuSet, CpuSet]:
    """(server CPUs, client CPUs): the first two allowed CPUs, or no pinning with fewer."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:
        count = os.cpu_count() or 1
        allowed = list(range(count))
    if len(allowed) >= 2:
        return (allowed[0],), (allowed[1],)
    return None, None


def parse_cpus(text: str) -> CpuSet:
    """``"0"``, ``"0,1"`` or ``"none"`` as a `CpuSet`; ValueError if malformed."""
    if text.strip().lower() == "none":
        return None
    return tuple(int(part) for part in text.split(","))


REALTIME_PRIORITY = 10


def realtime_unavailable_reason() -> Optional[str]:
    """None if this process may start SCHED_FIFO children, else why not."""
    if not hasattr(os, "sched_setscheduler") or not hasattr(os, "SCHED_FIFO"):
        return f"SCHED_FIFO is not available on {sys.platform}"
    if os.sched_get_priority_max(os.SCHED_FIFO) < REALTIME_PRIORITY:
        return "SCHED_FIFO priorities are too low here"
    soft, _hard = resource.getrlimit(getattr(resource, "RLIMIT_RTPRIO", resource.RLIMIT_NOFILE))
    if os.geteuid() != 0 and soft < REALTIME_PRIORITY:
        return "SCHED_FIFO needs root or RLIMIT_RTPRIO (ulimit -r)"
    return None


def _child_setup(cpus: CpuSet, realtime: bool = False) -> Callable[[], None]:
    """What runs in a child before exec: pin to ``cpus``, raise RLIMIT_NOFILE to its maximum,
    and, if ``realtime``, switch to SCHED_FIFO so other work on the CPU cannot preempt it.
    """

    def setup() -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if cpus is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(cpus))
        if realtime:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))

    return setup


def pin_prefix(cpus: CpuSet) -> List[str]:
    """A command prefix that pins to ``cpus`` where Python cannot (FreeBSD's cpuset)."""
    if cpus is None or hasattr(os, "sched_setaffinity"):
        return []
    if shutil.which("cpuset"):
        return ["cpuset", "-l", ",".join(map(str, cpus))]
    return []


# -- the server process --------------------------------------------------------------


class ServerProcess:
    """A server started with ``command``; `start` waits for its banner, `stop` sends SIGTERM.

    ``pids`` is the server process and the processes it forked before its banner
    (``--workers``): their CPU time and memory are the server's. ``env`` is added to
    `server_env` of ``target`` (which, in the emulated kqueue mode, holds the emulation
    for the kqueue variant only).
    """

    def __init__(self, command: Sequence[str], cpus: CpuSet, realtime: bool = False,
                 env: Optional[Dict[str, str]] = None, target: Optional[Target] = None,
                 own_group: bool = False) -> None:
        self.command = list(command)
        self.own_group = own_group  # leads a process group of its own (os.killpg)
        self.env = {**server_env(target), **(env or {})}
        self.cpus = cpus
        self.realtime = realtime
        self.pids: List[int] = []
        self.process: Optional[subprocess.Popen[str]] = None
        self.host = ""
        self.port = 0
        self._stderr: IO[str] = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed in close())
        self._stdout_lines: List[str] = []

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self.process = subprocess.Popen(
            pin_prefix(self.cpus) + self.command, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=self.env,
            cwd=str(REPO_ROOT), preexec_fn=_child_setup(self.cpus, self.realtime),
            start_new_session=self.own_group,
        )
        banner: List[str] = []
        reader = threading.Thread(target=self._read_stdout, args=(banner,), daemon=True)
        reader.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not banner and time.monotonic() < deadline and self.process.poll() is None:
            time.sleep(0.01)
        match = BANNER.search(banner[0]) if banner else None
        if match is None:
            self.kill()
            raise BenchmarkError(
                f"server did not print 'listening on HOST:PORT' within {STARTUP_TIMEOUT:g} s "
                f"(exit status {self.process.poll()}): {' '.join(self.command)}\n"
                f"{self.stderr_tail()}"
            )
        self.host, self.port = match.group(1), int(match.group(2))
        self.pids = process_tree(self.process.pid)

    def _read_stdout(self, banner: List[str]) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            if not banner:
                banner.append(line)
            else:
                self._stdout_lines.append(line)

    def stderr(self) -> str:
        """Everything the server has logged so far."""
        self._stderr.seek(0)
        return self._stderr.read()

    def stderr_tail(self, lines: int = 15) -> str:
        return "".join(self.stderr().splitlines(keepends=True)[-lines:])

    def stop(self) -> int:
        """SIGTERM, then wait for a graceful exit; returns the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchmarkError(
                f"server did not exit within {STOP_TIMEOUT:g} s of SIGTERM: "
                f"{' '.join(self.command)}\n{self.stderr_tail()}"
            ) from None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def close(self) -> None:
        self.kill()
        self._stderr.close()


# -- one run ---------------------------------------------------------------------------


def _sampled(loadgen: subprocess.Popen[str]) -> None:
    """Tell a ``--sync`` load generator that its window mark has been sampled."""
    assert loadgen.stdin is not None
    try:
        loadgen.stdin.write("\n")
        loadgen.stdin.flush()
    except OSError:
        pass  # it has died: its exit status and report say why


def run_loadgen(server: ServerProcess, spec: LoadSpec, cpus: CpuSet,
                realtime: bool = False
                ) -> Tuple[Dict[str, Any], float, str, Optional[int], Optional[float]]:
    """Drive ``server``; return the loadgen JSON, the server CPU seconds in its window,
    how that CPU time was read, the server's RSS at the window's end and the foreign
    CPU % of the window (`foreign_cpu_percent`; None if the marks were not seen)."""
    command = [*pin_prefix(cpus), str(build("loadgen")), "--host", server.host,
               "--port", str(server.port), *spec.arguments(), "--sync", "1"]
    # --sync: the load generator waits at each window mark until the CPU times are
    # sampled (`_sampled`), so that a harness slow to read the mark still samples at
    # the window's edges.
    loadgen = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=_child_setup(cpus, realtime))
    watchdog = threading.Timer(spec.time_budget + 10, loadgen.kill)
    watchdog.start()
    cpu_start = cpu_end = 0.0
    source = "none"
    rss_after: Optional[int] = None
    ours = [*server.pids, loadgen.pid]
    first: Optional[ForeignSample] = None
    foreign: Optional[float] = None
    last = ""
    try:
        assert loadgen.stdout is not None and loadgen.stderr is not None
        for line in loadgen.stdout:
            if line.startswith("MARK window-start"):
                cpu_start, source = processes_cpu_seconds(server.pids)
                first = ForeignSample.take(ours)
                _sampled(loadgen)
            elif line.startswith("MARK window-end"):
                cpu_end, source = processes_cpu_seconds(server.pids)
                if first is not None:
                    foreign = foreign_cpu_percent(first, ForeignSample.take(ours))
                _sampled(loadgen)
                rss_after = processes_rss_kib(server.pids)
            elif line.strip():
                last = line
        errors = loadgen.stderr.read()
        status = loadgen.wait(10)
    finally:
        watchdog.cancel()
        if loadgen.poll() is None:
            loadgen.kill()
            loadgen.wait(10)
        if loadgen.stdin is not None:
            loadgen.stdin.close()
    try:
        report: Dict[str, Any] = json.loads(last)
    except ValueError:
        raise BenchmarkError(
            f"load generator gave no result (exit status {status}): {errors.strip()}\n"
            f"server stderr:\n{server.stderr_tail()}"
        ) from None
    if "fatal" in report:
        raise BenchmarkError(f"load generator: {report['fatal']}")
    return report, cpu_end - cpu_start, source, rss_after, foreign


def run_echo(target: Target, spec: LoadSpec, python: Optional[str] = None,
             server_cpus: CpuSet = None, client_cpus: CpuSet = None,
             realtime: bool = False, server_args: Sequence[str] = (),
             env: Optional[Dict[str, str]] = None, close_one_first: bool = False) -> EchoResult:
    """Start ``target`` under ``python``, drive it with ``spec``, stop it; return the figures.

    ``realtime`` runs both processes under SCHED_FIFO (Linux, root), which shields a
    run from other work on a shared machine: every run is bounded, and the kernel's
    real-time throttling still leaves 5% of each CPU to the rest. ``server_args`` are
    added to the command line of the project's server (``--workers 2``...), not to peers'.
    ``env`` is added to the server's environment (``GLIBC_TUNABLES=...``), peers' too.
    ``close_one_first``: before the load, one client connects, echoes a byte and
    closes, as every server that has served a client has seen (`close_one_connection`).

    Raises BenchmarkError when the server fails to start, crashes or does not exit 0
    on SIGTERM. The figures themselves are checked by `check`.
    """
    python = python or default_python()
    interpreter = "native" if target.native else probe(python).label
    server = ServerProcess(target.command(python, server_args), server_cpus, realtime, env,
                           target)
    try:
        server.start()
        if close_one_first:
            close_one_connection(server.host, server.port)
        rss_before = processes_rss_kib(server.pids)
        report, server_cpu_s, source, rss_after, foreign = run_loadgen(
            server, spec, client_cpus, realtime)
        status = server.stop()
        return EchoResult(
            target=result_name(target), interpreter=interpreter, spec=spec, loadgen=report,
            server_cpu_s=server_cpu_s, server_cpu_source=source,
            server_rss_kib_before=rss_before, server_rss_kib_after=rss_after,
            server_exit=status, server_stderr_tail=server.stderr_tail(),
            foreign_cpu_pct=foreign,
        )
    finally:
        server.close()


def run_echo_held(run: Callable[[], EchoResult], threshold: Optional[float],
                  reruns: int, on_discard: Optional[Callable[[EchoResult, int], None]] = None,
                  ) -> EchoResult:
    """``run()`` (a `run_echo`) held to ``threshold``: its windows with more foreign CPU
    are discarded and run again (`rerun_while_foreign`), at most ``reruns`` times. The
    result carries the threshold and the discarded windows' figures; it says whether it
    is clean itself (``figures()["clean_window"]``)."""
    result, discarded = rerun_while_foreign(run, lambda r: r.foreign_cpu_pct, threshold,
                                            reruns, on_discard)
    result.foreign_threshold_pct = threshold
    result.discarded = [window.window_figures() for window in discarded]
    return result


def close_one_connection(host: str, port: int, timeout: float = 10.0) -> None:
    """Connect, echo one byte, half-close and wait for the server to close: one whole client.

    A fresh server process has never read an end of file; one that has served a
    client has, and in CPython a read that ends in EOF frees its whole read buffer
    (for asyncio's transports the 256 KiB one, which raises glibc's mmap threshold).
    Raises BenchmarkError if the byte does not come back.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"!")
        if sock.recv(1) != b"!":
            raise BenchmarkError("the server did not echo the first connection's byte")
        sock.shutdown(socket.SHUT_WR)
        try:
            while sock.recv(4096):
                pass
        except OSError:
            pass  # a reset is a close too


def check(result: EchoResult) -> None:
    """Raise BenchmarkError unless the run is trustworthy.

    Every byte sent was echoed back intact (the load generator compares each one
    with the pattern it sent), there were no errors, the idle connections all
    stayed open, some round trips were measured, and the server exited 0.
    """
    report = result.loadgen
    problems = []
    if report["errors"]:
        problems.append(f"{report['errors']} error(s): {'; '.join(report['error_messages'])}")
    if report["bytes_sent"] != report["bytes_received"]:
        problems.append(f"{report['bytes_sent']} bytes sent but {report['bytes_received']} echoed")
    idle = result.spec.idle
    if report["idle_established"] != idle or report["idle_open_at_end"] != idle:
        problems.append(f"idle connections: {report['idle_established']} established, "
                        f"{report['idle_open_at_end']} still open of {result.spec.idle}")
    if result.round_trips <= 0:
        problems.append("no round trip completed in the measured window")
    if result.server_exit != 0:
        problems.append(f"server exited with status {result.server_exit} after SIGTERM")
    if problems:
        raise BenchmarkError(
            f"{result.target} ({result.interpreter}): " + "; ".join(problems)
            + (f"\nserver stderr:\n{result.server_stderr_tail}"
               if result.server_stderr_tail else "")
        )


def summary(result: EchoResult) -> str:
    """One human line: the figures that matter, for progress output."""
    latency = result.loadgen["latency_us"]
    flag = "  [client-bound]" if result.client_bound else ""
    if result.foreign_cpu_pct is not None:
        flag += f"  foreign {result.foreign_cpu_pct:.1f}%"
    if result.discarded:
        flag += f" ({len(result.discarded)} window(s) discarded)"
    if clean_window(result.foreign_cpu_pct, result.foreign_threshold_pct) is False:
        flag += "  [no clean window]"
    return (f"{result.round_trips / float(result.loadgen['window_s']):>10,.0f} rt/s "
            f"{result.loadgen['mb_per_s']:>8.1f} MB/s  p50 {latency['p50']:>8.1f} us  "
            f"p99 {latency['p99']:>8.1f} us  server {result.server_cpu_us_per_msg:6.2f} us/msg  "
            f"client {result.client_cpu_us_per_msg:6.2f} us/msg{flag}")
