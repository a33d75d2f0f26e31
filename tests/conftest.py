"""Shared fixtures: every test that takes ``variant`` or ``poller`` runs once per
backend variant (the way Twisted's ReactorBuilder generates a class per reactor).

A variant that cannot run on this platform is skipped with the registry's reason,
which names the platform or the missing package. ``POLLERS_FAMILIES`` (a comma
list of family names, ``pollers.FAMILIES``) restricts the run to those families,
for tox's backend factor; the others are deselected, not skipped, and
``POLLERS_VARIANTS`` (a comma list of variant names) restricts it further.
Variants and families come from the registry, which reads each backend module's
declaration.

The attached variants (``asyncio-attached``, ``tornado-attached``...,
``pollers.attached_variants()``) run the same tests: their ``poller`` is attached
(`pollers.attach`) to a fresh host loop that ``hosts.py`` makes, and its ``run()``
runs that loop the host's way. ``POLLERS_FAMILIES`` selects them by their family.
A test that cannot apply to them says why once, with ``@pytest.mark.owned_only(reason)``.
Tests that need more than one poller take ``make_poller`` rather than calling
``pollers.create``, so the attached variants run them too.

``POLLERS_KQUEUE=libkqueue`` is the emulated kqueue mode: ``select.kqueue`` over
libkqueue (``tools/kqueue_emulation/``) is installed in this session and,
through that directory's sitecustomize on PYTHONPATH, in every Python subprocess
the tests start, so ``selectors-kqueue`` and ``twisted-kqueue`` run on Linux. Their
test ids say ``selectors-kqueue-libkqueue`` and ``twisted-kqueue-libkqueue``: it is
libkqueue, not FreeBSD.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import pytest

_EMULATION_DIR = Path(__file__).resolve().parent.parent / "tools" / "kqueue_emulation"
sys.path.insert(0, str(_EMULATION_DIR))
import libkqueue_select  # noqa: E402 (found through the line above)

try:
    KQUEUE_EMULATED = libkqueue_select.mode_requested()
except ValueError as error:
    raise pytest.UsageError(str(error)) from None
if KQUEUE_EMULATED:
    # Before the registry is asked what runs here; a missing tarball or cmake fails here.
    try:
        libkqueue_select.install()
    except libkqueue_select.LibkqueueBuildError as error:
        raise pytest.UsageError(str(error)) from None
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(_EMULATION_DIR), os.environ.get("PYTHONPATH")])
    )

from hosts import HOSTS  # noqa: E402 (tests/ is on sys.path, as for helpers)

import pollers  # noqa: E402
from pollers import Poller  # noqa: E402


def _run_the_installed_server() -> None:
    """Make ``server`` and ``server.*`` the installed ``pollers.server`` modules.

    The tests import the echo server by the repository's name, ``server``, which is
    what mypy checks; the distribution installs it as ``pollers.server``. Aliasing
    each module (not re-importing it) gives the tests the installed code, once:
    the wheel in tox, this checkout's files through an editable install.
    """
    package = importlib.import_module("pollers.server")
    already = sys.modules.get("server")
    if already is not None and already is not package:
        raise pytest.UsageError(f"`server` was imported from {already.__file__} before conftest")
    sys.modules["server"] = package
    for module in pkgutil.iter_modules(package.__path__):
        if module.name != "__main__":
            installed = importlib.import_module(f"pollers.server.{module.name}")
            sys.modules[f"server.{module.name}"] = installed


_run_the_installed_server()

#: The variants the emulated mode runs on libkqueue; their tests' ids end in ``-libkqueue``.
EMULATED_VARIANTS = ("selectors-kqueue", "twisted-kqueue")

_OWNED_VARIANTS = {variant.name: variant for variant in pollers.variants()}
_VARIANTS = {**_OWNED_VARIANTS, **{v.name: v for v in pollers.attached_variants()}}


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


def _selected_variants() -> List[str]:
    """Owned variants, then attached ones, of the selected families."""
    families = _selected_families()
    selected = [name for name, variant in _VARIANTS.items() if variant.family in families]
    raw = os.environ.get("POLLERS_VARIANTS", "").strip()
    if not raw:
        return selected
    wanted = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in _VARIANTS]
    if unknown:
        raise pytest.UsageError(
            f"POLLERS_VARIANTS names unknown variants {unknown}; choose from {', '.join(_VARIANTS)}"
        )
    return [name for name in selected if name in wanted]


SELECTED_VARIANTS = _selected_variants()


def variant_id(name: str) -> str:
    """The test id of a variant: the emulated kqueue says so."""
    if KQUEUE_EMULATED and name in EMULATED_VARIANTS:
        return f"{name}-{libkqueue_select.LABEL}"
    return name


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "libkqueue_difference(reason, variants=...): a difference of libkqueue from BSD "
        "kqueue, shown against libkqueue alone; in the emulated kqueue mode the test's "
        "cases of the kqueue variants (or of those named) are xfail(strict=True) with the reason",
    )
    config.addinivalue_line(
        "markers",
        "owned_only(reason): the test needs a poller that owns its loop (it selects "
        "--poller, forks, ...); its attached variants are skipped with the reason",
    )


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    if not KQUEUE_EMULATED:
        return
    for item in items:
        marker = item.get_closest_marker("libkqueue_difference")
        callspec = getattr(item, "callspec", None)
        if marker is None or callspec is None:
            continue
        if callspec.params.get("variant") in marker.kwargs.get("variants", EMULATED_VARIANTS):
            item.add_marker(pytest.mark.xfail(strict=True, reason=str(marker.args[0])))


def pytest_report_header(config: pytest.Config) -> List[str]:
    if KQUEUE_EMULATED:
        return [f"{variant_id(name)}: {libkqueue_select.DESCRIPTION}" for name in EMULATED_VARIANTS]
    return []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "variant" in metafunc.fixturenames:
        metafunc.parametrize(
            "variant", SELECTED_VARIANTS, ids=[variant_id(name) for name in SELECTED_VARIANTS]
        )
    if "attached_variant" in metafunc.fixturenames:  # the attachment-only tests
        metafunc.parametrize(
            "attached_variant", [name for name in SELECTED_VARIANTS if is_attached(name)]
        )


def is_attached(variant: str) -> bool:
    """True for an attached variant (``asyncio-attached``), made by `pollers.attach`."""
    return variant in pollers.ATTACHED_VARIANTS


@pytest.fixture
def attached_name(attached_variant: str) -> str:
    """The attached variant name, skipping where it cannot run or has no host."""
    reason = _VARIANTS[attached_variant].reason
    if reason is not None:
        pytest.skip(f"{attached_variant}: {reason}")
    if attached_variant not in HOSTS:
        pytest.skip(f"{attached_variant}: tests/hosts.py has no host for it")
    return attached_variant


@pytest.fixture
def variant_name(variant: str, request: pytest.FixtureRequest) -> str:
    """The variant name, skipping with the registry's reason where it cannot run.

    An attached variant is also skipped where the test is marked ``owned_only``
    (with the marker's reason), or where ``tests/hosts.py`` has no host for it.
    """
    reason = _VARIANTS[variant].reason
    if reason is not None:
        pytest.skip(f"{variant}: {reason}")
    if is_attached(variant):
        marker = request.node.get_closest_marker("owned_only")
        if marker is not None:
            pytest.skip(f"{variant}: owned variants only: {marker.args[0]}")
        if variant not in HOSTS:
            pytest.skip(f"{variant}: tests/hosts.py has no host for it")
    return variant


class PollerMaker:
    """Makes pollers of one variant: `pollers.create`, or a fresh host and `pollers.attach`.

    Closes what it made (pollers, then hosts) in `close`.
    """

    def __init__(self, variant: str) -> None:
        self.variant = variant
        self._made: List[Tuple[Poller, Any]] = []

    def __call__(self) -> Poller:
        if not is_attached(self.variant):
            instance = pollers.create(self.variant)
            self._made.append((instance, None))
            return instance
        spec = HOSTS[self.variant]
        host = spec.make()
        try:
            instance = pollers.attach(host)
        except BaseException:
            spec.dispose(host)
            raise
        self._made.append((instance, host))
        return instance

    def host_of(self, instance: Poller) -> Any:
        """The host loop ``instance`` was attached to (None for an owned poller)."""
        return next(host for made, host in self._made if made is instance)

    def close(self) -> None:
        while self._made:
            instance, host = self._made.pop()
            try:
                instance.close()
            finally:
                if host is not None:
                    HOSTS[self.variant].dispose(host)


@pytest.fixture
def make_poller(variant_name: str) -> Iterator[PollerMaker]:
    """``make_poller()``: a new poller of the variant under test; all closed afterwards.

    For an attached variant each one is attached to a fresh host loop (``tests/hosts.py``).
    """
    maker = PollerMaker(variant_name)
    try:
        yield maker
    finally:
        maker.close()


@pytest.fixture
def poller(make_poller: PollerMaker) -> Poller:
    """A fresh poller of the variant under test, closed afterwards."""
    return make_poller()
