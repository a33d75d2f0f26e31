"""The ``echo-server`` command line: options, errors, signals.

Option parsing is checked in-process through `server.cli.main`; what a user sees
of a running server (the address line, signals, exit status) through a subprocess,
once per variant.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from typing import List, Tuple

import pytest
from echo_client import (
    SERVER_COMMAND,
    SUBPROCESS_CWD,
    SUBPROCESS_OWNS_ITS_LOOP,
    ServerProcess,
    Transfer,
    child_environment,
    connect,
    echo,
    expect_clean_eof,
    is_closed_by_peer_after_reading,
    receive_all,
    recv_exactly,
    signal_name,
    variant_arguments,
)

import pollers
from server.cli import main

pytestmark = pytest.mark.owned_only(SUBPROCESS_OWNS_ITS_LOOP)

MiB = 1024 * 1024

BAD_ARGUMENTS = [
    ["--port", "70000"],
    ["--port", "http"],
    ["--poller", "nonesuch"],
    ["--reactor", "epoll", "--poller", "asyncio"],
    ["--reactor", "nosuch"],
    ["--selector", "epoll", "--poller", "asyncio"],
    ["--loop", "uvloop", "--poller", "selectors"],
    ["--selector", "nosuch"],
    ["--max-connections", "0"],
    ["--idle-timeout", "-1"],
    ["--drain-timeout", "nan"],
    ["--log-level", "loud"],
    ["--workers", "0"],
    ["--unknown"],
]


@pytest.mark.parametrize("arguments", BAD_ARGUMENTS, ids=" ".join)
def test_bad_arguments_give_one_line_and_exit_2(
    arguments: List[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(arguments)
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("echo-server: error: "), err


def test_help_offers_every_family_and_every_option_with_its_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--poller``, the option flags and their choices come from the families' declarations."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for family in pollers.registry.FAMILY_DECLARATIONS.values():
        assert family.name in text and " ".join(family.summary.split()) in text
        for option in family.options:
            offered = re.search(rf"--{option.name} {{([^}}]*)}}", text)
            assert offered is not None, option.name
            assert set(option.choices) <= set(offered.group(1).split(","))
            assert f"(default {option.default})" in text


def test_a_variant_that_cannot_run_here_says_why_and_what_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = [variant for variant in pollers.variants() if not variant.runs_here]
    if not missing:
        pytest.skip("every variant runs here")
    with pytest.raises(SystemExit) as exit_info:
        main(variant_arguments(missing[0].name))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert str(missing[0].reason) in err
    assert "Available here: " + ", ".join(pollers.available()) in err


def run_command(*arguments: str) -> subprocess.CompletedProcess[str]:
    env = child_environment()
    return subprocess.run(
        [*SERVER_COMMAND, *arguments],
        cwd=SUBPROCESS_CWD,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_bad_option_from_the_command_line() -> None:
    result = run_command("--selector", "epoll", "--poller", "tornado")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "--selector does not apply" in result.stderr


def test_cannot_listen_is_one_line_and_exit_1() -> None:
    with ServerProcess(["--log-level", "error"]) as first:
        result = run_command("--port", str(first.address[1]))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "cannot listen" in result.stderr, result.stderr


# -- a running server, per variant -------------------------------------------------


def test_port_0_prints_the_address_on_one_line(variant_name: str) -> None:
    with ServerProcess(variant_arguments(variant_name)) as process:
        host, port = process.address
        assert process.line == f"listening on {host}:{port}\n"
        assert host == "127.0.0.1" and 0 < port < 65536
        with connect(process.address) as sock:
            assert echo(sock, b"ping") == b"ping"


def assert_clean_exit(process: ServerProcess) -> str:
    log = process.stderr()
    assert "Traceback" not in log, log
    return log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=signal_name)
def test_signal_with_idle_clients_ends_them_without_waiting(variant_name: str, signum: int) -> None:
    """Idle clients get what they sent, then EOF after one quiet interval; the server exits
    without waiting for the deadline."""
    with ServerProcess([*variant_arguments(variant_name), "--drain-timeout", "60"]) as process:
        clients = [connect(process.address) for _ in range(5)]
        try:
            for index, sock in enumerate(clients):
                assert echo(sock, b"idle %d" % index) == b"idle %d" % index
            # The last one sends just before the signal: the server may not have read it
            # yet, and must still echo it before its FIN.
            clients[-1].sendall(b"in flight")
            process.send_signal(signum)
            for sock in clients[:-1]:
                expect_clean_eof(sock, 20)
            assert recv_exactly(clients[-1], 9, time.monotonic() + 20) == b"in flight"
            expect_clean_eof(clients[-1], 20)
            assert process.wait(20) == 0  # not the 60 s drain deadline
        finally:
            for sock in clients:
                sock.close()
        log = assert_clean_exit(process)
        name = signal_name(signum)
        assert f"{name}: no longer accepting; draining 5 connection(s)" in log, log
        assert "a second signal exits at once" in log, log
        assert "drain deadline" not in log and "bytes_in=39, bytes_out=39" in log, log


def test_signal_serves_a_client_still_owed_bytes_then_eof(variant_name: str) -> None:
    """A client that sent 4 MiB and read none gets all of it, then EOF, then the exit."""
    total = 4 * MiB
    with ServerProcess([*variant_arguments(variant_name), "--drain-timeout", "60"]) as process:
        # A small receive buffer keeps most of the echo queued in the server.
        with connect(process.address, timeout=60, rcvbuf=4096) as sock:
            transfer = Transfer(sock, total, seed=4).start()
            transfer.join(30)  # all of it in the kernels' buffers and the server's queue
            process.send_signal(signal.SIGTERM)
            process.wait_for_log("no longer accepting")
            got, checksum = receive_all(sock, total, time.monotonic() + 60, until_eof=True)
            assert (got, checksum) == (total, transfer.checksum)  # then EOF, no reset
        assert process.wait(20) == 0
        assert "drain deadline" not in assert_clean_exit(process)


def owed_client(process: ServerProcess) -> Tuple[socket.socket, Transfer]:
    """A client that sends and never reads, so the server owes it bytes until the end."""
    sock = connect(process.address, timeout=60, rcvbuf=4096)
    transfer = Transfer(sock, 256 * MiB, seed=7).start()  # more than all the buffers hold
    deadline = time.monotonic() + 20
    while transfer.sent < 4 * MiB and transfer.thread.is_alive():
        assert time.monotonic() < deadline, f"the server took only {transfer.sent} bytes"
        time.sleep(0.01)
    return sock, transfer


def test_drain_deadline_then_exit_0(variant_name: str) -> None:
    with ServerProcess([*variant_arguments(variant_name), "--drain-timeout", "0.3"]) as process:
        sock, _ = owed_client(process)
        with sock:
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert process.wait(20) == 0
            assert time.monotonic() - started >= 0.3
            assert is_closed_by_peer_after_reading(sock, 20)
        log = assert_clean_exit(process)
        assert "draining 1 connection(s), each ending (FIN) once it owes nothing" in log, log
        assert "drain deadline passed" in log, log


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGQUIT], ids=signal_name)
def test_second_signal_or_sigquit_exits_at_once(variant_name: str, second: int) -> None:
    with ServerProcess([*variant_arguments(variant_name), "--drain-timeout", "60"]) as process:
        sock, _ = owed_client(process)
        with sock:
            process.send_signal(signal.SIGTERM)
            log = process.wait_for_log("no longer accepting")
            assert "a second signal exits at once" in log, log
            process.send_signal(second)
            assert process.wait(20) == 0  # not the 60 s drain deadline
            assert is_closed_by_peer_after_reading(sock, 20)
        log = assert_clean_exit(process)
        why = "SIGINT again" if second == signal.SIGINT else "SIGQUIT"
        assert f"{why}: closing 1 connection(s) now" in log, log


def test_a_signal_right_after_start_is_not_lost(variant_name: str) -> None:
    with ServerProcess(variant_arguments(variant_name)) as process:
        process.send_signal(signal.SIGTERM)  # at once: the loop may not run yet
        assert process.wait(10) == 0
        assert "Traceback" not in process.stderr()
