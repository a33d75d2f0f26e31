"""Deterministic costs of an echo target: user-space instructions and system calls per message.

Timings on a shared machine move by a quarter; these two counts do not. Both come
from the real server process of a target (a variant of ``python -m server``, an
attached variant's host, a peer, the C peer), driven over loopback by a lockstep
client (`client_main`) for a fixed number of messages:

- the client holds ``connections`` connections and, in each *batch*, sends one
  message of ``size`` bytes on ``ready`` of them (in turn round the connections),
  then reads every echo back before the next batch;
- the client runs under SCHED_FIFO on the server's CPU (or, where that is not
  allowed, the server runs as SCHED_IDLE there), so the server cannot run while the
  client sends: each batch reaches it whole, it sees ``ready`` readable connections
  in one poll, and the count does not depend on timing;
- the server runs under ``valgrind --tool=callgrind`` (user-space instructions,
  ``Collected``) or under ``strace -f -c`` (system calls by name), with a fixed hash
  seed. Each tool runs twice, with a few batches and with ``batches`` more, and the
  difference divided by the extra messages is the cost per message: start-up,
  connection set-up and shutdown cancel out.

The counts are the server's alone (the client is another process). Linux only (valgrind
and strace); a tool that is missing, or an interpreter valgrind cannot run, gives a
reason instead of a count.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import psutil

from .harness import BANNER, STARTUP_TIMEOUT, CpuSet, default_cpus, realtime_unavailable_reason
from .targets import REPO_ROOT, Target, probe, result_name, server_env

#: Batches of every count before the measured ones (the short run has only these).
BASE_BATCHES = 20
#: How long one tool's run may take at most (a server under callgrind is ~50x slower).
RUN_TIMEOUT = 900.0
CLIENT_PRIORITY = 20


@dataclass(frozen=True)
class CountSpec:
    """The fixed load of a count: ``batches`` extra batches of ``ready`` messages of
    ``size`` bytes over ``connections`` connections."""

    connections: int = 64
    ready: int = 47
    size: int = 1024
    batches: int = 200

    @property
    def messages(self) -> int:
        """The messages the difference of the two runs divides by."""
        return self.batches * self.ready

    @property
    def label(self) -> str:
        size = f"{self.size // 1024} KiB" if self.size % 1024 == 0 else f"{self.size} B"
        return f"{size} x {self.connections} connections, {self.ready} ready per poll"


@dataclass
class Costs:
    """What one target costs per message; a None count comes with its reason."""

    target: str
    interpreter: str
    spec: CountSpec
    scheduling: str = ""
    instructions_per_msg: Optional[float] = None
    instructions_note: str = ""
    syscalls_per_msg: Optional[float] = None
    syscalls_by_name: Dict[str, float] = field(default_factory=dict)
    syscalls_note: str = ""

    def figures(self) -> Dict[str, Any]:
        """Flat figures for the JSON (``extra_info`` of the suites' costs entries)."""
        return {
            "target": self.target,
            "interpreter": self.interpreter,
            "count_connections": self.spec.connections,
            "count_ready": self.spec.ready,
            "count_size": self.spec.size,
            "count_messages": self.spec.messages,
            "count_scheduling": self.scheduling,
            "instructions_per_msg": self.instructions_per_msg,
            "instructions_note": self.instructions_note,
            "syscalls_per_msg": self.syscalls_per_msg,
            "syscalls_by_name": dict(self.syscalls_by_name),
            "syscalls_note": self.syscalls_note,
        }


class CountError(RuntimeError):
    """A count could not be made (the server failed, the tool failed, a byte was lost)."""


# -- the lockstep client -------------------------------------------------------------


def drive(host: str, port: int, spec: CountSpec, batches: int, server_pid: int = 0) -> None:
    """Connect, run ``batches`` lockstep batches, close; CountError on a wrong echo.

    The end is lockstep too: every connection is half-closed, the server's close of each
    is awaited, then this client sends the server (``server_pid``) SIGTERM itself, so the
    server's shutdown begins at the same point of its work in every run.
    """
    conns = [
        socket.create_connection((host, port), timeout=RUN_TIMEOUT) for _ in range(spec.connections)
    ]
    message = bytes(range(256)) * (spec.size // 256) + bytes(spec.size % 256)
    try:
        for number in range(batches):
            chosen = [
                conns[(number * spec.ready + j) % spec.connections] for j in range(spec.ready)
            ]
            for conn in chosen:
                conn.sendall(message)
            for conn in chosen:
                got = b""
                while len(got) < spec.size:
                    chunk = conn.recv(spec.size - len(got))
                    if not chunk:
                        raise CountError("the server closed a connection during the count")
                    got += chunk
                if got != message:
                    raise CountError("an echo differs from the message sent")
        for conn in conns:
            conn.shutdown(socket.SHUT_WR)
        for conn in conns:
            while conn.recv(4096):
                raise CountError("the server sent bytes after the last echo")
        if server_pid:
            os.kill(server_pid, signal.SIGTERM)
    finally:
        for conn in conns:
            conn.close()


def client_main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m benchmarks.suites.counting HOST PORT CONNECTIONS READY SIZE BATCHES PID``."""
    host, port, connections, ready, size, batches, pid = (argv or sys.argv[1:])[:7]
    drive(
        host, int(port), CountSpec(int(connections), int(ready), int(size)), int(batches), int(pid)
    )
    return 0


# -- one tool run --------------------------------------------------------------------


def _scheduling() -> str:
    return "client SCHED_FIFO" if realtime_unavailable_reason() is None else "server SCHED_IDLE"


#: personality(2)'s flag that turns address-space randomisation off for the next exec.
ADDR_NO_RANDOMIZE = 0x0040000


def _fixed_addresses() -> None:
    """Turn address-space randomisation off for the program about to be exec'd: objects
    hashed by their address (sets of connections) then land alike in every run."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        current = libc.personality(0xFFFFFFFF)
        if current != -1:
            libc.personality(current | ADDR_NO_RANDOMIZE)
    except (OSError, AttributeError):
        pass  # not Linux: the count is made all the same


def _pin(cpus: CpuSet, fifo: bool = False, idle: bool = False) -> Callable[[], None]:
    def setup() -> None:
        _fixed_addresses()
        if cpus is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(cpus))
        if fifo:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(CLIENT_PRIORITY))
        if idle and hasattr(os, "SCHED_IDLE"):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))

    return setup


