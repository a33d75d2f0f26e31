"""tox's inline plugin for this project: let tox find every interpreter pyenv installed.

tox looks for ``python3.X`` on ``PATH``. pyenv puts there only *shims*, and a shim
answers only for the versions that ``pyenv global``/``local`` selected, so a machine
with CPython 3.9 to 3.13 under pyenv would, without help, run one of them and skip the
rest as "missing". This plugin offers tox every ``$PYENV_ROOT/versions/*/bin/python3``
(newest version first) to try before ``PATH``, exactly as ``tox --discover PATH...``
would; interpreters given with ``--discover`` on the command line still come first.

Without pyenv (no ``$PYENV_ROOT`` and no ``~/.pyenv``) this does nothing, and tox finds
interpreters on ``PATH`` as usual (``/usr/bin/pypy3``, FreeBSD's ``python3.11``...).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import List, Tuple

from tox.config.sets import ConfigSet
from tox.plugin import impl
from tox.session.state import State

_NUMBERS = re.compile(r"\d+")


def _version_key(name: str) -> Tuple[int, ...]:
    """Sort key for pyenv version directory names: 3.13.0 after 3.9.18."""
    return tuple(int(number) for number in _NUMBERS.findall(name))


def pyenv_interpreters() -> List[str]:
    """The ``bin/python3`` of each Python 3 that pyenv installed, newest version first.

    Python 2 (no ``python3``) and pyenv-virtualenv environments (which carry a
    ``pyvenv.cfg``) are left out: tox makes its own environments from base interpreters.
    """
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    versions = root / "versions"
    if not versions.is_dir():
        return []
    found = []
    for entry in sorted(versions.iterdir(), key=lambda path: _version_key(path.name), reverse=True):
        python = entry / "bin" / "python3"
        if (entry / "pyvenv.cfg").exists() or not os.access(python, os.X_OK):
            continue
        found.append(str(python))
    return found


@impl
def tox_add_core_config(core_conf: ConfigSet, state: State) -> None:
    options = state.conf.options
    given: List[str] = list(getattr(options, "discover", None) or [])
    options.discover = given + [path for path in pyenv_interpreters() if path not in given]
