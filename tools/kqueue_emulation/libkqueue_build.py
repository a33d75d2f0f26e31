"""Build libkqueue from its vendored source tarball into ``.tox/``, once.

Support for the emulated kqueue mode (tests and benchmarks) (``POLLERS_KQUEUE=libkqueue``, see
`libkqueue_select`): libkqueue is a userspace kqueue(2) over epoll. Its source is
not part of this repository; the tarball is looked for next to the checkout, in
``../shared/vendor/`` (the repository's parent directory), or wherever
``POLLERS_LIBKQUEUE_TARBALL`` says. It is unpacked and built with cmake and the C
compiler into ``.tox/libkqueue-COMMIT/`` in the checkout (ignored by git, and by
the linters), never into the system. Several processes may ask at once (the test session, the server
subprocesses): a file lock makes one of them build and the others wait.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import List

#: The upstream commit of the vendored source, and the tarball's SHA-256.
COMMIT = "f96608964f7d"
TARBALL_NAME = f"libkqueue-{COMMIT}.tar.gz"
TARBALL_SHA256 = "e9b5bad981b5a48de1d39cd730f624902ec93046d01f1241cd32b6fafafafa9e"

REPO = Path(__file__).resolve().parents[2]
BUILD_ROOT = REPO / ".tox"
BUILD_DIR = BUILD_ROOT / f"libkqueue-{COMMIT}"
LIBRARY = BUILD_DIR / "build" / "libkqueue.so.0"
#: cmake configuring plus compiling takes 20 to 60 s on a busy 2-core machine.
BUILD_TIMEOUT = 600


class LibkqueueBuildError(RuntimeError):
    """The tarball, cmake or the compiler is missing, or the build failed."""


def tarball() -> Path:
    """The vendored source tarball; LibkqueueBuildError saying where it was looked for."""
    given = os.environ.get("POLLERS_LIBKQUEUE_TARBALL")
    path = Path(given) if given else REPO.parent / "shared" / "vendor" / TARBALL_NAME
    if not path.is_file():
        where = (
            "POLLERS_LIBKQUEUE_TARBALL names it"
            if given
            else "shared/vendor/ beside this checkout; or set POLLERS_LIBKQUEUE_TARBALL"
        )
        raise LibkqueueBuildError(
            f"the libkqueue source {TARBALL_NAME} is not at {path}; the emulated kqueue "
            f"mode (POLLERS_KQUEUE=libkqueue) builds libkqueue from it ({where})"
        )
    return path


def _check_digest(path: Path) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != TARBALL_SHA256:
        raise LibkqueueBuildError(
            f"{path} has SHA-256 {digest}, not {TARBALL_SHA256} (libkqueue {COMMIT})"
        )


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise LibkqueueBuildError(
            f"{name} is not on PATH: the emulated kqueue mode builds libkqueue with it "
            f"(Debian: apt-get install {package})"
        )
    return found


def _run(command: List[str], log: Path, cwd: Path) -> None:
    # cmake asks git for a version; with no repository above the source it finds none,
    # instead of reporting this checkout's commit as libkqueue's.
    env = dict(os.environ, GIT_DIR=str(cwd / "no-git"))
    with log.open("a") as output:
        result = subprocess.run(
            command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT,
            timeout=BUILD_TIMEOUT, check=False,
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise LibkqueueBuildError(f"{' '.join(command)} failed (log: {log}):\n{tail}")


def build() -> Path:
    """The path of the built shared library, building it first if it is not there."""
    if LIBRARY.exists():
        return LIBRARY
    BUILD_ROOT.mkdir(parents=True, exist_ok=True)
    with (BUILD_ROOT / f".libkqueue-{COMMIT}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if LIBRARY.exists():  # built by another process meanwhile
            return LIBRARY
        source = tarball()
        _check_digest(source)
        cmake = _tool("cmake", "cmake")
        _tool(os.environ.get("CC", "cc"), "gcc")
        shutil.rmtree(BUILD_DIR, ignore_errors=True)
        BUILD_DIR.mkdir()
        with tarfile.open(source) as archive:
            if hasattr(tarfile, "data_filter"):  # 3.12, and 3.9.17+ ... 3.11.4+
                archive.extractall(BUILD_DIR, filter="data")
            else:
                archive.extractall(BUILD_DIR)  # our pinned, digest-checked tarball
        source_dir = BUILD_DIR / f"libkqueue-{COMMIT}"
        log = BUILD_DIR / "build.log"
        _run(
            [cmake, "-S", str(source_dir), "-B", "build", "-DCMAKE_BUILD_TYPE=Release",
             "-DENABLE_STATIC=OFF", "-DENABLE_TESTING=OFF"],
            log, BUILD_DIR,
        )
        _run([cmake, "--build", "build", "--parallel", "2"], log, BUILD_DIR)
        if not LIBRARY.exists():
            raise LibkqueueBuildError(f"the build ended without {LIBRARY} (log: {log})")
    return LIBRARY
