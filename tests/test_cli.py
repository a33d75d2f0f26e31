"""The ``echo-server`` command line: options, errors, signals.

Option parsing is checked in-process through `server.cli.main`; what a user sees
of a running server (the address line, signals, exit status) through a subprocess,
once per variant.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from typing import List

import pytest
from echo_client import (
    SERVER_COMMAND,
    SUBPROCESS_CWD,
    ServerProcess,
    child_environment,
    connect,
    echo,
    is_closed_by_peer,
    signal_name,
    variant_arguments,
)

import pollers
from server.cli import main

BAD_ARGUMENTS = [
    ["--port", "70000"],
    ["--port", "http"],
    ["--poller", "twisted"],
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


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=signal_name)
def test_signal_drains_then_exits_0(variant_name: str, signum: int) -> None:
    with ServerProcess([*variant_arguments(variant_name), "--drain-timeout", "30"]) as process:
        with connect(process.address) as sock:
            assert echo(sock, b"before") == b"before"
            process.send_signal(signum)
            # Still served while draining, but no longer accepting.
            assert echo(sock, b"draining") == b"draining"
            deadline = time.monotonic() + 5
            while True:
                try:
                    connect(process.address, timeout=1).close()
                except ConnectionRefusedError:
                    break
                assert time.monotonic() < deadline, "still accepting after the signal"
                time.sleep(0.02)
            assert process.process.poll() is None, "exited before its connection closed"
        started = time.monotonic()
        assert process.wait(10) == 0
        assert time.monotonic() - started < 5
        log = process.stderr()
        assert "Traceback" not in log
        assert "exiting: accepted=" in log and "bytes_in=14, bytes_out=14" in log, log


def test_drain_deadline_then_exit_0(variant_name: str) -> None:
    with ServerProcess([*variant_arguments(variant_name), "--drain-timeout", "0.3"]) as process:
        with connect(process.address) as sock:
            assert echo(sock, b"x") == b"x"
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert process.wait(10) == 0
            assert time.monotonic() - started >= 0.3
            assert is_closed_by_peer(sock, 1)
        assert "Traceback" not in process.stderr()


def test_second_signal_exits_at_once(variant_name: str) -> None:
    with ServerProcess([*variant_arguments(variant_name), "--drain-timeout", "60"]) as process:
        with connect(process.address) as sock:
            assert echo(sock, b"x") == b"x"
            process.send_signal(signal.SIGTERM)
            assert echo(sock, b"y") == b"y"  # the first signal has been handled
            started = time.monotonic()
            process.send_signal(signal.SIGINT)
            assert process.wait(10) == 0
            assert time.monotonic() - started < 5
            assert is_closed_by_peer(sock, 1)
        log = process.stderr()
        assert "Traceback" not in log and "closing 1 connection(s) now" in log, log


def test_a_signal_right_after_start_is_not_lost(variant_name: str) -> None:
    with ServerProcess(variant_arguments(variant_name)) as process:
        process.send_signal(signal.SIGTERM)  # at once: the loop may not run yet
        assert process.wait(10) == 0
        assert "Traceback" not in process.stderr()
