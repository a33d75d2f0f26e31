"""What the echo benchmarks measure: the project's server variants and the peers beside them.

A *target* is one echo server that the harness can start: a variant of
``python -m server`` (the same ids as the tests: ``selectors-epoll``...) or a
hand-written peer (``peer-selectors``...). Each knows its command line under a
given server interpreter and what it needs there, so that a target that cannot
run under that interpreter is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pollers
from pollers.registry import FAMILY_DECLARATIONS

from ..loadgen.build import build

REPO_ROOT = Path(__file__).resolve().parents[2]

#: ``POLLERS_KQUEUE=libkqueue``: the emulated kqueue mode of the tests. Servers started
#: with this directory on PYTHONPATH get select.kqueue over libkqueue (tools/kqueue_emulation,
#: built on first use), so the kqueue variants run on Linux, recorded as ``NAME-libkqueue``.
KQUEUE_EMULATION_DIR = REPO_ROOT / "tools" / "kqueue_emulation"
KQUEUE_VARIANTS = ("selectors-kqueue", "twisted-kqueue")

#: The peers every variant is compared with; the first two are the report's baselines.
RAW_SELECTORS_PEER = "peer-selectors"
UVLOOP_PROTOCOL_PEER = "peer-asyncio-protocol-uvloop"


@dataclass(frozen=True)
class Target:
    """One echo server to benchmark."""

    name: str
    kind: str  # "variant" (owned or attached) or "peer"
    description: str
    script: Optional[str] = None  # peers: a module of benchmarks.peers, or a C program
    options: Tuple[str, ...] = ()
    needs: Tuple[str, ...] = ()  # peers: modules the server interpreter must have
    native: bool = False  # a compiled peer: the interpreter dimension does not apply

    def command(self, python: str, server_args: Sequence[str] = ()) -> List[str]:
        """The command line that starts this server on an ephemeral port.

        ``server_args`` go to the project's server only (peers have no such options).
        """
        if self.kind == "variant" and self.script is not None:  # an attached variant's host
            return [python, "-m", f"benchmarks.peers.{self.script}", "--variant", self.name,
                    "--host", "127.0.0.1", "--port", "0"]
        if self.kind == "variant":
            family, options = pollers.VARIANTS[self.name]
            flags = [f"--{key}={value}" for key, value in options.items()]
            return [python, "-m", "server", f"--poller={family}", *flags,
                    "--host=127.0.0.1", "--port=0", *server_args]
        assert self.script is not None
        if self.native:
            return [str(build(self.script)), "--host", "127.0.0.1", "--port", "0"]
        return [python, "-m", f"benchmarks.peers.{self.script}", *self.options,
                "--host", "127.0.0.1", "--port", "0"]


PEERS: Tuple[Target, ...] = (
    Target(RAW_SELECTORS_PEER, "peer", "raw stdlib selectors loop written by hand",
           "selectors_echo"),
    Target("peer-asyncio-protocol", "peer", "asyncio Protocol echo",
           "asyncio_protocol_echo", ("--loop", "asyncio")),
    Target(UVLOOP_PROTOCOL_PEER, "peer", "asyncio Protocol echo on uvloop",
           "asyncio_protocol_echo", ("--loop", "uvloop"), ("uvloop",)),
    Target("peer-asyncio-streams", "peer", "asyncio streams echo",
           "asyncio_streams_echo", ("--loop", "asyncio")),
    Target("peer-asyncio-add-reader", "peer", "raw asyncio loop.add_reader echo written by hand",
           "asyncio_reader_echo", ("--loop", "asyncio")),
    Target("peer-tornado-iostream", "peer", "Tornado TCPServer/IOStream echo",
           "tornado_iostream_echo", needs=("tornado",)),
    Target("peer-tornado-handler", "peer", "classic Tornado IOLoop.add_handler echo by hand",
           "tornado_handler_echo", needs=("tornado",)),
    Target("peer-twisted-protocol", "peer",
           "Twisted Protocol echo (dataReceived -> transport.write)",
           "twisted_protocol_echo", needs=("twisted",)),
    Target("peer-gevent-streamserver", "peer",
           "gevent StreamServer echo (a greenlet per connection, recv / sendall)",
           "gevent_streamserver_echo", needs=("gevent",)),
    Target("peer-c-epoll", "peer", "C echo server (epoll; kqueue on the BSDs)", "c_echo",
           native=True),
)

VARIANT_TARGETS: Tuple[Target, ...] = tuple(
    Target(name, "variant", f"python -m server --poller={family} "
           + " ".join(f"--{k}={v}" for k, v in options.items()))
    for name, (family, options) in pollers.VARIANTS.items()
)

#: The attached variants served by a host that owns its loop (`benchmarks.peers.attached_echo`):
#: asyncio's and Tornado's, beside the owned ones.
ATTACHED_TARGETS: Tuple[Target, ...] = tuple(
    Target(name, "variant", f"the echo server on a poller attached to the host's {family} "
           f"loop ({options.get('loop', family)})", "attached_echo")
    for name, (family, options) in pollers.ATTACHED_VARIANTS.items()
    if family in ("asyncio", "tornado")
)

TARGETS: Dict[str, Target] = {
    target.name: target for target in VARIANT_TARGETS + ATTACHED_TARGETS + PEERS
}


#: The modules whose versions the probe reports: the libraries the families declare
#: (imported by their PyPI names) and the modules the peers need.
PROBED_MODULES: Tuple[str, ...] = tuple(dict.fromkeys(
    [name for family in FAMILY_DECLARATIONS.values() for name in family.libraries]
    + [name for peer in PEERS for name in peer.needs]
))

_PROBE = r"""
import json, platform, sys
info = {"implementation": platform.python_implementation(),
        "version": platform.python_version(), "executable": sys.executable,
        "modules": {}, "variants": {}, "server": None}
