"""The first pages a reader sees name every family the registry declares, and every extra.

The README and the docs site's home page each open with a list of the backend
families (``- **NAME**: ...``); the package's description (``pyproject.toml``, what
the package index shows) and the site's (``mkdocs.yml``) name them in a sentence.
They are written by hand, so a new family, or one renamed, fails here until they
say so too.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path
from typing import List

import pytest

from pollers.registry import FAMILY_DECLARATIONS

REPO = Path(__file__).resolve().parent.parent
FAMILIES = list(FAMILY_DECLARATIONS)
#: The extras the installed distribution declares (``pollers[uvloop]``...).
EXTRAS = metadata.metadata("pollers").get_all("Provides-Extra") or []

#: A family's line in a page's list: ``- **selectors**: the project's own ...``.
FAMILY_ITEM = re.compile(r"^- \*\*([\w-]+)\*\*: ", re.MULTILINE)


def family_list(page: Path) -> List[str]:
    """The family names listed before the page's first ``##`` section."""
    text = page.read_text(encoding="utf-8")
    first_section = re.search(r"^## ", text, re.MULTILINE)
    opening = text[: first_section.start()] if first_section else text
    return FAMILY_ITEM.findall(opening)


def quoted_line(path: Path, key: str) -> str:
    """The value of the first ``key = "..."`` or ``key: ...`` line of a TOML or YAML file."""
    text = path.read_text(encoding="utf-8")
    match = re.search(rf"^{key}\s*[=:]\s*(.+)$", text, re.MULTILINE)
    assert match, f"no {key} line in {path.name}"
    return match.group(1)


def test_the_registry_declares_families() -> None:
    """The checks below compare against this list; an empty one would prove nothing."""
    assert len(FAMILIES) >= 5, FAMILIES
    assert EXTRAS, "the installed pollers declares no extras"


@pytest.mark.parametrize("page", ["README.md", "docs/index.md"])
def test_the_opening_family_list_is_the_registry_s(page: str) -> None:
    """Every family, in the registry's order (``BACKEND_MODULES``), and no other."""
    listed = family_list(REPO / page)
    assert listed == FAMILIES, (
        f"{page} lists the families {listed}; the registry declares {FAMILIES} "
        "(add a '- **NAME**: ...' line for each, in this order)"
    )


@pytest.mark.parametrize(
    "path, key", [("pyproject.toml", "description"), ("mkdocs.yml", "site_description")]
)
def test_the_descriptions_name_every_family_and_extra(path: str, key: str) -> None:
    description = quoted_line(REPO / path, key).lower()
    missing = [name for name in FAMILIES + EXTRAS if name.lower() not in description]
    assert not missing, f"{path}'s {key} does not name {missing}: {description}"


def test_the_docs_home_page_names_every_extra() -> None:
    text = (REPO / "docs" / "index.md").read_text(encoding="utf-8")
    missing = [extra for extra in EXTRAS if f"`{extra}`" not in text]
    assert not missing, f"docs/index.md does not name the extras {missing}"
