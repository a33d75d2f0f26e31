"""Shared fixtures: every test that takes ``variant`` or ``poller`` runs once per
backend variant (the way Twisted's ReactorBuilder generates a class per reactor).

A variant that cannot run on this platform is skipped with the registry's reason,
which names the platform or the missing package. ``POLLERS_FAMILIES`` (a comma
list of family names, ``pollers.FAMILIES``) restricts the run to those families,
for tox's backend factor; the others are deselected, not skipped. Variants and
families come from the registry, which reads each backend module's declaration.
"""

from __future__ import annotations

import os
from typing import Iterator, List

import pytest

import pollers
from pollers import Poller

_VARIANTS = {variant.name: variant for variant in pollers.variants()}


def _selected_families() -> List[str]:
    raw = os.environ.get("POLLERS_FAMILIES", "").strip()
    if not raw:
        return list(pollers.FAMILIES)
    families = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = [name for name in families if name not in pollers.FAMILIES]
    if unknown:
        raise pytest.UsageError(
            f"POLLERS_FAMILIES names unknown families {unknown}; "
            f"choose from {', '.join(pollers.FAMILIES)}"
        )
    return families


SELECTED_VARIANTS = [
    name for name, variant in _VARIANTS.items() if variant.family in _selected_families()
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "variant" in metafunc.fixturenames:
        metafunc.parametrize("variant", SELECTED_VARIANTS, ids=SELECTED_VARIANTS)


@pytest.fixture
def variant_name(variant: str) -> str:
    """The variant name, skipping with the registry's reason where it cannot run."""
    reason = _VARIANTS[variant].reason
    if reason is not None:
        pytest.skip(f"{variant}: {reason}")
    return variant


@pytest.fixture
def poller(variant_name: str) -> Iterator[Poller]:
    """A fresh poller of the variant under test, closed afterwards."""
    instance = pollers.create(variant_name)
    try:
        yield instance
    finally:
        instance.close()
