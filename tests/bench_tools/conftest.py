"""The tools' tests import `benchmarks` from the checkout: under ``python -m pytest tests``
(the README's command) it is on sys.path. Where it is not (tox's environments keep the
checkout off sys.path to test the installed wheel), these tests skip saying so."""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("benchmarks") is None:
    pytest.skip("benchmarks/ is not importable: the checkout is not on sys.path "
                "(run `python -m pytest tests` from the checkout)", allow_module_level=True)
