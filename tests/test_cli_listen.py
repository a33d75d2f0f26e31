"""``echo-server``'s deployment options, through real subprocesses and sockets.

Listening (``--unix``, repeatable ``--bind``, ``--fd``, systemd socket activation,
``--backlog``, ``--reuse-port``), ``--list-pollers``, ``--version``, the family an
option implies, ``--log-level`` in any case, ``--log-config``, and the PID in every
log line with ``--workers``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import pytest
from echo_client import (
    SERVER_COMMAND,
    SUBPROCESS_CWD,
    SUBPROCESS_OWNS_ITS_LOOP,
    ServerProcess,
    child_environment,
    connect,
    echo,
    variant_arguments,
)
from helpers import raise_nofile_limit, restore_nofile_limit

import pollers
from pollers.registry import DESCRIPTOR_LIMITS, FAMILY_DECLARATIONS
from server.cli import build_parser, choose_family
from server.endpoints import (
    FdEndpoint,
    TcpEndpoint,
    UnixEndpoint,
    parse_bind,
    reuse_port_available,
    systemd_endpoints,
)

SERVER = SERVER_COMMAND


def server_env() -> Dict[str, str]:
    return child_environment(PYTHONUNBUFFERED="1")


def run_command(*arguments: str, pass_fds: Sequence[int] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SERVER, *arguments],
        cwd=SUBPROCESS_CWD,
        env=server_env(),
        pass_fds=pass_fds,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: a Unix socket's path must fit in ~100 bytes."""
    path = Path(tempfile.mkdtemp(prefix="pl", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def unix_echo(path: str, payload: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = sock.recv(len(payload) - len(received))
            assert chunk, "the server closed the connection"
            received += chunk
        return received


def listening_names(line: str) -> List[str]:
    assert line.startswith("listening on "), line
    return line.split()[2:]


def tcp_address(name: str) -> tuple[str, int]:
    host, _, port = name.rpartition(":")
    return host.strip("[]"), int(port)


def ipv6_loopback() -> Optional[str]:
    """None if ::1 can be bound here, else why not."""
    if not socket.has_ipv6:
        return "this Python has no IPv6"
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        return f"cannot bind ::1 here: {exc}"
    return None


def stop(process: ServerProcess) -> str:
    """SIGTERM, exit status 0; its log."""
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0, process.stderr()
    return process.stderr()


# -- what the command says about itself ---------------------------------------------


def test_list_pollers_prints_every_variant_and_why() -> None:
    result = run_command("--list-pollers")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    variants = pollers.variants()
    assert len(lines) == len(variants)
    for line, variant in zip(lines, variants):
        name, rest = line.split(None, 1)
        assert name == variant.name
        assert f"--poller {variant.family}" in rest
        for option, value in variant.options.items():
            assert f"--{option} {value}" in rest
        if variant.runs_here:
            assert rest.endswith(" available"), line
        else:
            assert rest.endswith(f" unavailable: {variant.reason}"), line


def test_version_names_every_familys_libraries() -> None:
    result = run_command("--version")
    assert result.returncode == 0
    text = result.stdout.strip()
    assert text.startswith(f"echo-server {pollers.__version__} (")
    assert sys.version.split()[0] in text
    libraries = {name for family in FAMILY_DECLARATIONS.values() for name in family.libraries}
    assert {"tornado", "uvloop"} <= libraries
    for name in libraries:
        try:
            assert f"{name} {metadata.version(name)}" in text, text
        except metadata.PackageNotFoundError:
            assert f"{name} not installed" in text, text


def test_default_port_is_one_a_user_can_bind() -> None:
    args = build_parser().parse_args([])
    assert args.host is None and args.port is None  # the defaults apply only without any bind
    help_text = " ".join(build_parser().format_help().split())
    assert "(default 7007; ports below 1024 need root)" in help_text


# -- choosing the backend ----------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "family"),
    [
        ([], "selectors"),
        (["--loop", "uvloop"], "asyncio"),
        (["--loop", "asyncio"], "asyncio"),
        (["--selector", "poll"], "selectors"),
        (["--poller", "tornado", "--loop", "uvloop"], "tornado"),
        # Not only the option's name: its value, among the family's own choices.
        (["--loop", "libuv"], "gevent"),
        (["--loop", "libev"], "gevent"),
        (["--reactor", "epoll"], "twisted"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else value,
)
def test_an_option_alone_implies_its_family(arguments: List[str], family: str) -> None:
    parser = build_parser()
    assert choose_family(parser, parser.parse_args(arguments)) == family


@pytest.mark.parametrize("loop", ["libev", "libuv"])
def test_loop_of_gevent_alone_serves_on_gevent(loop: str) -> None:
    reason = dict((v.name, v.reason) for v in pollers.variants())[f"gevent-{loop}"]
    if reason is not None:
        pytest.skip(reason)
    with ServerProcess(["--loop", loop]) as process:
        with connect(process.address) as sock:
            assert echo(sock, loop.encode()) == loop.encode()
        process_log = stop(process)
    assert f"with gevent-{loop}" in process_log, process_log


def test_a_value_two_families_take_alike_needs_poller(capsys: pytest.CaptureFixture[str]) -> None:
    tornado = FAMILY_DECLARATIONS["tornado"]
    families = {"tornado": tornado, "twin": dataclasses.replace(tornado, name="twin")}
    parser = build_parser()
    with pytest.raises(SystemExit) as exit_info:
        choose_family(parser, parser.parse_args(["--loop", "asyncio"]), families)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert "--loop asyncio fits the families tornado, twin: choose one with --poller" in message


def test_loop_uvloop_alone_serves_on_asyncio_uvloop() -> None:
    reason = dict((v.name, v.reason) for v in pollers.variants())["asyncio-uvloop"]
    if reason is not None:
        pytest.skip(reason)
    with ServerProcess(["--loop", "uvloop"]) as process:
        with connect(process.address) as sock:
            assert echo(sock, b"uv") == b"uv"
        process_log = stop(process)
    assert "with asyncio-uvloop" in process_log, process_log


# -- logging -----------------------------------------------------------------------


@pytest.mark.parametrize("level", ["WARNING", "Debug", "info"])
def test_log_level_in_any_case(level: str) -> None:
    with ServerProcess(["--log-level", level]) as process:
        process_log = stop(process)
    log = process_log
    assert ("INFO server: listening on" in log) == (level.lower() != "warning"), log


def test_log_config_ini_file(tmp_path: Path) -> None:
    config = tmp_path / "logging.ini"
    config.write_text(
        "[loggers]\nkeys=root\n\n[handlers]\nkeys=stderr\n\n[formatters]\nkeys=plain\n\n"
        "[logger_root]\nlevel=INFO\nhandlers=stderr\n\n"
        "[handler_stderr]\nclass=StreamHandler\nformatter=plain\nargs=(sys.stderr,)\n\n"
        "[formatter_plain]\nformat=FROM-INI %(levelname)s %(name)s %(message)s\n"
    )
    with ServerProcess(["--log-config", str(config)]) as process:
        process_log = stop(process)
    assert "FROM-INI INFO server listening on 127.0.0.1:" in process_log, process_log


def test_log_config_json_dict_and_log_level_over_it(tmp_path: Path) -> None:
    config = tmp_path / "logging.json"
    config.write_text(
        json.dumps(
            {
                "version": 1,
                "formatters": {"f": {"format": "FROM-JSON %(levelname)s %(message)s"}},
                "handlers": {
                    "h": {
                        "class": "logging.StreamHandler",
                        "formatter": "f",
                        "stream": "ext://sys.stderr",
                    }
                },
                "root": {"level": "WARNING", "handlers": ["h"]},
            }
        )
    )
    with ServerProcess(["--log-config", str(config)]) as quiet:
        quiet_log = stop(quiet)
    assert "FROM-JSON" not in quiet_log  # WARNING: no info line
    with ServerProcess(["--log-config", str(config), "--log-level", "INFO"]) as loud:
        loud_log = stop(loud)
    assert "FROM-JSON INFO listening on" in loud_log, loud_log


@pytest.mark.parametrize("content", ["[loggers]\nkeys=root\n", "not a config", None])
def test_bad_log_config_is_one_line_and_exit_2(tmp_path: Path, content: Optional[str]) -> None:
    config = tmp_path / "bad.ini"
    if content is not None:
        config.write_text(content)
    result = run_command("--log-config", str(config), "--port", "0")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "--log-config" in result.stderr, result.stderr


def test_workers_log_lines_name_their_process() -> None:
    with ServerProcess(["--workers", "2", "--log-level", "info"]) as process:
        process_log = stop(process)
    lines = [line for line in process_log.splitlines() if line.strip()]
    pids = set()
    for line in lines:
        found = re.match(r"\S+ \S+ \w+ [\w.]+\[(\d+)\]: ", line)
        assert found is not None, f"no [PID] in {line!r}"
        pids.add(int(found.group(1)))
    assert process.pid in pids and len(pids) >= 3, lines  # the parent and both workers


# -- where it listens --------------------------------------------------------------


@pytest.mark.owned_only(SUBPROCESS_OWNS_ITS_LOOP)
def test_unix_socket_per_variant(variant_name: str, short_dir: Path) -> None:
    path = str(short_dir / "echo.sock")
    with ServerProcess([*variant_arguments(variant_name), "--unix", path]) as process:
        assert listening_names(process.line)[1:] == [f"unix:{path}"]
        assert unix_echo(path, b"over a unix socket") == b"over a unix socket"
        with connect(process.address) as sock:  # and the TCP one beside it
            assert echo(sock, b"tcp") == b"tcp"
        stop(process)
    assert not os.path.exists(path), "the socket file was left behind"


def test_unix_socket_left_behind_is_replaced_a_live_one_is_not(short_dir: Path) -> None:
    path = str(short_dir / "echo.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, nothing listens
    with ServerProcess(["--unix", path]) as process:
        assert unix_echo(path, b"replaced") == b"replaced"
        result = run_command("--unix", path)  # a second server on the live socket
        assert result.returncode == 1
        assert result.stderr.count("\n") == 1, result.stderr
        assert f"cannot listen on unix:{path}: " in result.stderr, result.stderr
        assert unix_echo(path, b"still served") == b"still served"
        stop(process)
    regular = short_dir / "regular"
    regular.write_text("not a socket")
    result = run_command("--unix", str(regular))
    assert result.returncode == 1 and regular.read_text() == "not a socket", result.stderr


def test_repeated_bind_tcp_and_unix(short_dir: Path) -> None:
    path = str(short_dir / "b.sock")
    with ServerProcess(["--bind", "127.0.0.1:0", "--bind", f"unix:{path}"]) as process:
        names = listening_names(process.line)
        assert len(names) == 3 and names[2] == f"unix:{path}", names
        for name in names[:2]:
            with connect(tcp_address(name)) as sock:
                assert echo(sock, name.encode()) == name.encode()
        assert unix_echo(path, b"u") == b"u"
        stop(process)


def test_bind_ipv6_is_bracketed_in_every_message() -> None:
    reason = ipv6_loopback()
    if reason is not None:
        pytest.skip(reason)
    with ServerProcess(["--bind", "[::1]:0", "--log-level", "info"]) as process:
        name = listening_names(process.line)[1]
        assert re.fullmatch(r"\[::1\]:\d+", name), process.line
        with connect(tcp_address(name)) as sock:
            assert echo(sock, b"v6") == b"v6"
        result = run_command("--bind", name)  # the same port again cannot be bound
        assert result.returncode == 1
        assert f"cannot listen on {name}: " in result.stderr, result.stderr
        process_log = stop(process)
    assert f"listening on {name} with " in process_log, process_log


@pytest.mark.parametrize(
    "bind", ["::1:80", "[::1]80", "localhost", "127.0.0.1:99999", "unix:", "fd://x", "[]:1"]
)
def test_bad_bind_is_one_line_and_exit_2(bind: str) -> None:
    result = run_command("--bind", bind)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--bind" in result.stderr, result.stderr


def test_parse_bind() -> None:
    assert parse_bind("127.0.0.1:7") == TcpEndpoint("127.0.0.1", 7)
    assert parse_bind(":8000") == TcpEndpoint("", 8000)
    assert parse_bind("[::]:0") == TcpEndpoint("::", 0)
    assert parse_bind("localhost:1") == TcpEndpoint("localhost", 1)
    assert parse_bind("unix:relative.sock") == UnixEndpoint("relative.sock")
    assert parse_bind("fd://5") == FdEndpoint(5, "--bind")
    assert TcpEndpoint("::1", 9).describe() == "[::1]:9"


def inherited_listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def start_with_fds(
    arguments: Sequence[str], fds: Sequence[int], env: Optional[Dict[str, str]] = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*SERVER, *arguments],
        cwd=SUBPROCESS_CWD,
        env=env or server_env(),
        pass_fds=tuple(fds),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def first_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()  # bounded: the server prints it or exits
    if not line.startswith("listening on "):
        process.kill()
        _, err = process.communicate(timeout=10)
        raise AssertionError(f"unexpected first line {line!r}: {err}")
    return line


def finish(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 0, err
    return err


def test_fd_serves_an_inherited_listening_socket() -> None:
    with inherited_listener() as listener:
        process = start_with_fds(["--fd", str(listener.fileno())], [listener.fileno()])
        try:
            names = listening_names(first_line(process))
            assert names == [f"127.0.0.1:{listener.getsockname()[1]}"]
            with connect(listener.getsockname()) as sock:
                assert echo(sock, b"inherited") == b"inherited"
        finally:
            finish(process)


def test_fd_that_is_not_a_listening_socket_is_refused() -> None:
    with socket.socket() as unbound:
        result = run_command("--fd", str(unbound.fileno()), pass_fds=(unbound.fileno(),))
    assert result.returncode == 1
    assert "is a socket that is not listening" in result.stderr, result.stderr
    read_end, write_end = os.pipe()
    try:
        result = run_command("--fd", str(read_end), pass_fds=(read_end,))
    finally:
        os.close(read_end)
        os.close(write_end)
    assert result.returncode == 1 and "is not a socket" in result.stderr, result.stderr
    result = run_command("--fd", "987")
    assert result.returncode == 1 and "descriptor 987 is not open" in result.stderr


#: Runs the server as systemd would: the sockets from descriptor 3 on, LISTEN_PID its own.
SYSTEMD_EXEC = (
    "import os, sys; fds = [int(f) for f in sys.argv[1].split(',')]; "
    "[os.dup2(fd, 3 + i) for i, fd in enumerate(fds)]; "
    "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(fds))); "
    "os.execv(sys.executable, [sys.executable, '-m', 'pollers.server', *sys.argv[2:]])"
)


def test_systemd_socket_activation() -> None:
    with inherited_listener() as first, inherited_listener() as second:
        fds = [first.fileno(), second.fileno()]
        process = subprocess.Popen(
            [sys.executable, "-c", SYSTEMD_EXEC, ",".join(map(str, fds)), "--log-level", "info"],
            cwd=SUBPROCESS_CWD,
            env=server_env(),
            pass_fds=fds,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            names = listening_names(first_line(process))
            wanted = [f"127.0.0.1:{sock.getsockname()[1]}" for sock in (first, second)]
            assert names == wanted  # only the passed sockets: no default 7007
            for sock in (first, second):
                with connect(sock.getsockname()) as client:
                    assert echo(client, b"activated") == b"activated"
        finally:
            finish(process)


def test_a_descriptor_named_twice_is_refused() -> None:
    with inherited_listener() as listener:
        fd = str(listener.fileno())
        for arguments, origins in (
            (["--fd", fd, "--fd", fd], "--fd and --fd"),
            (["--bind", f"fd://{fd}", "--fd", fd], "--bind and --fd"),
        ):
            result = run_command(*arguments, pass_fds=(listener.fileno(),))
            assert result.returncode == 2, result.stderr
            assert f"descriptor {fd} is named twice ({origins})" in result.stderr, result.stderr
            assert "Traceback" not in result.stderr, result.stderr
        # systemd's first socket is descriptor 3, the one --fd 3 names again.
        result = subprocess.run(
            [sys.executable, "-c", SYSTEMD_EXEC, fd, "--fd", "3"],
            cwd=SUBPROCESS_CWD,
            env=server_env(),
            pass_fds=(listener.fileno(),),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 2, result.stderr
    assert "descriptor 3 is named twice (--fd and systemd)" in result.stderr, result.stderr


def test_a_descriptor_the_poller_refuses_is_a_one_line_error() -> None:
    """select(2) cannot watch an inherited socket past FD_SETSIZE: said in one line, exit 1."""
    limit = DESCRIPTOR_LIMITS["selectors-select"]
    soft = raise_nofile_limit(limit + 1)
    try:
        with inherited_listener() as listener:
            port = listener.getsockname()[1]
            high = os.dup2(listener.fileno(), limit)
            try:
                result = run_command("--selector", "select", "--fd", str(high), pass_fds=(high,))
            finally:
                os.close(high)
    finally:
        restore_nofile_limit(soft)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"echo-server: error: cannot listen on 127.0.0.1:{port}: "), lines
    assert f"descriptor {high} is too large for select()" in lines[0], lines


def test_systemd_variables_for_another_process_are_ignored_and_consumed() -> None:
    env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "2"}
    assert systemd_endpoints(env) == [] and "LISTEN_FDS" in env
    env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b"}
    assert systemd_endpoints(env) == [FdEndpoint(3, "systemd"), FdEndpoint(4, "systemd")]
    assert env == {}, "left for a child process to take"
    with pytest.raises(ValueError, match="LISTEN_FDS"):
        systemd_endpoints({"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "many"})


def listen_queue_limit(port: int) -> Optional[int]:
    """The backlog of the listening socket on ``port``, from ``ss`` (Send-Q), if it is here."""
    ss = shutil.which("ss")
    if ss is None:
        return None
    output = subprocess.run(
        [ss, "-ltnH", f"sport = :{port}"], capture_output=True, text=True, timeout=10
    ).stdout
    fields = output.split()
    return int(fields[2]) if len(fields) >= 3 else None


def test_backlog_reaches_listen() -> None:
    with ServerProcess(["--backlog", "7"]) as process:
        limit = listen_queue_limit(process.address[1])
        if limit is None:
            stop(process)
            pytest.skip("needs ss (iproute2, Linux) to read a listening socket's backlog")
        assert limit == 7
        stop(process)
    result = run_command("--backlog", "0")
    assert result.returncode == 2 and "--backlog" in result.stderr


def test_reuse_port_lets_two_servers_share_a_port() -> None:
    if not reuse_port_available():
        pytest.skip(f"no load-balanced SO_REUSEPORT on {sys.platform}")
    with ServerProcess(["--reuse-port"]) as first:
        port = str(first.address[1])
        refused = run_command("--port", port)
        assert refused.returncode == 1, refused.stderr
        assert f"cannot listen on 127.0.0.1:{port}: " in refused.stderr, refused.stderr
        second = start_with_fds(["--reuse-port", "--port", port], [])
        try:
            assert listening_names(first_line(second)) == [f"127.0.0.1:{port}"]
            with connect(first.address) as sock:
                assert echo(sock, b"shared") == b"shared"
        finally:
            finish(second)
        stop(first)


def test_workers_on_a_unix_socket_and_tcp(short_dir: Path) -> None:
    path = str(short_dir / "w.sock")
    with ServerProcess(["--workers", "2", "--unix", path]) as process:
        assert listening_names(process.line)[1:] == [f"unix:{path}"]
        for index in range(6):
            assert unix_echo(path, b"%d" % index) == b"%d" % index
            with connect(process.address) as sock:
                assert echo(sock, b"t%d" % index) == b"t%d" % index
        process_log = stop(process)
    assert not os.path.exists(path)
    assert "Traceback" not in process_log
