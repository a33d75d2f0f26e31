"""The examples in README.md and in the modules' docstrings, run as doctests."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from typing import List

import pytest
from echo_client import REPO

import pollers


def _module_names() -> List[str]:
    """Every module of the distribution, by its installed name (``pollers.server.cli``)."""
    names = set()
    # An editable install finds pollers.server apart from pollers/: walk both.
    for package in (pollers, importlib.import_module("pollers.server")):
        names.add(package.__name__)
        names.update(
            module.name
            for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
            if not module.name.endswith(".__main__")
        )
    return sorted(names)


def test_readme_examples() -> None:
    readme = REPO / "README.md"
    failed, attempted = doctest.testfile(
        str(readme), module_relative=False, optionflags=doctest.ELLIPSIS, verbose=False
    )
    assert attempted > 0, f"no examples found in {readme}"
    assert failed == 0, f"{failed} of {attempted} README examples failed (output above)"


@pytest.mark.parametrize("name", _module_names())
def test_module_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    failed, _attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert failed == 0, f"{failed} example(s) in {name} failed (output above)"


def test_some_module_has_examples() -> None:
    finder = doctest.DocTestFinder()
    examples = sum(
        len(test.examples)
        for name in _module_names()
        for test in finder.find(importlib.import_module(name))
    )
    assert examples > 0