def run_tool(
    prefix: List[str],
    command: List[str],
    target: Target,
    spec: CountSpec,
    batches: int,
    cpus: CpuSet,
) -> str:
    """Run ``prefix + command`` (the server under a tool) with the lockstep client for
    ``batches`` batches, stop it with SIGTERM; returns its stderr (the tool's log)."""
    fifo = realtime_unavailable_reason() is None
    env = {**server_env(target), "PYTHONHASHSEED": "0"}
    with tempfile.TemporaryFile("w+") as errors:
        server = subprocess.Popen(
            prefix + command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=env,
            cwd=str(REPO_ROOT),
            preexec_fn=_pin(cpus, idle=not fifo),
        )
        try:
            banner: List[str] = []
            assert server.stdout is not None
            stdout = server.stdout

            def read() -> None:
                for line in stdout:  # one at a time: the banner is the first
                    banner.append(line)

            threading.Thread(target=read, daemon=True).start()
            deadline = time.monotonic() + STARTUP_TIMEOUT * 5  # a server under valgrind
            while not banner and time.monotonic() < deadline and server.poll() is None:
                time.sleep(0.05)
            match = BANNER.search(banner[0]) if banner else None
            if match is None:
                errors.seek(0)
                raise CountError(
                    f"no banner from {' '.join(command)} (exit {server.poll()}):"
                    f"\n{errors.read()[-1500:]}"
                )
            # The server itself: strace, given SIGTERM, would detach and leave it running.
            children = psutil.Process(server.pid).children() if prefix[0] == "strace" else []
            pid = children[0].pid if children else server.pid
            client = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.suites.counting",
                    match.group(1),
                    match.group(2),
                    str(spec.connections),
                    str(spec.ready),
                    str(spec.size),
                    str(batches),
                    str(pid),
                ],
                cwd=str(REPO_ROOT),
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT,
                preexec_fn=_pin(cpus, fifo=fifo),
                check=False,
            )
            if client.returncode != 0:
                raise CountError(f"the lockstep client failed: {client.stderr[-1500:]}")
            status = _wait_for_exit(server, pid)  # the client sent the server SIGTERM
            errors.seek(0)
            log = errors.read()
            if status != 0:
                raise CountError(
                    f"{' '.join(command)} exited {status} under {prefix[0]}:\n{log[-1500:]}"
                )
            return log
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(30)


#: How long a server may take to exit after the client's SIGTERM before it gets another.
#: A signal that lands between a C loop's last check and its next wait is not seen
#: until something wakes the loop; the server is idle then, so a second signal makes the
#: same shutdown.
RESIGNAL_AFTER = 5.0


def _wait_for_exit(server: subprocess.Popen[str], pid: int) -> int:
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        try:
            return server.wait(RESIGNAL_AFTER)
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                raise CountError("the server did not exit after SIGTERM") from None
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


# -- the two tools -------------------------------------------------------------------

_COLLECTED = re.compile(r"Collected : (\d+)")


def _both(run: Callable[[int, CpuSet], Any], cpus: Sequence[CpuSet]) -> List[Any]:
    """``run(batches, cpus)`` for the short and the long run, side by side when there are
    two CPU sets (each run's server and client share one CPU, so they do not meet)."""
    sizes = [BASE_BATCHES, 0]
    if len(cpus) < 2:
        return [run(BASE_BATCHES, cpus[0]), run(-1, cpus[0])]
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(run, BASE_BATCHES if size else -1, cpu) for size, cpu in zip(sizes, cpus)
        ]
        return [future.result() for future in futures]


