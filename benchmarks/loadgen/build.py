"""Build the benchmark's C programs on first use, and again whenever their source changes.

Each program is compiled with the system C compiler (``$CC``, else ``cc``) and
``-O2`` into ``benchmarks/.build/NAME-HASH``, where HASH covers the sources, the
compiler and the flags: a changed source gives a new file name, so a stale binary
is never run. The compiler writes to a temporary name that is then renamed, so
two processes building at once cannot run a half-written binary.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List, Tuple

BENCH_DIR = Path(__file__).resolve().parent.parent
BUILD_DIR = BENCH_DIR / ".build"
CFLAGS = ["-O2", "-Wall", "-Wextra", "-std=gnu99"]

#: program name -> (its C source, the headers it includes), relative to benchmarks/
PROGRAMS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "loadgen": ("loadgen/loadgen.c", ("loadgen/evloop.h",)),
    "c_echo": ("peers/c_echo.c", ("loadgen/evloop.h",)),
}


class BuildError(RuntimeError):
    """The C compiler is missing or refused a source file."""


def compiler() -> str:
    """The C compiler to use: ``$CC`` or ``cc``; BuildError if there is none."""
    name = os.environ.get("CC", "cc")
    path = shutil.which(name)
    if path is None:
        raise BuildError(
            f"no C compiler found ({name!r} is not on PATH): the benchmarks build their "
            "load generator with it; install one (Debian: apt-get install gcc) or set CC"
        )
    return path


def _fingerprint(name: str, extra_flags: List[str]) -> str:
    source, headers = PROGRAMS[name]
    digest = hashlib.sha256()
    for relative in (source, *headers):
        digest.update(relative.encode())
        digest.update((BENCH_DIR / relative).read_bytes())
    digest.update(compiler().encode())
    digest.update(" ".join(CFLAGS + extra_flags).encode())
    return digest.hexdigest()[:12]


def build(name: str, extra_flags: Tuple[str, ...] = ()) -> Path:
    """Return the path of program ``name``, compiling it first if needed."""
    if name not in PROGRAMS:
        raise ValueError(f"unknown program {name!r}; known: {', '.join(PROGRAMS)}")
    flags = list(extra_flags)
    suffix = "".join(flag.replace("-D", "-").lower() for flag in flags)
    target = BUILD_DIR / f"{name}{suffix}-{_fingerprint(name, flags)}"
    if target.exists():
        return target
    BUILD_DIR.mkdir(exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{name}-", dir=BUILD_DIR)
    os.close(descriptor)
    command = [compiler(), *CFLAGS, *flags, "-o", temporary, str(BENCH_DIR / PROGRAMS[name][0])]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        os.unlink(temporary)
        raise BuildError(f"{' '.join(command)} failed:\n{result.stderr}")
    os.chmod(temporary, 0o755)
    os.replace(temporary, target)
    for stale in BUILD_DIR.glob(f"{name}{suffix}-*"):
        built_from_older_source = re.fullmatch(rf"{re.escape(name + suffix)}-[0-9a-f]{{12}}",
                                               stale.name)
        if stale != target and built_from_older_source:
            stale.unlink(missing_ok=True)
    return target