for name in sys.argv[1:]:  # PROBED_MODULES
    try:
        module = __import__(name)
        version = getattr(module, "version", None)  # Twisted's is an object: use the str
        if not isinstance(version, str):
            version = getattr(module, "__version__", "?")
        info["modules"][name] = str(version)
    except Exception as exc:
        info["modules"][name] = None
try:
    import pollers
    info["variants"] = {v.name: v.reason
                        for v in pollers.variants() + pollers.attached_variants()}
except Exception as exc:
    info["pollers_error"] = repr(exc)
try:
    import server
    info["server"] = getattr(server, "__version__", "present")
except Exception as exc:
    info["server_error"] = repr(exc)
print(json.dumps(info))
"""


def kqueue_emulated() -> bool:
    """True in the emulated kqueue mode (``POLLERS_KQUEUE=libkqueue``); ValueError if unknown."""
    value = os.environ.get("POLLERS_KQUEUE", "").strip()
    if value not in ("", "libkqueue"):
        raise ValueError(f"POLLERS_KQUEUE={value!r}: the only mode is 'libkqueue' (or unset)")
    return value == "libkqueue"


def result_name(target: Target) -> str:
    """The name a target's results are recorded and reported under: the kqueue variant
    on libkqueue is ``selectors-kqueue-libkqueue`` (as in the test ids), not FreeBSD's."""
    if target.name in KQUEUE_VARIANTS and kqueue_emulated():
        return f"{target.name}-libkqueue"
    return target.name


def server_env(target: Optional[Target] = None) -> Dict[str, str]:
    """The environment for a server: the repository on PYTHONPATH, unbuffered output,
    and in the emulated kqueue mode the emulation's directory (its sitecustomize) for
    the kqueue variants (or ``target=None``: the probe), so no other server loads it."""
    env = dict(os.environ)
    entries = [str(REPO_ROOT)]
    if kqueue_emulated() and (target is None or target.name in KQUEUE_VARIANTS):
        entries.append(str(KQUEUE_EMULATION_DIR))
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join(entries + ([path] if path else []))
    env["PYTHONUNBUFFERED"] = "1"
    return env


