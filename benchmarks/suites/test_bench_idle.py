"""Idle scaling: one active connection's round trip with 0, 1,000 and 10,000 idle ones open.

select and poll pay for every descriptor on every pass; epoll and kqueue do not.
The idle connections are opened by the load generator, each echoes one probe
byte first (so the server has accepted and registered it) and must still be
open at the end.
"""

from __future__ import annotations

from typing import Callable

import pytest

from .cases import IDLE_CASES, EchoCase


@pytest.mark.parametrize("case", IDLE_CASES, ids=[case.id for case in IDLE_CASES])
def test_idle_scaling(echo_bench: Callable[[EchoCase], None], case: EchoCase) -> None:
    echo_bench(case)
