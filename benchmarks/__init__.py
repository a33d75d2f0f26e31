"""What each backend costs, beside the echo servers people write by hand.

What goes where (the one place this rule is written):

- **Top level: commands only.** Each module here is a ``python -m benchmarks.NAME``
  command and stays a short CLI over the wings below: ``harness`` (one run by hand),
  ``series`` (targets in turn, round by round), ``compare`` (two git revisions,
  interleaved), ``report`` (the Markdown/HTML report of saved runs), ``instructions``
  (callgrind counts per message of the in-process echo), ``costs`` (instructions and
  system calls per message of any target's real server), ``shutdown`` (the server's
  shutdown figures), ``browser`` (a page in headless Chromium).
- ``loadgen/``: the C load generator (``loadgen.c``, ``evloop.h``) and the build of every
  C program (``build.py``, into ``benchmarks/.build/``).
- ``peers/``: the hand-written echo servers the variants are compared with, and the host
  that serves the attached variants (``attached_echo``).
- ``suites/``: the pytest-benchmark suites (``pytest benchmarks/suites``) and what drives
  a run: the targets, the cases, the harness, the foreign CPU rule, the counting of costs,
  the progress line.
- ``reporting/``: the report's insides: the data, the statistics, the charts, the
  rendering, the browser driver and the test fixtures.

Elsewhere: the unit tests of these tools are in ``tests/bench_tools/`` (they run under
``pytest tests``); the libkqueue shim that both the tests and the benchmarks use is in
``tools/kqueue_emulation/``. Nothing here imports from ``tests/``.
"""