def count_instructions(
    command: List[str], target: Target, spec: CountSpec, cpus: Sequence[CpuSet], pypy: bool = False
) -> float:
    """User-space instructions per message of the server (callgrind, two runs)."""
    with tempfile.TemporaryDirectory() as scratch:

        def one(batches: int, cpu: CpuSet) -> int:
            batches = batches if batches > 0 else BASE_BATCHES + spec.batches
            prefix = [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={scratch}/out-{batches}",
                *(["--smc-check=all"] if pypy else []),
            ]
            log = run_tool(prefix, command, target, spec, batches, cpu)
            found = _COLLECTED.search(log)
            if found is None:
                raise CountError(f"callgrind gave no count:\n{log[-1500:]}")
            return int(found.group(1))

        totals: List[int] = _both(one, cpus)
    return (totals[1] - totals[0]) / spec.messages


def parse_strace_summary(text: str) -> Dict[str, int]:
    """``strace -c``'s table as {system call: calls}."""
    calls: Dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5 or parts[-1] == "total" or not parts[0][0].isdigit():
            continue
        try:
            number = int(parts[3])
        except ValueError:
            continue
        calls[parts[-1]] = calls.get(parts[-1], 0) + number
    return calls


def count_syscalls(
    command: List[str], target: Target, spec: CountSpec, cpus: Sequence[CpuSet]
) -> Dict[str, float]:
    """System calls per message of the server, by name (``strace -f -c``, two runs);
    names whose count does not change with the messages are left out."""
    with tempfile.TemporaryDirectory() as scratch:

        def one(batches: int, cpu: CpuSet) -> Dict[str, int]:
            batches = batches if batches > 0 else BASE_BATCHES + spec.batches
            out = f"{scratch}/strace-{batches}"
            run_tool(["strace", "-f", "-c", "-o", out], command, target, spec, batches, cpu)
            with open(out) as summary:
                return parse_strace_summary(summary.read())

        tables: List[Dict[str, int]] = _both(one, cpus)
    names = sorted(set(tables[0]) | set(tables[1]))
    per_message = {
        name: (tables[1].get(name, 0) - tables[0].get(name, 0)) / spec.messages for name in names
    }
    return {
        name: round(value, 4)
        for name, value in sorted(per_message.items(), key=lambda item: -item[1])
        if round(value, 4) != 0
    }


def unavailable(tool: str) -> Optional[str]:
    """Why ``tool`` cannot count here (None if it can)."""
    if not sys.platform.startswith("linux"):
        return f"{tool} counts on Linux only (this is {sys.platform})"
    if shutil.which(tool) is None:
        return f"{tool} is not installed (apt-get install {tool})"
    return None


def measure(
    target: Target,
    python: str,
    spec: CountSpec,
    tools: Sequence[str] = ("callgrind", "strace"),
    cpus: Optional[Sequence[CpuSet]] = None,
) -> Costs:
    """Both counts of ``target`` under ``python`` (a tool not in ``tools`` is skipped).

    ``cpus``: one CPU set per run of a tool (the short and the long one run side by
    side on two); default the suites' server and client CPUs.

    Raises CountError if the server or the client fails; a tool that cannot run here,
    or valgrind failing on a JIT interpreter, is a note in the result instead."""
    interpreter = probe(python)
    reason = interpreter.reason_unavailable(target)
    if reason is not None:
        raise CountError(reason)
    if cpus is None:
        cpus = [cpu for cpu in default_cpus() if cpu is not None] or [None]
    command = target.command(python)
    costs = Costs(
        result_name(target),
        "native" if target.native else interpreter.label,
        spec,
        scheduling=_scheduling(),
    )
    pypy = interpreter.implementation == "PyPy" and not target.native
    if "callgrind" in tools:
        note = unavailable("valgrind")
        if note is None:
            try:
                costs.instructions_per_msg = round(
                    count_instructions(command, target, spec, cpus, pypy), 1
                )
            except CountError as exc:
                if not pypy:
                    raise
                costs.instructions_note = (
                    f"valgrind cannot run {interpreter.label}: " + str(exc).splitlines()[-1][:200]
                )
        else:
            costs.instructions_note = note
    else:
        costs.instructions_note = "not counted (callgrind not asked for)"
    if "strace" in tools:
        note = unavailable("strace")
        if note is None:
            costs.syscalls_by_name = count_syscalls(command, target, spec, cpus)
            costs.syscalls_per_msg = round(sum(costs.syscalls_by_name.values()), 3)
        else:
            costs.syscalls_note = note
    else:
        costs.syscalls_note = "not counted (strace not asked for)"
    return costs


def syscalls_text(by_name: Dict[str, float], limit: int = 6) -> str:
    """``recvfrom 1.000, sendto 1.000, epoll_wait 0.021``: the largest first."""
    shown = [f"{name} {value:.3f}" for name, value in list(by_name.items())[:limit]]
    if len(by_name) > limit:
        shown.append(f"{len(by_name) - limit} more")
    return ", ".join(shown)


def main(argv: Optional[Sequence[str]] = None) -> int:  # the client's entry point
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.suites.counting", description="the lockstep client of a count"
    )
    parser.add_argument("args", nargs=7)
    return client_main(parser.parse_args(argv).args)


if __name__ == "__main__":
    sys.exit(main())
