"""The registry: names, options, what runs here and why the rest does not."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import libkqueue_select
import pytest

import pollers
from pollers import Poller
from pollers.registry import DESCRIPTOR_LIMITS, FAMILY_DECLARATIONS, resolve

LINUX_VARIANTS = [
    "tornado",
    "tornado-uvloop",
    "selectors-epoll",
    "selectors-poll",
    "selectors-select",
    "asyncio",
    "asyncio-uvloop",
    "twisted-epoll",
    "twisted-poll",
    "twisted-select",
    "twisted-asyncio",
    "gevent-libev",
    "gevent-libuv",
]
#: The Linux variants that need an optional package, by package (its extra's name).
OPTIONAL_PACKAGES = ("uvloop", "twisted", "gevent")
#: In the emulated kqueue mode (POLLERS_KQUEUE=libkqueue) the kqueue variants run here too.
KQUEUE_EMULATED = libkqueue_select.installed()
if KQUEUE_EMULATED:
    LINUX_VARIANTS.insert(LINUX_VARIANTS.index("selectors-epoll") + 1, "selectors-kqueue")
    LINUX_VARIANTS.insert(LINUX_VARIANTS.index("twisted-asyncio") + 1, "twisted-kqueue")


def test_only_the_select_variants_declare_a_descriptor_limit() -> None:
    """What the conformance and benchmark suites size their descriptor counts by."""
    assert DESCRIPTOR_LIMITS == {
        "selectors-select": 1024,
        "twisted-select": 1024,
        "twisted-select-attached": 1024,
    }


def test_every_variant_is_listed_in_a_stable_order() -> None:
    assert [variant.name for variant in pollers.variants()] == [
        "tornado",
        "tornado-uvloop",
        "selectors-epoll",
        "selectors-kqueue",
        "selectors-poll",
        "selectors-select",
        "selectors-devpoll",
        "asyncio",
        "asyncio-uvloop",
        "twisted-epoll",
        "twisted-poll",
        "twisted-select",
        "twisted-asyncio",
        "twisted-kqueue",
        "gevent-libev",
        "gevent-libuv",
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux variant list")
def test_linux_runs_its_variants_and_names_the_platform_or_package_for_the_rest() -> None:
    """Every Linux variant runs where its optional package is installed; without it
    (uvloop on PyPy, an environment without the extra) the variant names the package.
    The kqueue variants run too in the emulated kqueue mode, where kqueue is libkqueue's."""
    reasons = {v.name: v.reason for v in pollers.variants() if not v.runs_here}
    missing = [p for p in OPTIONAL_PACKAGES if importlib.util.find_spec(p) is None]
    absent = [name for name in LINUX_VARIANTS if any(p in name for p in missing)]
    assert pollers.available() == [name for name in LINUX_VARIANTS if name not in absent]
    for package in missing:
        for name in [name for name in reasons if package in name]:
            said = reasons.pop(name) or ""
            assert package in said and f"pollers[{package}]" in said, said
    expected = {"selectors-devpoll"}
    if not KQUEUE_EMULATED:
        expected |= {"selectors-kqueue", "twisted-kqueue"}
    assert set(reasons) == expected - {n for n in expected if any(p in n for p in missing)}
    for name, reason in reasons.items():
        assert reason is not None
        assert sys.platform in reason, f"{name}: {reason}"
    for name in ("selectors-kqueue", "twisted-kqueue"):
        assert "BSD" in (reasons.get(name) or "BSD")
    assert "Solaris" in (reasons["selectors-devpoll"] or "")


def test_unavailable_selectors_say_which_platform_they_need_and_which_this_is() -> None:
    for variant in pollers.variants():
        if variant.family == "selectors" and not variant.runs_here:
            assert variant.reason is not None
            assert sys.platform in variant.reason


def test_create_refuses_an_unavailable_variant_naming_the_reason() -> None:
    for variant in pollers.variants():
        if variant.runs_here:
            continue
        with pytest.raises(ValueError) as refused:
            pollers.create(variant.name)
        message = str(refused.value)
        assert variant.reason is not None and variant.reason in message
        for name in pollers.available():
            assert name in message


@pytest.mark.owned_only("it tests pollers.create, which makes owned pollers")
def test_create_every_available_variant_by_name_and_by_family(variant_name: str) -> None:
    family, options = pollers.VARIANTS[variant_name]
    for poller in (pollers.create(variant_name), pollers.create(family, **options)):
        with poller:
            assert isinstance(poller, Poller)
            assert poller.name == variant_name


def test_create_family_with_defaults() -> None:
    """Each family's defaults make a poller, or (its package not installed here, as in
    another family's tox environment) a ValueError that says why."""
    for family in pollers.FAMILIES:
        _, options = resolve(family)
        reason = FAMILY_DECLARATIONS[family].unavailable_reason(options)
        if reason is not None:
            with pytest.raises(ValueError, match=re.escape(reason)):
                pollers.create(family)
            continue
        with pollers.create(family) as poller:
            assert poller.name.startswith(family)
    with pollers.create("selectors", selector="auto") as poller:
        assert poller.name in pollers.available()


def test_unknown_name_lists_the_families_and_variants() -> None:
    with pytest.raises(ValueError) as refused:
        pollers.create("nonesuch")
    message = str(refused.value)
    assert "nonesuch" in message
    for name in [*pollers.FAMILIES, *pollers.VARIANTS]:
        assert name in message


@pytest.mark.parametrize("family", list(pollers.FAMILIES))
def test_unknown_option_lists_the_valid_ones(family: str) -> None:
    with pytest.raises(ValueError) as refused:
        pollers.create(family, colour="blue")
    message = str(refused.value)
    assert "colour" in message
    for option in pollers.FAMILIES[family]:
        assert option in message


def test_unknown_option_values_list_the_valid_ones() -> None:
    with pytest.raises(ValueError) as refused:
        pollers.create("selectors", selector="bogus")
    assert all(kind in str(refused.value) for kind in ("auto", "epoll", "kqueue", "poll"))
    with pytest.raises(ValueError) as refused:
        pollers.create("asyncio", loop="bogus")
    assert "asyncio" in str(refused.value) and "uvloop" in str(refused.value)


def test_a_variant_name_takes_no_options() -> None:
    with pytest.raises(ValueError) as refused:
        pollers.create("selectors-epoll", selector="poll")
    assert "selectors" in str(refused.value)


def test_the_docs_variant_table_is_the_registry_s() -> None:
    """docs/contract.md shows the table `python -m pollers --markdown` prints."""
    contract = (Path(__file__).resolve().parent.parent / "docs" / "contract.md").read_text()
    begin = contract.index("\n", contract.index("<!-- variants: generated")) + 1
    shown = contract[begin : contract.index("<!-- variants: end -->")]
    assert shown == pollers.registry.variant_table()


def test_every_declared_variant_takes_its_family_s_choices() -> None:
    for name, family in pollers.registry.FAMILY_DECLARATIONS.items():
        assert family.variants, name
        for variant in family.variants:
            for option in family.options:
                assert variant.options[option.name] in option.choices, variant.name
        for option in family.options:
            assert option.default in option.choices


def test_importing_pollers_reads_the_declarations_without_importing_third_party_loops() -> None:
    """Every family is declared by then, but Tornado and uvloop wait until a poller needs them."""
    probe = (
        "import sys, pollers; assert len(pollers.VARIANTS) >= 9; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tornado', 'uvloop')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
