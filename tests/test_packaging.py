"""The installed distribution: its one top-level name, the echo server's two names.

Under tox (``POLLERS_TEST_INSTALLED=wheel``) the tests must be running the wheel
tox built and installed, not this checkout found on ``sys.path``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from echo_client import REPO, SERVER_COMMAND, SUBPROCESS_CWD, child_environment

import pollers
import server.cli


def test_the_distribution_installs_only_pollers() -> None:
    distribution = metadata.distribution("pollers")
    assert (distribution.read_text("top_level.txt") or "").split() == ["pollers"]
    if os.environ.get("POLLERS_TEST_INSTALLED") != "wheel":
        return  # an editable install lists its import hook's files too
    files = distribution.files or []
    top = {Path(str(file)).parts[0] for file in files if not str(file).startswith("..")}
    assert {name for name in top if not name.endswith(".dist-info")} == {"pollers"}, top


def test_the_tests_run_the_installed_server() -> None:
    assert server.cli.__name__ == "pollers.server.cli"  # aliased by conftest, not a copy
    assert "py.typed" in os.listdir(Path(pollers.__file__).parent)
    if os.environ.get("POLLERS_TEST_INSTALLED") == "wheel":
        checkout = {REPO / "pollers", REPO / "server"}
        assert Path(pollers.__file__).resolve().parent not in checkout, pollers.__file__
        assert Path(server.cli.__file__).resolve().parent not in checkout, server.cli.__file__


def version_output(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        [*command, "--version"], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_python_m_pollers_server_and_echo_server_are_one_program() -> None:
    by_module = version_output(SERVER_COMMAND, SUBPROCESS_CWD, child_environment())
    assert by_module.startswith(f"echo-server {pollers.__version__} ")
    script = Path(sys.executable).with_name("echo-server")
    if not script.exists():
        pytest.skip(f"no echo-server script beside {sys.executable}: the package is not installed")
    assert version_output([str(script)], SUBPROCESS_CWD, child_environment()) == by_module


def test_python_m_server_runs_in_a_checkout() -> None:
    """``python -m server`` from the repository's root: the checkout's own files."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    output = version_output([sys.executable, "-m", "server"], REPO, env)
    assert output.startswith(f"echo-server {pollers.__version__} ")