_KQUEUE_EMULATION_BUILT = False


def build_kqueue_emulation() -> None:
    """In the emulated kqueue mode, build libkqueue now (a minute, once) rather than
    inside a server's start-up; RuntimeError with the build's message if it fails."""
    global _KQUEUE_EMULATION_BUILT
    if _KQUEUE_EMULATION_BUILT or not kqueue_emulated():
        return
    result = subprocess.run(
        [sys.executable, "-c", "import libkqueue_build; libkqueue_build.build()"],
        capture_output=True, text=True, timeout=900, env=server_env(), cwd=str(REPO_ROOT),
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["failed"]
        raise RuntimeError(f"building libkqueue for POLLERS_KQUEUE=libkqueue: {lines[-1]}")
    _KQUEUE_EMULATION_BUILT = True


@dataclass
class Interpreter:
    """A server interpreter and what it offers, as probed by running it once."""

    python: str
    implementation: str = "?"
    version: str = "?"
    executable: str = "?"
    modules: Dict[str, Optional[str]] = field(default_factory=dict)
    variants: Dict[str, Optional[str]] = field(default_factory=dict)
    error: Optional[str] = None
    server_error: Optional[str] = None

    @property
    def label(self) -> str:
        """A short label such as ``CPython 3.11.7`` or ``PyPy 3.9.16``."""
        return f"{self.implementation} {self.version}"

    @property
    def tag(self) -> str:
        """A test-id friendly tag such as ``cpython3.11``."""
        return self.implementation.lower() + ".".join(self.version.split(".")[:2])

    def reason_unavailable(self, target: Target) -> Optional[str]:
        """None if ``target`` can run under this interpreter, else why not."""
        if self.error is not None:
            return f"server interpreter {self.python} is unusable: {self.error}"
        if target.native:
            return None
        if target.kind == "variant":
            if self.server_error is not None:
                return f"the server package does not import under {self.label}: {self.server_error}"
            if target.name not in self.variants:
                return f"pollers does not know variant {target.name} under {self.label}"
            reason = self.variants[target.name]
            return None if reason is None else f"{target.name} under {self.label}: {reason}"
        missing = [name for name in target.needs if not self.modules.get(name)]
        if missing:
            return f"{target.name} needs {', '.join(missing)}, not installed for {self.label}"
        return None

    def as_dict(self) -> Dict[str, Any]:
        return {
            "python": self.python, "implementation": self.implementation,
            "version": self.version, "executable": self.executable, "modules": self.modules,
        }


_PROBED: Dict[str, Interpreter] = {}


def probe(python: str) -> Interpreter:
    """Run ``python`` once to learn its version, its packages and the variants it can run."""
    if python in _PROBED:
        return _PROBED[python]
    interpreter = Interpreter(python)
    try:
        build_kqueue_emulation()
        result = subprocess.run([python, "-c", _PROBE, *PROBED_MODULES], capture_output=True,
                                text=True, timeout=60, env=server_env(), cwd=str(REPO_ROOT))
        if result.returncode != 0:
            interpreter.error = (result.stderr.strip().splitlines() or ["failed"])[-1]
        else:
            info = json.loads(result.stdout.strip().splitlines()[-1])
            interpreter.implementation = info["implementation"]
            interpreter.version = info["version"]
            interpreter.executable = info["executable"]
            interpreter.modules = info["modules"]
            interpreter.variants = info["variants"]
            interpreter.error = info.get("pollers_error")
            interpreter.server_error = info.get("server_error")
    except (OSError, RuntimeError, subprocess.TimeoutExpired, ValueError, KeyError) as exc:
        interpreter.error = repr(exc)
    _PROBED[python] = interpreter
    return interpreter


def default_python() -> str:
    return sys.executable
