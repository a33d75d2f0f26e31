"""Installs the emulated kqueue at start-up in a Python process whose PYTHONPATH holds
this directory, when ``POLLERS_KQUEUE=libkqueue``: the server subprocesses that the
echo-server and CLI tests start, and the benchmark harness's servers in that mode.

Shared by the tests and the benchmarks, like the rest of this directory (see `libkqueue_select`).
"""

import os

if os.environ.get("POLLERS_KQUEUE", "").strip():
    import libkqueue_select

    if libkqueue_select.mode_requested():
        libkqueue_select.install()
