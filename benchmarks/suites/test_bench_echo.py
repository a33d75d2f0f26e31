"""Echo benchmarks: latency, throughput and bulk, for every variant and peer.

Each test is one run of the C load generator against one server; the figures
are in ``extra_info`` and pytest-benchmark groups them by case.
"""

from __future__ import annotations

from typing import Callable

import pytest

from .cases import BULK_CASES, LATENCY_CASES, THROUGHPUT_CASES, EchoCase


@pytest.mark.parametrize("case", LATENCY_CASES, ids=[case.id for case in LATENCY_CASES])
def test_latency(echo_bench: Callable[[EchoCase], None], case: EchoCase) -> None:
    """Round trip of one connection with one message in flight."""
    echo_bench(case)


@pytest.mark.parametrize("case", THROUGHPUT_CASES, ids=[case.id for case in THROUGHPUT_CASES])
def test_throughput(echo_bench: Callable[[EchoCase], None], case: EchoCase) -> None:
    """Round trips per second of 1 KiB messages over 1, 64 and 256 connections."""
    echo_bench(case)


@pytest.mark.parametrize("case", BULK_CASES, ids=[case.id for case in BULK_CASES])
def test_bulk(echo_bench: Callable[[EchoCase], None], case: EchoCase) -> None:
    """MB/s echoed with 64 KiB messages."""
    echo_bench(case)
